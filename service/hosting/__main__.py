"""`python -m service.hosting`: supervise the server processes, with settings from DROPSERVE_*.

`dropserve serve` execs this when it runs several processes, so that the supervising process
holds only what supervising needs: the CLI has imported torch and the models' code by then, and
keeping them would cost the machine one more server's worth of memory for a process that never
serves a request.
"""

import sys

from service.config import Settings
from service.hosting.supervisor import supervise

if __name__ == "__main__":
    sys.exit(supervise(Settings()))

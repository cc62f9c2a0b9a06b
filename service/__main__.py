"""`python -m service` runs the `dropserve` command."""

import sys

from service.cli import main

sys.exit(main())

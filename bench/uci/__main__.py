"""`python -m bench.uci`: the UCI benchmark's command line (`bench.uci.cli`)."""

import sys

from bench.uci.cli import main

# The guard matters: with --jobs, spawned worker processes import this module again.
if __name__ == "__main__":
    sys.exit(main())

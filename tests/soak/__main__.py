"""`python -m tests.soak [--duration 60] [--concurrency 64] [--reload-every 10] [--quick]`."""

import sys

from tests.soak.driver import main

sys.exit(main())

"""`python -m bench [SUITE ...] [--quick] [--no-save]`: the performance suites behind `make bench`.

Suites: `engine` (MC engine vs naive loop vs GEMM floor), `http` (a real server under wrk beside
the HTTP floor and the naive server), `batching` (dynamic batching off vs on), `gpu` (the engine
on CUDA: eager, CUDA graphs, fp32/tf32/bf16; says it skipped without a GPU), `scaling` (W1 and
W4 with 1, 2 and all server processes), `memory` (resident memory with 1-8 processes). With no
suite
named, all run. Each prints a table and `RATIO <name> <value>` lines and merges its results
into bench/results/<date>-<machine>.json.
The UCI benchmark (`python -m bench.uci`) and the soak test (`python -m tests.soak`) take minutes
to hours and run on their own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.suites import Options, Suite
from bench.suites.batching import BatchingSuite
from bench.suites.engine import EngineSuite
from bench.suites.gpu import GpuSuite
from bench.suites.http import HttpSuite
from bench.suites.memory import MemorySuite
from bench.suites.scaling import ScalingSuite

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        EngineSuite(),
        HttpSuite(),
        BatchingSuite(),
        ScalingSuite(),
        MemorySuite(),
        GpuSuite(),
    )
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"{', '.join(SUITES)}; default: all"
    )
    parser.add_argument("--quick", action="store_true", help="the short smoke run (bench-quick)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    options = Options(quick=args.quick, save=not args.no_save)
    status = 0
    for name in args.suites or list(SUITES):
        print(f"== bench {name}", flush=True)
        status |= SUITES[name].run(options)
    return status


if __name__ == "__main__":
    sys.exit(main())

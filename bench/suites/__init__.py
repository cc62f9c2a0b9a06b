"""The performance suites behind `python -m bench`, each one `Suite`.

engine: the MC engine against the naive loop and the GEMM floor; http: a real server under wrk
beside the HTTP floor and the naive server; batching: dynamic batching off and on (its engine
ceiling is capacity.py); scaling: throughput with 1, 2 and all server processes; gpu: the
engine on CUDA.
"""

from bench.suites.base import Options, Suite

__all__ = ["Options", "Suite"]

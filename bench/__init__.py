"""Benchmarks, each a module run with `python -m bench.<name>` (e.g. `bench.uci`, the UCI one)."""

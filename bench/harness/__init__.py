"""What the performance suites share: servers under wrk load, interleaved rounds, the benchmark
models as bundles, and the printed tables, RATIO lines and results files."""

"""The MC-dropout UCI regression benchmark, run as `python -m bench.uci` (see `bench.uci.cli`).

Modules: `cli` (the runner and its flags), `data` (a data set folder), `protocol` (the grid
search and the final networks of a group of splits), `results` (summaries, JSON and Markdown),
`published` (the paper's numbers); `gpu.sh` runs it all on one CUDA GPU.
"""

"""The MC-dropout UCI regression benchmark: `python -m bench.uci --data-dir DIR`.

Runs the protocol of `bench.uci.protocol` on every data set folder under DIR (laid out as
`../shared/data/uci/<dataset>/`, see `bench.uci.data`), prints mean +- standard error of test RMSE
and log-likelihood over the splits next to the published numbers, and merges the results into
`<out>.json` and `<out>.md` (one entry per data set, each with the command that produced it).

Splits of a data set are trained together (`--stack-splits` at a time, all by default): on a GPU
one stack of 20 x 12 networks costs about what one network does. `--jobs` runs that many stacks
in parallel processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.uci.data import find_datasets, load_dataset
from bench.uci.protocol import ProtocolSettings, SplitResult, run_splits
from bench.uci.results import entry, locked, markdown, pm, previous_entry, write_results
from service.device import resolve_torch_device

__all__ = ["build_parser", "main"]

logger = logging.getLogger("bench.uci")

DEFAULT_OUT = Path("bench/results/uci")
EPOCH_MULTIPLIER = 100  # the protocol trains n_epochs.txt x 100 epochs


@dataclass(frozen=True)
class _Task:
    folder: Path
    splits: tuple[int, ...]
    settings: ProtocolSettings
    device: str
    threads: int


def _run(task: _Task) -> tuple[str, list[SplitResult], float]:
    torch.set_num_threads(task.threads)
    start = time.perf_counter()
    dataset = load_dataset(task.folder)
    settings = task.settings
    if settings.epochs <= 0:  # 0: the folder's own n_epochs x 100
        settings = dataclasses.replace(settings, epochs=dataset.epoch_base * EPOCH_MULTIPLIER)
    device = resolve_torch_device(task.device)
    results = run_splits(dataset, task.splits, settings, device)
    return dataset.name, results, time.perf_counter() - start


def _tasks(args: argparse.Namespace, settings: ProtocolSettings) -> list[_Task]:
    names = args.datasets or find_datasets(args.data_dir)
    if not names:
        raise SystemExit(f"bench.uci: error: no <dataset>/data.txt under {args.data_dir}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    tasks = []
    for name in names:
        dataset = load_dataset(args.data_dir / name)
        total = len(dataset.splits)
        wanted = range(args.first_split, min(args.first_split + (args.splits or total), total))
        # Only splits of equal size stack; published splits all are.
        by_size: dict[int, list[int]] = {}
        for split in wanted:
            by_size.setdefault(dataset.splits[split][0].size, []).append(split)
        step = args.stack_splits or len(wanted)
        for group in by_size.values():
            for start in range(0, len(group), step):
                chunk = tuple(group[start : start + step])
                tasks.append(_Task(args.data_dir / name, chunk, settings, args.device, threads))
    return tasks


def _extended(
    out: Path, name: str, results: list[SplitResult], seconds: float, meta: dict[str, Any]
) -> tuple[list[SplitResult], float]:
    """`results` added to the data set's earlier splits in `out` (a split run again replaces
    its earlier result); `meta` records both commands. The settings must be the same."""
    previous = previous_entry(out, name)
    if previous is None:
        return results, seconds
    earlier, found = previous
    if _comparable(found["settings"]) != _comparable(meta["settings"]):
        raise SystemExit(
            f"bench.uci: error: --extend: {name} in {out.with_suffix('.json')} was run with "
            f"other settings ({found['settings']}); run without --extend or match them"
        )
    fresh = {result.split for result in results}
    kept = [result for result in earlier if result.split not in fresh]
    meta["command"] = f"{found['command']} && {meta['command']}"
    return kept + results, found["seconds"] + seconds


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    # As stored in JSON (tuples become lists), without what does not change the results.
    stored: dict[str, Any] = json.loads(json.dumps(settings))
    for key in ("progress", "chunk_elements"):
        stored.pop(key, None)
    return stored


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.uci", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder of <dataset>/data.txt")
    parser.add_argument(
        "--datasets", type=lambda s: s.split(","), help="comma-separated (default: all)"
    )
    parser.add_argument("--splits", type=int, default=0, help="N splits (default: all)")
    parser.add_argument(
        "--first-split", type=int, default=0, help="the first split to run (default: 0)"
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="add these splits to the data set's results already in --out (same settings), so "
        "the protocol can be run a few splits at a time",
    )
    parser.add_argument("--epochs", type=int, default=0, help="default: n_epochs.txt x 100 (4000)")
    parser.add_argument(
        "--validation-samples", type=int, default=1000, help="T for the grid's validation LL"
    )
    parser.add_argument("--test-samples", type=int, default=10_000, help="T on the test rows")
    parser.add_argument(
        "--tau-scales",
        type=lambda s: tuple(float(v) for v in s.split(",")),
        default=(1.0,),
        help="widen the tau grid: each grid tau times each of these (default 1)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--stack-splits", type=int, default=0, help="splits trained together (default: all)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per worker (default: cores / jobs)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results prefix (.json, .md)")
    parser.add_argument("--quick", action="store_true", help="1 split, 40 epochs, few passes")
    parser.add_argument(
        "--protocol-selection",
        action="store_true",
        help="also train and score the published protocol's own pick (grid tau, no fit)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _outcomes(tasks: list[_Task], jobs: int) -> Iterator[tuple[str, list[SplitResult], float]]:
    """Run the tasks, in `jobs` processes when above 1; yield each result as it comes."""
    if jobs <= 1:
        yield from map(_run, tasks)
        return
    # spawn: CUDA cannot be used in a forked child; big tasks first keep the pool busy.
    ordered = sorted(tasks, key=lambda task: -load_dataset(task.folder).x.size * len(task.splits))
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap_unordered(_run, ordered, chunksize=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; each data set's entry is written as soon as all its splits are done."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.quick:
        args.splits, args.epochs = args.splits or 1, args.epochs or 40
        args.validation_samples, args.test_samples = 100, 1000
    device = resolve_torch_device(args.device)
    settings = ProtocolSettings(
        epochs=args.epochs,
        validation_samples=args.validation_samples,
        test_samples=args.test_samples,
        tau_scales=args.tau_scales,
        seed=args.seed,
        protocol_selection=args.protocol_selection,
        chunk_elements=1 << 28 if device.type == "cuda" else 1 << 24,
        progress=not args.quiet and args.jobs == 1,
    )
    tasks = _tasks(args, settings)
    pending = Counter(task.folder.name for task in tasks)
    command = "python -m bench.uci " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    shown = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    start = time.perf_counter()
    grouped: dict[str, tuple[list[SplitResult], float]] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, results, seconds in _outcomes(tasks, args.jobs):
        done, spent = grouped.get(name, ([], 0.0))
        grouped[name] = (done + results, spent + seconds)
        pending[name] -= 1
        if pending[name]:
            continue
        dataset = load_dataset(args.data_dir / name)
        meta = {
            "command": command,
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "device": shown,
            "torch": torch.__version__,
            "jobs": args.jobs,
            "wall_seconds_since_start": time.perf_counter() - start,
            "settings": {
                **dataclasses.asdict(settings),
                "epochs": args.epochs or dataset.epoch_base * EPOCH_MULTIPLIER,
            },
            "regenerated_splits": dataset.regenerated_splits,
        }
        results, seconds = grouped[name]
        with locked(args.out):
            if args.extend:
                results, seconds = _extended(args.out, name, results, seconds, meta)
            entries[name] = entry(name, results, seconds, meta)
            write_results(args.out, {name: entries[name]})
        summary = entries[name]["summary"]
        print(
            f"bench.uci: {name} done after {time.perf_counter() - start:.0f} s: "
            f"RMSE {pm(summary['rmse'])}, LL {pm(summary['log_likelihood'])}",
            file=sys.stderr,
        )
    print(markdown({"datasets": entries}))
    return 0

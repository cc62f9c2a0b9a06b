"""Dynamic batching: requests are grouped, each gets its own rows back, seeds stay exact."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import torch
import uvloop

from service.config import Settings
from service.dataplane.batching import BatchItem, MicroBatcher
from service.dataplane.observer import InferenceEvent
from service.dataplane.plane import DataPlane
from service.dataplane.registry import ModelRegistry


class Recording:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.events: list[InferenceEvent] = []

    def on_inference(self, event: InferenceEvent) -> None:
        self.events.append(event)

    def on_batch(self, model: str, version: int, mode: str, rows: int) -> None:
        self.batches.append(rows)


def _dataplane(models_dir: Path, **overrides: Any) -> tuple[DataPlane, Recording]:
    settings = Settings(models_dir=models_dir, warmup_rounds=0, **overrides)
    registry = ModelRegistry(settings)
    registry.load_all()
    recording = Recording()
    return DataPlane(registry, settings, observer=recording), recording


ROWS = np.random.default_rng(0).normal(size=(8, 3)).round(3).tolist()


def test_batcher_groups_requests_and_returns_each_its_own_rows() -> None:
    calls: list[int] = []

    async def double(items: list[BatchItem[Any]]) -> list[Any]:
        calls.append(sum(item.rows.shape[0] for item in items))
        stacked = np.concatenate([item.rows for item in items]) * 2
        bounds = np.cumsum([item.rows.shape[0] for item in items])[:-1]
        return list(np.split(stacked, bounds))

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.05, max_rows=100)
        return await asyncio.gather(
            *(
                batcher.submit("k", BatchItem(rows=np.full((i + 1, 2), float(i))), double)
                for i in range(5)
            )
        )

    results = asyncio.run(scenario())
    assert calls == [15]  # 1 + 2 + 3 + 4 + 5 rows, one call
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, np.full((i + 1, 2), 2.0 * i))


def test_batcher_flushes_at_max_rows_and_isolates_failures() -> None:
    calls: list[int] = []

    async def picky(items: list[BatchItem[Any]]) -> list[Any]:
        calls.append(len(items))
        return [ValueError("odd") if item.seed % 2 else item.seed for item in items]

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=10.0, max_rows=2)
        jobs = [
            batcher.submit("k", BatchItem(rows=np.zeros((1, 1)), seed=i), picky) for i in range(4)
        ]
        return await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), timeout=5)

    results = asyncio.run(scenario())
    assert calls == [2, 2]  # full batches ran at once, not after the 10 s window
    assert results[0] == 0
    assert results[2] == 2
    assert isinstance(results[1], ValueError)
    assert isinstance(results[3], ValueError)


def test_a_flushed_group_is_split_across_idle_workers() -> None:
    """8 requests, 2 slots idle: two batches of 4 run side by side; with one slot taken by a
    batch still running, the next group runs whole."""
    calls: list[int] = []
    release = asyncio.Event()

    async def record(items: list[BatchItem[Any]]) -> list[Any]:
        calls.append(len(items))
        if items[0].seed == 100:  # the long-running batch
            await release.wait()
        return [item.seed for item in items]

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.02, max_rows=100, slots=2)

        def submit(seed: int) -> Any:
            return batcher.submit("k", BatchItem(rows=np.zeros((1, 1)), seed=seed), record)

        first = await asyncio.gather(*(submit(i) for i in range(8)))
        blocker = asyncio.ensure_future(submit(100))
        await asyncio.sleep(0.05)  # its window closed: it holds one slot
        second = await asyncio.gather(*(submit(i) for i in range(8, 14)))
        release.set()
        return [*first, *second, await blocker]

    results = asyncio.run(scenario())
    assert calls == [4, 4, 1, 6]
    assert results == [*range(14), 100]


def test_batched_predictions_equal_unbatched(toy_models_dir: Path) -> None:
    plain, _ = _dataplane(toy_models_dir)
    batched, recording = _dataplane(
        toy_models_dir,
        batching=True,
        batch_max_delay_ms=50,
        inline_max_macs=0,
        inference_threads=1,  # one worker: the whole group runs as one batch
    )

    async def scenario() -> tuple[list[Any], list[Any]]:
        alone = [await plain.predict("toyreg", 1, [row]) for row in ROWS]
        together = await asyncio.gather(*(batched.predict("toyreg", 1, [row]) for row in ROWS))
        return alone, list(together)

    alone, together = anyio.run(scenario)
    assert recording.batches == [8]
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b.values, a.values, rtol=1e-6)
    assert {event.rows for event in recording.events} == {1}


@pytest.mark.parametrize(("model", "version"), [("toyreg", 2), ("toycls", 1)])
def test_batched_uncertainty_replays_exactly_alone(
    toy_models_dir: Path, model: str, version: int
) -> None:
    """A batched request's summary (moments, interval, entropies) is its replay's alone with the
    echoed seed: the same masks, and numbers equal up to the rounding of the matrix products
    (BLAS picks kernels by the number of stacked rows)."""
    plain, _ = _dataplane(toy_models_dir)
    batched, recording = _dataplane(
        toy_models_dir, batching=True, batch_max_delay_ms=50, inference_threads=1
    )

    async def scenario() -> tuple[list[Any], list[Any]]:
        together = await asyncio.gather(
            *(batched.uncertainty(model, version, [row], samples=200) for row in ROWS)
        )
        replayed = [
            await plain.uncertainty(model, version, [row], samples=200, seed=result.seed)
            for row, result in zip(ROWS, together, strict=True)
        ]
        return list(together), replayed

    together, replayed = anyio.run(scenario)
    assert recording.batches == [8]
    assert len({result.seed for result in together}) == 8
    for batched_result, alone in zip(together, replayed, strict=True):
        for name, value in vars(alone.summary).items():
            torch.testing.assert_close(getattr(batched_result.summary, name), value, msg=name)


def test_seeded_requests_run_alone_and_replay_exactly(toy_models_dir: Path) -> None:
    batched, recording = _dataplane(
        toy_models_dir, batching=True, batch_max_delay_ms=50, inference_threads=1
    )

    async def scenario() -> list[Any]:
        return list(
            await asyncio.gather(
                *(batched.uncertainty("toyreg", 2, ROWS[:2], samples=50, seed=7) for _ in range(3))
            )
        )

    results = anyio.run(scenario)
    assert recording.batches == [2, 2, 2]
    for other in results[1:]:
        assert np.array_equal(other.summary.mean, results[0].summary.mean)
        assert np.array_equal(other.summary.upper, results[0].summary.upper)


@pytest.mark.parametrize("mode", ["predict", "uncertainty"])
def test_requests_of_different_models_never_share_a_batch(toy_models_dir: Path, mode: str) -> None:
    batched, recording = _dataplane(
        toy_models_dir, batching=True, batch_max_delay_ms=50, inline_max_macs=0
    )

    async def call(name: str, version: int) -> Any:
        if mode == "predict":
            return await batched.predict(name, version, ROWS[:1])
        return await batched.uncertainty(name, version, ROWS[:1], samples=20)

    async def scenario() -> None:
        await asyncio.gather(call("toyreg", 1), call("toyreg", 2), call("toycls", 1))

    anyio.run(scenario)
    assert sorted(recording.batches) == [1, 1, 1]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The functions handed to worker threads, in order."""
    handed: list[object] = []
    original = anyio.to_thread.run_sync

    async def counting(*args: Any, **kwargs: Any) -> Any:
        handed.append(args[0])
        return await original(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return handed


def test_tiny_predictions_run_inline_and_larger_ones_on_a_worker(
    toy_models_dir: Path, hops: list[object]
) -> None:
    dataplane, recording = _dataplane(toy_models_dir, inline_max_macs=16 * 3 + 16)

    async def scenario() -> None:
        await dataplane.predict("toyreg", 1, ROWS[:1])  # 1 row x 64 multiply-adds: inline
        assert hops == []
        await dataplane.predict("toyreg", 1, ROWS[:2])  # 2 rows: over the bound, a worker
        assert len(hops) == 1

    anyio.run(scenario)
    assert recording.events[0].queue_s == 0.0
    assert recording.events[0].compute_s is not None
    assert recording.batches == [1, 2]


def test_tiny_uncertainty_runs_inline_counting_every_pass(
    toy_models_dir: Path, hops: list[object]
) -> None:
    """Rows x T x network size decides: 1 row x 4 passes x 64 multiply-adds fits the bound."""
    dataplane, recording = _dataplane(toy_models_dir, inline_max_macs=4 * 64)
    on_workers, _ = _dataplane(toy_models_dir, inline_max_macs=0)

    async def scenario() -> None:
        inline = await dataplane.uncertainty("toyreg", 1, ROWS[:1], samples=4, seed=3)
        assert hops == []
        await dataplane.uncertainty("toyreg", 1, ROWS[:1], samples=5, seed=3)
        assert len(hops) == 1
        # Where the work ran changes nothing in the answer.
        worker = await on_workers.uncertainty("toyreg", 1, ROWS[:1], samples=4, seed=3)
        assert len(hops) == 2
        assert np.array_equal(worker.summary.mean, inline.summary.mean)
        assert np.array_equal(worker.summary.upper, inline.summary.upper)

    anyio.run(scenario)
    assert recording.events[0].queue_s == 0.0
    assert recording.batches == [1, 1]


class _EarlyTimers(asyncio.SelectorEventLoop):
    """An event loop whose timers fire 1 ms early, as asyncio's may within its clock
    resolution."""

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        return super().call_at(when - 0.001, callback, *args, context=context)


@pytest.mark.parametrize(
    "loop_factory",
    [_EarlyTimers, uvloop.new_event_loop],  # the server runs on uvloop, whose timers differ
    ids=["early-timers", "uvloop"],
)
def test_a_window_collects_its_requests_and_ends(loop_factory: Any) -> None:
    """With one worker busy, requests arriving within the window wait for each other though the
    second worker is free; the window ends even when the loop runs its timer a little early."""
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def record(items: list[BatchItem[Any]]) -> list[Any]:
        calls.append([item.seed for item in items])
        if items[0].seed == 100:
            await release.wait()
        return [item.seed for item in items]

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.05, max_rows=100, slots=2)

        def submit(seed: int) -> asyncio.Future[Any]:
            item = BatchItem[Any](rows=np.zeros((1, 1)), seed=seed)
            return asyncio.ensure_future(batcher.submit("k", item, record))

        blocker = submit(100)
        await asyncio.sleep(0.01)  # it runs: one worker busy, one free
        jobs = []
        for seed in range(3):
            jobs.append(submit(seed))
            await asyncio.sleep(0.005)
        results = await asyncio.wait_for(asyncio.gather(*jobs), timeout=5)
        release.set()
        return [*results, await blocker]

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(scenario()) == [0, 1, 2, 100]
    assert calls == [[100], [0, 1, 2]]


def test_with_every_worker_idle_a_request_does_not_wait_for_the_window() -> None:
    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=30.0, max_rows=100, slots=2)

        async def echo(items: list[BatchItem[Any]]) -> list[Any]:
            return [item.seed for item in items]

        item = BatchItem[Any](rows=np.zeros((1, 1)), seed=7)
        return [await asyncio.wait_for(batcher.submit("k", item, echo), timeout=1)]

    assert asyncio.run(scenario()) == [7]


def test_requests_of_one_turn_of_the_loop_batch_without_a_window() -> None:
    calls: list[int] = []

    async def echo(items: list[BatchItem[Any]]) -> list[Any]:
        calls.append(len(items))
        return [item.seed for item in items]

    async def scenario() -> list[Any]:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.0, max_rows=100, slots=1)
        items = [BatchItem[Any](rows=np.zeros((1, 1)), seed=i) for i in range(4)]
        return list(await asyncio.gather(*(batcher.submit("k", i, echo) for i in items)))

    assert asyncio.run(scenario()) == [0, 1, 2, 3]
    assert calls == [4]


class _OneWorker:
    """A batcher with one worker slot and no window, whose batch holding seed 0 computes until
    `release` is set; `calls` records the seeds of each batch run."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.0, max_rows=100, slots=1)

    async def _run(self, items: list[BatchItem[Any]]) -> list[Any]:
        self.calls.append([item.seed for item in items])
        if items[0].seed == 0:
            await self.release.wait()
        return [item.seed for item in items]

    def submit(self, seed: int) -> asyncio.Future[Any]:
        item = BatchItem[Any](rows=np.zeros((1, 1)), seed=seed)
        return asyncio.ensure_future(self.batcher.submit("k", item, self._run))


def test_requests_arriving_while_the_workers_compute_run_together_when_one_frees() -> None:
    """With no window (0 s) an idle worker takes a request at once; the requests that arrive
    while every worker is busy wait for the first free one and run as one batch."""

    async def scenario() -> tuple[list[Any], list[list[int]]]:
        worker = _OneWorker()
        first = worker.submit(0)
        await asyncio.sleep(0.01)  # the only worker is now busy with request 0
        later = [worker.submit(seed) for seed in range(1, 6)]
        await asyncio.sleep(0.01)
        assert worker.calls == [[0]]  # nothing ran beside it
        worker.release.set()
        return [await first, *[await job for job in later]], worker.calls

    results, calls = asyncio.run(scenario())
    assert results == list(range(6))
    assert calls == [[0], [1, 2, 3, 4, 5]]


def test_requests_whose_clients_left_are_not_computed() -> None:
    async def scenario() -> tuple[list[Any], list[list[int]]]:
        worker = _OneWorker()
        first = worker.submit(0)
        await asyncio.sleep(0.01)
        gone, kept = worker.submit(1), worker.submit(2)
        await asyncio.sleep(0.01)
        gone.cancel()  # its client disconnected while it queued
        worker.release.set()
        return [await first, await kept], worker.calls

    results, calls = asyncio.run(scenario())
    assert results == [0, 2]
    assert calls == [[0], [2]]


def test_the_oldest_ready_queue_runs_first() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    def recorder(name: str) -> Any:
        async def record(items: list[BatchItem[Any]]) -> list[Any]:
            calls.append(name)
            if name == "blocker":
                await release.wait()
            return [item.seed for item in items]

        return record

    async def scenario() -> None:
        batcher: MicroBatcher[Any] = MicroBatcher(max_delay_s=0.0, max_rows=100, slots=1)

        def submit(key: str) -> Any:
            item = BatchItem(rows=np.zeros((1, 1)))
            return asyncio.ensure_future(batcher.submit(key, item, recorder(key)))

        jobs = [submit("blocker")]
        await asyncio.sleep(0.01)
        for key in ["b", "a", "c"]:
            jobs.append(submit(key))
            await asyncio.sleep(0.005)
        release.set()
        await asyncio.gather(*jobs)

    asyncio.run(scenario())
    assert calls == ["blocker", "b", "a", "c"]

"""Dynamic batching: compatible requests run as one call when a worker is ready for them.

Requests are queued by a key (model, version, mode and, for MC dropout, T). A queue runs on one
of the `slots` inference workers as soon as one is free and the queue is ready: every worker
idle, or its oldest request waited `max_delay_s`, or it holds `max_rows` rows. It then takes
every request it holds (up to `max_rows` rows). Queues are looked at once per turn of the event
loop, so requests parsed in the same turn batch even with no window (the default, 0 s); a busy
server collects the requests that arrive while its workers compute and runs them together the
moment a worker frees up, and an idle one runs a request at once, whatever the window: the
window only collects while some worker is busy anyway. The batch function gets every request's
rows and returns one result (or exception) per request, so rows never mix between requests.

When several workers are idle, a ready queue is split across them: one big batch would keep
one core busy while the others wait for its clients to come back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["BatchFn", "BatchItem", "MicroBatcher"]

R = TypeVar("R")


@dataclass
class BatchItem(Generic[R]):
    """One request in a batch: its rows, its own seed (MC dropout) and where its answer goes."""

    rows: npt.NDArray[np.float64]
    seed: int = 0
    future: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


BatchFn = Callable[[list[BatchItem[R]]], Awaitable[list[R | BaseException]]]


@dataclass
class _Queue(Generic[R]):
    """The requests of one key waiting for a worker, oldest first, with their arrival times."""

    run: BatchFn[R]
    waiting: deque[tuple[float, BatchItem[R]]] = field(default_factory=deque)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None
    timer_due: float = 0.0  # when `timer` fires (uvloop's handles do not say)

    def drop_abandoned(self) -> None:
        """Forget requests whose clients went away: nobody would read their results."""
        kept = deque(entry for entry in self.waiting if not entry[1].future.done())
        self.rows = sum(item.rows.shape[0] for _, item in kept)
        self.waiting = kept


class MicroBatcher(Generic[R]):
    """Queues requests per key and runs ready queues on free worker slots."""

    def __init__(self, max_delay_s: float, max_rows: int, slots: int = 1) -> None:
        self.max_delay_s = max_delay_s
        self.max_rows = max_rows
        self.slots = slots
        self._running = 0  # batches dispatched and not yet finished
        self._queues: dict[Hashable, _Queue[R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatch_scheduled = False

    async def submit(self, key: Hashable, item: BatchItem[R], run: BatchFn[R]) -> R:
        """Queue a request under its key and wait for its own result."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(run=run)
        loop = asyncio.get_running_loop()
        queue.waiting.append((loop.time(), item))
        queue.rows += item.rows.shape[0]
        if not self._dispatch_scheduled:
            # At the end of this turn of the loop: requests parsed in the same turn batch.
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        return await item.future

    def _ready(self, queue: _Queue[R], now: float) -> bool:
        if not queue.waiting:
            return False
        # With every worker idle nothing is gained by waiting: the window is for collecting
        # requests while the workers are busy anyway.
        return (
            self._running == 0
            or queue.rows >= self.max_rows
            or now - queue.waiting[0][0] >= self.max_delay_s
        )

    def _dispatch(self) -> None:
        """Run ready queues, oldest request first, while worker slots are free."""
        self._dispatch_scheduled = False
        now = asyncio.get_running_loop().time()
        while self._running < self.slots:
            for queue in self._queues.values():
                queue.drop_abandoned()
            ready = sorted(
                (q for q in self._queues.values() if self._ready(q, now)),
                key=lambda q: q.waiting[0][0],
            )
            if not ready:
                break
            queue = ready[0]
            items = self._take(queue)
            # Idle slots beyond one per other ready queue may share this batch.
            parts = max(1, min(self.slots - self._running - (len(ready) - 1), len(items)))
            bounds = [round(i * len(items) / parts) for i in range(parts + 1)]
            for start, end in itertools.pairwise(bounds):
                self._start(items[start:end], queue.run)
        self._arm_timers(now)

    def _arm_timers(self, now: float) -> None:
        """A queue still inside its window gets a timer for the window's end; others need none
        (a ready queue runs when a slot frees, an empty one is forgotten)."""
        loop = asyncio.get_running_loop()
        for key, queue in list(self._queues.items()):
            if not queue.waiting:
                if queue.timer is not None:
                    queue.timer.cancel()
                del self._queues[key]  # keys of unloaded models must not accumulate
                continue
            due = queue.waiting[0][0] + self.max_delay_s
            if queue.timer is not None and (self._ready(queue, now) or queue.timer_due != due):
                queue.timer.cancel()
                queue.timer = None
            if queue.timer is None and not self._ready(queue, now):
                queue.timer = loop.call_at(due, self._on_timer, queue)
                queue.timer_due = due

    def _on_timer(self, queue: _Queue[R]) -> None:
        # The loop may run a timer up to its clock resolution early; _dispatch then finds the
        # queue not yet ready and arms a new timer.
        queue.timer = None
        self._dispatch()

    def _take(self, queue: _Queue[R]) -> list[BatchItem[R]]:
        """The oldest requests up to `max_rows` rows (at least one request, however large)."""
        items: list[BatchItem[R]] = []
        rows = 0
        while queue.waiting:
            size = queue.waiting[0][1].rows.shape[0]
            if items and rows + size > self.max_rows:
                break
            items.append(queue.waiting.popleft()[1])
            rows += size
        queue.rows -= rows
        return items

    def _start(self, items: list[BatchItem[R]], run: BatchFn[R]) -> None:
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._execute(items, run))
        self._tasks.add(task)  # keep a reference until it finishes
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running -= 1
        self._tasks.discard(task)
        self._dispatch()  # a slot is free: whatever queued meanwhile runs now

    @staticmethod
    async def _execute(items: list[BatchItem[R]], run: BatchFn[R]) -> None:
        try:
            results = await run(items)
        except asyncio.CancelledError:
            for item in items:
                item.future.cancel()
            raise
        except Exception as exc:  # the whole batch failed: every request gets the error
            results = [exc] * len(items)
        for item, result in zip(items, results, strict=True):
            if item.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

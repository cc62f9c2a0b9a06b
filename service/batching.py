"""Dynamic batching: compatible requests that arrive within a short window run as one call.

Requests are grouped by a key (model, version, mode and, for MC dropout, T). The first request
of a group opens a window of `max_delay_s`; the group is flushed when the window closes or when
it holds `max_rows` rows, whichever comes first. The batch function gets every request's rows
and returns one result (or exception) per request, so rows never mix between requests.

A flushed group is split across the inference workers that are idle (`slots` in all): one big
batch would keep one core busy while the others wait for its clients to come back, which under
a steady load of N clients is exactly what happens, since all N wait on that one batch.
"""

from __future__ import annotations

import asyncio
import itertools
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
class _Group(Generic[R]):
    items: list[BatchItem[R]]
    rows: int
    run: BatchFn[R]
    timer: asyncio.TimerHandle | None = None


class MicroBatcher(Generic[R]):
    """Collects requests per key and runs each closed group through its batch function."""

    def __init__(self, max_delay_s: float, max_rows: int, slots: int = 1) -> None:
        self.max_delay_s = max_delay_s
        self.max_rows = max_rows
        self.slots = slots
        self._running = 0  # batches dispatched and not yet finished
        self._groups: dict[Hashable, _Group[R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: Hashable, item: BatchItem[R], run: BatchFn[R]) -> R:
        """Add a request to its key's open group and wait for its own result."""
        group = self._groups.get(key)
        if group is not None and group.rows + item.rows.shape[0] > self.max_rows:
            self._flush(key)  # this request would overflow the group: close it first
            group = None
        if group is None:
            group = _Group(items=[], rows=0, run=run)
            self._groups[key] = group
            loop = asyncio.get_running_loop()
            group.timer = loop.call_later(self.max_delay_s, self._flush, key)
        group.items.append(item)
        group.rows += item.rows.shape[0]
        if group.rows >= self.max_rows:
            self._flush(key)
        return await item.future

    def _flush(self, key: Hashable) -> None:
        group = self._groups.pop(key, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        idle = self.slots - self._running
        parts = max(1, min(idle, len(group.items)))
        bounds = [round(i * len(group.items) / parts) for i in range(parts + 1)]
        for start, end in itertools.pairwise(bounds):
            part = _Group(items=group.items[start:end], rows=0, run=group.run)
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._execute(part))
            self._tasks.add(task)  # keep a reference until it finishes
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running -= 1
        self._tasks.discard(task)

    @staticmethod
    async def _execute(group: _Group[R]) -> None:
        try:
            results = await group.run(group.items)
        except asyncio.CancelledError:
            for item in group.items:
                item.future.cancel()
            raise
        except Exception as exc:  # the whole batch failed: every request gets the error
            results = [exc] * len(group.items)
        for item, result in zip(group.items, results, strict=True):
            if item.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

"""Cheap unique ids and seeds for every request.

`uuid.uuid4()` and `secrets` read the kernel's entropy on every call; on a busy virtual machine
that system call cost more than predicting a small model. Request ids need uniqueness and MC
seeds need independence, not secrecy, so both come from a generator seeded once per process from
the kernel (and again in a forked child, which would otherwise repeat its parent's stream).
"""

from __future__ import annotations

import itertools
import os
import random

__all__ = ["new_request_id", "new_seed"]


class _Source:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.random = random.Random(os.urandom(32))
        # 64 random bits per process, then a counter: unique without a system call per id.
        self.prefix = f"{self.random.getrandbits(64):016x}"
        self.counter = itertools.count()


_SOURCE = _Source()
os.register_at_fork(after_in_child=_SOURCE.reseed)


def new_request_id() -> str:
    """32 hex characters, like a UUID's, unique across processes and restarts."""
    return f"{_SOURCE.prefix}{next(_SOURCE.counter):016x}"


def new_seed() -> int:
    """A fresh seed in [0, 2**31) for a request that did not bring one."""
    return _SOURCE.random.getrandbits(31)

"""Admin actions on the loaded models, taken by every server process.

With several processes on one port, the one that takes an admin request acts, then asks each
sibling over the peer channel (service.peers) to take the same action, and the answer
says what each process did: nothing is answered before every process has acted or failed to
answer in time. A sibling's own failure (a bundle that failed to load, a model it does not
have) comes back as its report or error, never as an exception here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from service.dataplane.registry import ModelRegistry, ReloadReport
from service.errors import DropserveError, ModelNotFoundError
from service.peers import Handler, ProcessPeers, ask_siblings

__all__ = ["AdminResult", "ModelAdmin", "ProcessOutcome"]

# Loading a large model on a busy sibling can take a while; beyond this it counts as missing.
_SIBLING_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ProcessOutcome:
    """What one sibling did: its report, or why there is none."""

    index: int
    report: ReloadReport | None
    error: str | None = None


@dataclass(frozen=True)
class AdminResult:
    """This process's report and each sibling's outcome (none in a single process)."""

    index: int
    report: ReloadReport
    siblings: list[ProcessOutcome] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every sibling acted."""
        return all(outcome.report is not None for outcome in self.siblings)

    @property
    def failed(self) -> bool:
        """Whether a bundle failed to load in any process."""
        reports = [self.report, *(o.report for o in self.siblings if o.report is not None)]
        return any(report.failed for report in reports)


class ModelAdmin:
    """Reload the models folder, or load or unload one model, in this process and its
    siblings."""

    def __init__(self, registry: ModelRegistry, peers: ProcessPeers | None = None) -> None:
        self.registry = registry
        self.peers = peers

    async def reload(self) -> AdminResult:
        """Rescan the models folder everywhere."""
        return await self._everywhere("reload", "", self._reload)

    async def load(self, name: str) -> AdminResult:
        """Load (or reload) every version of `name` everywhere.

        Raises:
            ModelNotFoundError: no bundle of that name in the models folder (checked here first).
        """
        return await self._everywhere("load", name, self._load)

    async def unload(self, name: str) -> AdminResult:
        """Stop serving `name` everywhere until it is loaded again.

        Raises:
            ModelNotFoundError: this process does not serve `name`.
        """
        return await self._everywhere("unload", name, self._unload)

    def handlers(self) -> dict[str, Handler]:
        """What this process answers when a sibling relays an admin action."""

        def relayed(action: str) -> Handler:
            async def answer(argument: str) -> bytes:
                act = {"reload": self._reload, "load": self._load, "unload": self._unload}
                try:
                    report = await act[action](argument)
                except DropserveError as exc:
                    return json.dumps({"error": exc.message}).encode()
                return json.dumps(asdict(report)).encode()

            return answer

        return {action: relayed(action) for action in ("reload", "load", "unload")}

    async def _reload(self, _: str) -> ReloadReport:
        return await asyncio.to_thread(self.registry.reload)

    async def _load(self, name: str) -> ReloadReport:
        report = await asyncio.to_thread(self.registry.reload, name)
        if not (report.loaded or report.kept or report.failed):
            raise ModelNotFoundError(f"no bundle named '{name}' under the models folder")
        return report

    async def _unload(self, name: str) -> ReloadReport:
        versions = self.registry.unload(name)
        return ReloadReport(
            loaded=[], unloaded=[f"{name}/{v}" for v in versions], kept=[], failed={}
        )

    async def _everywhere(
        self, action: str, argument: str, act: Callable[[str], Awaitable[ReloadReport]]
    ) -> AdminResult:
        report = await act(argument)
        peers = self.peers
        if peers is None:
            return AdminResult(0, report)
        answers = await ask_siblings(peers, action, argument, timeout=_SIBLING_TIMEOUT_S)
        outcomes = [_outcome(index, answer) for index, answer in sorted(answers.items())]
        return AdminResult(peers.index, report, outcomes)


def _outcome(index: int, answer: bytes | None) -> ProcessOutcome:
    if not answer:
        return ProcessOutcome(index, None, "did not answer in time (restarting, or stuck)")
    try:
        body = json.loads(answer)
    except ValueError:
        return ProcessOutcome(index, None, "answered something that is not JSON")
    if "error" in body:
        return ProcessOutcome(index, None, str(body["error"]))
    return ProcessOutcome(index, ReloadReport(**body))

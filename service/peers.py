"""The server processes that share a port, and the channel between them.

When a host runs several processes on one port (service.hosting.supervisor), the kernel hands
each connection to one of them, so whatever must reach them all goes process to process: each
answers its siblings on a Unix socket in a private folder the host made. A request is one line,
`<command> [argument]`; the answer is the bytes written until the socket closes. The commands
are whatever the app registers: its metrics, and the admin actions that every process must
take (service.dataplane.admin).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Handler", "ProcessPeers", "answer_peers", "ask_siblings"]

logger = logging.getLogger(__name__)

# A command's handler: its argument in, the answer's bytes out.
Handler = Callable[[str], Awaitable[bytes]]

_MAX_REQUEST_BYTES = 4096


@dataclass(frozen=True)
class ProcessPeers:
    """This process's place among the server processes: its index, how many there are, the
    folder of their sockets, and how often the host has restarted this index."""

    index: int
    count: int
    folder: Path
    restarts: int = 0

    def socket(self, index: int) -> Path:
        return self.folder / f"{index}.sock"

    @property
    def siblings(self) -> list[int]:
        return [index for index in range(self.count) if index != self.index]


@asynccontextmanager
async def answer_peers(peers: ProcessPeers, handlers: Mapping[str, Handler]) -> AsyncIterator[None]:
    """Answer siblings' commands on this process's socket while the block runs."""
    path = peers.socket(peers.index)
    path.unlink(missing_ok=True)  # left by the process this one replaces

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline())[:_MAX_REQUEST_BYTES].decode().strip()
            command, _, argument = line.partition(" ")
            handler = handlers.get(command)
            if handler is None:
                logger.warning("a sibling process sent an unknown command %r", command)
                return
            writer.write(await handler(argument))
            await writer.drain()
        except (ConnectionError, UnicodeDecodeError):
            pass  # the asking process gave up, or sent garbage
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    try:
        yield
    finally:
        server.close()
        path.unlink(missing_ok=True)


async def _ask(path: Path, request: bytes, timeout: float, silent: bytes | None) -> bytes | None:
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        logger.debug("server process at %s is not running: %r", path, exc)
        return None
    try:
        async with asyncio.timeout(timeout):
            writer.write(request)
            await writer.drain()
            return await reader.read()
    except (OSError, TimeoutError) as exc:
        logger.warning("server process at %s did not answer: %r", path, exc)
        return silent
    finally:
        writer.close()


async def ask_siblings(
    peers: ProcessPeers,
    command: str,
    argument: str = "",
    *,
    timeout: float,
    silent: bytes | None = None,
) -> dict[int, bytes | None]:
    """Every sibling's answer to `command`, by index: None for one that is not running (no
    socket to connect to), `silent` for one that took the question but did not answer within
    `timeout` seconds (busy, or stuck)."""
    request = f"{command} {argument}".strip().encode() + b"\n"
    siblings = peers.siblings
    answers = await asyncio.gather(
        *(_ask(peers.socket(index), request, timeout, silent) for index in siblings)
    )
    return dict(zip(siblings, answers, strict=True))

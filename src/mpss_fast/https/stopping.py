"""Run until SIGTERM or SIGINT: the shutdown signal handling shared by ``mpss node`` and ``mpss kme-sim``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (handlers removed afterwards).

    Where the loop cannot take signal handlers (not the main thread, or Windows), the event is
    never set: the block then ends only when its task is cancelled.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform or thread
            pass
    try:
        yield stop
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)

"""Background tasks that never die silently: the node's refill, resume, expiry and commit loops.

:class:`Supervisor` runs each task's coroutine function; when it raises, the crash is logged
at ERROR (task name, exception type and message, traceback) and the task is started again
after a backoff (``delay_s``, doubled per crash in a row up to ``max_delay_s``). A run that
lasted ``healthy_s`` or more resets the count. After ``max_crashes`` crashes in a row the
supervisor gives up: it logs that at ERROR, sets :attr:`Supervisor.failed`, and the node
stops with an error (``mpss node`` exits 1) rather than run on without the task.

A coroutine that returns ends its task (``resume links`` does, once every neighbour was
told). Cancellation is never caught: closing the node cancels the tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("mpss_fast.node")


class Supervisor:
    """Starts named background tasks and restarts those that crash (see the module docstring)."""

    def __init__(self, *, delay_s: float, max_delay_s: float, max_crashes: int, healthy_s: float) -> None:
        self.delay_s = delay_s
        self.max_delay_s = max_delay_s
        self.max_crashes = max_crashes
        self.healthy_s = healthy_s
        self.restarts: dict[str, int] = {}
        """Restarts so far, per task name (tasks never restarted are absent)."""
        self.failure: str | None = None
        """Why the supervisor gave up (the first task that kept crashing), or ``None``."""
        self.failed = asyncio.Event()
        """Set when the supervisor gave up on a task."""
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Start ``run()`` as the task ``name``, restarted whenever it raises."""
        task = asyncio.create_task(self._supervise(name, run), name=name)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        """Cancel every task and wait for them (idempotent)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        crashes = 0
        while True:
            started = loop.time()
            try:
                await run()
                return
            except Exception as exc:  # anything but cancellation: a task must not end unseen
                if loop.time() - started >= self.healthy_s:
                    crashes = 0
                crashes += 1
                what = f"{type(exc).__name__}: {exc}"
                if crashes >= self.max_crashes:
                    log.error(
                        "task %r crashed %d times in a row (%s); giving up: the node stops",
                        name, crashes, what, exc_info=exc,
                    )  # fmt: skip
                    if self.failure is None:
                        self.failure = f"background task {name!r} crashed {crashes} times in a row, last with {what}"
                    self.failed.set()
                    return
                delay = min(self.max_delay_s, self.delay_s * 2 ** (crashes - 1))
                log.error(
                    "task %r crashed (%s); restarting it in %.2f s (crash %d of %d before the node stops)",
                    name, what, delay, crashes, self.max_crashes, exc_info=exc,
                )  # fmt: skip
                self.restarts[name] = self.restarts.get(name, 0) + 1
                await asyncio.sleep(delay)

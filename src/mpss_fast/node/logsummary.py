"""Rate-limited logging of what anyone on a link can cause at will: bad tags, refused routes, drops.

A forged packet must cost nothing, and that includes a log line: :class:`LogSummary` logs
the first event of each kind in an interval with its detail, counts the rest, and says
how many more there were when the interval has passed (``flush``, called periodically).
The kinds are a small, fixed set per node (a reason and a link of its topology), so the
counters stay bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 10.0
"""Seconds between two lines about one kind of event."""


class LogSummary:
    """Per kind: one WARNING line with its detail, then a count, summarised at most once per ``interval``."""

    def __init__(
        self,
        logger: logging.Logger,
        prefix: str,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._prefix = prefix
        self._interval = interval
        self._clock = clock
        self._since: dict[str, float] = {}  # kind -> when its line was logged
        self._more: dict[str, int] = {}  # kind -> events since that line

    def note(self, kind: str, detail: str) -> None:
        """One event of ``kind``: logged with ``detail`` if none of its kind was in this interval, else counted."""
        if kind in self._since:
            self._more[kind] += 1
            return
        self._since[kind] = self._clock()
        self._more[kind] = 0
        self._log.warning("%s: %s", self._prefix, detail)

    def flush(self) -> None:
        """Log the count of each kind whose interval has passed, and open a new interval for it."""
        now = self._clock()
        for kind, since in list(self._since.items()):
            if now - since < self._interval:
                continue
            more = self._more.pop(kind)
            del self._since[kind]
            if more:
                self._log.warning("%s: %d more: %s in the last %.0f s", self._prefix, more, kind, now - since)

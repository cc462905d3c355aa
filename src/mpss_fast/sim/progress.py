"""A progress bar for long runs: tqdm on stderr, only on a terminal and unless quiet."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress_bar(total: int, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """A ``progress(count)`` callable for :func:`mpss_fast.sim.run` that advances a tqdm bar.

    The bar is off (the callable does nothing) when ``quiet``, when ``stream`` (default
    stderr) is not a terminal, or when tqdm is not installed.
    """
    stream = sys.stderr if stream is None else stream
    if quiet or not stream.isatty():
        yield lambda count: None
        return
    try:
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        yield lambda count: None
        return
    bar = tqdm(total=total, file=stream, unit="session", desc="simulate", mininterval=0.2)
    try:
        yield bar.update
    finally:
        bar.close()

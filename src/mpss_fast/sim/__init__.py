"""A discrete-event simulator of MPSS key relay against single-path trusted relay (``mpss simulate``).

Needs simpy and networkx (``pip install 'mpss-fast[sim]'``); ``import mpss_fast`` alone
imports neither. See docs/simulator.md.
"""

from .adversary import Adversary, InvariantError
from .config import SimConfig, load_topology
from .metrics import SCHEMA, ModeResult, Results, Sample, format_table
from .modes import SessionRecord
from .plot import check_matplotlib, plot
from .progress import progress_bar
from .runner import run

__all__ = [
    "SCHEMA",
    "Adversary",
    "InvariantError",
    "ModeResult",
    "Results",
    "Sample",
    "SessionRecord",
    "SimConfig",
    "check_matplotlib",
    "format_table",
    "load_topology",
    "plot",
    "progress_bar",
    "run",
]

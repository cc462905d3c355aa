"""Type stub of the native kernels: they implement the contract in ``_kernels.pyi``."""

from ._kernels import *  # noqa: F403
from ._kernels import NAME as NAME

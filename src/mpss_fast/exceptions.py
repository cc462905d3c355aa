"""The one exception hierarchy shared by every backend.

Both backends raise these from the same checks in ``_validate``; messages name the
offending parameter and never contain secret or share bytes.
"""


class MpssError(Exception):
    """Base class of every error raised by mpss_fast."""


class ParameterError(MpssError, ValueError):
    """A parameter has the right type but an invalid value (k, n, poly, xs, sizes, buffers)."""


class ShareError(MpssError, ValueError):
    """A set of shares cannot be combined (too few, duplicate or zero x, unequal lengths)."""


class InputTypeError(MpssError, TypeError):
    """An argument has the wrong type or element type (e.g. ``str`` for bytes, int16 for uint8)."""


class BackendError(MpssError, ImportError):
    """The backend asked for with ``MPSS_FAST_BACKEND`` cannot be loaded."""

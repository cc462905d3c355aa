"""JSON request bodies, read the same way by every HTTP server of a node: malformed is 400, never 500.

The ETSI 014 server (and so the KME simulator, which is one) and the peer API read their
bodies with :func:`read_json`. Whatever the bytes, the answer is a value or an
:class:`~mpss_fast.exceptions.HttpBadRequestError` (400) with a message: bytes that are
not JSON, a body over the size limit, and a body nested deeper than :data:`MAX_JSON_DEPTH`
(``"[" * 100000`` would otherwise exhaust the parser's recursion and end as a 500). No
request of these interfaces needs more than a few levels.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..exceptions import HttpBadRequestError

MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects accepted in a request body."""

_REQUIRED = object()


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether ``data`` nests arrays/objects more than ``limit`` levels deep (level by level, no recursion)."""
    level = [data]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            values = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            below.extend(value for value in values if isinstance(value, (dict, list)))
        if not below:
            return False
        level = below
    return True


def parse_json(raw: bytes, *, empty: Any = _REQUIRED) -> Any:
    """``raw`` parsed as JSON (UTF-8, -16 or -32); an empty body is ``empty`` when given.

    Raises ``HttpBadRequestError`` (400) with the reason for anything else.
    """
    if not raw.strip():
        if empty is _REQUIRED:
            raise HttpBadRequestError("the request body is empty")
        return empty
    too_deep = f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        data = json.loads(raw)
    except RecursionError:
        raise HttpBadRequestError(too_deep) from None
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise HttpBadRequestError(f"the request body is not valid JSON: {exc}") from None
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise HttpBadRequestError(too_deep)
    return data


async def read_json(request: web.Request, *, max_bytes: int, empty: Any = _REQUIRED) -> Any:
    """The body of ``request`` through :func:`parse_json`; 400 when it is longer than ``max_bytes``."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise HttpBadRequestError("the request body is too large")
    raw = await request.read()  # aiohttp itself stops at the app's client_max_size (413)
    if len(raw) > max_bytes:
        raise HttpBadRequestError("the request body is too large")
    return parse_json(raw, empty=empty)

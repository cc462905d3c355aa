"""Build frozen slotted dataclass instances from values the parser has already checked.

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__`` and
then runs ``__post_init__``; on a parse that is most of the cost. The constructor made
here stores the fields through their slot descriptors and skips the checks, so it is
only for values that were checked on the way in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """A function taking ``cls``'s fields positionally and returning an instance, without checks."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    namespace.update({f"_set_{name}": cls.__dict__[name].__set__ for name in names})
    lines = [f"def make({', '.join(names)}):", "    obj = _new(_cls)"]
    lines += [f"    _set_{name}(obj, {name})" for name in names]
    lines.append("    return obj")
    # Generated like dataclasses' own __init__: unrolled code from our own field names only.
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["make"]  # type: ignore[no-any-return]

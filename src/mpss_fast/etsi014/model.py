"""ETSI GS QKD 014 data: the status and key containers, their checks, and the limits of a KME.

Shared by the server (``etsi014.server``), the client (``etsi014.client``) and the KME
simulator (``kme_sim``); no HTTP here, and no aiohttp import. See ``docs/etsi014.md``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import Etsi014BadRequestError, ParameterError

API_PREFIX = "/api/v1/keys"
"""Every ETSI 014 path starts with this; then ``/{SAE_ID}/status|enc_keys|dec_keys``."""

SAE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,128}\Z")
"""The SAE IDs accepted here: 1..128 letters, digits and ``. _ : @ -`` (no ``/``, no ``>``)."""

KeyList = list[tuple[uuid.UUID, bytes]]
"""Keys as (key ID, key bytes) pairs."""


def check_sae_id(value: Any, what: str = "SAE ID") -> str:
    """``value`` if it is a valid SAE ID, else :class:`Etsi014BadRequestError`."""
    if not isinstance(value, str) or SAE_ID_PATTERN.match(value) is None:
        raise Etsi014BadRequestError(f"{what} must be 1..128 characters of A-Z a-z 0-9 . _ : @ -")
    return value


@dataclass(frozen=True)
class KeyLimits:
    """What a KME accepts in one request (reported in its status)."""

    key_size: int = 256
    """Default key size in bits (when a request names none)."""
    min_key_size: int = 64
    max_key_size: int = 8192
    max_key_per_request: int = 128
    max_key_count: int = 100_000
    """Most keys the KME stores for one SAE pair."""
    max_SAE_ID_count: int = 0
    """Additional slave SAEs per request (0: key multicast is not supported)."""

    def __post_init__(self) -> None:
        for name in ("key_size", "min_key_size", "max_key_size", "max_key_per_request", "max_key_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, not {value!r}")
        for name in ("key_size", "min_key_size", "max_key_size"):
            if getattr(self, name) % 8:
                raise ParameterError(f"{name} must be a multiple of 8 bits")
        if not self.min_key_size <= self.key_size <= self.max_key_size:
            raise ParameterError("need min_key_size <= key_size <= max_key_size")
        if self.max_SAE_ID_count != 0:
            raise ParameterError("max_SAE_ID_count must be 0: key multicast to additional slave SAEs is not supported")

    def check_number(self, number: Any) -> int:
        """``number`` of keys asked for, checked: an integer in 1..max_key_per_request."""
        if isinstance(number, bool) or not isinstance(number, int):
            raise Etsi014BadRequestError("number must be an integer")
        if not 1 <= number <= self.max_key_per_request:
            raise Etsi014BadRequestError(f"number must be in 1..{self.max_key_per_request} (max_key_per_request)")
        return number

    def check_size(self, size: Any) -> int:
        """Key ``size`` in bits, checked: a multiple of 8 in min_key_size..max_key_size."""
        if isinstance(size, bool) or not isinstance(size, int):
            raise Etsi014BadRequestError("size must be an integer (bits)")
        if size % 8:
            raise Etsi014BadRequestError("size must be a multiple of 8 bits")
        if not self.min_key_size <= size <= self.max_key_size:
            raise Etsi014BadRequestError(f"size must be in {self.min_key_size}..{self.max_key_size} bits")
        return size


@dataclass(frozen=True)
class KeyStatus:
    """The ETSI 014 status container, field names as in the standard."""

    source_KME_ID: str
    target_KME_ID: str
    master_SAE_ID: str
    slave_SAE_ID: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int

    @classmethod
    def build(
        cls, limits: KeyLimits, *, source_kme: str, target_kme: str, master: str, slave: str, stored: int
    ) -> KeyStatus:
        """The status of one SAE pair with ``stored`` keys available under ``limits``."""
        return cls(
            source_KME_ID=source_kme,
            target_KME_ID=target_kme,
            master_SAE_ID=master,
            slave_SAE_ID=slave,
            key_size=limits.key_size,
            stored_key_count=stored,
            max_key_count=limits.max_key_count,
            max_key_per_request=limits.max_key_per_request,
            max_key_size=limits.max_key_size,
            min_key_size=limits.min_key_size,
            max_SAE_ID_count=limits.max_SAE_ID_count,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the standard's status container."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> KeyStatus:
        """Parse a status container; ``ValueError`` if a field is missing or has the wrong type."""
        if not isinstance(data, dict):
            raise ValueError("status is not a JSON object")
        fields: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            value = data.get(name)
            if kind == "str":
                if not isinstance(value, str):
                    raise ValueError(f"status field {name} is not a string")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"status field {name} is not an integer")
            fields[name] = value
        return cls(**fields)


def keys_to_json(keys: Sequence[tuple[uuid.UUID, bytes]]) -> dict[str, Any]:
    """The key container ``{"keys": [{"key_ID": "<uuid>", "key": "<base64>"}, ...]}``."""
    return {"keys": [{"key_ID": str(kid), "key": base64.b64encode(key).decode("ascii")} for kid, key in keys]}


def keys_from_json(data: Any) -> KeyList:
    """Parse a key container; ``ValueError`` (never quoting key bytes) if it is malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('the key container has no "keys" list')
    result: KeyList = []
    for i, item in enumerate(data["keys"]):
        if not isinstance(item, dict) or not all(isinstance(item.get(name), str) for name in ("key_ID", "key")):
            raise ValueError(f"keys[{i}] is not an object with string key_ID and key")
        kid = parse_key_id(item["key_ID"], ValueError)
        try:
            key = base64.b64decode(item["key"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"keys[{i}].key is not valid base64") from None
        result.append((kid, key))
    return result


def parse_key_id(value: Any, error: type[Exception] = Etsi014BadRequestError) -> uuid.UUID:
    """A key ID string in the canonical 36-character UUID form (any case), else ``error``."""
    if not isinstance(value, str) or len(value) != 36:
        raise error("a key_ID must be a UUID string such as 01234567-89ab-cdef-0123-456789abcdef")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error("a key_ID must be a UUID string such as 01234567-89ab-cdef-0123-456789abcdef") from None


def key_ids_to_json(key_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """The key ID container ``{"key_IDs": [{"key_ID": "<uuid>"}, ...]}``."""
    return {"key_IDs": [{"key_ID": str(kid)} for kid in key_ids]}


def key_ids_from_json(data: Any, limits: KeyLimits) -> list[uuid.UUID]:
    """Parse a dec_keys request body: 1..max_key_per_request distinct key IDs (else 400)."""
    if not isinstance(data, dict) or not isinstance(data.get("key_IDs"), list):
        raise Etsi014BadRequestError('the request body must be a JSON object with a "key_IDs" list')
    items = data["key_IDs"]
    if not isinstance(items, list) or not items:
        raise Etsi014BadRequestError("key_IDs must list at least one key_ID")
    ids = []
    for item in items:
        if not isinstance(item, dict) or "key_ID" not in item:
            raise Etsi014BadRequestError('each key_IDs entry must be an object {"key_ID": "<uuid>"}')
        ids.append(parse_key_id(item["key_ID"]))
    return check_key_ids(ids, limits)


def check_key_ids(ids: list[uuid.UUID], limits: KeyLimits) -> list[uuid.UUID]:
    """1..max_key_per_request IDs, no ID twice (else 400)."""
    if not ids:
        raise Etsi014BadRequestError("at least one key_ID is needed")
    if len(ids) > limits.max_key_per_request:
        raise Etsi014BadRequestError(f"at most {limits.max_key_per_request} key_IDs per request (max_key_per_request)")
    if len(set(ids)) != len(ids):
        raise Etsi014BadRequestError("a key_ID appears twice in the request")
    return ids

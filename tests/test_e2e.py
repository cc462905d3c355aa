"""The end-to-end key: HKDF-SHA256 of the number with the session ID in ``info``, against RFC 5869 written here."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest

from mpss_fast.e2e import DEFAULT_INFO, MAX_KEY_BYTES, derive_key
from mpss_fast.exceptions import InputTypeError, ParameterError

from .rng import seeded_rng

KEY_ID = uuid.UUID("6f1e3a52-9c1d-4b7e-8a0f-112233445566")
NUMBER = seeded_rng(b"e2e number")(32)


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 section 2: extract, then expand, with hmac/hashlib only."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_rfc5869_case_3_with_our_oracle() -> None:
    """The oracle itself against RFC 5869 A.3 (SHA-256, empty salt and info)."""
    okm = _hkdf_sha256(bytes([0x0B] * 22), b"", b"", 42)
    assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


@pytest.mark.parametrize("length", [1, 16, 32, 33, 64, 100, MAX_KEY_BYTES])
def test_matches_an_independent_hkdf(length: int) -> None:
    expected = _hkdf_sha256(NUMBER, b"", DEFAULT_INFO + KEY_ID.bytes, length)
    assert derive_key(NUMBER, KEY_ID, length=length) == expected
    assert derive_key(bytearray(NUMBER), KEY_ID.bytes, length=length) == expected
    other = _hkdf_sha256(NUMBER, b"", b"ipsec" + KEY_ID.bytes, length)
    assert derive_key(memoryview(NUMBER), KEY_ID, length=length, info=b"ipsec") == other


def test_deterministic_bound_to_session_id_and_label_and_not_the_number() -> None:
    key = derive_key(NUMBER, KEY_ID)
    assert len(key) == 32 and key == derive_key(NUMBER, KEY_ID)
    assert key != NUMBER
    assert key != derive_key(NUMBER, uuid.UUID(int=KEY_ID.int ^ 1))
    assert key != derive_key(NUMBER, KEY_ID, info=b"mpss e2e key2")
    assert key != derive_key(NUMBER[:-1] + bytes([NUMBER[-1] ^ 1]), KEY_ID)
    assert derive_key(NUMBER, KEY_ID, length=16) == key[:16]  # HKDF output is a prefix-stable stream


def test_argument_errors() -> None:
    with pytest.raises(ParameterError, match="empty"):
        derive_key(b"", KEY_ID)
    with pytest.raises(InputTypeError):
        derive_key("text", KEY_ID)
    with pytest.raises(InputTypeError, match="session_id"):
        derive_key(NUMBER, str(KEY_ID))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="session_id"):
        derive_key(NUMBER, b"short")
    for bad in (0, MAX_KEY_BYTES + 1):
        with pytest.raises(ParameterError, match="length"):
            derive_key(NUMBER, KEY_ID, length=bad)
    with pytest.raises(InputTypeError):
        derive_key(NUMBER, KEY_ID, length=32.0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        derive_key(NUMBER, KEY_ID, info="label")

"""RTSS shares (draft-mcgrew-tss-03): layout, round trips, interop with PyPI ``tss``, corruption, bad input."""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpss_fast import Engine, InputTypeError, ParameterError, ShareError
from mpss_fast import rtss as rtss_module
from mpss_fast.exceptions import IntegrityError, MalformedShareError
from mpss_fast.rtss import HASH_IDS, MAX_SUBSETS, RtssShare, rtss_combine, rtss_split
from tests.test_sharing import TSS_SECRET, TSS_SHARES

HASHES = ["sha256", "sha1", "none"]
DIGEST = {"sha256": 32, "sha1": 20, "none": 0}
HASH_TITLE = {"sha256": "SHA-256", "sha1": "SHA-1"}
IDENT = b"0123456789abcdef"


@pytest.fixture(scope="module")
def tss() -> ModuleType:
    """PyPI ``tss``, an independent implementation of the draft: a skip without it, a failure under NO_SKIPS."""
    try:
        import tss
    except ImportError:
        if os.environ.get("MPSS_FAST_NO_SKIPS") == "1":
            pytest.fail("MPSS_FAST_NO_SKIPS=1: the interop check needs PyPI tss (pip install tss)")
        pytest.skip("PyPI tss is not installed")
    return tss


def _header(share: bytes) -> tuple[bytes, int, int, int]:
    return struct.unpack(">16sBBH", share[:20])


def _flip(share: bytes, offset: int = -1) -> bytes:
    """The share with one value byte changed (the last by default)."""
    data = bytearray(share)
    data[offset] ^= 0x5A
    return bytes(data)


# -- round trips and layout --------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize(("k", "n", "size"), [(2, 2, 1), (2, 3, 32), (3, 5, 100), (5, 7, 1000)])
def test_round_trip_every_subset(engine: Engine, hash_name: str, k: int, n: int, size: int) -> None:
    secret = os.urandom(size)
    shares = rtss_split(secret, k, n, hash=hash_name, engine=engine)
    assert len(shares) == n
    for subset in itertools.combinations(shares, k):
        assert rtss_combine(subset, engine=engine) == secret
    assert rtss_combine(shares[::-1], engine=engine) == secret
    assert rtss_combine([RtssShare.decode(s) for s in shares[:k]]) == secret


@pytest.mark.parametrize("hash_name", HASHES)
def test_split_layout(engine: Engine, hash_name: str) -> None:
    secret = os.urandom(45)
    shares = rtss_split(secret, 3, 4, identifier=IDENT, hash=hash_name, engine=engine)
    length = 1 + len(secret) + DIGEST[hash_name]
    for x, share in enumerate(shares, 1):
        assert len(share) == 20 + length
        assert _header(share) == (IDENT, HASH_IDS[hash_name], 3, length)
        assert share[20] == x
    # The shared data is secret || H(secret), in the AES field.
    data = engine.combine([s[20:] for s in shares[:3]], poly=0x11B)
    digest = hashlib.new(hash_name, secret).digest() if hash_name != "none" else b""
    assert data == secret + digest


def test_identifier_default_is_random_and_short_ones_are_padded(engine: Engine) -> None:
    a, b = rtss_split(b"key", 2, 2, engine=engine), rtss_split(b"key", 2, 2, engine=engine)
    assert a[0][:16] != b[0][:16]
    assert a[0][:16] == a[1][:16]
    assert rtss_split(b"key", 2, 2, identifier=b"id", engine=engine)[0][:16] == b"id" + bytes(14)
    assert rtss_split(b"key", 2, 2, identifier=bytearray(IDENT), engine=engine)[0][:16] == IDENT


def test_largest_secret(engine: Engine) -> None:
    for hash_name in HASHES:
        secret = os.urandom(65534 - DIGEST[hash_name])
        shares = rtss_split(secret, 2, 3, hash=hash_name, engine=engine)
        assert _header(shares[0])[3] == 0xFFFF
        assert rtss_combine(shares[1:], engine=engine) == secret


def test_draft_vector_as_rtss_share() -> None:
    """The draft's TSS test case (section 9) in RTSS headers with hash "none" combines to its secret."""
    header = IDENT + bytes([0, 2]) + struct.pack(">H", len(TSS_SHARES[0]))
    assert rtss_combine([header + s for s in TSS_SHARES]) == TSS_SECRET


# -- one share: byte-exact decode and encode -------------------------------------------------------


def test_decode_encode_hand_built_share() -> None:
    raw = bytes.fromhex("00112233445566778899aabbccddeeff0003000507deadbeef")
    share = RtssShare.decode(raw)
    assert share == RtssShare(bytes.fromhex("00112233445566778899aabbccddeeff"), 0, 3, 7, bytes.fromhex("deadbeef"))
    assert (share.hash_id, share.threshold, share.index) == (0, 3, 7)
    assert share.encode() == raw
    assert RtssShare.decode(memoryview(raw)) == share


def test_decode_encode_sha256_share() -> None:
    value = bytes(range(40))
    raw = IDENT + bytes([2, 255]) + (41).to_bytes(2, "big") + bytes([255]) + value
    share = RtssShare.decode(bytearray(raw))
    assert (share.identifier, share.hash_id, share.threshold, share.index, share.value) == (IDENT, 2, 255, 255, value)
    assert share.encode() == raw


def test_repr_holds_no_share_value() -> None:
    share = RtssShare(IDENT, 0, 2, 1, b"SECRETVALUE")
    assert "SECRETVALUE" not in repr(share)


# -- interop with PyPI tss ------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize("size", [1, 32, 1000])
def test_tss_shares_combine_here(engine: Engine, tss: ModuleType, hash_name: str, size: int) -> None:
    secret = os.urandom(size)
    theirs = tss.share_secret(3, 5, secret, IDENT, HASH_IDS[hash_name])
    for subset in itertools.combinations(theirs, 3):
        assert rtss_combine(subset, engine=engine) == secret
    assert rtss_combine(theirs, engine=engine) == secret
    ours = rtss_split(secret, 3, 5, identifier=IDENT, hash=hash_name, engine=engine)
    assert [s[:21] for s in ours] == [s[:21] for s in theirs]  # same header and index byte


@pytest.mark.parametrize("hash_name", HASHES)
@pytest.mark.parametrize("size", [1, 32, 1000])
def test_our_shares_combine_in_tss(engine: Engine, tss: ModuleType, hash_name: str, size: int) -> None:
    secret = os.urandom(size)
    ours = rtss_split(secret, 3, 5, identifier=IDENT, hash=hash_name, engine=engine)
    for subset in itertools.combinations(ours, 3):
        assert tss.reconstruct_secret(list(subset)) == secret


def test_tss_detects_our_hash(tss: ModuleType) -> None:
    """A corrupted share of ours fails tss's own SHA-256 check: the hash is where tss expects it."""
    ours = rtss_split(os.urandom(20), 2, 2, hash="sha256")
    with pytest.raises(tss.TSSError, match="hash"):
        tss.reconstruct_secret([_flip(ours[0]), ours[1]])


# -- corruption --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha1"])
def test_corrupt_share_detected_with_k_shares(engine: Engine, hash_name: str) -> None:
    secret = b"TOPSECRETVALUE!!" * 2
    shares = rtss_split(secret, 3, 5, hash=hash_name, engine=engine)
    for offset in (21, 30, -1):  # first value byte, inside the secret, inside the hash
        with pytest.raises(IntegrityError) as info:
            rtss_combine([shares[0], _flip(shares[1], offset), shares[2]], engine=engine)
        message = str(info.value)
        assert message.startswith(f"the {HASH_TITLE[hash_name]} check fails for the 3 shares: ")
        assert "TOPSECRET" not in message and secret.hex()[:8] not in message
        assert isinstance(info.value, ShareError)


@pytest.mark.parametrize("bad", [[0], [4], [1, 3]])
def test_corrupt_shares_routed_around(engine: Engine, bad: list[int]) -> None:
    secret = os.urandom(64)
    shares = rtss_split(secret, 3, 5, engine=engine)
    damaged = [_flip(s, 25) if i in bad else s for i, s in enumerate(shares)]
    assert rtss_combine(damaged, engine=engine) == secret
    assert rtss_combine(damaged[::-1], engine=engine) == secret


def test_too_many_corrupt_shares(engine: Engine) -> None:
    shares = rtss_split(os.urandom(64), 3, 5, engine=engine)
    damaged = [_flip(s) if i < 3 else s for i, s in enumerate(shares)]
    with pytest.raises(IntegrityError, match="all 10 subsets of 3 of the 5 shares"):
        rtss_combine(damaged, engine=engine)


def test_subset_search_is_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_SUBSETS == 4096
    shares = rtss_split(os.urandom(16), 3, 5, engine=engine)
    damaged = [_flip(shares[0]), *shares[1:]]
    monkeypatch.setattr(rtss_module, "MAX_SUBSETS", 2)
    with pytest.raises(IntegrityError, match="2 of 10 subsets"):
        rtss_combine(damaged, engine=engine)  # (0,1,2), (0,1,3) hold the bad share; (0,1,4) is never tried
    monkeypatch.setattr(rtss_module, "MAX_SUBSETS", 7)
    assert rtss_combine(damaged, engine=engine) == rtss_combine(shares[1:4], engine=engine)


def test_hash_none_cannot_detect_corruption(engine: Engine) -> None:
    secret = os.urandom(32)
    shares = rtss_split(secret, 2, 3, hash="none", engine=engine)
    assert rtss_combine([_flip(shares[0]), shares[1]], engine=engine) != secret
    # The first k shares are used; a corrupt later one is not looked at.
    assert rtss_combine([shares[0], shares[1], _flip(shares[2])], engine=engine) == secret


# -- sets of shares that cannot be combined ---------------------------------------------------------------


def test_too_few_shares(engine: Engine) -> None:
    shares = rtss_split(os.urandom(10), 3, 5, engine=engine)
    with pytest.raises(ShareError, match=r"need at least 3 shares \(the threshold\), got 2$"):
        rtss_combine(shares[:2], engine=engine)
    with pytest.raises(ShareError, match=r"need at least 3 shares .*got 2 distinct"):
        rtss_combine([shares[0], shares[1], shares[0]], engine=engine)
    with pytest.raises(ShareError, match="no shares"):
        rtss_combine([], engine=engine)


def test_identical_duplicates_are_ignored(engine: Engine) -> None:
    secret = os.urandom(10)
    shares = rtss_split(secret, 2, 3, engine=engine)
    assert rtss_combine([shares[0], shares[0], shares[2]], engine=engine) == secret


def test_conflicting_duplicate_index(engine: Engine) -> None:
    shares = rtss_split(os.urandom(10), 2, 3, engine=engine)
    with pytest.raises(ShareError, match=r"shares\[2\] has index 1 like another share"):
        rtss_combine([shares[0], shares[1], _flip(shares[0])], engine=engine)


def _share(identifier: bytes = IDENT, hash_id: int = 0, threshold: int = 2, index: int = 1, size: int = 40) -> bytes:
    """Share bytes packed by hand (so that malformed ones can be made too)."""
    return struct.pack(">16sBBHB", identifier, hash_id, threshold, 1 + size, index) + bytes(size)


@pytest.mark.parametrize(
    ("other", "what"),
    [
        (_share(identifier=b"X" * 16, index=2), "identifier"),
        (_share(hash_id=2, index=2), "hash algorithm"),
        (_share(threshold=3, index=2), "threshold"),
        (_share(size=41, index=2), "Share Length"),
    ],
)
def test_shares_of_different_secrets(engine: Engine, other: bytes, what: str) -> None:
    with pytest.raises(ShareError, match=rf"shares\[1\] has a different {what} than shares\[0\]") as info:
        rtss_combine([_share(), other], engine=engine)
    assert type(info.value) is ShareError


def test_split_of_two_secrets_cannot_mix(engine: Engine) -> None:
    a = rtss_split(os.urandom(10), 2, 3, engine=engine)
    b = rtss_split(os.urandom(10), 2, 3, engine=engine)
    with pytest.raises(ShareError, match="different identifier"):
        rtss_combine([a[0], b[1]], engine=engine)


# -- malformed shares ----------------------------------------------------------------------------------------

VALID = _share(hash_id=0, threshold=3, index=7, size=4)  # 20-byte header + index + 4 value bytes


def _with(offset: int, value: int) -> bytes:
    data = bytearray(VALID)
    data[offset] = value
    return bytes(data)


MALFORMED = {
    "empty": (b"", "at least 22 bytes"),
    "header cut short": (VALID[:19], "at least 22 bytes"),
    "header only": (VALID[:20], "at least 22 bytes"),
    "index without value": (VALID[:18] + b"\x00\x01" + b"\x07", "at least 22 bytes"),
    "value cut short": (VALID[:-1], "says 5 bytes but 4 follow"),
    "trailing byte": (VALID + b"\x00", "says 5 bytes but 6 follow"),
    "length field zero": (VALID[:18] + b"\x00\x00" + VALID[20:], "says 0 bytes"),
    "length field too big": (VALID[:18] + b"\xff\xff" + VALID[20:], "says 65535 bytes"),
    "hash id 3": (_with(16, 3), "unknown hash algorithm identifier 3"),
    "hash id 255": (_with(16, 255), "unknown hash algorithm identifier 255"),
    "threshold 0": (_with(17, 0), "threshold must be in 2..255, not 0"),
    "threshold 1": (_with(17, 1), "threshold must be in 2..255, not 1"),
    "index 0": (_with(20, 0), "index must be in 1..255, not 0"),
    "sha256 value shorter than its hash": (_share(hash_id=2, size=31), "with hash SHA-256 it must be 32.."),
    "sha1 value shorter than its hash": (_share(hash_id=1, size=19), "with hash SHA-1 it must be 20.."),
}


@pytest.mark.parametrize(("data", "needle"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_share(engine: Engine, data: bytes, needle: str) -> None:
    with pytest.raises(MalformedShareError, match=needle):
        RtssShare.decode(data)
    with pytest.raises(MalformedShareError, match=r"^shares\[1\]: .*" + needle):
        rtss_combine([_share(threshold=3, index=1, size=4), data, _share(threshold=3, index=2, size=4)], engine=engine)


def test_every_prefix_of_a_share_is_malformed() -> None:
    share = rtss_split(os.urandom(30), 2, 2)[0]
    for cut in range(len(share)):
        with pytest.raises(MalformedShareError):
            RtssShare.decode(share[:cut])
    assert RtssShare.decode(share).encode() == share


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_or_raise_malformed(data: bytes) -> None:
    try:
        share = RtssShare.decode(data)
    except MalformedShareError:
        return
    assert share.encode() == data


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"identifier": b"x" * 15}, MalformedShareError, "identifier must be 16 bytes"),
        ({"hash_id": 7}, MalformedShareError, "unknown hash"),
        ({"threshold": 256}, MalformedShareError, "threshold"),
        ({"index": 256}, MalformedShareError, "index"),
        ({"value": b""}, MalformedShareError, "share value is 0 bytes"),
        ({"value": bytes(65535)}, MalformedShareError, "share value is 65535 bytes"),
        ({"identifier": "x" * 16}, InputTypeError, "identifier"),
        ({"threshold": 2.0}, InputTypeError, "threshold"),
        ({"value": "abc"}, InputTypeError, "value"),
    ],
)
def test_share_constructor_checks(kwargs: dict[str, object], error: type[Exception], needle: str) -> None:
    fields: dict[str, object] = {"identifier": IDENT, "hash_id": 0, "threshold": 2, "index": 1, "value": b"v"}
    fields.update(kwargs)
    with pytest.raises(error, match=needle):
        RtssShare(**fields)  # type: ignore[arg-type]


# -- bad arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "needle"),
    [
        ((b"s", 3, 2), {}, ParameterError, "k"),
        ((b"s", 1, 2), {}, ParameterError, "k"),
        ((b"s", 2, 256), {}, ParameterError, "n"),
        ((b"", 2, 3), {}, ParameterError, "secret is 0 bytes"),
        ((bytes(65503), 2, 3), {}, ParameterError, "secret is 65503 bytes; RTSS with hash sha256 takes 1..65502"),
        ((bytes(65515), 2, 3), {"hash": "sha1"}, ParameterError, "takes 1..65514"),
        ((bytes(65535), 2, 3), {"hash": "none"}, ParameterError, "takes 1..65534"),
        (("secret", 2, 3), {}, InputTypeError, "secret"),
        ((b"s", 2, 3), {"hash": "md5"}, ParameterError, "hash must be one of none, sha1, sha256"),
        ((b"s", 2, 3), {"hash": "SHA256"}, ParameterError, "hash must be one of"),
        ((b"s", 2, 3), {"hash": 2}, InputTypeError, "hash must be a str"),
        ((b"s", 2, 3), {"identifier": bytes(17)}, ParameterError, "at most 16 bytes"),
        ((b"s", 2, 3), {"identifier": "id"}, InputTypeError, "identifier"),
        ((b"s", 2, 3), {"engine": "pure"}, InputTypeError, "engine"),
    ],
)
def test_split_argument_errors(args: tuple, kwargs: dict, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        rtss_split(*args, **kwargs)


@pytest.mark.parametrize("shares", [b"share", "share", None, 5])
def test_combine_wants_a_sequence(shares: object) -> None:
    with pytest.raises(InputTypeError, match="shares must be a sequence"):
        rtss_combine(shares)  # type: ignore[arg-type]


def test_combine_rejects_a_non_engine() -> None:
    with pytest.raises(InputTypeError, match="engine"):
        rtss_combine(rtss_split(b"s", 2, 2), engine=object())  # type: ignore[arg-type]


def test_combine_share_of_wrong_type() -> None:
    with pytest.raises(InputTypeError, match="share"):
        rtss_combine([_share(), "not bytes"])

"""Destination sessions: the check, duplicates, conflicts, late shares, timeouts, robust reconstruction."""

from __future__ import annotations

import hashlib
import threading
import uuid

import numpy as np
import pytest

from mpss_fast import Engine
from mpss_fast.e2e import derive_key
from mpss_fast.exceptions import (
    BadFieldError,
    ConflictError,
    IntegrityError,
    SessionTimeoutError,
    ShareError,
    UncorrectableError,
)
from mpss_fast.relay import (
    CHECK_BYTES,
    Arrival,
    Delivery,
    Destination,
    Failure,
    LinkKeyPool,
    ShareMessage,
    hop_key_bytes,
    number_check,
    open_into,
    relay,
    seal,
    seal_shares,
)
from mpss_fast.wire import MpssOption

from .rng import seeded_rng

SESSION = uuid.UUID("0badc0de-0000-4000-8000-000000000001")
NUMBER = seeded_rng(b"the number")(32)


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _link(name: str) -> tuple[LinkKeyPool, LinkKeyPool]:
    stream = seeded_rng(name.encode())(1 << 12)
    return LinkKeyPool(name, stream), LinkKeyPool(name, stream)


def _shared(number: bytes, k: int, n: int, poly: int = 0x11B, *, check: bool = True) -> np.ndarray:
    """The documented layout, built independently: shares (n, L + 16) of number || SHA-256(number)[:16]."""
    data = number + hashlib.sha256(number).digest()[:16] if check else number
    rng = seeded_rng(b"coefficients" + number)
    return (
        Engine("pure")
        .split_array(np.frombuffer(data, dtype=np.uint8).reshape(1, -1), k, n, poly=poly, rng=rng)[:, 0, :]
        .copy()
    )


def _message(values: np.ndarray, x: int, k: int, *, path: int | None = None, link: str = "", poly: int = 0x11B):
    """Share x sealed on a fresh last link; returns (message, the destination's pool for it)."""
    n, length = values.shape
    tx, rx = _link(link or f"path{x}-{path}")
    option = MpssOption(
        poly=poly, k=k, n=n, x=x, path_id=x - 1 if path is None else path, share_len=length, session_id=SESSION.bytes
    )
    return seal(option, values[x - 1], tx), rx


def _open_all(dest: Destination, values: np.ndarray, k: int, xs, **kw):
    return [dest.open(*_message(values, x, k, **kw)) for x in xs]


@pytest.mark.parametrize("poly", [0x11B, 0x11D])
def test_all_n_shares_with_one_corrupted_are_corrected_and_its_path_named(engine: Engine, poly: int) -> None:
    values = _shared(NUMBER, 3, 5, poly)
    values[3, 5] ^= 0x20  # share x=4, on path 3, changed by a compromised relay
    dest = Destination(engine=engine)
    receipts = _open_all(dest, values, 3, range(1, 6), poly=poly)
    assert [r.status for r in receipts] == [Arrival.NEW] * 5
    assert receipts[-1].complete and receipts[-1].ready and receipts[-1].shares == 5
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.session_id == SESSION
    assert delivery.bad_paths == (3,) and delivery.bad_xs == (4,)
    assert delivery.used_xs == (1, 2, 3, 5)
    assert dest.pending() == ()


def test_a_compromised_relay_changes_a_share_and_the_destination_corrects_it() -> None:
    """Real hops: the relay on path 2 opens the share, alters it and re-seals it under valid tags."""
    paths = [(_link(f"S-R{i}"), _link(f"R{i}-D")) for i in range(5)]
    messages = seal_shares(NUMBER, 3, [p[0][0] for p in paths], session_id=SESSION, path_ids=[10, 11, 12, 13, 14])
    dest = Destination()
    for i, (message, ((_, rx1), (tx2, rx2))) in enumerate(zip(messages, paths, strict=True)):
        if i == 2:
            y = bytearray(message.option.share_len)
            open_into(message, rx1, y)
            y[0] ^= 1
            message = seal(message.option, y, tx2)
        else:
            message = relay(message, rx1, tx2)
        dest.open(message, rx2)
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_paths == (12,) and delivery.bad_xs == (3,)


def test_exactly_k_with_a_bad_share_fails_the_check_then_more_shares_correct_it() -> None:
    values = _shared(NUMBER, 3, 5)
    values[0] ^= 0x01
    dest = Destination()
    _open_all(dest, values, 3, [1, 2, 3])
    with pytest.raises(IntegrityError, match="kept for more shares"):
        dest.deliver(SESSION)
    assert dest.pending() == (SESSION,)
    _open_all(dest, values, 3, [4, 5])
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_paths == (0,) and delivery.used_xs == (2, 3, 4, 5)


def test_too_many_corrupted_shares_are_detected_never_delivered() -> None:
    values = _shared(NUMBER, 2, 5)  # one good share: fewer than k, nothing can rebuild the number
    values[[1, 2, 3, 4]] ^= 0x80  # the four bad ones even agree with each other (a shifted polynomial)
    dest = Destination()
    _open_all(dest, values, 2, range(1, 6))
    with pytest.raises(IntegrityError, match="session is wiped"):
        dest.deliver(SESSION)
    assert dest.pending() == ()  # every index arrived: nothing more can help


def test_check_guided_search_corrects_what_the_code_alone_cannot() -> None:
    # k=2 of 5 with two bad shares: Berlekamp-Welch corrects one; the check finds the good pair.
    values = _shared(NUMBER, 2, 5)
    values[[1, 3]] ^= 0x80
    dest = Destination()
    _open_all(dest, values, 2, range(1, 6))
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_xs == (2, 4) and delivery.used_xs == (1, 3, 5)
    # Without the check nothing says which pair is right.
    plain = _shared(NUMBER, 2, 5, check=False)
    plain[[1, 3]] ^= 0x80
    dest = Destination(check=False)
    _open_all(dest, plain, 2, range(1, 6))
    with pytest.raises(UncorrectableError):
        dest.deliver(SESSION)


def test_one_bad_share_of_three_with_threshold_two_is_found() -> None:
    # The node's default (k=2, n=3): no code redundancy to correct with, the check alone names the path.
    for bad in range(3):
        values = _shared(NUMBER, 2, 3)
        values[bad, 5] ^= 0x04
        dest = Destination()
        _open_all(dest, values, 2, [1, 2, 3])
        delivery = dest.deliver(SESSION)
        assert delivery.number == NUMBER and delivery.bad_xs == (bad + 1,) and delivery.bad_paths == (bad,)


def test_miscorrection_beyond_the_bound_is_caught_by_the_check() -> None:
    """Two of five shares (k=3) corrupted: decoding may land on a wrong codeword; the check refuses it
    and the search finds the three good shares. With three corrupted, only two are good: refused."""
    values = _shared(NUMBER, 3, 5)
    noise = np.frombuffer(hashlib.sha512(b"noise").digest(), dtype=np.uint8)[: values.shape[1]] | 1
    values[0] ^= noise
    values[1] ^= noise[::-1]
    dest = Destination()
    _open_all(dest, values, 3, range(1, 6))
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_xs == (1, 2) and delivery.used_xs == (3, 4, 5)
    values[2] ^= noise
    dest = Destination()
    _open_all(dest, values, 3, range(1, 6))
    with pytest.raises((UncorrectableError, IntegrityError)):
        dest.deliver(SESSION)


def test_colluding_corruption_that_vanishes_at_zero_names_suspects() -> None:
    """Beyond the decoding radius two colluding paths can make a second polynomial pass the check.

    Adding the same c to shares x=1 and x=2 of a 3-of-5 split leaves the polynomial
    through x=1,2,3 at the right number (the Lagrange weights of x=1,2 at 0 sum to 0
    there), so {1,2,3} and {3,4,5} both pass: the number is right, and every share off
    either polynomial is named, honest ones included.
    """
    values = _shared(NUMBER, 3, 5)
    values[[0, 1]] ^= 0x33
    dest = Destination()
    _open_all(dest, values, 3, range(1, 6))
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_xs == (1, 2, 4, 5)


def test_retransmission_is_a_duplicate_not_an_error() -> None:
    values = _shared(NUMBER, 2, 3)
    dest = Destination()
    first = dest.open(*_message(values, 1, 2, path=7, link="a"))
    message, rx = _message(values, 1, 2, path=8, link="b")  # the same bytes on another link
    again = dest.open(message, rx)
    assert (first.status, again.status) == (Arrival.NEW, Arrival.DUPLICATE)
    assert again.earlier_paths == (7,) and again.shares == 1 and not again.ready
    assert rx.position == hop_key_bytes(len(values[0]))  # its key material is consumed all the same
    dest.open(*_message(values, 2, 2))
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.duplicates == 1 and delivery.bad_paths == ()


def test_conflicting_copies_are_set_aside_and_judged_after_delivery() -> None:
    values = _shared(NUMBER, 3, 5)
    forged = values.copy()
    forged[1] ^= 0x5A
    dest = Destination()
    dest.open(*_message(forged, 2, 3, path=21, link="forged"))
    conflict = dest.open(*_message(values, 2, 3, path=1, link="genuine"))
    assert conflict.status is Arrival.CONFLICT and conflict.earlier_paths == (21,) and conflict.shares == 0
    _open_all(dest, values, 3, [1, 3, 4, 5])
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER
    assert delivery.conflicts == (2,) and delivery.used_xs == (1, 3, 4, 5)
    assert delivery.bad_paths == (21,)  # the genuine copy's path is not blamed


def test_conflicts_leaving_fewer_than_k_usable_shares() -> None:
    values = _shared(NUMBER, 2, 3)
    forged = values ^ 1
    dest = Destination()
    dest.open(*_message(values, 1, 2))
    dest.open(*_message(values, 2, 2, link="a"))
    dest.open(*_message(forged, 2, 2, link="b", path=9))
    assert not dest.ready(SESSION)
    with pytest.raises(ConflictError, match=r"\[2\]"):
        dest.deliver(SESSION)
    dest.open(*_message(values, 3, 2))
    delivery = dest.deliver(SESSION)
    assert delivery.number == NUMBER and delivery.bad_paths == (9,) and delivery.used_xs == (1, 3)


def test_late_shares_are_reported_and_wiped_never_raised() -> None:
    values = _shared(NUMBER, 2, 4)
    dest = Destination()
    _open_all(dest, values, 2, [1, 2])
    assert dest.rebuild(SESSION) == NUMBER
    message, rx = _message(values, 3, 2)
    late = dest.open(message, rx)
    assert late.status is Arrival.LATE and not late.ready and not late.complete
    assert rx.position == hop_key_bytes(len(values[0]))  # consumed
    dest.discard(uuid.UUID(int=5))  # unknown: nothing happens
    with pytest.raises(ShareError, match="already delivered"):
        dest.deliver(SESSION)


def test_late_after_discard() -> None:
    values = _shared(NUMBER, 2, 3)
    dest = Destination()
    dest.open(*_message(values, 1, 2))
    dest.discard(SESSION)
    assert dest.open(*_message(values, 2, 2)).status is Arrival.LATE
    assert dest.pending() == ()


def test_timeout_with_too_few_shares_fails_and_later_shares_are_late() -> None:
    clock = Clock()
    values = _shared(NUMBER, 3, 5)
    dest = Destination(timeout=2.0, clock=clock)
    _open_all(dest, values, 3, [1, 2])
    clock.now += 1.9
    assert dest.expire() == []
    clock.now += 0.1
    assert dest.open(*_message(values, 3, 3)).status is Arrival.LATE  # past the deadline
    (failure,) = dest.expire()
    assert isinstance(failure, Failure) and failure.session_id == SESSION
    assert isinstance(failure.error, SessionTimeoutError) and "2 of the 3" in str(failure.error)
    assert dest.pending() == ()
    assert dest.open(*_message(values, 4, 3)).status is Arrival.LATE


def test_waiting_for_all_n_then_the_deadline_delivers_what_arrived() -> None:
    clock = Clock()
    values = _shared(NUMBER, 2, 5)
    values[0] ^= 4
    dest = Destination(timeout=5.0, clock=clock)
    receipts = _open_all(dest, values, 2, [1, 2, 3, 4])  # 4 of 5 shares, threshold 2: one error corrected
    assert receipts[-1].ready and not receipts[-1].complete
    clock.now += 5
    (delivery,) = dest.expire()
    assert isinstance(delivery, Delivery)
    assert delivery.number == NUMBER and delivery.bad_paths == (0,)


def test_deliver_past_the_deadline() -> None:
    clock = Clock()
    values = _shared(NUMBER, 3, 4)
    dest = Destination(timeout=1, clock=clock)
    _open_all(dest, values, 3, [1, 2])
    clock.now += 1
    with pytest.raises(SessionTimeoutError):
        dest.deliver(SESSION)
    assert dest.pending() == ()


def test_finished_sessions_are_forgotten_after_a_timeout() -> None:
    clock = Clock()
    values = _shared(NUMBER, 2, 3)
    dest = Destination(timeout=1, clock=clock)
    _open_all(dest, values, 2, [1, 2])
    dest.deliver(SESSION)
    clock.now += 0.5
    assert dest.open(*_message(values, 3, 2)).status is Arrival.LATE
    clock.now += 0.5
    stray = dest.open(*_message(values, 3, 2, link="again"))  # remembered no longer: a new session, which expires
    assert stray.status is Arrival.NEW
    clock.now += 1
    (failure,) = dest.expire()
    assert isinstance(failure.error, SessionTimeoutError)


def test_without_the_check_the_destination_returns_the_shared_value() -> None:
    """A check-less destination fed checked shares gets number || SHA-256(number)[:16], as documented."""
    pools = [_link(f"L{i}") for i in range(3)]
    messages = seal_shares(NUMBER, 2, [tx for tx, _ in pools], session_id=SESSION)
    assert {m.option.share_len for m in messages} == {len(NUMBER) + CHECK_BYTES}
    dest = Destination(check=False)
    for message, (_, rx) in zip(messages, pools, strict=True):
        dest.open(message, rx)
    assert dest.rebuild(SESSION) == NUMBER + hashlib.sha256(NUMBER).digest()[:16] == NUMBER + number_check(NUMBER)


def test_checked_destination_refuses_unchecked_shares() -> None:
    pools = [_link(f"U{i}") for i in range(3)]
    messages = seal_shares(NUMBER, 2, [tx for tx, _ in pools], session_id=SESSION, check=False)
    assert messages[0].option.share_len == len(NUMBER)
    dest = Destination()
    for message, (_, rx) in zip(messages[:2], pools[:2], strict=True):
        dest.open(message, rx)
    with pytest.raises(IntegrityError):
        dest.deliver(SESSION)
    short = seal_shares(bytes(8), 2, [tx for tx, _ in pools], check=False)
    with pytest.raises(BadFieldError, match="too short"):
        dest.open(short[2], pools[2][1])


def test_unchecked_end_to_end() -> None:
    pools = [_link(f"V{i}") for i in range(3)]
    messages = seal_shares(NUMBER, 2, [tx for tx, _ in pools], session_id=SESSION, check=False)
    dest = Destination(check=False)
    for message, (_, rx) in zip(messages, pools, strict=True):
        dest.open(message, rx)
    assert dest.deliver(SESSION).number == NUMBER


def test_index_beyond_n_is_refused() -> None:
    values = _shared(NUMBER, 2, 3)
    tx, rx = _link("x9")
    option = MpssOption(poly=0x11B, k=2, n=3, x=9, path_id=0, share_len=48, session_id=SESSION.bytes)
    dest = Destination()
    dest.open(*_message(values, 1, 2))
    with pytest.raises(BadFieldError, match="exceeds"):
        dest.open(seal(option, values[0], tx), rx)


def test_delivery_key_and_reprs_hold_no_secret() -> None:
    values = _shared(NUMBER, 2, 3)
    dest = Destination()
    receipts = _open_all(dest, values, 2, [1, 2])
    sessions = dest._sessions  # white box: the buffers the destination owns
    buffers = [c.value for held in sessions[SESSION.bytes].copies.values() for c in held]
    delivery = dest.deliver(SESSION)
    assert all(not any(b) for b in buffers)  # wiped
    assert delivery.key() == derive_key(NUMBER, SESSION)
    assert delivery.key(length=16, info=b"other") == derive_key(NUMBER, SESSION, length=16, info=b"other")
    for text in (repr(delivery), str(delivery), *map(repr, receipts)):
        assert NUMBER.hex() not in text and repr(NUMBER) not in text
        for row in values:
            assert row.tobytes().hex()[:16] not in text


def test_error_messages_hold_no_share_bytes() -> None:
    values = _shared(NUMBER, 2, 2)
    values[0] ^= 0x0F
    dest = Destination()
    _open_all(dest, values, 2, [1, 2])
    with pytest.raises(IntegrityError) as info:
        dest.deliver(SESSION)
    text = str(info.value)
    assert str(SESSION) in text and NUMBER.hex()[:8] not in text
    for row in values:
        assert row.tobytes().hex()[:8] not in text


def test_concurrent_opens_and_one_delivery() -> None:
    values = _shared(NUMBER, 4, 8)
    dest = Destination()
    prepared = [_message(values, x, 4) for x in range(1, 9)]
    threads = [threading.Thread(target=dest.open, args=pair) for pair in prepared]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dest.ready(SESSION)
    assert dest.deliver(SESSION).used_xs == tuple(range(1, 9))


def test_destination_argument_errors() -> None:
    with pytest.raises(ValueError, match="timeout"):
        Destination(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        Destination(timeout=True)
    with pytest.raises(ValueError, match="check"):
        Destination(check=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clock"):
        Destination(clock=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check"):
        seal_shares(NUMBER, 2, [_link("a")[0], _link("b")[0]], check=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        seal_shares(b"", 2, [_link("a")[0], _link("b")[0]])
    with pytest.raises(ValueError, match="session_id"):
        Destination().deliver(b"short")
    assert isinstance(ShareMessage, type)

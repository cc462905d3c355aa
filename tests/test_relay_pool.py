"""Link key pools: each byte handed out once, in order, zeroed as it leaves; clear errors otherwise."""

from __future__ import annotations

import threading

import pytest

from mpss_fast.exceptions import InputTypeError, KeyPoolExhaustedError, KeyReuseError, ParameterError
from mpss_fast.relay import LinkKeyPool

from .rng import seeded_rng


def accept(material: memoryview) -> None:
    """A tag check that passes: these tests are about key positions, not tags."""


STREAM = seeded_rng(b"link stream")(4096)


def test_take_hands_out_the_stream_in_order() -> None:
    pool = LinkKeyPool("A->B", STREAM)
    got = []
    for size in (1, 31, 64, 100):
        key_id, material = pool.take(size)
        assert key_id == sum(len(m) for m in got)
        got.append(bytes(material))
    assert b"".join(got) == STREAM[:196]
    assert pool.position == 196
    assert pool.available == 4096 - 196


def test_material_is_zeroed_in_the_pool_as_it_leaves() -> None:
    pool = LinkKeyPool("A->B", STREAM, window=0)
    pool.take(100)
    pool.take_at(150, 10, accept)  # skips 50 bytes: with no reordering window, those are zeroed too
    assert bytes(pool._buf[:160]) == bytes(160)
    assert bytes(pool._buf[160:]) == STREAM[160:]
    assert pool.discarded == 50


def test_receiver_takes_at_the_senders_key_id() -> None:
    sender, receiver = LinkKeyPool("A->B", STREAM), LinkKeyPool("A->B", STREAM, window=0)
    ids = [sender.take(40) for _ in range(3)]
    # the second message was lost: the receiver skips its material
    assert receiver.take_at(ids[0][0], 40, accept) == ids[0][1]
    assert receiver.take_at(ids[2][0], 40, accept) == ids[2][1]
    assert receiver.discarded == 40


@pytest.mark.parametrize("key_id", [0, 99])
def test_key_id_behind_the_position_is_refused(key_id: int) -> None:
    pool = LinkKeyPool("A->B", STREAM)
    pool.take_at(0, 100, accept)
    with pytest.raises(KeyReuseError, match="already used"):
        pool.take_at(key_id, 10, accept)
    assert pool.position == 100


def test_exhaustion_raises_and_loses_nothing() -> None:
    pool = LinkKeyPool("A->B", STREAM[:100])
    pool.take(60)
    with pytest.raises(KeyPoolExhaustedError, match="40 available"):
        pool.take(41)
    with pytest.raises(KeyPoolExhaustedError):
        pool.take_at(70, 31, accept)
    assert (pool.position, pool.available) == (60, 40)
    assert pool.take(40) == (60, bytearray(STREAM[60:100]))
    pool.add(STREAM[100:200])
    assert pool.take(100) == (100, bytearray(STREAM[100:200]))


def test_refills_keep_key_ids_continuous_across_compaction() -> None:
    pool = LinkKeyPool("A->B")
    out = bytearray()
    for i in range(0, 4096, 256):
        pool.add(STREAM[i : i + 256])
        key_id, material = pool.take(200)
        assert key_id == len(out)
        out += material
        out += pool.take(56)[1]
    assert bytes(out) == STREAM
    assert len(pool._buf) < 1024  # consumed material does not accumulate


def test_on_consume_records_before_use() -> None:
    seen: list[tuple[int, int]] = []
    pool = LinkKeyPool("A->B", STREAM, position=1000, on_consume=lambda pos: seen.append((pos, pool.available)))
    key_id, _ = pool.take(10)
    assert key_id == 1000
    assert seen == [(1010, 4086)]


def test_a_failing_recorder_withholds_the_material_and_never_reuses_it() -> None:
    def fail(position: int) -> None:
        raise OSError("disk full")

    pool = LinkKeyPool("A->B", STREAM, on_consume=fail)
    with pytest.raises(OSError, match="disk full"):
        pool.take(10)
    assert pool.position == 10  # the bytes count as used: they may have been recorded
    with pytest.raises(KeyReuseError):
        pool.take_at(0, 10, accept)


def test_wipe_drops_everything() -> None:
    pool = LinkKeyPool("A->B", STREAM)
    pool.wipe()
    assert pool.available == 0 and pool.position == 4096
    with pytest.raises(KeyPoolExhaustedError):
        pool.take(1)


def test_threads_never_get_the_same_bytes() -> None:
    pool = LinkKeyPool("A->B", bytes(range(256)) * 64)
    taken: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(64):
            key_id, material = pool.take(8)
            with lock:
                taken.append((key_id, bytes(material)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(key_id for key_id, _ in taken)
    assert ids == list(range(0, 256 * 8, 8))
    for key_id, material in taken:
        assert material == (bytes(range(256)) * 64)[key_id : key_id + 8]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.take(0), ParameterError),
        (lambda p: p.take(-1), ParameterError),
        (lambda p: p.take(1.5), ParameterError),
        (lambda p: p.take(True), ParameterError),
        (lambda p: p.take_at(-1, 4, accept), ParameterError),
        (lambda p: p.take_at("0", 4, accept), ParameterError),
        (lambda p: p.add("key"), InputTypeError),
        (lambda p: p.add(12), InputTypeError),
    ],
)
def test_bad_arguments(call, error) -> None:
    pool = LinkKeyPool("A->B", STREAM)
    with pytest.raises(error):
        call(pool)
    assert pool.position == 0


@pytest.mark.parametrize(("link", "position"), [("", 0), (None, 0), ("A->B", -1), ("A->B", "0")])
def test_bad_construction(link, position) -> None:
    with pytest.raises(ParameterError):
        LinkKeyPool(link, STREAM, position=position)


def test_skip_to_discards_and_zeroes_up_to_the_key_id() -> None:
    seen: list[int] = []
    pool = LinkKeyPool("A->B", STREAM, position=1000, on_consume=seen.append)
    assert pool.skip_to(1300) == 300
    assert (pool.position, pool.available, pool.discarded) == (1300, 4096 - 300, 300)
    assert seen == [1300]  # recorded, like a take
    assert bytes(pool._buf[:300]) == bytes(300) and bytes(pool._buf[300:]) == STREAM[300:]
    assert pool.take(10) == (1300, bytearray(STREAM[300:310]))
    with pytest.raises(KeyReuseError):
        pool.take_at(1299, 1, accept)


@pytest.mark.parametrize("key_id", [0, 999, 1000])
def test_skip_to_at_or_behind_the_position_does_nothing(key_id: int) -> None:
    seen: list[int] = []
    pool = LinkKeyPool("A->B", STREAM, position=1000, on_consume=seen.append)
    assert pool.skip_to(key_id) == 0
    assert (pool.position, pool.available, pool.discarded, seen) == (1000, 4096, 0, [])
    assert bytes(pool._buf) == STREAM


def test_skip_to_beyond_the_material_raises_and_changes_nothing() -> None:
    seen: list[int] = []
    pool = LinkKeyPool("A->B", STREAM[:100], on_consume=seen.append)
    pool.take(10)
    with pytest.raises(
        KeyPoolExhaustedError, match=r"link A->B: cannot skip to offset 101; the pool holds key up to 100"
    ):
        pool.skip_to(101)
    assert (pool.position, pool.available, pool.discarded, seen) == (10, 90, 0, [10])
    assert pool.take(5) == (10, bytearray(STREAM[10:15]))
    assert pool.skip_to(100) == 85  # exactly to the end is fine
    assert pool.available == 0 and seen[-1] == 100
    pool.add(STREAM[100:200])
    assert pool.take(100) == (100, bytearray(STREAM[100:200]))


@pytest.mark.parametrize("key_id", [-1, 1.5, "10", True, None])
def test_skip_to_bad_arguments(key_id: object) -> None:
    pool = LinkKeyPool("A->B", STREAM)
    with pytest.raises(ParameterError, match="offset must be an int >= 0"):
        pool.skip_to(key_id)  # type: ignore[arg-type]
    assert (pool.position, pool.available) == (0, 4096)

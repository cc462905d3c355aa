"""Hypothesis: random and mutated packets raise nothing but WireError; valid packets round-trip."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpss_fast.wire import MpssOption, Packet, Srh, Tlv, encode_packet, parse_packet
from tests.fuzz_wire import check_one_input, seed_packets

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.binary(min_size=16, max_size=16)
tlv_types = st.integers(2, 255).filter(lambda t: t != 4)
option_types = st.integers(2, 0x3F).filter(lambda t: t != 0x7E)  # act 00, neither padding nor MPSS


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    segments = draw(st.lists(addresses, min_size=1, max_size=10))
    payload = draw(st.binary(min_size=1, max_size=200))
    k = draw(st.integers(2, 255))
    option = MpssOption(
        poly=draw(st.sampled_from([0x11B, 0x11D])),
        k=k,
        n=draw(st.integers(k, 255)),
        x=draw(st.integers(1, 255)),
        path_id=draw(st.integers(0, (1 << 32) - 1)),
        share_len=len(payload),
        session_id=draw(st.binary(min_size=16, max_size=16)),
        hop_key_id=draw(st.integers(0, (1 << 64) - 1)),
        tag=draw(st.binary(min_size=16, max_size=16)),
    )
    srh = Srh(
        tuple(segments),
        draw(st.integers(0, len(segments) - 1)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 0xFFFF)),
        tuple(draw(st.lists(st.builds(Tlv, tlv_types, st.binary(max_size=20)), max_size=3))),
    )
    return Packet(
        src=draw(addresses),
        srh=srh,
        option=option,
        payload=payload,
        sport=draw(st.integers(0, 0xFFFF)),
        dport=draw(st.integers(0, 0xFFFF)),
        hop_limit=draw(st.integers(0, 255)),
        traffic_class=draw(st.integers(0, 255)),
        flow_label=draw(st.integers(0, 0xFFFFF)),
        extra_options=tuple(draw(st.lists(st.builds(Tlv, option_types, st.binary(max_size=20)), max_size=3))),
    )


@SETTINGS
@given(packet=packets())
def test_valid_packets_round_trip(packet: Packet) -> None:
    encoded = encode_packet(packet)
    assert parse_packet(encoded) == packet
    check_one_input(encoded)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check_one_input(data)


@SETTINGS
@given(data=st.binary(min_size=40, max_size=300))
def test_random_bytes_behind_a_plausible_ipv6_header(data: bytes) -> None:
    head = bytearray(data)
    head[0] = 0x60
    head[4:6] = (len(head) - 40).to_bytes(2, "big")
    head[6] = 60
    check_one_input(bytes(head))


def _fix_lengths(data: bytearray) -> bytearray:
    if len(data) >= 6:
        data[4:6] = max(0, len(data) - 40).to_bytes(2, "big")
    return data


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
        st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
        st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
        st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, steps: list[tuple[str, int, object]], fix: bool) -> bytes:
    out = bytearray(data)
    for kind, position, arg in steps:
        at = position % (len(out) + 1)
        if kind == "insert":
            assert isinstance(arg, bytes)
            out[at:at] = arg
            continue
        assert isinstance(arg, int)
        if kind == "set" and at < len(out):
            out[at] = arg
        elif kind == "flip" and at < len(out):
            out[at] ^= 1 << arg
        elif kind == "delete":
            del out[at : at + arg]
        elif kind == "truncate":
            del out[at:]
    return bytes(_fix_lengths(out) if fix else out)


SEEDS = list(seed_packets().values())


@SETTINGS
@given(seed=st.sampled_from(SEEDS), steps=mutations, fix=st.booleans())
def test_mutated_seed_packets(seed: bytes, steps: list[tuple[str, int, object]], fix: bool) -> None:
    check_one_input(mutate(seed, steps, fix))


@SETTINGS
@given(packet=packets(), steps=mutations, fix=st.booleans())
def test_mutated_random_packets(packet: Packet, steps: list[tuple[str, int, object]], fix: bool) -> None:
    check_one_input(mutate(encode_packet(packet), steps, fix))

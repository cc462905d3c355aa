"""Fuzz the MPSS packet parser with atheris: anything but a ``WireError`` is a bug.

Run::

    python tests/fuzz_wire.py -atheris_runs=100000
    python tests/fuzz_wire.py CORPUS_DIR -max_total_time=60

(libFuzzer adds the inputs it finds to the first corpus directory: pass a copy of
``tests/corpus/wire``, not the directory itself.) ``python tests/fuzz_wire.py
--write-corpus DIR`` writes the seed packets. The tests import ``check_one_input`` and
the sample packets from here, so hypothesis and atheris check the same property.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import mpss_fast.wire as _wire
from mpss_fast.exceptions import ChecksumError, HopLimitError, SegmentsLeftError, WireError
from mpss_fast.wire import (
    MpssOption,
    Packet,
    Srh,
    Tlv,
    address,
    encode_packet,
)

CORPUS = Path(__file__).resolve().parent / "corpus" / "wire"

SESSION_ID = bytes(range(16))
TAG = bytes(range(0xA0, 0xB0))
SRC = address("2001:db8::1")
PATH = (address("2001:db8::a"), address("2001:db8::2"))


def sample_option(**changes: object) -> MpssOption:
    """The option of the hand-computed example (k=2, n=3, x=1, 4-byte share), with ``changes``."""
    fields: dict[str, object] = dict(
        poly=0x11B,
        k=2,
        n=3,
        x=1,
        path_id=7,
        share_len=4,
        session_id=SESSION_ID,
        hop_key_id=0x0102030405060708,
        tag=TAG,
    )
    fields.update(changes)
    return MpssOption(**fields)  # type: ignore[arg-type]


def sample_packet(**changes: object) -> Packet:
    """The packet of the hand-computed example: 2001:db8::1 -> relay 2001:db8::a -> 2001:db8::2."""
    fields: dict[str, object] = dict(
        src=SRC,
        srh=Srh.from_path(PATH),
        option=sample_option(),
        payload=bytes.fromhex("deadbeef"),
        sport=4500,
        dport=4500,
    )
    fields.update(changes)
    return Packet(**fields)  # type: ignore[arg-type]


def seed_packets() -> dict[str, bytes]:
    """A few valid packets (deterministic) for the fuzzing corpus."""
    relays = [address(f"2001:db8:{i}::1") for i in range(1, 4)]
    long_path = Srh.from_path([*relays, address("2001:db8::2")], tlvs=[Tlv(5, bytes(38))])
    return {
        "example.bin": encode_packet(sample_packet()),
        "four-segments-32B.bin": encode_packet(
            sample_packet(
                srh=Srh.from_path([*relays, address("2001:db8::2")]),
                option=sample_option(poly=0x11D, k=3, n=5, x=5, share_len=32),
                payload=bytes(range(32)),
            )
        ),
        "extra-option-and-tlv.bin": encode_packet(
            sample_packet(srh=long_path, extra_options=(Tlv(0x1E, b"\x01\x02\x03"),), hop_limit=2)
        ),
        "at-destination.bin": encode_packet(sample_packet(srh=Srh(tuple(reversed(PATH)), 0))),
        "odd-share.bin": encode_packet(sample_packet(option=sample_option(share_len=7), payload=b"1234567")),
    }


def check_one_input(data: bytes) -> None:
    """The fuzz property: parsing fails only with ``WireError``, and what parses behaves.

    A packet that parses (checksum not verified, so mutations get past it) re-encodes to
    an equal packet, verifying the checksum gives the same packet or ``ChecksumError``,
    and ``segment_endpoint`` changes only Segments Left, the destination and Hop Limit.
    """
    wire = _wire
    try:
        packet = wire.parse_packet(data, verify_checksum=False)
    except WireError:
        return
    if wire.parse_packet(wire.encode_packet(packet)) != packet:
        raise AssertionError("a parsed packet does not survive encode + parse")
    try:
        if wire.parse_packet(data) != packet:
            raise AssertionError("verifying the checksum changed the parsed packet")
    except ChecksumError:
        pass
    try:
        after = wire.parse_packet(wire.segment_endpoint(data, verify_checksum=False), verify_checksum=False)
    except (SegmentsLeftError, HopLimitError):
        return
    left = packet.srh.segments_left - 1
    if after != wire.advance_packet(packet) or after.dst != packet.srh.segments[left]:
        raise AssertionError("segment_endpoint and advance_packet disagree")


def write_corpus(directory: Path) -> None:
    """Write ``seed_packets()`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seed_packets().items():
        (directory / name).write_bytes(data)


def main(argv: list[str]) -> None:
    """Write the corpus, or hand ``argv`` to libFuzzer with the wire modules instrumented."""
    global _wire
    if len(argv) == 3 and argv[1] == "--write-corpus":
        write_corpus(Path(argv[2]))
        return
    import atheris  # type: ignore[import-untyped]

    # Import the wire modules again under instrumentation (mpss_fast itself, numpy and the
    # exceptions stay as they are, so WireError is the same class).
    for name in [name for name in sys.modules if name.startswith("mpss_fast.wire")]:
        del sys.modules[name]
    with atheris.instrument_imports(include=["mpss_fast.wire"]):
        _wire = importlib.import_module("mpss_fast.wire")
    atheris.Setup(argv, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

"""The UDP checksum over IPv6 (RFC 8200 §8.1, RFC 768), with the final destination in the pseudo-header.

The one's complement sum of 16-bit words is taken as ``int.from_bytes(...) % 0xFFFF``:
since 2^16 ≡ 1 (mod 0xFFFF), a big-endian integer is congruent to the sum of its 16-bit
digits, so one big-integer remainder replaces a loop over words.
"""

from __future__ import annotations

UDP = 17
_PROTO_SUM = UDP
_ZERO = b"\x00"


def udp_checksum(src: bytes, final_dst: bytes, sport: int, dport: int, payload: bytes) -> int:
    """The checksum to put in the UDP header of ``payload`` sent from ``src`` to ``final_dst`` (never 0)."""
    length = 8 + len(payload)
    words = src + final_dst + payload
    if len(payload) & 1:
        words += _ZERO
    # pseudo-header length + UDP length field, ports, next header: all congruent to their word sums
    rem = (int.from_bytes(words, "big") + 2 * length + sport + dport + _PROTO_SUM) % 0xFFFF
    return 0xFFFF - rem if rem else 0xFFFF


def udp_checksum_ok(src: bytes, final_dst: bytes, udp: bytes) -> bool:
    """Whether the UDP datagram ``udp`` (header and payload) carries a correct, non-zero checksum."""
    if len(udp) < 8 or udp[6:8] == b"\x00\x00":
        return False
    words = src + final_dst + udp
    if len(udp) & 1:
        words += _ZERO
    return (int.from_bytes(words, "big") + len(udp) + _PROTO_SUM) % 0xFFFF == 0

"""Hop-by-hop one-time-pad relay of shares with per-hop Wegman-Carter (Poly1305) tags.

:class:`LinkKeyPool` holds one direction of a link's QKD key; :func:`seal`,
:func:`relay` and :func:`open_into` are one hop; :func:`seal_shares` and
:class:`Destination` are the source and destination of a session (the destination
reports each share with a :class:`Receipt` and each number with a :class:`Delivery`).
See ``docs/relay.md`` for the key layout, the check and sessions, and
``docs/wire-format.md`` for the option.
"""

from .endpoints import CHECK_BYTES, DEFAULT_TIMEOUT, Destination, number_check, seal_shares
from .hop import MAC_KEY_BYTES, ShareMessage, hop_key_bytes, open_into, relay, seal
from .packets import MPSS_UDP_PORT, first_hop_packet, first_hop_route, message_of, relay_packet
from .pool import LinkKeyPool
from .session import Arrival, Delivery, Failure, Receipt

__all__ = [
    "CHECK_BYTES",
    "DEFAULT_TIMEOUT",
    "MAC_KEY_BYTES",
    "MPSS_UDP_PORT",
    "Arrival",
    "Delivery",
    "Destination",
    "Failure",
    "LinkKeyPool",
    "Receipt",
    "ShareMessage",
    "first_hop_packet",
    "first_hop_route",
    "hop_key_bytes",
    "message_of",
    "number_check",
    "open_into",
    "relay",
    "relay_packet",
    "seal",
    "seal_shares",
]

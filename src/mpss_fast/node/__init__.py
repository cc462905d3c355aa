"""The ``mpss node`` daemon: one MPSS node of a QKD network (``docs/node.md``).

Read top-down: ``daemon`` (start-up checks and the lifecycle), ``keyflow`` (refill, end-to-end
confirmation, issue and collection of keys per SAE pair), ``app_backend`` (ETSI 014 over the
key flow), ``peer_api`` (neighbours' link-key confirmations and the S-D channel), ``shares``
(splitting, relaying and rebuilding numbers over SRv6 paths), ``linkkeys`` (QKD link keys
from the KMEs), ``transport`` (UDP or tun), ``store`` (the durable state), ``config``.
"""

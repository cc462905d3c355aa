"""The node daemon's durable state (``mpss node``): see ``docs/node-store.md``.

:class:`NodeStore` keeps, in one SQLite file, each link direction's QKD key material
and consumed position (recorded before use, so no pad is ever reused after a crash) and
the end-to-end keys until they are delivered, once.
"""

from .store import CHUNK_BYTES, DELIVERED, ISSUED, PENDING, SCHEMA_VERSION, NodeStore

__all__ = ["CHUNK_BYTES", "DELIVERED", "ISSUED", "PENDING", "SCHEMA_VERSION", "NodeStore"]

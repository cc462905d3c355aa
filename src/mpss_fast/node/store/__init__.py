"""A node's durable state, by concern, each in its own SQLite file: see ``docs/node-store.md``.

* ``db``: opening a store file (private modes, one-process lock, WAL with fsync, versioned
  schema and migrations, write transactions), shared by both stores;
* ``links``: :class:`LinkStore`, each link direction's QKD key material and the offset of
  its first unused byte (recorded before use, so no pad is reused after a crash);
* ``keys``: :class:`KeyStore`, each SAE pair's relayed units (pending, ready), the ledger of
  the application keys carved from them, and their delivery, once.
"""

from .keys import KeyStore, LedgerMismatchError, NotEnoughKeyError, Range, keystore_path
from .links import CHUNK_BYTES, SCHEMA_VERSION, LinkStore

__all__ = [
    "CHUNK_BYTES",
    "SCHEMA_VERSION",
    "KeyStore",
    "LedgerMismatchError",
    "LinkStore",
    "NotEnoughKeyError",
    "Range",
    "keystore_path",
]

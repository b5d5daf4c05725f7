"""Chunk stores: the contract (protocol), one module per store, store URLs, and the engine's access.

``protocol`` declares what a store is and may offer; ``memory``,
``callback``, ``folder`` and ``s3`` are the stores; ``urls`` turns a store
URL into one; ``access`` is the one object the engine reaches a store
through (``access.access(store)`` makes one). The public names are
re-exported by :mod:`self_encryption`.
"""

from .access import StoreAccess, writer_lock
from .callback import CallbackStore
from .folder import DirStore
from .memory import MemoryStore
from .protocol import ChunkEntry, ChunkStore, MaintainedStore, store_call
from .s3 import S3Store
from .urls import open_store

__all__ = [
    "CallbackStore",
    "ChunkEntry",
    "ChunkStore",
    "DirStore",
    "MaintainedStore",
    "MemoryStore",
    "S3Store",
    "StoreAccess",
    "open_store",
    "store_call",
    "writer_lock",
]

"""Self-encryption: convergent encryption with obfuscation, format v1.

A file is cut into content-defined chunks; each chunk is compressed,
encrypted with a key derived from its own content, obfuscated with a pad
derived from its neighbours and stored under the SHA-256 of the result. The
small :class:`DataMap` that comes back is the secret that opens the file.

The hot path runs in a C core (``self_encryption._native``) unless
``SELF_ENCRYPTION_BACKEND=python`` asks for the pure-Python backend;
:data:`backend` names the one in use.

This module only gathers the public names; each lives in the module that
owns its job (see the README's "Architecture" section).
"""

from ._backend import BACKEND_NAME as backend  # noqa: N811 - a public name, lower case like io.DEFAULT_BUFFER_SIZE's neighbours
from ._backend import openssl_version
from ._chunking import cut_points
from ._datamap import ChunkInfo, DataMap
from ._decryptor import ChunkSource, decrypt, decrypt_file, decrypt_into
from ._editor import SelfEncryptor
from ._encrypting import encrypt, encrypt_file, encrypt_to_store
from ._encryptor import Encryptor, EncryptStats
from ._errors import (
    EXIT_CODES,
    ChunkError,
    ChunkIntegrityError,
    ChunkNotFoundError,
    ChunkUnreadableError,
    DataMapError,
    ExitCode,
    InvalidArgumentError,
    OutOfMemoryError,
    SelfEncryptionError,
    StoreBusyError,
    StoreError,
)
from ._maintenance import (
    DEFAULT_GRACE,
    DEFAULT_LOCK_WAIT,
    GcRefusedError,
    GcReport,
    VerifyReport,
    chunk_names,
    collect_garbage,
    verify,
    walk_levels,
)
from ._mapfile import MAP_SUFFIX, ReservedMapFile, looks_like_map, map_destination, reserve_map_file
from ._options import DEFAULT_CHUNK_SIZES, DEFAULT_COMPRESSION_LEVEL, DEFAULT_RETRY_SECONDS, Progress
from ._reader import ChunkReader
from ._reader import open as open  # noqa: A004 - se.open, like io.open; kept out of __all__
from ._sealing import EncryptedChunk
from ._version import __version__
from ._views import ChunkViews
from .stores import CallbackStore, ChunkStore, DirStore, MemoryStore, S3Store, open_store, writer_lock
from .stores.lock_listing import lock_location, remove_lock, remove_stale_locks, store_locks
from .stores.locks import LockInfo

__all__ = [
    "DEFAULT_CHUNK_SIZES",
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_GRACE",
    "DEFAULT_LOCK_WAIT",
    "DEFAULT_RETRY_SECONDS",
    "EXIT_CODES",
    "CallbackStore",
    "ChunkError",
    "ChunkInfo",
    "ChunkIntegrityError",
    "ChunkNotFoundError",
    "ChunkUnreadableError",
    "ChunkReader",
    "ChunkViews",
    "ChunkSource",
    "ChunkStore",
    "DataMap",
    "DataMapError",
    "GcRefusedError",
    "DirStore",
    "EncryptStats",
    "EncryptedChunk",
    "Encryptor",
    "ExitCode",
    "GcReport",
    "InvalidArgumentError",
    "LockInfo",
    "MAP_SUFFIX",
    "MemoryStore",
    "OutOfMemoryError",
    "Progress",
    "ReservedMapFile",
    "S3Store",
    "SelfEncryptionError",
    "SelfEncryptor",
    "StoreBusyError",
    "StoreError",
    "VerifyReport",
    "__version__",
    "backend",
    "chunk_names",
    "collect_garbage",
    "cut_points",
    "decrypt",
    "decrypt_file",
    "decrypt_into",
    "encrypt",
    "encrypt_file",
    "encrypt_to_store",
    "lock_location",
    "looks_like_map",
    "map_destination",
    "open_store",
    "openssl_version",
    "remove_lock",
    "remove_stale_locks",
    "reserve_map_file",
    "store_locks",
    "verify",
    "walk_levels",
    "writer_lock",
]

"""The content of a file being written: streamed while it only grows from empty, edited in place otherwise.

A file copied into a mount (``cp``, ``tar -x``, a download) is written from
offset 0 onward, each write where the last one ended. Such content goes
through a streaming :class:`self_encryption.Encryptor`, which seals chunks
on its worker pool as they arrive and holds only those in flight. The first
write elsewhere, read or truncation finishes the stream and continues on a
:class:`self_encryption.SelfEncryptor` over the map it gave, which edits in
place; so does every file opened with content. Both give the data map
``encrypt()`` gives for the same bytes.

Chunks a stream stores are named by no saved map until the file is saved,
so from the stream's start to the next save this holds the store's writer
lock, and a gc waits.
"""

from __future__ import annotations

import contextlib
from typing import Any

import self_encryption as se


class Content:
    """Read, write, truncate and flush a file's bytes, over a stream or an editor."""

    def __init__(self, store: Any, data_map: se.DataMap | None, options: dict[str, Any]) -> None:
        self._store = store
        self._options = options
        self._editor = se.SelfEncryptor(store, data_map, **options)
        self._stream: se.Encryptor | None = None
        self._streamed = 0
        self._held = contextlib.ExitStack()  # the writer lock, from a stream's start to the next flush

    @property
    def streaming(self) -> bool:
        """True while the content only grew from empty (a flush would end the stream)."""
        return self._stream is not None

    @property
    def size(self) -> int:
        return self._streamed if self._stream is not None else self._editor.size

    def read(self, offset: int, size: int) -> bytes:
        self._edit()
        return self._editor.read(offset, size)

    def write(self, data: bytes | memoryview, offset: int) -> int:
        # Both the stream and the editor copy what they keep: data may be reused after this.
        if self._stream is None and offset == 0 and self._editor.size == 0 and data:
            self._held.enter_context(se.writer_lock(self._store))
            self._stream = se.Encryptor(self._store, **self._options)
            self._streamed = 0
        if self._stream is not None and offset == self._streamed:
            self._stream.write(data)
            self._streamed += len(data)
            return len(data)
        self._edit()
        return self._editor.write(data, offset)

    def truncate(self, size: int) -> None:
        if self._stream is not None and size == self._streamed:
            return
        self._edit()
        self._editor.truncate(size)

    def flush(self) -> se.DataMap:
        """Store what is not stored yet and return the data map of the content.

        Call it holding the store's writer lock until the map is saved; the
        lock a stream held is let go here.
        """
        try:
            self._edit()
            return self._editor.flush()
        finally:
            self._held.close()

    def abandon(self) -> None:
        """Stop a stream without storing its end (the file was removed)."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with contextlib.suppress(se.SelfEncryptionError):
                stream.abort()
        self._held.close()

    def _edit(self) -> None:
        """Finish a stream and go on editing the content it stored."""
        if self._stream is None:
            return
        stream, self._stream = self._stream, None
        try:
            data_map = stream.finish()
        except BaseException:
            with contextlib.suppress(se.SelfEncryptionError):
                stream.abort()
            raise
        self._editor = se.SelfEncryptor(self._store, data_map, **self._options)

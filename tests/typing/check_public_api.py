"""The public API used the way the README uses it, for mypy --strict (scripts/lint.sh).

Each assert_type pins what a caller's type checker sees; mypy fails the lint
when a signature or a return type drifts. The file also runs as a script.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping

from typing_extensions import assert_type

import self_encryption as se


def main() -> None:
    data = os.urandom(5000)
    root, chunks = se.encrypt(data, convergence_secret="shared", chunk_sizes=(64, 256, 1024))
    assert_type(root, se.DataMap)
    assert_type(chunks, list[se.EncryptedChunk])
    store: Mapping[str, bytes] = {c.name: c.content for c in chunks}
    assert_type(se.decrypt(root, store), bytes)

    memory = se.MemoryStore()
    root = se.encrypt_to_store(data, memory, workers=2, progress=lambda done, total: None)
    text: str = root.to_text()
    assert se.DataMap.from_text(text) == se.DataMap.from_json(root.to_json())
    assert_type(se.verify(root, memory, full=True), se.VerifyReport)
    assert_type(se.chunk_names(root, memory), set[str])
    assert_type(se.cut_points(data), list[int])

    with tempfile.TemporaryDirectory() as folder:
        store_dir = se.open_store(os.path.join(folder, "chunks"), create=True)
        source = os.path.join(folder, "file.bin")
        with open(source, "wb") as handle:
            handle.write(data)
        file_root = se.encrypt_file(source, store_dir)
        assert_type(se.decrypt_file(file_root, store_dir, os.path.join(folder, "out")), int)
        assert_type(se.decrypt_file(file_root, store_dir, io.BytesIO()), int)
        with se.open(file_root, store_dir) as reader:
            assert_type(reader, se.ChunkReader)
            reader.seek(10)
            assert_type(reader.read(100), bytes)
        with se.Encryptor(store_dir) as encryptor:
            encryptor.write(data)
        assert_type(encryptor.stats.chunks_written, int)
        editor = se.SelfEncryptor(store_dir, file_root)
        editor.write(b"patched", 3)
        assert_type(editor.flush(), se.DataMap)
    callbacks = se.CallbackStore(memory.get, memory.put)
    assert_type(se.decrypt(root, callbacks), bytes)
    assert_type(se.decrypt(root, memory.get), bytes)  # a plain get(name) -> bytes function
    assert_type(se.verify(root, memory.get).ok, bool)
    try:
        se.decrypt(root, se.MemoryStore())
    except se.ChunkNotFoundError as exc:
        assert_type(exc.index, int | None)
        assert_type(exc.exit_code, int)


if __name__ == "__main__":
    main()
    print("the public API runs as typed")

"""Fuzz the data-map parsers (binary, text, JSON): a map or DataMapError, nothing else.

python fuzz/fuzz_datamap.py [libFuzzer options] [CORPUS_DIR]
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import self_encryption as se


def test_one_input(data: bytes) -> None:
    try:
        parsed = se.DataMap.from_bytes(data)
    except se.DataMapError:
        pass
    else:
        assert parsed.to_bytes() == data, "a parsed binary map is not canonical"
        assert se.DataMap.from_text(parsed.to_text()) == parsed
    try:
        parsed = se.DataMap.from_json(data)
    except se.DataMapError:
        pass
    else:
        assert se.DataMap.from_json(parsed.to_json()) == parsed
    text = data.decode("latin-1")
    try:
        parsed = se.DataMap.from_text(text)
    except se.DataMapError:
        pass
    else:
        assert se.DataMap.from_bytes(parsed.to_bytes()) == parsed


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

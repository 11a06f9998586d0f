"""Byte-level mutations of image files, for fuzzing the upload path.

Used by the fuzz test (a few hundred inputs) and ``bench/fuzz.py`` (tens of thousands).
"""

from __future__ import annotations

import random


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random corruption of ``data``: flipped bytes, a truncation, a splice of a
    chunk copied from elsewhere, or a run of zeros; sometimes two of them."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2))):
        kind = rng.randrange(4)
        if not out:
            break
        if kind == 0:
            for _ in range(rng.randint(1, 16)):
                position = rng.randrange(len(out))
                out[position] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del out[rng.randrange(len(out)) :]
        elif kind == 2:
            start = rng.randrange(len(out))
            chunk = out[start : start + rng.randint(1, 512)]
            at = rng.randrange(len(out))
            out[at:at] = chunk
        else:
            start = rng.randrange(len(out))
            out[start : start + rng.randint(1, 256)] = bytes(rng.randint(1, 256))
    return bytes(out)

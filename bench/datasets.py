"""Deterministic data sets: the same seed gives the same names, sizes and bytes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

PER_DIR = 1000
CHUNK = 64 * 1024  # random.randbytes is fastest in chunks about this size


@dataclass(frozen=True)
class Tree:
    """A folder to sync: ``path.name`` is also the object-name prefix for every tool."""

    path: Path
    files: int
    bytes: int


def _rel(i: int) -> str:
    return f"d{i // PER_DIR:04d}/f{i:07d}.bin"


def small_files(path: Path, count: int, lo: int, hi: int, seed: int) -> Tree:
    """``count`` files with sizes uniform in [lo, hi] bytes and random content."""
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        size = rng.randint(lo, hi)
        data = b"".join(rng.randbytes(min(CHUNK, size - o)) for o in range(0, size, CHUNK))
        _write(path / _rel(i), data)
        total += size
    return Tree(path, count, total)


def byte_files(path: Path, count: int) -> Tree:
    """``count`` files of one byte: as cheap as empty ones, but listed with a real MD5 (an
    empty object's hash is also what manifests list, so kcsync HEADs such entries)."""
    for i in range(count):
        _write(path / _rel(i), b"\n")
    return Tree(path, count, count)


def big_file(path: Path, size: int, seed: int) -> Tree:
    """One file ``big.bin`` of ``size`` random bytes under ``path``."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "big.bin", "wb") as f:
        for o in range(0, size, CHUNK):
            f.write(rng.randbytes(min(CHUNK, size - o)))
    return Tree(path, 1, size)


def change_one(tree: Tree, serial: int, seed: int) -> None:
    """Give the tree's first file new content, size and mtime (one change among many)."""
    rng = random.Random(seed * 1000003 + serial)
    (tree.path / _rel(0)).write_bytes(rng.randbytes(2048 + 1 + serial % 1024))


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True)
        path.write_bytes(data)

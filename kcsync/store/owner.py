"""State files keep the owner of their state directory.

The service runs as its own user; an admin runs ``sudo kcsync status`` (or ``--once``)
against the same state directory. SQLite then creates the -wal and -shm files, and a
first run the database and the lock, as root with mode 0644, and the service can no
longer open its own state: every later start fails, or the status read left it stuck.
Whatever root creates in a directory someone else owns is handed to that owner.
"""

from __future__ import annotations

import os
from pathlib import Path

# SQLite's files beside a database in WAL mode.
SIDE_FILES = ("-wal", "-shm")


def owner_to_hand_over(directory: Path) -> tuple[int, int] | None:
    """(uid, gid) of ``directory`` when we are root and it is not: the owner to give the
    files we create in it. None when there is nothing to hand over."""
    if os.geteuid() != 0:
        return None
    try:
        st = directory.stat()
    except OSError:
        return None
    return None if st.st_uid == 0 else (st.st_uid, st.st_gid)


def hand_over(paths: list[Path], owner: tuple[int, int] | None) -> None:
    """Give root-created ``paths`` (those that exist) to ``owner``."""
    if owner is None:
        return
    for path in paths:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if st.st_uid == 0:
            os.chown(path, *owner, follow_symlinks=False)


def database_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]

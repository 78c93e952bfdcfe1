"""Which object names may become files below a restore directory. Pure: no I/O.

A bucket is written by anyone who holds its credentials, so every name is hostile until
shown otherwise: ``../x`` or ``/etc/x`` would write outside the directory, empty
components and control characters make paths that mean something else than they say, and
an object ``a`` beside an object ``a/b`` asks for ``a`` to be a file and a directory at
once. Such names are refused, one by one, and the rest of the restore goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Linux's NAME_MAX on every common filesystem; the caller passes the real one (pathconf).
NAME_MAX = 255
# What kcsync itself names its temporary files in a restore directory (restorefs.py): an
# object of that name would be overwritten by, or be mistaken for, a partial download.
TEMP_PREFIX = ".kcsync-"
TEMP_SUFFIX = ".part"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class FileTarget:
    """A regular file to write at ``parts`` below the restore directory."""

    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True, slots=True)
class DirTarget:
    """A directory to create (a pseudo-directory object); ``()`` is the directory itself."""

    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


Target = FileTarget | DirTarget


def base_of(prefix: str) -> str:
    """The directory part of a prefix: names are made relative to it.

    ``photos/`` restores ``photos/a/b.jpg`` as ``a/b.jpg``; ``photos/2021`` restores
    ``photos/2021-01/x.jpg`` as ``2021-01/x.jpg``, never as ``-01/x.jpg``.
    """
    return prefix[: prefix.rfind("/") + 1]


def target_of(
    name: str,
    base: str,
    *,
    name_max: int = NAME_MAX,
    directory_marker: bool = False,
) -> Target | Refused:
    """Where object ``name`` goes below the restore directory, or why it may not.

    ``directory_marker``: the object is a pseudo-directory another tool made without a
    trailing "/" (the swift CLI's ``application/directory`` objects for empty folders).
    """
    if not name.startswith(base):
        return Refused("outside the prefix")
    rel = name[len(base) :]
    is_dir = directory_marker or name.endswith("/")
    if rel.endswith("/"):
        rel = rel[:-1]
    if not rel:
        return DirTarget(()) if is_dir else Refused("empty name")
    if rel.startswith("/"):
        return Refused("absolute name (starts with '/')")
    if "\x00" in rel:
        return Refused("NUL character in the name")
    if _CONTROL.search(rel):
        return Refused("control character in the name")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return Refused("not valid UTF-8")
    parts = tuple(rel.split("/"))
    for part in parts:
        if part == "":
            return Refused("empty path component ('//')")
        if part in (".", ".."):
            return Refused(f"'{part}' path component")
        size = len(part.encode("utf-8"))
        if size > name_max:
            return Refused(f"a path component is {size} bytes; the filesystem allows {name_max}")
    if parts[-1].startswith(TEMP_PREFIX) and parts[-1].endswith(TEMP_SUFFIX):
        return Refused("named like kcsync's own temporary files")
    return DirTarget(parts) if is_dir else FileTarget(parts)


class ConflictFilter(Generic[T]):
    """Refuses a file whose name is also a directory of another name (``a`` and ``a/b``).

    Fed names in listing order (UTF-8 byte order), it holds each file back until no later
    name can start with ``file/``. All such names follow the file within the window of
    names that start with it followed by a character up to "/" (``a!``, ``a-b``, ``a.txt``
    sort between ``a`` and ``a/``), so what is held is a chain of nested prefixes: at most
    as many as a name has characters, never a share of the listing. The directory side
    (``a/b``) is restored; only the file that cannot be one is refused.
    """

    def __init__(self) -> None:
        self._held: list[tuple[str, T]] = []

    def push(self, rel: str, item: T, *, is_file: bool) -> list[tuple[T, str | None]]:
        """Take the next name (a directory marker with its trailing "/"); return the items
        now decided, each with None (go ahead) or why it is refused."""
        decided: list[tuple[T, str | None]] = []
        while self._held:
            top, held = self._held[-1]
            if rel.startswith(top) and len(rel) > len(top) and rel[len(top)] <= "/":
                if rel[len(top)] == "/":
                    self._held.pop()
                    decided.append((held, f"also a directory in the bucket ({rel})"))
                    continue
                break  # ``rel`` sorts inside ``top``'s window: keep holding it
            self._held.pop()
            decided.append((held, None))
        if is_file:
            self._held.append((rel, item))
        else:
            decided.append((item, None))
        return decided

    def finish(self) -> list[tuple[T, str | None]]:
        """The listing is over: nothing held can become a directory any more."""
        decided: list[tuple[T, str | None]] = [(item, None) for _, item in reversed(self._held)]
        self._held = []
        return decided

"""Which object names may become files below a restore directory (restore_names.py)."""

from __future__ import annotations

import pytest

from kcsync.restore_names import (
    ConflictFilter,
    DirTarget,
    FileTarget,
    Refused,
    Target,
    base_of,
    target_of,
)


@pytest.mark.parametrize(
    ("prefix", "base"),
    [
        ("photos/", "photos/"),
        ("photos/2021", "photos/"),
        ("a/b/c", "a/b/"),
        ("", ""),
        ("x", ""),
    ],
)
def test_base_of(prefix: str, base: str) -> None:
    assert base_of(prefix) == base


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("p/a.txt", FileTarget(("a.txt",))),
        ("p/dir/b c.bin", FileTarget(("dir", "b c.bin"))),
        ("p/사진/큰 파일.bin", FileTarget(("사진", "큰 파일.bin"))),
        ("p/dir/", DirTarget(("dir",))),
        ("p/", DirTarget(())),
        ("p/...", FileTarget(("...",))),
        ("p/..x", FileTarget(("..x",))),
        ("q/a.txt", Refused("outside the prefix")),
        ("p/../a", Refused("'..' path component")),
        ("p/a/../../b", Refused("'..' path component")),
        ("p/..", Refused("'..' path component")),
        ("p/./a", Refused("'.' path component")),
        ("p//etc/passwd", Refused("absolute name (starts with '/')")),
        ("p/a//b", Refused("empty path component ('//')")),
        ("p/a\x00b", Refused("NUL character in the name")),
        ("p/a\nb", Refused("control character in the name")),
        ("p/a\x7fb", Refused("control character in the name")),
        ("p/a\udc80b", Refused("not valid UTF-8")),
        ("p/" + "x" * 256, Refused("a path component is 256 bytes; the filesystem allows 255")),
        ("p/" + "가" * 86, Refused("a path component is 258 bytes; the filesystem allows 255")),
        ("p/" + "x" * 255, FileTarget(("x" * 255,))),
        ("p/d/.kcsync-abc.part", Refused("named like kcsync's own temporary files")),
        ("p/.kcsync-notes.txt", FileTarget((".kcsync-notes.txt",))),
    ],
    ids=repr,
)
def test_target_of(name: str, expected: Target | Refused) -> None:
    assert target_of(name, "p/") == expected


def test_empty_name_is_refused_unless_it_is_the_directory_itself() -> None:
    assert target_of("p", "p") == Refused("empty name")
    assert target_of("p/", "p/") == DirTarget(())


def test_directory_marker_without_a_slash_is_a_directory() -> None:
    assert target_of("p/cli dir", "p/", directory_marker=True) == DirTarget(("cli dir",))


def test_name_max_comes_from_the_caller() -> None:
    assert isinstance(target_of("p/abcdef", "p/", name_max=5), Refused)


def run_filter(names: list[str]) -> dict[str, str | None]:
    """Feed names in listing order (a trailing "/" marks a directory marker)."""
    f: ConflictFilter[str] = ConflictFilter()
    decided: dict[str, str | None] = {}
    for name in sorted(names, key=lambda n: n.encode("utf-8")):
        for item, why in f.push(name, name, is_file=not name.endswith("/")):
            decided[item] = why
    for item, why in f.finish():
        decided[item] = why
    assert sorted(decided) == sorted(names)
    return decided


@pytest.mark.parametrize(
    ("names", "refused"),
    [
        (["a", "b"], []),
        (["a", "a/b"], ["a"]),
        (["a", "a.txt", "a-b", "a/b"], ["a"]),  # names between "a" and "a/" in byte order
        (["a", "a-b", "a-b/c", "a/x"], ["a", "a-b"]),
        (["a", "a/"], ["a"]),  # a directory marker makes it a directory too
        (["a", "ab/c"], []),
        (["a/b", "a/b/c", "a/c"], ["a/b"]),
        (["x/", "x/y"], []),
        (["a", "a!", "a!/z", "b"], ["a!"]),
        (["dir/f", "dir/f.txt"], []),
    ],
    ids=repr,
)
def test_conflict_filter_refuses_files_that_are_also_directories(
    names: list[str], refused: list[str]
) -> None:
    decided = run_filter(names)
    assert sorted(n for n, why in decided.items() if why) == sorted(refused)
    for name in refused:
        assert "also a directory" in (decided[name] or "")


def test_conflict_filter_holds_only_a_chain_of_prefixes() -> None:
    f: ConflictFilter[int] = ConflictFilter()
    released = 0
    for i in range(10_000):
        released += len(f.push(f"d/{i:06d}", i, is_file=True))
        assert len(f._held) <= 1
    assert released + len(f.finish()) == 10_000

"""`kcsync verify`'s judgements (verify_plan.py)."""

from __future__ import annotations

import pytest

from kcsync import plan
from kcsync.model import EMPTY_MD5, IndexEntry, LocalEntry, RemoteEntry, RemoteSignature
from kcsync.verify_plan import (
    CHECK,
    Difference,
    Kind,
    after_check,
    first_look,
    stored_segments_differ,
)

LOCAL = LocalEntry("f/a", "/d/a", 5, 100, 7, 200)
PLAIN = RemoteEntry("f/a", "m" * 32, 5, "2024-01-01T00:00:00.000000")
SLO = RemoteEntry("f/a", EMPTY_MD5, 300, "2024-01-01T00:00:00.000000")
ENTRY = IndexEntry(
    "f/a", 5, 100, 7, 200, "m" * 32, 0, None, RemoteSignature("m" * 32, 5, None), verified_ns=0
)


@pytest.mark.parametrize(
    ("local", "remote", "index", "deep", "expected"),
    [
        (None, None, ENTRY, False, None),
        (None, PLAIN, None, False, Difference(Kind.EXTRA, "f/a", "no such local file")),
        (LOCAL, None, ENTRY, False, Difference(Kind.MISSING, "f/a", "not in the bucket", "/d/a")),
        (LOCAL, PLAIN, ENTRY, False, None),  # the index vouches: no read
        (LOCAL, PLAIN, ENTRY, True, CHECK),  # --deep: read anyway
        (LOCAL, PLAIN, None, False, CHECK),
        (LOCAL, RemoteEntry("f/a", "x" * 32, 6, ""), ENTRY, False,
         Difference(Kind.DIFFERS, "f/a", "size 5 locally, 6 in the bucket", "/d/a")),
        # same content under a new listing signature (a copy onto itself): still the MD5
        (LOCAL, RemoteEntry("f/a", "m" * 32, 5, "later"),
         IndexEntry("f/a", 5, 100, 7, 200, "m" * 32, 0, None, RemoteSignature("o", 5, None),
                    verified_ns=0),
         False, None),
        (LOCAL, SLO, None, False, CHECK),  # a manifest: only a HEAD tells
        (LocalEntry("f/a", "/d/a", 5, 101, 7, 200), PLAIN, ENTRY, False, CHECK),  # touched
    ],
    ids=["index-only", "extra", "missing", "vouched", "deep", "no-index", "size",
         "new-signature", "manifest", "touched"],
)  # fmt: skip
def test_first_look(
    local: LocalEntry | None,
    remote: RemoteEntry | None,
    index: IndexEntry | None,
    deep: bool,
    expected: Difference | str | None,
) -> None:
    assert first_look(local, remote, index, deep=deep) == expected


@pytest.mark.parametrize(
    ("decision", "kind"),
    [
        (plan.Decision(plan.Action.ADOPT, "same content"), None),
        (plan.Decision(plan.Action.ADOPT, "same content (segment digests)"), None),
        (plan.Decision(plan.Action.ADOPT, "size and mtime agree; digest not comparable"),
         Kind.NOT_COMPARABLE),
        (plan.Decision(plan.Action.UPLOAD, "mtime differs and digest not comparable"),
         Kind.NOT_COMPARABLE),
        (plan.Decision(plan.Action.UPLOAD, "content differs"), Kind.DIFFERS),
        (plan.Decision(plan.Action.UPLOAD, "content differs (kcsync segment digest)"),
         Kind.DIFFERS),
    ],
)  # fmt: skip
def test_after_check(decision: plan.Decision, kind: Kind | None) -> None:
    diff = after_check(LOCAL, decision)
    assert (diff.kind if diff else None) == kind


@pytest.mark.parametrize(
    ("stored", "local", "says"),
    [
        ([("s/0", 4, "a"), ("s/1", 4, "b")], ["a", "b"], None),
        ([("s/0", 4, "a"), None], ["a", "b"], "segment 1 is missing"),
        ([("s/0", 4, "a"), ("s/1", 4, "x")], ["a", "b"], "segment 1 (s/1) holds other bytes"),
        ([("s/0", 4, "a")], ["a", "b"], "1 segments stored, 2 expected"),
        ([("s/0", 4, "a"), ("s/1", 4, "b")], [], "segment 0 (s/0) holds other bytes"),
    ],
)
def test_stored_segments_differ(
    stored: list[tuple[str, int, str] | None], local: list[str], says: str | None
) -> None:
    reason = stored_segments_differ(stored, local)
    assert (reason is None) if says is None else (reason is not None and says in reason)

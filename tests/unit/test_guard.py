"""guard.py: when a mirror may delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcsync.guard import FolderFacts, Limits, job_refusal, refusal
from kcsync.store.db import Database
from kcsync.store.guards import GuardState

LIMITS = Limits(max_per_run=1000, max_share=0.5)


def facts(**changes: object) -> FolderFacts:
    base: dict[str, object] = {
        "ok": True,
        "device": 7,
        "known_device": 7,
        "local_files": 290,
        "remote_objects": 300,
        "deletes": 10,
    }
    return FolderFacts(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "why"),
    [
        (facts(), None),
        (facts(deletes=0, ok=False), None),
        (facts(ok=False), "missing or unreadable"),
        (facts(ok=False, approved=10), "missing or unreadable"),
        (facts(device=8), "another device"),
        (facts(known_device=None), None),
        (facts(local_files=0), "folder is empty"),
        (facts(local_files=0, remote_objects=0, deletes=0), None),
        (facts(deletes=160, local_files=140), "53% of the folder's 300 objects"),
        (facts(deletes=150, local_files=150), None),
        (facts(deletes=4, remote_objects=5, local_files=1), None),
        (facts(deletes=1001, remote_objects=10_000, local_files=8999), "max_per_run (1000)"),
        (facts(deletes=299, local_files=1, device=8, approved=299), None),
        (facts(deletes=299, local_files=1, device=8, approved=298), "another device"),
        (facts(deletes=299, local_files=0, approved=299), None),
    ],
    ids=[
        "ordinary",
        "nothing-to-delete",
        "folder-gone",
        "folder-gone-approval-does-not-help",
        "unmounted-or-other-disk",
        "device-never-recorded",
        "emptied",
        "empty-and-nothing-there",
        "more-than-half",
        "exactly-half",
        "a-handful-is-never-judged-by-share",
        "above-max-per-run",
        "approved",
        "more-than-approved",
        "approved-emptying",
    ],
)
def test_refusal(case: FolderFacts, why: str | None) -> None:
    result = refusal(case, LIMITS)
    if why is None:
        assert result is None
    else:
        assert result is not None and why in result


@pytest.mark.parametrize(
    ("ok", "device", "known", "refused"),
    [
        (True, 7, 7, False),
        (True, 7, None, False),
        (True, 8, 7, True),
        (False, 7, 7, True),
    ],
    ids=["same-disk", "never-recorded", "other-disk", "folder-gone"],
)
def test_job_refusal(ok: bool, device: int, known: int | None, refused: bool) -> None:
    assert (job_refusal(ok=ok, device=device, known_device=known) is not None) is refused


def test_guard_state_round_trip(tmp_path: Path) -> None:
    db = Database(tmp_path / "kcsync.db")
    state = GuardState(db)
    assert state.device("/data") is None and state.refusals() == {}
    state.record_device("/data", 7)
    state.refuse("/data", 299, "the folder is empty", at=1.0)
    state.approve("/data", 299, device=8)
    assert state.device("/data") == 8 and state.approved("/data") == 299
    assert state.refusals()["/data"]["count"] == 299
    state.used_approval("/data")
    state.clear("/data")
    assert state.approved("/data") is None and state.refusals() == {}
    db.close()

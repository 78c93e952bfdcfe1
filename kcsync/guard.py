"""The delete guard: when a mirror may delete, decided from facts passed in. Pure, no I/O.

Absence is not deletion. An unmounted disk, a disk swapped for another, a folder emptied
by a failing mount or a wrong path all look exactly like "the user deleted everything",
so deletes a reconcile infers are refused when they look like that, and what was refused
is kept for `kcsync status` and for `kcsync approve-deletes`, never left to wedge the
mirror until someone edits the config.
"""

from __future__ import annotations

from dataclasses import dataclass

# Below this many deletes the share of the folder is not judged: deleting 3 of 4 files
# is an everyday tidy-up, not a vanished disk.
HANDFUL = 10


@dataclass(frozen=True)
class FolderFacts:
    """What a reconcile saw of one folder."""

    ok: bool  # the root is a readable directory
    device: int | None  # st_dev of the root now
    known_device: int | None  # st_dev at the last successful run (None: never recorded)
    local_files: int
    remote_objects: int  # objects under the folder's prefix that are ours to judge
    deletes: int
    approved: int | None = None  # deletes the operator approved for this folder


@dataclass(frozen=True)
class Limits:
    max_per_run: int
    max_share: float  # at most this share of a folder's objects in one run


def moved_device(device: int | None, known_device: int | None) -> bool:
    """The folder's root is no longer on the disk it was on (unmounted, or another one
    mounted there)."""
    return known_device is not None and device is not None and device != known_device


def refusal(facts: FolderFacts, limits: Limits) -> str | None:
    """Why a reconcile must not delete in this folder, or None when it may."""
    if facts.deletes == 0:
        return None
    if not facts.ok:
        return "the folder is missing or unreadable"
    if facts.approved is not None and facts.deletes <= facts.approved:
        return None
    if moved_device(facts.device, facts.known_device):
        return "the folder's root is on another device than at the last successful run"
    if facts.local_files == 0 and facts.remote_objects > 0:
        return "the folder is empty while the bucket holds objects under its prefix"
    if facts.deletes > HANDFUL and facts.deletes > limits.max_share * facts.remote_objects:
        share = facts.deletes / max(facts.remote_objects, 1)
        return (
            f"{facts.deletes} deletes are {share:.0%} of the folder's "
            f"{facts.remote_objects} objects, above delete.max_share ({limits.max_share:.0%})"
        )
    if facts.deletes > limits.max_per_run:
        return f"{facts.deletes} deletes exceed delete.max_per_run ({limits.max_per_run})"
    return None


def job_refusal(*, ok: bool, device: int | None, known_device: int | None) -> str | None:
    """Why a delete the watcher saw happen must not run now.

    A delete the kernel reported is the user's own act, so it is not counted against
    the run limits; but a disk that went away also reports its files as gone, so the
    folder must still be there, on the disk it was on.
    """
    if not ok:
        return "the folder is missing or unreadable"
    if moved_device(device, known_device):
        return "the folder's root is on another device than at the last successful run"
    return None

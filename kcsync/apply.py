"""Carry out one job: look again, decide with plan.py, act with transfer.py, record."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import structlog

from kcsync import guard, plan
from kcsync.config import FolderConfig
from kcsync.errors import GuardError, KcsyncError, LocalFileError, NotFoundError
from kcsync.gate import Gate, ours_to_judge
from kcsync.localfs import (
    admit,
    check_unchanged,
    folder_path_for,
    hash_file,
    remove_if_unchanged,
)
from kcsync.model import (
    IndexEntry,
    LocalEntry,
    ObjectFacts,
    RemoteEntry,
    RemoteSignature,
    stat_key,
)
from kcsync.store.guards import GuardState
from kcsync.store.index import Index
from kcsync.store.segments import SegmentLedger
from kcsync.swift.client import SwiftClient
from kcsync.swift.slo import (
    bucket_tag,
    group_prefix,
    legacy_segment_prefix,
    parse_mtime_ns,
    slo_etag,
    uniform_ranges,
    upload_id_of,
)
from kcsync.transfer import Transfer, Uploaded, object_headers

log = structlog.get_logger("kcsync.apply")

# Job kinds, stored in the queue. The first three come from a reconcile's comparison,
# the last three from watcher events (which carry no listing entry).
UPLOAD = "upload"
CHECK = "check"
DELETE = "delete"
SYNC = "sync"
MOVE = "move"
DELETE_TREE = "delete_tree"


@dataclass(frozen=True)
class Outcome:
    action: str  # uploaded, adopted, copied, deleted, nothing
    key: str
    bytes_sent: int = 0
    reason: str = ""
    objects: int = 1  # objects the action was done to (a directory's delete: many)
    # The bucket holds this very file: "server" when this job verified it there (an Etag
    # matched, a digest compared, a copy's Etag), "index" when only the index says so.
    in_bucket: str = ""
    removed_local: bool = False  # an ingest folder's file, removed after its upload


def job_payload(
    *,
    path: str | None,
    remote: RemoteEntry | None,
    reason: str,
    large: bool = False,
    basis: IndexEntry | bool | None = False,
) -> dict[str, Any]:
    """``basis`` is the index entry the decision was made on (None: there was none);
    False when the job does not come from a comparison (a watcher event)."""
    payload: dict[str, Any] = {
        "path": path,
        "remote": asdict(remote) if remote else None,
        "reason": reason,
        "large": large,
    }
    if basis is not False:
        payload["basis"] = _basis(basis if isinstance(basis, IndexEntry) else None)
    return payload


def _basis(entry: IndexEntry | None) -> list[Any] | None:
    if entry is None:
        return None
    return [entry.size, entry.mtime_ns, entry.inode, entry.md5, entry.remote.hash]


class Applier:
    def __init__(
        self,
        client: SwiftClient,
        transfer: Transfer,
        index: Index,
        container: str,
        *,
        threshold: int,
        strict: bool,
        mirror: bool,
        folders: tuple[FolderConfig, ...],
        guards: GuardState,
        gate: Gate,
        ledger: SegmentLedger,
        enqueue: Callable[[list[tuple[str, str, dict[str, Any]]]], None],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._enqueue = enqueue
        self._ledger = ledger
        self._client = client
        self._transfer = transfer
        self._index = index
        self._container = container
        self._threshold = threshold
        self._strict = strict
        self._mirror = mirror
        self._folders = folders
        self._guards = guards
        self._gate = gate
        # Wall clock for IndexEntry.verified_ns: compared with file timestamps, which
        # come from the wall clock too (a monotonic clock would mean nothing there).
        self._clock = clock

    def run(self, key: str, op: str, payload: Mapping[str, Any]) -> Outcome:
        remote = RemoteEntry(**payload["remote"]) if payload.get("remote") else None
        if op == DELETE_TREE:
            return self._delete_tree(key)
        if op == DELETE and not self._exists(key):
            return self._delete(key, remote, bool(payload.get("large")))
        # Whatever queued it, a job acts on what the path is now: a delete (a reconcile's,
        # coalesced over a newer upload of the same path) never wins over a file that
        # exists; the file is synced instead. And the gate again: the watcher's hint or the
        # scan may be stale, and a file swapped for a symlink to /etc/passwd is not followed.
        folder = self._folder_of(key)
        rel = key[len(folder.prefix) :]
        local = admit(folder, rel, self._gate)
        if not isinstance(local, LocalEntry):
            if not os.path.lexists(os.path.join(folder.path, rel)):
                # Gone again before we got to it (a temporary file, or a file moved away
                # after the reconcile looked): its delete event, or the reconcile, settles
                # the object. Not a bad file.
                return Outcome("nothing", key, 0, "vanished")
            if local is None:
                return Outcome("nothing", key, 0, "not synced (excluded or kcsync's state)")
            raise LocalFileError(f"{local.path}: {local.reason}")
        outcome = self._act(local, op, payload, remote)
        if folder.after_upload == "delete" and outcome.in_bucket:
            return self._remove_uploaded(folder, local, outcome)
        return outcome

    def _act(
        self, local: LocalEntry, op: str, payload: Mapping[str, Any], remote: RemoteEntry | None
    ) -> Outcome:
        key = local.key
        if op in (SYNC, DELETE):
            return self._sync(local)
        if op == MOVE:
            return self._move(local, str(payload["src"]))
        previous = self._index.get(key)
        moved_on = "basis" in payload and payload["basis"] != _basis(previous)
        if moved_on and previous is not None and previous.trusts(local):
            # Another job (say, one left by a killed run) synced this very file after the
            # reconcile looked: the work is done.
            return Outcome("nothing", key, 0, "already synced", in_bucket="index")
        if moved_on and previous is not None and stat_key(previous) == stat_key(local):
            # Synced after the reconcile looked, but recorded in the file's timestamp tick
            # (that job uploaded a file written just before): compare the bytes with what
            # it sent rather than upload again, or with the listing, which predates it.
            return self._sync(local)
        if op == CHECK and remote is not None:
            return self._check(local, remote, previous)
        return self._upload(local, previous, None, str(payload.get("reason", "")))

    def _upload(
        self, local: LocalEntry, previous: IndexEntry | None, md5: str | None, reason: str
    ) -> Outcome:
        started = self._clock()  # before the transfer reads the file (IndexEntry.verified_ns)
        result = (
            self._transfer.put_slo(local)
            if plan.use_slo(local.size, self._threshold)
            else self._transfer.put(local, md5)
        )
        # Recorded with the stat the upload read under, whatever the file is now: the
        # index must say what the bucket holds, and a later look then sees any change.
        self._record(local, result, verified_ns=started)
        # Our PUT replaced whatever the object was: every other group of ours for it is
        # referenced by nothing now (a new SLO references only its own group).
        self._replaced(local.key, result.segment_prefix, previous)
        log.info("uploaded", object=local.key, bytes=local.size, reason=reason)
        # The transfer checked the file after its last read, but a write between that check
        # and the record above (a PUT can take minutes) would wait for the next reconcile:
        # FileChangedError makes the worker pool run this job again in a second.
        check_unchanged(local)
        return Outcome("uploaded", local.key, result.bytes_sent, reason, in_bucket="server")

    def _sync(self, local: LocalEntry) -> Outcome:
        """A watcher said the file changed; the index knows what we sent last."""
        previous = self._index.get(local.key)
        if previous is not None and previous.trusts(local):
            return Outcome("nothing", local.key, 0, "unchanged", in_bucket="index")
        md5 = None
        if previous is not None and previous.size == local.size:
            started = self._clock()
            same, md5 = _same_content(local, previous)
            if same:  # touched (or too recent to trust), not changed: remember the new stat
                self._index.put(_restated(previous, local, started))
                return Outcome("nothing", local.key, 0, "content unchanged", in_bucket="index")
        return self._upload(local, previous, md5, "changed")

    def _move(self, local: LocalEntry, src: str) -> Outcome:
        """A rename: a server-side copy when the object at ``src`` holds this very file.

        Only plain objects are copied: a copied SLO manifest would share its segment group
        with ``src``, whose delete removes them; large files are re-uploaded.
        """
        source = self._index.get(src)
        outcome: Outcome | None = None
        verified_ns = None if source is None else self._same_plain_file(source, local)
        if source is not None and verified_ns is not None:
            previous = self._index.get(local.key)
            # The copy replaces local.key on the server before its Etag can say whether it
            # copied this file. In a swap (p -> swap, q -> p, swap -> q) the other half may
            # have just re-uploaded src with new content: the copy then puts that content
            # under local.key, and an index entry for local.key (recorded by a sync of the
            # same swap a moment before) would make the fallback below call the file
            # "unchanged" and leave the wrong content in the bucket. Forgotten first, so
            # that neither the fallback nor a kill right after the copy can trust it.
            self._index.delete(local.key)
            try:
                etag = self._client.copy_object(
                    self._container, src, local.key, object_headers(local, source.md5)
                )
            except NotFoundError:
                etag = None
            if etag == source.md5:
                signature = RemoteSignature(source.md5, local.size, None)
                self._record(
                    local,
                    Uploaded(source.md5, 0, None, signature, 0),
                    verified_ns=verified_ns,
                )
                # The copy overwrote whatever local.key was, as an upload does.
                self._replaced(local.key, None, previous)
                log.info("copied", object=local.key, source=src)
                outcome = Outcome("copied", local.key, 0, f"renamed from {src}", in_bucket="server")
        if outcome is None:
            outcome = self._sync(local)
        if source is not None and not self._exists(src):
            # The other half of the move: not a delete of content (it lives on under the
            # new name), and like any delete it acts on what the old path is now.
            self._delete(src, None, False)
        return outcome

    def _remove_uploaded(
        self, folder: FolderConfig, local: LocalEntry, outcome: Outcome
    ) -> Outcome:
        """after_upload: delete. The file goes only once the bucket holds it, and only if it
        is still exactly what was read; its object stays (the folder is keep, config)."""
        if outcome.in_bucket == "index" and not self._still_there(local.key):
            # The index says we sent this very file, but the object may have been deleted
            # since: one HEAD before a file is removed for good; the reconcile re-uploads.
            return outcome
        if str(folder_path_for(folder, local.key)) != local.path:
            log.warning("not removed after upload", object=local.key, reason="a symlink")
            return outcome
        why = remove_if_unchanged(local, folder.path)
        if why is not None:
            log.info("not removed after upload", object=local.key, reason=why)
            return outcome
        # Its own delete event (or the next reconcile) would forget it too; now is sooner.
        self._index.delete(local.key)
        log.info("removed after upload", object=local.key)
        return replace(outcome, removed_local=True)

    def _still_there(self, key: str) -> bool:
        entry = self._index.get(key)
        facts = self._client.head_object(self._container, key)
        if entry is None or facts is None:
            return False
        expected = entry.slo_etag if entry.segment_size else entry.md5
        return bool(expected) and facts.etag == expected and facts.size == entry.size

    def _replaced(self, key: str, live: str | None, previous: IndexEntry | None) -> None:
        """``key`` was just overwritten or deleted by us: retire and delete the segment
        groups it referenced before. Known garbage, so no grace period applies; a failure
        here leaves them retired for the collector, and never fails the job."""
        earlier = [previous.segment_prefix] if previous and previous.segment_prefix else []
        retired = self._ledger.settle(key, live, also_retire=earlier, now=time.time())
        if not retired:
            return
        try:
            self._transfer.delete_groups(retired)
        except KcsyncError as exc:
            log.warning("old segments left for the collector", object=key, error=str(exc))

    def _same_plain_file(self, source: IndexEntry, local: LocalEntry) -> int | None:
        """The verified_ns to record when ``local`` is the file ``source`` recorded as a
        plain object (so a copy of it is this file); None when it is not, or may not be."""
        # Not trusts(): the rename itself moved ctime.
        if source.segment_size or (source.size, source.mtime_ns, source.inode) != (
            local.size,
            local.mtime_ns,
            local.inode,
        ):
            return None
        if not source.racy:
            return source.verified_ns  # no read here: the source's read vouches
        # Recorded in the file's timestamp tick (a file renamed right after its upload): a
        # rewrite in that tick would be copied from the stale object unless the bytes are
        # compared. A hash still beats an upload.
        started = self._clock()
        return started if hash_file(local)[0] == source.md5 else None

    def _record(self, local: LocalEntry, result: Uploaded, *, verified_ns: int) -> None:
        self._index.put(
            IndexEntry(
                key=local.key,
                size=local.size,
                mtime_ns=local.mtime_ns,
                inode=local.inode,
                ctime_ns=local.ctime_ns,
                md5=result.md5,
                segment_size=result.segment_size,
                slo_etag=result.slo_etag,
                remote=result.remote,
                segment_prefix=result.segment_prefix,
                verified_ns=verified_ns,
            )
        )

    def _check(
        self, local: LocalEntry, remote: RemoteEntry, previous: IndexEntry | None
    ) -> Outcome:
        # Taken before any read below. When nothing is read (a trusted entry's digest is
        # reused), it is still sound: the content was known at the trusted verification
        # and, outside the racy window, any write since would have moved the stat.
        started = self._clock()
        unchanged = previous is not None and previous.trusts(local)
        md5 = previous.md5 if previous is not None and unchanged and previous.md5 else None
        facts: ObjectFacts | None = None
        segments_match: bool | None = None
        digest: str | None = None
        if plan.needs_head(remote, local):
            facts = self._client.head_object(self._container, remote.name)
            if facts is None or facts.size != local.size:
                # Nothing to compare: sent as it is, with no pass over the file first (an
                # SLO hashes its segments as they stream out).
                reason = "object vanished" if facts is None else "size differs"
                return self._upload(local, previous, None, reason)
            uniform = _uniform_segment_size(facts, previous)
            if uniform:
                if (
                    unchanged
                    and previous is not None
                    and previous.holds_slo_digest
                    and (previous.segment_size == uniform)
                ):
                    digest = previous.slo_etag
                else:
                    ranges = uniform_ranges(local.size, uniform)
                    _, parts = hash_file(local, ranges, whole_md5=False)
                    digest = slo_etag(parts)
                # Both servers give an SLO the MD5 of its segment MD5s as Etag: for our
                # uniform segments that is the digest itself, whatever another tool has
                # since done to the object's metadata (a `swift post` drops ours).
                facts = replace(facts, slo_digest=facts.etag, segment_size=uniform)
            else:
                segments = self._foreign_segments(facts, local)
                if segments is not None:
                    md5, parts = hash_file(local, _ranges([size for size, _ in segments]))
                    segments_match = parts == [h for _, h in segments]
        if md5 is None and digest is None:
            md5, _ = hash_file(local)
        decision = plan.resolve(
            local,
            md5 or "",
            remote,
            facts,
            segments_match=segments_match,
            strict=self._strict,
            slo_digest=digest,
        )
        if decision.action is not plan.Action.ADOPT:
            return self._upload(local, previous, md5, decision.reason)
        large = facts is not None and (facts.is_slo or facts.dlo_manifest is not None)
        signature = RemoteSignature(
            remote.hash, remote.bytes, remote.last_modified if large else None
        )
        segment_size = (facts.segment_size or 1) if facts is not None and facts.is_slo else 0
        live = live_group(local.key, facts, previous, bucket_tag(self._container))
        # The object references ``live`` (or nothing of ours); other groups of it are
        # retired, and the collector deletes them only once the server agrees.
        self._ledger.settle(local.key, live, now=time.time())
        self._record(
            local,
            Uploaded(
                md5 or "",
                segment_size,
                digest or (facts.etag if large and facts else None),
                signature,
                0,
                live,
            ),
            verified_ns=started,
        )
        event = (
            "adopted" if "digest not comparable" not in decision.reason else "adopted-unverified"
        )
        # Per file at debug: a first run over a bucket another tool filled adopts every
        # object, and the run summary counts them.
        (log.warning if event == "adopted-unverified" else log.debug)(
            event, object=local.key, reason=decision.reason
        )
        # Only an adoption that compared a digest vouches for the bytes: an ingest folder
        # never removes a file on equal size and mtime alone.
        verified = "server" if event == "adopted" else ""
        return Outcome("adopted", local.key, 0, decision.reason, in_bucket=verified)

    def _foreign_segments(
        self, facts: ObjectFacts | None, local: LocalEntry
    ) -> list[tuple[int, str]] | None:
        """(size, md5) of the segments of a manifest kcsync did not write, where the server
        tells them: Swift's stored SLO manifest, or a DLO's segment listing. RGW keeps the
        SLO manifest to itself (empty body), so there only size and mtime remain."""
        if facts is None or facts.ours or facts.size != local.size or not facts.size:
            return None
        return self._client.large_object_segments(self._container, local.key, facts)

    def _exists(self, key: str) -> bool:
        path = folder_path_for(self._folder_of(key), key)
        return path is not None and os.path.lexists(path)

    def _delete(self, key: str, remote: RemoteEntry | None, large: bool) -> Outcome:
        previous = self._index.get(key)
        if not self._folder_of(key).mirrors(self._mirror):
            self._index.delete(key)
            return Outcome("nothing", key, 0, "keep mode")
        if remote is None and previous is None:
            # A delete the watcher saw, of a name kcsync holds nothing for: a scratch file
            # never uploaded, or an object another delete job has just removed. (After
            # the reconcile at start the index knows every object of the folder; one it
            # does not, the next reconcile finds in its listing.)
            return Outcome("nothing", key, 0, "not in the bucket")
        self._guard_folder(key)
        deleted = self._delete_object(key, remote, large, previous)
        return Outcome("deleted", key) if deleted else Outcome("nothing", key, 0, "not there")

    def _delete_object(
        self, key: str, remote: RemoteEntry | None, large: bool, previous: IndexEntry | None
    ) -> bool:
        """Delete one object and what kcsync recorded of it; whether it was there (only a
        delete of an object that exists counts: a scratch file never uploaded costs one
        404 and nothing else)."""
        large = large or (previous is not None and previous.segment_size > 0)
        large = large or (remote is not None and remote.may_be_large_object)
        deleted = self._client.delete_slo(self._container, key) if large else 0
        # Not an SLO after all (or RGW's answer said nothing was deleted): a plain DELETE.
        existed = bool(deleted) or self._client.delete_object(self._container, key)
        self._index.delete(key)
        self._replaced(key, None, previous)
        if existed:
            log.info("deleted", object=key)
        return existed

    def _delete_tree(self, key: str) -> Outcome:
        """A directory vanished (deleted, or moved out of the folder): each object of ours
        under it whose file is gone becomes a delete job of its own.

        From the index, not a listing: `rm -rf` makes a job per sub-directory too, and a
        listing taken while those run would name objects they are deleting. A delete job
        finds the entry gone once the first one has deleted it, so each object is deleted
        once, by whichever comes first, and the workers share the work. Objects kcsync
        never recorded (another tool's) are left to the reconcile, which lists the bucket.
        """
        folder = self._folder_of(key)
        state_rel = self._gate.state_rel(folder)
        victims = [
            e.key
            for e in self._index.iter_sorted(key)
            if ours_to_judge(e.key[len(folder.prefix) :], folder.exclude, state_rel)
            and not _exists_locally(folder, e.key)
        ]
        if not folder.mirrors(self._mirror):
            for name in victims:
                self._index.delete(name)
            return Outcome("nothing", key, 0, "keep mode")
        if victims:
            self._guard_folder(key)
            self._enqueue([(name, DELETE, {"reason": f"{key} removed"}) for name in victims])
        return Outcome("nothing", key, 0, f"{len(victims)} deletes queued")

    def _folder_of(self, key: str) -> FolderConfig:
        return next(f for f in self._folders if key.startswith(f.prefix))

    def _guard_folder(self, key: str) -> None:
        """A delete the watcher saw is the user's own act and is not counted against the
        run limits, but a disk that goes away reports its files as gone too: the folder
        must still be there, on the disk it was on at the last successful run."""
        folder = self._folder_of(key)
        place = str(folder.path)
        try:
            device: int | None = os.stat(folder.path).st_dev
            with os.scandir(folder.path):
                ok = True
        except OSError:
            device, ok = None, False
        why = guard.job_refusal(ok=ok, device=device, known_device=self._guards.device(place))
        if why:
            raise GuardError(
                f"{place}: {why}; deletes refused (see `kcsync status`, and "
                "`kcsync approve-deletes` once you have checked)"
            )


def _exists_locally(folder: FolderConfig, key: str) -> bool:
    path = folder_path_for(folder, key)
    return path is None or os.path.lexists(path)  # a name we could not map: not ours


def _restated(entry: IndexEntry, local: LocalEntry, verified_ns: int) -> IndexEntry:
    return replace(
        entry,
        mtime_ns=local.mtime_ns,
        inode=local.inode,
        ctime_ns=local.ctime_ns,
        verified_ns=verified_ns,
    )


def live_group(
    key: str, facts: ObjectFacts | None, previous: IndexEntry | None, tag: str
) -> str | None:
    """The group of ours an SLO references, from what the server said of it.

    Its upload id metadata names it. Without it (metadata replaced by another tool's POST),
    an Etag equal to the one we recorded means the same manifest still stands. SLOs kcsync
    wrote before upload ids name their segments after the stored mtime: derived, so the
    result is only ever used to retire them once replaced, never to delete live data.
    """
    if facts is None or not facts.is_slo:
        return None
    if facts.upload_id and upload_id_of(group_prefix(tag, facts.upload_id)):
        return group_prefix(tag, facts.upload_id)
    if previous is not None and previous.segment_prefix and previous.slo_etag == facts.etag:
        return previous.segment_prefix
    if not facts.ours or facts.segment_size is None or facts.mtime_raw is None:
        return None
    mtime_ns = parse_mtime_ns(facts.mtime_raw)
    if mtime_ns is None:
        return None
    return legacy_segment_prefix(key, mtime_ns, facts.size, facts.segment_size)


def _uniform_segment_size(facts: ObjectFacts, previous: IndexEntry | None) -> int | None:
    """The segment size of an SLO cut the way kcsync cuts them, when known: from its own
    metadata, or from the index entry of the SLO we uploaded there."""
    if not facts.is_slo or facts.size <= 0:
        return None
    if facts.segment_size:
        return facts.segment_size
    if previous is not None and previous.holds_slo_digest:
        return previous.segment_size
    return None


def _same_content(local: LocalEntry, previous: IndexEntry) -> tuple[bool, str | None]:
    """Whether a same-size file still holds what ``previous`` recorded, hashed the way it
    was recorded; plus its whole-file MD5 when that was the way (a plain upload reuses it)."""
    if previous.holds_slo_digest:
        ranges = uniform_ranges(local.size, previous.segment_size)
        _, parts = hash_file(local, ranges, whole_md5=False)
        return slo_etag(parts) == previous.slo_etag, None
    md5, _ = hash_file(local)
    return md5 == previous.md5, md5


def _ranges(sizes: list[int]) -> list[tuple[int, int]]:
    ranges, offset = [], 0
    for size in sizes:
        ranges.append((offset, size))
        offset += size
    return ranges

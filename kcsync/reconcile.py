"""A full pass: merge the local scan, the listing and the index, and turn differences into
jobs (DESIGN §2). Memory stays flat: every stream is read lazily, in name order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from kcsync import guard, plan
from kcsync.apply import CHECK, DELETE, SYNC, UPLOAD, job_payload
from kcsync.config import FolderConfig
from kcsync.gate import Gate, ours_to_judge
from kcsync.guard import FolderFacts, Limits
from kcsync.list_plan import WHOLE
from kcsync.listing import list_prefix, listed
from kcsync.localfs import FolderUnavailable, folder_path_for, scan
from kcsync.merge import OrderError, merge3
from kcsync.model import BadEntry, IndexEntry, LocalEntry, RemoteEntry, RemoteSignature
from kcsync.progress import Stats
from kcsync.store.guards import GuardState
from kcsync.store.index import Index
from kcsync.swift.client import SwiftClient

log = structlog.get_logger("kcsync.reconcile")


def prefetched(pages: Iterator[list[RemoteEntry]]) -> Iterator[RemoteEntry]:
    """Entries of ``pages``, fetching the next page in a thread while this one is merged.

    A listing is a round trip per 1000-10000 names; fetched in line, the scan and the merge
    would wait for each one. A page of 10,000 names is about 4 MB, and the pages held at once
    were what a rerun of 10^6 files held beyond one of 10^4, so the hand-over is a rendezvous:
    the next page is fetched only once the consumer has taken this one (one page in use, one
    being fetched, never a third waiting), and entries are let go as they are merged. This is
    a listing of one range (kcsync.listing).
    """
    return listed([WHOLE], lambda _r: pages, in_flight=1, ahead=False)


class Sink(Protocol):
    """Where decisions go: the job queue and index in a real run, stdout in a dry run."""

    def enqueue(self, key: str, op: str, payload: dict[str, object], size: int) -> None: ...
    def adopt(self, entry: IndexEntry) -> None: ...
    def forget(self, key: str, *, gone: bool) -> None:
        """Drop the index entry; ``gone``: the object left the bucket too."""

    def guarded(self, folder: str, verdict: GuardVerdict) -> None:
        """What the delete guard decided for a folder (recorded, or printed)."""

    def flush(self) -> None:
        """Make every decision so far durable (a sink may batch them)."""


@dataclass
class Report:
    drift: int = 0  # paths that needed work
    folder_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why deletes were refused


@dataclass
class _FolderPass:
    local_files: int = 0
    remote_objects: int = 0
    deletes: list[tuple[str, RemoteEntry]] = field(default_factory=list)
    delete_count: int = 0
    protected: set[str] = field(default_factory=set)
    protected_prefixes: list[str] = field(default_factory=list)

    def is_protected(self, key: str) -> bool:
        return key in self.protected or any(key.startswith(p) for p in self.protected_prefixes)


@dataclass(frozen=True)
class GuardVerdict:
    """The delete guard's decision for one folder in one reconcile."""

    deletes: int
    refused: str | None  # why, or None when the deletes go ahead
    device: int  # the folder's root device, trusted from now on when not refused
    approved: int | None  # the operator's approval this decision used (or ignored)


class Reconciler:
    def __init__(
        self,
        folders: tuple[FolderConfig, ...],
        client: SwiftClient,
        container: str,
        index: Index,
        sink: Sink,
        stats: Stats,
        *,
        mirror: bool,
        limits: Limits,
        guards: GuardState,
        gate: Gate,
        page_size: int,
    ) -> None:
        self._folders = folders
        self._client = client
        self._container = container
        self._index = index
        self._sink = sink
        self._stats = stats
        self._mirror = mirror
        self._limits = limits
        self._guards = guards
        self._gate = gate
        self._page_size = page_size

    def run(self) -> Report:
        try:
            return self._run()
        finally:
            self._sink.flush()

    def _run(self) -> Report:
        report = Report()
        passes: list[tuple[FolderConfig, _FolderPass, GuardVerdict]] = []
        for folder in self._folders:
            place = str(folder.path)
            approved = self._guards.approved(place)
            try:
                fp = self._folder(folder, report, keep=max(self._limits.max_per_run, approved or 0))
                device = os.stat(folder.path).st_dev
            except (FolderUnavailable, OrderError, OSError) as exc:
                report.folder_errors.append(str(exc))
                self._stats.add(failed_folders=1)
                log.error("folder skipped", folder=place, error=str(exc))
                continue
            facts = FolderFacts(
                ok=True,
                device=device,
                known_device=self._guards.device(place),
                local_files=fp.local_files,
                remote_objects=fp.remote_objects,
                deletes=fp.delete_count,
                approved=approved,
            )
            why = guard.refusal(facts, self._limits)
            passes.append((folder, fp, GuardVerdict(fp.delete_count, why, device, approved)))
        # Each folder keeps to the limit; a run over many folders must keep to it too
        # (what an operator approved aside).
        unapproved = {id(v) for _, _, v in passes if v.refused is None and v.approved is None}
        total = sum(v.deletes for _, _, v in passes if id(v) in unapproved)
        if total > self._limits.max_per_run:
            why = f"{total} deletes in all exceed delete.max_per_run ({self._limits.max_per_run})"
            passes = [
                (f, fp, replace(v, refused=why) if id(v) in unapproved else v)
                for f, fp, v in passes
            ]
        deletes = 0
        for folder, fp, verdict in passes:
            self._sink.guarded(str(folder.path), verdict)
            if verdict.refused:
                self._refuse(report, verdict.deletes, f"{folder.path}: {verdict.refused}")
                continue
            for key, remote in fp.deletes:
                path = folder_path_for(folder, key)
                self._sink.enqueue(
                    key,
                    DELETE,
                    job_payload(
                        path=str(path) if path else None,
                        remote=remote,
                        reason="file removed",
                        large=remote.may_be_large_object,
                    ),
                    0,
                )
            deletes += len(fp.deletes)
        report.drift += deletes
        return report

    def _refuse(self, report: Report, count: int, why: str) -> None:
        report.refused.append(why)
        self._stats.add(refused_deletes=count)
        log.error("deletes refused", count=count, reason=why)

    def _folder(self, folder: FolderConfig, report: Report, *, keep: int) -> _FolderPass:
        fp = _FolderPass()
        merged = merge3(
            self._local(folder, fp),
            lambda e: e.key,
            self._remote(folder, fp),
            lambda e: e.name,
            self._index.iter_sorted(folder.prefix),
            lambda e: e.key,
        )
        for key, local, remote, entry in merged:
            decision = plan.decide(local, remote, entry, mirror=folder.mirrors(self._mirror))
            action = decision.action
            if action is plan.Action.SKIP:
                self._stats.add(unchanged=1 if local else 0)
                if local is not None and folder.after_upload == "delete":
                    self._leftover(local, remote)
                continue
            report.drift += action is not plan.Action.FORGET
            if action is plan.Action.FORGET:
                self._sink.forget(key, gone=remote is None)
            elif action is plan.Action.ADOPT:
                assert entry is not None and remote is not None
                signature = RemoteSignature(remote.hash, remote.bytes, None)
                # Only the listing moved (decide trusted the stat): verified_ns stays as is.
                self._sink.adopt(replace(entry, remote=signature))
                self._stats.add(unchanged=1)
            elif action is plan.Action.DELETE:
                assert remote is not None
                # A file the scan could not read may well exist: never delete its object.
                # (Its BadEntry sorts before this name, so it is already known here.)
                if fp.is_protected(key):
                    continue
                fp.delete_count += 1
                # Keep one more than the limit: enough to run them or to refuse them all.
                if len(fp.deletes) <= keep:
                    fp.deletes.append((key, remote))
            else:
                assert local is not None
                op = UPLOAD if action is plan.Action.UPLOAD else CHECK
                payload = job_payload(
                    path=local.path, remote=remote, reason=decision.reason, basis=entry
                )
                self._sink.enqueue(key, op, payload, local.size)
        return fp

    def _leftover(self, local: LocalEntry, remote: RemoteEntry | None) -> None:
        """An ingest folder's file that is in the bucket already: its run stopped between
        the upload and the removal (or the removal was refused). A sync job removes it,
        after one HEAD confirms the object (Applier._remove_uploaded)."""
        payload = job_payload(path=local.path, remote=remote, reason="uploaded; to remove")
        self._sink.enqueue(local.key, SYNC, payload, 0)

    def _local(self, folder: FolderConfig, fp: _FolderPass) -> Iterator[LocalEntry]:
        for item in scan(folder, self._gate):
            if isinstance(item, BadEntry):
                self._bad(item, fp)
                continue
            fp.local_files += 1
            yield item

    def _bad(self, item: BadEntry, fp: _FolderPass) -> None:
        self._stats.add_bad(item.path, item.reason, ignored=item.ignored)
        log.warning(item.event, path=item.path, reason=item.reason)
        if item.protects_prefix:
            fp.protected_prefixes.append(item.protects)
        elif item.protects:
            fp.protected.add(item.protects)

    def _remote(self, folder: FolderConfig, fp: _FolderPass) -> Iterator[RemoteEntry]:
        # Cut where the index saw last run's names, listed a few ranges at once: a rerun
        # waits for a round or two of pages instead of one page after another.
        listing = list_prefix(
            self._client, self._container, folder.prefix, self._index, page_size=self._page_size
        )
        state_rel = self._gate.state_rel(folder)
        for remote in listing:
            if not ours_to_judge(remote.name[len(folder.prefix) :], folder.exclude, state_rel):
                continue  # never deleted: another tool put it there
            fp.remote_objects += 1
            yield remote

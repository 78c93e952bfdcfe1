"""The Swift API calls a sync needs, over one pooled requests.Session.

Request-level retries live here (DESIGN §2): connection errors and the statuses in
``retry.RETRY_STATUSES`` are retried a few times with jittered backoff, honouring
Retry-After and rewinding the body. A 401 re-authenticates once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests
import structlog
import urllib3

from kcsync.errors import AuthError, NotFoundError, RemoteError, TransientRemoteError
from kcsync.model import ObjectFacts, RemoteEntry
from kcsync.swift.auth import Authenticator, redirect_error
from kcsync.swift.retry import RETRY_STATUSES, Backoff, retry_after
from kcsync.swift.session import Session

log = structlog.get_logger("kcsync.swift")


class Body(Protocol):
    """A request body that can be sent again after a failed attempt."""

    def __len__(self) -> int: ...
    def read(self, n: int = -1) -> bytes: ...
    def rewind(self) -> None: ...


_NOT_A_MANIFEST = ("Not an SLO manifest", "400 Bad Request")

# KakaoCloud's API reference marks "Content-Type: application/json" as required ("Fixed to
# application/json") on container calls, on object HEAD, GET and DELETE, on the SLO manifest
# PUT and on the temp-URL call; its gateway may refuse them without it. Stock Swift and RGW
# ignore the header on a call without a body, so it goes on those calls everywhere. Never on
# an object PUT or a copy: there the header is the stored object's type.
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ServerLimits:
    """What /info says; the defaults are Swift's own when /info is unavailable."""

    max_object_name_length: int = 1024
    container_listing_limit: int = 10000
    max_file_size: int = 5 * 1024**3
    max_manifest_segments: int = 1000
    min_segment_size: int = 1
    max_meta_value_length: int = 256
    slo: bool = True

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServerLimits:
        swift = info.get("swift") or {}
        slo = info.get("slo")
        d = cls()
        return cls(
            # RGW names it max_object_name_size.
            max_object_name_length=int(
                swift.get(
                    "max_object_name_length",
                    swift.get("max_object_name_size", d.max_object_name_length),
                )
            ),
            container_listing_limit=int(
                swift.get("container_listing_limit", d.container_listing_limit)
            ),
            max_file_size=int(swift.get("max_file_size", d.max_file_size)),
            max_manifest_segments=int(
                (slo or {}).get("max_manifest_segments", d.max_manifest_segments)
            ),
            min_segment_size=int((slo or {}).get("min_segment_size", d.min_segment_size)),
            max_meta_value_length=int(swift.get("max_meta_value_length", d.max_meta_value_length)),
            slo=slo is not None,
        )


def info_url(storage_url: str) -> str:
    """/info sits beside the /v1 path: host/info on Swift, host/swift/info on RGW."""
    head, sep, _ = storage_url.rpartition("/v1")
    return f"{head if sep else storage_url}/info"


def quote_name(name: str) -> str:
    """Percent-encode a name for a URL path, keeping "/" between segments.

    "." and ".." segments are escaped too: requests and urllib3 resolve them, so "x/../y"
    would otherwise address object "y".
    """
    if "/." not in "/" + name:
        # No segment starts with a dot, so none is "." or "..": quoting the whole name at
        # once gives the same string, without a call per segment (one name per file sent).
        return quote(name.encode("utf-8"), safe="/")
    return "/".join(
        "%2E" * len(seg) if seg in (".", "..") else quote(seg.encode("utf-8"), safe="")
        for seg in name.split("/")
    )


def strip_quotes(etag: str | None) -> str:
    return (etag or "").strip().strip('"')


def facts_from_headers(h: Mapping[str, str]) -> ObjectFacts:
    """What the headers of a HEAD or GET say about an object (its metadata included)."""
    mtime = h.get("X-Object-Meta-Mtime")
    segment_size = h.get("X-Object-Meta-Kcsync-Segment-Size")
    try:
        mtime_value = float(mtime) if mtime else None
    except ValueError:
        mtime_value = None
    return ObjectFacts(
        size=int(h.get("Content-Length", "0")),
        etag=strip_quotes(h.get("Etag")),
        mtime=mtime_value,
        md5=h.get("X-Object-Meta-Kcsync-Md5"),
        slo_digest=h.get("X-Object-Meta-Kcsync-Slo-Etag"),
        upload_id=h.get("X-Object-Meta-Kcsync-Upload"),
        segment_size=int(segment_size) if segment_size and segment_size.isdigit() else None,
        is_slo=h.get("X-Static-Large-Object", "").lower() == "true",
        dlo_manifest=h.get("X-Object-Manifest"),
        mtime_raw=mtime,
    )


# Body reads of this size: large enough that a Python call per chunk does not show at
# hundreds of MB/s, small enough that workers x chunk stays a few MB.
READ_CHUNK = 1024 * 1024


@dataclass
class ObjectStream:
    """The body of a GET, read once. ``facts`` come from the answer's own headers (for a
    ranged GET, ``size`` is the range's length, not the object's)."""

    name: str
    facts: ObjectFacts
    length: int | None  # Content-Length of this answer
    _resp: requests.Response

    def chunks(self, size: int = READ_CHUNK) -> Iterator[bytes]:
        """The bytes as stored; TransientRemoteError when the connection breaks or the
        body ends before Content-Length (both servers close a stream they cannot finish:
        Swift does so when an SLO segment no longer matches its manifest)."""
        got = 0
        try:
            for chunk in self._resp.raw.stream(size, decode_content=False):
                got += len(chunk)
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientRemoteError(f"GET {self.name}: body cut short: {exc}") from None
        if self.length is not None and got != self.length:
            raise TransientRemoteError(
                f"GET {self.name}: body ended at {got} of {self.length} bytes"
            )


class SwiftClient:
    def __init__(
        self,
        auth: Authenticator,
        session: requests.Session,
        *,
        timeout: float = 60.0,
        attempts: int = 5,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        json_manifest: bool = False,
    ) -> None:
        """``json_manifest``: send SLO manifests as KakaoCloud documents them (see
        put_manifest); off elsewhere, where it would cost a request and, on RGW, a listing
        entry kcsync cannot recognise."""
        self._json_manifest = json_manifest
        self._auth = auth
        self._session = session
        # kcsync's own Session has a cheaper path for bodies already in memory; a plain
        # requests.Session (tests, tools) goes through requests for everything.
        self._send_bytes = session.send_bytes if isinstance(session, Session) else None
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff or Backoff()
        self._count_lock = threading.Lock()
        self._sleep = sleep
        self.request_count = 0  # read by tests and benchmarks: what a run cost
        self.requests_by_method: dict[str, int] = {}
        # Read by the metrics at scrape time: answers by (method, "2xx".."5xx" or "error"
        # for no answer), and requests sent again after a failed attempt.
        self.answers: dict[tuple[str, str], int] = {}
        self.retries = 0
        self.unauthorized = 0  # 401 answers met (each re-authenticated once)

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, storage_url: str, container: str | None, name: str | None) -> str:
        url = storage_url
        if container is not None:
            url += "/" + quote_name(container)
        if name is not None:
            url += "/" + quote_name(name)
        return url

    def request(
        self,
        method: str,
        container: str | None = None,
        name: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | memoryview | Body | None = None,
        url: str | None = None,
        ok: tuple[int, ...] = (),
        stream: bool = False,
    ) -> requests.Response:
        """Send one request with retries; return a 2xx answer (or one of ``ok``) or raise.

        With ``stream`` the body of the answer returned is not read: the caller reads it
        and must close the response (which gives the connection back to the pool).
        """
        reauthenticated = False
        attempt = 0
        while True:
            creds = self._auth.credentials()
            target = url or self._url(creds.storage_url, container, name)
            all_headers = {"X-Auth-Token": creds.token, **(headers or {})}
            if body is not None:
                all_headers["Content-Length"] = str(len(body))
                if not isinstance(body, bytes | memoryview):
                    body.rewind()
            with self._count_lock:
                self.request_count += 1
                self.requests_by_method[method] = self.requests_by_method.get(method, 0) + 1
            try:
                if self._send_bytes is not None and type(body) is bytes and not (params or stream):
                    # A small file's PUT: the same request, without requests' per-call
                    # bookkeeping (Session.send_bytes); never follows a redirect either.
                    resp = self._send_bytes(method, target, all_headers, body, self._timeout)
                else:
                    resp = self._session.request(
                        method,
                        target,
                        params=params,
                        headers=all_headers,
                        data=body,  # type: ignore[arg-type]  # a memoryview is sent as is
                        timeout=self._timeout,
                        stream=stream,
                        # Following would resend X-Auth-Token to the Location's host: a 3xx
                        # becomes an error instead (auth.redirect_error says why).
                        allow_redirects=False,
                    )
            except requests.RequestException as exc:
                self._answered(method, "error")
                error: RemoteError = TransientRemoteError(f"{method} {target}: {exc}")
                wait = None
            else:
                self._answered(method, f"{resp.status_code // 100}xx")
                if 200 <= resp.status_code < 300 or resp.status_code in ok:
                    return resp
                if stream:
                    # An error body is short: read it for the message, free the connection.
                    resp.content  # noqa: B018
                    resp.close()
                if resp.status_code == 401 and not reauthenticated:
                    # The token expired early or was revoked: one fresh token, then give up.
                    # Counted and logged: with refresh before expiry there should be none.
                    log.info("401, re-authenticating", method=method)
                    with self._count_lock:
                        self.unauthorized += 1
                    self._auth.invalidate(creds.token)
                    reauthenticated = True
                    self._retried()
                    continue
                error = _error_for(method, target, resp)
                if not isinstance(error, TransientRemoteError):
                    raise error
                wait = retry_after(resp.headers.get("Retry-After"))
            attempt += 1
            if attempt >= self._attempts:
                raise error
            delay = wait if wait is not None else self._backoff.delay(attempt)
            log.debug("retrying", method=method, error=str(error), delay=round(delay, 2))
            self._retried()
            self._sleep(delay)

    def _answered(self, method: str, status_class: str) -> None:
        with self._count_lock:
            key = (method, status_class)
            self.answers[key] = self.answers.get(key, 0) + 1

    def _retried(self) -> None:
        with self._count_lock:
            self.retries += 1

    # -- account and container --------------------------------------------------------------

    def limits(self) -> ServerLimits:
        """What /info says, or Swift's defaults when it cannot be read.

        The GET goes through ``request`` like any other: a 401 re-authenticates once, 5xx
        and connection errors are retried. Whatever is left is not fatal: /info only tunes
        segment sizes and listing pages, and the defaults work on every server seen so far
        (a short listing page never ends a listing). Were the credentials themselves refused
        on a re-authentication here, the next request meets the same refusal and stops the
        start with exit 77, so swallowing it costs nothing.
        """
        url = info_url(self._auth.credentials().storage_url)
        try:
            return ServerLimits.from_info(self.request("GET", url=url).json())
        except (RemoteError, ValueError, TypeError, AttributeError) as exc:
            # ValueError: not JSON or a non-numeric limit; TypeError/AttributeError: JSON of
            # another shape than an object of objects.
            log.warning("cannot read /info; using Swift's default limits", error=str(exc))
            return ServerLimits()

    def container_exists(self, container: str) -> bool:
        resp = self.request("HEAD", container, headers=_JSON, ok=(404,))
        return resp.status_code != 404

    def server_time(self, container: str) -> datetime | None:
        """The server's clock, from the Date header of a HEAD: segment ages are judged by
        the clock that stamped them, not by ours (which may be off by hours)."""
        resp = self.request("HEAD", container, headers=_JSON, ok=(404,))
        try:
            return parsedate_to_datetime(resp.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return None

    def create_container(self, container: str) -> None:
        self.request("PUT", container, headers=_JSON, body=b"")

    def list_objects(
        self, container: str, *, prefix: str = "", marker: str = "", page_size: int = 1000
    ) -> Iterator[RemoteEntry]:
        """Every object under ``prefix`` in name order."""
        for page in self.list_pages(container, prefix=prefix, marker=marker, page_size=page_size):
            yield from page

    def list_pages(
        self,
        container: str,
        *,
        prefix: str = "",
        marker: str = "",
        end_marker: str = "",
        page_size: int = 1000,
    ) -> Iterator[list[RemoteEntry]]:
        """The listing a page at a time: names above ``marker`` and, when it is given,
        below ``end_marker`` (both exclusive, on Swift and RGW alike).

        Stops only on an empty page: RGW silently caps ``limit`` at 1000 even when more was
        asked for, so a short page does not mean the end (DESIGN §5).
        """
        while True:
            params = {"format": "json", "limit": str(page_size), "marker": marker}
            if prefix:
                params["prefix"] = prefix
            if end_marker:
                params["end_marker"] = end_marker
            page = self._list_page(container, params)
            if not page:
                return
            last = page[-1]
            marker = last.name if isinstance(last, RemoteEntry) else str(last.get("subdir", ""))
            # "subdir" pseudo-entries only come with a delimiter, which we never send. The
            # unfiltered page is not kept: the consumer lets entries go as it uses them.
            entries = [item for item in page if isinstance(item, RemoteEntry)]
            del page, last
            yield entries

    def _list_page(
        self, container: str, params: dict[str, str]
    ) -> list[RemoteEntry | dict[str, Any]]:
        """One page, parsed; the response (and its raw body) is gone once this returns."""
        resp = self.request("GET", container, params=params, headers=_JSON, ok=(404,))
        if resp.status_code == 404:  # no container yet: nothing in it
            return []
        # Entries are built as the JSON is parsed: a page of 10,000 names as dicts
        # (plus the decoded text) would briefly hold three times the memory.
        page: list[RemoteEntry | dict[str, Any]] = json.loads(
            resp.content, object_hook=_listing_object
        )
        return page

    # -- objects ----------------------------------------------------------------------------

    def put_object(
        self,
        container: str,
        name: str,
        body: bytes | memoryview | Body,
        *,
        etag: str | None,
        headers: Mapping[str, str],
    ) -> str:
        """PUT one object; with ``etag`` the server refuses (422) a body that does not match.

        The ETag goes unquoted: RGW answers 422 to a quoted one.
        """
        all_headers = dict(headers)
        if etag:
            all_headers["ETag"] = etag
        resp = self.request("PUT", container, name, headers=all_headers, body=body)
        return strip_quotes(resp.headers.get("Etag"))

    def head_object(self, container: str, name: str) -> ObjectFacts | None:
        resp = self.request("HEAD", container, name, headers=_JSON, ok=(404,))
        if resp.status_code == 404:
            return None
        return facts_from_headers(resp.headers)

    @contextmanager
    def get_object(
        self, container: str, name: str, *, offset: int = 0, length: int | None = None
    ) -> Iterator[ObjectStream]:
        """GET an object's body (or ``length`` bytes of it from ``offset``) as a stream.

        Connection errors and retryable statuses before the body starts are retried by
        ``request``; a body cut short is the caller's to retry, from where it stopped
        (``ObjectStream.chunks`` raises TransientRemoteError when it ends early). The
        stored bytes are handed out as they are, never decoded: a Content-Encoding set
        by the uploader must not change what is hashed and written.
        """
        headers: dict[str, str] = dict(_JSON)  # KakaoCloud requires it on an object GET
        ranged = offset > 0 or length is not None
        if ranged:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        resp = self.request("GET", container, name, headers=headers, stream=True)
        try:
            if ranged and resp.status_code != 206:
                # A server that ignores Range sends the whole object: not what was asked.
                raise RemoteError(f"GET {name}: asked for a range, got {resp.status_code}")
            declared = resp.headers.get("Content-Length")
            yield ObjectStream(
                name=name,
                facts=facts_from_headers(resp.headers),
                length=int(declared) if declared and declared.isdigit() else None,
                _resp=resp,
            )
        finally:
            resp.close()

    def get_slo_segments(self, container: str, name: str) -> list[tuple[int, str]] | None:
        """(size, md5) of each segment from the stored manifest; None where the server
        does not show it (RGW answers an empty body)."""
        manifest = self.get_slo_manifest(container, name)
        return None if manifest is None else [(size, md5) for _, size, md5 in manifest]

    def large_object_segments(
        self, container: str, name: str, facts: ObjectFacts
    ) -> list[tuple[int, str]] | None:
        """(size, md5) of each segment of a large object, where the server tells them:
        Swift's stored SLO manifest, or a DLO's segment listing. None when it does not (RGW
        keeps an SLO manifest to itself) or when they do not add up to the object's size."""
        segments: list[tuple[int, str]] | None = None
        if facts.is_slo:
            segments = self.get_slo_segments(container, name)
        elif facts.dlo_manifest:
            segment_container, _, prefix = facts.dlo_manifest.partition("/")
            segments = [
                (e.bytes, e.hash) for e in self.list_objects(segment_container, prefix=prefix)
            ]
        if not segments or sum(size for size, _ in segments) != facts.size:
            return None
        return segments

    def get_slo_manifest(self, container: str, name: str) -> list[tuple[str, int, str]] | None:
        """(path "/container/segment", size, md5) of each segment of the stored manifest;
        None where the server does not show it (RGW answers an empty body)."""
        resp = self.request(
            "GET", container, name, params={"multipart-manifest": "get"}, headers=_JSON, ok=(404,)
        )
        if resp.status_code == 404 or not resp.content.strip():
            return None
        try:
            items = resp.json()
            return [
                (
                    str(i.get("name", i.get("path", ""))),
                    int(i.get("bytes", i.get("size_bytes"))),
                    str(i.get("hash", i.get("etag"))),
                )
                for i in items
            ]
        except (ValueError, TypeError, AttributeError):
            return None

    def delete_object(self, container: str, name: str) -> bool:
        """Plain DELETE; False when there was nothing to delete."""
        resp = self.request("DELETE", container, name, headers=_JSON, ok=(404,))
        return resp.status_code != 404

    def delete_slo(self, container: str, name: str) -> int:
        """Delete a manifest and its segments; return how many objects went.

        The answer is 200 even when nothing was deleted, so the body is the only witness.
        """
        resp = self.request(
            "DELETE",
            container,
            name,
            params={"multipart-manifest": "delete"},
            headers={"Accept": "application/json", **_JSON},
            ok=(404,),
        )
        if resp.status_code == 404 or not resp.content.strip():
            return 0
        try:
            result = resp.json()
        except ValueError:
            raise RemoteError(f"multipart delete of {name}: unreadable answer") from None
        errors = result.get("Errors") or []
        deleted = int(result.get("Number Deleted", 0))
        # Nothing deleted because it is no manifest: Swift says "Not an SLO manifest" for a
        # plain object; RGW says "400 Bad Request" for a plain or missing one. The caller
        # then deletes plainly.
        if deleted == 0 and all(str(e[-1]) in _NOT_A_MANIFEST for e in errors):
            return 0
        if errors:
            raise TransientRemoteError(f"multipart delete of {name}: {errors[:3]}")
        return deleted

    def copy_object(self, container: str, src: str, dst: str, headers: Mapping[str, str]) -> str:
        resp = self.request(
            "PUT",
            container,
            dst,
            headers={"X-Copy-From": f"/{quote_name(container)}/{quote_name(src)}", **headers},
            body=b"",
        )
        return strip_quotes(resp.headers.get("Etag"))

    def put_manifest(
        self, container: str, name: str, manifest: bytes, headers: Mapping[str, str]
    ) -> str:
        """PUT an SLO manifest, with no ETag header (RGW answers 422 to the correct one).

        The caller compares the returned Etag with the md5 of segment md5s instead.

        KakaoCloud documents the manifest PUT's Content-Type as "Fixed to application/json",
        while Swift and RGW store that header as the large object's type. So with
        ``json_manifest`` the manifest goes as JSON, and a POST then sets the object's real
        type; a POST replaces all user metadata, so it carries all of ``headers`` again. The
        object is visible as JSON between the two, which is the price of both rules. RGW
        (under KakaoCloud too) then lists the manifest with 0 bytes, which the transfer's
        listing check does not recognise: the next run HEADs such an SLO once.
        """
        if not self._json_manifest:
            resp = self.request(
                "PUT",
                container,
                name,
                params={"multipart-manifest": "put"},
                headers=dict(headers),
                body=manifest,
            )
            return strip_quotes(resp.headers.get("Etag"))
        wanted = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        content_type = next(
            (v for k, v in headers.items() if k.lower() == "content-type"), "application/json"
        )
        resp = self.request(
            "PUT",
            container,
            name,
            params={"multipart-manifest": "put"},
            headers={**wanted, **_JSON},
            body=manifest,
        )
        etag = strip_quotes(resp.headers.get("Etag"))
        if content_type.split(";")[0].strip().lower() != "application/json":
            self.request("POST", container, name, headers={**wanted, "Content-Type": content_type})
        return etag

    # -- sharing ----------------------------------------------------------------------------

    def account_headers(self) -> Mapping[str, str]:
        """HEAD of the account: its metadata, the temp-URL keys among it."""
        return self.request("HEAD", headers=_JSON).headers

    def temp_url_extension(self, container: str, name: str, seconds: int) -> str:
        """KakaoCloud's "Get Object Temp URL" extension: the server signs a GET for
        ``seconds`` and answers ``{"url": "/v1/...?temp_url_sig=...", "sig": ...}``;
        the path is returned."""
        # "temp_url" is a bare flag, as the reference writes it: requests drops a None
        # value and writes "temp_url=" for "", so it goes into the URL itself.
        url = self._url(self._auth.credentials().storage_url, container, name)
        resp = self.request(
            "GET",
            url=f"{url}?temp_url",
            params={"temp_url_expires": str(seconds)},
            headers=_JSON,
        )
        try:
            path = resp.json()["url"]
        except (ValueError, KeyError, TypeError):
            answer = resp.text[:200]
            raise RemoteError(f"temp URL of {name}: unexpected answer {answer!r}") from None
        if not isinstance(path, str) or not path.startswith("/"):
            raise RemoteError(f"temp URL of {name}: unexpected url {path!r}")
        return path


def _shared(text: str | None) -> str | None:
    return sys.intern(text) if text else text


def _listing_object(item: dict[str, Any]) -> RemoteEntry | dict[str, Any]:
    return parse_listing_entry(item) if "name" in item else item


def parse_listing_entry(item: Mapping[str, Any]) -> RemoteEntry:
    slo_etag = item.get("slo_etag")
    return RemoteEntry(
        name=str(item["name"]),
        hash=str(item.get("hash", "")),
        bytes=int(item.get("bytes", 0)),
        last_modified=str(item.get("last_modified", "")),
        # A listing repeats a handful of content types; one copy each, not one per entry.
        content_type=_shared(item.get("content_type")),
        slo_etag=strip_quotes(slo_etag) if slo_etag else None,
    )


def _error_for(method: str, url: str, resp: requests.Response) -> RemoteError:
    status = resp.status_code
    detail = resp.text[:200].strip() if method != "HEAD" else ""
    message = f"{method} {url}: {status} {resp.reason}" + (f": {detail}" if detail else "")
    if 300 <= status < 400:
        return redirect_error(f"{method} {url}", resp)
    if status in RETRY_STATUSES:
        return TransientRemoteError(message, status)
    if status == 401:
        return AuthError(message, status)
    if status == 404:
        return NotFoundError(message)
    return RemoteError(message, status)

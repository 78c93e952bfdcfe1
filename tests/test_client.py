"""SwiftClient against a real Swift, directly and through tests/faults.py for retries."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from kcsync.config import TokenAuth, V1Auth
from kcsync.errors import NotFoundError, RemoteError, TransientRemoteError
from kcsync.localfs import FileSlice
from kcsync.model import LocalEntry
from kcsync.swift.auth import Authenticator
from kcsync.swift.client import SwiftClient, info_url
from kcsync.swift.retry import RETRY_AFTER_CAP, Backoff
from kcsync.swift.session import Session
from kcsync.swift.slo import manifest_body, slo_etag
from tests.faults import FaultProxy
from tests.servers.swift import SwiftServer, running_swift

NAMES = [
    "with space.txt",
    "100% sure.txt",
    "what?.txt",
    "#hashtag",
    "a+b=c",
    "this&that",
    "semi;colon,comma",
    "한글 폴더/파일 이름.txt",
    "emoji 🎉/😀.bin",
    " leading space",
    "trailing space ",
    "double//slash",
    "literal %2F and %41",
    "quote\" 'apostrophe' <angle>",
    "back\\slash~tilde",
]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def swift() -> Iterator[SwiftServer]:
    with running_swift() as server:
        yield server


@pytest.fixture(scope="module")
def account(swift: SwiftServer) -> tuple[str, str]:
    """(token, storage_url) fetched directly, for checks that bypass kcsync."""
    resp = requests.get(
        swift.auth_url, headers={"X-Auth-User": swift.user, "X-Auth-Key": swift.key}, timeout=10
    )
    resp.raise_for_status()
    return resp.headers["X-Auth-Token"], resp.headers["X-Storage-Url"]


@pytest.fixture(params=["requests", "kcsync"])
def session(request: pytest.FixtureRequest) -> Iterator[requests.Session]:
    """Both: a plain requests.Session, and kcsync's own, whose small PUTs skip requests'
    per-call layers (Session.send_bytes) and must behave the same (retries, 422, drops)."""
    plain = request.param == "requests"
    with requests.Session() if plain else Session(verify=True, pool_size=8) as s:
        yield s


@pytest.fixture
def client(swift: SwiftServer, session: requests.Session) -> SwiftClient:
    auth = Authenticator(V1Auth(url=swift.auth_url, user=swift.user, key=swift.key), session)
    return SwiftClient(auth, session, timeout=10, sleep=lambda s: None)


@pytest.fixture
def container(client: SwiftClient) -> str:
    name = f"c-{uuid.uuid4().hex[:10]}"
    client.create_container(name)
    return name


def raw(account: tuple[str, str], method: str, container: str, name: str = "") -> requests.Response:
    """A request made without kcsync; ``name`` fully escaped (slashes too) so that neither
    kcsync's quoting nor URL normalisation is involved."""
    token, storage_url = account
    url = f"{storage_url}/{quote(container, safe='')}"
    if name:
        url += "/" + quote(name.encode("utf-8"), safe="")
    return requests.request(method, url, headers={"X-Auth-Token": token}, timeout=10)


def raw_names(account: tuple[str, str], container: str) -> list[str]:
    token, storage_url = account
    resp = requests.get(
        f"{storage_url}/{container}",
        params={"format": "json"},
        headers={"X-Auth-Token": token},
        timeout=10,
    )
    resp.raise_for_status()
    return [e["name"] for e in resp.json()]


def proxied_client(
    proxy: FaultProxy, account: tuple[str, str], session: requests.Session, **kwargs: object
) -> tuple[SwiftClient, list[float]]:
    """A client that reaches Swift through ``proxy`` with a fixed token; its sleeps are recorded
    instead of slept."""
    token, storage_url = account
    delays: list[float] = []
    auth = Authenticator(TokenAuth(token=token, storage_url=proxy.proxied(storage_url)), session)
    options: dict[str, object] = {"timeout": 10, "sleep": delays.append, **kwargs}
    return SwiftClient(auth, session, **options), delays  # type: ignore[arg-type]


def file_slice(tmp_path: Path, data: bytes, offset: int, length: int) -> FileSlice:
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    st = path.stat()
    entry = LocalEntry("source.bin", str(path), st.st_size, st.st_mtime_ns, st.st_ino, 0)
    return FileSlice(entry, offset, length)


# -- pure helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_url", "expected"),
    [
        ("http://h:1/v1/AUTH_x", "http://h:1/info"),
        ("http://h:1/swift/v1", "http://h:1/swift/info"),
        ("https://objectstorage.kr-central-2.kakaocloud.com/v1/6f0c1b", None),
    ],
)
def test_info_url(storage_url: str, expected: str | None) -> None:
    want = expected or "https://objectstorage.kr-central-2.kakaocloud.com/info"
    assert info_url(storage_url) == want


# -- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_name_round_trips(
    client: SwiftClient, container: str, account: tuple[str, str], name: str
) -> None:
    data = f"content of {name}".encode()
    assert client.put_object(container, name, data, etag=md5(data), headers={}) == md5(data)

    facts = client.head_object(container, name)
    assert facts is not None and (facts.size, facts.etag) == (len(data), md5(data))
    [entry] = client.list_objects(container, prefix=name)
    assert (entry.name, entry.bytes, entry.hash) == (name, len(data), md5(data))
    got = raw(account, "GET", container, name)  # stored under exactly this name
    assert got.status_code == 200 and got.content == data

    assert client.delete_object(container, name) is True
    assert client.head_object(container, name) is None
    assert client.delete_object(container, name) is False
    assert raw_names(account, container) == []


def test_listing_of_odd_names_is_in_utf8_byte_order(
    client: SwiftClient, container: str, account: tuple[str, str]
) -> None:
    for name in NAMES:
        client.put_object(container, name, b"x", etag=None, headers={})
    listed = [e.name for e in client.list_objects(container, page_size=4)]
    assert listed == sorted(NAMES, key=lambda n: n.encode("utf-8"))
    assert listed == raw_names(account, container)


def test_dot_segment_names_are_not_normalised_away(
    client: SwiftClient, container: str, account: tuple[str, str]
) -> None:
    # "x/../victim" is a legal Swift name (other tools write such names). Sent with a literal
    # ".." path segment, the HTTP stack resolves it and the request hits "victim" instead.
    victim = raw(account, "PUT", container, "victim")
    assert victim.status_code == 201
    client.put_object(container, "x/../victim", b"intruder", etag=None, headers={})
    client.put_object(container, "x/./y", b"dot", etag=None, headers={})
    assert sorted(raw_names(account, container)) == ["victim", "x/../victim", "x/./y"]
    assert raw(account, "GET", container, "victim").content == b""
    assert client.delete_object(container, "x/../victim") is True
    assert sorted(raw_names(account, container)) == ["victim", "x/./y"]


# -- listing ---------------------------------------------------------------------------------------


def test_listing_pages_until_an_empty_page(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    names = [f"p/{i}" for i in range(7)]
    for name in names:
        assert raw(account, "PUT", container, name).status_code == 201
    # A pass-through proxy shows each listing request as it went over the wire.
    with FaultProxy(swift.proxy_url) as proxy:
        client, _ = proxied_client(proxy, account, session)
        listed = [e.name for e in itertools.islice(client.list_objects(container, page_size=2), 50)]
        seen = proxy.seen
    assert listed == names
    queries = [parse_qs(urlsplit(s.target).query, keep_blank_values=True) for s in seen]
    assert [q["limit"] for q in queries] == [["2"]] * 5
    # Pages 2,2,2,1 and then the empty page: the short page of 1 is not taken for the end.
    assert [q["marker"] for q in queries] == [[""], ["p/1"], ["p/3"], ["p/5"], ["p/6"]]
    assert client.request_count == 5
    assert proxy.connections == 1  # keep-alive survived the proxy: byte-for-byte forwarding


def test_listing_a_missing_container_is_empty(client: SwiftClient) -> None:
    assert list(client.list_objects(f"missing-{uuid.uuid4().hex[:8]}")) == []


# -- objects ---------------------------------------------------------------------------------------


def test_put_with_wrong_etag_is_refused_and_stores_nothing(
    client: SwiftClient, container: str, account: tuple[str, str]
) -> None:
    with pytest.raises(RemoteError) as caught:
        client.put_object(container, "bad", b"payload", etag=md5(b"other"), headers={})
    assert caught.value.status == 422
    assert not isinstance(caught.value, TransientRemoteError)
    assert client.request_count == 2  # the container PUT and one object PUT: not retried
    assert client.head_object(container, "bad") is None
    assert raw_names(account, container) == []


def test_put_object_sends_metadata_headers(client: SwiftClient, container: str) -> None:
    client.put_object(
        container,
        "meta",
        b"abc",
        etag=md5(b"abc"),
        headers={"X-Object-Meta-Mtime": "1700000000.123456", "X-Object-Meta-Kcsync-Md5": "f0"},
    )
    facts = client.head_object(container, "meta")
    assert facts is not None
    assert (facts.mtime, facts.md5, facts.is_slo) == (1700000000.123456, "f0", False)


def test_copy_object(client: SwiftClient, container: str, account: tuple[str, str]) -> None:
    src, dst = "원본 #1?.txt", "copies/복사 100%.txt"
    data = b"copy me" * 1000
    client.put_object(container, src, data, etag=md5(data), headers={})
    etag = client.copy_object(container, src, dst, {"X-Object-Meta-Mtime": "1234.5"})
    assert etag == md5(data)
    got = raw(account, "GET", container, dst)
    assert got.status_code == 200 and got.content == data
    facts = client.head_object(container, dst)
    assert facts is not None and facts.mtime == 1234.5
    assert sorted(raw_names(account, container)) == sorted([src, dst])


def test_copy_of_a_missing_object_raises_not_found(client: SwiftClient, container: str) -> None:
    with pytest.raises(NotFoundError):
        client.copy_object(container, "nope", "dst", {})
    assert client.head_object(container, "dst") is None


def test_slo_put_inspect_and_delete(
    client: SwiftClient, container: str, account: tuple[str, str]
) -> None:
    segments = f"{container}_segments"
    client.create_container(segments)
    parts = [os.urandom(1000), os.urandom(1000), os.urandom(123)]
    entries = []
    for i, part in enumerate(parts):
        name = f"big file/1.000000/2123/1000/{i:08d}"
        client.put_object(segments, name, part, etag=md5(part), headers={})
        entries.append((name, md5(part), len(part)))
    md5s = [md5(p) for p in parts]
    etag = client.put_manifest(container, "big file", manifest_body(segments, entries), {})
    assert etag == slo_etag(md5s)

    facts = client.head_object(container, "big file")
    assert facts is not None and facts.is_slo and facts.size == 2123
    assert client.get_slo_segments(container, "big file") == [(len(p), md5(p)) for p in parts]
    assert raw(account, "GET", container, "big file").content == b"".join(parts)

    assert client.delete_slo(container, "big file") == 4  # three segments and the manifest
    assert raw_names(account, segments) == []
    assert client.head_object(container, "big file") is None
    assert client.delete_slo(container, "big file") == 0  # 200 "nothing deleted"


def test_delete_slo_of_a_missing_object_returns_zero(client: SwiftClient, container: str) -> None:
    assert client.delete_slo(container, "never-was") == 0


def test_delete_slo_of_a_plain_object_returns_zero(
    client: SwiftClient, container: str, account: tuple[str, str]
) -> None:
    # An empty object lists with the empty-string md5, like a manifest, so apply.py tries
    # delete_slo first and falls back to a plain DELETE when it says 0. Swift answers 200
    # with Errors [[path, "Not an SLO manifest"]]: that means "not an SLO", not a failure.
    client.put_object(container, "empty", b"", etag=md5(b""), headers={})
    assert client.delete_slo(container, "empty") == 0
    assert raw_names(account, container) == ["empty"]


def test_limits_come_from_info(client: SwiftClient, swift: SwiftServer) -> None:
    info = requests.get(f"{swift.proxy_url}/info", timeout=10).json()
    limits = client.limits()
    assert limits.container_listing_limit == info["swift"]["container_listing_limit"] == 10000
    assert limits.max_manifest_segments == info["slo"]["max_manifest_segments"]
    assert limits.max_object_name_length == info["swift"]["max_object_name_length"]
    assert limits.max_file_size == info["swift"]["max_file_size"]
    assert limits.slo is True


# -- retries through the fault proxy ---------------------------------------------------------------


def test_503_with_retry_after_zero_is_retried(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, fail_first=2, fail_status=503, retry_after="0") as proxy:
        client, delays = proxied_client(proxy, account, session)
        assert client.put_object(container, "obj", b"hello", etag=md5(b"hello"), headers={})
    assert client.request_count == 3
    assert delays == [0.0, 0.0]
    assert (proxy.requests, proxy.faults) == (3, 2)
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]
    assert [s.fate for s in proxy.seen] == ["answered 503", "answered 503", "forwarded"]
    assert raw(account, "GET", container, "obj").content == b"hello"


def test_retry_after_is_honoured_and_capped(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, fail_first=1, fail_status=429, retry_after="7") as proxy:
        client, delays = proxied_client(proxy, account, session)
        assert client.container_exists(container)
    assert delays == [7.0]
    with FaultProxy(swift.proxy_url, fail_first=1, fail_status=503, retry_after="3600") as proxy:
        client, delays = proxied_client(proxy, account, session)
        assert client.container_exists(container)
    assert delays == [RETRY_AFTER_CAP]


def test_500_without_retry_after_backs_off(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    backoff = Backoff(base=0.5, cap=20.0)
    with FaultProxy(swift.proxy_url, fail_first=3, fail_status=500) as proxy:
        client, delays = proxied_client(proxy, account, session, backoff=backoff)
        assert client.container_exists(container)
    assert client.request_count == 4
    assert len(delays) == 3
    assert all(0.0 <= d <= backoff.base * 2**attempt for attempt, d in enumerate(delays, 1))


def test_dropped_connections_are_retried(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, drop_first=2) as proxy:
        client, delays = proxied_client(proxy, account, session)
        facts = client.head_object(container, "absent")
    assert facts is None
    assert client.request_count == 3
    assert len(delays) == 2
    assert (proxy.connections, proxy.drops, proxy.requests) == (3, 2, 1)


def test_bytes_body_is_resent_after_503(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    data = os.urandom(150_000)
    with FaultProxy(swift.proxy_url, fail_first=1, retry_after="0", fail_methods={"PUT"}) as proxy:
        client, _ = proxied_client(proxy, account, session)
        assert client.put_object(container, "b", data, etag=md5(data), headers={}) == md5(data)
    assert [(s.fate, s.body_bytes) for s in proxy.seen] == [
        ("answered 503", len(data)),
        ("forwarded", len(data)),
    ]
    assert raw(account, "GET", container, "b").content == data


@pytest.mark.parametrize("fail_status", [503, None], ids=["503", "closed-after-body"])
def test_file_slice_body_is_rewound_for_a_retry(
    swift: SwiftServer,
    container: str,
    account: tuple[str, str],
    session: requests.Session,
    tmp_path: Path,
    fail_status: int | None,
) -> None:
    data = os.urandom(400_000)
    offset, length = 4321, 250_000
    part = data[offset : offset + length]
    body = file_slice(tmp_path, data, offset, length)
    with FaultProxy(
        swift.proxy_url, fail_first=1, fail_status=fail_status, retry_after="0"
    ) as proxy:
        client, _ = proxied_client(proxy, account, session, timeout=5)
        try:
            etag = client.put_object(container, "slice", body, etag=md5(part), headers={})
        finally:
            body.close()
    assert etag == md5(part)
    assert client.request_count == 2
    # The first attempt consumed the whole slice, so only a rewind can send it again.
    assert [s.body_bytes for s in proxy.seen] == [length, length]
    assert raw(account, "GET", container, "slice").content == part


def test_persistent_503_raises_transient_after_the_attempts(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, fail_first=10, retry_after="0") as proxy:
        client, delays = proxied_client(proxy, account, session, attempts=3)
        with pytest.raises(TransientRemoteError) as caught:
            client.put_object(container, "never", b"x", etag=None, headers={})
    assert caught.value.status == 503
    assert client.request_count == 3 == proxy.requests
    assert delays == [0.0, 0.0]
    assert raw_names(account, container) == []


def test_persistent_connection_drops_raise_transient(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, drop_first=10) as proxy:
        client, delays = proxied_client(proxy, account, session, attempts=4)
        with pytest.raises(TransientRemoteError) as caught:
            client.container_exists(container)
    assert caught.value.status is None
    assert client.request_count == 4 == proxy.connections
    assert len(delays) == 3


def test_client_error_is_not_retried(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, fail_first=5, fail_status=400) as proxy:
        client, delays = proxied_client(proxy, account, session)
        with pytest.raises(RemoteError) as caught:
            client.container_exists(container)
    assert caught.value.status == 400
    assert not isinstance(caught.value, TransientRemoteError)
    assert (client.request_count, proxy.requests, delays) == (1, 1, [])


def test_slow_link_within_the_timeout_succeeds(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, delay=0.3) as proxy:
        client, delays = proxied_client(proxy, account, session, timeout=5)
        start = time.monotonic()
        assert client.container_exists(container)
        elapsed = time.monotonic() - start
    assert elapsed >= 0.3
    assert (client.request_count, delays) == (1, [])


def test_slow_link_beyond_the_timeout_is_transient(
    swift: SwiftServer, container: str, account: tuple[str, str], session: requests.Session
) -> None:
    with FaultProxy(swift.proxy_url, delay=2.0) as proxy:
        client, delays = proxied_client(proxy, account, session, timeout=0.2, attempts=2)
        with pytest.raises(TransientRemoteError):
            client.container_exists(container)
        assert proxy.requests == 2
    assert client.request_count == 2
    assert len(delays) == 1

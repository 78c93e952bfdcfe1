"""Where Ceph RGW and OpenStack Swift answer the same Swift API call differently.

Each test states the raw fact per backend with plain ``requests`` (asserting what each server
does, never skipping one), then shows that kcsync's client copes with both answers. DESIGN §3
and §5 describe these facts; this file is what keeps them true.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from kcsync.config import V1Auth, parse_config
from kcsync.errors import ConfigError, RemoteError
from kcsync.model import EMPTY_MD5
from kcsync.swift.auth import Authenticator
from kcsync.swift.client import SwiftClient, info_url, parse_listing_entry
from kcsync.swift.slo import manifest_body, slo_etag
from tests.conftest import Backend
from tests.e2e.harness import Env

pytestmark = pytest.mark.server

MANY = 1050  # more than RGW's 1000-entry page


@dataclass
class Raw:
    """Plain HTTP against one backend's account, with a token."""

    session: requests.Session
    url: str  # storage URL
    token: str

    def __call__(
        self,
        method: str,
        path: str = "",
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self.session.request(
            method,
            f"{self.url}/{path}" if path else self.url,
            headers={"X-Auth-Token": self.token, **(headers or {})},
            timeout=30,
            **kwargs,
        )

    def container(self, prefix: str = "bf") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        assert self("PUT", name).status_code in (201, 202)
        return name

    def listing(self, container: str, **params: str) -> list[dict[str, Any]]:
        resp = self("GET", container, params={"format": "json", **params})
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    def entry(self, container: str, name: str) -> dict[str, Any]:
        (item,) = [i for i in self.listing(container, prefix=name) if i["name"] == name]
        return item


@pytest.fixture
def raw(backend: Backend) -> Iterator[Raw]:
    token, url = backend.token()
    with requests.Session() as session:
        yield Raw(session, url, token)


@pytest.fixture
def client(backend: Backend) -> Iterator[SwiftClient]:
    with requests.Session() as session:
        auth = Authenticator(V1Auth(backend.auth_url, backend.user, backend.key), session)
        yield SwiftClient(auth, session)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- 1. SLO listing entries ------------------------------------------------------------------


def test_slo_listing_entry_differs_and_head_agrees(
    backend: Backend, raw: Raw, client: SwiftClient
) -> None:
    container = raw.container()
    segments_container = raw.container("bf-seg")
    parts = [b"a" * 1000, b"b" * 500]
    segments = []
    for i, part in enumerate(parts):
        assert raw("PUT", f"{segments_container}/s{i}", data=part).status_code == 201
        segments.append((f"s{i}", md5(part), len(part)))
    manifest = manifest_body(segments_container, segments)
    expected = slo_etag([m for _, m, _ in segments])
    assert expected == md5("".join(md5(p) for p in parts).encode())

    put = raw("PUT", f"{container}/big", params={"multipart-manifest": "put"}, data=manifest)
    assert put.status_code == 201, put.text
    assert put.headers["Etag"] == f'"{expected}"'  # both quote the SLO etag

    item = raw.entry(container, "big")
    if backend.name == "rgw":
        assert item["hash"] == EMPTY_MD5
        assert item["bytes"] == len(manifest)
        assert "slo_etag" not in item
    else:
        assert item["bytes"] == 1500
        assert item["slo_etag"] == f'"{expected}"'
        # md5 of Swift's own stored manifest: neither the content md5 nor the SLO etag
        assert item["hash"] not in (md5(b"".join(parts)), expected, EMPTY_MD5)

    got = raw("GET", f"{container}/big", params={"multipart-manifest": "get"})
    assert got.status_code == 200
    if backend.name == "rgw":
        assert got.content == b""
    else:
        stored = got.json()
        assert [(s["name"], s["bytes"], s["hash"]) for s in stored] == [
            (f"/{segments_container}/s{i}", size, etag)
            for i, (_, etag, size) in enumerate(segments)
        ]

    head = raw("HEAD", f"{container}/big")
    assert head.status_code == 200
    assert head.headers["Etag"] == f'"{expected}"'
    assert head.headers["Content-Length"] == "1500"
    assert head.headers["X-Static-Large-Object"].lower() == "true"
    assert raw("GET", f"{container}/big").content == b"".join(parts)

    # kcsync: both listing forms are recognised as "ask HEAD", and HEAD gives the truth.
    entry = parse_listing_entry(item)
    assert entry.may_be_large_object
    assert entry.slo_etag == (None if backend.name == "rgw" else expected)
    facts = client.head_object(container, "big")
    assert facts is not None
    assert (facts.is_slo, facts.size, facts.etag) == (True, 1500, expected)
    from_manifest = client.get_slo_segments(container, "big")
    if backend.name == "rgw":
        assert from_manifest is None
    else:
        assert from_manifest == [(size, etag) for _, etag, size in segments]


# -- 2. ETag quoting on object PUT -----------------------------------------------------------


def test_put_etag_quoting(backend: Backend, raw: Raw, client: SwiftClient) -> None:
    container = raw.container()
    data = b"hello etag"
    digest = md5(data)

    assert (
        raw("PUT", f"{container}/unquoted", headers={"ETag": digest}, data=data).status_code == 201
    )

    quoted = raw("PUT", f"{container}/quoted", headers={"ETag": f'"{digest}"'}, data=data)
    if backend.name == "rgw":
        assert quoted.status_code == 422
        assert raw("HEAD", f"{container}/quoted").status_code == 404
    else:
        assert quoted.status_code == 201  # Swift strips the quotes before comparing
        assert raw.entry(container, "quoted")["hash"] == digest

    wrong = raw("PUT", f"{container}/wrong", headers={"ETag": "0" * 32}, data=data)
    assert wrong.status_code == 422
    assert raw("HEAD", f"{container}/wrong").status_code == 404

    # kcsync sends the ETag unquoted, so both accept it; a mismatch is refused on both.
    assert client.put_object(container, "via-kcsync", data, etag=digest, headers={}) == digest
    with pytest.raises(RemoteError) as refused:
        client.put_object(container, "via-kcsync-wrong", data, etag="0" * 32, headers={})
    assert refused.value.status == 422
    assert client.head_object(container, "via-kcsync-wrong") is None


# -- 3. Listing limit ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(backend: Backend) -> str:
    """A container holding MANY small objects, filled once per backend."""
    token, url = backend.token()
    container = f"bf-many-{uuid.uuid4().hex[:8]}"
    local = threading.local()

    def put(path: str) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        resp = local.session.put(f"{url}/{path}", headers={"X-Auth-Token": token}, data=b"x")
        return resp.status_code

    assert put(container) in (201, 202)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, (f"{container}/o{i:05d}" for i in range(MANY))))
    assert statuses == [201] * MANY
    return container


def test_listing_limit_is_capped_on_rgw_and_enforced_on_swift(
    backend: Backend, raw: Raw, many: str
) -> None:
    asked_5000 = raw("GET", many, params={"format": "json", "limit": "5000"})
    asked_10000 = raw("GET", many, params={"format": "json", "limit": "10000"})
    asked_20000 = raw("GET", many, params={"format": "json", "limit": "20000"})
    assert asked_5000.status_code == asked_10000.status_code == 200
    if backend.name == "rgw":
        assert len(asked_5000.json()) == len(asked_10000.json()) == 1000  # silently capped
        assert asked_20000.status_code == 200
        assert len(asked_20000.json()) == 1000
    else:
        assert len(asked_5000.json()) == len(asked_10000.json()) == MANY
        assert asked_20000.status_code == 412


@pytest.mark.parametrize("page_size", [1000, 10000])
def test_list_objects_pages_through_everything(
    backend: Backend, client: SwiftClient, many: str, page_size: int
) -> None:
    before = client.request_count
    names = [e.name for e in client.list_objects(many, page_size=page_size)]
    assert names == [f"o{i:05d}" for i in range(MANY)]
    # A short page is not the end (RGW caps at 1000): only an empty page stops the listing.
    pages = client.request_count - before
    if page_size == 1000 or backend.name == "rgw":
        assert pages == 3  # 1000 + 50 + empty
    else:
        assert pages == 2  # 1050 + empty


# -- 4. last_modified and content_type -------------------------------------------------------

RGW_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SWIFT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def test_last_modified_and_missing_content_type(backend: Backend, raw: Raw) -> None:
    container = raw.container()
    # requests sends no Content-Type for a bytes body; check that it really does not.
    bare = raw("PUT", f"{container}/bare", data=b"no type")
    assert bare.status_code == 201
    assert "Content-Type" not in bare.request.headers
    typed = raw("PUT", f"{container}/typed", headers={"Content-Type": "text/plain"}, data=b"t")
    assert typed.status_code == 201

    items = {i["name"]: i for i in raw.listing(container)}
    for item in items.values():
        pattern = RGW_TIME if backend.name == "rgw" else SWIFT_TIME
        assert pattern.match(item["last_modified"]), item["last_modified"]
    assert items["typed"]["content_type"] == "text/plain"
    if backend.name == "rgw":
        assert "content_type" not in items["bare"]
        head_type = "binary/octet-stream"
    else:
        assert items["bare"]["content_type"] == "application/octet-stream"
        head_type = "application/octet-stream"
    assert raw("HEAD", f"{container}/bare").headers["Content-Type"] == head_type

    entry = parse_listing_entry(items["bare"])
    assert entry.content_type == (None if backend.name == "rgw" else "application/octet-stream")
    assert entry.last_modified == items["bare"]["last_modified"]  # kept verbatim, never parsed
    assert (entry.hash, entry.bytes) == (md5(b"no type"), 7)
    assert not entry.may_be_large_object


# -- 5. /info ------------------------------------------------------------------------------


def test_info_location_and_limits(backend: Backend, raw: Raw, client: SwiftClient) -> None:
    host = re.match(r"^https?://[^/]+", raw.url)
    assert host is not None
    url = info_url(raw.url)
    if backend.name == "rgw":
        assert raw.url == f"{host[0]}/swift/v1"
        assert url == f"{host[0]}/swift/info"
        assert requests.get(f"{host[0]}/info", timeout=30).status_code == 404
    else:
        # KakaoCloud's account is the bare project id (the kakao peers share that account).
        prefix = "" if backend.name == "kakao" else "AUTH_"
        assert raw.url.startswith(f"{host[0]}/v1/{prefix}")
        assert url == f"{host[0]}/info"
    resp = requests.get(url, timeout=30)  # no token needed on either
    assert resp.status_code == 200
    info = resp.json()
    assert "swift" in info
    assert info["slo"]["max_manifest_segments"] == 1000
    # RGW's /info says 10000 (its account-listing maximum) while it caps object listings at
    # 1000 (test above): the /info value is not a page size RGW honours.
    assert info["swift"]["container_listing_limit"] == 10000
    if backend.name == "rgw":
        assert info["swift"]["max_file_size"] == 5 * 1024**3
        # RGW names the key differently, and has no meta-value limit unless configured.
        assert info["swift"]["max_object_name_size"] == 1024
        assert "max_object_name_length" not in info["swift"]
        assert "max_meta_value_length" not in info["swift"]
        assert info["swift"]["max_container_name_length"] == 255
    else:
        assert info["swift"]["max_file_size"] == 5 * 1024**3 + 2
        assert info["swift"]["max_object_name_length"] == 1024
        assert info["swift"]["max_meta_value_length"] == 256
        assert info["swift"]["max_container_name_length"] == 256

    limits = client.limits()
    assert limits.container_listing_limit == 10000
    assert limits.max_manifest_segments == 1000
    assert limits.max_file_size == info["swift"]["max_file_size"]
    assert limits.max_object_name_length == 1024
    assert limits.slo


# -- 6. Container names ----------------------------------------------------------------------


def _short_name(length: int) -> str:
    return (uuid.uuid4().hex * 8)[:length]


def test_container_name_length(backend: Backend, raw: Raw) -> None:
    two = raw("PUT", _short_name(2))
    if backend.name == "rgw":
        assert two.status_code == 400
        assert "InvalidBucketName" in two.text
    else:
        assert two.status_code in (201, 202)
    assert raw("PUT", _short_name(3)).status_code in (201, 202)
    # The long end: /info says 255 on RGW, 256 on Swift, and each means it.
    assert raw("PUT", _short_name(255)).status_code in (201, 202)
    longest = raw("PUT", _short_name(256))
    if backend.name == "rgw":
        assert longest.status_code == 400
        assert longest.text == "Container name length of 256 longer than 255"
    else:
        assert longest.status_code in (201, 202)


def _config(auth: dict[str, Any], bucket: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "auth": auth,
        "bucket": bucket,
        "folders": [{"path": str(tmp_path / "data")}],
        "state_dir": str(tmp_path / "state"),
    }


KAKAO = {"method": "kakaocloud", "region": "kr-central-2", "access_key_id": "i", "secret": "s"}
V1 = {"method": "v1", "url": "http://127.0.0.1:1/auth/v1.0", "user": "u", "key": "k"}


@pytest.mark.parametrize(
    ("auth", "bucket", "bad_key"),
    [
        pytest.param(KAKAO, "abc", "bucket", id="kakao-3"),
        pytest.param(KAKAO, "abcd", None, id="kakao-4"),
        pytest.param(KAKAO, "a" * 50, None, id="kakao-50"),
        pytest.param(KAKAO, "a" * 63, "large_objects.segments_bucket", id="kakao-63-segments"),
        pytest.param(KAKAO, "a" * 64, "bucket", id="kakao-64"),
        pytest.param(V1, "ab", "bucket", id="v1-2"),
        pytest.param(V1, "abc", None, id="v1-3"),
    ],
)
def test_config_enforces_bucket_name_length(
    auth: dict[str, Any], bucket: str, bad_key: str | None, tmp_path: Path
) -> None:
    data = _config(auth, bucket, tmp_path)
    if bad_key is None:
        assert parse_config(data, source=tmp_path / "c.yaml", environ={}).bucket == bucket
    else:
        with pytest.raises(ConfigError) as err:
            parse_config(data, source=tmp_path / "c.yaml", environ={})
        assert err.value.key == bad_key
        assert bad_key in str(err.value)


# -- 7. If-None-Match ------------------------------------------------------------------------


def test_if_none_match_on_existing_object(backend: Backend, raw: Raw) -> None:
    container = raw.container()
    assert raw("PUT", f"{container}/o", data=b"first").status_code == 201
    again = raw("PUT", f"{container}/o", headers={"If-None-Match": "*"}, data=b"second")
    if backend.name == "rgw":
        assert again.status_code == 201  # ignored: the object is overwritten
        assert raw("GET", f"{container}/o").content == b"second"
    else:
        assert again.status_code == 412
        assert raw("GET", f"{container}/o").content == b"first"
    new = raw("PUT", f"{container}/new", headers={"If-None-Match": "*"}, data=b"n")
    assert new.status_code == 201


# -- 8. DELETE ?multipart-manifest=delete on what is not a manifest --------------------------


def test_multipart_delete_of_missing_and_plain_objects(
    backend: Backend, raw: Raw, client: SwiftClient
) -> None:
    container = raw.container()
    assert raw("PUT", f"{container}/plain", data=b"plain").status_code == 201
    answers = {}
    for name in ("missing", "plain"):
        resp = raw(
            "DELETE",
            f"{container}/{name}",
            params={"multipart-manifest": "delete"},
            headers={"Accept": "application/json"},
        )
        assert resp.status_code == 200  # on both, whatever happened
        assert resp.headers["Content-Type"].startswith("application/json")
        answers[name] = json.loads(resp.text)
    assert raw("HEAD", f"{container}/plain").status_code == 200  # not deleted

    for body in answers.values():
        assert body["Number Deleted"] == 0
        assert body["Response Body"] == ""
    if backend.name == "rgw":
        # RGW says the same for both: a 400 per object, path without a leading "/".
        for name, body in answers.items():
            assert body["Response Status"] == "400 Bad Request"
            assert body["Number Not Found"] == 0
            assert body["Errors"] == [[f"{container}/{name}", "400 Bad Request"]]
    else:
        assert answers["missing"]["Response Status"] == "200 OK"
        assert answers["missing"]["Number Not Found"] == 1
        assert answers["missing"]["Errors"] == []
        assert answers["plain"]["Response Status"] == "400 Bad Request"
        assert answers["plain"]["Number Not Found"] == 0
        assert answers["plain"]["Errors"] == [[f"/{container}/plain", "Not an SLO manifest"]]

    # kcsync: "nothing deleted" on both, then a plain DELETE removes the plain object.
    assert client.delete_slo(container, "missing") == 0
    assert client.delete_slo(container, "plain") == 0
    assert client.delete_object(container, "plain")
    assert raw("HEAD", f"{container}/plain").status_code == 404


def test_mirror_deletes_the_object_of_a_removed_empty_file(env: Env) -> None:
    """An empty object lists with the empty-string hash, like an RGW SLO manifest, so kcsync
    tries a multipart delete first; RGW's answer to that must not fail the delete."""
    env.write("empty", b"")
    env.write("kept.txt", b"kept")
    first = env.run()
    assert first.code == 0, first.stderr
    (env.data / "empty").unlink()

    result = env.run()

    assert result.code == 0, result.stderr
    assert result.deleted() == ["files/empty"]
    assert env.names() == ["files/kept.txt"]

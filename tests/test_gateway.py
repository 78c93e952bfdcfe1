"""The KakaoCloud gateway (tests/servers/gateway.py) refuses what the API reference forbids and
lets through what it allows, in front of a real Swift with real Keystone tokens.

The e2e suite on the `kakao` backend shows kcsync keeps to these rules; this file shows the
rules are really there, so that suite passing means something.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.servers.kakao import KakaoServer

pytestmark = pytest.mark.server
JSON = {"Content-Type": "application/json"}


@dataclass
class Api:
    session: requests.Session
    storage_url: str
    token: str

    def __call__(
        self, method: str, path: str = "", headers: dict[str, str] | None = None, **kw: object
    ) -> requests.Response:
        return self.session.request(
            method,
            f"{self.storage_url}{path}",
            headers={"X-Auth-Token": self.token, **(headers or {})},
            timeout=30,
            **kw,  # type: ignore[arg-type]
        )


def app_token(kakao: KakaoServer) -> str:
    cred = kakao.keystone.credential
    resp = requests.post(
        f"{kakao.keystone.v3}/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": cred.id, "secret": cred.secret},
                }
            }
        },
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


@pytest.fixture
def api(kakao: KakaoServer) -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(session, kakao.storage_url, app_token(kakao))


@pytest.fixture
def bucket(api: Api) -> str:
    name = f"gw-{uuid.uuid4().hex[:10]}"
    assert api("PUT", f"/{name}", JSON).status_code == 201
    return name


def refused(resp: requests.Response, rule: str) -> bool:
    return resp.status_code in (400, 413) and resp.headers.get("X-Gateway-Rule") == rule


def test_info_is_the_references(kakao: KakaoServer) -> None:
    info = requests.get(f"{kakao.gateway_url}/info", timeout=10).json()
    assert info["swift"]["max_object_name_length"] == 396
    assert info["swift"]["container_listing_limit"] == 1000
    assert info["slo"]["max_manifest_segments"] == 1000
    assert info["tempurl"] == {"methods": ["GET"]}


def test_storage_url_is_the_project_without_auth_prefix(kakao: KakaoServer, api: Api) -> None:
    assert kakao.storage_url.endswith(f"/v1/{kakao.keystone.project_id}")
    assert api("HEAD", "", JSON).status_code == 204
    other = f"{kakao.gateway_url}/v1/AUTH_{kakao.keystone.project_id}"
    resp = requests.head(other, headers={"X-Auth-Token": api.token, **JSON}, timeout=10)
    assert resp.status_code == 400


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("HEAD", "container"),
        ("GET", "container"),
        ("POST", "container"),
        ("HEAD", "object"),
        ("GET", "object"),
        ("DELETE", "object"),
    ],
)
def test_content_type_json_is_required(api: Api, bucket: str, method: str, kind: str) -> None:
    assert api("PUT", f"/{bucket}/o.txt", data=b"x").status_code == 201
    path = f"/{bucket}" + ("/o.txt" if kind == "object" else "")
    assert refused(api(method, path, {"Content-Type": "text/plain"}), "content-type")
    assert refused(api(method, path), "content-type")
    assert api(method, path, JSON).status_code in (200, 204)


def test_container_put_needs_json_and_a_4_to_63_character_name(api: Api) -> None:
    name = f"gw-{uuid.uuid4().hex[:10]}"
    assert refused(api("PUT", f"/{name}"), "content-type")
    assert refused(api("PUT", "/abc", JSON), "bucket-name")
    assert refused(api("PUT", "/" + "a" * 64, JSON), "bucket-name")
    assert api("PUT", "/" + "b" * 63 + "", JSON).status_code in (201, 202)
    assert api("PUT", f"/{name}", JSON).status_code == 201


def test_object_put_keeps_its_own_type_and_copy_needs_none(api: Api, bucket: str) -> None:
    assert api("PUT", f"/{bucket}/a.txt", {"Content-Type": "text/plain"}, data=b"a").ok
    assert api("HEAD", f"/{bucket}/a.txt", JSON).headers["Content-Type"] == "text/plain"
    copy = api("PUT", f"/{bucket}/b.txt", {"X-Copy-From": f"/{bucket}/a.txt"}, data=b"")
    assert copy.status_code == 201
    assert api("HEAD", f"/{bucket}/b.txt", JSON).headers["Content-Type"] == "text/plain"


def test_object_names_are_at_most_396_bytes(api: Api, bucket: str) -> None:
    fits = "한" * 132  # 396 bytes in UTF-8
    assert api("PUT", f"/{bucket}/{fits}", data=b"x").status_code == 201
    # 133 characters, far below a character limit of 396, but 399 bytes: refused, because
    # the store under KakaoCloud (RGW) counts bytes.
    assert refused(api("PUT", f"/{bucket}/{'한' * 133}", data=b"x"), "object-name")
    assert refused(api("PUT", f"/{bucket}/{'a' * 397}", data=b"x"), "object-name")


def test_listing_pages_are_capped_at_1000(api: Api, bucket: str) -> None:
    # Stock Swift answers 412 to a limit above its own 10000; the reference caps silently.
    resp = api("GET", f"/{bucket}", JSON, params={"format": "json", "limit": "20000"})
    assert resp.status_code in (200, 204)


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({"X-Object-Meta-" + "n" * 65: "v"}, "meta-name"),
        ({"X-Object-Meta-N": "v"}, "meta-name"),
        ({"X-Object-Meta-Name": "v" * 513}, "meta-value"),
        ({f"X-Object-Meta-Name{i}": "v" * 500 for i in range(9)}, "meta-total"),
    ],
    ids=["name-65", "name-1", "value-513", "total-4600"],
)
def test_metadata_limits(api: Api, bucket: str, headers: dict[str, str], rule: str) -> None:
    assert refused(api("PUT", f"/{bucket}/m", headers, data=b"x"), rule)
    assert api("PUT", f"/{bucket}/m", data=b"x").status_code == 201
    assert refused(api("POST", f"/{bucket}/m", headers), rule)
    # At the limits (the value at Swift's own 256: the Swift behind is stricter there).
    ok = {"X-Object-Meta-" + "n" * 64: "v" * 256}
    assert api("POST", f"/{bucket}/m", ok).status_code == 202


def test_manifest_put_needs_json_and_at_most_1000_segments(api: Api, bucket: str) -> None:
    seg = api("PUT", f"/{bucket}/seg", data=b"s" * 10)
    etag = seg.headers["Etag"].strip('"')
    one = json.dumps([{"path": f"/{bucket}/seg", "etag": etag, "size_bytes": 10}])
    params = {"multipart-manifest": "put"}
    resp = api("PUT", f"/{bucket}/big", {"Content-Type": "video/mp4"}, params=params, data=one)
    assert refused(resp, "content-type")
    many = json.dumps([{"path": f"/{bucket}/seg", "etag": etag, "size_bytes": 10}] * 1001)
    assert refused(api("PUT", f"/{bucket}/big", JSON, params=params, data=many), "segments")
    assert api("PUT", f"/{bucket}/big", JSON, params=params, data=one).status_code == 201
    assert api("GET", f"/{bucket}/big", JSON).content == b"s" * 10


def test_temp_url_extension(kakao: KakaoServer, api: Api, bucket: str) -> None:
    assert api("PUT", f"/{bucket}/t.txt", {"Content-Type": "text/plain"}, data=b"t").ok
    path = f"/{bucket}/t.txt?temp_url&temp_url_expires=60"
    assert refused(api("GET", path), "content-type")
    assert refused(api("GET", f"/{bucket}/t.txt?temp_url&temp_url_expires=0", JSON), "temp-url")
    anonymous = requests.get(f"{kakao.storage_url}{path}", headers=JSON, timeout=10)
    assert anonymous.status_code == 401
    assert api("GET", f"/{bucket}/none?temp_url&temp_url_expires=60", JSON).status_code == 404
    answer = api("GET", path, JSON).json()
    assert set(answer) == {"url", "sig"}
    assert answer["url"].startswith(f"/v1/{kakao.keystone.project_id}/{bucket}/t.txt?")
    got = requests.get(f"{kakao.gateway_url}{answer['url']}", timeout=10)  # no token
    assert (got.status_code, got.content) == (200, b"t")
    forged = answer["url"].replace(answer["sig"], "0" * len(answer["sig"]))
    assert requests.get(f"{kakao.gateway_url}{forged}", timeout=10).status_code == 401

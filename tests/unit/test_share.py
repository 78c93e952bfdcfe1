"""kcsync.share's pure parts: signatures as Swift computes them, and object names."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from swiftclient.utils import generate_temp_url

from kcsync.config import parse_config
from kcsync.share import choose_digest, object_name, signed_url, temp_url_key, with_filename


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_signature_matches_swiftclients(digest: str) -> None:
    url = signed_url("http://h:8080/v1/AUTH_t", "c", "dir/한 글.txt", "k3y", 1_900_000_000, digest)
    parts = urlsplit(url)
    theirs = generate_temp_url(
        "/v1/AUTH_t/c/dir/한 글.txt", 1_900_000_000, "k3y", "GET", absolute=True, digest=digest
    )
    [ours] = parse_qs(parts.query)["temp_url_sig"]
    [sig] = parse_qs(urlsplit(theirs).query)["temp_url_sig"]
    if sig.startswith("sha512:"):  # swiftclient's base64 form; Swift takes hex as well
        sig = base64.urlsafe_b64decode(sig[7:] + "==").hex()
    assert ours == sig
    assert parts.path == "/v1/AUTH_t/c/dir/%ED%95%9C%20%EA%B8%80.txt"


def test_rgw_storage_url_path_is_signed_as_is() -> None:
    url = signed_url("http://h/swift/v1", "c", "o", "k", 10, "sha1")
    assert urlsplit(url).path == "/swift/v1/c/o"


@pytest.mark.parametrize(
    ("info", "digest"),
    [
        ({}, "sha1"),
        ({"tempurl": {"methods": ["GET"]}}, "sha1"),
        ({"tempurl": {"allowed_digests": ["sha1", "sha256", "sha512"]}}, "sha256"),
        ({"tempurl": {"allowed_digests": ["sha512"]}}, "sha512"),
    ],
    ids=["no-tempurl", "no-digests", "swift", "sha512-only"],
)
def test_digest_follows_info(info: dict[str, object], digest: str) -> None:
    assert choose_digest(info) == digest


def test_key_headers_and_filename() -> None:
    assert temp_url_key({}) is None
    assert temp_url_key({"X-Account-Meta-Temp-URL-Key-2": "b"}) == "b"
    assert with_filename("u?a=1", None) == "u?a=1"
    assert with_filename("u?a=1", "a b.txt") == "u?a=1&filename=a%20b.txt"


def test_object_name_of_local_path_or_object(tmp_path: Path) -> None:
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    (tmp_path / "photos" / "2024" / "x.jpg").write_bytes(b"x")
    config = parse_config(
        {
            "auth": {"method": "token", "token": "t", "storage_url": "http://h/v1/a"},
            "bucket": "bucket",
            "folders": [{"path": str(tmp_path / "photos"), "prefix": "pics"}],
            "state_dir": str(tmp_path / "state"),
        },
        source=tmp_path / "c.yaml",
    )
    assert object_name(config, str(tmp_path / "photos" / "2024" / "x.jpg")) == "pics/2024/x.jpg"
    assert object_name(config, "2024/x.jpg", cwd=tmp_path / "photos") == "pics/2024/x.jpg"
    assert object_name(config, "pics/other.jpg", cwd=tmp_path) == "pics/other.jpg"

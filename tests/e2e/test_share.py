"""`kcsync share` on every backend: the printed URL downloads the object with no token, until it
expires. On `kakao` the URL comes from KakaoCloud's temp-URL extension (signed by the gateway);
on Swift and RGW kcsync signs it with the account's temp-URL key."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kcsync.errors import EXIT_CONFIG
from tests.e2e.daemon_harness import wait_for
from tests.e2e.harness import Env

pytestmark = pytest.mark.server
KEY_HEADER = "X-Account-Meta-Temp-URL-Key"


@pytest.fixture
def keyed(env: Env) -> Iterator[Env]:
    """An account with a temp-URL key (what a Swift or RGW user sets once); the kakao
    backend needs none, its gateway holds the key."""
    if env.backend.name != "kakao":
        env.conn.post_account(headers={KEY_HEADER: secrets.token_hex(16)})
    yield env
    if env.backend.name != "kakao":
        env.conn.post_account(headers={f"X-Remove-{KEY_HEADER[2:]}": "x"})


def share(env: Env, *args: str) -> str:
    result = env.run("share", *args)
    assert result.code == 0, result.stderr[-2000:]
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and "temp_url_sig=" in url, url
    return url


def test_plain_and_large_objects_download_through_the_url(keyed: Env) -> None:
    env = keyed
    small = os.urandom(3000)
    large = os.urandom(2_600_000)  # over the 1 MiB threshold: an SLO of 256 KiB segments
    env.write("docs/report.txt", small)
    env.write("video/big.bin", large)
    assert env.run().code == 0
    assert env.head("files/video/big.bin").get("x-static-large-object", "").lower() == "true"

    # By local path (mapped like the sync maps it) and by object name.
    by_path = share(keyed, str(env.data / "docs" / "report.txt"))
    by_name = share(keyed, "files/video/big.bin", "--expires", "10m")
    for url, data in ((by_path, small), (by_name, large)):
        got = requests.get(url, timeout=30)  # no token
        assert got.status_code == 200 and got.content == data
    expires = int(parse_qs(urlsplit(by_name).query)["temp_url_expires"][0])
    assert 590 <= expires - time.time() <= 610

    named = share(keyed, "files/docs/report.txt", "--filename", "분기 보고서.txt")
    got = requests.get(named, timeout=30)
    assert got.status_code == 200 and got.content == small
    if env.backend.name != "rgw":  # RGW ignores the filename parameter
        assert "filename*=UTF-8''%EB%B6%84" in got.headers["Content-Disposition"]


def test_an_expired_url_is_refused(keyed: Env) -> None:
    env = keyed
    env.write("soon.txt", b"gone soon")
    assert env.run().code == 0
    url = share(env, "files/soon.txt", "--expires", "2s")
    expires = int(parse_qs(urlsplit(url).query)["temp_url_expires"][0])
    wait_for(lambda: time.time() > expires + 1, "the URL's expiry", 10)
    assert requests.get(url, timeout=30).status_code in (401, 403)


def test_without_a_key_share_says_how_to_set_one(env: Env) -> None:
    env.write("a.txt", b"a")
    assert env.run().code == 0
    env.conn.post_account(headers={f"X-Remove-{KEY_HEADER[2:]}": "x"})
    result = env.run("share", "files/a.txt")
    if env.backend.name == "kakao":
        # KakaoCloud signs on the server: no key for the user to set.
        assert result.code == 0, result.stderr
    else:
        assert result.code == EXIT_CONFIG, result.stderr
        assert "Temp-URL-Key" in result.stderr and "swift post" in result.stderr


def test_missing_object_and_bad_duration(env: Env) -> None:
    env.write("a.txt", b"a")
    assert env.run().code == 0
    missing = env.run("share", "files/nope.txt")
    assert missing.code == 69 and "not in bucket" in missing.stderr
    assert env.run("share", "files/a.txt", "--expires", "soon").code == 2

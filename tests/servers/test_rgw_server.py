"""The Ceph RGW test server starts, speaks Swift v1 and leaves no daemon behind."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from tests.servers.rgw import running_rgw

# No skip when radosgw is missing: start_rgw fails with the apt-get line to run instead.
pytestmark = pytest.mark.server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_rgw_speaks_swift_and_stops_cleanly() -> None:
    with running_rgw() as server:
        pids = server.pids
        root = server.root
        assert len(pids) == 3
        assert all(_alive(pid) for pid in pids)

        auth = requests.get(
            server.auth_url,
            headers={"X-Auth-User": server.user, "X-Auth-Key": server.key},
            timeout=10,
        )
        assert auth.status_code == 204
        token = auth.headers["X-Auth-Token"]
        storage_url = auth.headers["X-Storage-Url"]
        assert storage_url == f"{server.endpoint}/swift/v1" == server.storage_url
        headers = {"X-Auth-Token": token}

        container = f"{storage_url}/kcsync-selftest"
        created = requests.put(container, headers=headers, timeout=10)
        assert created.status_code in (201, 202)

        body = b"hello rgw\n"
        etag = hashlib.md5(body).hexdigest()
        put = requests.put(
            f"{container}/dir/hello.txt",
            data=body,
            headers={**headers, "ETag": etag, "Content-Type": "text/plain"},
            timeout=10,
        )
        assert put.status_code == 201
        assert put.headers["ETag"].strip('"') == etag

        listing = requests.get(container, params={"format": "json"}, headers=headers, timeout=10)
        assert listing.status_code == 200
        [entry] = listing.json()
        assert entry["name"] == "dir/hello.txt"
        assert entry["bytes"] == len(body)
        assert entry["hash"] == etag

        got = requests.get(f"{container}/dir/hello.txt", headers=headers, timeout=10)
        assert got.status_code == 200
        assert got.content == body

        info = requests.get(f"{server.endpoint}/swift/info", timeout=10)
        assert info.status_code == 200
        assert "slo" in info.json()

    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)]
    assert not root.exists()

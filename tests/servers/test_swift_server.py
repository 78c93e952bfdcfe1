"""Self-test of the local Swift cluster used by the server tests."""

from __future__ import annotations

import os
import time

import pytest
import requests

from tests.servers.swift import running_swift


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.server
def test_swift_server_round_trip_and_stop() -> None:
    with running_swift() as server:
        auth = requests.get(
            server.auth_url,
            headers={"X-Auth-User": server.user, "X-Auth-Key": server.key},
            timeout=10,
        )
        assert auth.status_code == 200
        token, storage_url = auth.headers["X-Auth-Token"], auth.headers["X-Storage-Url"]
        assert storage_url.startswith(server.proxy_url + "/v1/")
        h = {"X-Auth-Token": token}

        assert requests.put(f"{storage_url}/box", headers=h, timeout=10).status_code == 201
        put = requests.put(f"{storage_url}/box/dir/hello.txt", data=b"hi", headers=h, timeout=10)
        assert put.status_code == 201
        listing = requests.get(
            f"{storage_url}/box", params={"format": "json"}, headers=h, timeout=10
        )
        assert listing.status_code == 200
        [entry] = listing.json()
        assert (entry["name"], entry["bytes"]) == ("dir/hello.txt", 2)
        assert entry["hash"] == put.headers["ETag"]

        info = requests.get(f"{server.proxy_url}/info", timeout=10).json()
        assert "slo" in info
        pids = server.pids
        assert len(pids) == 4

    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []
    assert not server.root.exists()

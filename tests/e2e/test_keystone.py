"""KakaoCloud IAM for real: application credentials against a real Keystone whose tokens live
20 s (tests/servers/keystone.py), validated by Swift behind the KakaoCloud gateway and by RGW.

What is counted: the tokens kcsync obtains ("token obtained" events) and the 401s it meets
("401, re-authenticating"); refreshing before expiry means the second count is zero.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kcsync.config import KakaoAuth
from kcsync.errors import EXIT_AUTH, AuthError
from kcsync.swift.auth import Authenticator, Credentials
from kcsync.swift.client import SwiftClient
from tests.conftest import Backend
from tests.e2e.daemon_harness import DaemonProcess, wait_for
from tests.e2e.harness import Env
from tests.faults import FaultProxy
from tests.servers.kakao import KakaoServer
from tests.servers.keystone import AppCredential, KeystoneServer
from tests.servers.rgw import RgwServer

pytestmark = pytest.mark.server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def rgw(keystone: KeystoneServer) -> RgwServer:
    from tests.conftest import _server

    return _server("rgw")  # type: ignore[return-value]


def kakao_auth(ks: KeystoneServer, storage_url: str | None, cred: AppCredential | None = None):  # type: ignore[no-untyped-def]
    cred = cred or ks.credential
    return KakaoAuth(
        region="kr-central-2",
        access_key_id=cred.id,
        secret=cred.secret,
        identity_url=ks.v3,
        storage_url=storage_url,
    )


def kcsync_auth(ks: KeystoneServer, storage_url: str, cred: AppCredential) -> dict[str, str]:
    return {
        "method": "kakaocloud",
        "region": "kr-central-2",
        "access_key_id": cred.id,
        "secret": cred.secret,
        "identity_url": ks.v3,
        "storage_url": storage_url,
    }


def revoked_token(ks: KeystoneServer) -> str:
    """A real token of the project, revoked before any store has seen (and cached) it."""
    token = ks.user_token()
    resp = requests.delete(
        f"{ks.v3}/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
        timeout=30,
    )
    assert resp.status_code == 204, resp.text
    return token


# -- the Authenticator against Keystone ----------------------------------------------------------


def test_application_credential_gets_a_project_token(
    keystone: KeystoneServer, kakao: KakaoServer, session: requests.Session
) -> None:
    template = f"{kakao.gateway_url}/v1/{{project_id}}"
    before = time.time()
    creds = Authenticator(kakao_auth(keystone, template), session).credentials()
    assert creds.storage_url == kakao.storage_url
    assert "AUTH_" not in creds.storage_url
    assert creds.token.startswith("gAAAAA")
    assert creds.expires_at is not None
    # Keystone's expires_at (whole seconds), not a lifetime assumed by the client.
    assert before + keystone.token_lifetime - 2 <= creds.expires_at <= time.time() + 20
    # KakaoCloud's own storage host stays the default.
    default = Authenticator(kakao_auth(keystone, None), session).credentials()
    assert default.storage_url == (
        f"https://objectstorage.kr-central-2.kakaocloud.com/v1/{keystone.project_id}"
    )


def test_wrong_secret_is_refused_with_exit_77(
    keystone: KeystoneServer, session: requests.Session
) -> None:
    wrong = AppCredential(keystone.credential.id, "not-the-secret")
    auth = Authenticator(kakao_auth(keystone, None, wrong), session)
    with pytest.raises(AuthError) as caught:
        auth.credentials()
    assert caught.value.status == 401 and caught.value.exit_code == EXIT_AUTH
    assert "not-the-secret" not in str(caught.value)
    # Asked again at once, the refusal is repeated without asking Keystone (backoff).
    with pytest.raises(AuthError) as again:
        auth.credentials()
    assert again.value is caught.value


@pytest.mark.parametrize("store", ["kakao", "rgw"])
def test_a_401_is_retried_once_after_reauthenticating(
    store: str, keystone: KeystoneServer, kakao: KakaoServer, session: requests.Session,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if store == "rgw":
        rgw: RgwServer = request.getfixturevalue("rgw")
        storage_url = f"{rgw.endpoint}/swift/v1"
    else:
        storage_url = kakao.storage_url
    auth = Authenticator(kakao_auth(keystone, storage_url), session)
    real = auth.credentials()
    auth._current = Credentials(
        token=revoked_token(keystone), storage_url=real.storage_url, expires_at=None
    )
    client = SwiftClient(auth, session, sleep=lambda s: None)
    bucket = f"ks-{uuid.uuid4().hex[:10]}"
    client.create_container(bucket)
    assert (client.unauthorized, client.request_count) == (1, 2)
    assert client.container_exists(bucket)
    assert client.unauthorized == 1


def test_rgw_tokens_expire_and_kcsync_refreshes_before(
    keystone: KeystoneServer, rgw: RgwServer, session: requests.Session
) -> None:
    tokens: list[str] = []
    auth = Authenticator(
        kakao_auth(keystone, f"{rgw.endpoint}/swift/v1"), session, on_token=tokens.append
    )
    client = SwiftClient(auth, session, sleep=lambda s: None)
    bucket = f"ks-{uuid.uuid4().hex[:10]}"
    client.create_container(bucket)
    first = auth.credentials()
    assert first.expires_at is not None
    # Requests all along until the third token: each refresh comes before its expiry.
    deadline = time.monotonic() + 3 * keystone.token_lifetime + 30
    while len(tokens) < 3:
        assert time.monotonic() < deadline, "no third token"
        assert client.container_exists(bucket)
        time.sleep(0.5)
    assert client.unauthorized == 0
    # The first token itself is refused by RGW now: expiry is the server's, not a guess.
    wait_for(lambda: time.time() > first.expires_at + 1, "the first token's expiry", 30)  # type: ignore[operator]
    stale = session.head(
        f"{first.storage_url}/{bucket}", headers={"X-Auth-Token": first.token}, timeout=30
    )
    assert stale.status_code == 401


# -- kcsync through its CLI, outliving tokens ------------------------------------------------------


def events_named(events: list[dict[str, Any]], name: str) -> int:
    return sum(1 for e in events if e.get("event") == name)


def test_once_outlives_several_tokens_without_a_401(
    tmp_path: Path, kakao_backend: Backend, kakao: KakaoServer, keystone: KeystoneServer
) -> None:
    env = Env(tmp_path, kakao_backend)
    for i in range(40):
        env.write(f"t/{i:03d}.txt", b"x%d" % i)
    # Every request held back 1 s, one worker: the run lasts about 45 s, over two refreshes.
    with FaultProxy(kakao.gateway_url, delay=1.0) as slow:
        auth = kcsync_auth(keystone, f"{slow.url}/v1/{{project_id}}", keystone.credential)
        result = env.run(auth=auth, workers=1)
    assert result.code == 0, result.stderr[-3000:]
    assert len(result.uploaded()) == 40
    assert events_named(result.events, "token obtained") >= 3
    assert events_named(result.events, "401, re-authenticating") == 0
    assert result.named("run finished")[0]["unauthorized"] == 0
    assert len(env.names()) == 40


def test_deleted_credential_exits_77_in_once(
    tmp_path: Path, kakao_backend: Backend, kakao: KakaoServer, keystone: KeystoneServer
) -> None:
    env = Env(tmp_path, kakao_backend)
    env.write("a.txt", b"a")
    cred = keystone.create_credential()
    keystone.delete_credential(cred.id)
    result = env.run(auth=kcsync_auth(keystone, f"{kakao.gateway_url}/v1/{{project_id}}", cred))
    assert result.code == EXIT_AUTH, result.stderr[-2000:]
    assert "refused the credentials" in result.stderr
    assert cred.secret not in result.stderr


def test_daemon_outlives_tokens_survives_a_deleted_credential_and_rotates_on_sighup(
    tmp_path: Path, kakao_backend: Backend, kakao: KakaoServer, keystone: KeystoneServer
) -> None:
    env = Env(tmp_path, kakao_backend)
    storage = f"{kakao.gateway_url}/v1/{{project_id}}"
    old = keystone.create_credential()
    daemon = DaemonProcess(env, auth=kcsync_auth(keystone, storage, old))
    with daemon:
        # A file every 3 s for 45 s: the daemon works through two token refreshes.
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 2.2 * keystone.token_lifetime:
            env.write(f"live/{i:03d}.txt", b"%d" % i)
            i += 1
            wait_for(lambda n=i: len(daemon.named("uploaded")) >= n, f"upload {i}", 30)  # type: ignore[misc]
            time.sleep(3)
        assert len(daemon.named("token obtained")) >= 3
        assert daemon.named("401, re-authenticating") == []
        assert daemon.named("job failed") == []

        # The access key is deleted: its tokens die with it (at the latest when they
        # expire: the gateway's cache still takes them until then), and re-authenticating
        # is refused. Work keeps coming meanwhile.
        keystone.delete_credential(old.id)
        deadline = time.monotonic() + 3 * keystone.token_lifetime
        n = 0
        while not daemon.named("credentials refused"):
            assert time.monotonic() < deadline, "no refusal after the key was deleted"
            env.write(f"meanwhile/{n}.txt", b"m")
            n += 1
            time.sleep(1)
        refused_at = time.monotonic()
        env.write("after/x.txt", b"x")
        wait_for(
            lambda: len(daemon.named("job failed", "files/after/x.txt")) >= 2,
            "the job's retries",
            60,
        )
        window = time.monotonic() - refused_at
        assert daemon.proc.poll() is None  # no crash, no exit: it waits for new keys
        # Backoff: 5 s, then 10 s... not one IAM request per job attempt and worker.
        assert len(daemon.named("credentials refused")) <= 2 + window / 5
        assert "files/after/x.txt" not in env.names()

        # The operator rotates the key: new credential in the config, SIGHUP.
        new = keystone.create_credential()
        env.configure(
            auth=kcsync_auth(keystone, storage, new),
            daemon={"settle": "0.3s", "reconcile_interval": "1h"},
        )
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "files/after/x.txt" in env.names(), "the upload with the new key", 60)
    log = daemon.log_path.read_text()
    assert old.secret not in log and new.secret not in log

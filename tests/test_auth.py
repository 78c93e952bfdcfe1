"""Authenticator: KakaoCloud IAM and Swift v1.

KakaoCloud IAM is a real Keystone here (tests/servers/keystone.py; more in
tests/e2e/test_keystone.py). tests/fake_iam.py stays for what Keystone cannot be made to do:
answer 503 (an IAM outage), answer slowly (so concurrent first uses overlap), and run on an
injected clock (exact refresh arithmetic, no sleeping).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from kcsync.config import KakaoAuth, TokenAuth, V1Auth
from kcsync.errors import (
    EXIT_AUTH,
    EXIT_UNAVAILABLE,
    AuthError,
    RemoteError,
    TransientRemoteError,
)
from kcsync.localfs import FileSlice
from kcsync.model import LocalEntry
from kcsync.swift.auth import Authenticator, Credentials, auth_status_error
from kcsync.swift.client import SwiftClient
from tests.fake_iam import TOKENS_PATH, FakeIam
from tests.servers.keystone import KeystoneServer
from tests.servers.swift import SwiftServer, running_swift

KEY_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
SECRET = "s3cr3t-Application-Credential"
REGION = "kr-central-2"
T0 = 1_800_000_000.0  # a whole second, so expiry arithmetic is exact


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def counting(session: requests.Session) -> list[str]:
    """Record ``METHOD url`` of every response the session receives."""
    seen: list[str] = []

    def hook(resp: requests.Response, *args: object, **kwargs: object) -> None:
        seen.append(f"{resp.request.method} {resp.url}")

    session.hooks["response"].append(hook)
    return seen


def real_kakao(ks: KeystoneServer) -> KakaoAuth:
    return KakaoAuth(
        region=REGION,
        access_key_id=ks.credential.id,
        secret=ks.credential.secret,
        identity_url=ks.v3,
    )


def kakao(iam: FakeIam, **overrides: str) -> KakaoAuth:
    fields = {"region": REGION, "access_key_id": KEY_ID, "secret": SECRET, "identity_url": iam.url}
    return KakaoAuth(**{**fields, **overrides})


# -- the fake IAM itself: it must refuse what real IAM refuses, or the tests below prove little --


def test_fake_iam_enforces_the_wire_format() -> None:
    good = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": KEY_ID, "secret": SECRET},
            }
        }
    }
    with FakeIam({KEY_ID: SECRET}) as iam:
        url = f"{iam.url}/auth/tokens"
        assert url.endswith(TOKENS_PATH)
        assert requests.get(url, timeout=5).status_code == 400
        as_text = requests.post(
            url, data=json.dumps(good), headers={"Content-Type": "text/plain"}, timeout=5
        )
        assert as_text.status_code == 400
        password = json.loads(json.dumps(good))
        password["auth"]["identity"]["methods"] = ["password"]
        assert requests.post(url, json=password, timeout=5).status_code == 400
        assert requests.post(url, json={"auth": {}}, timeout=5).status_code == 400
        wrong = json.loads(json.dumps(good))
        wrong["auth"]["identity"]["application_credential"]["secret"] = "nope"
        refused = requests.post(url, json=wrong, timeout=5)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == 401
        assert requests.post(f"{iam.url}/auth/other", json=good, timeout=5).status_code == 404

        ok = requests.post(url, json=good, timeout=5)
        assert ok.status_code == 201
        token = ok.json()["token"]
        assert ok.headers["X-Subject-Token"] == iam.tokens[0].token
        assert token["project"]["id"] == iam.project_id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", token["expires_at"])
        assert iam.post_count == 5  # the 404 went elsewhere
        assert [r.status for r in iam.requests] == [400, 400, 400, 400, 401, 404, 201]


# -- KakaoCloud IAM ------------------------------------------------------------------------------


def test_kakao_token_is_cached(session: requests.Session, keystone: KeystoneServer) -> None:
    tokens: list[str] = []
    auth = Authenticator(real_kakao(keystone), session, on_token=tokens.append)
    seen = {auth.credentials().token for _ in range(25)}
    assert len(tokens) == 1 and seen == set(tokens)


def test_kakao_concurrent_first_use_authenticates_once(session: requests.Session) -> None:
    # The IAM answers slowly, so all eight threads ask while the first POST is in flight.
    threads_before = threading.active_count()
    with FakeIam({KEY_ID: SECRET}, delay=0.2) as iam:
        auth = Authenticator(kakao(iam), session)
        barrier = threading.Barrier(8)

        def work(_: int) -> str:
            barrier.wait()
            return auth.credentials().token

        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(work, range(8)))
        assert iam.post_count == 1
    assert set(tokens) == {iam.tokens[0].token}
    assert threading.active_count() == threads_before  # the fake IAM joined its threads


def test_kakao_token_refreshed_before_expiry(session: requests.Session) -> None:
    clock = FakeClock()
    with FakeIam({KEY_ID: SECRET}, lifetime=43200, clock=clock) as iam:
        auth = Authenticator(kakao(iam), session, clock=clock)
        first = auth.credentials()
        clock.now = T0 + 43200 - 301  # just outside the 5-minute margin
        assert auth.credentials().token == first.token
        assert iam.post_count == 1
        clock.now = T0 + 43200 - 300  # inside it: refresh while the old token still works
        second = auth.credentials()
        assert iam.post_count == 2
        assert second.token == iam.tokens[1].token != first.token
        assert second.expires_at == clock.now + 43200
        assert auth.credentials().token == second.token
        assert iam.post_count == 2


def test_kakao_short_lived_token_refreshed_a_tenth_before_expiry(
    session: requests.Session,
) -> None:
    # A 5-minute margin would refresh a 60 s token on every call.
    clock = FakeClock()
    with FakeIam({KEY_ID: SECRET}, lifetime=60, clock=clock) as iam:
        auth = Authenticator(kakao(iam), session, clock=clock)
        first = auth.credentials()
        assert auth.credentials().token == first.token
        clock.now = T0 + 53.5
        assert auth.credentials().token == first.token
        assert iam.post_count == 1
        clock.now = T0 + 54
        assert auth.credentials().token != first.token
        assert iam.post_count == 2


def test_invalidate_forces_a_new_token(session: requests.Session, keystone: KeystoneServer) -> None:
    tokens: list[str] = []
    auth = Authenticator(real_kakao(keystone), session, on_token=tokens.append)
    first = auth.credentials()
    auth.invalidate(first.token)
    second = auth.credentials()
    assert tokens == [first.token, second.token] and second.token != first.token


def test_stale_invalidate_keeps_the_token_another_thread_fetched(
    session: requests.Session, keystone: KeystoneServer
) -> None:
    tokens: list[str] = []
    auth = Authenticator(real_kakao(keystone), session, on_token=tokens.append)
    old = auth.credentials().token

    def other_worker() -> None:  # got a 401 with the old token first and re-authenticated
        auth.invalidate(old)
        auth.credentials()

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join()
    assert len(tokens) == 2
    fresh = tokens[1]

    auth.invalidate(old)  # this worker's late 401 with the old token
    assert auth.credentials().token == fresh
    assert len(tokens) == 2


def test_kakao_outage_is_transient_and_not_cached(session: requests.Session) -> None:
    with FakeIam({KEY_ID: SECRET}) as iam:
        auth = Authenticator(kakao(iam), session)
        iam.fail_next(503)
        with pytest.raises(TransientRemoteError) as caught:
            auth.credentials()
        assert caught.value.status == 503
        assert not isinstance(caught.value, AuthError)
        assert auth.credentials().token == iam.tokens[0].token  # the next call tries again
        assert iam.post_count == 2


def test_kakao_unreachable_endpoint_is_transient(session: requests.Session) -> None:
    with FakeIam({KEY_ID: SECRET}) as iam:
        config = kakao(iam)
    with pytest.raises(TransientRemoteError):
        Authenticator(config, session, timeout=5).credentials()


def test_fixed_token_needs_no_request(session: requests.Session) -> None:
    seen = counting(session)
    auth = Authenticator(TokenAuth(token="tk", storage_url="http://h:1/v1/AUTH_x"), session)
    creds = auth.credentials()
    assert (creds.token, creds.storage_url, creds.expires_at) == (
        "tk",
        "http://h:1/v1/AUTH_x",
        None,
    )
    assert seen == []


# -- Swift v1 auth against a real Swift ------------------------------------------------------------


@pytest.fixture(scope="module")
def swift() -> Iterator[SwiftServer]:
    with running_swift() as server:
        yield server


def v1(server: SwiftServer, key: str | None = None) -> V1Auth:
    return V1Auth(url=server.auth_url, user=server.user, key=key or server.key)


def test_v1_auth_against_real_swift(swift: SwiftServer, session: requests.Session) -> None:
    clock = FakeClock(1000.0)
    auth = Authenticator(v1(swift), session, clock=clock)
    creds = auth.credentials()
    assert creds.storage_url == f"{swift.proxy_url}/v1/AUTH_test"
    assert creds.expires_at is not None and 1000 + 86000 < creds.expires_at <= 1000 + 86400
    client = SwiftClient(auth, session, sleep=lambda s: None)
    container = f"auth-{uuid.uuid4().hex[:8]}"
    client.create_container(container)
    assert client.container_exists(container)
    assert client.request_count == 2  # no 401 along the way


def test_v1_wrong_key_raises_auth_error(swift: SwiftServer, session: requests.Session) -> None:
    with pytest.raises(AuthError) as caught:
        Authenticator(v1(swift, key="wrong"), session).credentials()
    assert caught.value.status == 401


def test_v1_short_lived_token_refreshed_proactively(session: requests.Session) -> None:
    with running_swift(token_life=3) as server:
        seen = counting(session)
        clock = FakeClock(T0)
        auth = Authenticator(v1(server), session, clock=clock)
        first = auth.credentials()
        # The server's X-Auth-Token-Expires (seconds left, at most 3), not a default lifetime.
        assert first.expires_at is not None and T0 < first.expires_at <= T0 + 3
        refresh_at = first.refresh_at()
        assert refresh_at is not None and T0 < refresh_at < first.expires_at

        clock.now = refresh_at - 0.01
        assert auth.credentials().token == first.token
        assert len(seen) == 1
        clock.now = refresh_at  # still before expiry
        second = auth.credentials()
        assert len(seen) == 2 and all(s.startswith("GET ") and "/auth/v1.0" in s for s in seen)
        assert second.token != first.token

        client = SwiftClient(auth, session, sleep=lambda s: None)
        assert client.container_exists("never-created") is False  # the new token is accepted
        assert client.request_count == 1
        assert len(seen) == 3


def test_bogus_cached_token_reauthenticates_once(
    swift: SwiftServer, session: requests.Session
) -> None:
    auth = Authenticator(v1(swift), session)
    real = auth.credentials()
    seen = counting(session)
    auth._current = Credentials(token="bogus", storage_url=real.storage_url, expires_at=None)
    client = SwiftClient(auth, session, sleep=lambda s: None)
    container = f"reauth-{uuid.uuid4().hex[:8]}"
    client.create_container(container)
    assert client.request_count == 2  # the 401, then the same PUT with a fresh token
    assert [s.split()[0] for s in seen] == ["PUT", "GET", "PUT"]
    assert sum("/auth/v1.0" in s for s in seen) == 1
    assert auth.credentials().token not in ("bogus", real.token)
    assert client.container_exists(container)


def test_put_after_401_resends_the_whole_file_slice(
    swift: SwiftServer, session: requests.Session, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    st = path.stat()
    entry = LocalEntry("big.bin", str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    part = data[1234 : 1234 + 200_000]

    auth = Authenticator(v1(swift), session)
    client = SwiftClient(auth, session, timeout=10, sleep=lambda s: None)
    container = f"reauth-{uuid.uuid4().hex[:8]}"
    client.create_container(container)
    real = auth.credentials()
    auth._current = Credentials(token="bogus", storage_url=real.storage_url, expires_at=None)
    body = FileSlice(entry, 1234, len(part))
    try:
        etag = client.put_object(
            container, "part", body, etag=hashlib.md5(part).hexdigest(), headers={}
        )
    finally:
        body.close()
    assert etag == hashlib.md5(part).hexdigest()
    got = session.get(
        f"{real.storage_url}/{container}/part",
        headers={"X-Auth-Token": auth.credentials().token},
        timeout=10,
    )
    assert got.status_code == 200 and got.content == part


def test_refused_fixed_token_gives_up_after_one_reauthentication(
    swift: SwiftServer, session: requests.Session
) -> None:
    real = Authenticator(v1(swift), session).credentials()
    auth = Authenticator(TokenAuth(token="bogus", storage_url=real.storage_url), session)
    seen = counting(session)
    client = SwiftClient(auth, session, sleep=lambda s: None)
    with pytest.raises(AuthError) as caught:
        client.container_exists("anything")
    assert caught.value.status == 401
    assert client.request_count == 2
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("status", "kind", "exit_code"),
    [
        (200, None, None),
        (201, None, None),
        (401, AuthError, EXIT_AUTH),
        (403, AuthError, EXIT_AUTH),
        (400, RemoteError, EXIT_UNAVAILABLE),
        (404, RemoteError, EXIT_UNAVAILABLE),
        (405, RemoteError, EXIT_UNAVAILABLE),
        (408, TransientRemoteError, EXIT_UNAVAILABLE),
        (429, TransientRemoteError, EXIT_UNAVAILABLE),
        (503, TransientRemoteError, EXIT_UNAVAILABLE),
    ],
)
def test_only_401_and_403_from_the_auth_endpoint_mean_refused_credentials(
    status: int, kind: type[RemoteError] | None, exit_code: int | None
) -> None:
    # A wrong auth URL answered 400 and kcsync exited 77 "credentials refused", which
    # systemd never restarts and which blamed good keys (issue 20).
    error = auth_status_error(status, "http://auth.example/v1.0")
    if kind is None:
        assert error is None
        return
    assert type(error) is kind and error is not None
    assert error.exit_code == exit_code
    if kind is RemoteError:
        assert "is the auth URL right?" in str(error)

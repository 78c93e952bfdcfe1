"""Credentials stay where they belong: no redirect carries them elsewhere, every token is masked
in the logs, and an unreadable /info does not stop the start.

Redirects and 401s come from real servers on loopback (tests/redirects.py, tests/fake_iam.py,
and a real Swift or RGW behind tests/faults.py); nothing in kcsync's HTTP layer is mocked.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import structlog
from structlog.testing import capture_logs

from kcsync import logs
from kcsync.config import Config, KakaoAuth, TokenAuth, V1Auth, parse_config
from kcsync.daemon import make_remote
from kcsync.errors import EXIT_AUTH, AuthError, RemoteError, TransientRemoteError
from kcsync.logs import Redactor
from kcsync.swift.auth import Authenticator
from kcsync.swift.client import ServerLimits, SwiftClient, info_url
from kcsync.swift.session import Session
from tests.conftest import Backend
from tests.fake_iam import FakeIam
from tests.faults import FaultProxy
from tests.redirects import Recorder

KEY_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
SECRET = "s3cr3t-Application-Credential"
V1_KEY = "v1-key-that-must-stay-home"
TOKEN = "AUTH_tk-fixed-token-0123456789"
T0 = 1_800_000_000.0
REDIRECTS = [301, 302, 303, 307, 308]


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """kcsync's own session, as the daemon builds it."""
    with Session(verify=True, pool_size=4) as s:
        yield s


def kakao(identity_url: str, storage_url: str | None = None) -> KakaoAuth:
    return KakaoAuth(
        region="kr-central-2",
        access_key_id=KEY_ID,
        secret=SECRET,
        identity_url=identity_url,
        storage_url=storage_url,
    )


def token_auth(storage_url: str) -> TokenAuth:
    return TokenAuth(token=TOKEN, storage_url=storage_url)


def assert_redirect_error(error: RemoteError, status: int, location: str) -> None:
    assert type(error) is RemoteError  # neither "credentials refused" nor "try again"
    assert error.status == status
    assert error.exit_code != EXIT_AUTH
    assert location in str(error)
    assert SECRET not in str(error) and V1_KEY not in str(error) and TOKEN not in str(error)


# -- no redirect is followed with credentials ------------------------------------------------------


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirected_kakao_post_never_delivers_the_secret(
    session: requests.Session, status: int
) -> None:
    # The target is a working IAM: following the redirect would have succeeded, secret and all.
    with FakeIam({KEY_ID: SECRET}) as iam:
        location = f"{iam.url}/auth/tokens"
        with Recorder([(status, {"Location": location})]) as hop:
            auth = Authenticator(kakao(f"{hop.url}/identity/v3"), session)
            with pytest.raises(RemoteError) as caught:
                auth.credentials()
            assert [r.method for r in hop.requests] == ["POST"]  # asked once, not retried
        assert iam.requests == []
    assert_redirect_error(caught.value, status, location)


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirected_v1_auth_never_delivers_the_key(session: requests.Session, status: int) -> None:
    with Recorder() as target:
        location = f"{target.url}/auth/v1.0"
        with Recorder([(status, {"Location": location})]) as hop:
            auth = Authenticator(V1Auth(url=f"{hop.url}/auth/v1.0", user="u", key=V1_KEY), session)
            with pytest.raises(RemoteError) as caught:
                auth.credentials()
            assert len(hop.requests) == 1 and hop.requests[0].carries(V1_KEY)
        assert target.requests == []
    assert_redirect_error(caught.value, status, location)


def test_auth_3xx_without_location_is_not_a_refusal(session: requests.Session) -> None:
    with Recorder([(300, {})]) as hop:
        auth = Authenticator(V1Auth(url=f"{hop.url}/auth/v1.0", user="u", key=V1_KEY), session)
        with pytest.raises(RemoteError) as caught:
            auth.credentials()
    assert_redirect_error(caught.value, 300, "(no Location header)")


STORAGE_CALLS = {
    "HEAD object": lambda c: c.head_object("bucket", "photo.jpg"),
    "PUT object": lambda c: c.put_object("bucket", "photo.jpg", b"data", etag=None, headers={}),
    "GET listing": lambda c: list(c.list_objects("bucket")),
    "DELETE object": lambda c: c.delete_object("bucket", "photo.jpg"),
}


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("call", list(STORAGE_CALLS))
def test_storage_redirect_does_not_resend_the_token(
    session: requests.Session, status: int, call: str
) -> None:
    with Recorder() as target:
        location = f"{target.url}/v1/AUTH_x/bucket/photo.jpg"
        with Recorder([(status, {"Location": location})]) as hop:
            auth = Authenticator(token_auth(f"{hop.url}/v1/AUTH_x"), session)
            client = SwiftClient(auth, session, timeout=10, sleep=lambda s: None)
            with pytest.raises(RemoteError) as caught:
                STORAGE_CALLS[call](client)
            assert len(hop.requests) == 1 and hop.requests[0].carries(TOKEN)
        assert target.requests == []
    assert client.request_count == 1  # a redirect is final: no retry, no re-authentication
    assert_redirect_error(caught.value, status, location)


@pytest.mark.parametrize("status", REDIRECTS)
def test_session_never_follows_even_when_a_caller_forgets(
    session: requests.Session, status: int
) -> None:
    # The second line of defence: a future call without allow_redirects=False gets the 3xx
    # back as its answer, and nothing reaches the new host.
    with Recorder() as target:
        with Recorder([(status, {"Location": f"{target.url}/elsewhere"})]) as hop:
            resp = session.post(
                f"{hop.url}/v1/AUTH_x", data=SECRET, headers={"X-Auth-Token": TOKEN}, timeout=10
            )
            assert len(hop.requests) == 1
        assert target.requests == []
    assert resp.status_code == status and resp.history == []


# -- every token is registered with the log redactor ---------------------------------------------


def test_every_token_obtained_reaches_the_registrar(session: requests.Session) -> None:
    clock = FakeClock()
    registered: list[str] = []
    with FakeIam({KEY_ID: SECRET}, lifetime=3600, clock=clock) as iam:
        auth = Authenticator(kakao(iam.url), session, clock=clock, on_token=registered.append)
        auth.credentials()
        auth.credentials()  # cached: nothing new to register
        clock.now = T0 + 3600 - 300  # inside the refresh margin
        auth.credentials()
        auth.invalidate(auth.credentials().token)  # what a 401 does
        auth.credentials()
        issued = [t.token for t in iam.tokens]
    assert len(issued) == 3
    assert registered == issued


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """JSON log lines into a buffer, through a fresh module redactor (nothing registered yet)."""
    monkeypatch.setattr(logs, "redactor", Redactor())
    stream = io.StringIO()
    logs.configure("json", "info", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_token_refreshed_before_expiry_is_masked_in_logs(
    session: requests.Session, log_stream: io.StringIO
) -> None:
    clock = FakeClock()
    with FakeIam({KEY_ID: SECRET}, lifetime=3600, clock=clock) as iam:
        auth = Authenticator(kakao(iam.url), session, clock=clock)  # the real default registrar
        first = auth.credentials().token
        clock.now = T0 + 3600 - 300
        second = auth.credentials().token
        assert iam.post_count == 2 and second != first
    log = structlog.get_logger("kcsync.test")
    log.warning("request failed", error=f"proxy echoed X-Auth-Token: {second}")
    log.warning(f"old {first} new {second}")
    out = log_stream.getvalue()
    assert first not in out and second not in out
    assert out.count(logs.MASK) == 3


def test_token_from_reauthentication_after_401_is_masked_in_logs(
    session: requests.Session, log_stream: io.StringIO
) -> None:
    # The storage server refuses the first token once; the client re-authenticates.
    with FakeIam({KEY_ID: SECRET}) as iam, Recorder([(401, {}), (204, {})]) as storage:
        auth = Authenticator(kakao(iam.url, storage_url=f"{storage.url}/v1/AUTH_x"), session)
        client = SwiftClient(auth, session, timeout=10, sleep=lambda s: None)
        assert client.container_exists("bucket")
        first, second = (t.token for t in iam.tokens)
        assert [r.headers["x-auth-token"] for r in storage.requests] == [first, second]
    structlog.get_logger("kcsync.test").error("upload failed", error=f"token {second} expired")
    out = log_stream.getvalue()
    assert second not in out and logs.MASK in out


# -- /info that cannot be read does not stop the start ---------------------------------------------


def token_config(tmp_path: Path, token: str, storage_url: str, attempts: int) -> Config:
    data = {
        "auth": {"method": "token", "token": token, "storage_url": storage_url},
        "bucket": f"kc-{uuid.uuid4().hex[:12]}",
        "folders": [{"path": str(tmp_path / "data")}],
        "state_dir": str(tmp_path / "state"),
        "retry": {"request_attempts": attempts},
    }
    return parse_config(data, source=tmp_path / "kcsync.yaml", environ={})


INFO_FAULTS = {
    # id: (status, how many requests fail, /info read in the end, fates seen by the proxy)
    "401-then-ok": (401, 1, True, ["answered 401", "forwarded"]),
    "401-always": (401, 99, False, ["answered 401", "answered 401"]),
    "403": (403, 99, False, ["answered 403"]),
    "503-then-ok": (503, 2, True, ["answered 503", "answered 503", "forwarded"]),
    "503-always": (503, 99, False, ["answered 503"] * 3),
}


@pytest.mark.parametrize("fault", list(INFO_FAULTS))
def test_info_failures_do_not_stop_the_start(backend: Backend, tmp_path: Path, fault: str) -> None:
    status, count, readable, fates = INFO_FAULTS[fault]
    token, storage_url = backend.token()
    real = ServerLimits.from_info(requests.get(info_url(storage_url), timeout=10).json())
    with FaultProxy(storage_url, fail_first=count, fail_status=status, retry_after="0") as proxy:
        config = token_config(tmp_path, token, proxy.proxied(storage_url), attempts=3)
        with capture_logs() as events:
            remote = make_remote(config)
    # Read once the proxy has stopped: it records a request after answering it.
    assert [s.fate for s in proxy.seen] == fates
    assert all(s.target.endswith("/info") for s in proxy.seen)
    warnings = [e for e in events if e["event"].startswith("cannot read /info")]
    if readable:
        assert remote.limits == real
        assert warnings == []
    else:
        assert remote.limits == ServerLimits()
        assert len(warnings) == 1 and str(status) in warnings[0]["error"]
        assert token not in str(warnings[0])


def test_info_that_is_not_json_gives_default_limits(session: requests.Session) -> None:
    with Recorder([(200, {"Content-Type": "text/html"})], body=b"<html>portal</html>") as server:
        auth = Authenticator(token_auth(f"{server.url}/v1/AUTH_x"), session)
        client = SwiftClient(auth, session, timeout=10, sleep=lambda s: None)
        with capture_logs() as events:
            assert client.limits() == ServerLimits()
        assert [r.path for r in server.requests] == ["/info"]
    assert [e["log_level"] for e in events] == ["warning"]


def test_refused_credentials_still_stop_the_start(session: requests.Session) -> None:
    # Only /info is forgiven: the auth endpoint's own refusal keeps exit 77.
    with FakeIam({KEY_ID: "another-secret"}) as iam:
        auth = Authenticator(kakao(iam.url), session)
        client = SwiftClient(auth, session, timeout=10, sleep=lambda s: None)
        with pytest.raises(AuthError) as caught:
            client.limits()
    assert caught.value.exit_code == EXIT_AUTH
    assert not isinstance(caught.value, TransientRemoteError)

"""The run's HTTP session: environment read once per host, with the same answers requests
would give per request; no ~/.netrc credentials; large writes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from kcsync.swift.session import SEND_BLOCK, Session


def settings(session: requests.Session, url: str) -> dict[str, object]:
    return dict(session.merge_environment_settings(url, {}, None, None, None))


def test_proxies_and_no_proxy_are_resolved_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    ours, plain = Session(verify=True, pool_size=4), requests.Session()
    for url in ("https://store.example/v1/a", "https://direct.example/v1/a"):
        assert settings(ours, url) == settings(plain, url)
    assert settings(ours, "https://store.example/x")["proxies"]["https"] == (
        "http://proxy.example:3128"
    )
    assert "https" not in settings(ours, "https://direct.example/x")["proxies"]


def test_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    session = Session(verify=True, pool_size=4)
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:1")
    first = settings(session, "https://store.example/a")
    monkeypatch.setenv("HTTPS_PROXY", "http://second.example:1")
    assert settings(session, "https://store.example/b") == first  # cached for the host
    assert settings(session, "https://other.example/b")["proxies"]["https"] == (
        "http://second.example:1"
    )
    # An answer handed out is a copy: whoever changes it cannot change the next one.
    settings(session, "https://store.example/c")["proxies"].clear()  # type: ignore[attr-defined]
    assert settings(session, "https://store.example/d") == first


def test_session_verify_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert settings(Session(verify=True, pool_size=4), "https://a.example/")["verify"] is True
    assert settings(Session(verify=False, pool_size=4), "https://a.example/")["verify"] is False
    bundle = "/etc/ssl/custom.pem"
    assert settings(Session(verify=bundle, pool_size=4), "https://a.example/")["verify"] == bundle


def test_netrc_credentials_are_never_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine store.example login alice password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    plain = requests.Session().prepare_request(requests.Request("GET", "https://store.example/"))
    assert "Authorization" in plain.headers  # what requests alone would send
    ours = Session(verify=True, pool_size=4)
    prepared = ours.prepare_request(requests.Request("GET", "https://store.example/"))
    assert "Authorization" not in prepared.headers


def test_connections_write_bodies_in_large_blocks() -> None:
    session = Session(verify=True, pool_size=4)
    for url in ("http://127.0.0.1:9/", "https://127.0.0.1:9/"):
        pool = session.get_adapter(url).poolmanager.connection_from_url(url)  # type: ignore[attr-defined]
        assert pool._new_conn().blocksize == SEND_BLOCK


def test_a_streamed_get_uses_the_cached_environment_and_its_own_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:1")
    ours, plain = Session(verify=True, pool_size=4), requests.Session()
    url = "https://store.example/v1/a/c/o"
    assert settings(ours, url)["stream"] is False
    monkeypatch.setenv("HTTPS_PROXY", "http://second.example:1")
    streamed = dict(ours.merge_environment_settings(url, {}, True, None, None))
    assert streamed["stream"] is True  # every GET of a body: no re-read of the environment
    assert streamed["proxies"] == {"https": "http://first.example:1"}
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:1")
    assert streamed == dict(plain.merge_environment_settings(url, {}, True, None, None))
    assert settings(ours, url)["stream"] is False  # the next call is not streamed


def test_stream_is_per_request_and_does_not_bypass_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SwiftClient.request always passes stream: were it an override, no request would use
    # the cache at all.
    session = Session(verify=True, pool_size=4)
    monkeypatch.setenv("HTTPS_PROXY", "http://first.example:1")
    first = session.merge_environment_settings("https://store.example/a", {}, True, None, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://second.example:1")
    again = session.merge_environment_settings("https://store.example/b", {}, False, None, None)
    assert again["proxies"] == first["proxies"]
    assert (first["stream"], again["stream"]) == (True, False)
    assert settings(session, "https://store.example/c")["stream"] is False


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every PUT with what the test queued, and records what it was sent."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    answers: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []

    def do_PUT(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        status, headers, answer = self.answers.pop(0)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(answer))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen, _Recorder.answers = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_send_bytes_sends_what_request_would(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    _Recorder.answers += [(201, {"Etag": '"abc"'}, b""), (201, {"Etag": '"abc"'}, b"")]
    session = Session(verify=True, pool_size=4)
    headers = {"X-Auth-Token": "tok", "Content-Length": "3", "X-Object-Meta-Mtime": "1.5"}
    fast = session.send_bytes("PUT", f"{recorder}/v1/a/c/o%20x", headers, b"abc", 5.0)
    slow = session.request(
        "PUT", f"{recorder}/v1/a/c/o%20x", headers=headers, data=b"abc", allow_redirects=False
    )
    (_, path1, sent1, body1), (_, path2, sent2, body2) = _Recorder.seen
    assert (path1, body1) == (path2, body2) == ("/v1/a/c/o%20x", b"abc")
    assert sent1 == sent2  # the session's own headers too (User-Agent, Accept...)
    assert sent1["User-Agent"] == "kcsync/0.1"
    assert (fast.status_code, fast.headers["etag"], fast.content) == (201, '"abc"', b"")
    assert (fast.reason, fast.url, fast.ok) == (slow.reason, slow.url, True)


def test_send_bytes_returns_errors_and_redirects_as_answers(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    _Recorder.answers += [
        (503, {"Retry-After": "2", "Content-Type": "text/plain; charset=utf-8"}, b"slow down"),
        (307, {"Location": "http://elsewhere.example/x"}, b""),
    ]
    session = Session(verify=True, pool_size=4)
    busy = session.send_bytes("PUT", f"{recorder}/o", {"Content-Length": "1"}, b"x", 5.0)
    assert (busy.status_code, busy.text, busy.headers["Retry-After"]) == (503, "slow down", "2")
    moved = session.send_bytes("PUT", f"{recorder}/o", {"Content-Length": "1"}, b"x", 5.0)
    assert (moved.status_code, len(_Recorder.seen)) == (307, 2)  # not followed


def test_send_bytes_connection_errors_are_requests_errors() -> None:
    session = Session(verify=True, pool_size=4)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        session.send_bytes("PUT", f"http://127.0.0.1:{port}/o", {}, b"x", 5.0)


def test_send_bytes_through_a_proxy_takes_the_ordinary_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = Session(verify=True, pool_size=4)
    calls: list[tuple[str, str, dict[str, object]]] = []

    def ordinary(method: str, url: str, **kwargs: object) -> requests.Response:
        calls.append((method, url, kwargs))
        return requests.Response()

    monkeypatch.setattr(session, "request", ordinary)
    session.send_bytes("PUT", "http://store.example/o", {"A": "b"}, b"x", 5.0)
    assert calls == [
        (
            "PUT",
            "http://store.example/o",
            {"headers": {"A": "b"}, "data": b"x", "timeout": 5.0, "allow_redirects": False},
        )
    ]


@pytest.mark.parametrize("verify", [True, False, "/etc/ssl/custom.pem"])
def test_send_bytes_uses_the_pool_requests_would(
    verify: bool | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same pool (so the same TLS settings: CA bundle, verification) as requests'
    # own lookup for the URL, worked out once per host instead of per request.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    session = Session(verify=verify, pool_size=4)
    url = "https://store.example/v1/a/c/o"
    route = session._route(url)
    assert route is not None
    ours = route.adapter.poolmanager.connection_from_host(
        **route.host_params, pool_kwargs=route.pool_kwargs
    )
    prepared = requests.PreparedRequest()
    prepared.prepare(method="PUT", url=url)
    adapter = session.get_adapter(url)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert ours is adapter.get_connection_with_tls_context(prepared, verify, proxies={})

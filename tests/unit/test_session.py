"""The run's HTTP session: environment read once per host, with the same answers requests
would give per request; no ~/.netrc credentials; large writes."""

from __future__ import annotations

from pathlib import Path

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

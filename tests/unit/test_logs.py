"""logs.py: secrets never reach a log line, whatever the format."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from kcsync import logs
from kcsync.logs import MASK, Redactor, configure

SECRET = "tok-9f8e7d6c5b4a"
KEY = "swift-key-0123"


@pytest.fixture
def redactor(monkeypatch):
    """A fresh module redactor, so secrets registered here do not leak into other tests."""
    fresh = Redactor()
    fresh.register(SECRET)
    fresh.register(KEY)
    monkeypatch.setattr(logs, "redactor", fresh)
    return fresh


@pytest.fixture
def reset_structlog():
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SECRET, MASK),
        (f"X-Auth-Token: {SECRET}", f"X-Auth-Token: {MASK}"),
        (f"{SECRET}{SECRET}", MASK + MASK),
        (f"key={KEY} token={SECRET}", f"key={MASK} token={MASK}"),
        (f"https://h/v1?temp_url_sig={SECRET}&x=1", f"https://h/v1?temp_url_sig={MASK}&x=1"),
        ("nothing to hide", "nothing to hide"),
        (SECRET[:-1], SECRET[:-1]),  # a partial value is not the secret
        ("", ""),
    ],
    ids=[
        "whole",
        "in-header",
        "twice",
        "two-secrets",
        "in-url",
        "clean",
        "prefix-only",
        "empty",
    ],
)
def test_scrub(redactor, text, expected):
    assert redactor.scrub(text) == expected


@pytest.mark.parametrize(
    ("value", "masked"),
    [(None, False), ("", False), ("abc", False), ("abcd", True), ("a-long-secret", True)],
    ids=["none", "empty", "too-short", "four-chars", "long"],
)
def test_register_ignores_values_too_short_to_mask(value, masked):
    # Masking "a" or "ab" would shred every log line without protecting anything.
    r = Redactor()
    r.register(value)
    text = f"x {value} y" if value else "x  y"
    assert (MASK in r.scrub(text)) is masked


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token", "anything"),
        ("auth_token", "anything"),
        ("Secret", "anything"),
        ("client_secret", 12345),
        ("password", ["a", "list"]),
        ("X-Auth-Key", "anything"),
        ("auth_key", "anything"),
        ("Authorization", "Bearer abc"),
        ("token", None),
    ],
    ids=[
        "token",
        "auth-token",
        "capitalised",
        "non-string-value",
        "list-value",
        "header-name",
        "auth-key",
        "authorization",
        "none-value",
    ],
)
def test_secret_named_fields_are_masked_whatever_they_hold(field, value):
    event = Redactor()(None, "info", {"event": "x", field: value})
    assert event[field] == MASK
    assert event["event"] == "x"


def test_event_fields(redactor):
    error = RuntimeError(f"401 for token {SECRET}")
    event = redactor(
        None,
        "info",
        {
            "event": f"auth failed with {KEY}",
            "error": error,
            "detail": f"header {SECRET}",
            "count": 3,
            "ratio": 0.5,
            "object": "photos/a.jpg",
        },
    )
    assert event == {
        "event": f"auth failed with {MASK}",
        "error": f"401 for token {MASK}",
        "detail": f"header {MASK}",
        "count": 3,
        "ratio": 0.5,
        "object": "photos/a.jpg",
    }


def test_secrets_registered_later_are_masked_too():
    r = Redactor()
    assert r.scrub("new-token-value") == "new-token-value"
    r.register("new-token-value")  # e.g. after a token refresh
    assert r.scrub("new-token-value") == MASK


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("reset_structlog")
@pytest.mark.parametrize("fmt", ["json", "auto"], ids=["json", "auto-not-a-tty"])
def test_configure_json_lines_without_secrets(redactor, fmt):
    stream = io.StringIO()
    configure(fmt, "info", stream=stream)
    log = structlog.get_logger("kcsync.test")
    log.info("uploaded", object="p/a.txt", bytes=5)
    log.warning(f"request with {SECRET} failed", url=f"http://h/?sig={KEY}", token="whatever")
    out = stream.getvalue()
    assert SECRET not in out
    assert KEY not in out
    assert "whatever" not in out
    first, second = lines(stream)
    assert first["event"] == "uploaded"
    assert (first["object"], first["bytes"], first["level"]) == ("p/a.txt", 5, "info")
    assert first["timestamp"].endswith("Z")
    assert second["event"] == f"request with {MASK} failed"
    assert second["url"] == f"http://h/?sig={MASK}"
    assert second["token"] == MASK
    assert second["level"] == "warning"


@pytest.mark.usefixtures("reset_structlog")
def test_configure_masks_secrets_in_tracebacks(redactor):
    stream = io.StringIO()
    configure("json", "info", stream=stream)
    log = structlog.get_logger("kcsync.test")
    try:
        raise ConnectionError(f"proxy said: X-Auth-Token: {SECRET}")
    except ConnectionError:
        log.exception("job crashed", object="p/a")
    assert SECRET not in stream.getvalue()
    [line] = lines(stream)
    assert "ConnectionError" in line["exception"]
    assert f"X-Auth-Token: {MASK}" in line["exception"]


@pytest.mark.usefixtures("reset_structlog")
@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["d", "i", "w", "e"]),
        ("info", ["i", "w", "e"]),
        ("warning", ["w", "e"]),
        ("error", ["e"]),
    ],
    ids=["debug", "info", "warning", "error"],
)
def test_configure_level(redactor, level, expected):
    stream = io.StringIO()
    configure("json", level, stream=stream)
    log = structlog.get_logger("kcsync.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in lines(stream)] == expected


@pytest.mark.usefixtures("reset_structlog")
def test_configure_console_is_redacted_too(redactor):
    stream = io.StringIO()
    configure("console", "info", stream=stream)
    structlog.get_logger("kcsync.test").info(f"using {KEY}", password="hunter22")
    out = stream.getvalue()
    assert "using" in out
    assert KEY not in out
    assert "hunter22" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])
    assert "\x1b[" not in out  # no colours when the stream is not a terminal

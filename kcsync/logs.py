"""structlog set-up: readable on a terminal, JSON lines elsewhere, secrets never printed."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

# Field names whose values are credentials whatever they hold.
_SECRET_FIELDS = ("token", "secret", "password", "auth_key", "x-auth-key", "authorization")
MASK = "***"


class Redactor:
    """Masks known secret values anywhere in an event, and secret-named fields entirely.

    Values are registered as they become known (config secrets at start, tokens when
    issued), so even an exception text that quotes a header cannot leak one.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        # Longest first: a secret containing another must not be left half-masked. Sorted
        # once per registration, not once per string logged (every uploaded file logs).
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()
        # Field name -> whether its name marks a secret; the same few names come back on
        # every event. Plain dict reads and writes, safe from any thread under the GIL.
        self._secret_field: dict[str, bool] = {}

    def register(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)
                # Replaced whole: a thread scrubbing meanwhile holds the old tuple, which
                # lacks only the secret being registered right now.
                self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _is_secret_field(self, field: str) -> bool:
        verdict = self._secret_field.get(field)
        if verdict is None:
            verdict = any(s in field.lower() for s in _SECRET_FIELDS)
            self._secret_field[field] = verdict
        return verdict

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for field, value in list(event.items()):
            if self._is_secret_field(field):
                event[field] = MASK
            elif isinstance(value, str):
                event[field] = self.scrub(value)
            elif isinstance(value, BaseException):
                event[field] = self.scrub(str(value))
        return event


redactor = Redactor()


class StatusLine:
    """The one line a terminal shows the run's progress on, and the log lines beside it.

    Both write to stderr: a log line written while the status line is drawn would run into
    it. Every write goes through here, under one lock; a log line first clears the status
    line, which the next redraw puts back below it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown = False

    def draw(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(f"\r\x1b[K{text}")
            stream.flush()
            self._shown = True

    def clear(self, stream: TextIO) -> None:
        with self._lock:
            self._clear(stream)

    def write_log(self, stream: TextIO, text: str) -> None:
        with self._lock:
            self._clear(stream)
            stream.write(text)

    def _clear(self, stream: TextIO) -> None:
        if self._shown:
            stream.write("\r\x1b[K")
            self._shown = False


status_line = StatusLine()


class _LogStream:
    """stderr as structlog's PrintLogger sees it: whole lines, through the status line.

    print() writes a message and its newline in two calls; a status redraw between them
    would erase the message, so text is held until its line is complete.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            done, newline, rest = self._pending.rpartition("\n")
            if newline:
                self._pending = rest
                status_line.write_log(self._stream, done + newline)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _LogStream(stream))),
        cache_logger_on_first_use=False,
    )

"""structlog set-up: readable on a terminal, JSON lines elsewhere, secrets never printed."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

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
        self._lock = threading.Lock()

    def register(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        with self._lock:  # a token refresh may register while another thread logs
            secrets = sorted(self._secrets, key=len, reverse=True)
        # Longest first: a secret containing another must not be left half-masked.
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for field, value in list(event.items()):
            if any(s in field.lower() for s in _SECRET_FIELDS):
                event[field] = MASK
            elif isinstance(value, str):
                event[field] = self.scrub(value)
            elif isinstance(value, BaseException):
                event[field] = self.scrub(str(value))
        return event


redactor = Redactor()


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
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )

"""Getting and keeping a token: KakaoCloud IAM, Swift v1 auth, or a fixed token.

One Authenticator is shared by all worker threads. It refreshes a token a few minutes
before it expires and once when the server answers 401, and never lets two threads
authenticate at the same time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import requests
import structlog

from kcsync import logs
from kcsync.config import DEFAULT_STORAGE_URL, AuthConfig, KakaoAuth, TokenAuth, V1Auth
from kcsync.errors import AuthError, RemoteError, TransientRemoteError

log = structlog.get_logger("kcsync.auth")

# Refresh this long before the server says the token expires, so a request that starts just
# before expiry does not arrive just after it; a tenth of the lifetime for short-lived tokens.
REFRESH_MARGIN = 300.0
# After the IAM refuses the credentials (a deleted or rotated access key), every request
# would otherwise ask it again at once: a daemon's workers would hammer it and fill the log.
# The refusal is remembered and repeated for a while that doubles up to the cap; SIGHUP
# (new credentials) ends it at once.
REFUSAL_BACKOFF = 5.0
REFUSAL_BACKOFF_CAP = 300.0


@dataclass(frozen=True)
class Credentials:
    token: str = field(repr=False)
    storage_url: str
    expires_at: float | None  # epoch seconds; None when the server did not say
    issued_at: float = 0.0

    def refresh_at(self) -> float | None:
        if self.expires_at is None:
            return None
        margin = min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 10)
        return self.expires_at - margin


class Authenticator:
    def __init__(
        self,
        config: AuthConfig,
        session: requests.Session,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        """``on_token`` is told every token this Authenticator obtains, before anyone can
        use (and log) it; by default it goes to the log redactor."""
        self._config = config
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._on_token = on_token or _mask_in_logs
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self.tokens = 0  # obtained so far; every one after the first is a refresh (metrics)
        self._refused: AuthError | None = None
        self._refused_until = 0.0
        self._refusals = 0

    def credentials(self) -> Credentials:
        with self._lock:
            creds = self._current
            if creds is None or self._expiring(creds):
                creds = self._authenticate_or_back_off()
                self.tokens += 1
                # Here and nowhere else: refreshes and re-authentications after a 401 pass
                # through this line too, so no later token escapes the log redactor.
                self._on_token(creds.token)
                self._current = creds
                if creds.expires_at is not None:
                    log.info(
                        "token obtained", expires_in=round(creds.expires_at - self._clock(), 1)
                    )
            return creds

    def reconfigure(self, config: AuthConfig) -> None:
        """Use new credentials from now on (SIGHUP after a key rotation): the current token
        is dropped and a remembered refusal forgotten, so the next request authenticates."""
        with self._lock:
            self._config = config
            self._current = None
            self._refused = None
            self._refusals = 0

    def _authenticate_or_back_off(self) -> Credentials:
        now = self._clock()
        if self._refused is not None and now < self._refused_until:
            raise self._refused
        try:
            creds = self._authenticate()
        except AuthError as exc:
            if exc.status not in (401, 403):
                raise
            delay = min(REFUSAL_BACKOFF * 2.0**self._refusals, REFUSAL_BACKOFF_CAP)
            self._refusals += 1
            self._refused, self._refused_until = exc, now + delay
            log.error(
                "credentials refused",
                error=str(exc),
                retry_in=delay,
                hint="check the access key in the config; SIGHUP makes kcsync re-read it",
            )
            raise
        self._refused, self._refusals = None, 0
        return creds

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after a 401, unless another thread already replaced it."""
        with self._lock:
            if self._current is not None and self._current.token == token:
                self._current = None

    def _expiring(self, creds: Credentials) -> bool:
        refresh_at = creds.refresh_at()
        return refresh_at is not None and self._clock() >= refresh_at

    def _authenticate(self) -> Credentials:
        cfg = self._config
        try:
            if isinstance(cfg, V1Auth):
                return self._v1(cfg)
            if isinstance(cfg, KakaoAuth):
                return self._kakao(cfg)
        except requests.RequestException as exc:
            raise TransientRemoteError(f"auth: cannot reach the auth endpoint: {exc}") from None
        assert isinstance(cfg, TokenAuth)
        return Credentials(token=cfg.token, storage_url=cfg.storage_url, expires_at=None)

    def _v1(self, cfg: V1Auth) -> Credentials:
        resp = self._session.get(
            cfg.url,
            headers={"X-Auth-User": cfg.user, "X-Auth-Key": cfg.key},
            timeout=self._timeout,
            allow_redirects=False,  # see _raise_for_auth: the key goes to cfg.url only
        )
        _raise_for_auth(resp, cfg.url)
        token = resp.headers.get("X-Auth-Token")
        storage_url = resp.headers.get("X-Storage-Url")
        if not token or not storage_url:
            # Something answered that is not a Swift auth endpoint: the URL, not the keys.
            raise RemoteError(f"auth: {cfg.url} answered without X-Auth-Token/X-Storage-Url")
        expires = resp.headers.get("X-Auth-Token-Expires")
        expires_at = self._clock() + float(expires) if expires else None
        return Credentials(
            token=token,
            storage_url=storage_url.rstrip("/"),
            expires_at=expires_at,
            issued_at=self._clock(),
        )

    def _kakao(self, cfg: KakaoAuth) -> Credentials:
        url = f"{cfg.identity_url}/auth/tokens"
        body = {
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": cfg.access_key_id, "secret": cfg.secret},
                }
            }
        }
        # A 307/308 would make requests send the same body, secret included, to wherever
        # the Location points: the secret goes to the configured identity URL only.
        resp = self._session.post(url, json=body, timeout=self._timeout, allow_redirects=False)
        _raise_for_auth(resp, url)
        token = resp.headers.get("X-Subject-Token")
        try:
            data = resp.json()["token"]
            project_id = data["project"]["id"]
            expires_at = parse_rfc3339(data["expires_at"])
        except (ValueError, KeyError, TypeError):
            raise RemoteError(f"auth: {url} answered with an unexpected body") from None
        if not token:
            raise RemoteError(f"auth: {url} answered without X-Subject-Token")
        # A configured storage URL may name the project, for a private KakaoCloud-compatible
        # deployment whose storage host is not KakaoCloud's: .../v1/{project_id}.
        template = cfg.storage_url or DEFAULT_STORAGE_URL.replace("{region}", cfg.region)
        storage_url = template.replace("{project_id}", project_id)
        return Credentials(
            token=token, storage_url=storage_url, expires_at=expires_at, issued_at=self._clock()
        )


def _mask_in_logs(token: str) -> None:
    # Looked up at call time, so a test that swaps in its own redactor gets the tokens.
    logs.redactor.register(token)


def redirect_error(what: str, resp: requests.Response) -> RemoteError:
    """A 3xx answer to a request that carries credentials, which kcsync never follows.

    requests would follow it and resend the X-Auth-Key / X-Auth-Token headers (it strips
    only ``Authorization`` across hosts) and, on 307/308, a POST body holding the IAM
    secret, to a host nobody configured. Not an AuthError (exit 77 says "credentials
    refused", which they were not) and not transient (asking again gets the same answer):
    the configured URL needs to change, so the message names where the server points.
    """
    location = resp.headers.get("Location") or "(no Location header)"
    return RemoteError(
        f"{what} answered {resp.status_code} redirecting to {location}; kcsync does not "
        "follow redirects with credentials: configure the final URL instead",
        resp.status_code,
    )


def parse_rfc3339(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _raise_for_auth(resp: requests.Response, url: str) -> None:
    if 300 <= resp.status_code < 400:
        raise redirect_error(f"auth: {url}", resp)
    error = auth_status_error(resp.status_code, url, resp.text[:500])
    if error is not None:
        raise error


def auth_status_error(status: int, url: str, body: str = "") -> RemoteError | None:
    """What an auth endpoint's answer means for the caller (None: a success to read).

    Only 401 and 403 are a refusal of the credentials (exit 77, which systemd does not
    retry: the keys must change). Any other 4xx is a request that reached something which
    is not judging credentials at all, most often a wrong auth URL (a web server's 400 or
    404): calling that "credentials refused" sent people to rotate good keys, so it is a
    plain remote error (69) naming the URL to check.
    """
    if status < 300:
        return None
    if status in (401, 403):
        return AuthError(f"auth: {url} refused the credentials ({status})", 401)
    if status == 404 and "application credential" in body.lower():
        # Keystone's answer to an application credential that was deleted: the key is
        # gone, a refusal. A 404 without it is a wrong URL, below.
        return AuthError(f"auth: {url} refused the credentials (no such access key)", 401)
    if status >= 500 or status in (408, 429):
        return TransientRemoteError(f"auth: {url} answered {status}", status)
    return RemoteError(
        f"auth: {url} answered {status}, which is not a refusal of the credentials: "
        "is the auth URL right?",
        status,
    )

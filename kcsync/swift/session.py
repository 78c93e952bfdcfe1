"""The one HTTP session of a run: pooled connections sized for the workers, large writes,
and the environment (proxies, CA bundle) read once per host instead of once per request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy

if TYPE_CHECKING:
    from requests.sessions import _Settings

# File bodies go out in writes of this size: urllib3's default of 16 KiB costs a Python
# read, hash update and send call per 16 KiB, which shows at hundreds of MB/s.
SEND_BLOCK = 1024 * 1024


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", SEND_BLOCK)
        super().init_poolmanager(*args, **kwargs)


class _NoNetrc(requests.auth.AuthBase):
    """Requests would otherwise look up ~/.netrc on every request and send what it finds
    for the host as Basic credentials: never wanted beside an auth token."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class Session(requests.Session):
    """requests.Session that resolves the environment once per scheme and host.

    Requests re-reads every environment variable (proxies, NO_PROXY, CA bundle) on each
    request: about a tenth of kcsync's own CPU on a run of small files. The environment of
    a process does not change while it runs, so the first answer for a host stands.
    """

    def __init__(self, *, verify: bool | str, pool_size: int) -> None:
        super().__init__()
        self.verify = verify
        self.auth = _NoNetrc()
        self.headers["User-Agent"] = "kcsync/0.1"
        adapter = _Adapter(pool_connections=4, pool_maxsize=pool_size)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._env: dict[tuple[str, str], _Settings] = {}
        self._routes: dict[tuple[str, str], object] = {}  # send_bytes: _Route or None
        self._env_lock = threading.Lock()

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """None: this session never follows a redirect, whatever a caller asks.

        Every kcsync request carries credentials and passes allow_redirects=False, since
        requests would resend X-Auth-Token / X-Auth-Key (and a 307's body) to the
        Location's host. Should a new call forget to, the 3xx comes back to it as an
        answer and nothing goes to the new host. (max_redirects = 0 cannot do this: requests
        checks it even when it only computes the next hop of an unfollowed redirect.)
        """
        return None

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or verify is not None or cert is not None:
            # Per-request overrides: kcsync sends none, but they must win if it ever does.
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url.decode() if isinstance(url, bytes) else url or "")
        key = (parts.scheme, parts.netloc)
        with self._env_lock:
            settings = self._env.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, None, verify, cert)
            with self._env_lock:
                self._env[key] = settings
        copy = settings.copy()
        copy["proxies"] = dict(settings["proxies"])
        # stream is not the environment's: every call of SwiftClient.request passes it
        # (False or True), and when it counted as an override, as it once did, no request
        # ever used this cache and each one re-read the environment (15 % of the GIL time
        # of a run of small files).
        copy["stream"] = self.stream if stream is None else stream
        return copy

    def send_bytes(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> requests.Response:
        """``request(method, url, headers=headers, data=body, timeout=timeout,
        allow_redirects=False)``, the answer read, at half the CPU.

        For a body already in memory (every small file's PUT): requests' per-call layers
        (a Request and a PreparedRequest built, cookies merged and extracted, hooks, the
        environment merged) cost about as much CPU as urllib3 sending the request and
        parsing the answer, a thousand times a second on a run of small files. The same
        adapter, connection pool and TLS settings are used; only the bookkeeping is left
        out. A host reached through a proxy takes the ordinary path, which knows how.
        """
        parts = urlsplit(url)
        route = self._routes.get((parts.scheme, parts.netloc), _UNKNOWN)
        if route is _UNKNOWN:
            route = self._route(url)
            with self._env_lock:
                self._routes[(parts.scheme, parts.netloc)] = route
        if route is None:
            return self.request(
                method, url, headers=headers, data=body, timeout=timeout, allow_redirects=False
            )
        assert isinstance(route, _Route)
        adapter, verify, cert = route.adapter, route.verify, route.cert
        prepared = requests.PreparedRequest()  # for the Response; only its url is read
        prepared.url = url
        prepared.method = method
        all_headers = {k: v for k, v in self.headers.items() if v is not None}
        all_headers.update(headers)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn = adapter.poolmanager.connection_from_host(
                **route.host_params, pool_kwargs=route.pool_kwargs
            )
            adapter.cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            raw = conn.urlopen(
                method=method,
                url=path,
                body=body,
                headers=all_headers,
                redirect=False,
                assert_same_host=False,
                preload_content=True,  # read whole; the connection goes back to the pool
                decode_content=True,  # as Response.content would
                retries=adapter.max_retries,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                chunked=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # What the ordinary path raises for these (connection refused, reset, timed
            # out, TLS): SwiftClient retries any RequestException alike.
            raise requests.ConnectionError(exc) from exc
        resp = requests.Response()
        resp.status_code = raw.status
        resp.headers = CaseInsensitiveDict(raw.headers)
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.reason = raw.reason or ""
        resp.url = url
        resp.raw = raw
        resp.request = prepared
        resp._content = raw.data
        resp._content_consumed = True  # type: ignore[attr-defined]
        return resp

    def _route(self, url: str) -> _Route | None:
        """How send_bytes reaches the host of ``url``: the pool key that
        HTTPAdapter.get_connection_with_tls_context would compute for it, worked out once
        (it parses the URL and stats the CA bundle on every call); None for the ordinary
        path (a proxy, or an adapter of another kind)."""
        settings = self.merge_environment_settings(url, {}, None, None, None)
        adapter = self.get_adapter(url)
        if (
            select_proxy(url, settings["proxies"])
            or not isinstance(adapter, HTTPAdapter)
            or not hasattr(adapter, "build_connection_pool_key_attributes")  # before 2.32
        ):
            return None
        prepared = requests.PreparedRequest()
        prepared.url = url
        verify, cert = settings["verify"], settings["cert"]
        assert verify is not None  # merged with self.verify, a bool or a path
        host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(
            prepared, verify, cert
        )
        return _Route(adapter, verify, cert, host_params, pool_kwargs)


@dataclass(frozen=True)
class _Route:
    adapter: HTTPAdapter
    verify: Any
    cert: Any
    host_params: Any  # requests' _HostParams and _PoolKwargs (typed dicts)
    pool_kwargs: Any


_UNKNOWN = object()

"""A thin KakaoCloud gateway: a WSGI filter at the front of a real Swift proxy pipeline.

It enforces what the KakaoCloud Object Storage API reference documents (and a stock Swift does
not), refuses what breaks it with the reference's own status (400, "Request information
error"), and implements the one documented extension kcsync uses, "Get Object Temp URL", by
signing with Swift's own tempurl scheme so that the real tempurl middleware behind it checks
every download. Everything it lets through is served by the real Swift (Keystone auth) behind.

The rules, each with the reference section it comes from, are in ``RULES``; a refusal names
the rule. Reference: KakaoCloud Object Storage API, "Use Swift API guide".

Pipeline (tests/servers/kakao.py):
    catch_errors gatekeeper healthcheck proxy-logging kakao_gateway listing_formats bulk
    tempurl authtoken keystoneauth copy slo dlo proxy-logging proxy-server
It sits before tempurl: an issuance request carries ``temp_url_expires`` without a signature,
which tempurl would refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]

# The /info document of the reference ("ListCapability"), served as it is: kcsync reads its
# limits from here exactly as it would from KakaoCloud.
INFO: dict[str, Any] = {
    "swift": {
        "version": "objectstorage-api-v2.0.21-126",
        "Account_listing_limit": 1000,
        "max_meta_length": 4096,
        "min_meta_value_length": 0,
        "max_meta_value_length": 512,
        "container_listing_limit": 1000,
        "max_file_size": 5368709120,
        "max_object_name_length": 396,
        "min_object_name_length": 1,
        "min_meta_name_length": 2,
        "max_meta_name_length": 64,
        "max_Account_name_length": 32,
        "min_container_name_length": 4,
        "max_container_name_length": 63,
        "policies": [{"name": "default-placement", "default": True}],
    },
    "tempurl": {"methods": ["GET"]},
    "slo": {"max_manifest_segments": 1000, "min_segment_size": 1, "max_manifest_size": 8392704},
    "tempauth": {},
}
_SWIFT = INFO["swift"]
_SLO = INFO["slo"]

RULES = {
    "content-type": "Content-Type: application/json is required on this call "
    "(reference: Request Header, 'Required  Fixed to application/json')",
    "account": "the account is the project id, with no AUTH_ prefix (reference: {Account} "
    "'Unique ID of the project')",
    "bucket-name": "bucket names are 4 to 63 characters (/info min/max_container_name_length)",
    "object-name": "object names are at most 396 bytes (/info max_object_name_length)",
    "meta-name": "metadata names are 2 to 64 characters (/info min/max_meta_name_length)",
    "meta-value": "metadata values are at most 512 characters (/info max_meta_value_length)",
    "meta-total": "all metadata together is at most 4096 characters (/info max_meta_length)",
    "file-size": "one upload is at most 5368709120 bytes (/info max_file_size)",
    "segments": "a manifest lists at most 1000 segments (/info slo.max_manifest_segments)",
    "manifest-size": "a manifest is at most 8392704 bytes (/info slo.max_manifest_size)",
    "temp-url": "temp_url_expires is a whole number of seconds > 0 (reference: Get Object "
    "Temp URL)",
}

# The digest the extension signs with: one that Swift's tempurl accepts by default.
_DIGEST = "sha256"
# The account key the gateway signs with. Key-2, so that an account's own key (Key) stays the
# user's: generic-Swift signing (kcsync share without the extension) uses that one.
_KEY_HEADER = "X-Account-Meta-Temp-URL-Key-2"


class Refused(Exception):
    def __init__(self, rule: str, detail: str = "", status: str = "400 Bad Request") -> None:
        super().__init__(f"{RULES[rule]}{': ' + detail if detail else ''}")
        self.rule = rule
        self.status = status


class KakaoGateway:
    def __init__(self, app: App, conf: dict[str, str]) -> None:
        self.app = app
        self.key = conf.get("temp_url_key", "kakao-gateway-temp-url-key")
        self.counts: dict[str, int] = {}

    def __call__(self, env: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = env.get("PATH_INFO", "")
        method = env["REQUEST_METHOD"]
        if path == "/info" and method in ("GET", "HEAD"):
            return _reply(start_response, "200 OK", INFO)
        try:
            parts = _split(path)
            if parts is None:  # /healthcheck and the like: not the storage API
                return self.app(env, start_response)
            query = dict(parse_qsl(env.get("QUERY_STRING", ""), keep_blank_values=True))
            if "temp_url_sig" in query:
                # A download through a temp URL: no token and, from a browser, no
                # Content-Type either; the real tempurl middleware checks the signature.
                return self.app(env, start_response)
            self._check(env, method, parts, query)
            if method == "GET" and "temp_url" in query and len(parts) == 4:
                return self._issue(env, start_response, parts, query)
            if method == "GET" and len(parts) == 3:
                _cap_listing(env, query)
        except Refused as exc:
            body = {"error": exc.rule, "message": str(exc)}
            return _reply(start_response, exc.status, body, head=method == "HEAD", rule=exc.rule)
        return self.app(env, start_response)

    # -- the documented rules -------------------------------------------------------------------

    def _check(self, env: Environ, method: str, parts: list[str], query: dict[str, str]) -> None:
        account = parts[1]
        if account.startswith("AUTH_"):
            raise Refused("account", account)
        kind = ("account", "container", "object")[len(parts) - 2]
        if _needs_json(env, method, kind, query) and not _is_json(env.get("CONTENT_TYPE")):
            raise Refused(
                "content-type", f"{method} {kind} sent {env.get('CONTENT_TYPE') or 'none'}"
            )
        if method in ("PUT", "POST"):
            _check_metadata(env)
        if kind == "container" and method == "PUT":
            name = parts[2]
            low, high = _SWIFT["min_container_name_length"], _SWIFT["max_container_name_length"]
            if not low <= len(name) <= high:
                raise Refused("bucket-name", f"{len(name)} characters")
        if kind == "object" and method == "PUT":
            # PATH_INFO is WSGI's latin-1 view of the UTF-8 bytes: its length is the
            # byte count. Bytes, not characters: RGW (under KakaoCloud, DESIGN §3) measures
            # a std::string, and a name within 396 bytes is within 396 characters too.
            size = len(parts[3])
            if size > _SWIFT["max_object_name_length"]:
                raise Refused("object-name", f"{size} bytes")
            length = int(env.get("CONTENT_LENGTH") or 0)
            if length > _SWIFT["max_file_size"]:
                raise Refused("file-size", f"{length} bytes", "413 Request Entity Too Large")
            if query.get("multipart-manifest") == "put":
                _check_manifest(env, length)

    # -- the Get Object Temp URL extension -----------------------------------------------------

    def _issue(
        self, env: Environ, start_response: StartResponse, parts: list[str], query: dict[str, str]
    ) -> Iterable[bytes]:
        try:
            lifetime = int(query.get("temp_url_expires", ""))
        except ValueError:
            lifetime = 0
        if lifetime <= 0:
            raise Refused("temp-url", repr(query.get("temp_url_expires")))
        # The caller's own token must be good for this object: a HEAD through the rest of
        # the pipeline (authtoken, keystoneauth) decides, and its status is the answer.
        head = self._subrequest(env, "HEAD", env["PATH_INFO"])
        if head[0] // 100 != 2:
            return _reply(start_response, head[1], {"error": "object", "message": head[1]})
        account_path = "/" + "/".join(parts[:2])
        posted = self._subrequest(env, "POST", account_path, {_KEY_HEADER: self.key})
        if posted[0] // 100 != 2:
            return _reply(start_response, posted[1], {"error": "account", "message": posted[1]})
        expires = int(time.time()) + lifetime
        # Swift's tempurl scheme: HMAC over "METHOD\nEXPIRES\nPATH", PATH the decoded one.
        path = env["PATH_INFO"].encode("latin-1").decode("utf-8")
        sig = hmac.new(
            self.key.encode(), f"GET\n{expires}\n{path}".encode(), hashlib.sha256
        ).hexdigest()
        url = quote(path) + "?" + urlencode({"temp_url_sig": sig, "temp_url_expires": expires})
        return _reply(start_response, "200 OK", {"url": url, "sig": sig})

    def _subrequest(
        self, env: Environ, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        from swift.common.swob import wsgi_quote
        from swift.common.wsgi import make_subrequest

        # PATH_INFO is a WSGI string (latin-1 view of UTF-8): swob's quote keeps it intact.
        # The caller's token goes along (make_env copies no auth header), and the trailing
        # "?" drops the issuance query, which tempurl would take for a bad signature.
        token = env.get("HTTP_X_AUTH_TOKEN", "")
        req = make_subrequest(
            env,
            method=method,
            path=wsgi_quote(path) + "?",
            headers={"X-Auth-Token": token, **(headers or {})},
            swift_source="KGW",
        )
        resp = req.get_response(self.app)
        return resp.status_int, resp.status


def _split(path: str) -> list[str] | None:
    """['', account] / [.., container] / [.., container, object] of a /v1 path, else None."""
    if not path.startswith("/v1/"):
        return None
    parts = path.split("/", 4)[1:]  # "v1", account, container, object
    if len(parts) == 4 and parts[3] == "":
        parts = parts[:3]
    if len(parts) == 3 and parts[2] == "":
        parts = parts[:2]
    return parts if parts[1] else None


def _needs_json(env: Environ, method: str, kind: str, query: dict[str, str]) -> bool:
    """Whether the reference marks Content-Type as "Required  Fixed to application/json".

    Required: every account and container call; object GET, HEAD and DELETE; the SLO manifest
    PUT; the Temp URL issuance GET. Not required: an object PUT (its MIME type, optional) and
    an object POST (same), and a copy (its documented request has no Content-Type; on Swift
    one would also become the copy's type).
    """
    if kind != "object":
        return True
    if method in ("GET", "HEAD", "DELETE"):
        return True
    if method == "PUT":
        if "HTTP_X_COPY_FROM" in env:
            return False
        return query.get("multipart-manifest") == "put"
    return False


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def _check_metadata(env: Environ) -> None:
    total = 0
    for key, value in env.items():
        for prefix in ("HTTP_X_OBJECT_META_", "HTTP_X_CONTAINER_META_", "HTTP_X_ACCOUNT_META_"):
            if key.startswith(prefix):
                name = key[len(prefix) :]
                if (
                    not _SWIFT["min_meta_name_length"]
                    <= len(name)
                    <= _SWIFT["max_meta_name_length"]
                ):
                    raise Refused("meta-name", name.lower().replace("_", "-"))
                if len(value) > _SWIFT["max_meta_value_length"]:
                    raise Refused("meta-value", f"{name.lower()}: {len(value)}")
                total += len(name) + len(value)
    if total > _SWIFT["max_meta_length"]:
        raise Refused("meta-total", str(total))


def _check_manifest(env: Environ, length: int) -> None:
    if length > _SLO["max_manifest_size"]:
        raise Refused("manifest-size", f"{length} bytes")
    body = env["wsgi.input"].read(length) if length else b""
    try:
        segments = json.loads(body)
    except ValueError:
        segments = []  # Swift's slo answers this one itself
    if isinstance(segments, list) and len(segments) > _SLO["max_manifest_segments"]:
        raise Refused("segments", str(len(segments)))
    # The body was consumed: hand the rest of the pipeline a fresh one.
    env["wsgi.input"] = io.BytesIO(body)


def _cap_listing(env: Environ, query: dict[str, str]) -> None:
    """The reference: 'Default: 1000 (up to 1,000 items can be retrieved)', whatever limit
    asks (as RGW does, DESIGN §5), where stock Swift answers 412 above its own maximum."""
    limit = _SWIFT["container_listing_limit"]
    try:
        asked = int(query.get("limit", limit))
    except ValueError:
        asked = limit
    query["limit"] = str(min(max(asked, 0), limit))
    env["QUERY_STRING"] = urlencode(query)


def _reply(
    start_response: StartResponse,
    status: str,
    body: dict[str, Any],
    *,
    head: bool = False,
    rule: str | None = None,
) -> list[bytes]:
    """A JSON answer; a refusal also names its rule in a header, which a HEAD can carry."""
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if rule:
        headers.append(("X-Gateway-Rule", rule))
    start_response(status, headers)
    return [] if head else [data]


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Callable[[App], App]:
    conf = {**global_conf, **local_conf}

    def gateway(app: App) -> App:
        return KakaoGateway(app, conf)

    return gateway

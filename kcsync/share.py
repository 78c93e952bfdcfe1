"""`kcsync share`: a URL that downloads one object without credentials until it expires.

Two ways to get one, both Swift's tempurl scheme underneath:

- **KakaoCloud** (auth method ``kakaocloud``): its "Get Object Temp URL" extension. The server
  holds the key and signs: ``GET .../{bucket}/{object}?temp_url&temp_url_expires=SECONDS``
  with the token answers ``{"url": "/v1/...?temp_url_sig=...&temp_url_expires=...", ...}``.
- **Generic Swift and Ceph RGW**: signed here with the account's temp-URL key
  (``X-Account-Meta-Temp-URL-Key``), an HMAC over ``GET\\nEXPIRES\\nPATH``. Without a key
  there is nothing to sign with; the error says how to set one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from kcsync.config import Config, KakaoAuth
from kcsync.errors import EXIT_CONFIG, KcsyncError, NotFoundError, RemoteError
from kcsync.swift.client import SwiftClient, info_url

# Strongest first; Swift lists what it accepts in /info tempurl.allowed_digests. A server
# whose /info names none (older Swift, RGW) knows the original scheme only: HMAC-SHA1.
_DIGESTS = ("sha256", "sha512", "sha1")
_KEY_HEADERS = ("X-Account-Meta-Temp-URL-Key", "X-Account-Meta-Temp-URL-Key-2")


class NoTempUrlKeyError(KcsyncError):
    """The account has no temp-URL key: something to set up once, not to retry."""

    exit_code = EXIT_CONFIG


def object_name(config: Config, target: str, *, cwd: Path | None = None) -> str:
    """The object a local path is synced to, or ``target`` itself taken as an object name.

    A path counts as local when it exists or lies inside a configured folder; it is then
    mapped the way the sync maps it (folder prefix + path relative to the folder).
    """
    path = Path(target)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    for folder in config.folders:
        root = folder.path.resolve()
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            continue
        if str(rel) != ".":
            return folder.prefix + rel.as_posix()
    if path.exists():
        raise KcsyncError(f"{target} is not inside any configured folder")
    return target.lstrip("/")


def sign(key: str, method: str, expires: int, path: str, digest: str) -> str:
    """Swift's tempurl signature: hex HMAC of ``METHOD\\nEXPIRES\\nPATH`` (PATH unquoted)."""
    message = f"{method}\n{expires}\n{path}".encode()
    return hmac.new(key.encode(), message, getattr(hashlib, digest)).hexdigest()


def choose_digest(info: Mapping[str, Any]) -> str:
    allowed = (info.get("tempurl") or {}).get("allowed_digests")
    if not allowed:
        return "sha1"
    for digest in _DIGESTS:
        if digest in allowed:
            return digest
    raise RemoteError(f"the server accepts temp URLs signed with {allowed} only")


def temp_url_key(account_headers: Mapping[str, str]) -> str | None:
    for header in _KEY_HEADERS:
        value = account_headers.get(header)
        if value:
            return value
    return None


def signed_url(
    storage_url: str, container: str, name: str, key: str, expires: int, digest: str
) -> str:
    base = urlsplit(storage_url)
    path = f"{base.path}/{container}/{name}"
    sig = sign(key, "GET", expires, path, digest)
    query = urlencode({"temp_url_sig": sig, "temp_url_expires": expires})
    return f"{base.scheme}://{base.netloc}{quote(path)}?{query}"


def with_filename(url: str, filename: str | None) -> str:
    """``filename`` names the download (Content-Disposition); it is not signed."""
    if not filename:
        return url
    return f"{url}&{urlencode({'filename': filename}, quote_via=quote)}"


def share(
    config: Config,
    client: SwiftClient,
    storage_url: str,
    name: str,
    seconds: int,
    *,
    filename: str | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    if client.head_object(config.bucket, name) is None:
        raise NotFoundError(f"{name} is not in bucket {config.bucket}")
    if isinstance(config.auth, KakaoAuth):
        path = client.temp_url_extension(config.bucket, name, seconds)
        base = urlsplit(storage_url)
        return with_filename(f"{base.scheme}://{base.netloc}{path}", filename)
    key = temp_url_key(client.account_headers())
    if key is None:
        raise NoTempUrlKeyError(_NO_KEY_HELP.format(url=storage_url))
    info = client.request("GET", url=info_url(storage_url)).json()
    expires = int(clock()) + seconds
    url = signed_url(storage_url, config.bucket, name, key, expires, choose_digest(info))
    return with_filename(url, filename)


_NO_KEY_HELP = (
    "the account has no temp-URL key, so there is nothing to sign a URL with. Set one once "
    "(anyone holding it can make URLs for every object in the account, so keep it as secret "
    "as the password), e.g. with the swift CLI: swift post -m Temp-URL-Key:$(openssl rand "
    "-hex 32), or: curl -X POST -H 'X-Auth-Token: TOKEN' -H 'X-Account-Meta-Temp-URL-Key: "
    "SECRET' {url}"
)

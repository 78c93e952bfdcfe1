"""The `kakao` backend: Keystone + the KakaoCloud gateway + a real Swift.

Two more proxy servers join the local Swift cluster (tests/servers/swift.py), sharing its
account, container and object servers and its rings:

- the **gateway** proxy: the KakaoCloud gateway filter (tests/servers/gateway.py) in front of
  keystonemiddleware's authtoken and Swift's keystoneauth with an empty reseller prefix, so the
  storage URL is ``/v1/{project_id}`` exactly as on KakaoCloud. kcsync talks to this one only.
- the **peer** proxy: the same account through tempauth (reseller prefix ``''`` too), so the
  tests' peers (python-swiftclient, the swift CLI, rclone) look at the bucket through v1 auth,
  as they do on the other backends, without being held to rules written for kcsync.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.servers.keystone import SERVICE_PROJECT, SERVICE_USER, KeystoneServer
from tests.servers.swift import (
    SwiftServer,
    SwiftStartError,
    _die_with_parent,
    _free_ports,
    _stop_procs,
)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
PEER_USER = "peer"
_COMMON_FILTERS = (
    "\n[filter:catch_errors]\nuse = egg:swift#catch_errors\n"
    "\n[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n"
    "\n[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
    "\n[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n"
    "\n[filter:listing_formats]\nuse = egg:swift#listing_formats\n"
    "\n[filter:bulk]\nuse = egg:swift#bulk\n"
    "\n[filter:tempurl]\nuse = egg:swift#tempurl\n"
    "\n[filter:copy]\nuse = egg:swift#copy\n"
    "\n[filter:slo]\nuse = egg:swift#slo\n"
    "\n[filter:dlo]\nuse = egg:swift#dlo\n"
)


@dataclass(frozen=True)
class KakaoServer:
    keystone: KeystoneServer
    gateway_url: str  # http://127.0.0.1:PORT: the "objectstorage.{region}.kakaocloud.com"
    peer_auth_url: str
    peer_user: str
    peer_key: str = field(repr=False)
    root: Path
    _procs: tuple[subprocess.Popen[bytes], ...] = field(default=(), repr=False, compare=False)

    @property
    def storage_url(self) -> str:
        return f"{self.gateway_url}/v1/{self.keystone.project_id}"

    def stop(self) -> None:
        _stop_procs(self._procs)


def start_kakao(swift: SwiftServer, keystone: KeystoneServer) -> KakaoServer:
    etc = swift.root / "etc"
    gateway_port, peer_port = _free_ports(2)
    peer_key = secrets.token_urlsafe(12)
    (etc / "proxy-kakao.conf").write_text(_gateway_conf(etc, gateway_port, keystone))
    (etc / "proxy-peer.conf").write_text(_peer_conf(etc, peer_port, keystone, peer_key))
    procs = [_spawn(swift.root, "proxy-kakao"), _spawn(swift.root, "proxy-peer")]
    server = KakaoServer(
        keystone=keystone,
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        peer_auth_url=f"http://127.0.0.1:{peer_port}/auth/v1.0",
        peer_user=f"{keystone.project_id}:{PEER_USER}",
        peer_key=peer_key,
        root=swift.root,
        _procs=tuple(procs),
    )
    try:
        _wait_ready(server, procs)
    except BaseException:
        server.stop()
        raise
    return server


def _head(etc: Path, port: int, name: str) -> str:
    return (
        "[DEFAULT]\n"
        "bind_ip = 127.0.0.1\n"
        f"bind_port = {port}\n"
        "workers = 0\n"
        f"user = {pwd.getpwuid(os.getuid()).pw_name}\n"
        f"swift_dir = {etc}\n"
        f"log_name = {name}\n"
        "log_level = INFO\n"
        "\n[app:proxy-server]\n"
        "use = egg:swift#proxy\n"
        "account_autocreate = true\n"
        "allow_account_management = true\n"
    )


def _gateway_conf(etc: Path, port: int, ks: KeystoneServer) -> str:
    pipeline = (
        "catch_errors gatekeeper healthcheck proxy-logging kakao_gateway listing_formats bulk"
        " tempurl authtoken keystoneauth copy slo dlo proxy-logging proxy-server"
    )
    return (
        _head(etc, port, "proxy-kakao")
        + f"\n[pipeline:main]\npipeline = {pipeline}\n"
        + "\n[filter:kakao_gateway]\n"
        "paste.filter_factory = tests.servers.gateway:filter_factory\n"
        f"temp_url_key = {secrets.token_urlsafe(24)}\n"
        "\n[filter:authtoken]\n"
        "paste.filter_factory = keystonemiddleware.auth_token:filter_factory\n"
        f"www_authenticate_uri = {ks.v3}\n"
        f"auth_url = {ks.v3}\n"
        "auth_type = password\n"
        f"username = {SERVICE_USER}\n"
        f"password = {ks.service_password}\n"
        f"project_name = {SERVICE_PROJECT}\n"
        "user_domain_id = default\n"
        "project_domain_id = default\n"
        "interface = public\n"
        "delay_auth_decision = true\n"
        "include_service_catalog = false\n"
        "\n[filter:keystoneauth]\n"
        "use = egg:swift#keystoneauth\n"
        "reseller_prefix = ''\n"
        # Without member among the operator roles a KakaoCloud-like member gets 403.
        "operator_roles = admin, member\n" + _COMMON_FILTERS
    )


def _peer_conf(etc: Path, port: int, ks: KeystoneServer, key: str) -> str:
    pipeline = (
        "catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk tempurl tempauth"
        " copy slo dlo proxy-logging proxy-server"
    )
    return (
        _head(etc, port, "proxy-peer")
        + f"\n[pipeline:main]\npipeline = {pipeline}\n"
        + "\n[filter:tempauth]\n"
        "use = egg:swift#tempauth\n"
        # An empty prefix: tempauth's account for user_<project>_peer is the project id itself.
        "reseller_prefix = ''\n"
        # .reseller_admin only so start-up can create the account for real (see swift.py).
        f"user_{ks.project_id}_{PEER_USER} = {key} .admin .reseller_admin\n"
        "token_life = 86400\n"
        f"fernet_key_k1 = {_fernet_key()}\n"
        "active_fernet_key_id = k1\n" + _COMMON_FILTERS
    )


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


# keystoneauth re-authenticates its own (service) user whenever that token has less than
# 120 s left: with the tests' short-lived tokens that is always, so every validation of a new
# user token cost a password login too (about 2 s), and a burst of them at a token refresh
# stalled the proxy past the next expiry. A real deployment's tokens live hours.
_PRELUDE = (
    "import keystoneauth1.identity.base as b; b.BaseIdentityPlugin.MIN_TOKEN_LIFE_SECONDS = 2; "
)


def _spawn(root: Path, name: str) -> subprocess.Popen[bytes]:
    # The gateway filter is imported by paste from this repository's tests package.
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); {_PRELUDE}"
        "from swift.proxy.server import main; sys.exit(main())"
    )
    with open(root / "log" / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(root / "etc" / f"{name}.conf"), "-v"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _wait_ready(server: KakaoServer, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "never answered"
    while True:
        for p in procs:
            if p.poll() is not None:
                raise SwiftStartError(f"{p.args!r} exited {p.returncode}: see {server.root}/log")
        try:
            auth = requests.get(
                server.peer_auth_url,
                headers={"X-Auth-User": server.peer_user, "X-Auth-Key": server.peer_key},
                timeout=5,
            )
            gateway = requests.get(f"{server.gateway_url}/info", timeout=5)
            if auth.ok and gateway.ok:
                # The account exists for real before anyone lists it (see swift.py).
                put = requests.put(
                    auth.headers["X-Storage-Url"],
                    headers={"X-Auth-Token": auth.headers["X-Auth-Token"]},
                    timeout=5,
                )
                if put.ok:
                    return
                last = f"account PUT {put.status_code}"
            else:
                last = f"auth {auth.status_code}, gateway {gateway.status_code}"
        except requests.RequestException as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise SwiftStartError(f"kakao proxies not ready: {last}; see {server.root}/log")
        time.sleep(0.1)

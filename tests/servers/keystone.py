"""A throwaway OpenStack Keystone on loopback, mounted at /identity like KakaoCloud IAM.

Keystone 30 from PyPI, SQLite, Fernet tokens, no memcached and no Apache (KEYSTONE.md): the
WSGI app is served by werkzeug's threaded server in a child process of its own session,
stopped by PID. Start-up provisions, over the REST API as an operator would, a project with a
member user who creates an application credential (what a KakaoCloud access key is), and a
``swift`` service user the object stores validate tokens with.

Run ``python3 -m tests.servers.keystone`` for one to poke at by hand.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.servers.swift import _die_with_parent, _free_ports, _stop_procs

START_TIMEOUT = 120.0
PREFIX = "/identity"
# Short enough that a test outlives several tokens in well under a minute, long enough that
# kcsync's refresh margin (a tenth of the lifetime) exceeds a loaded machine's latency.
TOKEN_LIFETIME = 20
SERVICE_USER = "swift"
SERVICE_PROJECT = "service"
_ADMIN = "admin"

# Runs in the child: oslo.config parses sys.argv, so it is emptied before keystone loads.
_SERVE = """\
import sys
sys.argv = [sys.argv[0]]
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from keystone.server import wsgi
app = DispatcherMiddleware(lambda e, s: (s("404 Not Found", []), [b""])[1],
                           {%(prefix)r: wsgi.initialize_public_application()})
make_server("127.0.0.1", %(port)d, app, threaded=True).serve_forever()
"""


class KeystoneStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class AppCredential:
    id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class KeystoneServer:
    """A running Keystone and what was provisioned in it."""

    url: str  # http://127.0.0.1:PORT/identity: what an object store is pointed at
    admin_password: str = field(repr=False)
    service_password: str = field(repr=False)
    project_id: str
    user_id: str
    user_password: str = field(repr=False)
    credential: AppCredential
    token_lifetime: int
    root: Path
    pids: tuple[int, ...]
    _procs: tuple[subprocess.Popen[bytes], ...] = field(default=(), repr=False, compare=False)

    @property
    def v3(self) -> str:
        """The identity URL kcsync is configured with (KakaoCloud's ``.../identity/v3``)."""
        return f"{self.url}/v3"

    def stop(self) -> None:
        _stop_procs(self._procs)

    # -- REST helpers for tests ---------------------------------------------------------------

    def user_token(self) -> str:
        return _password_token(self.v3, self.user_id, self.user_password, self.project_id)

    def create_credential(self, name: str | None = None) -> AppCredential:
        return _create_credential(self.v3, self.user_token(), self.user_id, name)

    def delete_credential(self, credential_id: str) -> None:
        resp = requests.delete(
            f"{self.v3}/users/{self.user_id}/application_credentials/{credential_id}",
            headers={"X-Auth-Token": self.user_token()},
            timeout=30,
        )
        if resp.status_code != 204:
            raise KeystoneStartError(f"delete credential: {resp.status_code} {resp.text[:200]}")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def start_keystone(root: Path, *, token_lifetime: int = TOKEN_LIFETIME) -> KeystoneServer:
    root = root.resolve()
    deadline = time.monotonic() + START_TIMEOUT
    (port,) = _free_ports(1)
    url = f"http://127.0.0.1:{port}{PREFIX}"
    conf = _write_conf(root, token_lifetime)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_KEYSTONE_CONFIG_FILES": str(conf),
    }
    admin_password = secrets.token_hex(16)
    manage = [sys.executable, "-c", "from keystone.cmd.manage import main; main()"]
    who = ["--keystone-user", _user(), "--keystone-group", _group()]
    # Each keystone-manage call costs 2-3 s of imports: the three that do not depend on each
    # other run at once, then bootstrap, which needs the schema.
    _run_all(
        root,
        env,
        [
            [*manage, "--config-file", str(conf), "db_sync"],
            [*manage, "--config-file", str(conf), "fernet_setup", *who],
            [*manage, "--config-file", str(conf), "credential_setup", *who],
        ],
        deadline,
    )
    endpoint = f"{url}/v3"
    bootstrap = [*manage, "--config-file", str(conf), "bootstrap"]
    # "--opt=value": a value that starts with "-" would be taken for an option.
    bootstrap += [f"--bootstrap-password={admin_password}", "--bootstrap-region-id=RegionOne"]
    for interface in ("admin", "internal", "public"):
        bootstrap += [f"--bootstrap-{interface}-url={endpoint}"]
    _run_all(root, env, [bootstrap], deadline)
    proc = _spawn(root, env, _SERVE % {"prefix": PREFIX, "port": port})
    try:
        _wait_ready(root, proc, endpoint, deadline)
        server = _provision(root, url, admin_password, token_lifetime, proc)
    except BaseException:
        _stop_procs([proc])
        raise
    return server


@contextlib.contextmanager
def running_keystone(
    root: Path | None = None, *, token_lifetime: int = TOKEN_LIFETIME
) -> Iterator[KeystoneServer]:
    tmp = None
    if root is None:
        root = tmp = Path(tempfile.mkdtemp(prefix="kcsync-keystone-"))
    try:
        server = start_keystone(root, token_lifetime=token_lifetime)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _group() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name


def _write_conf(root: Path, token_lifetime: int) -> Path:
    for sub in ("log", "fernet-keys", "credential-keys"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "keystone.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"log_file = {root / 'log' / 'keystone-app.log'}\n"
        "[database]\n"
        f"connection = sqlite:///{root / 'keystone.db'}\n"
        "[token]\n"
        "provider = fernet\n"
        f"expiration = {token_lifetime}\n"
        "[fernet_tokens]\n"
        f"key_repository = {root / 'fernet-keys'}\n"
        "[fernet_receipts]\n"
        f"key_repository = {root / 'fernet-keys'}\n"
        "[credential]\n"
        f"key_repository = {root / 'credential-keys'}\n"
        "[identity]\n"
        # bcrypt at 4 rounds: application-credential auth takes ~250 ms instead of ~0.5 s.
        "password_hash_rounds = 4\n"
        "[cache]\n"
        "enabled = false\n"
    )
    return conf


def _run_all(
    root: Path, env: dict[str, str], commands: Sequence[Sequence[str]], deadline: float
) -> None:
    procs = []
    for i, cmd in enumerate(commands):
        out = open(root / "log" / f"manage-{cmd[5]}-{i}.log", "wb")  # noqa: SIM115
        procs.append((cmd, out, subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=out)))
    for cmd, out, proc in procs:
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        out.close()
        if code != 0:
            tail = "\n".join(_lines(Path(out.name))[-20:])
            raise KeystoneStartError(f"keystone-manage {cmd[5]} exited {code}:\n{tail}")


def _spawn(root: Path, env: dict[str, str], code: str) -> subprocess.Popen[bytes]:
    with open(root / "log" / "keystone.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _wait_ready(root: Path, proc: subprocess.Popen[bytes], endpoint: str, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            tail = "\n".join(_lines(root / "log" / "keystone.log")[-30:])
            raise KeystoneStartError(f"keystone exited {proc.returncode}:\n{tail}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(endpoint, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise KeystoneStartError(f"keystone did not answer {endpoint} in time")
        time.sleep(0.1)


# -- provisioning over REST ---------------------------------------------------------------------


def _token(v3: str, body: dict[str, Any]) -> str:
    resp = requests.post(f"{v3}/auth/tokens", json={"auth": body}, timeout=30)
    if resp.status_code != 201:
        raise KeystoneStartError(f"auth: {resp.status_code} {resp.text[:300]}")
    return resp.headers["X-Subject-Token"]


def _password_identity(user: dict[str, Any], password: str) -> dict[str, Any]:
    return {"methods": ["password"], "password": {"user": {**user, "password": password}}}


def _password_token(v3: str, user_id: str, password: str, project_id: str) -> str:
    return _token(
        v3,
        {
            "identity": _password_identity({"id": user_id}, password),
            "scope": {"project": {"id": project_id}},
        },
    )


class _Admin:
    def __init__(self, v3: str, password: str) -> None:
        self.v3 = v3
        # Admin calls need a system-scoped token.
        self.token = _token(
            v3,
            {
                "identity": _password_identity(
                    {"name": _ADMIN, "domain": {"id": "default"}}, password
                ),
                "scope": {"system": {"all": True}},
            },
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(
            method, f"{self.v3}{path}", json=body, headers={"X-Auth-Token": self.token}, timeout=30
        )
        if resp.status_code >= 300:
            raise KeystoneStartError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def role_id(self, name: str) -> str:
        roles = self.call("GET", f"/roles?name={name}")["roles"]
        if roles:
            return str(roles[0]["id"])
        return str(self.call("POST", "/roles", {"role": {"name": name}})["role"]["id"])

    def project(self, name: str) -> str:
        body = {"project": {"name": name, "domain_id": "default"}}
        return str(self.call("POST", "/projects", body)["project"]["id"])

    def user(self, name: str, password: str, project_id: str) -> str:
        body = {
            "user": {
                "name": name,
                "password": password,
                "domain_id": "default",
                "default_project_id": project_id,
            }
        }
        return str(self.call("POST", "/users", body)["user"]["id"])

    def grant(self, project_id: str, user_id: str, role: str) -> None:
        self.call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{self.role_id(role)}")


def _create_credential(v3: str, token: str, user_id: str, name: str | None) -> AppCredential:
    resp = requests.post(
        f"{v3}/users/{user_id}/application_credentials",
        json={"application_credential": {"name": name or f"kcsync-{secrets.token_hex(4)}"}},
        headers={"X-Auth-Token": token},
        timeout=30,
    )
    if resp.status_code != 201:
        raise KeystoneStartError(f"application credential: {resp.status_code} {resp.text[:300]}")
    cred = resp.json()["application_credential"]
    return AppCredential(id=cred["id"], secret=cred["secret"])


def _provision(
    root: Path, url: str, admin_password: str, lifetime: int, proc: subprocess.Popen[bytes]
) -> KeystoneServer:
    v3 = f"{url}/v3"
    admin = _Admin(v3, admin_password)
    # The user the object stores validate tokens as (keystonemiddleware / rgw keystone admin).
    service_password = secrets.token_hex(16)
    service_project = admin.project(SERVICE_PROJECT)
    service_user = admin.user(SERVICE_USER, service_password, service_project)
    for role in ("service", "admin"):
        admin.grant(service_project, service_user, role)
    # The customer: a project (its id is the Swift account), a member, her access key.
    project_id = admin.project("kcsync")
    user_password = secrets.token_hex(16)
    user_id = admin.user("kcsync-user", user_password, project_id)
    admin.grant(project_id, user_id, "member")
    credential = _create_credential(
        v3, _password_token(v3, user_id, user_password, project_id), user_id, "kcsync"
    )
    return KeystoneServer(
        url=url,
        admin_password=admin_password,
        service_password=service_password,
        project_id=project_id,
        user_id=user_id,
        user_password=user_password,
        credential=credential,
        token_lifetime=lifetime,
        root=root,
        pids=(proc.pid,),
        _procs=(proc,),
    )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.monotonic()
    with running_keystone(token_lifetime=3600) as ks:
        print(f"ready in {time.monotonic() - t0:.1f} s, files under {ks.root}")
        print(f"identity url: {ks.v3}\nproject id:   {ks.project_id}")
        print(f"app cred id:  {ks.credential.id}\napp secret:   {ks.credential.secret}")
        print(f"pid:          {ks.pids[0]}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

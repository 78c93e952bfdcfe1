"""The one reader of YAML and environment: parse once into frozen dataclasses.

Every problem becomes a ConfigError naming the key (``folders[1].path``) and what is wrong,
so a service that fails to start says why in one line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kcsync.errors import ConfigError
from kcsync.units import parse_duration, parse_size

DEFAULT_CONFIG_PATH = "/etc/kcsync/config.yaml"
# The config name whose state lives in the state base itself (kcsync.service's
# StateDirectory=kcsync); any other NAME.yaml gets BASE/NAME, as kcsync@NAME does.
DEFAULT_CONFIG_STEM = "config"
DEFAULT_IDENTITY_URL = "https://iam.kakaocloud.com/identity/v3"
# {region} comes from auth.region, {project_id} from the token; a configured storage_url may
# use {project_id} too.
DEFAULT_STORAGE_URL = "https://objectstorage.{region}.kakaocloud.com/v1/{project_id}"
# Names that are never complete files: editors' and downloaders' temporaries.
DEFAULT_EXCLUDES = ("*.part", "*.tmp", ".~*", "~$*", ".*.swp", "*.crdownload")
MIB = 1024 * 1024
# Swift's proxy throttles GETs of SLOs whose segments are smaller than this
# (rate_limit_under_size), so a restore of such an object crawls.
SMALL_SEGMENT = MIB


@dataclass(frozen=True)
class V1Auth:
    url: str
    user: str
    key: str = field(repr=False)


@dataclass(frozen=True)
class KakaoAuth:
    region: str
    access_key_id: str
    secret: str = field(repr=False)
    identity_url: str = DEFAULT_IDENTITY_URL
    # DEFAULT_STORAGE_URL when None; "{project_id}" in it is replaced with the token's project
    storage_url: str | None = None


@dataclass(frozen=True)
class TokenAuth:
    token: str = field(repr=False)
    storage_url: str = ""


AuthConfig = V1Auth | KakaoAuth | TokenAuth


@dataclass(frozen=True)
class FolderConfig:
    path: Path
    prefix: str
    exclude: tuple[str, ...]
    # Ingest folders (rclone's `move`): "delete" removes each file once its upload is
    # verified. Such a folder never mirrors deletes (see _parse_ingest).
    after_upload: Literal["keep", "delete"] = "keep"
    # This folder's own delete mode; None: the global delete.mode.
    delete_mode: Literal["mirror", "keep"] | None = None

    def mirrors(self, default: bool) -> bool:
        """Whether deletes here reach the bucket: the folder's own mode, else ``default``
        (the global one). An ingest folder is always keep (_parse_ingest): the files it
        removes after their upload must not take their objects with them."""
        return default if self.delete_mode is None else self.delete_mode == "mirror"


@dataclass(frozen=True)
class LargeObjectConfig:
    threshold: int
    segment_size: int
    segments_bucket: str
    orphan_grace: float


@dataclass(frozen=True)
class DeleteConfig:
    mode: Literal["mirror", "keep"]
    max_per_run: int
    max_share: float  # of a folder's objects, in one reconcile


@dataclass(frozen=True)
class RetryConfig:
    request_attempts: int
    job_attempts: int
    timeout: float


@dataclass(frozen=True)
class LogConfig:
    format: Literal["auto", "console", "json"]
    level: str


@dataclass(frozen=True)
class DaemonConfig:
    settle: float
    reconcile_interval: float
    reconcile_cron: str | None
    stop_timeout: float


@dataclass(frozen=True)
class BandwidthWindow:
    start: int  # minute of the day, local time
    end: int  # exclusive; before start: the window runs over midnight
    limit: int  # bytes/s; 0: no limit


@dataclass(frozen=True)
class BandwidthConfig:
    limit: int = 0  # bytes/s outside every window; 0: no limit
    schedule: tuple[BandwidthWindow, ...] = ()


@dataclass(frozen=True)
class MetricsConfig:
    listen: tuple[str, int] | None = None  # the daemon's /metrics endpoint (host, port)
    textfile: Path | None = None  # a node_exporter textfile, written at the end of --once


@dataclass(frozen=True)
class Config:
    auth: AuthConfig
    tls_verify: bool | str  # False, True, or a CA bundle path (requests' convention)
    bucket: str
    create_bucket: bool
    folders: tuple[FolderConfig, ...]
    workers: int
    large: LargeObjectConfig
    delete: DeleteConfig
    checksum: bool
    state_dir: Path
    log: LogConfig
    retry: RetryConfig
    daemon: DaemonConfig
    source: Path
    warnings: tuple[str, ...] = ()
    bandwidth: BandwidthConfig = BandwidthConfig()
    metrics: MetricsConfig = MetricsConfig()

    def mirrors(self, folder: FolderConfig) -> bool:
        """Whether deletes in ``folder`` are mirrored to the bucket."""
        return folder.mirrors(self.delete.mode == "mirror")


def config_path(cli_value: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(cli_value or environ.get("KCSYNC_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(
    path: Path, environ: Mapping[str, str] = os.environ, *, secrets: bool = True
) -> Config:
    """The config at ``path``. ``secrets=False`` checks how each credential is given but
    reads none of them (every secret is ""): for commands that only touch the state
    database (status, approve-deletes), which must work from a shell without the
    service's credentials."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"file {path} not found (set -c PATH or KCSYNC_CONFIG)") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError("", f"{path} is not valid YAML{where}") from None
    warnings = list(_permission_warnings(path))
    return parse_config(data, source=path, environ=environ, warnings=warnings, secrets=secrets)


def parse_config(
    data: object,
    *,
    source: Path,
    environ: Mapping[str, str] = os.environ,
    warnings: list[str] | None = None,
    secrets: bool = True,
) -> Config:
    warnings = warnings if warnings is not None else []
    top = _Section(data, "", environ, warnings, secrets=secrets)
    auth = _parse_auth(top.section("auth", required=True))
    bucket = top.required("bucket")
    _check_bucket_name("bucket", bucket, kakaocloud=isinstance(auth, KakaoAuth))
    tls = top.section("tls")
    verify: bool | str = tls.boolean("verify", True)
    ca_bundle = tls.string("ca_bundle")
    if ca_bundle:
        if not verify:
            raise ConfigError("tls.ca_bundle", "is set while tls.verify is false")
        if not Path(ca_bundle).is_file():
            raise ConfigError("tls.ca_bundle", f"{ca_bundle} is not a file")
        verify = ca_bundle
    tls.done()

    large_sec = top.section("large_objects")
    large = LargeObjectConfig(
        threshold=large_sec.size("threshold", 256 * MIB, minimum=1),
        segment_size=large_sec.size("segment_size", 64 * MIB, minimum=1),
        segments_bucket=large_sec.string("segments_bucket") or f"{bucket}_segments",
        orphan_grace=large_sec.duration("orphan_grace", 3600.0),
    )
    large_sec.done()
    if large.segment_size < SMALL_SEGMENT:
        warnings.append(
            f"large_objects.segment_size is {large.segment_size} bytes, below 1MiB: "
            "Swift throttles downloads of objects made of such small segments"
        )
    _check_bucket_name(
        "large_objects.segments_bucket",
        large.segments_bucket,
        kakaocloud=isinstance(auth, KakaoAuth),
    )
    if large.segments_bucket == bucket:
        raise ConfigError("large_objects.segments_bucket", "must differ from bucket")

    delete_sec = top.section("delete")
    mode = delete_sec.choice("mode", ("mirror", "keep"), "mirror")
    delete = DeleteConfig(
        mode="mirror" if mode == "mirror" else "keep",
        max_per_run=delete_sec.integer("max_per_run", 1000, minimum=0),
        max_share=delete_sec.share("max_share", 0.5),
    )
    delete_sec.done()

    log_sec = top.section("log")
    log_format = log_sec.choice("format", ("auto", "console", "json"), "auto")
    log = LogConfig(
        format="json" if log_format == "json" else "console" if log_format == "console" else "auto",
        level=log_sec.choice("level", ("debug", "info", "warning", "error"), "info"),
    )
    log_sec.done()

    retry_sec = top.section("retry")
    retry = RetryConfig(
        request_attempts=retry_sec.integer("request_attempts", 5, minimum=1),
        job_attempts=retry_sec.integer("job_attempts", 5, minimum=1),
        timeout=retry_sec.duration("timeout", 60.0, minimum=1.0),
    )
    retry_sec.done()

    daemon_sec = top.section("daemon")
    daemon = DaemonConfig(
        settle=daemon_sec.duration("settle", 2.0),
        reconcile_interval=daemon_sec.duration("reconcile_interval", 3600.0, minimum=1.0),
        reconcile_cron=daemon_sec.string("reconcile_cron"),
        stop_timeout=daemon_sec.duration("stop_timeout", 30.0),
    )
    both = daemon_sec.raw("reconcile_interval") is not None and daemon.reconcile_cron
    daemon_sec.done()
    if both:
        # The scheduler would take the cron and ignore the interval without a word.
        raise ConfigError(
            "daemon.reconcile_cron", "is set together with daemon.reconcile_interval; set one"
        )
    if daemon.reconcile_cron:
        from kcsync.scheduler import check_cron

        try:
            check_cron(daemon.reconcile_cron)
        except ValueError as exc:
            raise ConfigError("daemon.reconcile_cron", str(exc)) from None

    config = Config(
        auth=auth,
        tls_verify=verify,
        bucket=bucket,
        create_bucket=top.boolean("create_bucket", True),
        folders=_parse_folders(top),
        workers=top.integer("workers", 8, minimum=1, maximum=256),
        large=large,
        delete=delete,
        checksum=top.boolean("checksum", False),
        state_dir=Path(top.string("state_dir") or default_state_dir(source, environ)),
        log=log,
        retry=retry,
        daemon=daemon,
        source=source,
        warnings=tuple(warnings),
        bandwidth=_parse_bandwidth(top.section("bandwidth")),
        metrics=_parse_metrics(top.section("metrics")),
    )
    top.done()
    _check_state_dir(config.state_dir, config.folders)
    return config


def _parse_auth(sec: _Section) -> AuthConfig:
    method = sec.choice("method", ("kakaocloud", "v1", "token"), None)
    auth: AuthConfig
    if method == "v1":
        auth = V1Auth(
            url=sec.required_url("url"),
            user=sec.required("user"),
            key=sec.secret("key"),
        )
    elif method == "kakaocloud":
        auth = KakaoAuth(
            region=sec.required("region"),
            access_key_id=sec.secret("access_key_id"),
            secret=sec.secret("secret"),
            identity_url=sec.url("identity_url") or DEFAULT_IDENTITY_URL,
            storage_url=sec.url("storage_url"),
        )
    else:
        auth = TokenAuth(token=sec.secret("token"), storage_url=sec.required_url("storage_url"))
    sec.done()
    return auth


def _parse_folders(top: _Section) -> tuple[FolderConfig, ...]:
    items = top.raw("folders")
    if not isinstance(items, list) or not items:
        raise ConfigError("folders", "must be a non-empty list of {path, prefix, exclude}")
    folders = []
    for i, item in enumerate(items):
        sec = _Section(item, f"folders[{i}]", top.environ, top.warnings)
        path = Path(sec.required("path")).expanduser()
        if not path.is_absolute():
            raise ConfigError(f"folders[{i}].path", f"{path} must be an absolute path")
        prefix = sec.string("prefix") or ""
        if (
            prefix.startswith("/")
            or "//" in prefix
            or any(p in (".", "..") for p in prefix.split("/"))
        ):
            raise ConfigError(
                f"folders[{i}].prefix", f"{prefix!r} is not a clean object-name prefix"
            )
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        exclude = sec.string_list("exclude")
        if sec.boolean("default_excludes", True):
            exclude = DEFAULT_EXCLUDES + exclude
        after_upload, delete_mode = _parse_ingest(sec, explicit_mirror=top.explicit_mirror())
        folders.append(
            FolderConfig(
                path=path,
                prefix=prefix,
                exclude=exclude,
                after_upload=after_upload,
                delete_mode=delete_mode,
            )
        )
        sec.done()
    _check_folder_paths(folders)
    for i, a in enumerate(folders):
        for j, b in enumerate(folders):
            # Overlapping prefixes would make one folder's mirror delete the other's objects.
            if i < j and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)):
                raise ConfigError(
                    f"folders[{j}].prefix",
                    f"{b.prefix!r} overlaps folders[{i}].prefix {a.prefix!r}; "
                    "each folder needs its own distinct prefix",
                )
    return tuple(folders)


def _parse_ingest(
    sec: _Section, *, explicit_mirror: bool
) -> tuple[Literal["keep", "delete"], Literal["mirror", "keep"] | None]:
    """A folder's after_upload and its own delete mode.

    An ingest folder (after_upload: delete) removes its files itself once they are in the
    bucket: mirrored, each of those removals would delete the very object just verified.
    So it is a keep folder whatever the default is; written out as mirror, for the folder
    or globally, it is an error rather than a silent choice of one of the two.
    """
    after = sec.choice("after_upload", ("keep", "delete"), "keep")
    own = sec.section("delete")
    mode = own.choice("mode", ("mirror", "keep"), "") if own.raw("mode") is not None else None
    own.done()
    delete_mode: Literal["mirror", "keep"] | None = (
        None if mode is None else "mirror" if mode == "mirror" else "keep"
    )
    if after == "delete":
        if delete_mode == "mirror" or (delete_mode is None and explicit_mirror):
            where = "delete.mode" if delete_mode is None else sec.key("delete.mode")
            raise ConfigError(
                sec.key("after_upload"),
                f"cannot be delete while {where} is mirror: the files it removes would "
                f"delete their objects (set {sec.key('delete.mode')}: keep)",
            )
        return "delete", "keep"
    return "keep", delete_mode


def _parse_bandwidth(sec: _Section) -> BandwidthConfig:
    windows = []
    items = sec.raw("schedule")
    if items is not None and not isinstance(items, list):
        raise ConfigError(sec.key("schedule"), "must be a list of {from, to, limit}")
    for i, item in enumerate(items or []):
        win = _Section(item, sec.key(f"schedule[{i}]"), sec.environ, sec.warnings)
        start, end = win.clock("from"), win.clock("to")
        if start == end:
            raise ConfigError(win.key("to"), "must differ from `from`")
        windows.append(BandwidthWindow(start, end, win.size("limit", -1)))
        if windows[-1].limit < 0:
            raise ConfigError(win.key("limit"), "is required (bytes/s; 0 for no limit)")
        win.done()
    config = BandwidthConfig(limit=sec.size("limit", 0), schedule=tuple(windows))
    sec.done()
    return config


def _parse_metrics(sec: _Section) -> MetricsConfig:
    listen = sec.string("listen")
    address: tuple[str, int] | None = None
    if listen is not None:
        # A bare port binds to loopback: metrics say what is synced and how much, which is
        # not for every host that can reach this one. Another address must be written out.
        host, sep, port = listen.rpartition(":")
        host = (host if sep else "127.0.0.1").strip("[]") or "127.0.0.1"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(sec.key("listen"), f"{listen!r} is not HOST:PORT or PORT")
        address = (host, int(port))
    textfile = sec.string("textfile")
    path = Path(textfile).expanduser() if textfile else None
    if path is not None and (not path.is_absolute() or not path.name.endswith(".prom")):
        raise ConfigError(sec.key("textfile"), f"{textfile} must be an absolute path ending .prom")
    sec.done()
    return MetricsConfig(listen=address, textfile=path)


def _check_folder_paths(folders: list[FolderConfig]) -> None:
    """A folder inside another (or the same one twice) would store each of its files under
    two names, and the mirror of one would judge the other's objects."""
    real = [Path(os.path.realpath(f.path)) for f in folders]
    for j, b in enumerate(real):
        for i, a in enumerate(real[:j]):
            if a == b or a in b.parents or b in a.parents:
                how = "is" if a == b else "is inside" if a in b.parents else "contains"
                raise ConfigError(
                    f"folders[{j}].path",
                    f"{folders[j].path} {how} folders[{i}].path {folders[i].path}; "
                    "folders must not overlap (exclude the inner one instead)",
                )


def _check_state_dir(state_dir: Path, folders: tuple[FolderConfig, ...]) -> None:
    """kcsync's database inside a synced folder would upload itself, changed by that very
    upload, forever: the default state_dir of a user who backs up $HOME does just that."""
    real_state = Path(os.path.realpath(state_dir))
    for i, folder in enumerate(folders):
        real_folder = Path(os.path.realpath(folder.path))
        if real_state == real_folder or real_folder in real_state.parents:
            raise ConfigError(
                "state_dir",
                f"{state_dir} lies inside folders[{i}].path {folder.path}; "
                "set state_dir to a directory outside every synced folder",
            )


def _check_bucket_name(key: str, name: str, *, kakaocloud: bool) -> None:
    if "/" in name:
        raise ConfigError(key, f"{name!r} must not contain '/'")
    # KakaoCloud documents 4-63 characters; RGW refuses fewer than 3 and more than 255.
    low, high = (4, 63) if kakaocloud else (3, 255)
    if not low <= len(name.encode("utf-8")) <= high:
        raise ConfigError(key, f"{name!r} must be {low} to {high} characters long")


def default_state_dir(source: Path, environ: Mapping[str, str] = os.environ) -> str:
    """Where the state of the config at ``source`` lives when it sets no state_dir.

    Under systemd, $STATE_DIRECTORY (what StateDirectory= created). Otherwise the same
    place computed from the config's name, so `kcsync status -c /etc/kcsync/NAME.yaml`
    from a shell finds what the kcsync@NAME instance writes (StateDirectory=kcsync/NAME):
    BASE/NAME, and BASE itself for config.yaml (kcsync.service's StateDirectory=kcsync).
    BASE is /var/lib/kcsync for root, else $XDG_STATE_HOME/kcsync.
    """
    if environ.get("STATE_DIRECTORY"):
        return environ["STATE_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0:
        base = Path("/var/lib/kcsync")
    else:
        base = Path(environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "kcsync"
    stem = source.stem
    return str(base if stem in (DEFAULT_CONFIG_STEM, "") else base / stem)


def _permission_warnings(path: Path) -> list[str]:
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if mode & stat.S_IROTH:
        return [f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); chmod o-r it"]
    return []


class _Section:
    """One mapping of the YAML, read key by key; leftovers are unknown keys."""

    def __init__(
        self,
        data: object,
        where: str,
        environ: Mapping[str, str],
        warnings: list[str],
        *,
        secrets: bool = True,
    ):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(where, "must be a mapping of keys to values")
        self.data: dict[str, Any] = dict(data)
        self.where = where
        self.environ = environ
        self.warnings = warnings
        self.secrets = secrets  # read credentials, or only check how they are given
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def section(self, name: str, required: bool = False) -> _Section:
        value = self.raw(name)
        if value is None and required:
            raise ConfigError(self.key(name), "is required")
        return _Section(value, self.key(name), self.environ, self.warnings, secrets=self.secrets)

    def string(self, name: str, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise ConfigError(self.key(name), "is required")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(self.key(name), "must be a string")
        return str(value)

    def required(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def required_url(self, name: str) -> str:
        value = self.url(name, required=True)
        assert value is not None
        return value

    def url(self, name: str, required: bool = False) -> str | None:
        value = self.string(name, required)
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(self.key(name), f"{value!r} must start with http:// or https://")
        return value.rstrip("/") if value else value

    def string_list(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, not {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be a whole number, not {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(self.key(name), f"must be {bound}, not {value}")
        return value

    def size(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            result = parse_size(value)
        except ValueError as exc:
            raise ConfigError(self.key(name), str(exc)) from None
        if result < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum} bytes")
        return result

    def duration(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            result = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(self.key(name), str(exc)) from None
        if result < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum:g}s")
        return result

    def share(self, name: str, default: float) -> float:
        """A share of a whole: "50%" or 0.5."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            if isinstance(value, str) and value.strip().endswith("%"):
                result = float(value.strip()[:-1]) / 100
            elif isinstance(value, int | float) and not isinstance(value, bool):
                result = float(value)
            else:
                raise ValueError
        except ValueError:
            problem = f"must be a share like 50% or 0.5, not {value!r}"
            raise ConfigError(self.key(name), problem) from None
        if not 0 <= result <= 1:
            raise ConfigError(self.key(name), f"must be from 0% to 100%, not {value!r}")
        return result

    def clock(self, name: str) -> int:
        """A local time of day, "HH:MM", as the minute of the day ("24:00" ends a day)."""
        value = self.required(name)
        hours, sep, minutes = value.partition(":")
        if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ConfigError(self.key(name), f"{value!r} is not a time like 08:00")
        minute = int(hours) * 60 + int(minutes)
        if int(minutes) > 59 or minute > 24 * 60:
            raise ConfigError(self.key(name), f"{value!r} is not a time of day")
        return minute

    def explicit_mirror(self) -> bool:
        """Whether delete.mode: mirror is written in this (top-level) mapping."""
        delete = self.data.get("delete")
        return isinstance(delete, dict) and delete.get("mode") == "mirror"

    def choice(self, name: str, options: tuple[str, ...], default: str | None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ConfigError(self.key(name), f"is required (one of {', '.join(options)})")
            return default
        if value not in options:
            raise ConfigError(self.key(name), f"must be one of {', '.join(options)}, not {value!r}")
        return str(value)

    def secret(self, name: str) -> str:
        """A credential given inline, as ``NAME_env`` (a variable), ``NAME_file`` (a path)
        or ``NAME_credential`` (a systemd credential: the file of that name in
        $CREDENTIALS_DIRECTORY, which LoadCredential=/SetCredential= fill). "" without
        reading anything when this parse does not resolve secrets."""
        forms = (name, f"{name}_env", f"{name}_file", f"{name}_credential")
        given = [k for k in forms if self.raw(k) is not None]
        if len(given) != 1:
            problem = "is required" if not given else "is given more than once"
            choices = f"{', '.join(forms[:-1])} or {forms[-1]}"
            raise ConfigError(self.key(name), f"{problem} (set {choices})")
        kind = given[0]
        value = self.required(kind)
        if kind.endswith("_credential") and ("/" in value or value in (".", "..")):
            raise ConfigError(self.key(kind), f"{value!r} must be a credential name, not a path")
        if not self.secrets:
            return ""
        if kind.endswith("_env"):
            if value not in self.environ or not self.environ[value]:
                raise ConfigError(self.key(kind), f"environment variable {value} is not set")
            return self.environ[value]
        if kind.endswith("_credential"):
            directory = self.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ConfigError(
                    self.key(kind),
                    "$CREDENTIALS_DIRECTORY is not set: systemd sets it for a unit with "
                    f"LoadCredential={value}:/path (use {name}_file outside systemd)",
                )
            # systemd makes the directory and its files readable by the service alone:
            # no permission warning to give.
            return self._read_secret(kind, Path(directory) / value, check_mode=False)
        if kind.endswith("_file"):
            return self._read_secret(kind, Path(value).expanduser(), check_mode=True)
        return value

    def _read_secret(self, kind: str, path: Path, *, check_mode: bool) -> str:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(self.key(kind), f"cannot read {path}: {exc.strerror}") from None
        if check_mode:
            self.warnings.extend(_permission_warnings(path))
        if not secret:
            raise ConfigError(self.key(kind), f"{path} is empty")
        return secret

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(self.key(str(unknown[0])), "is not a known key")

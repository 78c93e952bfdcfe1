"""config.py: one parse at the edge, every problem a ConfigError naming the key."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from kcsync.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_EXCLUDES,
    DEFAULT_IDENTITY_URL,
    KakaoAuth,
    TokenAuth,
    V1Auth,
    config_path,
    load_config,
    parse_config,
)
from kcsync.errors import EXIT_CONFIG, ConfigError

MIB = 1024 * 1024
SOURCE = Path("/etc/kcsync/config.yaml")
ENV = {"STATE_DIRECTORY": "/var/lib/kcsync-test:/other", "KC_SECRET": "s3cr3t-from-env"}
DELETE = object()


def base() -> dict:
    return {
        "auth": {"method": "v1", "url": "http://127.0.0.1:8080/auth/v1.0", "user": "u", "key": "k"},
        "bucket": "backups",
        "folders": [{"path": "/srv/upload", "prefix": "upload"}],
    }


def kakao_auth() -> dict:
    return {
        "method": "kakaocloud",
        "region": "kr-central-2",
        "access_key_id": "AKID",
        "secret": "SECRET",
    }


def with_(data: dict, **changes: object) -> dict:
    """A deep copy of ``data`` with dotted keys ("auth.url", "folders.0.path") set or deleted."""
    data = copy.deepcopy(data)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        elif value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def parse(data: object, environ: dict | None = None):
    return parse_config(data, source=SOURCE, environ=ENV if environ is None else environ)


def test_defaults():
    config = parse(base())
    assert config.auth == V1Auth(url="http://127.0.0.1:8080/auth/v1.0", user="u", key="k")
    assert config.bucket == "backups"
    assert config.tls_verify is True
    assert config.create_bucket is True
    assert len(config.folders) == 1
    folder = config.folders[0]
    assert (folder.path, folder.prefix, folder.exclude) == (
        Path("/srv/upload"),
        "upload/",
        DEFAULT_EXCLUDES,
    )
    assert config.workers == 8
    assert (config.large.threshold, config.large.segment_size) == (256 * MIB, 64 * MIB)
    assert config.large.segments_bucket == "backups_segments"
    assert (config.delete.mode, config.delete.max_per_run) == ("mirror", 1000)
    assert config.checksum is False
    assert config.state_dir == Path("/var/lib/kcsync-test")
    assert (config.log.format, config.log.level) == ("auto", "info")
    assert (config.retry.request_attempts, config.retry.job_attempts) == (5, 5)
    assert config.retry.timeout == 60.0
    assert (config.daemon.settle, config.daemon.reconcile_interval) == (2.0, 3600.0)
    assert config.daemon.reconcile_cron is None
    assert config.source == SOURCE
    assert config.warnings == ()


def test_every_option_set():
    data = with_(
        base(),
        tls={"verify": False},
        create_bucket=False,
        workers=32,
        large_objects={"threshold": "1GiB", "segment_size": "128MiB", "segments_bucket": "segs"},
        delete={"mode": "keep", "max_per_run": 0},
        checksum=True,
        state_dir="/tmp/kcsync-state",
        log={"format": "json", "level": "debug"},
        retry={"request_attempts": 1, "job_attempts": 9, "timeout": "2m"},
        daemon={"settle": "500", "reconcile_interval": "2h"},
    )
    config = parse(data)
    assert config.tls_verify is False
    assert config.create_bucket is False
    assert config.workers == 32
    assert (config.large.threshold, config.large.segment_size) == (1024 * MIB, 128 * MIB)
    assert config.large.segments_bucket == "segs"
    assert (config.delete.mode, config.delete.max_per_run) == ("keep", 0)
    assert config.checksum is True
    assert config.state_dir == Path("/tmp/kcsync-state")
    assert (config.log.format, config.log.level) == ("json", "debug")
    assert (config.retry.request_attempts, config.retry.job_attempts) == (1, 9)
    assert config.retry.timeout == 120.0
    assert config.daemon.settle == 500.0
    assert config.daemon.reconcile_interval == 7200.0
    assert config.daemon.reconcile_cron is None
    cron = parse(with_(data, daemon={"reconcile_cron": "0 3 * * *"}))
    assert cron.daemon.reconcile_cron == "0 3 * * *"


def test_config_is_frozen():
    config = parse(base())
    with pytest.raises(AttributeError):
        config.bucket = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"method": "v1", "url": "https://swift.example/auth/v1.0/", "user": "u", "key": 1234},
            V1Auth(url="https://swift.example/auth/v1.0", user="u", key="1234"),
        ),
        (
            {**kakao_auth()},
            KakaoAuth(region="kr-central-2", access_key_id="AKID", secret="SECRET"),
        ),
        (
            {
                **kakao_auth(),
                "identity_url": "https://iam.example/identity/v3/",
                "storage_url": "https://os.example/v1/abc",
            },
            KakaoAuth(
                region="kr-central-2",
                access_key_id="AKID",
                secret="SECRET",
                identity_url="https://iam.example/identity/v3",
                storage_url="https://os.example/v1/abc",
            ),
        ),
        (
            {"method": "token", "token": "tok", "storage_url": "http://h/v1/AUTH_x"},
            TokenAuth(token="tok", storage_url="http://h/v1/AUTH_x"),
        ),
    ],
    ids=["v1-number-key-trailing-slash", "kakao-defaults", "kakao-urls", "token"],
)
def test_auth_methods(auth, expected):
    config = parse(with_(base(), auth=auth, bucket="backups"))
    assert config.auth == expected
    if isinstance(expected, KakaoAuth) and "identity_url" not in auth:
        assert config.auth.identity_url == DEFAULT_IDENTITY_URL


@pytest.mark.parametrize(
    "auth",
    [
        {"method": "v1", "url": "http://h/auth", "user": "u", "key": "HIDDEN-KEY"},
        {**kakao_auth(), "secret": "HIDDEN-KEY"},
        {"method": "token", "token": "HIDDEN-KEY", "storage_url": "http://h/v1/x"},
    ],
    ids=["v1", "kakao", "token"],
)
def test_secrets_stay_out_of_repr(auth):
    config = parse(with_(base(), auth=auth))
    assert "HIDDEN-KEY" not in repr(config)


def test_secret_from_env():
    auth = with_(kakao_auth(), secret=DELETE, secret_env="KC_SECRET")
    config = parse(with_(base(), auth=auth))
    assert isinstance(config.auth, KakaoAuth)
    assert config.auth.secret == "s3cr3t-from-env"


def test_secret_from_file_strips_the_newline(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from-file\n")
    secret_file.chmod(0o600)
    auth = with_(kakao_auth(), secret=DELETE, secret_file=str(secret_file))
    config = parse(with_(base(), auth=auth))
    assert isinstance(config.auth, KakaoAuth)
    assert config.auth.secret == "from-file"
    assert config.warnings == ()


def test_world_readable_secret_file_warns(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    secret_file.chmod(0o644)
    auth = with_(kakao_auth(), access_key_id=DELETE, access_key_id_file=str(secret_file))
    config = parse(with_(base(), auth=auth))
    assert len(config.warnings) == 1
    assert str(secret_file) in config.warnings[0]
    assert "644" in config.warnings[0]
    assert "from-file" not in config.warnings[0]


@pytest.mark.parametrize(
    ("auth", "key", "problem"),
    [
        (with_(kakao_auth(), secret=DELETE), "auth.secret", "is required (set secret, secret_env"),
        (
            with_(kakao_auth(), secret_env="KC_SECRET"),
            "auth.secret",
            "is given more than once",
        ),
        (
            with_(kakao_auth(), secret=DELETE, secret_env="KC_NOPE"),
            "auth.secret_env",
            "environment variable KC_NOPE is not set",
        ),
        (
            with_(kakao_auth(), secret=DELETE, secret_env="KC_EMPTY"),
            "auth.secret_env",
            "environment variable KC_EMPTY is not set",
        ),
        (
            with_(kakao_auth(), secret=DELETE, secret_env=""),
            "auth.secret_env",
            "is required",
        ),
        (
            with_(kakao_auth(), secret=DELETE, secret_file="/nonexistent/kcsync-secret"),
            "auth.secret_file",
            "cannot read /nonexistent/kcsync-secret",
        ),
        (
            with_(kakao_auth(), access_key_id=DELETE),
            "auth.access_key_id",
            "is required",
        ),
        (
            {"method": "v1", "url": "http://h/auth", "user": "u"},
            "auth.key",
            "is required",
        ),
        (
            {"method": "v1", "url": "http://h/auth", "key": "k"},
            "auth.user",
            "is required",
        ),
        ({"method": "v1", "user": "u", "key": "k"}, "auth.url", "is required"),
        (
            {"method": "v1", "url": "ftp://h/auth", "user": "u", "key": "k"},
            "auth.url",
            "'ftp://h/auth' must start with http:// or https://",
        ),
        (
            {**kakao_auth(), "identity_url": "iam.kakaocloud.com"},
            "auth.identity_url",
            "'iam.kakaocloud.com' must start with http://",
        ),
        ({"method": "token", "token": "t"}, "auth.storage_url", "is required"),
        ({"user": "u"}, "auth.method", "is required (one of kakaocloud, v1, token)"),
        (
            {"method": "s3", "user": "u"},
            "auth.method",
            "must be one of kakaocloud, v1, token, not 's3'",
        ),
        (
            {"method": "v1", "url": "http://h/a", "user": "u", "key": "k", "region": "x"},
            "auth.region",
            "is not a known key",
        ),
        (
            {"method": "v1", "url": "http://h/a", "user": ["u"], "key": "k"},
            "auth.user",
            "must be a string",
        ),
        ("v1", "auth", "must be a mapping of keys to values"),
    ],
    ids=[
        "secret-missing",
        "secret-twice",
        "secret-env-unset",
        "secret-env-empty",
        "secret-env-name-empty",
        "secret-file-missing",
        "access-key-missing",
        "v1-key-missing",
        "v1-user-missing",
        "v1-url-missing",
        "v1-url-not-http",
        "identity-url-not-http",
        "token-storage-url-missing",
        "method-missing",
        "method-unknown",
        "key-of-another-method",
        "user-not-a-string",
        "auth-not-a-mapping",
    ],
)
def test_auth_errors(auth, key, problem):
    with pytest.raises(ConfigError) as info:
        parse(with_(base(), auth=auth), environ={**ENV, "KC_EMPTY": ""})
    assert info.value.key == key
    assert str(info.value).startswith(f"config: {key}: {problem}")


def test_empty_secret_file_refused(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("\n\n")
    auth = with_(kakao_auth(), secret=DELETE, secret_file=str(secret_file))
    with pytest.raises(ConfigError, match=r"^config: auth\.secret_file: .* is empty$"):
        parse(with_(base(), auth=auth))


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"auth": DELETE}, "auth", "is required"),
        ({"bucket": DELETE}, "bucket", "is required"),
        ({"bucket": ""}, "bucket", "is required"),
        ({"folders": DELETE}, "folders", "must be a non-empty list"),
        ({"folders": []}, "folders", "must be a non-empty list"),
        ({"folders": {"path": "/srv"}}, "folders", "must be a non-empty list"),
        ({"folders.0": "/srv/upload"}, "folders[0]", "must be a mapping"),
        ({"folders.0.path": DELETE}, "folders[0].path", "is required"),
        ({"folders.0.path": "srv/upload"}, "folders[0].path", "must be an absolute path"),
        ({"folders.0.prefix": "/abs"}, "folders[0].prefix", "'/abs' is not a clean"),
        ({"folders.0.prefix": "a//b"}, "folders[0].prefix", "is not a clean"),
        ({"folders.0.prefix": "a/../b"}, "folders[0].prefix", "is not a clean"),
        ({"folders.0.prefix": "./a"}, "folders[0].prefix", "is not a clean"),
        ({"folders.0.prefix": ".."}, "folders[0].prefix", "is not a clean"),
        ({"folders.0.exclude": "*.tmp"}, "folders[0].exclude", "must be a list of strings"),
        ({"folders.0.exclude": ["*.tmp", 3]}, "folders[0].exclude", "must be a list of strings"),
        ({"folders.0.default_excludes": "no"}, "folders[0].default_excludes", "true or false"),
        ({"folders.0.excludes": ["x"]}, "folders[0].excludes", "is not a known key"),
        ({"workers": "8"}, "workers", "must be a whole number, not '8'"),
        ({"workers": True}, "workers", "must be a whole number"),
        ({"workers": 0}, "workers", "must be from 1 to 256, not 0"),
        ({"workers": 257}, "workers", "must be from 1 to 256, not 257"),
        ({"create_bucket": "yes"}, "create_bucket", "must be true or false, not 'yes'"),
        ({"checksum": 1}, "checksum", "must be true or false"),
        ({"buckett": "x"}, "buckett", "is not a known key"),
        ({"tls": {"verify": False, "ca_bundle": "/etc/ssl/ca.pem"}}, "tls.ca_bundle", "while"),
        ({"tls": {"ca_bundle": "/nonexistent/ca.pem"}}, "tls.ca_bundle", "is not a file"),
        ({"tls": {"insecure": True}}, "tls.insecure", "is not a known key"),
        ({"tls": True}, "tls", "must be a mapping"),
        ({"large_objects": {"threshold": "lots"}}, "large_objects.threshold", "not a size"),
        ({"large_objects": {"threshold": 0}}, "large_objects.threshold", "at least 1 bytes"),
        ({"large_objects": {"segment_size": -1}}, "large_objects.segment_size", "negative"),
        (
            {"large_objects": {"segments_bucket": "backups"}},
            "large_objects.segments_bucket",
            "must differ from bucket",
        ),
        (
            {"large_objects": {"segments_bucket": "a/b"}},
            "large_objects.segments_bucket",
            "must not contain '/'",
        ),
        ({"delete": {"mode": "sync"}}, "delete.mode", "must be one of mirror, keep"),
        ({"delete": {"max_per_run": -1}}, "delete.max_per_run", "must be >= 0, not -1"),
        ({"delete": {"max_per_run": 1.5}}, "delete.max_per_run", "whole number"),
        ({"log": {"format": "xml"}}, "log.format", "must be one of auto, console, json"),
        ({"log": {"level": "trace"}}, "log.level", "must be one of debug, info"),
        ({"retry": {"request_attempts": 0}}, "retry.request_attempts", "must be >= 1"),
        ({"retry": {"job_attempts": 0}}, "retry.job_attempts", "must be >= 1"),
        ({"retry": {"timeout": "0.5s"}}, "retry.timeout", "must be at least 1s"),
        ({"retry": {"timeout": "soon"}}, "retry.timeout", "is not a duration"),
        ({"daemon": {"settle": "-1s"}}, "daemon.settle", "is not a duration"),
        ({"daemon": {"reconcile_interval": 0}}, "daemon.reconcile_interval", "at least 1s"),
        ({"daemon": {"cron": "* * * * *"}}, "daemon.cron", "is not a known key"),
    ],
    ids=[
        "auth-missing",
        "bucket-missing",
        "bucket-empty",
        "folders-missing",
        "folders-empty",
        "folders-not-a-list",
        "folder-not-a-mapping",
        "folder-path-missing",
        "folder-path-relative",
        "prefix-absolute",
        "prefix-double-slash",
        "prefix-dotdot-inside",
        "prefix-dot",
        "prefix-dotdot",
        "exclude-not-a-list",
        "exclude-not-strings",
        "default-excludes-not-bool",
        "folder-unknown-key",
        "workers-string",
        "workers-bool",
        "workers-zero",
        "workers-too-many",
        "create-bucket-string",
        "checksum-int",
        "top-unknown-key",
        "ca-bundle-without-verify",
        "ca-bundle-missing",
        "tls-unknown-key",
        "tls-not-a-mapping",
        "threshold-not-a-size",
        "threshold-zero",
        "segment-size-negative",
        "segments-bucket-same",
        "segments-bucket-slash",
        "delete-mode-unknown",
        "max-per-run-negative",
        "max-per-run-float",
        "log-format-unknown",
        "log-level-unknown",
        "request-attempts-zero",
        "job-attempts-zero",
        "timeout-too-short",
        "timeout-not-a-duration",
        "settle-negative",
        "interval-zero",
        "daemon-unknown-key",
    ],
)
def test_config_errors(changes, key, problem):
    with pytest.raises(ConfigError) as info:
        parse(with_(base(), **changes))
    assert info.value.key == key
    assert str(info.value).startswith(f"config: {key}: ")
    assert problem in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


@pytest.mark.parametrize(
    "data", [None, [], "bucket: x", 42], ids=["empty-file", "list", "string", "number"]
)
def test_top_level_must_be_a_mapping(data):
    with pytest.raises(ConfigError) as info:
        parse(data)
    # An empty file is an empty mapping: its first missing key is reported instead.
    expected = "config: auth: is required" if data is None else "config: must be a mapping"
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize(
    ("kakaocloud", "name", "ok"),
    [
        (False, "ab", False),
        (False, "abc", True),
        (False, "x" * 255, True),
        (False, "x" * 256, False),  # RGW's limit (Swift would take 256)
        (False, "é", False),  # 2 bytes
        (False, "éa", True),  # 3 bytes
        (False, "a/b", False),
        (True, "abc", False),
        (True, "abcd", True),
        (True, "x" * 63, True),
        (True, "x" * 64, False),
        (True, "éé", True),  # 4 bytes
        (True, "x" * 32 + "é" * 16, False),  # 48 characters, 64 bytes
        (True, "ab/cd", False),
    ],
    ids=[
        "swift-2",
        "swift-3",
        "swift-255",
        "swift-256",
        "swift-one-char-two-bytes",
        "swift-two-chars-three-bytes",
        "swift-slash",
        "kakao-3",
        "kakao-4",
        "kakao-63",
        "kakao-64",
        "kakao-counts-bytes",
        "kakao-64-bytes-fewer-chars",
        "kakao-slash",
    ],
)
def test_bucket_name_rules(kakaocloud, name, ok):
    data = with_(base(), bucket=name, large_objects={"segments_bucket": "segs-bucket"})
    if kakaocloud:
        data["auth"] = kakao_auth()
    if ok:
        assert parse(data).bucket == name
    else:
        with pytest.raises(ConfigError) as info:
            parse(data)
        assert info.value.key == "bucket"
        assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    ("kakaocloud", "segments_bucket", "ok"),
    [
        (False, "seg", True),
        (False, "sg", False),
        (True, "seg", False),
        (True, "segs", True),
        (True, "s" * 64, False),
    ],
    ids=["swift-3", "swift-2", "kakao-3", "kakao-4", "kakao-64"],
)
def test_segments_bucket_name_rules(kakaocloud, segments_bucket, ok):
    data = with_(base(), large_objects={"segments_bucket": segments_bucket})
    if kakaocloud:
        data["auth"] = kakao_auth()
    if ok:
        assert parse(data).large.segments_bucket == segments_bucket
    else:
        with pytest.raises(ConfigError) as info:
            parse(data)
        assert info.value.key == "large_objects.segments_bucket"


@pytest.mark.parametrize(
    ("prefixes", "expected"),
    [
        (["a", "b"], ["a/", "b/"]),
        (["photos", "photos2"], ["photos/", "photos2/"]),
        (["x/y/", "x/z"], ["x/y/", "x/z/"]),
        (["", None], None),
        (["a", "a/b"], None),
        (["a/b", "a"], None),
        (["a/", "a"], None),
        (["a", "b", "b/c"], None),
        (["p", ""], None),
    ],
    ids=[
        "distinct",
        "shared-start-not-a-directory",
        "siblings",
        "two-roots",
        "nested-second",
        "nested-first",
        "same-after-slash",
        "third-overlaps-second",
        "root-after-other",
    ],
)
def test_folder_prefixes(prefixes, expected):
    folders = [{"path": f"/srv/f{i}", "prefix": p} for i, p in enumerate(prefixes)]
    data = with_(base(), folders=folders)
    if expected is not None:
        assert [f.prefix for f in parse(data).folders] == expected
        return
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == f"folders[{len(prefixes) - 1}].prefix"
    assert "overlaps" in str(info.value)


def test_folder_path_expands_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    config = parse(with_(base(), **{"folders.0.path": "~/drop"}))
    assert config.folders[0].path == Path("/home/someone/drop")


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ({}, DEFAULT_EXCLUDES),
        ({"exclude": ["*.log", "cache"]}, (*DEFAULT_EXCLUDES, "*.log", "cache")),
        ({"exclude": ["*.log"], "default_excludes": False}, ("*.log",)),
        ({"default_excludes": False}, ()),
    ],
    ids=["defaults", "defaults-then-own", "own-only", "none"],
)
def test_folder_excludes(folder, expected):
    data = with_(base(), folders=[{"path": "/srv/upload", **folder}])
    assert parse(data).folders[0].exclude == expected
    assert "*.part" in DEFAULT_EXCLUDES


def test_ca_bundle_becomes_the_verify_value(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    config = parse(with_(base(), tls={"ca_bundle": str(bundle)}))
    assert config.tls_verify == str(bundle)


@pytest.mark.parametrize(
    ("environ", "euid", "expected"),
    [
        ({"STATE_DIRECTORY": "/run/a:/run/b"}, 0, "/run/a"),
        ({"STATE_DIRECTORY": "/run/a"}, 1000, "/run/a"),
        ({}, 0, "/var/lib/kcsync"),
        ({"XDG_STATE_HOME": "/xdg"}, 0, "/var/lib/kcsync"),
        ({"XDG_STATE_HOME": "/xdg"}, 1000, "/xdg/kcsync"),
        ({"STATE_DIRECTORY": ""}, 0, "/var/lib/kcsync"),
    ],
    ids=[
        "systemd-first-of-many",
        "systemd-user",
        "root",
        "root-ignores-xdg",
        "user-xdg",
        "systemd-empty",
    ],
)
def test_default_state_dir(monkeypatch, environ, euid, expected):
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert parse(base(), environ=environ).state_dir == Path(expected)


def test_default_state_dir_for_a_user_without_xdg(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", "/home/someone")
    assert parse(base(), environ={}).state_dir == Path("/home/someone/.local/state/kcsync")


@pytest.mark.parametrize(
    ("cli", "environ", "expected"),
    [
        ("/a.yaml", {"KCSYNC_CONFIG": "/b.yaml"}, "/a.yaml"),
        (None, {"KCSYNC_CONFIG": "/b.yaml"}, "/b.yaml"),
        (None, {}, DEFAULT_CONFIG_PATH),
        (None, {"KCSYNC_CONFIG": ""}, DEFAULT_CONFIG_PATH),
    ],
    ids=["cli-wins", "env", "default", "empty-env"],
)
def test_config_path(cli, environ, expected):
    assert config_path(cli, environ) == Path(expected)


YAML = """\
auth:
  method: v1
  url: http://127.0.0.1:8080/auth/v1.0
  user: test:tester
  key_env: KC_SECRET
bucket: backups
folders:
  - path: /srv/upload
    prefix: upload
"""


def test_load_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(YAML)
    path.chmod(0o600)
    config = load_config(path, environ=ENV)
    assert config.auth == V1Auth(
        url="http://127.0.0.1:8080/auth/v1.0", user="test:tester", key="s3cr3t-from-env"
    )
    assert config.source == path
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("mode", "warns"),
    [(0o600, False), (0o640, False), (0o644, True), (0o604, True)],
    ids=["owner-only", "group-readable", "world-readable", "other-only"],
)
def test_load_config_permission_warning(tmp_path, mode, warns):
    path = tmp_path / "config.yaml"
    path.write_text(YAML)
    path.chmod(mode)
    warnings = load_config(path, environ=ENV).warnings
    assert bool(warnings) is warns
    if warns:
        assert str(path) in warnings[0]
        assert f"{mode:o}" in warnings[0]
        assert "chmod o-r" in warnings[0]


def test_load_config_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    assert info.value.key == ""
    assert str(info.value) == f"config: file {path} not found (set -c PATH or KCSYNC_CONFIG)"


def test_load_config_unreadable_path(tmp_path):
    # A directory where the file should be: read_text fails with an OSError.
    with pytest.raises(ConfigError, match=r"^config: cannot read .*: Is a directory$"):
        load_config(tmp_path, environ=ENV)


def test_load_config_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("bucket: backups\nfolders:\n  - path: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    assert str(info.value).startswith(f"config: {path} is not valid YAML at line ")
    line = int(str(info.value).rsplit(" ", 1)[1])
    assert 3 <= line <= 4


def test_load_config_empty_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"^config: auth: is required$"):
        load_config(path, environ=ENV)


def test_config_error_message_without_key():
    assert str(ConfigError("", "boom")) == "config: boom"
    assert str(ConfigError("a.b", "boom")) == "config: a.b: boom"


def test_derived_segments_bucket_too_long_names_the_key_to_set():
    # A 60-character KakaoCloud bucket is valid, but "<bucket>_segments" is not: the error
    # must point at the key that fixes it, even though the user never wrote it.
    data = with_(base(), auth=kakao_auth(), bucket="b" * 60)
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "large_objects.segments_bucket"
    assert "b" * 60 + "_segments" in str(info.value)
    data = with_(data, large_objects={"segments_bucket": "b" * 59 + "_seg"})
    assert parse(data).large.segments_bucket == "b" * 59 + "_seg"


@pytest.mark.parametrize(
    ("folders", "state_dir", "refused_by"),
    [
        (["/srv/a"], "/srv/a", "folders[0].path /srv/a"),
        (["/srv/a"], "/srv/a/.kcsync", "folders[0].path /srv/a"),
        (["/srv/b", "/home/u"], "/home/u/.local/state/kcsync", "folders[1].path /home/u"),
        (["/"], "/var/lib/kcsync", "folders[0].path /"),
        (["/srv/a"], "/srv/a/../b/state", None),
        (["/srv/a"], "/srv/ab/state", None),  # a sibling whose name starts the same
        (["/srv/a/data"], "/srv/a", None),  # above the folder is fine
    ],
    ids=["equal", "inside", "home-default", "root-folder", "dotdot-out", "sibling", "above"],
)
def test_state_dir_inside_a_folder_is_refused(folders, state_dir, refused_by):
    data = with_(base(), folders=[{"path": p, "prefix": f"p{i}"} for i, p in enumerate(folders)])
    data["state_dir"] = state_dir
    if refused_by is None:
        assert parse(data).state_dir == Path(state_dir)
        return
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "state_dir"
    assert refused_by in str(info.value) and "\n" not in str(info.value)


def test_state_dir_inside_a_folder_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")  # the state path names the folder
    data = with_(base(), **{"folders.0": {"path": str(tmp_path / "data"), "prefix": "p"}})
    data["state_dir"] = str(tmp_path / "alias" / "state")
    with pytest.raises(ConfigError, match=r"^config: state_dir: .* lies inside folders\[0\]"):
        parse(data)


def test_the_default_state_dir_inside_a_backed_up_home_is_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", "/home/someone")
    data = with_(base(), **{"folders.0": {"path": "/home/someone", "prefix": "home"}})
    with pytest.raises(ConfigError) as info:
        parse(data, environ={})
    assert info.value.key == "state_dir"


@pytest.mark.parametrize(
    ("value", "share"),
    [(None, 0.5), ("50%", 0.5), ("12.5%", 0.125), (0.25, 0.25), (1, 1.0), ("0%", 0.0)],
    ids=["default", "percent", "fraction-percent", "fraction", "all", "none"],
)
def test_delete_max_share(value, share):
    data = base()
    if value is not None:
        data["delete"] = {"max_share": value}
    assert parse(data).delete.max_share == share


@pytest.mark.parametrize("value", ["half", "150%", -0.1, True], ids=str)
def test_delete_max_share_errors(value):
    with pytest.raises(ConfigError) as info:
        parse({**base(), "delete": {"max_share": value}})
    assert info.value.key == "delete.max_share"


# -- issue 20: service set-up ---------------------------------------------------------------


def test_secret_from_a_systemd_credential(tmp_path):
    # As systemd runs a unit with LoadCredential=kakaocloud-secret:/etc/kcsync/secret: the
    # file appears under the credential's name in a private directory it names in the env.
    creds = tmp_path / "credentials" / "kcsync.service"
    creds.mkdir(parents=True)
    (creds / "kakaocloud-secret").write_text("from-systemd\n")
    auth = with_(kakao_auth(), secret=DELETE, secret_credential="kakaocloud-secret")
    config = parse(with_(base(), auth=auth), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert isinstance(config.auth, KakaoAuth)
    assert config.auth.secret == "from-systemd"
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("value", "environ", "problem"),
    [
        ("kc-secret", {}, "$CREDENTIALS_DIRECTORY is not set"),
        ("../secret", {"CREDENTIALS_DIRECTORY": "/run/credentials/x"}, "must be a credential name"),
        ("missing", {"CREDENTIALS_DIRECTORY": "/nonexistent"}, "cannot read /nonexistent/missing"),
    ],
    ids=["outside-systemd", "a-path", "not-loaded"],
)
def test_credential_errors_name_the_key(value, environ, problem):
    auth = with_(kakao_auth(), secret=DELETE, secret_credential=value)
    with pytest.raises(ConfigError) as info:
        parse(with_(base(), auth=auth), environ=environ)
    assert info.value.key == "auth.secret_credential"
    assert problem in str(info.value)


def test_secrets_unresolved_for_state_only_commands():
    auth = with_(kakao_auth(), secret=DELETE, secret_env="KC_UNSET", access_key_id="AKID")
    data = with_(base(), auth=auth)
    with pytest.raises(ConfigError):
        parse_config(data, source=SOURCE, environ={})
    config = parse_config(data, source=SOURCE, environ={}, secrets=False)
    assert isinstance(config.auth, KakaoAuth) and config.auth.secret == ""
    # How a secret is given is still checked: only reading it is left out.
    twice = with_(data, **{"auth.secret": "x"})
    with pytest.raises(ConfigError, match="given more than once"):
        parse_config(twice, source=SOURCE, environ={}, secrets=False)


@pytest.mark.parametrize(
    ("source", "environ", "euid", "expected"),
    [
        ("/etc/kcsync/config.yaml", {}, 0, "/var/lib/kcsync"),
        ("/etc/kcsync/photos.yaml", {}, 0, "/var/lib/kcsync/photos"),
        (
            "/etc/kcsync/photos.yaml",
            {"STATE_DIRECTORY": "/var/lib/kcsync/photos"},
            0,
            "/var/lib/kcsync/photos",
        ),
        ("/home/u/photos.yml", {"XDG_STATE_HOME": "/xdg"}, 1000, "/xdg/kcsync/photos"),
        ("/home/u/config.yaml", {"XDG_STATE_HOME": "/xdg"}, 1000, "/xdg/kcsync"),
    ],
    ids=["service", "instance-from-a-shell", "instance-under-systemd", "user-named", "user"],
)
def test_default_state_dir_follows_the_config_name(monkeypatch, source, environ, euid, expected):
    # kcsync@photos gets StateDirectory=kcsync/photos; `kcsync status -c photos.yaml` from a
    # shell must land in the same place without being told.
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    config = parse_config(base(), source=Path(source), environ=environ)
    assert config.state_dir == Path(expected)


@pytest.mark.parametrize(
    ("paths", "problem"),
    [
        (["/srv/a", "/srv/a/"], "folders[1].path: /srv/a is folders[0].path /srv/a"),
        (["/srv/a", "/srv/a/b"], "folders[1].path: /srv/a/b is inside folders[0].path /srv/a"),
        (["/srv/a/b", "/srv/a"], "folders[1].path: /srv/a contains folders[0].path /srv/a/b"),
    ],
    ids=["identical", "nested", "containing"],
)
def test_overlapping_folder_paths_are_refused(paths, problem):
    folders = [{"path": p, "prefix": f"p{i}"} for i, p in enumerate(paths)]
    with pytest.raises(ConfigError) as info:
        parse(with_(base(), folders=folders))
    assert info.value.key == "folders[1].path"
    assert problem in str(info.value)


def test_sibling_folders_with_a_common_name_start_are_fine():
    folders = [{"path": "/srv/a", "prefix": "a"}, {"path": "/srv/ab", "prefix": "ab"}]
    assert len(parse(with_(base(), folders=folders)).folders) == 2


def test_small_segments_are_accepted_with_a_warning():
    config = parse(with_(base(), large_objects={"segment_size": "512KiB"}))
    assert config.large.segment_size == 512 * 1024
    assert len(config.warnings) == 1 and "below 1MiB" in config.warnings[0]
    assert parse(with_(base(), large_objects={"segment_size": "1MiB"})).warnings == ()


def test_reconcile_interval_and_cron_together_are_refused():
    data = with_(base(), daemon={"reconcile_interval": "1h", "reconcile_cron": "0 3 * * *"})
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert info.value.key == "daemon.reconcile_cron"
    assert "set one" in str(info.value)

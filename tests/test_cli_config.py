"""Bad config: one clear line naming the key, exit 78 (systemd is told not to restart)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOOD = """\
auth: {method: v1, url: "http://127.0.0.1:9/auth/v1.0", user: "u", key: "k"}
bucket: photos
folders: [{path: /srv/photos}]
"""


def run(
    config: Path, *args: str, env: dict[str, str] | None = None, command: str = "--once"
) -> subprocess.CompletedProcess[str]:
    # The configs here set no state_dir: as root the default is /var/lib/kcsync, and a run
    # that gets as far as the state lock wrote its lock file there. Tests never write
    # outside their temporary directory; systemd's variable points the default into it.
    state = {"STATE_DIRECTORY": str(config.parent / "state")}
    return subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "-c", str(config), command, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **state, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bucket: [", "is not valid YAML at line 1"),
        (GOOD.replace("bucket: photos\n", ""), "config: bucket: is required"),
        (GOOD + "wokers: 4\n", "config: wokers: is not a known key"),
        (GOOD + "workers: many\n", "config: workers: must be a whole number"),
        (GOOD + "large_objects: {segment_size: 12 parsecs}\n", "large_objects.segment_size:"),
        (GOOD + "delete: {mode: sometimes}\n", "delete.mode: must be one of mirror, keep"),
        (GOOD.replace("/srv/photos", "relative/dir"), "folders[0].path: relative/dir must be"),
        (GOOD.replace('key: "k"', 'key_env: "KCSYNC_TEST_UNSET"'), "auth.key_env: environment"),
        (GOOD.replace("method: v1", "method: ldap"), "auth.method: must be one of"),
        (
            GOOD.replace("folders: [{path: /srv/photos}]", "folders: [{path: /a}, {path: /b}]"),
            "folders[1].prefix: '' overlaps folders[0].prefix",
        ),
        (
            GOOD.replace(
                'method: v1, url: "http://127.0.0.1:9/auth/v1.0", user: "u", key: "k"',
                "method: kakaocloud, region: kr-central-2, access_key_id: a, secret: s",
            ).replace("bucket: photos", "bucket: abc"),
            "bucket: 'abc' must be 4 to 63 characters long",
        ),
    ],
    ids=[
        "yaml",
        "missing-bucket",
        "unknown-key",
        "bad-int",
        "bad-size",
        "bad-choice",
        "relative-path",
        "unset-env-secret",
        "unknown-auth",
        "overlapping-prefixes",
        "kakaocloud-bucket-name",
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)

    result = run(config)

    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert message in lines[0]


def test_missing_config_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    result = run(tmp_path / "nope.yaml")

    assert result.returncode == 78
    assert "not found (set -c PATH or KCSYNC_CONFIG)" in result.stderr


def test_world_readable_config_warns_and_secret_is_never_printed(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(GOOD.replace('key: "k"', 'key: "s3cr3t-value"'))
    config.chmod(0o644)

    result = run(config, "--log-format", "json")

    assert "readable by other users" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout
    assert result.returncode == 69  # nothing listens on port 9: unavailable, not a config error


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    config = tmp_path / "c.yaml"
    config.write_text(GOOD.replace('key: "k"', f'key_file: "{secret}"'))
    config.chmod(0o600)

    result = run(config, "--log-format", "json")

    assert result.returncode == 69, result.stderr
    assert "readable by other users" not in result.stderr
    assert "from-a-file" not in result.stderr

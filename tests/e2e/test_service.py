"""Issue 20, through the CLI on a real server: credentials as systemd hands them over,
status without credentials, and the rough edges a new user hit on the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, Env

# The forms of the v1 key (auth.key_*) against the two servers; the kakaocloud secret's
# forms are the same code (config._Section.secret), covered by tests/unit/test_config.py.
pytestmark = [pytest.mark.server, pytest.mark.backends("swift", "rgw")]


def as_systemd_loads_credentials(env: Env, name: str, value: str) -> tuple[str, ...]:
    """The process prefix that gives kcsync $CREDENTIALS_DIRECTORY the way a unit with
    LoadCredential=NAME:/etc/kcsync/NAME does: a private directory with one file per
    credential, named after it."""
    creds = env.root / "run" / "credentials" / "kcsync.service"
    creds.mkdir(parents=True, exist_ok=True, mode=0o700)
    (creds / name).write_text(value + "\n")
    (creds / name).chmod(0o400)
    return ("env", f"CREDENTIALS_DIRECTORY={creds}")


def status(env: Env, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    # `-c CONFIG status`: options before the command work as after it.
    clean = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "-c", str(env.config_path), "status", *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(REPO), **environ},
        timeout=60,
    )


def test_the_key_comes_from_a_systemd_credential(env: Env) -> None:
    env.write("a.txt", b"a")
    auth = {**env.settings["auth"], "key": None, "key_credential": "swift-key"}
    auth = {k: v for k, v in auth.items() if v is not None}
    prefix = as_systemd_loads_credentials(env, "swift-key", env.backend.key)

    result = env.run(prefix=prefix, auth=auth)

    assert result.code == 0, result.stderr
    assert env.names() == ["files/a.txt"]
    assert env.backend.key not in result.stderr + result.stdout


def test_status_needs_no_credentials_and_shows_the_once_run(env: Env) -> None:
    env.write("a.txt", b"a")
    auth = {k: v for k, v in env.settings["auth"].items() if k != "key"}
    auth["key_env"] = "KCSYNC_TEST_SWIFT_KEY"
    assert env.run(prefix=("env", f"KCSYNC_TEST_SWIFT_KEY={env.backend.key}"), auth=auth).code == 0

    shown = status(env)  # the variable is not set here: the service holds the credentials

    assert shown.returncode == 0, shown.stderr
    assert "last reconcile: never" not in shown.stdout
    assert "last reconcile: " in shown.stdout and "drift 1" in shown.stdout
    assert "-> files/: 1 object, 1 B" in shown.stdout
    approve = subprocess.run(
        [sys.executable, "-m", "kcsync.cli", "approve-deletes", "-c", str(env.config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert approve.returncode == 1 and "no refused deletes to approve" in approve.stdout


def test_status_says_where_it_looked_when_there_is_no_state(env: Env) -> None:
    env.configure()

    shown = status(env)

    assert shown.returncode == 0, shown.stderr
    assert f"no state database in {env.state}" in shown.stdout


def test_a_missing_folder_is_a_failure_on_stdout(env: Env) -> None:
    env.write("a.txt", b"a")
    missing = env.root / "not-mounted"
    folders = [*env.settings["folders"], {"path": str(missing), "prefix": "other/"}]

    result = env.run(folders=folders)

    assert result.code == 1
    assert f"failed: folder {missing} does not exist" in result.stdout
    assert "1 folder not synced" in result.stdout
    assert env.names() == ["files/a.txt"]  # the other folder synced all the same


def test_dry_run_summary_counts_the_deletes_it_printed(env: Env) -> None:
    env.write("a.txt", b"a")
    env.write("b.txt", b"b")
    env.wait_until_settled()  # a.txt is then trusted on its stat, not verified again
    assert env.run().code == 0
    (env.data / "b.txt").unlink()
    env.write("c.txt", b"cc")

    result = env.run("--once", "--dry-run")

    assert result.code == 0, result.stderr
    assert "would delete: files/b.txt" in result.stdout
    assert "dry run: 1 file to send (2 B), 1 delete, nothing changed" in result.stdout


def test_fifo_and_link_out_of_the_folder_are_ignored_not_failures(env: Env) -> None:
    env.write("a.txt", b"a")
    os.mkfifo(env.data / "pipe")
    (env.data / "escape").symlink_to("/etc/hostname")

    first, again = env.run(), env.run()

    for result in (first, again):  # every run says so, and none of them fails for it
        assert result.code == 0, result.stdout
        assert f"ignored: {env.data / 'pipe'}: not a regular file (fifo)" in result.stdout
        assert f"ignored: {env.data / 'escape'}: symlink points outside the folder" in (
            result.stdout
        )
        assert "2 ignored" in result.stdout and "skipped" not in result.stdout
        assert [e["path"] for e in result.named("ignored")] == [
            str(env.data / "escape"),
            str(env.data / "pipe"),
        ]
    assert env.names() == ["files/a.txt"]


def test_a_rerun_with_nothing_changed_costs_what_the_readme_says(env: Env) -> None:
    for i in range(5):
        env.write(f"f{i}.txt", b"x" * i)
    assert env.run().code == 0
    env.wait_until_settled()
    assert env.run().code == 0

    result = env.run()

    # README: one HEAD (does the bucket exist), /info, and the listing (a page per 1000
    # objects and the empty page that ends it); no HEAD per object, nothing sent.
    assert result.code == 0, result.stderr
    assert result.requests == {"HEAD": 1, "GET": 3}, result.requests
    assert "5 unchanged" in result.stdout


def test_a_state_only_command_with_a_broken_secret_form_is_still_a_config_error(
    env: Env, tmp_path: Path
) -> None:
    # Secrets are not read for status, but how they are given is still checked.
    auth = {**env.settings["auth"], "key_env": "X"}
    env.configure(auth=auth)

    shown = status(env)

    assert shown.returncode == 78
    assert "auth.key: is given more than once" in shown.stderr

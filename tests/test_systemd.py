"""The shipped units pass `systemd-analyze verify` and say what the daemon relies on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from kcsync.config import KakaoAuth, load_config
from kcsync.errors import EXIT_AUTH, EXIT_CONFIG, EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"


def directives(unit: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The supported install (scripts/install-service.sh: a venv in /opt/kcsync linked to
    /usr/local/bin/kcsync, the units in /etc/systemd/system), staged below a temporary
    root: the tests never write outside their temporary directories."""
    root = tmp_path_factory.mktemp("root")
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-service.sh")],
        env={**os.environ, "KCSYNC_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_the_installed_command_runs_from_its_own_venv(installed: Path) -> None:
    link = installed / "usr/local/bin/kcsync"
    assert link.is_symlink() and not os.readlink(link).startswith("/")
    assert link.resolve() == (installed / "opt/kcsync/bin/kcsync").resolve()
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("kcsync "), version.stderr
    # Not an editable install pointing into this checkout: the service user must be able
    # to read the code, wherever the repository was cloned.
    where = subprocess.run(
        [str(installed / "opt/kcsync/bin/python"), "-c", "import kcsync; print(kcsync.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=installed,  # not the checkout, which `python -c` would import from
    )
    assert where.stdout.startswith(str(installed / "opt/kcsync/lib")), where.stdout
    assert (installed / "etc/kcsync").is_dir()


@pytest.mark.parametrize("name", ["kcsync.service", "kcsync@.service"])
def test_installed_unit_verifies_cleanly(installed: Path, tmp_path: Path, name: str) -> None:
    unit_file = installed / "etc/systemd/system" / name
    assert unit_file.read_text() == (UNITS / name).read_text()
    # verify checks that ExecStart exists and is executable: point it at the staged link.
    text = unit_file.read_text().replace(
        "/usr/local/bin/kcsync", str(installed / "usr/local/bin/kcsync")
    )
    unit = tmp_path / name
    unit.write_text(text)

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )

    # verify exits 0 even for directives it could not parse; it only says so: demand silence.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@pytest.mark.parametrize("name", ["kcsync.service", "kcsync@.service"])
def test_unit_is_notify_hardened_and_does_not_restart_on_config_errors(name: str) -> None:
    d = directives(UNITS / name)

    assert d["Type"] == "notify" and d["WatchdogSec"]
    assert d["Restart"] == "on-failure"
    assert {str(EXIT_CONFIG), str(EXIT_AUTH), str(EXIT_USAGE)} <= set(
        d["RestartPreventExitStatus"].split()
    )
    assert d["StateDirectory"].startswith("kcsync")
    assert d["User"] == "kcsync"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
    }.items():
        assert d[key] == value, key
    assert d["ExecReload"].endswith("kill -HUP $MAINPID")


def test_template_gives_each_instance_its_config_and_state() -> None:
    d = directives(UNITS / "kcsync@.service")

    assert "/etc/kcsync/%i.yaml" in d["ExecStart"]
    assert d["StateDirectory"] == "kcsync/%i"


@pytest.mark.parametrize(
    ("name", "credential"),
    [("kcsync.service", "/etc/kcsync/secret"), ("kcsync@.service", "/etc/kcsync/%i/secret")],
)
def test_units_load_the_secret_the_example_config_reads(name: str, credential: str) -> None:
    d = directives(UNITS / name)
    assert d["LoadCredential"] == f"secret:{credential}"
    example = yaml.safe_load((REPO / "config.example.yaml").read_text())
    assert example["auth"]["secret_credential"] == "secret"


def test_example_config_loads_under_systemd_with_its_own_state(tmp_path: Path) -> None:
    # As the unit runs it: the credential in $CREDENTIALS_DIRECTORY, $STATE_DIRECTORY set.
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "secret").write_text("s3cr3t\n")
    state = tmp_path / "state" / "photos"
    environ = {"CREDENTIALS_DIRECTORY": str(creds), "STATE_DIRECTORY": str(state)}

    config = load_config(REPO / "config.example.yaml", environ=environ)

    assert isinstance(config.auth, KakaoAuth) and config.auth.secret == "s3cr3t"
    # The example sets no state_dir, so each instance keeps its own (it used to force a
    # shared /var/lib/kcsync on every instance).
    assert config.state_dir == state
    assert "state_dir" not in yaml.safe_load((REPO / "config.example.yaml").read_text())

"""The shipped units pass `systemd-analyze verify` and say what the daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kcsync.errors import EXIT_AUTH, EXIT_CONFIG, EXIT_USAGE

UNITS = Path(__file__).resolve().parents[1] / "systemd"


def directives(unit: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


@pytest.mark.parametrize("name", ["kcsync.service", "kcsync@.service"])
def test_unit_verifies_cleanly(tmp_path: Path, name: str) -> None:
    kcsync = shutil.which("kcsync")
    assert kcsync, "kcsync is not installed (pip install -e .)"
    # verify checks that ExecStart exists: point it at this machine's kcsync.
    text = (UNITS / name).read_text().replace("/usr/local/bin/kcsync", kcsync)
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

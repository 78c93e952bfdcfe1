"""cli.py: commands and options, before or after the command word."""

from __future__ import annotations

import pytest

from kcsync import cli


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], None),
        (["--once"], None),
        (["-c", "status", "--once"], None),
        (["--config", "sync", "--log-level", "debug"], None),
        (["status"], "status"),
        (["-c", "x.yaml", "status", "--json"], "status"),
        (["--log-format", "json", "sync", "--once"], "sync"),
        (["--once", "--", "status"], None),
    ],
    ids=[
        "nothing",
        "legacy-once",
        "config-named-like-a-command",
        "long-option-value-named-like-a-command",
        "status",
        "option-before-command",
        "log-option-before-command",
        "after-double-dash",
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert cli.command_of(argv) == command


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "cfg.yaml", "status", "--json"],
        ["status", "-c", "cfg.yaml", "--json"],
        ["status", "--json", "--config", "cfg.yaml"],
    ],
    ids=["before", "after", "after-long"],
)
def test_options_work_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.config, args.json) == ("status", "cfg.yaml", True)


def test_no_command_means_sync_with_its_legacy_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    monkeypatch.setitem(
        cli.COMMANDS, "sync", (*cli.COMMANDS["sync"][:2], lambda args: seen.append(args) or 0)
    )
    assert cli.main(["-c", "cfg.yaml", "--once", "--log-format", "json"]) == 0
    (args,) = seen
    assert (args.command, args.config, args.once, args.log_format) == (  # type: ignore[attr-defined]
        "sync",
        "cfg.yaml",
        True,
        "json",
    )


def test_version_and_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("kcsync ")
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert f"kcsync {name}" in capsys.readouterr().out


def test_dry_run_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--dry-run"])
    assert exc.value.code == 2
    assert "--dry-run needs --once" in capsys.readouterr().err

"""Command line: argv in, exit code out. One ``except KcsyncError`` owns error reporting.

Commands are subcommands (``kcsync status``, ``kcsync sync --once``); without one, the
arguments are those of ``sync``, so ``kcsync -c CONFIG --once`` from cron and the systemd
units keep working. The common options (-c, --log-format, --log-level) are accepted before
or after the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

import structlog

from kcsync import logs
from kcsync.config import Config, config_path, load_config
from kcsync.errors import KcsyncError, UsageError

EXIT_CODES_HELP = """exit codes:
  0   everything is in the bucket
  1   finished, but some files could not be synced, restored or verified (listed)
  2   bad command-line arguments
  3   the delete guard refused deletes
  69  the server could not be reached or refused a request
  75  another kcsync is using the state directory
  77  the credentials were refused
  78  the config is invalid
"""

Runner = Callable[[argparse.Namespace], int]
# Options that take a value, for finding the command word among the arguments.
_VALUED = {"-c", "--config", "--log-format", "--log-level"}


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    """-c and the log options, for the top level and for every command. On the commands
    their defaults are suppressed, so a value given before the command is not reset."""
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=default,
        help="config file (default: $KCSYNC_CONFIG or /etc/kcsync/config.yaml)",
    )
    common.add_argument("--log-format", choices=("auto", "console", "json"), default=default)
    common.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=default
    )
    return common


def _version() -> str:
    try:
        return metadata.version("kcsync")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kcsync",
        description="Mirror local folders into KakaoCloud Object Storage (Swift API).",
        epilog=EXIT_CODES_HELP + "\nWithout a command, kcsync runs `sync`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"kcsync {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, add_arguments, _) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            parents=[_common(suppress=True)],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(sub)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command word in ``argv``, or None: the first argument that is neither an option
    nor an option's value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            return None
        elif arg.startswith("-"):
            skip = arg in _VALUED
        else:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if command_of(argv) is None and not {"-h", "--help", "--version"} & set(argv):
        argv = ["sync", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sync" and args.dry_run and not args.once:
        parser.error("--dry-run needs --once")
    logs.configure(args.log_format or "auto", args.log_level or "info")
    try:
        return int(COMMANDS[args.command][2](args))
    except KcsyncError as exc:
        print(f"kcsync: {logs.redactor.scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kcsync: interrupted", file=sys.stderr)
        return 130


def load(args: argparse.Namespace, *, secrets: bool = True) -> Config:
    """The config, with logging set up as it asks (the command line wins). ``secrets``:
    False for commands that only read or write the state database, so they work from a
    shell that does not hold the service's credentials."""
    config = load_config(config_path(args.config), secrets=secrets)
    logs.configure(args.log_format or config.log.format, args.log_level or config.log.level)
    for warning in config.warnings:
        structlog.get_logger("kcsync").warning("config warning", detail=warning)
    return config


# -- sync ---------------------------------------------------------------------------------


def _sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="sync once, print a summary, exit")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --once: print the plan, change nothing"
    )


def _sync(args: argparse.Namespace) -> int:
    config = load(args)
    from kcsync.daemon import Daemon, run_once

    if args.once:
        return run_once(config, dry_run=args.dry_run)
    code = Daemon(config).run()
    # Everything kcsync owns is stopped and its state committed; a library thread that
    # outlives that (logged above) must not keep systemd's stop job waiting.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- status -------------------------------------------------------------------------------


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _status(args: argparse.Namespace) -> int:
    config = load(args, secrets=False)
    from kcsync.status import collect, render

    status = collect(config)
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(status, sys.stdout)
    return 0


# -- approve-deletes ----------------------------------------------------------------------


def _approve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", help="approve only this folder's refused deletes")


def _approve(args: argparse.Namespace) -> int:
    config = load(args, secrets=False)
    from kcsync.status import approve_deletes

    return approve_deletes(config, args.folder, sys.stdout)


# -- restore ------------------------------------------------------------------------------


def _restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, metavar="DIR", help="directory to restore into")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--folder", metavar="PATH", help="restore this configured folder's objects")
    which.add_argument("--prefix", metavar="P", help="restore the objects under this prefix")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be restored, write nothing"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace local files that differ")


def _restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kcsync.errors import UsageError
    from kcsync.restore import run_restore

    config = load(args)
    folder = None
    if args.folder is not None:
        wanted = Path(args.folder).resolve()
        matches = [f for f in config.folders if f.path.resolve() == wanted]
        if not matches:
            known = ", ".join(str(f.path) for f in config.folders)
            raise UsageError(f"--folder {args.folder} is not a folder of the config ({known})")
        folder = matches[0]
    elif args.prefix is None:
        if len(config.folders) != 1:
            raise UsageError("the config has several folders: name one with --folder or --prefix")
        folder = config.folders[0]
    return run_restore(
        config,
        to=Path(args.to),
        folder=folder,
        prefix=args.prefix,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        out=sys.stdout,
    )


# -- verify -------------------------------------------------------------------------------


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="re-read every file (no hash cache) and check large objects segment by segment",
    )


def _verify(args: argparse.Namespace) -> int:
    from kcsync.verify import run_verify

    config = load(args)
    return run_verify(config, deep=args.deep, as_json=args.json, stream=sys.stdout)


# -- share --------------------------------------------------------------------------------


def _share_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="PATH-OR-OBJECT",
        help="a file in a synced folder, or an object name in the bucket",
    )
    parser.add_argument(
        "--expires",
        default="1d",
        help="how long the URL works: 90s, 30m, 12h, 7d (default: 1d)",
    )
    parser.add_argument("--filename", help="the file name a browser saves the download as")


def _share(args: argparse.Namespace) -> int:
    from kcsync.units import parse_duration

    try:
        seconds = int(parse_duration(args.expires))
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}") from None
    if seconds < 1:
        raise UsageError("--expires: must be at least 1s")
    config = load(args)
    from kcsync.daemon import make_remote
    from kcsync.share import object_name, share

    name = object_name(config, args.target)
    remote = make_remote(config)
    url = share(config, remote.client, remote.storage_url, name, seconds, filename=args.filename)
    print(url)
    return 0


# name -> (one-line help, arguments of its own, what runs it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {
    "sync": (
        "mirror the folders: as a daemon (watch + periodic reconcile), or --once",
        _sync_arguments,
        _sync,
    ),
    "status": (
        "queue, dead jobs, last reconcile and totals per folder (reads the state only)",
        _status_arguments,
        _status,
    ),
    "restore": (
        "write the objects under a folder's prefix (or any prefix) into a directory",
        _restore_arguments,
        _restore,
    ),
    "verify": (
        "compare every folder with the bucket and print what differs; changes nothing",
        _verify_arguments,
        _verify,
    ),
    "approve-deletes": (
        "let the next run perform the deletes the guard refused (see status)",
        _approve_arguments,
        _approve,
    ),
    "share": (
        "print a URL that downloads one object without credentials until it expires",
        _share_arguments,
        _share,
    ),
}


if __name__ == "__main__":
    sys.exit(main())

"""Command line: argv in, exit code out. One ``except KcsyncError`` owns error reporting."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import structlog

from kcsync import logs
from kcsync.config import config_path, load_config
from kcsync.errors import KcsyncError

EXIT_CODES_HELP = """exit codes:
  0   everything is in the bucket
  1   finished, but some files could not be synced (see the log)
  2   bad command-line arguments
  3   the delete guard refused deletes
  69  the server could not be reached or refused a request
  75  another kcsync is using the state directory
  77  the credentials were refused
  78  the config is invalid
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kcsync",
        description="Mirror local folders into KakaoCloud Object Storage (Swift API). "
        "Without --once, runs as a daemon: watches the folders and reconciles periodically.",
        epilog=EXIT_CODES_HELP + "\nkcsync status [--json] shows the queue and last reconcile.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c", "--config", help="config file (default: $KCSYNC_CONFIG or /etc/kcsync/config.yaml)"
    )
    parser.add_argument("--once", action="store_true", help="sync once, print a summary, exit")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --once: print the plan, change nothing"
    )
    parser.add_argument("--log-format", choices=("auto", "console", "json"))
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    return parser


def build_status_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kcsync status", description="Queue, dead jobs, last reconcile, totals per folder."
    )
    parser.add_argument("-c", "--config")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["status"]:
        return status_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.dry_run and not args.once:
        build_parser().error("--dry-run needs --once")
    logs.configure(args.log_format or "auto", args.log_level or "info")
    log = structlog.get_logger("kcsync")
    try:
        config = load_config(config_path(args.config))
        logs.configure(args.log_format or config.log.format, args.log_level or config.log.level)
        for warning in config.warnings:
            log.warning("insecure permissions", detail=warning)
        from kcsync.daemon import Daemon, run_once

        if args.once:
            return run_once(config, dry_run=args.dry_run)
        code = Daemon(config).run()
        # Everything kcsync owns is stopped and its state committed; a library thread that
        # outlives that (logged above) must not keep systemd's stop job waiting.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except KcsyncError as exc:
        print(f"kcsync: {logs.redactor.scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kcsync: interrupted", file=sys.stderr)
        return 130


def status_main(argv: list[str]) -> int:
    args = build_status_parser().parse_args(argv)
    try:
        config = load_config(config_path(args.config))
        from kcsync.status import collect, render

        status = collect(config)
    except KcsyncError as exc:
        print(f"kcsync: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(status, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

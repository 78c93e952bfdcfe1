"""kcsync's own exceptions.

Each error knows its exit code, so the CLI has a single ``except KcsyncError``.
The codes follow sysexits(3) where one fits; systemd units list the ones that
must not trigger a restart loop (a bad config will not fix itself).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # ran to the end, but some files are not in the bucket
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_GUARD = 3  # the delete guard refused deletes: the bucket still holds extra objects
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the server could not be reached
EXIT_LOCKED = 75  # EX_TEMPFAIL: another kcsync holds the state directory
EXIT_AUTH = 77  # EX_NOPERM: credentials were refused
EXIT_CONFIG = 78  # EX_CONFIG: the config is invalid


class KcsyncError(Exception):
    exit_code = EXIT_INCOMPLETE


class UsageError(KcsyncError):
    """The command line asks for something argparse cannot check (a duration, a folder
    that is not in the config)."""

    exit_code = EXIT_USAGE


class ConfigError(KcsyncError):
    """The config cannot be used; the message names the key."""

    exit_code = EXIT_CONFIG

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}" if key else f"config: {problem}")
        self.key = key


class StateLockedError(KcsyncError):
    exit_code = EXIT_LOCKED


class RemoteError(KcsyncError):
    """The server answered in a way we cannot use."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientRemoteError(RemoteError):
    """Worth retrying later: connection trouble, 408/429/5xx that outlived the request retries."""


class AuthError(RemoteError):
    exit_code = EXIT_AUTH


class NotFoundError(RemoteError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class GuardError(KcsyncError):
    """The delete guard refused: retrying cannot help until a person looks."""

    exit_code = EXIT_GUARD


class LocalFileError(KcsyncError):
    """One file cannot be synced now (unreadable, vanished, bad name): report it, skip it."""


class FileVanishedError(LocalFileError):
    """The file is gone (deleted, or moved away) since it was admitted: not a bad file.
    Its delete or move event, or the reconcile, settles its object."""


class FileChangedError(LocalFileError):
    """The file changed while it was read; the upload was discarded and will be retried."""


class FileBusyError(FileChangedError):
    """Another process holds the file open for writing: it is not complete yet. Retried
    soon like any change; a one-shot run reports it as failed after its attempts."""

"""Exceptions meant to be shown to a person: the CLI prints their message as one line, no traceback."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base for errors displayed to the user as they are."""


class DatabaseBusy(WorkbenchError):
    """Another process (usually `workbench serve`) holds the database for writing."""


class DatabaseCorrupt(WorkbenchError):
    """The database file exists but cannot be opened or read as a workbench database."""


class BadInput(WorkbenchError):
    """A request or file that cannot be decoded. `status` is the HTTP status a receiver answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Overloaded(WorkbenchError):
    """The ingest queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PathProblem(WorkbenchError):
    """A path a person gave (or its parent) cannot be used as asked: a file where a directory is needed,
    an existing file an output would overwrite, a missing or unwritable parent. Exit code 2, like click's
    usage errors: the command never started its work, so nothing was written."""

    exit_code = 2


def path_problem(what: str, path: object, exc: OSError) -> PathProblem:
    """One line from an OSError: what the path was for, where it is, what failed, what to do."""
    reason = exc.strerror or type(exc).__name__
    hint = {
        "Not a directory": "a part of that path is a file; give a path inside a directory",
        "Is a directory": "it is a directory; give a file path",
        "File exists": "a file is in the way; choose another path",
        "Permission denied": "check its permissions, or choose a path you may write",
        "No such file or directory": "create its parent directory first, or choose another path",
        "Read-only file system": "choose a path on a writable file system",
    }.get(reason, "check the path")
    return PathProblem(f"{what} {exc.filename or path}: {reason} ({hint})")

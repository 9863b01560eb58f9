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

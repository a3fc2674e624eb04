"""Exceptions: one root, with usage errors kept apart from data and load failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrcore._report import LoadReport


class HrcoreError(Exception):
    """Root of every error hrcore raises on purpose."""


class UsageError(HrcoreError, ValueError):
    """The caller asked for something invalid (bad batch size, unknown table...)."""


class SourceNotFoundError(HrcoreError, FileNotFoundError):
    """The file, folder, bucket or key to load does not exist or cannot be read."""


class NotFoundError(HrcoreError, LookupError):
    """No row, load or backup with that id."""


class SourceUnavailableError(HrcoreError):
    """S3 or the folder could not be reached, read or written (credentials, endpoint,
    network, a full disk)."""


class SourceFormatError(HrcoreError):
    """The file is not UTF-8 CSV text (a UTF-16 file, say); nothing was loaded from it."""


class BusyError(HrcoreError):
    """Another load or restore holds the table or file, and it was not free in time.

    ``holder`` is the id of the load holding it, when there is one.
    """

    def __init__(self, message: str, *, holder: int | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class DatabaseError(HrcoreError):
    """The database could not be reached or refused a statement (``sqlstate`` tells why)."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class RestoreError(HrcoreError):
    """A restore was refused and changed nothing (not a backup of that table, broken references)."""


class LoadFailedError(HrcoreError):
    """A load stopped before it finished; its ledger entry is marked failed."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


class LoadCancelledError(LoadFailedError):
    """A load was stopped on request (Ctrl-C, SIGTERM) at a batch boundary; its ledger
    entry says ``cancelled`` with the counts of the batches that were committed."""

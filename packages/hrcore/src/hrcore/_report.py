"""What a load tells: counts that always reconcile, and why rows were rejected."""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "skipped"]
Kind = Literal["load", "restore"]
STATUSES: tuple[str, ...] = get_args(Status)


class Attempt(msgspec.Struct, kw_only=True):
    """An earlier attempt at a queued load, which stopped before the end (its worker
    died, or was stopped): what it had committed when it stopped. Its rows stay in
    the table; the attempt after it finds them unchanged."""

    attempt: int
    worker: str | None
    status: Status
    error: str | None
    batches: int
    rows_read: int
    rows_written: int


class PartReport(msgspec.Struct, kw_only=True):
    """One part file of a many-part load: ``queued``, ``staged`` (read), ``written``,
    ``skipped`` (the same content as in load ``same_as``, the table as it left it) or
    ``failed``. The ledger numbers its lines after those of the parts before it:
    its line ``n`` is the load's line ``first_line - 1 + n``."""

    part: int
    uri: str
    identity: str  # its content's (S3 ETag, or size and mtime), as this load found it
    status: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    batches: int = 0
    first_line: int | None = None
    same_as: int | None = None
    worker: str | None = None  # who read it (host:pid)
    attempts: int = 0  # times it was read: more than 1 when a worker died reading it
    error: str | None = None


class LoadReport(msgspec.Struct, kw_only=True):
    """The outcome of loading one file into one table.

    ``rows_read == rows_inserted + rows_updated + rows_unchanged + rows_rejected``
    always holds; ``rejections`` counts rejected rows by reason (a row with two
    reasons counts under both).
    """

    table: str
    source: str
    load_id: int
    status: Status
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    kind: Kind = "load"
    same_as: int | None = None  # a skipped load: the load whose work it would repeat
    attempt: int = 1  # a queued load: 0 until a worker takes it, then 1, 2... on retries
    worker: str | None = None  # a queued load: the worker (host:pid) of the attempt
    # a file's load: the lines its first pass found starting with an id, an estimate of
    # rows_read at the end (for a progress bar while it runs)
    rows_expected: int | None = None
    earlier_attempts: list[Attempt] = msgspec.field(default_factory=list)
    parts: list[PartReport] = msgspec.field(default_factory=list)  # a many-part load's
    rejections: dict[str, int] = msgspec.field(default_factory=dict)
    error: str | None = None

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    def to_dict(self) -> dict[str, object]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

"""Is the database there, and what does the bucket hold?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from hrcore._db import connect, scalar
from hrcore._errors import SourceNotFoundError
from hrcore._sources import s3_filesystem


class StoredFile(msgspec.Struct, kw_only=True):
    """An object in a bucket or a file in a folder."""

    uri: str
    size: int


def check_database(database_url: str | None = None) -> str:
    """Run a query; return the server's version (raises :class:`DatabaseError` if down)."""
    with connect(database_url) as conn:
        return str(scalar(conn, "SELECT current_setting('server_version')"))


def list_files(location: str) -> list[StoredFile]:
    """The files in a folder, or the objects under ``s3://bucket/prefix/``, with sizes."""
    if not location.startswith("s3://"):
        folder = Path(location.removeprefix("file://"))
        if not folder.is_dir():
            raise SourceNotFoundError(f"no such folder: {folder}")
        return [
            StoredFile(uri=str(p), size=p.stat().st_size)
            for p in sorted(folder.iterdir())
            if p.is_file()
        ]
    path = location.removeprefix("s3://").rstrip("/")
    fs = s3_filesystem()
    try:
        entries: list[dict[str, Any]] = fs.ls(path, detail=True, refresh=True)
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise SourceNotFoundError(f"cannot list {location}: {exc}") from exc
    return [
        StoredFile(uri=f"s3://{e['name']}", size=int(e.get("size") or 0))
        for e in entries
        if e.get("type") != "directory"
    ]

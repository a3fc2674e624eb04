"""Where files live, a local folder or S3: resolve, read in blocks, list, write atomically.

Every failure of the storage comes out as one of hrcore's errors: a missing file,
bucket or key is :class:`SourceNotFoundError`; an unreachable endpoint, a refused
request or a full disk is :class:`SourceUnavailableError`; a name too long for
any storage is a :class:`UsageError`. Waits on S3 are bounded (connect and read
timeouts, few retries).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urlparse

import msgspec

from hrcore._errors import (
    HrcoreError,
    SourceNotFoundError,
    SourceUnavailableError,
    UsageError,
)
from hrcore._specs import TableSpec, table_for_file

SAMPLE_FOLDER = Path(__file__).parent / "samples"
BLOCK_BYTES = 4 << 20  # read size: about 90,000 lines of hired_employees
MAX_LOCATION_BYTES = 1024  # an S3 key's limit; a local path is held to the same
S3_CONNECT_TIMEOUT = 5.0  # seconds
S3_READ_TIMEOUT = 60.0
S3_ATTEMPTS = 2  # botocore's attempts per request; s3fs retries a few times more
S3FS_RETRIES = 3


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One CSV object: where it is and what identifies its content (ETag, or size+mtime)."""

    uri: str
    identity: str


class StoredFile(msgspec.Struct, kw_only=True):
    """An object in a bucket or a file in a folder."""

    uri: str
    size: int


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def default_source() -> str:
    """``s3://$S3_BUCKET_NAME/`` when that is set, else the bundled sample folder."""
    bucket = os.environ.get("S3_BUCKET_NAME")
    return f"s3://{bucket}/" if bucket else str(SAMPLE_FOLDER)


def check_location(location: str | os.PathLike[str]) -> str:
    """The location as text, if it is one hrcore can use (a path, file:// or s3://)."""
    text = os.fspath(location)
    if len(text.encode()) > MAX_LOCATION_BYTES:
        raise UsageError(
            f"a location may be at most {MAX_LOCATION_BYTES} bytes long, "
            f"not {len(text.encode())} ({text[:60]}...)"
        )
    if "\x00" in text:
        raise UsageError("a location cannot hold a NUL character")
    if "://" in text and not text.startswith(("file://", "s3://")):
        raise UsageError(f"unsupported source {text!r}: use a path, file:// or s3://")
    if is_s3(text) and not urlparse(text).netloc:
        raise UsageError(f"S3 URI has no bucket: {text!r}")
    return text


def s3_filesystem() -> Any:
    """An s3fs filesystem configured from the environment, with bounded waits."""
    import s3fs

    client_kwargs: dict[str, str] = {
        "region_name": os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    fs = s3fs.S3FileSystem(
        client_kwargs=client_kwargs,
        config_kwargs={
            "connect_timeout": S3_CONNECT_TIMEOUT,
            "read_timeout": S3_READ_TIMEOUT,
            "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"},
        },
        skip_instance_cache=True,
    )
    fs.retries = S3FS_RETRIES
    return fs


def storage_error(exc: BaseException, what: str) -> HrcoreError:
    """A storage failure as hrcore's error for it (``what``: 'cannot read s3://...')."""
    if isinstance(exc, HrcoreError):
        return exc
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return SourceNotFoundError(f"{what}: not found ({reason})")
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return UsageError(f"{what}: the name is too long")
    if isinstance(exc, PermissionError):
        return SourceNotFoundError(f"{what}: permission denied ({reason})")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return SourceUnavailableError(f"{what}: no space left on the device")
    return SourceUnavailableError(f"{what}: {reason}")


def _local_path(location: str) -> Path:
    if location.startswith("file://"):
        return Path(unquote(urlparse(location).path))
    return Path(location)


def _s3_path(location: str) -> str:
    """``bucket/key`` of an ``s3://`` URI."""
    return location.removeprefix("s3://")


def file_table(location: str | os.PathLike[str]) -> TableSpec | None:
    """The table a file location is for, by its name; None for a folder or prefix, or a
    name that says no table."""
    text = check_location(location)
    if text.endswith("/") or not is_file(text):
        return None
    return table_for_file(text.rstrip("/").rsplit("/", 1)[-1])


def is_file(location: str) -> bool:
    """Whether the location is one file or object (not a folder or prefix)."""
    try:
        if is_s3(location):
            parsed = urlparse(location)
            if parsed.path.strip("/") == "" or location.endswith("/"):
                return False
            return bool(s3_filesystem().isfile(_s3_path(location)))
        return _local_path(location).is_file()
    except Exception as exc:
        raise storage_error(exc, f"cannot look at {location}") from exc


def resolve(location: str | os.PathLike[str], spec: TableSpec) -> SourceFile:
    """The file of ``spec``'s table at ``location`` (a file, or a folder/prefix holding it)."""
    text = check_location(location)
    if is_s3(text):
        return _resolve_s3(text, spec)
    return _resolve_local(text, spec)


def _resolve_local(location: str, spec: TableSpec) -> SourceFile:
    path = _local_path(location)
    try:
        if not path.exists():
            raise SourceNotFoundError(f"no such file or folder: {path}")
        if path.is_dir():
            path = path / spec.file_name
        if not path.is_file():
            raise SourceNotFoundError(f"no such file: {path}")
        stat = path.stat()
    except OSError as exc:
        raise storage_error(exc, f"cannot read {path}") from exc
    return SourceFile(str(path.resolve()), _local_identity(stat))


def _resolve_s3(location: str, spec: TableSpec) -> SourceFile:
    parsed = urlparse(location)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if key == "" or key.endswith("/"):
        key += spec.file_name
    uri = f"s3://{bucket}/{key}"
    try:
        info = s3_filesystem().info(f"{bucket}/{key}")
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such S3 object: {uri} ({exc})") from exc
    except Exception as exc:  # credentials, endpoint, network: botocore's many kinds
        raise storage_error(exc, f"cannot reach {uri}") from exc
    if info.get("type") == "directory":
        return _resolve_s3(f"{uri}/", spec)
    return SourceFile(uri, _s3_identity(info))


def _local_identity(stat: os.stat_result) -> str:
    """What identifies a local file's content: its size and modification time."""
    return f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"


def _s3_identity(info: dict[str, Any]) -> str:
    """What identifies an S3 object's content: its ETag (and size)."""
    etag = str(info.get("ETag", "")).strip('"')
    return f"etag={etag};size={info.get('size')}" if etag else f"size={info.get('size')}"


def folder_uri(location: str) -> str:
    """A folder or prefix as the ledger names it: an absolute path, or ``s3://`` without
    the last slash."""
    text = check_location(location)
    return text.rstrip("/") if is_s3(text) else str(_local_path(text).resolve())


@dataclass(frozen=True, slots=True)
class Parts:
    """A table's part files, in name order, and where they are as one source: their
    folder, or ``<folder>/<table>-*.csv``."""

    source: str
    files: list[SourceFile]


def find_parts(location: str | os.PathLike[str], spec: TableSpec) -> Parts | None:
    """The part files of ``spec``'s table at a folder or prefix that does not hold the
    table's file, as Spark, Glue or DMS export them, in name order: the CSV files of
    ``<location>/<table>/``, the ``<table>-*.csv`` files of ``<location>``, or, when
    ``<location>`` is named for the table, its own CSV files. None when ``location``
    is a file or holds the table's file (an ordinary load)."""
    text = check_location(location)
    if is_file(text):
        return None
    try:
        resolve(text, spec)
        return None
    except SourceNotFoundError as exc:
        missing = exc
    stem = spec.file_name.removesuffix(".csv")
    folder = folder_uri(text)
    inside = _csv_files(f"{folder}/{stem}")
    if inside:
        return Parts(f"{folder}/{stem}", inside)
    named = [f for f in _csv_files(folder) if f.uri.rsplit("/", 1)[-1].startswith(f"{stem}-")]
    if named:
        return Parts(f"{folder}/{stem}-*.csv", named)
    if folder.rsplit("/", 1)[-1] == stem:
        own = _csv_files(folder)
        if own:
            return Parts(folder, own)
    raise missing  # nor parts: what is missing is the table's file


def _csv_files(folder: str) -> list[SourceFile]:
    """The ``*.csv`` files right in a folder or prefix (none if it does not exist), by name."""
    if not is_s3(folder):
        path = _local_path(folder)
        try:
            if not path.is_dir():
                return []
            files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".csv"))
            return [SourceFile(str(p.resolve()), _local_identity(p.stat())) for p in files]
        except OSError as exc:
            raise storage_error(exc, f"cannot list {path}") from exc
    try:
        entries: list[dict[str, Any]] = s3_filesystem().ls(
            _s3_path(folder), detail=True, refresh=True
        )
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise storage_error(exc, f"cannot list {folder}") from exc
    found = []
    for e in sorted(entries, key=lambda e: str(e["name"])):
        if e.get("type") == "directory" or not str(e["name"]).endswith(".csv"):
            continue
        found.append(SourceFile(f"s3://{e['name']}", _s3_identity(e)))
    return found


def open_read(uri: str, block_bytes: int = BLOCK_BYTES) -> BinaryIO:
    """A file or S3 object opened for reading (S3: read by ranges of ``block_bytes``)."""
    try:
        if is_s3(uri):
            file: BinaryIO = s3_filesystem().open(_s3_path(uri), "rb", block_size=block_bytes)
            return file
        return cast(BinaryIO, open(_local_path(uri), "rb"))
    except Exception as exc:
        raise storage_error(exc, f"cannot read {uri}") from exc


def read_blocks(uri: str, block_bytes: int = BLOCK_BYTES) -> Generator[bytes, None, None]:
    """The file's bytes as a stream of blocks; only one is in memory at a time."""
    with open_read(uri, block_bytes) as file:
        while True:
            try:
                block = file.read(block_bytes)
            except Exception as exc:
                raise storage_error(exc, f"reading {uri} failed") from exc
            if not block:
                return
            yield block


def list_files(location: str) -> list[StoredFile]:
    """The files in a folder, or the objects under ``s3://bucket/prefix/``, with sizes."""
    location = check_location(location)
    if not is_s3(location):
        folder = _local_path(location)
        try:
            if not folder.is_dir():
                raise SourceNotFoundError(f"no such folder: {folder}")
            return [
                StoredFile(uri=str(p), size=p.stat().st_size)
                for p in sorted(folder.iterdir())
                if p.is_file()
            ]
        except OSError as exc:
            raise storage_error(exc, f"cannot list {folder}") from exc
    path = _s3_path(location).rstrip("/")
    try:
        entries: list[dict[str, Any]] = s3_filesystem().ls(path, detail=True, refresh=True)
    except Exception as exc:
        raise storage_error(exc, f"cannot list {location}") from exc
    return [
        StoredFile(uri=f"s3://{e['name']}", size=int(e.get("size") or 0))
        for e in entries
        if e.get("type") != "directory"
    ]


def check_bucket(location: str) -> None:
    """Raise :class:`SourceNotFoundError` if the bucket of an ``s3://`` location is missing."""
    bucket = urlparse(location).netloc
    try:
        exists = s3_filesystem().exists(bucket)
    except Exception as exc:
        raise storage_error(exc, f"cannot reach s3://{bucket}") from exc
    if not exists:
        raise SourceNotFoundError(f"no such bucket: s3://{bucket}")


@contextmanager
def atomic_write(uri: str) -> Iterator[BinaryIO]:
    """A file to write that appears under ``uri`` only if the block ends without error.

    Locally it is written under a hidden temporary name in the same folder, flushed
    to disk and renamed into place. On S3 it is a multipart upload that is completed
    only on success (and aborted otherwise), so no object ever shows a partial file.
    """
    if is_s3(uri):
        with _s3_atomic_write(uri) as file:
            yield file
        return
    path = _local_path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
    except Exception as exc:
        raise storage_error(exc, f"cannot write {uri}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise storage_error(exc, f"cannot write {uri}") from exc
        raise


@contextmanager
def _s3_atomic_write(uri: str) -> Iterator[BinaryIO]:
    try:
        file = s3_filesystem().open(_s3_path(uri), "wb", autocommit=False)
    except Exception as exc:
        raise storage_error(exc, f"cannot write {uri}") from exc
    try:
        yield file
        file.close()  # uploads the last part; nothing is visible yet
        file.commit()
    except BaseException as exc:
        with suppress(Exception):  # the endpoint may be gone too: the upload stays incomplete
            file.discard()  # aborts the multipart upload
        file.closed = True  # discarded: nothing left to flush when it is collected
        if isinstance(exc, Exception):
            raise storage_error(exc, f"cannot write {uri}") from exc
        raise

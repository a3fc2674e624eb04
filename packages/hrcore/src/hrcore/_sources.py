"""Where CSV files come from: a local file or folder, ``file://`` or ``s3://`` URIs.

Files are read as a stream of blocks (S3 objects by ranges, through s3fs) and each
block is parsed by Polars one line per row, so that big files stay out of memory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import polars as pl

from hrcore._errors import SourceNotFoundError, SourceUnavailableError, UsageError
from hrcore._specs import TableSpec, table_for_file

SAMPLE_FOLDER = Path(__file__).parent / "samples"
BLOCK_BYTES = 4 << 20  # read size: about 90,000 lines of hired_employees


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One CSV object: where it is and what identifies its content (ETag, or size+mtime)."""

    uri: str
    identity: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


def default_source() -> str:
    """``s3://$S3_BUCKET_NAME/`` when that is set, else the bundled sample folder."""
    bucket = os.environ.get("S3_BUCKET_NAME")
    return f"s3://{bucket}/" if bucket else str(SAMPLE_FOLDER)


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _s3_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def s3_filesystem() -> Any:
    """An s3fs filesystem configured from the environment (for listing and object identity)."""
    import s3fs

    client_kwargs: dict[str, str] = {"region_name": _s3_region()}
    endpoint = _s3_endpoint()
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    return s3fs.S3FileSystem(client_kwargs=client_kwargs, skip_instance_cache=True)


def _local_path(source: str | os.PathLike[str]) -> Path:
    text = os.fspath(source)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    return Path(text)


def _resolve_local(source: str | os.PathLike[str], spec: TableSpec) -> SourceFile:
    path = _local_path(source)
    if not path.exists():
        raise SourceNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        path = path / spec.file_name
    if not path.is_file():
        raise SourceNotFoundError(f"no such file: {path}")
    stat = path.stat()
    return SourceFile(str(path.resolve()), f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}")


def _resolve_s3(source: str, spec: TableSpec) -> SourceFile:
    parsed = urlparse(source)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise UsageError(f"S3 URI has no bucket: {source!r}")
    if key == "" or key.endswith("/"):
        key += spec.file_name
    fs = s3_filesystem()
    try:
        info = fs.info(f"{bucket}/{key}")
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such S3 object: s3://{bucket}/{key} ({exc})") from exc
    except PermissionError as exc:
        raise SourceNotFoundError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
    except Exception as exc:  # credentials, endpoint, network: botocore's many kinds
        raise SourceUnavailableError(f"cannot reach s3://{bucket}/{key}: {exc}") from exc
    if info.get("type") == "directory":
        return _resolve_s3(f"s3://{bucket}/{key}/", spec)
    etag = str(info.get("ETag", "")).strip('"')
    identity = f"etag={etag};size={info.get('size')}" if etag else f"size={info.get('size')}"
    return SourceFile(f"s3://{bucket}/{key}", identity)


def resolve(source: str | os.PathLike[str], spec: TableSpec) -> SourceFile:
    """The file of ``spec``'s table at ``source`` (a file, or a folder/prefix holding it)."""
    text = os.fspath(source)
    if text.startswith("s3://"):
        return _resolve_s3(text, spec)
    if "://" in text and not text.startswith("file://"):
        raise UsageError(f"unsupported source {text!r}: use a path, file:// or s3://")
    return _resolve_local(text, spec)


def infer_table(source: str | os.PathLike[str]) -> TableSpec | None:
    """The table a single-file source belongs to, from its file name."""
    name = os.fspath(source).rstrip("/").rsplit("/", 1)[-1]
    return table_for_file(name)


def _open(source: SourceFile) -> BinaryIO:
    if source.is_s3:
        fs = s3_filesystem()
        file: BinaryIO = fs.open(source.uri.removeprefix("s3://"), "rb", block_size=BLOCK_BYTES)
        return file
    return open(source.uri, "rb")


def parse_lines(data: bytes, first_line: int) -> pl.DataFrame:
    """One block of whole lines as ``line`` (1-based number) and ``text``; blanks dropped.

    Splitting on the newline itself yields one field per line whatever it holds;
    bytes that are not UTF-8 become U+FFFD, which validation reports.
    """
    frame = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator="\n",
        quote_char=None,
        schema={"text": pl.String},
        encoding="utf8-lossy",
        raise_if_empty=False,
    )
    return frame.with_row_index("line", offset=first_line).filter(
        pl.col("text").str.strip_chars() != ""
    )


def read_lines(source: SourceFile, block_bytes: int = BLOCK_BYTES) -> Iterator[pl.DataFrame]:
    """The file's lines in blocks of about ``block_bytes``, read as a stream.

    Only a block or two is in memory at a time, whatever the file's size, for a
    local file as for an S3 object (read by ranges).
    """
    first_line, carry = 1, b""
    with _open(source) as file:
        while block := file.read(block_bytes):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            whole, carry = data[:cut], data[cut:]
            if whole:
                yield parse_lines(whole, first_line)
                first_line += whole.count(b"\n")
    if carry:
        yield parse_lines(carry, first_line)

"""Rows from a stream of bytes: RFC 4180 records, each numbered by the line it starts on.

Most rows are one line; they are cut out of a block with NumPy and handed to Polars
as one Arrow array, without a Python object per row. Only lines with an odd number
of quotes (a quoted field that may go on past the line end, or broken quoting) go
through the ``csv`` module, which decides where their row ends. Memory stays
bounded whatever the input: a row longer than ``max_row_bytes`` is rejected
(``line_too_long``) and skipped without being held, and a quoted field that is
still open after that many bytes leaves its first line alone, as ``bad_quoting``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from hrcore._errors import SourceFormatError

MAX_ROW_BYTES = 1 << 16  # the longest row taken; longer ones are rejected
RAW_KEPT = 1000  # characters of an over-long row kept in the ledger
UTF8_BOM = b"\xef\xbb\xbf"
_NEWLINE, _QUOTE = 10, 34

#: the columns of every chunk of rows
ROWS_SCHEMA = {"line": pl.Int64, "text": pl.String, "bad_utf8": pl.Boolean, "too_long": pl.Boolean}


def check_utf8_csv(head: bytes, name: str) -> None:
    """Refuse a file that is plainly not UTF-8 text: a UTF-16 or UTF-32 one."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) >= 4 and head[:4096].count(0) * 4 >= min(len(head), 4096)
    ):
        raise SourceFormatError(
            f"{name} looks like UTF-16 (or UTF-32) text; hrcore reads UTF-8 CSV "
            "(convert it first, e.g. iconv -f UTF-16 -t UTF-8)"
        )


@dataclass(frozen=True, slots=True)
class _Cut:
    """Where the rows of a block are: byte spans and first line numbers."""

    starts: np.ndarray  # byte offset of each row
    ends: np.ndarray  # byte offset after each row's last character (before \r\n)
    lines: np.ndarray  # line number (1-based) of each row's first line


def without_bom(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks without a UTF-8 byte-order mark at the start, even one split over
    the first blocks."""
    start: bytes | None = b""
    for block in blocks:
        if start is not None:
            start += block
            if UTF8_BOM.startswith(start):  # a mark, or the start of one: wait for more
                continue
            block, start = start.removeprefix(UTF8_BOM), None
        yield block
    if start:  # the file is a piece of a mark and nothing else
        yield start


class RowReader:
    """Splits a stream of byte blocks into rows, chunk by chunk (one per block)."""

    def __init__(self, max_row_bytes: int = MAX_ROW_BYTES) -> None:
        self.max_row_bytes = max_row_bytes
        self.carry = b""  # the start of a row that goes on in the next block
        self.line = 1  # number of the first line in ``carry``
        self.skipping = False  # inside an over-long line, up to its newline

    def rows(self, blocks: Iterable[bytes]) -> Iterator[pl.DataFrame]:
        for block in without_bom(blocks):
            yield from self._feed(block, final=False)
        yield from self._feed(b"", final=True)

    def _feed(self, block: bytes, *, final: bool) -> Iterator[pl.DataFrame]:
        if self.skipping:
            cut = block.find(b"\n")
            if cut < 0:
                return
            block, self.skipping = block[cut + 1 :], False
            self.line += 1
        data = self.carry + block
        self.carry = b""
        while data:
            frame, rest, line = _split(data, self.line, final, self.max_row_bytes)
            if frame.height:
                yield frame
            self.line = line
            if final or len(rest) <= self.max_row_bytes:
                self.carry = rest
                return
            # an open row past the cap: a line too long, or a quote never closed
            first_end = rest.find(b"\n")
            if first_end < 0:  # one line, and not over yet: reject it, skip to its end
                yield _rows([self.line], [_shorten(rest)], [False], [True])
                self.skipping = True
                return
            # a quoted field still open after the cap: its first line is a row alone
            yield _one_line_rows(rest[: first_end + 1], self.line)
            data, self.line = rest[first_end + 1 :], self.line + 1


def _split(data: bytes, first_line: int, final: bool, cap: int) -> tuple[pl.DataFrame, bytes, int]:
    """The whole rows at the start of ``data``; the bytes of an unfinished last row and
    the number of its first line. With ``final``, every row ends with the data."""
    if final and data and not data.endswith(b"\n"):
        data += b"\n"  # the last line lacks a newline: it ends with the data
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == _NEWLINE)
    n_whole = newlines.size  # lines that end with a newline
    line_starts = np.concatenate(([0], newlines + 1))  # n_whole + 1 entries
    quotes = np.flatnonzero(buf == _QUOTE)
    per_line = np.diff(np.searchsorted(quotes, line_starts))  # quotes in each whole line
    odd = np.flatnonzero(per_line % 2 == 1)
    if odd.size:
        row_first, row_last, open_from = _join_quoted(data, line_starts, odd, n_whole, cap)
    else:
        row_first = row_last = np.arange(n_whole)
        open_from = n_whole
    cut = _Cut(line_starts[row_first], newlines[row_last], first_line + row_first)
    frame = _frame(data, cut, cap)
    if final and open_from < n_whole:
        # a quote never closed before the end: its first line is a row alone, then on
        after = int(line_starts[open_from + 1])
        alone = _one_line_rows(data[int(line_starts[open_from]) : after], first_line + open_from)
        later, rest, line = _split(data[after:], first_line + open_from + 1, True, cap)
        return pl.concat([frame, alone, later]), rest, line
    return frame, data[int(line_starts[open_from]) :], first_line + open_from


def _join_quoted(
    data: bytes, line_starts: np.ndarray, odd: np.ndarray, n_whole: int, cap: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows' first and last lines when some lines have an odd number of quotes, and
    the line where an unfinished row starts (``n_whole`` when none is).

    Each such line is read by the ``csv`` module from there on: if it opens a quoted
    field, its row runs to the line that closes it; if the quoting is broken, the
    line stays a row alone (validation says ``bad_quoting``).
    """
    joined: dict[int, int] = {}  # first line -> last line, of rows of several lines
    covered, open_from = -1, n_whole
    for first in (int(i) for i in odd):
        if first <= covered:
            continue
        last = _quoted_row_end(data, line_starts, first, n_whole, cap)
        if last is None:
            continue  # broken quoting: the line is a row alone
        if last >= n_whole:  # still open at the end of the data
            open_from = first
            break
        if last > first:
            joined[first] = covered = last
    lines = np.arange(open_from)
    if not joined:
        return lines, lines, open_from
    inner = np.concatenate([np.arange(first + 1, last + 1) for first, last in joined.items()])
    row_first = np.setdiff1d(lines, inner, assume_unique=True)
    row_last = row_first.copy()
    for first, last in joined.items():
        row_last[np.searchsorted(row_first, first)] = last
    return row_first, row_last, open_from


def _quoted_row_end(
    data: bytes, line_starts: np.ndarray, first: int, n_whole: int, cap: int
) -> int | None:
    """The last line of the row starting at line ``first``; ``n_whole`` if it is still
    open at the end of ``data`` (within ``cap`` bytes); None if its quoting is broken."""
    taken = [0]

    def lines() -> Iterator[str]:
        for k in range(first, n_whole):
            start, end = int(line_starts[k]), int(line_starts[k + 1])
            if end - int(line_starts[first]) > cap:
                return
            taken[0] += 1
            yield data[start:end].decode("utf-8", "replace")

    reader = csv.reader(lines(), strict=True)
    try:
        next(reader)
    except csv.Error:
        if (
            first + taken[0] >= n_whole
            and int(line_starts[n_whole]) - int(line_starts[first]) <= cap
        ):
            return n_whole  # ran out of lines, not of patience: the row goes on
        return None
    except StopIteration:
        return None
    return first + reader.line_num - 1


def _frame(data: bytes, cut: _Cut, cap: int) -> pl.DataFrame:
    """The rows as a frame: blank ones dropped, over-long ones shortened and flagged."""
    if cut.starts.size == 0:
        return pl.DataFrame(schema=ROWS_SCHEMA)
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = cut.ends - ((cut.ends > cut.starts) & (buf[np.maximum(cut.ends - 1, 0)] == 13))
    too_long = (ends - cut.starts) > cap
    for row in np.flatnonzero(too_long):  # keep the start, cut on a character boundary
        end = int(cut.starts[row]) + min(RAW_KEPT, int(ends[row] - cut.starts[row]))
        while end < buf.size and (buf[end] & 0xC0) == 0x80:
            end -= 1
        ends[row] = end
    try:
        text = _arrow_strings(data, cut.starts, ends)
        bad_utf8 = pl.repeat(False, cut.starts.size, eager=True)
    except pa.ArrowInvalid:  # some bytes are not UTF-8: find them row by row
        pieces = [data[int(s) : int(e)] for s, e in zip(cut.starts, ends, strict=True)]
        text = pl.Series([p.decode("utf-8", "replace") for p in pieces], dtype=pl.String)
        bad_utf8 = pl.Series([not _is_utf8(p) for p in pieces], dtype=pl.Boolean)
    frame = pl.DataFrame(
        {"line": cut.lines, "text": text, "bad_utf8": bad_utf8, "too_long": too_long},
        schema=ROWS_SCHEMA,
    )
    frame = frame.filter(pl.col("too_long") | (pl.col("text").str.strip_chars() != ""))
    if too_long.any():
        frame = frame.with_columns(
            text=pl.when("too_long").then(pl.col("text") + " ...").otherwise("text")
        )
    return frame


def _arrow_strings(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pl.Series:
    """The byte spans as strings, without a Python object each (ArrowInvalid if not UTF-8).

    Spans and the gaps between them (line ends) make one Arrow array over ``data``,
    with no copy; the cast checks UTF-8, and every other value is a row.
    """
    offsets = np.empty(starts.size * 2 + 1, dtype=np.int64)
    offsets[0:-1:2], offsets[1::2] = starts, ends
    offsets[-1] = ends[-1]  # the last gap is empty
    spans = pa.Array.from_buffers(
        pa.large_binary(),
        starts.size * 2,
        [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
    ).cast(pa.large_string())
    series = pl.from_arrow(spans.take(np.arange(0, starts.size * 2, 2)))
    assert isinstance(series, pl.Series)
    return series.cast(pl.String)


def _is_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _shorten(data: bytes) -> str:
    return data[:RAW_KEPT].decode("utf-8", "replace") + " ..."


def _rows(lines: list[int], texts: list[str], bad: list[bool], long: list[bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {"line": lines, "text": texts, "bad_utf8": bad, "too_long": long}, schema=ROWS_SCHEMA
    )


def _one_line_rows(line_bytes: bytes, line: int) -> pl.DataFrame:
    """One line taken alone as a row (whatever its quotes say)."""
    text = line_bytes.rstrip(b"\n").removesuffix(b"\r")
    if not text.strip():
        return pl.DataFrame(schema=ROWS_SCHEMA)
    return _rows([line], [text.decode("utf-8", "replace")], [not _is_utf8(text)], [False])


def rows_of_text(data: bytes) -> pl.DataFrame:
    """Rows of a CSV text held in memory (an API request body), as a file's would be."""
    frames = list(RowReader().rows([data]))
    return pl.concat(frames) if frames else pl.DataFrame(schema=ROWS_SCHEMA)


def utf8_checked(blocks: Iterator[bytes], uri: str) -> Iterator[bytes]:
    """The blocks, once the first has shown the file is not UTF-16."""
    first = next(blocks, b"")
    check_utf8_csv(first, uri)
    yield first
    yield from blocks

"""Which ids come more than once in a file, found in bounded memory.

A file load first reads the file once for its ids alone (:func:`repeated_ids`):
the rows whose id comes back later are set aside while the others are written
batch by batch as soon as they are staged; the set-aside rows are resolved in SQL
(the last valid one wins) and written last.

That first pass reads bytes, not rows (:func:`line_start_ids`): the number each
line starts with, found with NumPy. It finds every id a row can have (a row starts
a line), and perhaps more (a quoted field's later lines, a row that fails another
rule): a row set aside needlessly is only written at the end, never wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl

from hrcore._lines import MAX_ROW_BYTES, without_bom
from hrcore._specs import MAX_ID

_DIGITS = 10  # read at a line's start: MAX_ID has 10 digits (more go the slow way)
_HEAD = MAX_ROW_BYTES  # a line's bytes read for its id (a longer row is rejected)
#: what validation could read as the first field's integer: spaces, an opening
#: quote, a plus sign and zeros before the digits (a superset: ``"1,2"`` gives 1)
_LINE_START = r'^[\s"]*\+?0*([0-9]{1,19})'

#: ids kept in a sorted array until there are more than this many; then a bitmap
SMALL = 1 << 17


class RepeatedIds:
    """Remembers every id seen and collects those seen twice or more.

    Up to ``small`` ids are kept in a sorted array: the API's loads of 1 to 1000
    rows stay there. Past that, every id takes one bit of a bitmap over the whole
    id range (256 MiB of address space, allocated zeroed and lazily by the OS, so
    only the pages holding seen ids use memory: a million dense ids touch about
    128 KiB). Mapping and unmapping that much costs a few milliseconds in a busy
    server, which is why small loads never make one.
    """

    def __init__(self, small: int = SMALL) -> None:
        self.small = small
        self._seen = np.empty(0, dtype=np.int64)  # sorted, while there are few
        self._bits: np.ndarray | None = None
        self._repeated: list[np.ndarray] = []

    def add(self, ids: pl.Series) -> None:
        """Record a chunk of ids (in file order, nulls ignored)."""
        ids = ids.drop_nulls()
        if ids.len() == 0:
            return
        values = ids.to_numpy().astype(np.int64)
        again = ids.is_duplicated().to_numpy() | self._seen_before(values)
        if again.any():
            self._repeated.append(np.unique(values[again]))
        self._remember(values)

    @property
    def repeated(self) -> pl.Series:
        """The ids seen twice or more so far, sorted."""
        found = np.unique(np.concatenate(self._repeated)) if self._repeated else np.empty(0)
        return pl.Series("id", found, dtype=pl.Int64)

    def _seen_before(self, values: np.ndarray) -> np.ndarray:
        if self._bits is None:
            seen: np.ndarray = np.isin(values, self._seen)
        else:
            byte, bit = values >> 3, (1 << (values & 7)).astype(np.uint8)
            seen = (self._bits[byte] & bit) != 0
        return seen

    def _remember(self, values: np.ndarray) -> None:
        if self._bits is None:
            self._seen = np.union1d(self._seen, values)
            if self._seen.size <= self.small:
                return
            self._bits = np.zeros((MAX_ID >> 3) + 1, dtype=np.uint8)
            values, self._seen = self._seen, np.empty(0, dtype=np.int64)
        byte, bit = values >> 3, (1 << (values & 7)).astype(np.uint8)
        np.bitwise_or.at(self._bits, byte, bit)


def line_start_ids(blocks: Iterable[bytes]) -> Iterator[pl.Series]:
    """Per block, the integer each line it completes starts with (see the module's
    docstring); of a line going on into the next block, its first 64 KiB are held
    (a longer row is rejected, ``line_too_long``)."""
    head = b""
    for block in without_bom(blocks):
        data = head + block
        cut = data.rfind(b"\n") + 1
        if cut:
            yield _starting_ids(memoryview(data)[:cut])
        head = data[cut : cut + _HEAD]
    if head:
        yield _starting_ids(memoryview(head + b"\n"))


def _starting_ids(data: memoryview) -> pl.Series:
    """The integers the lines of ``data`` (whole lines) start with, between 1 and
    MAX_ID; a line starting with 1 to 10 digits is read here, the others by regex."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate(([0], ends[:-1] + 1))
    padded = np.concatenate((raw, np.zeros(_DIGITS, dtype=np.uint8)))
    digits = padded[starts[:, None] + np.arange(_DIGITS)] - np.uint8(ord("0"))  # wraps
    is_digit = digits < 10
    run = np.where(is_digit.all(axis=1), _DIGITS, np.argmin(is_digit, axis=1))
    values = np.zeros(len(starts), dtype=np.int64)
    for k in range(_DIGITS):  # Horner's rule over each line's leading digits
        values = np.where(k < run, values * 10 + digits[:, k], values)
    plain = (run > 0) & (run < _DIGITS)
    ids = values[plain & (values >= 1) & (values <= MAX_ID)]
    others = np.flatnonzero(~plain)
    if others.size:
        texts = [
            bytes(data[s : min(e, s + _HEAD)]).decode("utf-8", "replace")
            for s, e in zip(starts[others], ends[others], strict=True)
        ]
        found = pl.Series(texts).str.extract(_LINE_START).str.to_integer(strict=False)
        found = found.filter(found.is_between(1, MAX_ID))
        ids = np.concatenate((ids, found.to_numpy().astype(np.int64)))
    return pl.Series("id", ids, dtype=pl.Int64)


def repeated_ids(chunks: Iterable[pl.Series]) -> pl.Series:
    """The ids that start more than one line of the file (a superset of the ids whose
    rows can be duplicates), from :func:`line_start_ids`."""
    ids = RepeatedIds()
    for chunk in chunks:
        ids.add(chunk)
    return ids.repeated

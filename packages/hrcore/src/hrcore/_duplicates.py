"""Which ids come more than once in a file, found in bounded memory.

A file load first reads the file once for its ids alone (:func:`repeated_ids`):
the rows whose id comes back later are set aside while the others are written
batch by batch as soon as they are staged; the set-aside rows are resolved in SQL
(the last valid one wins) and written last.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from hrcore._specs import MAX_ID

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


def first_field_ids(rows: pl.DataFrame, n_fields: int) -> pl.Series:
    """The id each row starts with, read as validation reads it (trimmed, quotes
    undone, signs and leading zeros allowed); null where there is no integer."""
    from hrcore._validate import split_fields  # the same splitting as validation

    text = pl.col("text")
    plain = rows.filter(~text.str.contains('"', literal=True)).select(
        "line", first=text.str.extract(r"^([^,]*)")
    )
    quoted = rows.filter(text.str.contains('"', literal=True))
    if quoted.height:
        quoted = split_fields(quoted, n_fields).select("line", first="f0")
        plain = pl.concat([plain, quoted]).sort("line")
    number = pl.col("first").str.strip_chars().str.to_integer(strict=False)
    return plain.select(pl.when(number.is_between(1, MAX_ID)).then(number))["first"]


def repeated_ids(chunks: Iterable[pl.DataFrame], n_fields: int) -> pl.Series:
    """The ids that start more than one row of the file (valid rows or not: a superset
    of the ids whose rows can be duplicates)."""
    ids = RepeatedIds()
    for chunk in chunks:
        ids.add(first_field_ids(chunk, n_fields))
    return ids.repeated

"""Which ids come more than once in a file, found while streaming it in bounded memory."""

from __future__ import annotations

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
        self.repeated: set[int] = set()

    def add(self, ids: pl.Series) -> None:
        """Record a chunk of ids (in file order, nulls ignored)."""
        ids = ids.drop_nulls()
        if ids.len() == 0:
            return
        values = ids.to_numpy().astype(np.int64)
        again = ids.is_duplicated().to_numpy() | self._seen_before(values)
        if again.any():
            self.repeated.update(int(v) for v in np.unique(values[again]))
        self._remember(values)

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

"""Which ids come more than once in a file, found while streaming it in bounded memory."""

from __future__ import annotations

import numpy as np
import polars as pl

from hrcore._specs import MAX_ID


class RepeatedIds:
    """Remembers every id seen, in one bit each, and collects those seen twice or more.

    The bitmap covers the whole id range (256 MiB of address space), but it is
    allocated zeroed and lazily by the OS, so only the pages holding seen ids use
    memory: a million dense ids touch about 128 KiB.
    """

    def __init__(self) -> None:
        self._bits = np.zeros((MAX_ID >> 3) + 1, dtype=np.uint8)
        self.repeated: set[int] = set()

    def add(self, ids: pl.Series) -> None:
        """Record a chunk of ids (in file order, nulls ignored)."""
        ids = ids.drop_nulls()
        if ids.len() == 0:
            return
        values = ids.to_numpy().astype(np.int64)
        byte, bit = values >> 3, (1 << (values & 7)).astype(np.uint8)
        again = ((self._bits[byte] & bit) != 0) | ids.is_duplicated().to_numpy()
        if again.any():
            self.repeated.update(int(v) for v in np.unique(values[again]))
        np.bitwise_or.at(self._bits, byte, bit)

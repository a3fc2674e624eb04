"""Repeated ids across the chunks of a file, whether few ids were seen or many."""

from __future__ import annotations

import polars as pl
import pytest
from hrcore._duplicates import SMALL, RepeatedIds


@pytest.mark.parametrize("small", [0, 4, SMALL])
def test_ids_seen_again_in_a_chunk_or_a_later_one_are_repeated(small: int) -> None:
    ids = RepeatedIds(small=small)
    for chunk in ([1, 2, 3], [4, 5, None, 1], [6, 2, 7, 7], [2_147_483_647, 8]):
        ids.add(pl.Series("id", chunk, dtype=pl.Int32))
    assert ids.repeated == {1, 2, 7}
    ids.add(pl.Series("id", [2_147_483_647, 9, 3], dtype=pl.Int32))
    assert ids.repeated == {1, 2, 3, 7, 2_147_483_647}

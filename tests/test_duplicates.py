"""Repeated ids across the chunks of a file, whether few ids were seen or many."""

from __future__ import annotations

import polars as pl
import pytest
from hrcore._duplicates import SMALL, RepeatedIds, first_field_ids, repeated_ids


@pytest.mark.parametrize("small", [0, 4, SMALL])
def test_ids_seen_again_in_a_chunk_or_a_later_one_are_repeated(small: int) -> None:
    ids = RepeatedIds(small=small)
    for chunk in ([1, 2, 3], [4, 5, None, 1], [6, 2, 7, 7], [2_147_483_647, 8]):
        ids.add(pl.Series("id", chunk, dtype=pl.Int32))
    assert ids.repeated.to_list() == [1, 2, 7]
    ids.add(pl.Series("id", [2_147_483_647, 9, 3], dtype=pl.Int32))
    assert ids.repeated.to_list() == [1, 2, 3, 7, 2_147_483_647]


def test_the_first_pass_reads_ids_as_validation_does() -> None:
    rows = pl.DataFrame(
        {
            "line": [1, 2, 3, 4, 5, 6, 7, 8],
            "text": [" 7 ,a", '"7",b', "+007,c", "x,d", "0,e", '"1,2",f', "9", "2147483648,g"],
        }
    )
    assert first_field_ids(rows, 2).to_list() == [7, 7, 7, None, None, None, 9, None]
    assert repeated_ids([rows, rows.head(1)], 2).to_list() == [7]

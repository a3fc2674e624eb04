"""Repeated ids across the chunks of a file, whether few ids were seen or many."""

from __future__ import annotations

import polars as pl
import pytest
from hrcore._duplicates import SMALL, RepeatedIds, line_start_ids, repeated_ids
from hrcore._lines import RowReader
from hrcore._specs import DEPARTMENTS
from hrcore._validate import validate


@pytest.mark.parametrize("small", [0, 4, SMALL])
def test_ids_seen_again_in_a_chunk_or_a_later_one_are_repeated(small: int) -> None:
    ids = RepeatedIds(small=small)
    for chunk in ([1, 2, 3], [4, 5, None, 1], [6, 2, 7, 7], [2_147_483_647, 8]):
        ids.add(pl.Series("id", chunk, dtype=pl.Int32))
    assert ids.repeated.to_list() == [1, 2, 7]
    ids.add(pl.Series("id", [2_147_483_647, 9, 3], dtype=pl.Int32))
    assert ids.repeated.to_list() == [1, 2, 3, 7, 2_147_483_647]


FIRST_PASS_INPUT = (
    b"\xef\xbb\xbf1,a\r\n"  # a byte-order mark, CRLF
    b' 7 ,b\n"7",c\n+007,d\nx,e\n0,f\n"1,2",g\n9\n2147483648,h\n'
    b"\xc2\xa012,i\n"  # a no-break space, as validation strips it
    b'" 13 ",j\n0000000000014,k\n'  # quoted with spaces; more than ten digits
    b'15,"two\n16 lines"\n'  # a quoted field over two lines: 16 is only a line start
    + b"17,"
    + b"x" * 300
    + b"\n"  # a line longer than a block of the test
    + b" " * 300  # padding validation strips, however long
    + b"18,m\n"
    + b"0" * 300
    + b"19,n\n"
    + b'"'
    + b" " * 300
    + b'20",o\n'
)


@pytest.mark.parametrize("block", [1, 7, 64, len(FIRST_PASS_INPUT)])
def test_the_first_pass_finds_every_id_a_row_starts_with(block: int) -> None:
    blocks = [FIRST_PASS_INPUT[i : i + block] for i in range(0, len(FIRST_PASS_INPUT), block)]
    found = pl.concat(list(line_start_ids(blocks)))

    assert sorted(found.to_list()) == [1, 1, 7, 7, 7, 9, *range(12, 21)]
    rows = pl.concat(list(RowReader().rows([FIRST_PASS_INPUT])))
    read = set(validate(rows, DEPARTMENTS, {})["id"].drop_nulls().to_list())
    assert read == {1, 7, 12, 13, 14, 15, 17, 18, 19, 20}  # the ids validation reads: all
    assert repeated_ids([found, pl.Series([17])]).to_list() == [1, 7, 17]

"""Results through the Arrow PyCapsule stream: pyarrow, polars, pandas and DuckDB read them, the
numeric buffers in place."""

import duckdb
import pandas
import polars
import pyarrow


def test_every_consumer_reads_a_result(demo):
    res = demo.query("FUNNEL visit -> add_to_cart -> purchase WITHIN 7d")
    rows = res.fetchall()
    assert pyarrow.table(res).num_rows == len(rows) == 3
    frame = res.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == res.columns and frame["customers"].tolist() == [r[2] for r in rows]
    pl = res.to_polars()
    assert isinstance(pl, polars.DataFrame) and pl["customers"].to_list() == [r[2] for r in rows]
    assert polars.DataFrame(res).shape == (3, len(res.columns))
    assert res.df().equals(frame) and res.pl().equals(pl) and res.arrow().equals(pyarrow.table(res))
    got = duckdb.sql("SELECT step, customers FROM res ORDER BY step").fetchall()
    assert got == [(r[0], r[2]) for r in rows]


def test_numeric_columns_are_not_copied(demo):
    res = demo.query("TREND count PERIOD day")
    table = pyarrow.table(res)
    value = res.columns.index("value")
    # The int64 values pyarrow reads are journeydb's buffer itself.
    assert table.column(value).chunks[0].buffers()[1].address == res._buffer_address(value)
    # And again: every export hands over the same buffers.
    assert pyarrow.table(res).column(value).chunks[0].buffers()[1].address == res._buffer_address(value)


def test_types(demo):
    table = demo.query("TOP CUSTOMERS BY first_seen LIMIT 3").to_arrow()
    assert table.schema.field("value").type == pyarrow.timestamp("us", tz="UTC")
    assert table.schema.field("rank").type == pyarrow.int64()
    table = demo.query("FUNNEL visit -> purchase WITHIN 7d").to_arrow()
    assert table.schema.field("conversion_from_first").type == pyarrow.float64()
    assert table.schema.field("event").type == pyarrow.string()

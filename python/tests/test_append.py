"""Appends from every producer, all-or-nothing; bad input raises a clear exception and changes
nothing; imports, exports and maintenance calls."""

import datetime
import os
import threading
import warnings

import duckdb
import pandas
import polars
import pyarrow
import pytest

import journeydb

UTC = datetime.timezone.utc


def frame(n=1000, start=0):
    return pandas.DataFrame(
        {
            "customer": [f"c{i % 50}" for i in range(start, start + n)],
            "ts": pandas.to_datetime([1_767_225_600 + i * 60 for i in range(start, start + n)], unit="s", utc=True),
            "event": ["visit" if i % 3 else "purchase" for i in range(start, start + n)],
            "amount": [float(i) for i in range(start, start + n)],
        }
    )


def count(con):
    return con.query("TREND count PERIOD month").to_arrow().column("value").to_pylist()


def test_every_producer_appends(empty):
    assert empty.append(frame(300)) == 300
    assert empty.append(polars.from_pandas(frame(200, 300))) == 200
    assert empty.append(pyarrow.table(frame(100, 500))) == 100
    relation = duckdb.sql("SELECT 'd' || i::VARCHAR AS customer, TIMESTAMPTZ '2026-01-05 00:00:00+00' + INTERVAL (i) MINUTE AS ts, 'visit' AS event FROM range(50) t(i)")
    assert empty.append(relation) == 50
    rows = [{"customer": "7", "ts": datetime.datetime(2026, 1, 3, tzinfo=UTC), "event": "visit", "plan": "pro"},
            {"customer": "x", "ts": datetime.datetime(2026, 1, 4, 12, tzinfo=UTC), "event": "purchase", "amount": 2}]
    assert empty.append(rows) == 2
    assert sum(count(empty)) == 652
    res = empty.query("TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 3").fetchall()
    frames = pandas.concat([frame(300), frame(200, 300), frame(100, 500)])
    sums = frames[frames.event == "purchase"].groupby("customer").amount.sum()
    want = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:3]
    assert [(r[1], r[2]) for r in res] == want
    # An integer customer id is stored as its decimal text; a profile-less property is a property.
    timeline = empty.query("TIMELINE '7'")
    assert timeline.fetchall()[0][timeline.columns.index("event")] == "visit"


def test_integer_timestamps_say_which_unit_was_inferred(empty):
    data = pyarrow.table({"customer": ["a", "b"], "ts": [1_767_225_600, 1_767_225_660], "event": ["visit", "visit"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert empty.append(data) == 2
    assert any("second" in str(w.message) for w in caught), [str(w.message) for w in caught]
    timeline = empty.query("TIMELINE 'b'")
    assert timeline.fetchall()[0][timeline.columns.index("ts")] == datetime.datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert empty.append(data, ts_unit="s") == 2


def test_bad_input_changes_nothing(empty):
    empty.append(frame(10))
    before = count(empty)
    missing = pyarrow.table({"customer": ["a"], "event": ["visit"]})
    with pytest.raises(journeydb.ImportError) as caught:
        empty.append(missing)
    assert caught.value.file == "<arrow stream>" and "ts" in str(caught.value)
    bad_row = frame(5)
    bad_row.loc[3, "event"] = ""
    with pytest.raises(journeydb.ImportError) as caught:
        empty.append(bad_row)
    assert caught.value.line == 4 and caught.value.column_name == "event"
    with pytest.raises(journeydb.Error, match="row 2, key `amount`"):
        empty.append([{"customer": "a", "ts": datetime.datetime(2026, 1, 1, tzinfo=UTC), "event": "v", "amount": 1.0},
                      {"customer": "a", "ts": datetime.datetime(2026, 1, 1, tzinfo=UTC), "event": "v", "amount": "x"}])
    with pytest.raises(journeydb.Error, match="without a time zone"):
        empty.append([{"customer": "a", "ts": datetime.datetime(2026, 1, 1), "event": "v"}])
    with pytest.raises(journeydb.Error, match="row 2, key `customer`: a str value in a column of int values"):
        empty.append([{"customer": 7, "ts": datetime.datetime(2026, 1, 1, tzinfo=UTC), "event": "v"},
                      {"customer": "x", "ts": datetime.datetime(2026, 1, 1, tzinfo=UTC), "event": "v"}])
    with pytest.raises(journeydb.Error, match="not one dict"):
        empty.append({"customer": "a"})
    with pytest.raises(journeydb.Error, match="not int"):
        empty.append(5)
    with pytest.raises(journeydb.Error, match="unknown import option"):
        empty.append(frame(1), tz_unit="s")
    assert count(empty) == before


def test_closed_and_read_only_handles(tmp_path):
    path = tmp_path / "db"
    con = journeydb.connect(path)
    con.append(frame(10))
    con.close()
    assert con.closed
    with pytest.raises(journeydb.StorageError, match="closed"):
        con.query("TREND count PERIOD month")
    reader = journeydb.connect(path, read_only=True)
    assert reader.read_only
    with pytest.raises(journeydb.StorageError, match="read-only"):
        reader.append(frame(1))
    with pytest.raises(journeydb.Error):
        reader.query("FORGET CUSTOMER 'c1'")
    assert sum(count(reader)) == 10
    with pytest.raises(journeydb.StorageError):
        journeydb.connect(tmp_path / "missing", create=False)


def test_import_export_and_maintenance(empty, tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text("customer,ts,event,amount\na,2026-01-01T00:00:00Z,visit,\na,2026-01-02T00:00:00Z,purchase,9.5\n")
    seen = []
    done = empty.import_file(csv, progress=lambda done_bytes, rows: seen.append(rows))
    assert done["events"] == 2 and done["skipped"] == [] and done["ts_inferred"] is None
    assert seen and all(0 <= rows <= 2 for rows in seen)
    def failing(done_bytes, rows):
        raise ValueError("stop")
    with pytest.raises(ValueError, match="stop"):
        empty.import_file(csv, progress=failing)
    # The exception came after the import, which was not stopped: 4 events now.
    bad = tmp_path / "bad.csv"
    bad.write_text("customer,ts,event\na,2026-01-01T00:00:00Z,visit\nb,yesterday,visit\n")
    with pytest.raises(journeydb.ImportError) as caught:
        empty.import_file(bad)
    assert (caught.value.file, caught.value.line, caught.value.column) == (str(bad), 3, 2)
    assert empty.import_file(bad, skip_bad=1)["events"] == 1
    out = tmp_path / "out.parquet"
    assert empty.export(out) == 5
    import pyarrow.parquet

    assert pyarrow.parquet.read_table(out).num_rows == 5
    assert empty.stats()["events"] == 5
    assert empty.forget("a") == 5
    assert empty.compact() >= 0
    assert empty.stats()["events"] == 0 and empty.verify() == 0


def test_two_threads_query_at_once(demo):
    statement = "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d"
    want = demo.query(statement).fetchall()
    results, errors = [], []

    def run():
        try:
            for _ in range(20):
                results.append(demo.query(statement).fetchall())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 40 and all(r == want for r in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_an_error(demo):
    pid = os.fork()
    if pid == 0:
        try:
            demo.query("TREND count PERIOD month")
            os._exit(1)
        except journeydb.StorageError as e:
            os._exit(0 if "forked child" in str(e) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert demo.query("TREND count PERIOD month").fetchall()


def test_identity_links(empty):
    empty.append([
        {"customer": "anon-1", "ts": "2026-01-01T00:00:00Z", "event": "visit"},
        {"customer": "alice", "ts": "2026-01-01T01:00:00Z", "event": "purchase"},
        {"customer": "bob", "ts": "2026-01-01T02:00:00Z", "event": "visit"},
    ])
    funnel = "FUNNEL visit -> purchase WITHIN 1d"
    assert [row[2] for row in empty.query(funnel).fetchall()] == [2, 0]
    assert empty.link([("anon-1", "alice")]) == 1
    assert empty.link([("anon-1", "alice")]) == 0
    assert [row[2] for row in empty.query(funnel).fetchall()] == [2, 1]
    assert empty.query("LINKS").fetchall() == [("anon-1", "alice")]
    with pytest.raises(journeydb.StorageError, match="never links"):
        empty.link([("bob", "alice"), ("undefined", "alice")])
    assert empty.query("LINKS 'bob'").fetchall() == []
    assert empty.unlink("anon-1") is True
    assert empty.unlink("anon-1") is False
    assert [row[2] for row in empty.query(funnel).fetchall()] == [2, 0]

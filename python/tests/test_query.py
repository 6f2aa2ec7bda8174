"""Every canonical statement answers the same rows through Python — tuples, the Arrow stream, and
`to_json` — as the shell's `--format json`; results, snapshots and their errors."""

import datetime
import json
import subprocess

import pyarrow
import pytest

import journeydb

# The statements of the demo tour and of the issues' canonical lists (issues 27, 28, 29).
CANONICAL = [
    "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
    "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 6",
    "TREND uniq PERIOD day BY channel",
    "TRANSITIONS",
    "PATHS AFTER visit STEPS 3 TOP 6 WITHIN SESSION",
    "HEATMAP OF visit",
    "TREND nps(score) OF survey PERIOD week",
    "CORRELATE FUNNEL visit -> purchase WITHIN 7d",
    "CHANGES uniq OF purchase PERIOD month BY channel",
    "FUNNEL visit -> purchase WITHIN 7d BY customer.plan",
    "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 6 BY COHORT mobile_first, repeat_buyers",
    "TOP CUSTOMERS BY sum(amount) OF purchase LIMIT 10",
    "TOP CUSTOMERS BY first_seen LIMIT 5",
    "TREND uniq PERIOD week BY channel, customer.country",
    "FUNNEL visit -> purchase WITHIN 7d PERIOD week",
    "RFM OF purchase VALUE amount",
    "PATHS BEFORE purchase STEPS 2 TOP 10 COLLAPSE REPEATS",
    "ATTRIBUTION purchase VALUE amount BY channel MODEL linear LOOKBACK 30d",
    "TREND sessions PERIOD day",
    "STAGES PERIOD month",
    "LIFECYCLE OF visit PERIOD week",
    "STICKINESS OF visit PERIOD week",
    "TIMELINE '42' LIMIT 20",
    "EXPLAIN FUNNEL visit -> purchase WITHIN 7d FOR CUSTOMER '42'",
    "CUSTOMERS IN COHORT repeat_buyers LIMIT 50",
    "FIT purchase VALUE amount UNIT week FROM '2026-01-01' TO '2026-03-01'",
    "PREDICT purchase UNIT week FROM '2026-01-01' TO '2026-03-01' HORIZON 4 LIMIT 20",
]


def shell_json(shell, path, statement):
    out = subprocess.run([shell, path, "--format", "json", "-c", statement], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def as_json_value(value):
    """A Python value as the shell's JSON writes it (instants compared as instants)."""
    if isinstance(value, datetime.datetime):
        return value
    return value


def from_json(value, like):
    if isinstance(like, datetime.datetime) and isinstance(value, str):
        return datetime.datetime.fromisoformat(value)
    return value


@pytest.mark.parametrize("statement", CANONICAL)
def test_rows_equal_the_shells_json(shell, demo_path, statement):
    want = shell_json(shell, demo_path, statement)
    with journeydb.connect(demo_path, read_only=True) as con:
        res = con.query(statement)
    assert res.statement == statement
    rows = res.fetchall()
    assert len(rows) == len(want) == len(res)
    # Tuples, in column order.
    for row, expected in zip(rows, want):
        assert list(expected) == res.columns
        assert [from_json(expected[c], v) for c, v in zip(res.columns, row)] == list(row)
    # The Arrow stream: the same values (timestamps as timestamp[us, UTC]).
    table = pyarrow.table(res)
    assert table.column_names == res.columns
    for field in table.schema:
        if pyarrow.types.is_timestamp(field.type):
            assert field.type == pyarrow.timestamp("us", tz="UTC")
    # A struct (TIMELINE's properties) has every field in Arrow, the row's own ones in JSON.
    def members(value):
        return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value

    assert [tuple(members(v) for v in r.values()) for r in table.to_pylist()] == rows
    # to_json is the shell's text exactly.
    assert json.loads(res.to_json()) == want


def test_errors_carry_the_place_and_the_caret(demo):
    with pytest.raises(journeydb.QueryError) as caught:
        demo.query("FUNNEL visit -> purchse WITHIN 7d\nWHERE amount >")
    err = caught.value
    assert (err.line, err.column) == (2, 15)
    assert "^" in err.caret and "line 2" in err.caret
    assert isinstance(err, journeydb.Error)
    with pytest.raises(journeydb.QueryError) as caught:
        demo.query("FUNNEL visit -> purchase WITHIN 7d BY nosuchprop")
    assert caught.value.line == 1 and caught.value.column > 30
    assert "did you mean" in str(caught.value) or caught.value.help is None or caught.value.help


def test_unknown_event_is_a_warning(demo):
    res = demo.query("TREND count OF nosuchevent PERIOD month")
    assert res.warnings and "nosuchevent" in res.warnings[0]


def test_snapshot_does_not_see_later_writes(empty):
    empty.append([{"customer": "a", "ts": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), "event": "visit"}])
    snap = empty.snapshot()
    empty.append([{"customer": "b", "ts": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc), "event": "visit"}])
    assert snap.query("TREND uniq PERIOD month").fetchall()[0][1] == 1
    assert empty.query("TREND uniq PERIOD month").fetchall()[0][1] == 2
    assert len(snap) == 1


def test_html_shows_the_chart(demo):
    for statement in ["FUNNEL visit -> purchase WITHIN 7d", "RETENTION visit RETURN visit PERIOD week PERIODS 4",
                      "TREND uniq PERIOD week BY channel", "STAGES PERIOD month", "HEATMAP OF visit", "TRANSITIONS"]:
        html = demo.query(statement)._repr_html_()
        assert "<svg" in html and "<table>" in html, statement
    html = demo.query("TREND uniq PERIOD week")._repr_html_()
    assert "<polyline" in html


def test_timeline_properties_are_one_typed_struct(demo):
    res = demo.query("TIMELINE '42'")
    assert res.columns == ["ts", "event", "stage", "properties"]
    fields = pyarrow.table(res).schema.field("properties").type
    assert pyarrow.types.is_struct(fields)
    assert fields.field("channel").type == pyarrow.string()
    assert fields.field("amount").type == pyarrow.float64()
    rows = res.fetchall()
    bought = [r[3] for r in rows if r[1] == "purchase"]
    assert bought and all(isinstance(p["amount"], float) and "channel" in p for p in bought)
    # A visit carries no amount: the key is absent, as in the JSON object.
    assert all("amount" not in r[3] for r in rows if r[1] == "visit")

"""Issue 27's canonical statements (and issue 28's PATHS, ATTRIBUTION, sessions, HEATMAP and NPS, issue 29's CORRELATE and CHANGES) checked against an independent evaluation in DuckDB.

The data is the shell demo's (`demo::demo_rows`: `demo::generate`'s journeys made consistent, with
browsing sessions, a daily rhythm and post-purchase surveys with an NPS score; the timing rounds
keep `demo::generate`'s rows). For each data shape (`demo`: by customer, one compacted segment;
`time`: the same events as real logs arrive — timestamps cut to ten minutes so that many of a
customer's events tie, committed in time order into several segments, the last ones unflushed),
`compare_runner canonical` builds a journeydb database with customer profiles, runs the
statements verbatim (plus the members of the two cohorts they create) and writes the events and every
profile write out; this script loads those files into DuckDB, answers each statement in SQL
written from docs/QUERY.md, and compares. Exit status 1 when any answer differs.

    benches/compare/run --canonical --sizes 20000        # what CI runs
    benches/compare/run --canonical --sizes 1000000

What is compared (rows whose counts are all zero are dropped on both sides: journeydb lists
empty buckets and cells, SQL group-bys leave them out): cohort sizes and members; the funnels'
customers per step (per cohort; per week of entry); retention's cells (cohort, period, size,
customers; not the `mean` rows); TOP's rank, customer, value; TREND's (week, channel, country,
customers); RFM's customers, share, mean recency, frequency, monetary and mean scores per
segment. Floats agree to 1e-9 relative.

Then issue 29's FIT and PREDICT statements on the CDNOW sample (`compare_runner cdnow`), checked
by `cdnow.py`: summaries in SQL, the models' formulas in plain Python, FIT's parameters shown to
be the likelihood's maximum and the published values.
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys

import duckdb

import cdnow

HERE = os.path.dirname(os.path.abspath(__file__))
WEEK = "(t // 86400000000 + 3) // 7"  # Monday-based weeks since 1969-12-29 (UTC)


def week_label(w):
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(w) * 7 - 3)).isoformat()


def load(con, work):
    con.execute(f"""
        CREATE OR REPLACE TABLE events AS
        SELECT customer, epoch_us(ts) AS t, event, stage, channel, amount, score
        FROM read_parquet('{work}/events.parquet')""")
    # Every profile write in commit order; a property's value is its latest write that set it
    # (greatest ts, ties by commit order), docs/QUERY.md "Customer profiles".
    con.execute(f"""
        CREATE OR REPLACE TABLE writes AS
        SELECT * FROM read_csv('{work}/profiles.csv', header = true,
            columns = {{'seq': 'BIGINT', 'customer': 'VARCHAR', 'ts_us': 'BIGINT',
                        'country': 'VARCHAR', 'plan': 'VARCHAR'}})""")
    con.execute("""
        CREATE OR REPLACE TABLE country AS
        SELECT customer, country FROM writes WHERE country IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY customer ORDER BY ts_us DESC, seq DESC) = 1""")
    con.execute("""
        CREATE OR REPLACE TABLE repeat_buyers AS
        SELECT customer FROM events WHERE event = 'purchase' GROUP BY customer HAVING count(*) >= 2""")
    # FIRST visit WHERE channel = 'mobile': any of the tied earliest visits is mobile.
    con.execute("""
        CREATE OR REPLACE TABLE mobile_first AS
        WITH v AS (SELECT customer, t, channel FROM events WHERE event = 'visit'),
        f AS (SELECT customer, min(t) AS t0 FROM v GROUP BY customer)
        SELECT DISTINCT v.customer FROM v JOIN f ON v.customer = f.customer AND v.t = f.t0
        WHERE v.channel = 'mobile'""")


# Three-step ordered funnel, TIES ALLOW (tied events in step order: a step's event may share
# its predecessor's timestamp), WITHIN 7d inclusive, over the events of `members`: for each
# add_to_cart, lv = the latest visit at or before it; for each purchase, m = the latest lv among
# add_to_carts at or before it within 7 days of their lv.
FUNNEL3 = """
WITH e AS (SELECT * FROM events WHERE customer IN (SELECT customer FROM {members})
           AND event IN ('visit', 'add_to_cart', 'purchase')),
f AS (
  SELECT customer, t, event,
         max(CASE WHEN event = 'visit' THEN t END) OVER (
           PARTITION BY customer ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS lv
  FROM e
), c AS (
  SELECT customer, t, event, lv,
         max(CASE WHEN event = 'add_to_cart' AND t - lv <= 604800000000 THEN lv END) OVER (
           PARTITION BY customer ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS m
  FROM f
), lvl AS (
  SELECT customer,
         max(CASE WHEN event = 'purchase' AND t - m <= 604800000000 THEN 3
                  WHEN event = 'add_to_cart' AND t - lv <= 604800000000 THEN 2
                  WHEN event = 'visit' THEN 1 ELSE 0 END) AS level
  FROM c GROUP BY customer
)
SELECT s.step, count(*) FROM lvl JOIN (VALUES (1), (2), (3)) AS s(step) ON lvl.level >= s.step
GROUP BY s.step"""

# FUNNEL visit -> purchase WITHIN 7d PERIOD week: per week, the customers with a visit in it,
# and those of them with a purchase at or after one of those visits, at most 7 days later.
FUNNEL_WEEKS = f"""
WITH e AS (SELECT customer, t, event FROM events WHERE event IN ('visit', 'purchase')),
n AS (
  SELECT customer, t, event,
         min(CASE WHEN event = 'purchase' THEN t END) OVER (
           PARTITION BY customer ORDER BY t RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS np
  FROM e
), per AS (
  SELECT customer, {WEEK} AS w, bool_or(np - t <= 604800000000) AS converted
  FROM n WHERE event = 'visit' GROUP BY customer, w
)
SELECT w, 1, count(*) FROM per GROUP BY w
UNION ALL SELECT w, 2, count(*) FILTER (WHERE converted) FROM per GROUP BY w"""

RETENTION = """
WITH p AS (SELECT customer, year(make_timestamp(t)) * 12 + month(make_timestamp(t)) - 1 AS mo
           FROM events WHERE event = 'purchase' AND customer IN (SELECT customer FROM repeat_buyers)),
c AS (SELECT customer, min(mo) AS cm FROM p GROUP BY customer),
size AS (SELECT cm, count(*) AS n FROM c GROUP BY cm),
back AS (SELECT DISTINCT c.customer, c.cm, p.mo - c.cm AS k FROM p JOIN c USING (customer)
         WHERE p.mo - c.cm BETWEEN 1 AND 12)
SELECT cm, 0, n, n FROM size
UNION ALL SELECT back.cm, k, size.n, count(*) FROM back JOIN size USING (cm) GROUP BY back.cm, k, size.n"""

TOP = """
WITH s AS (SELECT customer, list_sum(list_sort(list(amount))) AS v FROM events
           WHERE event = 'purchase' AND amount IS NOT NULL GROUP BY customer)
SELECT rank() OVER (ORDER BY v DESC), customer, v FROM s ORDER BY v DESC, customer LIMIT 10"""

TREND = f"""
SELECT {WEEK} AS w, coalesce(e.channel, '(null)'), coalesce(c.country, '(null)'),
       count(DISTINCT e.customer)
FROM events e LEFT JOIN country c USING (customer) GROUP BY ALL"""

# RFM: scores 1 + floor(5 w / N), w = customers with a strictly worse measure; segments from the
# (R, F) pair; recency in days to the latest event of the database.
RFM = """
WITH m AS (
  SELECT customer, max(t) AS r0, count(*) AS f0,
         coalesce(list_sum(list_sort(list(amount) FILTER (WHERE amount IS NOT NULL))), 0) AS m0
  FROM events WHERE event = 'purchase' GROUP BY customer
), n AS (SELECT count(*) AS n FROM m),
s AS (
  SELECT m.*, 1 + (5 * (rank() OVER (ORDER BY r0) - 1)) // n.n AS r,
         1 + (5 * (rank() OVER (ORDER BY f0) - 1)) // n.n AS f,
         1 + (5 * (rank() OVER (ORDER BY m0) - 1)) // n.n AS mm
  FROM m, n
), seg AS (
  SELECT s.*, CASE
    WHEN r = 5 AND f >= 4 THEN 'champions'
    WHEN r IN (3, 4) AND f >= 4 THEN 'loyal_customers'
    WHEN r >= 4 AND f IN (2, 3) THEN 'potential_loyalists'
    WHEN r = 5 AND f = 1 THEN 'new_customers'
    WHEN r = 4 AND f = 1 THEN 'promising'
    WHEN r = 3 AND f = 3 THEN 'need_attention'
    WHEN r = 3 AND f <= 2 THEN 'about_to_sleep'
    WHEN r <= 2 AND f = 5 THEN 'cant_lose'
    WHEN r <= 2 AND f IN (3, 4) THEN 'at_risk'
    ELSE 'hibernating' END AS segment
  FROM s
)
SELECT segment, count(*), count(*) / any_value(n.n),
       avg(((SELECT max(t) FROM events) - r0) / 86400000000.0), avg(f0), avg(m0), avg(r), avg(f), avg(mm)
FROM seg, n GROUP BY segment"""


def num(x):
    return None if x is None else float(x)


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def same(got, want):
    if len(got) != len(want):
        return False
    return all(len(g) == len(w) and all(close(x, y) for x, y in zip(g, w)) for g, w in zip(got, want))


def rows_of(answer):
    return [dict(zip(answer["columns"], r)) for r in answer["rows"]]


# PATHS (docs/QUERY.md): events in time order, ties with the anchor's event first (AFTER) or
# last (BEFORE), then by name; the anchor is the first such event; all paths counted here, the
# top 10 picked in Python (most customers, then the path node by node).
PATHS_AFTER = """
WITH o AS (SELECT customer, event, row_number() OVER (
             PARTITION BY customer ORDER BY t, CASE WHEN event = 'visit' THEN 0 ELSE 1 END, event) AS n
           FROM events),
a AS (SELECT customer, min(n) AS n0 FROM o WHERE event = 'visit' GROUP BY customer),
p AS (SELECT o.customer, string_agg(o.event, ' > ' ORDER BY o.n) AS path
      FROM o JOIN a ON o.customer = a.customer AND o.n BETWEEN a.n0 AND a.n0 + 3 GROUP BY o.customer)
SELECT path, count(*) FROM p GROUP BY path"""

# BEFORE purchase STEPS 2 COLLAPSE REPEATS: the events up to the first purchase, consecutive
# repeats dropped, the last three kept.
PATHS_BEFORE = """
WITH o AS (SELECT customer, event, row_number() OVER (
             PARTITION BY customer ORDER BY t, CASE WHEN event = 'purchase' THEN 1 ELSE 0 END, event) AS n
           FROM events),
a AS (SELECT customer, min(n) AS n0 FROM o WHERE event = 'purchase' GROUP BY customer),
b AS (SELECT o.customer, o.event, o.n FROM o JOIN a ON o.customer = a.customer WHERE o.n <= a.n0),
c AS (SELECT *, lag(event) OVER (PARTITION BY customer ORDER BY n) AS prev FROM b),
d AS (SELECT customer, event, n, row_number() OVER (PARTITION BY customer ORDER BY n DESC) AS back
      FROM c WHERE prev IS NULL OR prev <> event),
p AS (SELECT customer, string_agg(event, ' > ' ORDER BY n) AS path FROM d WHERE back <= 3 GROUP BY customer)
SELECT path, count(*) FROM p GROUP BY path"""


# ATTRIBUTION (docs/QUERY.md): touches are the customer's other events with a channel, from 30
# days before the purchase through its instant; each purchase's billion units and its cents
# are split by the largest remainder (ties: the channel first in text order). Rows: (channel,
# units, cents).
ATTRIBUTION = """
WITH e AS (SELECT row_number() OVER () AS id, customer, t, event, channel, amount FROM events),
c AS (SELECT id, customer, t, CAST(coalesce(round(amount * 100), 0) AS HUGEINT) AS cents
      FROM e WHERE event = 'purchase'),
touch AS (SELECT c.id AS cid, e.t, e.channel FROM c JOIN e ON e.customer = c.customer AND e.id <> c.id
          AND e.t <= c.t AND e.t >= c.t - 30 * 86400000000 AND e.channel IS NOT NULL),
w AS ({weights}),
s AS (SELECT w.cid, w.channel, w.k, sum(w.k) OVER (PARTITION BY w.cid) AS n, abs(c.cents) AS whole,
             sign(c.cents) AS sgn FROM w JOIN c ON c.id = w.cid),
parts AS (SELECT cid, channel, sgn,
            (k * 1000000000) // n AS u, (k * 1000000000) % n AS ur, (k * whole) // n AS v, (k * whole) % n AS vr,
            whole FROM s),
ranked AS (SELECT *,
            1000000000 - sum(u) OVER (PARTITION BY cid) AS ushort,
            whole - sum(v) OVER (PARTITION BY cid) AS vshort,
            row_number() OVER (PARTITION BY cid ORDER BY ur DESC, channel) AS upos,
            row_number() OVER (PARTITION BY cid ORDER BY vr DESC, channel) AS vpos FROM parts),
credited AS (SELECT channel, u + CASE WHEN upos <= ushort THEN 1 ELSE 0 END AS units,
                    sgn * (v + CASE WHEN vpos <= vshort THEN 1 ELSE 0 END) AS cents FROM ranked
             UNION ALL
             SELECT '(none)', 1000000000, cents FROM c WHERE id NOT IN (SELECT cid FROM touch))
SELECT channel, sum(units), sum(cents) FROM credited GROUP BY channel
HAVING sum(units) <> 0 OR sum(cents) <> 0"""
# last: the latest touch (ties: the greatest channel) has weight 1; linear: touches per channel.
LAST_WEIGHTS = """SELECT cid, channel, 1 AS k FROM (SELECT cid, channel,
    row_number() OVER (PARTITION BY cid ORDER BY t DESC, channel DESC) AS r FROM touch) WHERE r = 1"""
LINEAR_WEIGHTS = "SELECT cid, channel, count(*) AS k FROM touch GROUP BY cid, channel"


# TREND sessions PERIOD day (docs/QUERY.md, Sessions): a customer's events in time order, a new
# session after a gap of more than 30 minutes, counted on the UTC day of its first event.
SESSIONS = """
WITH o AS (SELECT t, lag(t) OVER (PARTITION BY customer ORDER BY t) AS prev FROM events)
SELECT t // 86400000000 AS d, count(*) FROM o WHERE prev IS NULL OR t - prev > 1800000000 GROUP BY d"""

# HEATMAP OF visit: UTC weekday (1 = Monday) and hour; events and distinct customers.
HEATMAP = """
SELECT isodow(make_timestamp(t)) AS wd, hour(make_timestamp(t)) AS h, count(*), count(DISTINCT customer)
FROM events WHERE event = 'visit' GROUP BY wd, h"""

# TREND nps(score) OF survey PERIOD month: per UTC month, the responses' promoters (9-10),
# passives (7-8) and detractors (0-6); value and interval computed in Python from the counts as
# docs/QUERY.md states them.
NPS = """
SELECT strftime(make_timestamp(t), '%Y-%m-01') AS m, count(*) FILTER (score >= 9), count(*) FILTER (score BETWEEN 7 AND 8),
       count(*) FILTER (score <= 6), count(*)
FROM events WHERE event = 'survey' AND score IS NOT NULL GROUP BY m"""


# CORRELATE FUNNEL visit -> purchase WITHIN 7d (docs/QUERY.md, CORRELATE): converted customers'
# window from the latest visit of the earliest completing purchase to that purchase; dropped ones'
# from their first visit to 7 days after; features: non-step event names and channel values of
# the window's events, once per customer. Rows: (kind, name, value, converted, dropped), and the
# totals of converted and dropped customers.
CORRELATE_WINDOWS = """
WITH v AS (SELECT customer, t FROM events WHERE event = 'visit'),
p AS (SELECT customer, t FROM events WHERE event = 'purchase'),
done AS (SELECT p.customer, min(p.t) AS e FROM p JOIN v ON v.customer = p.customer AND v.t <= p.t
         AND p.t - v.t <= 604800000000 GROUP BY p.customer),
conv AS (SELECT d.customer, max(v.t) AS s, d.e FROM done d JOIN v ON v.customer = d.customer AND v.t <= d.e
         AND d.e - v.t <= 604800000000 GROUP BY d.customer, d.e),
dropped AS (SELECT customer, min(t) AS s, min(t) + 604800000000 AS e FROM v
            WHERE customer NOT IN (SELECT customer FROM done) GROUP BY customer)
SELECT customer, s, e, true AS converted FROM conv UNION ALL SELECT customer, s, e, false FROM dropped"""
CORRELATE = """
WITH w AS ({windows}),
f AS (SELECT DISTINCT w.customer, w.converted, 'event' AS kind, x.event AS name, NULL::VARCHAR AS value
      FROM w JOIN events x ON x.customer = w.customer AND x.t BETWEEN w.s AND w.e
      WHERE x.event NOT IN ('visit', 'purchase')
      UNION
      SELECT DISTINCT w.customer, w.converted, 'property', 'channel', x.channel
      FROM w JOIN events x ON x.customer = w.customer AND x.t BETWEEN w.s AND w.e WHERE x.channel IS NOT NULL)
SELECT kind, name, value, count(*) FILTER (converted), count(*) FILTER (NOT converted) FROM f GROUP BY ALL"""


# CHANGES uniq OF purchase PERIOD month BY channel (docs/QUERY.md, CHANGES): per UTC month and
# channel, the purchasing customers and their shares (a customer who bought on j channels in a
# month counts 1/j on each); the months' distinct purchasers. Changes, contributions and the
# month before the data's first are computed in Python.
CHANGES_SHARES = """
WITH cg AS (SELECT DISTINCT customer, strftime(make_timestamp(t), '%Y-%m') AS m, coalesce(channel, '(null)') AS g
            FROM events WHERE event = 'purchase'),
j AS (SELECT customer, m, count(*) AS j FROM cg GROUP BY customer, m)
SELECT cg.m, cg.g, count(*), sum(1.0 / j.j) FROM cg JOIN j USING (customer, m) GROUP BY cg.m, cg.g"""
CHANGES_TOTALS = """
SELECT strftime(make_timestamp(t), '%Y-%m') AS m, count(DISTINCT customer) FROM events WHERE event = 'purchase' GROUP BY m"""
CHANGES_SPAN = "SELECT strftime(make_timestamp(min(t)), '%Y-%m'), strftime(make_timestamp(max(t)), '%Y-%m') FROM events"


def changes_rows(shares, totals, span):
    """(bucket, group, value, previous, change, contribution, total_change) of every reported
    month, from the month of the first event to that of the last, each against the month before."""
    index = lambda m: int(m[:4]) * 12 + int(m[5:7]) - 1  # noqa: E731
    cells = {(index(m), g): (int(n), float(s)) for m, g, n, s in shares}
    total = {index(m): int(n) for m, n in totals}
    out = []
    for k in range(index(span[0]), index(span[1]) + 1):
        total_change = total.get(k, 0) - total.get(k - 1, 0)
        for g in sorted({g for (m, g) in cells if m in (k, k - 1)}):
            (n, s), (n0, s0) = cells.get((k, g), (0, 0.0)), cells.get((k - 1, g), (0, 0.0))
            contribution = (s - s0) / total_change if total_change else None
            out.append((f"{k // 12:04d}-{k % 12 + 1:02d}-01", g, n, n0, n - n0, contribution, total_change))
    return out


def odds_and_p(a, b, c, d):
    """The odds ratio (0.5 added when a cell is 0) and the p-value (Fisher two-sided with a cell
    below 5, with exact integer probabilities; else the G-test's chi-square tail)."""
    shift = 0.5 if 0 in (a, b, c, d) else 0.0
    odds = ((a + shift) * (d + shift)) / ((b + shift) * (c + shift))
    if min(a, b, c, d) < 5:
        r1, c1, n = a + b, a + c, a + b + c + d
        prob = lambda x: math.comb(r1, x) * math.comb(n - r1, c1 - x)  # noqa: E731
        observed = prob(a)
        lo, hi = max(0, c1 - (c + d)), min(r1, c1)
        total = sum(prob(x) for x in range(lo, hi + 1) if prob(x) <= observed * (1 + 1e-7))
        p = min(1.0, total / math.comb(n, c1))
    else:
        n = a + b + c + d
        cells = [(a, (a + b) * (a + c) / n), (b, (a + b) * (b + d) / n), (c, (c + d) * (a + c) / n), (d, (c + d) * (b + d) / n)]
        g = 2 * sum(o * math.log(o / e) for o, e in cells if o)
        p = math.erfc(math.sqrt(max(g, 0.0) / 2))
    return odds, p


def nps_row(month, promoters, passives, detractors, n):
    p, d = promoters / n, detractors / n
    value = 100 * (p - d)
    half = 1.96 * math.sqrt(100 * 100 * (p + d - (p - d) ** 2)) / math.sqrt(n)
    return (month, value, promoters, passives, detractors, n, max(-100.0, value - half), min(100.0, value + half))


def day_label(d):
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(d))).isoformat()


def top_paths(rows, n=10):
    """(rank, path, customers) of the first n paths: most customers first, ties by path node by
    node; SQL's RANK()."""
    ranked = sorted(((p, int(c)) for p, c in rows), key=lambda r: (-r[1], r[0].split(" > ")))[:n]
    return [(next(i for i, r in enumerate(ranked) if r[1] == c) + 1, p, c) for p, c in ranked]


def checks(con, answers):
    """(name, journeydb rows, DuckDB rows), each normalised and sorted."""
    a = {x["text"]: x for x in answers}
    by_text = [x["text"] for x in answers]
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    out = []
    for name in ("repeat_buyers", "mobile_first"):
        size = rows_of(a[by_text[0 if name == "repeat_buyers" else 1]])[0]["customers"]
        members = sorted(r["customer"] for r in rows_of(a[f"CUSTOMERS IN COHORT {name} LIMIT 100000000"]))
        want = sorted(r[0] for r in q(f"SELECT customer FROM {name}"))
        out.append((f"CREATE COHORT {name} (size)", [(size,)], [(len(want),)]))
        out.append((f"CREATE COHORT {name} (members)", [(m,) for m in members], [(m,) for m in want]))
    got = sorted((r["group"], r["step"], r["customers"]) for r in rows_of(answers[2]) if r["customers"])
    want = sorted((g, int(s), int(n)) for g in ("mobile_first", "repeat_buyers")
                  for s, n in q(FUNNEL3.format(members=g)) if n)
    out.append((answers[2]["text"], got, want))
    got = sorted((r["cohort"], r["period"], r["cohort_size"], r["customers"])
                 for r in rows_of(answers[3]) if r["cohort"] != "mean" and r["customers"])
    want = sorted((f"{cm // 12:04d}-{cm % 12 + 1:02d}-01", int(k), int(n), int(c)) for cm, k, n, c in q(RETENTION))
    out.append((answers[3]["text"], got, want))
    got = [(r["rank"], r["customer"], num(r["value"])) for r in rows_of(answers[4])]
    want = [(int(r), c, num(v)) for r, c, v in q(TOP)]
    out.append((answers[4]["text"], got, want))
    got = sorted((r["bucket"], r["group"], r["group2"], r["value"]) for r in rows_of(answers[5]) if r["value"])
    want = sorted((week_label(w), ch, co, int(n)) for w, ch, co, n in q(TREND))
    out.append((answers[5]["text"], got, want))
    got = sorted((r["bucket"], r["step"], r["customers"]) for r in rows_of(answers[6]) if r["customers"])
    want = sorted((week_label(w), int(s), int(n)) for w, s, n in q(FUNNEL_WEEKS) if n)
    out.append((answers[6]["text"], got, want))
    got = sorted((r["segment"], r["customers"], num(r["share"]), num(r["recency_days"]), num(r["frequency"]),
                  num(r["monetary"]), num(r["r"]), num(r["f"]), num(r["m"]))
                 for r in rows_of(answers[7]) if r["customers"])
    want = sorted((s, int(n), *(num(x) for x in rest)) for s, n, *rest in q(RFM))
    out.append((answers[7]["text"], got, want))
    for k, sql in ((10, PATHS_AFTER), (11, PATHS_BEFORE)):
        got = [(r["rank"], r["path"], r["customers"]) for r in rows_of(answers[k])]
        out.append((answers[k]["text"], got, top_paths(q(sql))))
    for k, weights in ((12, LAST_WEIGHTS), (13, LINEAR_WEIGHTS)):
        got = sorted((r["group"], round(r["conversions"] * 1e9), round(r["value"] * 100)) for r in rows_of(answers[k]))
        want = sorted((g, int(u), int(c)) for g, u, c in q(ATTRIBUTION.format(weights=weights)))
        out.append((answers[k]["text"], got, want))
    got = sorted((r["bucket"], r["value"]) for r in rows_of(answers[14]) if r["value"])
    want = sorted((day_label(d), int(n)) for d, n in q(SESSIONS))
    out.append((answers[14]["text"], got, want))
    got = sorted((r["weekday"], r["hour"], r["events"], r["customers"]) for r in rows_of(answers[15]) if r["events"])
    want = sorted((int(w), int(h), int(e), int(c)) for w, h, e, c in q(HEATMAP))
    out.append((answers[15]["text"], got, want))
    got = sorted((r["bucket"], num(r["value"]), r["promoters"], r["passives"], r["detractors"], r["responses"],
                  num(r["ci_low"]), num(r["ci_high"])) for r in rows_of(answers[16]) if r["responses"])
    want = sorted(nps_row(m, *(int(x) for x in rest)) for m, *rest in q(NPS))
    out.append((answers[16]["text"], got, want))
    windows = q(CORRELATE_WINDOWS)
    converted = sum(1 for w in windows if w[3])
    dropped = len(windows) - converted
    got = sorted((r["kind"], r["name"], r["value"], r["converted"], r["dropped"], num(r["odds_ratio"]),
                  num(r["p_value"])) for r in rows_of(answers[17]))
    want = sorted((k, n, v, int(a), int(c), *odds_and_p(int(a), converted - int(a), int(c), dropped - int(c)))
                  for k, n, v, a, c in q(CORRELATE.format(windows=CORRELATE_WINDOWS)))
    out.append((answers[17]["text"], got, want))
    got = sorted((r["bucket"], r["group"], r["value"], r["previous"], r["change"], num(r["contribution"]),
                  r["total_change"]) for r in rows_of(answers[18]))
    want = sorted(changes_rows(q(CHANGES_SHARES), q(CHANGES_TOTALS), q(CHANGES_SPAN)[0]))
    out.append((answers[18]["text"], got, want))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000", help="comma-separated event counts")
    ap.add_argument("--shapes", default="demo,time")
    ap.add_argument("--work", default=os.path.join(HERE, "..", "..", "target", "canonical"))
    ap.add_argument("--runner", required=True, help="path of the built compare_runner")
    args = ap.parse_args()
    failures = 0
    print("| events | shape | statement | rows | answer |\n|---|---|---|---|---|")
    for size in [int(s.replace("_", "")) for s in args.sizes.split(",") if s]:
        for shape in [s for s in args.shapes.split(",") if s]:
            work = os.path.abspath(os.path.join(args.work, f"{size}-{shape}"))
            result = json.loads(subprocess.check_output([args.runner, "canonical", str(size), shape, work]))
            con = duckdb.connect()
            load(con, work)
            for name, got, want in checks(con, result["answers"]):
                ok = same(got, want)
                failures += not ok
                print(f"| {result['events']:,} | {shape} | `{name}` | {len(got)} | {'same' if ok else 'DIFFERS'} |")
                if not ok:
                    extra_got = [r for r in got if r not in want][:5]
                    extra_want = [r for r in want if r not in got][:5]
                    print(f"  journeydb only: {extra_got}\n  DuckDB only: {extra_want}", file=sys.stderr)
            con.close()
    # Issue 29's FIT and PREDICT, on the CDNOW sample (one shape: two segments and unflushed rows).
    work = os.path.abspath(os.path.join(args.work, "cdnow"))
    sample = os.path.join(HERE, "..", "..", "tests", "fixtures", "cdnow", "CDNOW_sample.txt")
    result = json.loads(subprocess.check_output([args.runner, "cdnow", sample, work]))
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE events AS SELECT customer, epoch_us(ts) AS t, event, amount
                    FROM read_parquet('{work}/events.parquet')""")
    for name, got, want in cdnow.checks(con, result["answers"], rows_of, num):
        ok = same(got, want)
        failures += not ok
        print(f"| {result['events']:,} | cdnow | `{name}` | {len(got)} | {'same' if ok else 'DIFFERS'} |")
        if not ok:
            extra_got = [r for r in got if r not in want][:5]
            extra_want = [r for r in want if r not in got][:5]
            print(f"  journeydb only: {extra_got}\n  independent only: {extra_want}", file=sys.stderr)
    con.close()
    if failures:
        print(f"\nFAIL: {failures} answers differ", file=sys.stderr)
        sys.exit(1)
    print("\nEvery canonical statement equals DuckDB's answer.")


if __name__ == "__main__":
    main()

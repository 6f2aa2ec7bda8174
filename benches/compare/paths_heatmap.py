"""DuckDB's time for issue 28's PATHS and HEATMAP statements on a canonical database's events
(docs/BENCHMARKS.md, twenty-third round): the PATHS SQL of canonical.py and HEATMAP as a
grouped count, best of 5 on 2 threads. journeydb's side is the shell's `.timer` on the same
directory's `db.journeydb`.

    benches/compare/run --canonical --sizes 1000000     # builds target/canonical/1000000-{demo,time}
    target/compare-venv/bin/python benches/compare/paths_heatmap.py target/canonical/1000000-demo
"""

import os
import sys
import time

import duckdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import canonical  # noqa: E402

HEATMAP = """
SELECT isodow(ts AT TIME ZONE 'UTC') AS weekday, hour(ts AT TIME ZONE 'UTC') AS hour,
       count(*), count(DISTINCT customer)
FROM events WHERE event = 'visit' GROUP BY ALL"""


def main():
    work = sys.argv[1]
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"""CREATE TABLE events AS
        SELECT customer, epoch_us(ts) AS t, ts, event FROM read_parquet('{work}/events.parquet')""")
    for name, sql in (("PATHS AFTER visit STEPS 3 TOP 10", canonical.PATHS_AFTER),
                      ("PATHS BEFORE purchase STEPS 2 TOP 10 COLLAPSE REPEATS", canonical.PATHS_BEFORE),
                      ("HEATMAP OF visit", HEATMAP)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            best = min(best, time.perf_counter() - t0)
        print(f"{name}: {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()

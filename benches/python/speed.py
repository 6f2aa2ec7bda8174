"""The Python package's speed (issue 30), measured beside the Rust API and the shell in one run.

    benches/python/run [--events 10000000] [--rows 1000000]

1. Queries: Q1–Q5 on the demo database — the median time through the Rust API (the
   `query_time` example, on the same files) against `con.query(q)`, `.fetchall()` and
   `.to_pandas()` through Python; alternating rounds, so that a slow minute hits both alike.
2. Appends: a pandas frame of `--rows` rows in two shapes — `time` (as real logs arrive: time
   order, epoch-second timestamps with many ties, integer customer ids) and `customer` (by
   customer then time, string ids) — into a fresh database; events per second.
3. Import: the same rows as a Parquet file, imported by `con.import_file` and by the shell's
   `journeydb import`, into fresh databases, alternating.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy
import pandas

import journeydb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
QUERIES = {
    "Q1": "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
    "Q2": "RETENTION visit RETURN visit OR purchase PERIOD week PERIODS 8 FIRST_TIME",
    "Q3": "TREND uniq PERIOD day BY channel",
    "Q4": "TREND sum(amount) OF STAGE retention PERIOD day",
    "Q5": "TIMELINE '4242' FROM '2026-02-01' TO '2026-03-03'",
}


def interleaved_ms(actions, reps):
    """The median ms of each action, the actions run in turn `reps` times (so that a slow moment
    hits all of them alike)."""
    times = [[] for _ in actions]
    for _ in range(reps):
        for index, action in enumerate(actions):
            start = time.perf_counter()
            action()
            times[index].append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def queries(path, reps, rounds):
    example = os.path.join(ROOT, "target", "release", "examples", "query_time")
    keys = ("rust_db", "query", "fetchall", "to_pandas", "rust_snapshot", "snapshot_to_pandas")
    rows = {name: {key: [] for key in keys} for name in QUERIES}
    con = journeydb.connect(path, read_only=True)
    snap = con.snapshot()
    for _ in range(rounds):
        out = subprocess.run([example, path, str(reps), *QUERIES.values()], check=True, capture_output=True, text=True)
        rust = json.loads(out.stdout)
        for name, statement in QUERIES.items():
            con.query(statement)  # warm-up, as the example's
            snap.query(statement)
            rows[name]["rust_db"].append(rust[statement]["db"])
            rows[name]["rust_snapshot"].append(rust[statement]["snapshot"])
            measured = interleaved_ms([
                lambda: con.query(statement),
                lambda: con.query(statement).fetchall(),
                lambda: con.query(statement).to_pandas(),
                lambda: snap.query(statement).to_pandas(),
            ], reps)
            for key, ms in zip(("query", "fetchall", "to_pandas", "snapshot_to_pandas"), measured):
                rows[name][key].append(ms)
    print("Through the database (a fresh snapshot per query: `Db::query`, `con.query`), and through one")
    print("snapshot (`Snapshot::query`, `snap.query`); medians in ms.\n")
    print("| query | Rust Db::query | con.query | .fetchall() | .to_pandas() | to_pandas / Rust | Rust Snapshot::query | snap.query().to_pandas() | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, times in rows.items():
        rust, query, fetch, frame_ms, rust_snap, snap_frame = (statistics.median(times[k]) for k in keys)
        print(f"| {name} | {rust:.2f} | {query:.2f} | {fetch:.2f} | {frame_ms:.2f} | {frame_ms / rust:.3f} "
              f"| {rust_snap:.2f} | {snap_frame:.2f} | {snap_frame / rust_snap:.3f} |")
    con.close()


def frame(rows, shape, seed=7):
    rng = numpy.random.default_rng(seed)
    customers = rng.integers(0, max(rows // 20, 1), rows)
    # About one event per customer per 20 seconds overall: many events share a second.
    seconds = 1_767_225_600 + numpy.sort(rng.integers(0, rows // 20 + 1, rows))
    events = rng.choice(numpy.array(["visit", "view_product", "add_to_cart", "purchase", "support"]), rows,
                        p=[0.45, 0.3, 0.12, 0.08, 0.05])
    amount = numpy.where(events == "purchase", rng.gamma(2.0, 40.0, rows).round(2), numpy.nan)
    data = pandas.DataFrame({"customer": customers, "ts": pandas.to_datetime(seconds, unit="s", utc=True),
                             "event": events, "amount": amount})
    if shape == "customer":
        data["customer"] = "cust-" + data["customer"].astype(str)
        data = data.sort_values(["customer", "ts"], kind="stable").reset_index(drop=True)
    return data


def appends(rows, work):
    print("\n| shape | rows | con.append s | events/s |")
    print("|---|---|---|---|")
    for shape in ("time", "customer"):
        data = frame(rows, shape)
        path = os.path.join(work, f"append-{shape}")
        shutil.rmtree(path, ignore_errors=True)
        with journeydb.connect(path) as con:
            start = time.perf_counter()
            written = con.append(data)
            seconds = time.perf_counter() - start
        assert written == rows, (written, rows)
        print(f"| {shape} | {rows:,} | {seconds:.3f} | {rows / seconds / 1e6:.2f} M |")


def imports(rows, work, rounds):
    shell = os.path.join(ROOT, "target", "release", "journeydb")
    print("\n| shape | rows | con.import_file s | shell import s | Python / shell |")
    print("|---|---|---|---|---|")
    for shape in ("time", "customer"):
        parquet = os.path.join(work, f"{shape}.parquet")
        frame(rows, shape).to_parquet(parquet, index=False)
        py_times, shell_times = [], []
        for _ in range(rounds):
            path = os.path.join(work, "import-py")
            shutil.rmtree(path, ignore_errors=True)
            with journeydb.connect(path) as con:
                start = time.perf_counter()
                con.import_file(parquet)
                py_times.append(time.perf_counter() - start)
            path = os.path.join(work, "import-shell")
            shutil.rmtree(path, ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([shell, "import", path, parquet], check=True, capture_output=True)
            shell_times.append(time.perf_counter() - start)
        py_s, shell_s = statistics.median(py_times), statistics.median(shell_times)
        print(f"| {shape} | {rows:,} | {py_s:.3f} | {shell_s:.3f} | {py_s / shell_s:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", default=os.path.join(ROOT, "target", "python-speed"))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    db = os.path.join(args.work, f"demo-{args.events}")
    journeydb.demo(db, events=args.events).close()
    print(f"journeydb {journeydb.__version__}, Python {sys.version.split()[0]}, demo of {args.events:,} events\n")
    queries(db, args.reps, args.rounds)
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        appends(args.rows, work)
        imports(args.rows, work, args.rounds)


if __name__ == "__main__":
    main()

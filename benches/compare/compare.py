#!/usr/bin/env python3
"""journeydb side by side with DuckDB, ClickHouse (chdb) and SQLite on the same data.

For each size: generate the demo dataset (journeydb's generator, exported as Parquet and CSV);
for each data shape (the demo's file by customer; the same events as logs arrive, in time order
with integer customer ids; and in time order with ties, epoch seconds cut to ten minutes) load it
into every engine, run the canonical queries Q1..Q8 (one warm-up, then --reps timed runs, median
reported; the engines' runs interleaved), check that every engine returns the same normalised
answer, and print one table per shape and a summary of the shapes. Exit status 1 when any answer differs. Run through ./run, which builds the journeydb
runner and creates the virtual environment; see README.md next to this file.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SQL = os.path.join(HERE, "sql")
QUERIES = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"]
ENGINES = ["journeydb", "duckdb", "chdb", "sqlite"]
# Q5's interval: [2026-02-01, 2026-03-03) UTC, in unix ms.
Q5_LO, Q5_HI = 1769904000000, 1772496000000
# The engine whose answers are the reference: DuckDB runs SQL written from the definitions
# (shared/canonical-queries.md); ClickHouse's windowFunnel is its own function and is known to
# drop valid chains on tied timestamps, so it is checked, not trusted.
REFERENCE = "duckdb"
# The data shapes: how the demo's events are written into the file every engine loads.
SHAPES = ["demo", "time-ordered", "ties"]
# Each shape's file, made from the demo's export by DuckDB (not timed): `customer` and `ts`
# keep their names, so every engine's load reads any shape; `ts_ms` is each peer's expression
# for the timestamp in unix milliseconds.
SHAPE_SQL = {
    "time-ordered": "SELECT CAST(customer AS BIGINT) AS customer, ts, event, stage, channel, amount "
                    "FROM read_parquet('{src}') ORDER BY ts, customer",
    "ties": "SELECT CAST(customer AS BIGINT) AS customer, epoch(ts)::BIGINT // 600 * 600 AS ts, event, "
            "stage, channel, amount FROM read_parquet('{src}') ORDER BY ts, customer",
}
TS_MS = {
    "duckdb": {"demo": "epoch_ms(ts)", "time-ordered": "epoch_ms(ts)", "ties": "ts * 1000"},
    "chdb": {"demo": "toUnixTimestamp64Milli(ts)", "time-ordered": "toUnixTimestamp64Milli(ts)",
             "ties": "ts * 1000"},
}
SHAPE_TEXT = {
    "demo": "the demo's file: by customer, string ids, timestamps unique per customer",
    "time-ordered": "time order (as logs arrive), integer customer ids",
    "ties": "time order, integer ids, epoch seconds cut to 10 minutes (a fifth of a customer's events tie)",
}


def shape_file(work, parquet, shape):
    """The file of `shape`, written next to the demo's export (once per size)."""
    if shape == "demo":
        return parquet
    import duckdb

    path = os.path.join(work, shape + ".parquet")
    if not os.path.exists(path):
        con = duckdb.connect()
        con.execute(f"COPY ({SHAPE_SQL[shape].replace('{src}', parquet)}) TO '{path}.tmp' (FORMAT parquet)")
        con.close()
        os.replace(path + ".tmp", path)
    return path


def sql(engine, name, **params):
    with open(os.path.join(SQL, engine, name + ".sql")) as f:
        text = f.read()
    for k, v in params.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def statements(text):
    """Splits a SQL file into statements (no ';' inside the files' strings or comments)."""
    body = "\n".join(l for l in text.splitlines() if not l.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def day_text(day):
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(day))).isoformat()


def money(x):
    return 0.0 if x is None else round(float(x), 2)


def iso_ms(text):
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(t.timestamp() * 1000))


# ---------------------------------------------------------------------------------------------
# Normalisation: every answer becomes a sorted list of tuples. journeydb zero-fills buckets that
# SQL group-bys leave out, so rows whose counts are all zero are dropped on every side.


def norm_peer(q, rows):
    out = []
    for r in rows:
        r = tuple(r)
        if q == "Q1":
            out.append((int(r[0]), int(r[1])))
        elif q == "Q2":
            out.append((day_text(r[0]), int(r[1]), int(r[2])))
        elif q == "Q3":
            out.append((day_text(r[0]), str(r[1]), int(r[2])))
        elif q == "Q4":
            out.append((day_text(r[0]), money(r[1])))
        elif q == "Q5":
            out.append((int(r[0]), r[1], r[2], r[3], None if r[4] is None else money(r[4])))
        elif q == "Q6":
            out.append((day_text(r[0]),) + tuple(int(x) for x in r[1:5]))
        elif q == "Q7":
            out.append((int(r[0]), int(r[1])))
        elif q == "Q8":
            out.append((int(r[0]), str(r[1]), money(r[2])))
    return finish(q, out)


def norm_journeydb(q, result):
    cols, out = result["columns"], []
    for r in result["rows"]:
        row = dict(zip(cols, r))
        if q == "Q1":
            out.append((row["step"], row["customers"]))
        elif q == "Q2":
            if row["cohort"] != "mean":
                out.append((row["cohort"], row["period"], row["customers"]))
        elif q == "Q3":
            out.append((row["bucket"], row["group"], row["value"]))
        elif q == "Q4":
            out.append((row["bucket"], money(row["value"])))
        elif q == "Q5":
            # One column per property the customer's rows carry (issue 32).
            amount = row.get("properties.amount")
            out.append((iso_ms(row["ts"]), row["event"], row["stage"], row.get("properties.channel"),
                        None if amount is None else money(amount)))
        elif q == "Q6":
            out.append((row["bucket"], row["new"], row["returning"], row["resurrecting"], row["dormant"]))
        elif q == "Q7":
            out.append((row["buckets"], row["customers"]))
        elif q == "Q8":
            out.append((row["rank"], row["customer"], money(row["value"])))
    return finish(q, out)


# The count columns of each answer (a row whose counts are all zero is dropped).
COUNTS = {"Q2": slice(2, 3), "Q3": slice(2, 3), "Q4": slice(1, 2), "Q6": slice(1, 5), "Q7": slice(1, 2)}


def finish(q, rows):
    if q in COUNTS:
        rows = [r for r in rows if any(x != 0 for x in r[COUNTS[q]])]
    return sorted(rows, key=repr)


def checksum(rows):
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# Engines. Each `load_<engine>` loads the Parquet file and returns
# ({"load_s", "bytes"}, run, close): `run(q)` runs query `q` once and returns (ms, normalised
# rows), `close()` releases the engine. Queries are timed afterwards, interleaved across engines
# (see `time_interleaved`).


def settle():
    """Flushes dirty pages to disk before a timed phase: the generator writes ~1 GB of CSV and
    every engine writes its files, and their writeback would otherwise run (and take CPU and
    memory bandwidth) during the next engine's timings. Done the same way for every engine."""
    os.sync()


def peer_runner(engine, fetch, customer):
    """`run(q)` for a peer: the query's SQL from sql/<engine>/, timed around `fetch(text) -> rows`
    (the time includes fetching the rows into Python)."""
    texts = {q: statements(sql(engine, q.lower(), customer=customer, lo=Q5_LO, hi=Q5_HI))[0] for q in QUERIES}

    def run(q):
        t0 = time.perf_counter()
        rows = fetch(texts[q])
        return (time.perf_counter() - t0) * 1e3, norm_peer(q, rows)

    return run


def load_journeydb(work, parquet, events, customer, runner, shape):
    db = os.path.join(work, "journeydb")
    settle()
    load = json.loads(subprocess.check_output([runner, "load", db, parquet]))
    if load["events"] != events:
        sys.exit(f"journeydb loaded {load['events']} events, expected {events}")
    # A long-lived runner answers one query per line; its time is measured in-process, so the
    # pipe is not counted (as process start-up is not counted for anyone).
    proc = subprocess.Popen([runner, "serve", db, str(customer)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def run(q):
        proc.stdin.write(q + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"compare_runner serve exited with status {proc.wait()}")
        out = json.loads(line)
        return out["ms"], norm_journeydb(q, out)

    def close():
        proc.stdin.close()
        if proc.wait() != 0:
            sys.exit(f"compare_runner serve failed with status {proc.returncode}")

    return {"load_s": load["seconds"], "bytes": load["bytes"]}, run, close


def load_duckdb(work, parquet, events, customer, runner, shape):
    import duckdb

    path = os.path.join(work, "duck.duckdb")
    for p in (path, path + ".wal"):
        if os.path.exists(p):
            os.remove(p)
    con = duckdb.connect(path)
    settle()
    t0 = time.perf_counter()
    for s in statements(sql("duckdb", "load", parquet=parquet, ts_ms=TS_MS["duckdb"][shape])):
        con.execute(s)
    load_s = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    if n != events:
        sys.exit(f"duckdb loaded {n} events, expected {events}")
    size = sum(os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p))
    run = peer_runner("duckdb", lambda text: con.execute(text).fetchall(), customer)
    return {"load_s": load_s, "bytes": size}, run, con.close


def load_chdb(work, parquet, events, customer, runner, shape):
    from chdb import session as chs

    path = os.path.join(work, "chdb")
    shutil.rmtree(path, ignore_errors=True)
    sess = chs.Session(path)
    settle()

    def rows_of(text):
        res = sess.query(text, "JSONCompact")
        data = res.bytes() if hasattr(res, "bytes") else bytes(res)
        return json.loads(data)["data"] if data.strip() else []

    t0 = time.perf_counter()
    for s in statements(sql("chdb", "load", parquet=parquet, ts_ms=TS_MS["chdb"][shape])):
        sess.query(s)
    load_s = time.perf_counter() - t0
    n = int(rows_of("SELECT count() FROM events")[0][0])
    if n != events:
        sys.exit(f"chdb loaded {n} events, expected {events}")
    size = int(rows_of("SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'events' AND active")[0][0])
    return {"load_s": load_s, "bytes": size}, peer_runner("chdb", rows_of, customer), sess.close


def load_sqlite(work, parquet, events, customer, runner, shape):
    import duckdb

    path = os.path.join(work, "sqlite.db")
    if os.path.exists(path):
        os.remove(path)
    con = sqlite3.connect(path)
    settle()
    t0 = time.perf_counter()
    for s in statements(sql("sqlite", "load")):
        con.execute(s)
    # Rows come from the Parquet file through DuckDB (the reader, not the engine under test).
    src = duckdb.connect()
    cur = src.execute(
        f"SELECT CAST(customer AS BIGINT), {TS_MS['duckdb'][shape]}, event, stage, channel, amount "
        f"FROM read_parquet('{parquet}')")
    while True:
        batch = cur.fetchmany(100_000)
        if not batch:
            break
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", batch)
    con.commit()
    for s in statements(sql("sqlite", "index")):
        con.execute(s)
    con.commit()
    load_s = time.perf_counter() - t0
    src.close()
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    if n != events:
        sys.exit(f"sqlite loaded {n} events, expected {events}")
    size = os.path.getsize(path)
    run = peer_runner("sqlite", lambda text: con.execute(text).fetchall(), customer)
    return {"load_s": load_s, "bytes": size}, run, con.close


def time_queries(runs, reps, interleave=True):
    """Times every query of every engine: per query, one warm-up run of each engine, then rounds
    in which each engine runs once (the engines' order rotating between rounds), until each has
    its `reps[engine]` timed runs. Interleaving gives every engine the same moments of a shared,
    noisy machine — timed one engine after another, a slow minute lands on one engine only — and
    the same caches (each run follows another engine's). With `interleave=False` each engine
    runs its timed runs of a query back to back (warm caches; the machine's moments differ).
    Returns {engine: {Q: (median ms, rows of the last run, runs)}}."""
    out = {e: {} for e in runs}
    engines = list(runs)
    for q in QUERIES:
        times = {e: [] for e in engines}
        rows = {}
        # None: the engine's warm-up run (untimed).
        if interleave:
            order = [(e, None) for e in engines] + [
                (e, r) for r in range(max(reps.values()))
                for e in engines[r % len(engines):] + engines[:r % len(engines)] if r < reps[e]]
        else:
            order = [(e, r) for e in engines for r in [None] + list(range(reps[e]))]
        for e, r in order:
            try:
                ms, rows[e] = runs[e](q)
            except Exception as x:  # name the engine and query, then stop
                sys.exit(f"{e} {q} failed: {x}")
            if r is not None:
                times[e].append(ms)
        for e in engines:
            out[e][q] = (statistics.median(times[e]), rows[e], reps[e])
    return out


# ---------------------------------------------------------------------------------------------


def fmt_ms(ms):
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.0f}" if ms >= 100 else f"{ms:,.1f}"


def report(size, events, results, reps, shape):
    print(f"\n### {events:,} events, shape `{shape}` (demo generator, asked for {size:,}; {SHAPE_TEXT[shape]})\n")
    head = ["engine", "load s", "load events/s", "bytes/event"] + [f"{q} ms" for q in QUERIES]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for eng, r in results.items():
        cells = [eng, f"{r['load_s']:.2f}", f"{events / r['load_s']:,.0f}", f"{r['bytes'] / events:.2f}"]
        for q in QUERIES:
            ms, _, n = r["queries"][q]
            cells.append(fmt_ms(ms) + ("" if n == reps else f" †{n}"))
        print("| " + " | ".join(cells) + " |")
    if "journeydb" not in results:
        return
    jd = results["journeydb"]
    print("\nRatio of each engine to journeydb (time / journeydb's time; > 1 means journeydb is faster;"
          " bytes/event: engine / journeydb):\n")
    head = ["engine", "load", "bytes/event"] + QUERIES
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for eng, r in results.items():
        if eng == "journeydb":
            continue
        cells = [eng, f"{r['load_s'] / jd['load_s']:.2f}", f"{r['bytes'] / jd['bytes']:.2f}"]
        for q in QUERIES:
            cells.append(f"{r['queries'][q][0] / jd['queries'][q][0]:.2f}")
        print("| " + " | ".join(cells) + " |")
    best = {}
    for q in QUERIES:
        peers = [(r["queries"][q][0], e) for e, r in results.items() if e != "journeydb"]
        if peers:
            ms, eng = min(peers)
            best[q] = (eng, ms / jd["queries"][q][0])
    if best:
        print("\nAgainst the fastest peer: " + ", ".join(
            f"{q} {x:.2f}x ({e})" for q, (e, x) in best.items()))
    meta = next(iter(results.values()))["meta"]
    if meta["load_reps"] > 1:
        print(f"\nLoad: median of {meta['load_reps']} loads per engine, in rounds across engines; every load (s): "
              + "; ".join(f"{e} " + ", ".join(f"{x:.2f}" for x in r["loads"]) for e, r in results.items()) + ".")
    if any(n != reps for r in results.values() for (_, _, n) in r["queries"].values()):
        print(f"\n†1: one timed run after one warm-up (SQLite above {meta['sqlite_full_max']:,} events).")


def check(results, shape):
    """Every engine's normalised answer must equal the reference engine's. Returns failures.
    ClickHouse's Q1 (windowFunnel) is not checked on the `ties` shape, where it is known to drop
    valid chains; its answer is still shown."""
    ref = REFERENCE if REFERENCE in results else next(iter(results))
    failures = 0
    print(f"\nAnswer check (reference: {ref}, SQL written from the definitions):")
    for q in QUERIES:
        want = results[ref]["queries"][q][1]
        line = [f"  {q}: {checksum(want)} ({len(want)} rows)"]
        for eng, r in results.items():
            got = r["queries"][q][1]
            if got == want:
                line.append(f"{eng} ok")
            elif eng == "chdb" and q == "Q1" and shape == "ties":
                line.append(f"{eng} differs, as windowFunnel does on tied timestamps (not counted)")
            else:
                failures += 1
                line.append(f"{eng} DIFFERS ({checksum(got)}, {len(got)} rows)")
                missing = [x for x in want if x not in got][:3]
                extra = [x for x in got if x not in want][:3]
                line.append(f"\n      {eng} lacks {missing} and has extra {extra}")
        print(", ".join(line))
    if "chdb" in results and shape != "ties":
        print("  (Q1 in chdb is windowFunnel(…, 'strict_increase'); it agrees here because the data's"
              " timestamps are unique per customer — it drops valid chains on tied timestamps.)")
    return failures


def run_shape(args, engines, work, parquet, events, customer, shape):
    """Loads `parquet` (one data shape) into every engine and times the queries; the results."""
    results, runs, closers, reps = {}, {}, [], {}
    for eng in engines:
        reps[eng] = args.reps
        if eng == "sqlite" and events > args.sqlite_full_max:
            reps[eng] = 1
    # Each engine loads the file `load_reps` times, in rounds (every engine once per round,
    # as queries are interleaved), and the median load time is reported: one load of a small
    # file is at the mercy of one slow moment of a shared machine. The last round's
    # databases answer the queries.
    load_reps = args.load_reps if events <= args.load_reps_max else 1
    loads = {eng: [] for eng in engines}
    for r in range(load_reps):
        for eng in engines:
            print(f"[{events:,} events, {shape}] loading {eng} ({r + 1} of {load_reps}) …", file=sys.stderr,
                  flush=True)
            results[eng], runs[eng], close = globals()["load_" + eng](work, parquet, events, customer,
                                                                      args.runner, shape)
            loads[eng].append(results[eng]["load_s"])
            if r + 1 < load_reps:
                close()
            else:
                closers.append(close)
    for eng in engines:
        results[eng]["load_s"] = statistics.median(loads[eng])
        results[eng]["loads"] = loads[eng]
    order = "one engine after another" if args.sequential else "interleaved"
    print(f"[{events:,} events, {shape}] queries, {order} …", file=sys.stderr, flush=True)
    settle()
    for eng, queries in time_queries(runs, reps, not args.sequential).items():
        results[eng]["queries"] = queries
    for close in closers:
        close()
    results_meta = {"load_reps": load_reps, "reps": args.reps, "sqlite_full_max": args.sqlite_full_max}
    for r in results.values():
        r["meta"] = results_meta
    return results


def report_shapes(summary):
    """One line per (size, shape): journeydb against DuckDB and against the fastest peer."""
    print("\n### Data shapes: journeydb against the peers\n")
    print("| events | shape | load: DuckDB s / journeydb s | bytes/event: journeydb / DuckDB | Q1: fastest peer / journeydb |")
    print("|---|---|---|---|---|")
    for events, shape, results in summary:
        jd, duck = results.get("journeydb"), results.get("duckdb")
        if not jd:
            continue
        load = f"{duck['load_s']:.2f} / {jd['load_s']:.2f} = **{duck['load_s'] / jd['load_s']:.2f}×**" if duck else "–"
        size = f"{jd['bytes'] / events:.2f} / {duck['bytes'] / events:.2f} = **{jd['bytes'] / duck['bytes']:.2f}×**" if duck else "–"
        peers = [(r["queries"]["Q1"][0], e) for e, r in results.items() if e != "journeydb"]
        q1 = "–"
        if peers:
            ms, eng = min(peers)
            q1 = f"{eng} {fmt_ms(ms)} / {fmt_ms(jd['queries']['Q1'][0])} ms = **{ms / jd['queries']['Q1'][0]:.1f}×**"
        print(f"| {events:,} | {shape} | {load} | {size} | {q1} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    ap.add_argument("--big", action="store_true", help="also run 100,000,000 events")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per query (median reported)")
    ap.add_argument("--load-reps", type=int, default=3,
                    help="loads per engine, in rounds across engines (median reported), up to --load-reps-max events")
    ap.add_argument("--load-reps-max", type=int, default=2_000_000,
                    help="above this many events every engine loads once")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--shapes", "--shape", default=",".join(SHAPES),
                    help="comma-separated data shapes: " + ", ".join(SHAPES))
    ap.add_argument("--sequential", action="store_true",
                    help="time each engine's runs of a query back to back instead of interleaved")
    ap.add_argument("--sqlite-full-max", type=int, default=2_000_000,
                    help="above this many events SQLite runs each query once after a warm-up (†1)")
    ap.add_argument("--work", default=os.path.join(HERE, "..", "..", "target", "compare"))
    ap.add_argument("--runner", required=True, help="path of the built compare_runner")
    args = ap.parse_args()

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    if args.big:
        sizes.append(100_000_000)
    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"unknown engine {e}; known: {', '.join(ENGINES)}")
    shapes = [x for x in args.shapes.split(",") if x]
    for x in shapes:
        if x not in SHAPES:
            sys.exit(f"unknown shape {x}; known: {', '.join(SHAPES)}")
    failures, summary = 0, []
    for size in sizes:
        work = os.path.abspath(os.path.join(args.work, str(size)))
        os.makedirs(work, exist_ok=True)
        parquet = os.path.join(work, "events.parquet")
        gen = json.loads(subprocess.check_output([args.runner, "gen", str(size), work]))
        events = gen["events"]
        customers = max(1, size // 25)
        customer = 4242 if customers > 4242 else customers // 2
        for shape in shapes:
            shape_work = os.path.join(work, shape)
            os.makedirs(shape_work, exist_ok=True)
            path = shape_file(work, parquet, shape)
            results = run_shape(args, engines, shape_work, path, events, customer, shape)
            report(size, events, results, args.reps, shape)
            failures += check(results, shape)
            summary.append((events, shape, results))
    if len(summary) > 1:
        report_shapes(summary)
    if failures:
        print(f"\nFAIL: {failures} answers differ", file=sys.stderr)
        sys.exit(1)
    print("\nAll engines returned the same answers.")


if __name__ == "__main__":
    main()

-- SQLite: a rowid table filled by executemany (the harness streams the Parquet rows into it,
-- journal and sync off for the load), then an index on (customer_id, ts) and ANALYZE.
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE events (customer_id INTEGER, ts INTEGER, event TEXT, stage TEXT, channel TEXT, amount REAL);
-- Then the harness runs index.sql.

-- DuckDB: one table sorted by (customer_id, ts), written and checkpointed.
CREATE TABLE events AS
SELECT CAST(customer AS BIGINT) AS customer_id, {ts_ms} AS ts, event, stage, channel, amount
FROM read_parquet('{parquet}')
ORDER BY customer_id, ts;
CHECKPOINT;

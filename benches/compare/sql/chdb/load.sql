-- ClickHouse (chdb): MergeTree ordered by (customer_id, ts), low-cardinality strings, merged to
-- one part.
CREATE TABLE events (
  customer_id Int64,
  ts Int64,
  event LowCardinality(String),
  stage LowCardinality(String),
  channel LowCardinality(String),
  amount Nullable(Float64)
) ENGINE = MergeTree ORDER BY (customer_id, ts);
INSERT INTO events
SELECT toInt64(customer), {ts_ms}, event, stage, channel, amount
FROM file('{parquet}', Parquet);
OPTIMIZE TABLE events FINAL;

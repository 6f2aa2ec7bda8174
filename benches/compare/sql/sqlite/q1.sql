-- Q1, written from the definition (shared/canonical-queries.md): for each add_to_cart, lv = the
-- latest visit strictly before it; for each purchase, m = the latest lv among add_to_carts
-- strictly before it that are within 7 days of their lv. RANGE frames make "strictly before"
-- exact even with equal timestamps (TIES STRICT).
WITH steps(step) AS (VALUES (1), (2), (3)),
f AS (
  SELECT customer_id, ts, event,
         max(CASE WHEN event = 'visit' THEN ts END) OVER (
           PARTITION BY customer_id ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS lv
  FROM events WHERE event IN ('visit', 'add_to_cart', 'purchase')
), c AS (
  SELECT customer_id, ts, event, lv,
         max(CASE WHEN event = 'add_to_cart' AND ts - lv <= 604800000 THEN lv END) OVER (
           PARTITION BY customer_id ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m
  FROM f
), lvl AS (
  SELECT customer_id,
         max(CASE WHEN event = 'purchase' AND ts - m <= 604800000 THEN 3
                  WHEN event = 'add_to_cart' AND ts - lv <= 604800000 THEN 2
                  WHEN event = 'visit' THEN 1 ELSE 0 END) AS level
  FROM c GROUP BY customer_id
)
SELECT s.step, count(*) AS customers
FROM lvl JOIN steps AS s ON lvl.level >= s.step
GROUP BY s.step;

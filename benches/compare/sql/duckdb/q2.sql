-- Q2: cohort = ISO week (Monday, UTC) of the first visit; k = weeks later with a visit or purchase.
WITH e AS (
  SELECT customer_id, (ts // 86400000 + 3) // 7 AS w, event
  FROM events WHERE event IN ('visit', 'purchase')
), c AS (
  SELECT customer_id, min(w) AS cw FROM e WHERE event = 'visit' GROUP BY customer_id
), r AS (
  SELECT DISTINCT e.customer_id, c.cw, e.w - c.cw AS k
  FROM e JOIN c USING (customer_id)
  WHERE e.w - c.cw BETWEEN 0 AND 8
)
SELECT cw * 7 - 3 AS cohort_day, k, count(*) AS customers FROM r GROUP BY cw, k;

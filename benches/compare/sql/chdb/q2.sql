-- Q2 in one pass per customer: the first visit week and the set of active weeks.
SELECT cw * 7 - 3 AS cohort_day, k, count() AS customers
FROM (
  SELECT customer_id, minIf(w, event = 'visit') AS cw, groupUniqArray(w) AS ws, countIf(event = 'visit') AS nv
  FROM (
    SELECT customer_id, intDiv(intDiv(ts, 86400000) + 3, 7) AS w, event
    FROM events WHERE event IN ('visit', 'purchase')
  )
  GROUP BY customer_id
  HAVING nv > 0
)
ARRAY JOIN arrayFilter(x -> x >= 0 AND x <= 8, arrayMap(x -> x - cw, ws)) AS k
GROUP BY cw, k;

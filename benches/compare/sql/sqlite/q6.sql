-- Q6: weekly lifecycle of visit-or-purchase activity. A = a customer's active weeks, f = its first;
-- week b (within the data's weeks) is new (b = f), returning (b-1 in A), resurrecting (b-1 not in
-- A, b > f) or, for b not in A with b-1 in A, dormant (negative).
WITH a AS (
  SELECT DISTINCT customer_id, (ts / 86400000 + 3) / 7 AS w
  FROM events WHERE event IN ('visit', 'purchase')
), f AS (
  SELECT customer_id, min(w) AS fw FROM a GROUP BY customer_id
), r AS (
  SELECT (min(ts) / 86400000 + 3) / 7 AS lo, (max(ts) / 86400000 + 3) / 7 AS hi FROM events
), cur AS (
  SELECT a.w,
         sum(CASE WHEN a.w = f.fw THEN 1 ELSE 0 END) AS n_new,
         sum(CASE WHEN p.customer_id IS NOT NULL THEN 1 ELSE 0 END) AS n_returning,
         sum(CASE WHEN p.customer_id IS NULL AND a.w > f.fw THEN 1 ELSE 0 END) AS n_resurrecting
  FROM a JOIN f USING (customer_id)
  LEFT JOIN a AS p ON p.customer_id = a.customer_id AND p.w = a.w - 1
  GROUP BY a.w
), dor AS (
  SELECT a.w + 1 AS w, -count(*) AS n_dormant
  FROM a LEFT JOIN a AS n ON n.customer_id = a.customer_id AND n.w = a.w + 1
  WHERE n.customer_id IS NULL
  GROUP BY a.w + 1
), b AS (
  SELECT w FROM cur UNION SELECT w FROM dor
)
SELECT b.w * 7 - 3 AS week_day, coalesce(n_new, 0), coalesce(n_returning, 0), coalesce(n_resurrecting, 0),
       coalesce(n_dormant, 0)
FROM b JOIN r ON b.w BETWEEN r.lo AND r.hi
LEFT JOIN cur USING (w) LEFT JOIN dor USING (w);

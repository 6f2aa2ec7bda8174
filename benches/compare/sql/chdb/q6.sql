-- Q6: weekly lifecycle from each customer's set of active weeks (see duckdb/q6.sql for the rules).
WITH (SELECT intDiv(intDiv(min(ts), 86400000) + 3, 7) FROM events) AS lo,
     (SELECT intDiv(intDiv(max(ts), 86400000) + 3, 7) FROM events) AS hi
SELECT b * 7 - 3 AS week_day,
       countIf(has(ws, b) AND b = fw) AS n_new,
       countIf(has(ws, b) AND has(ws, b - 1)) AS n_returning,
       countIf(has(ws, b) AND NOT has(ws, b - 1) AND b > fw) AS n_resurrecting,
       -countIf(NOT has(ws, b) AND has(ws, b - 1)) AS n_dormant
FROM (
  SELECT customer_id, ws, arrayMin(ws) AS fw
  FROM (
    SELECT customer_id, groupUniqArray(intDiv(intDiv(ts, 86400000) + 3, 7)) AS ws
    FROM events WHERE event IN ('visit', 'purchase') GROUP BY customer_id
  )
)
ARRAY JOIN arrayDistinct(arrayFilter(x -> x >= lo AND x <= hi, arrayConcat(ws, arrayMap(x -> x + 1, ws)))) AS b
GROUP BY b;

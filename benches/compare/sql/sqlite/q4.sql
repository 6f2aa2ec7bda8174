-- Q4: daily revenue of retention-stage events.
SELECT ts / 86400000 AS day, sum(amount) AS revenue
FROM events WHERE stage = 'retention' GROUP BY 1;

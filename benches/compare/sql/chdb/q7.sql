-- Q7: daily stickiness of visits.
SELECT d AS days, count() AS customers
FROM (SELECT customer_id, uniqExact(intDiv(ts, 86400000)) AS d FROM events WHERE event = 'visit' GROUP BY customer_id)
GROUP BY d;

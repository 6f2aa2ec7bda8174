-- Q7: daily stickiness of visits: customers by the number of distinct days with a visit.
SELECT d AS days, count(*) AS customers
FROM (SELECT customer_id, count(DISTINCT ts / 86400000) AS d FROM events WHERE event = 'visit' GROUP BY customer_id)
GROUP BY d;

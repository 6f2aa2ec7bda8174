-- Q3: daily distinct customers per channel (exact).
SELECT ts // 86400000 AS day, channel, count(DISTINCT customer_id) AS customers
FROM events GROUP BY 1, 2;

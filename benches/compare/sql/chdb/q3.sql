-- Q3: daily distinct customers per channel (uniqExact).
SELECT intDiv(ts, 86400000) AS day, channel, uniqExact(customer_id) AS customers
FROM events GROUP BY day, channel;

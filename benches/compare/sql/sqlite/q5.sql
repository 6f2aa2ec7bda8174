-- Q5: one customer's events over 30 days.
SELECT ts, event, stage, channel, amount
FROM events
WHERE customer_id = {customer} AND ts >= {lo} AND ts < {hi}
ORDER BY ts;

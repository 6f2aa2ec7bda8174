-- Q8: the ten customers with the highest purchase revenue; RANK() over all of them, ties listed
-- by customer id as text (journeydb's ids are strings).
SELECT rank() OVER (ORDER BY revenue DESC) AS rank, customer, revenue FROM (
  SELECT CAST(customer_id AS VARCHAR) AS customer, sum(amount) AS revenue
  FROM events WHERE event = 'purchase' AND amount IS NOT NULL GROUP BY customer_id
) ORDER BY revenue DESC, customer LIMIT 10;

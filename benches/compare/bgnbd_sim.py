#!/usr/bin/env python3
"""bgnbd_sim.py N OUT.csv — simulate BG/NBD customers (Fader, Hardie & Lee 2005) as a CSV of purchase events.
Each customer: rate lambda ~ Gamma(r, scale 1/alpha) per week, dropout p ~ Beta(a, b);
first purchase on a uniform day of the first 12 weeks of 2024; purchases follow a Poisson
process; after each repeat purchase the customer drops out with probability p. Events run 78
weeks. The parameters are the CDNOW fit's; FIT on the file should recover them, and PREDICT …
SUMMARY's expected totals should track the actual ones (docs/BENCHMARKS.md, round 26):

    python3 bgnbd_sim.py 1000000 sim.csv && journeydb import DB sim.csv
    journeydb DB -c "FIT purchase UNIT week FROM '2024-01-01' TO '2024-09-30'"
"""
import random, sys, math, datetime
n = int(sys.argv[1]); out = open(sys.argv[2], 'w')
r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
rng = random.Random(42)
start = datetime.date(2024, 1, 1)
end_week = 78.0
out.write('customer,ts,event\n')
for c in range(n):
    lam = rng.gammavariate(r, 1.0 / alpha)
    p = rng.betavariate(a, b)
    first_day = rng.randrange(0, 84)
    t = first_day / 7.0
    days = [first_day]
    while lam > 0:
        t += rng.expovariate(lam)
        if t >= end_week:
            break
        days.append(int(t * 7))
        # BG/NBD: a customer may drop out only right after a repeat purchase.
        if rng.random() < p:
            break
    for d in days:
        out.write(f'{c},{start + datetime.timedelta(days=d)},purchase\n')

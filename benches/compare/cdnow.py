"""Issue 29's canonical FIT and PREDICT statements on the CDNOW sample, checked against an
independent evaluation: the calibration summaries in DuckDB SQL, the BG/NBD and Gamma-Gamma
log-likelihoods, P(alive), the conditional and unconditional expectations and the CLV in plain
Python from the papers' formulas (Fader, Hardie & Lee 2005; docs/QUERY.md, FIT and PREDICT).

FIT's parameters are checked to be the maximum (the likelihood at journeydb's parameters is
the reported one, and no parameter moved by 0.1 % in either direction raises it) and to agree
with the published values to their precision; PREDICT's per-customer columns and SUMMARY's
totals are recomputed from journeydb's parameters. Used by canonical.py (`run --canonical`).
"""

import math

T_END = "DATE '1997-10-01'"
HORIZON = 39

SUMMARY_SQL = f"""
WITH d AS (SELECT customer, CAST(to_timestamp(t / 1e6) AT TIME ZONE 'UTC' AS DATE) AS day, amount
           FROM events WHERE event = 'purchase'),
days AS (SELECT customer, day, sum(amount) AS value FROM d GROUP BY customer, day),
f AS (SELECT customer, min(day) AS d0 FROM days GROUP BY customer)
SELECT f.customer,
       count(*) FILTER (WHERE days.day > f.d0 AND days.day < {T_END}) AS x,
       coalesce(max(days.day) FILTER (WHERE days.day < {T_END}) - f.d0, 0) AS recency,
       (DATE '1997-09-30' - f.d0) AS age,
       count(*) FILTER (WHERE days.day >= {T_END} AND days.day <= DATE '1997-09-30' + {HORIZON * 7}) AS actual,
       avg(days.value) FILTER (WHERE days.day > f.d0 AND days.day < {T_END}) AS mean_value
FROM f JOIN days ON days.customer = f.customer
WHERE f.d0 >= DATE '1997-01-01' AND f.d0 < {T_END}
GROUP BY f.customer, f.d0
"""


def bg_ll(r, alpha, a, b, x, tx, T):
    a1 = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    a2 = math.lgamma(a + b) + math.lgamma(b + x) - math.lgamma(b) - math.lgamma(a + b + x)
    a3 = -(r + x) * math.log(alpha + T)
    if x == 0:
        return a1 + a2 + a3
    a4 = math.log(a) - math.log(b + x - 1) - (r + x) * math.log(alpha + tx)
    top = max(a3, a4)
    return a1 + a2 + top + math.log(math.exp(a3 - top) + math.exp(a4 - top))


def gg_ll(p, q, g, x, m):
    return (math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q) + q * math.log(g)
            + (p * x - 1) * math.log(m) + p * x * math.log(x) - (p * x + q) * math.log(x * m + g))


def hyp2f1(a, b, c, z):
    term, total, n = 1.0, 1.0, 0
    while abs(term) > 1e-17 * abs(total):
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        n += 1
    return total


def p_alive(r, alpha, a, b, x, tx, T):
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x))


def conditional(r, alpha, a, b, x, tx, T, t):
    z = t / (alpha + T + t)
    top = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    bottom = 1.0 + (a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 0.0)
    return top / bottom


def unconditional(r, alpha, a, b, t):
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))


def checks(con, answers, rows_of, num):
    """(name, journeydb rows, independent rows) for the canonical FIT and PREDICT statements."""
    summaries = [(c, int(x), rec / 7, age / 7, int(act), mv)
                 for c, x, rec, age, act, mv in con.execute(SUMMARY_SQL).fetchall()]
    fit = {(r["model"], r["parameter"]): r["value"] for r in rows_of(answers[0])}
    r, alpha, a, b = (fit[("bg_nbd", k)] for k in ("r", "alpha", "a", "b"))
    p, q, g = (fit[("gamma_gamma", k)] for k in ("p", "q", "gamma"))
    out = []

    def bg_total(params):
        return sum(bg_ll(*params, x, tx, T) for _, x, tx, T, _, _ in summaries)

    repeaters = [(x, mv) for _, x, _, _, _, mv in summaries if x > 0 and mv and mv > 0]

    def gg_total(params):
        return sum(gg_ll(*params, x, m) for x, m in repeaters)

    def is_maximum(total, params):
        best = total(params)
        for i in range(len(params)):
            for step in (0.999, 1.001):
                moved = list(params)
                moved[i] *= step
                if total(moved) > best + 1e-9 * abs(best):
                    return False
        return True

    text = answers[0]["text"]
    got = [(fit[("bg_nbd", "customers")], num(fit[("bg_nbd", "log_likelihood")]),
            fit[("gamma_gamma", "customers")], num(fit[("gamma_gamma", "log_likelihood")]))]
    want = [(len(summaries), bg_total((r, alpha, a, b)), len(repeaters), gg_total((p, q, g)))]
    out.append((f"{text} (customers, log-likelihoods)", got, want))
    out.append((f"{text} (a maximum)", [(True, True)],
                [(is_maximum(bg_total, (r, alpha, a, b)), is_maximum(gg_total, (p, q, g)))]))
    published = [(0.243, 0.0005), (4.414, 0.0005), (0.793, 0.0005), (2.426, 0.0005), (6.25, 0.005), (3.74, 0.005), (15.44, 0.005)]
    within = [abs(v - want) <= tol for v, (want, tol) in zip((r, alpha, a, b, p, q, g), published)]
    out.append((f"{text} (the published parameters)", [tuple(within)], [tuple(True for _ in within)]))

    groups = {}
    for _, x, tx, T, actual, _ in summaries:
        expected = conditional(r, alpha, a, b, x, tx, T, HORIZON)
        forecast = unconditional(r, alpha, a, b, T + HORIZON) - unconditional(r, alpha, a, b, T)
        for label in ("all", str(x) if x < 7 else "7+"):
            row = groups.setdefault(label, [0, 0.0, 0.0, 0])
            row[0] += 1
            row[1] += expected
            row[2] += forecast
            row[3] += actual
    got = sorted((row["frequency"], row["customers"], num(row["expected_total"]), num(row["forecast_total"]),
                  row["actual_total"]) for row in rows_of(answers[1]) if row["customers"])
    want = sorted((k, n, e, f, act) for k, (n, e, f, act) in groups.items())
    out.append((answers[1]["text"], got, want))

    def clv(x, tx, T, value):
        total, before = 0.0, 0.0
        for unit in range(1, HORIZON + 1):
            now = conditional(r, alpha, a, b, x, tx, T, unit)
            total += (now - before) * value
            before = now
        return total

    got = sorted((row["customer"], row["frequency"], num(row["recency"]), num(row["age"]), num(row["p_alive"]),
                  num(row["expected_purchases"]), num(row["expected_value"]), num(row["clv"]))
                 for row in rows_of(answers[2]))
    want = []
    for c, x, tx, T, _, mv in summaries:
        value = p * (g + x * (mv or 0.0)) / (p * x + q - 1)
        want.append((c, x, tx, T, p_alive(r, alpha, a, b, x, tx, T), conditional(r, alpha, a, b, x, tx, T, HORIZON),
                     value, clv(x, tx, T, value)))
    out.append((answers[2]["text"], got, sorted(want)))
    return out

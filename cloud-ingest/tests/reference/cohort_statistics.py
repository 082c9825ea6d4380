#!/usr/bin/env python3
"""Reference values for the cohort watch's statistics (tests/cohort_statistics.rs).

Run once, with scipy and statsmodels installed, to regenerate cohort_statistics.json:

    pip install scipy statsmodels
    python3 cloud-ingest/tests/reference/cohort_statistics.py

The Rust side computes the same quantities with statrs and its own code; the test
checks they agree. The cases are chosen to cover small and large counts, tiny and
huge expectations, and p-values across many orders of magnitude.
"""

import json
import pathlib

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.rates import confint_poisson

OUT = pathlib.Path(__file__).with_name("cohort_statistics.json")

# One-sided conditional binomial test: k of n events where a share p was due.
share_cases = []
for k, n, p in [(1, 1, 0.5), (3, 4, 0.2), (10, 12, 0.3), (25, 34, 0.37), (6, 7, 0.32),
                (0, 5, 0.1), (150, 260, 0.4), (2, 2, 0.01), (1000, 1900, 0.47)]:
    pv = stats.binomtest(k, n, p, alternative="greater").pvalue if k > 0 else 1.0
    share_cases.append({"observed": k, "total": n, "share": p, "p": float(pv)})

# Exact (Garwood) 95 % interval for a Poisson mean.
interval = []
for k in [0, 1, 2, 5, 10, 37, 250]:
    low, high = confint_poisson(k, 1.0, method="exact-c", alpha=0.05)
    interval.append({"observed": k, "low": float(low), "high": float(high)})

# Two Poisson rates, conditional exact test: a of a+b, share of exposure under H0.
ratio = []
for a, xa, b, xb in [(40, 20.0, 2, 40.0), (5, 10.0, 4, 10.0), (1, 1.0, 30, 100.0),
                     (120, 300.0, 90, 500.0), (3, 2.0, 0, 50.0)]:
    share = xa / (xa + xb)
    p = stats.binomtest(a, a + b, share, alternative="greater").pvalue
    ratio.append({"a": a, "exposure_a": xa, "b": b, "exposure_b": xb, "p": float(p)})

# Benjamini-Hochberg q-values.
rng = np.random.default_rng(20261203)
p_family = np.concatenate([rng.uniform(size=40), [1e-6, 3e-4, 0.002, 0.01, 0.04]])
q_family = multipletests(p_family, method="fdr_bh")[1]

# Gamma-Poisson empirical Bayes, Marshall (1991) method of moments.
pairs = [(3, 1.0), (30, 10.0), (12, 11.0), (9, 10.5), (0, 2.0), (15, 12.0), (1, 0.4)]
o = np.array([p[0] for p in pairs], dtype=float)
e = np.array([p[1] for p in pairs])
m = o.sum() / e.sum()
s2 = (e * (o / e - m) ** 2).sum() / e.sum()
v = s2 - m / e.mean()
alpha, beta = m * m / v, m / v
shrunk = (o + alpha) / (e + beta)

OUT.write_text(json.dumps({
    "generated_by": f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}, numpy {np.__version__}",
    "share_upper_tail": share_cases,
    "poisson_interval_95": interval,
    "rate_ratio_upper_tail": ratio,
    "bh": {"p": p_family.tolist(), "q": q_family.tolist()},
    "eb": {"pairs": pairs, "mean": m, "variance": v, "shrunk": shrunk.tolist()},
}, indent=1) + "\n")
print(f"wrote {OUT}")

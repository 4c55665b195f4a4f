"""Reference values for src/evaluation/drift-metrics.ts and monitoring-layout.ts.

Run with Debian's python3-scipy / python3-numpy:  /usr/bin/python3 generate.py > monitoring.json
Independent of the TypeScript code: scipy.spatial.distance.jensenshannon, numpy.cumsum,
numpy.linalg.solve, numpy.searchsorted, numpy.linspace.
"""
import json
import math
import sys

import numpy as np
import scipy
from scipy.spatial.distance import jensenshannon

EPS = 1e-4
rng = np.random.default_rng(20261208)


def psi(r, c):
    p = np.asarray(r, float) / np.sum(r)
    q = np.asarray(c, float) / np.sum(c)
    p = np.maximum(p, EPS)
    q = np.maximum(q, EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(r, c):
    p = np.cumsum(np.asarray(r, float) / np.sum(r))
    q = np.cumsum(np.asarray(c, float) / np.sum(c))
    return float(np.max(np.abs(p - q)))


histograms = []
for n in [2, 3, 5, 10, 18, 50]:
    for zeros in [False, True]:
        r = rng.integers(0, 100, n).astype(float)
        c = rng.integers(0, 100, n).astype(float)
        if zeros:
            r[0] = 0
            c[-1] = 0
        r[1] += 1  # a positive total
        c[1] += 1
        histograms.append({
            "reference": r.tolist(),
            "current": c.tolist(),
            "psi": psi(r, c),
            "jsDistanceBase2": float(jensenshannon(r, c, base=2)),
            "jsDistanceNatural": float(jensenshannon(r, c)),
            "ks": ks(r, c),
        })

label_shift = []
for k in [2, 3, 4]:
    for _ in range(3):
        # A diagonal-heavy confusion matrix (rows = labels, columns = predictions), as the layout keeps it.
        conf = rng.integers(1, 20, (k, k)).astype(float) + np.diag(rng.integers(50, 200, k))
        predicted = rng.integers(10, 300, k).astype(float)
        joint = conf / conf.sum()
        C = joint.T  # C[i][j] = P(yhat = i, y = j)
        mu = predicted / predicted.sum()
        w = np.linalg.solve(C, mu)
        w = np.maximum(w, 0)
        p_y = joint.sum(axis=1)
        est = w * p_y
        label_shift.append({
            "confusion": conf.flatten().tolist(),
            "predicted": predicted.tolist(),
            "weights": w.tolist(),
            "referenceLabels": p_y.tolist(),
            "estimatedLabels": (est / est.sum()).tolist(),
        })

latency_edges = [2.0 ** (i - 2) for i in range(17)]
percentiles = []
for _ in range(6):
    counts = rng.integers(0, 30, 18).astype(float)
    counts[3] += 1
    cum = np.cumsum(counts)
    edges = np.array(latency_edges + [math.inf])
    out = {}
    for q in [0.5, 0.9, 0.99, 1.0]:
        i = int(np.searchsorted(cum, q * cum[-1], side="left"))
        out[str(q)] = None if math.isinf(edges[i]) else float(edges[i])
    percentiles.append({"counts": counts.tolist(), "percentiles": out})

feature_bins = []
for bins in [16, 10]:
    edges = np.linspace(-4, 4, bins + 1)
    z = np.concatenate([rng.normal(0, 2.5, 40), [-4.0, 4.0, 0.0, -4.5, 7.0, 3.999]])
    if bins == 16:
        z = np.concatenate([z, [0.5, -0.5, 3.5, -3.5]])
    feature_bins.append({
        "bins": bins,
        "z": z.tolist(),
        "index": np.searchsorted(edges, z, side="right").tolist(),
    })

ms = np.concatenate([rng.lognormal(1, 2, 30), [0.0, 0.25, 0.2500001, 1.0, 16384.0, 16385.0, 1e6]])
latency_bins = {
    "ms": ms.tolist(),
    "index": np.searchsorted(np.array(latency_edges), ms, side="left").tolist(),
}

json.dump({
    "source": f"scipy {scipy.__version__}, numpy {np.__version__}",
    "psiEpsilon": EPS,
    "histograms": histograms,
    "labelShift": label_shift,
    "latencyPercentiles": percentiles,
    "featureBins": feature_bins,
    "latencyBins": latency_bins,
}, sys.stdout, indent=1)
sys.stdout.write("\n")

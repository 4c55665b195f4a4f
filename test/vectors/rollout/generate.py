"""Reference values for src/evaluation/paired-outcomes.ts (McNemar's test on paired outcomes).

Run from the repository root: /usr/bin/python3 test/vectors/rollout/generate.py
Writes test/vectors/rollout/mcnemar-reference.json. Deterministic (fixed cases, no randomness).
"""
import json
import math
import random
import sys

import numpy as np

import scipy
from scipy.stats import binomtest, chi2

# (b, c): production-only-correct and candidate-only-correct discordant counts.
CASES = [
    (0, 0), (0, 1), (1, 0), (1, 1), (0, 5), (3, 7), (7, 3), (5, 5), (10, 20), (25, 10),
    (0, 30), (12, 12), (40, 61), (100, 130), (333, 300), (1000, 1100), (1000, 1000),
    (5000, 5300), (20000, 20500), (100000, 101000), (250000, 250001), (3, 300), (0, 2000),
]

rows = []
for b, c in CASES:
    n = b + c
    p = 1.0 if n == 0 else float(binomtest(min(b, c), n, 0.5, alternative='two-sided').pvalue)
    stat = None if n == 0 else (abs(b - c) - 1) ** 2 / n
    stat_p = None if stat is None else float(chi2.sf(stat, 1))
    rows.append({'b': b, 'c': c, 'exactP': p, 'chiSquareCorrected': stat, 'chiSquareCorrectedP': stat_p})

# A paired sample: both models scored on the same 300 rows (random.Random(7), fixed).
rng = random.Random(7)
sample = []
for _ in range(300):
    cc = rng.random() < 0.86
    pc = rng.random() < 0.82
    sample.append({
        'candidateCorrect': cc,
        'productionCorrect': pc,
        'candidateLoss': round(rng.uniform(0, 3), 6),
        'productionLoss': round(rng.uniform(0, 3), 6),
    })
d = np.array([r['candidateLoss'] - r['productionLoss'] for r in sample])
b = sum(1 for r in sample if r['productionCorrect'] and not r['candidateCorrect'])
c = sum(1 for r in sample if r['candidateCorrect'] and not r['productionCorrect'])
cand = np.mean([r['candidateCorrect'] for r in sample])
prod = np.mean([r['productionCorrect'] for r in sample])
paired = {
    'rows': sample,
    'expected': {
        'rows': len(sample),
        'bothCorrect': sum(1 for r in sample if r['candidateCorrect'] and r['productionCorrect']),
        'candidateOnlyCorrect': c,
        'productionOnlyCorrect': b,
        'bothWrong': sum(1 for r in sample if not r['candidateCorrect'] and not r['productionCorrect']),
        'candidateAccuracy': float(cand),
        'productionAccuracy': float(prod),
        'accuracyDifference': float(cand - prod),
        'mcnemarP': float(binomtest(min(b, c), b + c, 0.5).pvalue),
        'mcnemarChiSquare': (abs(b - c) - 1) ** 2 / (b + c),
        'meanLossDifference': float(d.mean()),
        'lossDifferenceStdError': float(d.std(ddof=1) / math.sqrt(len(d))),
    },
}

out = {
    'source': 'scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue; (|b - c| - 1)^2 / (b + c); chi2.sf(., 1)',
    'python': sys.version.split()[0],
    'scipy': scipy.__version__,
    'numpy': np.__version__,
    'cases': rows,
    'paired': paired,
}
with open('test/vectors/rollout/mcnemar-reference.json', 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')

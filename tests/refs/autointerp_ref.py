#!/usr/bin/env python3
"""autointerp_ref.py -- reference values for evals/autointerp's metrics, computed independently
of the C code (Python standard library only):

  auc       by counting pairs: P(score of a positive > score of a negative) + 0.5 P(tie),
            not by ranks as the C code does;
  pearson   statistics.correlation;
  balanced accuracy and F1 from their definitions on random confusion counts.

Writes tests/fixtures/autointerp/metrics_ref.json. Run by tests/refs/make_refs.sh.
"""
import json
import os
import random
import statistics

rng = random.Random(20261128)
cases = {"auc": [], "pearson": [], "binary": []}
for n in (2, 7, 40, 300):
    # scores with many ties (multiples of 0.1), labels at random, both classes present
    while True:
        y = [rng.randint(0, 1) for _ in range(n)]
        if 0 < sum(y) < n:
            break
    p = [round(rng.randint(0, 10) / 10, 1) for _ in range(n)]
    pos = [s for s, l in zip(p, y) if l]
    neg = [s for s, l in zip(p, y) if not l]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    cases["auc"].append({"p": p, "y": y, "auc": wins / (len(pos) * len(neg))})
for n in (3, 10, 200):
    x = [rng.gauss(0, 1) for _ in range(n)]
    yv = [0.7 * a + rng.gauss(0, 0.5) for a in x]
    cases["pearson"].append({"x": x, "y": yv, "r": statistics.correlation(x, yv)})
for _ in range(6):
    tp, fp, tn, fn = (rng.randint(0, 50) for _ in range(4))
    if tp + fn == 0 or tn + fp == 0:
        continue
    bacc = (tp / (tp + fn) + tn / (tn + fp)) / 2
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    cases["binary"].append({"tp": tp, "fp": fp, "tn": tn, "fn": fn, "bacc": bacc, "f1": f1})

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out = os.path.join(root, "tests", "fixtures", "autointerp", "metrics_ref.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
print("wrote", out)

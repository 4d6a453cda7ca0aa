"""Train the learned score offline: `python bench/train_model.py --corpus DIR [--out FILE]`.

Reads the labelled corpus (`cases.jsonl`; full cases only: the model scores scanned packages),
augments it so that the model cannot lean on tea.yaml (every spam case also without its tea
files, every benign case also with a tea.yaml naming a wallet; no feature looks at tea files,
but file counts would), extracts `proxy.detect.features`, and fits an L2-regularised logistic
regression by Newton's method (pure Python, no dependency; deterministic: folds come from a
seeded hash of the package name, so a case and its augmented copy share a fold). Platt
calibration is fitted on out-of-fold scores, so the shipped output is a probability.

Prints in-sample and cross-validated figures (AUC, recall and false-positive rate at the
signal's thresholds) and writes the model JSON (default: proxy/detect/learned_model.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.detect_eval import read_cases, tea_added, tea_dropped
from proxy.detect.facts import Subject, facts_from_case
from proxy.detect.features import NAMES, extract
from proxy.detect.learned import FORMAT, MODEL_FILE, sigmoid
from proxy.detect.signals.learned_score import HIGH_P, MEDIUM_P

SEED = 20261201
FOLDS = 5
L2 = 1.0  # ridge penalty on standardised weights
ITERATIONS = 50

Row = tuple[list[float], int, str]  # features, label (1 spam), name


def rows_from(cases: Sequence[dict[str, Any]]) -> list[Row]:
    out: list[Row] = []
    for case in cases:
        if not isinstance(case.get("files"), list):
            continue
        label = 1 if case["label"] == "spam" else 0
        variants = [case, tea_dropped(case) if label else tea_added(case)]
        for variant in variants:
            package, version, tarball = facts_from_case(variant)
            subject = Subject(package, package.version(version) if version else None, tarball)
            x = extract(subject)
            if x is not None:
                out.append(([x[n] for n in NAMES], label, str(case["name"])))
    return out


def fold_of(name: str, seed: int = SEED) -> int:
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest(), 16) % FOLDS


def standardise(xs: list[list[float]]) -> tuple[list[float], list[float]]:
    n, k = len(xs), len(xs[0])
    means = [sum(x[j] for x in xs) / n for j in range(k)]
    scales = []
    for j in range(k):
        var = sum((x[j] - means[j]) ** 2 for x in xs) / n
        scales.append(math.sqrt(var) if var > 1e-12 else 1.0)
    return means, scales


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (a is small and positive definite)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - sum(m[r][c] * out[c] for c in range(r + 1, n))) / m[r][r]
    return out


def fit(zs: list[list[float]], ys: list[int], weights: list[float]) -> tuple[list[float], float]:
    """Weighted L2 logistic regression on standardised rows; returns (weights, bias)."""
    k = len(zs[0])
    beta = [0.0] * (k + 1)  # last: bias
    for _ in range(ITERATIONS):
        grad = [0.0] * (k + 1)
        hess = [[0.0] * (k + 1) for _ in range(k + 1)]
        for z, y, w in zip(zs, ys, weights, strict=True):
            row = [*z, 1.0]
            p = sigmoid(sum(b * v for b, v in zip(beta, row, strict=True)))
            g = w * (p - y)
            h = w * p * (1 - p)
            for i in range(k + 1):
                grad[i] += g * row[i]
                hi = hess[i]
                for j in range(i + 1):
                    hi[j] += h * row[i] * row[j]
        for i in range(k + 1):
            for j in range(i):
                hess[j][i] = hess[i][j]
        for i in range(k):
            grad[i] += L2 * beta[i]
            hess[i][i] += L2
        step = _solve(hess, grad)
        beta = [b - s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-8:
            break
    return beta[:k], beta[k]


def train(rows: list[Row]) -> tuple[list[float], list[float], list[float], float]:
    xs = [r[0] for r in rows]
    ys = [r[1] for r in rows]
    means, scales = standardise(xs)
    zs = [[(v - m) / s for v, m, s in zip(x, means, scales, strict=True)] for x in xs]
    pos = sum(ys)
    neg = len(ys) - pos
    weights = [len(ys) / (2 * pos) if y else len(ys) / (2 * neg) for y in ys]  # balanced
    w, b = fit(zs, ys, weights)
    return means, scales, w, b


def logit(
    x: list[float], means: list[float], scales: list[float], w: list[float], b: float
) -> float:
    return b + sum(wi * (v - m) / s for v, m, s, wi in zip(x, means, scales, w, strict=True))


def platt(scores: list[float], ys: list[int]) -> tuple[float, float]:
    """Fit p = sigmoid(a * score + b) by Newton's method (Platt's targets for smoothing)."""
    pos = sum(ys)
    neg = len(ys) - pos
    t = [(pos + 1) / (pos + 2) if y else 1 / (neg + 2) for y in ys]
    a, b = 1.0, 0.0
    for _ in range(100):
        ga = gb = haa = hab = hbb = 0.0
        for s, ti in zip(scores, t, strict=True):
            p = sigmoid(a * s + b)
            d = p - ti
            h = p * (1 - p)
            ga += d * s
            gb += d
            haa += h * s * s
            hab += h * s
            hbb += h
        haa += 1e-9
        hbb += 1e-9
        det = haa * hbb - hab * hab
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-10:
            break
    return a, b


def auc(scores: list[float], ys: list[int]) -> float:
    pos = [s for s, y in zip(scores, ys, strict=True) if y]
    neg = [s for s, y in zip(scores, ys, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def report(what: str, probs: list[float], ys: list[int]) -> dict[str, float]:
    out: dict[str, float] = {"auc": round(auc(probs, ys), 4)}
    pos = sum(ys)
    neg = len(ys) - pos
    for name, cut in (("high", HIGH_P), ("medium", MEDIUM_P)):
        tp = sum(1 for p, y in zip(probs, ys, strict=True) if y and p >= cut)
        fp = sum(1 for p, y in zip(probs, ys, strict=True) if not y and p >= cut)
        out[f"recall_{name}"] = round(tp / pos, 4)
        out[f"fp_rate_{name}"] = round(fp / neg, 4)
    brier = sum((p - y) ** 2 for p, y in zip(probs, ys, strict=True)) / len(ys)
    out["brier"] = round(brier, 4)
    print(f"  {what:28} " + "  ".join(f"{k} {v}" for k, v in out.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder holding cases.jsonl")
    parser.add_argument("--out", type=Path, default=MODEL_FILE, help="model JSON to write")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the fold assignment")
    args = parser.parse_args(argv)
    path = args.corpus / "cases.jsonl" if args.corpus.is_dir() else args.corpus
    rows = rows_from(read_cases(path))
    ys = [r[1] for r in rows]
    print(f"training rows: {len(rows)} ({sum(ys)} spam, {len(ys) - sum(ys)} benign; "
          "each case twice: as is and with tea files dropped/added)")  # fmt: skip
    # out-of-fold logits for calibration and the cross-validated figures
    oof = [0.0] * len(rows)
    for k in range(FOLDS):
        train_idx = [i for i, r in enumerate(rows) if fold_of(r[2], args.seed) != k]
        test_idx = [i for i, r in enumerate(rows) if fold_of(r[2], args.seed) == k]
        means, scales, w, b = train([rows[i] for i in train_idx])
        for i in test_idx:
            oof[i] = logit(rows[i][0], means, scales, w, b)
    a, c = platt(oof, ys)
    means, scales, w, b = train(rows)
    fitted = [logit(r[0], means, scales, w, b) for r in rows]
    print("figures (calibrated probabilities; thresholds of the learned-score signal):")
    in_sample = report("in-sample", [sigmoid(a * s + c) for s in fitted], ys)
    cv = report(f"{FOLDS}-fold cross-validated", [sigmoid(a * s + c) for s in oof], ys)
    print("weights (standardised features):")
    for n, wi in sorted(zip(NAMES, w, strict=True), key=lambda t: -abs(t[1])):
        print(f"  {n:24} {wi:+.3f}")
    doc = {
        "format": FORMAT,
        "features": list(NAMES),
        "means": [round(v, 6) for v in means],
        "scales": [round(v, 6) for v in scales],
        "weights": [round(v, 6) for v in w],
        "bias": round(b, 6),
        "calibration": {"a": round(a, 6), "b": round(c, 6)},
        "meta": {
            "trained": "bench/train_model.py on the dev corpus (full cases, tea-augmented)",
            "seed": args.seed,
            "rows": len(rows),
            "spam_rows": sum(ys),
            "l2": L2,
            "in_sample": in_sample,
            "cross_validated": cv,
        },
    }
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

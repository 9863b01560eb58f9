"""The numbers a probe is judged by, each with its uncertainty: AUROC, TPR and FPR at a threshold, and
a percentile-bootstrap interval for every one of them.

Why intervals: a rate measured on a few dozen rows can be off by tens of points (one benign control of
twelve is 8%); a figure without its interval invites more trust than its sample can carry. The
bootstrap resamples rows with replacement, within each class for the AUROC so every resample has
both classes; the seed is fixed so an artifact's intervals are reproducible.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 1000
LEVEL = 0.95


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve, or NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def auroc_ci(y: np.ndarray, s: np.ndarray, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the AUROC; [NaN, NaN] when a class is missing."""
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.empty(BOOTSTRAP)
    for i in range(BOOTSTRAP):
        p = rng.choice(pos, len(pos))
        n = rng.choice(neg, len(neg))
        # Mann-Whitney form of the AUROC: P(positive > negative) + half the ties
        values[i] = (p[:, None] > n[None, :]).mean() + 0.5 * (p[:, None] == n[None, :]).mean()
    return _interval(values)


def rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


def rate_ci(hits: np.ndarray, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of a proportion (TPR or FPR) over the given boolean rows."""
    if len(hits) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = rng.choice(hits.astype(np.float64), (BOOTSTRAP, len(hits))).mean(axis=1)
    return _interval(values)


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.quantile(values, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def threshold_at_fpr(benign_scores: np.ndarray, fpr: float) -> float:
    """The smallest score that at most `fpr` of the benign scores reach: the (1 - fpr) quantile, taken
    at an observed value ("higher") so the achieved FPR on these scores is <= fpr."""
    return float(np.quantile(benign_scores, 1 - fpr, method="higher"))

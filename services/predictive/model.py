"""Fitting a calibrated logistic regression, and applying it as a pure, vectorised function.

Training uses scikit-learn: a Pipeline (StandardScaler, LogisticRegression) inside
CalibratedClassifierCV (sigmoid, `ensemble=False`: one model fitted on all training rows, its
calibration fitted on cross-validated predictions). The fitted numbers are copied into an
`Artifact` — feature names, means, scales, coefficients, intercept, the sigmoid's a and b — stored
as JSON. Serving needs only numpy: p = 1 / (1 + exp(a·z + b)) with z = Σ coef·(x − mean)/scale.
A feature's contribution to one lead is coef × its standardised value (in log-odds, before the
monotone calibration), so "why" adds up to the model's own decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Matrix = NDArray[np.float64]
FORMAT = "logistic-v1"


@dataclass(frozen=True)
class Artifact:
    features: tuple[str, ...]
    mean: Matrix
    scale: Matrix
    coef: Matrix
    intercept: float
    cal_a: float
    cal_b: float

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "calibration": {"a": self.cal_a, "b": self.cal_b},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Artifact:
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown artifact format {doc.get('format')!r}")
        return cls(
            features=tuple(doc["features"]),
            mean=np.asarray(doc["mean"], dtype=np.float64),
            scale=np.asarray(doc["scale"], dtype=np.float64),
            coef=np.asarray(doc["coef"], dtype=np.float64),
            intercept=float(doc["intercept"]),
            cal_a=float(doc["calibration"]["a"]),
            cal_b=float(doc["calibration"]["b"]),
        )


def matrix(rows: Sequence[dict[str, float]], features: Sequence[str]) -> Matrix:
    """Rows of feature dicts as a dense matrix over `features` (absent features are 0)."""
    index = {name: j for j, name in enumerate(features)}
    x = np.zeros((len(rows), len(features)), dtype=np.float64)
    for i, row in enumerate(rows):
        for name, value in row.items():
            j = index.get(name)
            if j is not None:
                x[i, j] = value
    return x


def fit(x: Matrix, y: NDArray[np.int_], features: Sequence[str], c: float = 0.5, folds: int = 3) -> Artifact:
    """A calibrated logistic regression on (x, y); needs at least `folds` rows of each class."""
    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(C=c, max_iter=2000))])
    calibrated = CalibratedClassifierCV(pipe, method="sigmoid", cv=folds, ensemble=False)
    # One BLAS thread: these matrices are small, and spinning threads on a busy host cost more than they give.
    with threadpool_limits(limits=1):
        calibrated.fit(x, y)
    inner = calibrated.calibrated_classifiers_[0]
    fitted: Pipeline = inner.estimator
    scaler: StandardScaler = fitted.named_steps["scale"]
    lr: LogisticRegression = fitted.named_steps["lr"]
    sigmoid = inner.calibrators[0]
    return Artifact(
        features=tuple(features),
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=np.asarray(lr.coef_[0], dtype=np.float64),
        intercept=float(lr.intercept_[0]),
        cal_a=float(sigmoid.a_),
        cal_b=float(sigmoid.b_),
    )


def contributions(art: Artifact, x: Matrix) -> Matrix:
    """Per row and feature: coefficient × standardised value (log-odds before calibration)."""
    result: Matrix = (x - art.mean) / art.scale * art.coef
    return result


def predict(art: Artifact, x: Matrix) -> Matrix:
    """Calibrated probabilities, one per row."""
    z = contributions(art, x).sum(axis=1) + art.intercept
    result: Matrix = 1.0 / (1.0 + np.exp(np.clip(art.cal_a * z + art.cal_b, -500, 500)))
    return result


def top_features(art: Artifact, x_row: Matrix, contrib_row: Matrix, k: int = 5) -> list[dict[str, Any]]:
    """The `k` features that moved this lead's prediction most, up or down, strongest first."""
    order = np.argsort(-np.abs(contrib_row))[:k]
    sign = -1.0 if art.cal_a > 0 else 1.0  # the calibration is monotone; a > 0 would invert it
    return [
        {
            "feature": art.features[j],
            "value": round(float(x_row[j]), 4),
            "contribution": round(float(contrib_row[j]), 4),
            "direction": "raises" if sign * contrib_row[j] > 0 else "lowers",
        }
        for j in order
        if contrib_row[j] != 0
    ]


def strongest(art: Artifact, k: int = 10) -> list[dict[str, Any]]:
    """The model's largest coefficients (per standard deviation of the feature), for the training report."""
    order = np.argsort(-np.abs(art.coef))[:k]
    return [{"feature": art.features[j], "coef": round(float(art.coef[j]), 4)} for j in order]

"""The learned score: a small logistic model over `features`, read from a JSON file.

The model is trained offline by `bench/train_model.py` (deterministic, fixed seed) and shipped
as `proxy/detect/learned_model.json`: feature names, the standardisation (mean, scale), the
weights and bias, and a Platt calibration fitted on out-of-fold scores, so that the output is a
probability. Inference is pure Python: a dot product and a sigmoid.

`Model.load` refuses a file that is not a model of the current feature set (a clear
`ValueError`); the detector then runs without the learned score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from proxy.detect.features import NAMES

MODEL_FILE = Path(__file__).with_name("learned_model.json")
FORMAT = 1


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Scored:
    probability: float  # calibrated P(farm | features)
    contributions: tuple[tuple[str, float, float], ...]  # (feature, value, weight * z-score)


@dataclass(frozen=True, slots=True)
class Model:
    names: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    calib_a: float
    calib_b: float
    meta: Mapping[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Model:
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a learned-score model of format {FORMAT}")
        names = tuple(str(n) for n in doc["features"])
        if names != NAMES:
            raise ValueError("the model's features are not the detector's feature set")
        vectors = [tuple(float(x) for x in doc[k]) for k in ("means", "scales", "weights")]
        if any(len(v) != len(names) for v in vectors):
            raise ValueError("the model's vectors do not match its features")
        if any(s <= 0 for s in vectors[1]):
            raise ValueError("the model has a non-positive scale")
        calib = doc.get("calibration") or {"a": 1.0, "b": 0.0}
        return cls(
            names,
            vectors[0],
            vectors[1],
            vectors[2],
            float(doc["bias"]),
            float(calib["a"]),
            float(calib["b"]),
            dict(doc.get("meta") or {}),
        )

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> Model:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the learned-score model {path}: {exc}") from exc

    def logit(self, x: Mapping[str, float]) -> float:
        return self.bias + sum(
            w * (x[n] - m) / s
            for n, m, s, w in zip(self.names, self.means, self.scales, self.weights, strict=True)
        )

    def score(self, x: Mapping[str, float]) -> Scored:
        parts = tuple(
            (n, x[n], w * (x[n] - m) / s)
            for n, m, s, w in zip(self.names, self.means, self.scales, self.weights, strict=True)
        )
        z = self.bias + sum(c for _, _, c in parts)
        p = sigmoid(self.calib_a * z + self.calib_b)
        return Scored(p, tuple(sorted(parts, key=lambda t: (-t[2], t[0]))))


@cache
def shipped() -> Model | None:
    """The model shipped with Floodgate, loaded once (None when it cannot be read)."""
    try:
        return Model.load()
    except ValueError:
        return None

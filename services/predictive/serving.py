"""The active models in a scoring process, and predicting a batch of leads at once.

`ActiveModels` re-reads which versions are active at most every `refresh_seconds` and loads an
artifact only when its version changes, so an activation or a rollback reaches every scoring
process within that time. `predict_batch` is pure: one feature matrix per model for the whole
batch, one vectorised apply.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.predictive import repository
from services.predictive.model import Artifact, contributions, matrix, predict, top_features


@dataclass(frozen=True)
class Loaded:
    funnel_model: str
    version: int
    artifact: Artifact


@dataclass(frozen=True)
class Prediction:
    lead_id: uuid.UUID
    funnel_model: str
    version: int
    probability: float
    top: list[dict[str, Any]]


class ActiveModels:
    """The active model of each funnel model, cached per process."""

    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._models: dict[str, Loaded] = {}
        self._checked = -float("inf")

    async def get(self, session: AsyncSession) -> list[Loaded]:
        now = time.monotonic()
        if now - self._checked < self.refresh_seconds:
            return list(self._models.values())
        versions = await repository.active_versions(session)
        wanted = {v for f, v in versions.items() if f not in self._models or self._models[f].version != v}
        docs = await repository.artifacts(session, wanted) if wanted else {}
        models = {}
        for funnel, version in versions.items():
            if funnel in self._models and self._models[funnel].version == version:
                models[funnel] = self._models[funnel]
            elif version in docs:
                models[funnel] = Loaded(funnel, version, Artifact.from_json(docs[version]))
        self._models, self._checked = models, now
        return list(models.values())


def predict_batch(
    models: Sequence[Loaded], leads: Sequence[uuid.UUID], rows: Sequence[dict[str, float]], top: int = 5
) -> list[Prediction]:
    """Every model applied to every lead's features, one matrix per model."""
    out = []
    for m in models:
        x = matrix(rows, m.artifact.features)
        contrib = contributions(m.artifact, x)
        probs = predict(m.artifact, x)
        for i, lead in enumerate(leads):
            out.append(
                Prediction(
                    lead, m.funnel_model, m.version, round(float(probs[i]), 4),
                    top_features(m.artifact, x[i], contrib[i], top),
                )
            )  # fmt: skip
    return out

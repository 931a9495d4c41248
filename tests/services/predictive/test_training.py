"""Training on generated histories: a known signal is found and activated; explanations point at it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.predictive.features import Event, extract
from services.predictive.model import contributions, matrix, predict, top_features
from services.predictive.service import Outcome, Params, train
from services.scoring.engine import Scorer
from services.scoring.rules import default_rule_set
from tests.services.predictive.generate import generate

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def signal() -> Outcome:
    leads = [g.history() for g in generate(1500, 1, NOW, signal=True)]
    return train(leads, Scorer(default_rule_set(), 1), NOW, Params(min_positives=30, bootstrap=500))


def test_a_known_signal_is_found_and_the_model_activated(signal: Outcome) -> None:
    m = signal.metrics
    assert signal.activate, signal.reason
    assert m["train"]["positives"] >= 30 and m["test"]["positives"] >= 30
    assert m["model"]["auc"] > 0.75
    assert m["model"]["auc"] > m["rules"]["auc"] + 0.05
    assert m["auc_gain_lower_bound"] > 0
    assert m["model"]["precision_top_decile"] > 2 * m["base_rate"]
    top = {s["feature"] for s in m["strongest"][:4]}
    assert any(f.startswith("pricing") for f in top), m["strongest"]
    assert top & {"email:business", "email:free"}, m["strongest"]


def test_calibration_is_reported_and_close_on_average(signal: Outcome) -> None:
    bins = signal.metrics["model"]["reliability"]
    leads = sum(b["leads"] for b in bins)
    assert leads == signal.metrics["test"]["leads"]
    predicted = sum(b["predicted"] * b["leads"] for b in bins) / leads
    assert abs(predicted - signal.metrics["base_rate"]) < 0.03
    assert 0 <= signal.metrics["model"]["brier"] < signal.metrics["base_rate"]


def test_a_hot_lead_is_explained_by_pricing_and_its_email(signal: Outcome) -> None:
    art = signal.artifact
    assert art is not None
    pricing = [Event("page", None, "/pricing", NOW - timedelta(days=d)) for d in (1, 2)]
    hot = extract({"title": "Engineer"}, "ann@corp.io", pricing, NOW)
    cold = extract({"title": "Engineer"}, "bob@gmail.com", [Event("page", None, "/blog", NOW)], NOW)
    x = matrix([hot, cold], art.features)
    p = predict(art, x)
    assert p[0] > 3 * p[1]
    why = top_features(art, x[0], contributions(art, x)[0], k=8)
    raising = {w["feature"] for w in why if w["direction"] == "raises"}
    assert any(f.startswith("pricing") for f in raising), why
    assert "email:business" in raising or "email:free" in raising, why
    lowering = top_features(art, x[1], contributions(art, x)[1], k=4)
    assert all(w["direction"] == "lowers" for w in lowering[:2]), lowering
    assert np.all((p >= 0) & (p <= 1))

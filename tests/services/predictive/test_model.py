"""The pure parts: features by window, the numpy apply against scikit-learn, AUC and the decision."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]

from services.predictive.evaluation import auc, decide, lower_bounds, precision_at_top
from services.predictive.features import Event, extract, traits_at, vocabulary
from services.predictive.model import Artifact, contributions, fit, matrix, predict, top_features

AT = datetime(2026, 6, 1, tzinfo=UTC)


def test_features_count_events_per_window_and_ignore_the_future() -> None:
    events = [
        Event("page", None, "/pricing", AT - timedelta(days=2)),
        Event("page", None, "/pricing/enterprise", AT - timedelta(days=20)),
        Event("page", None, "/blog", AT - timedelta(days=60)),
        Event("track", "Email Opened", None, AT - timedelta(days=100)),  # outside every window
        Event("page", None, "/pricing", AT + timedelta(days=1)),  # after the snapshot
        Event("track", "Webinar Attended", None, AT - timedelta(days=3)),
    ]
    f = extract({"title": "VP Marketing", "employees": "1,200", "industry": "Software"}, "a@corp.io", events, AT)
    assert f["pricing_7d"] == pytest.approx(math.log1p(1))
    assert f["pricing_30d"] == pytest.approx(math.log1p(2))
    assert f["page_90d"] == pytest.approx(math.log1p(3))
    assert f["email_open_90d"] == 0
    assert f["email_open_recency"] == 1.0
    assert f["pricing_recency"] == pytest.approx(2 / 90)
    assert f["event:webinar attended"] == pytest.approx(math.log1p(1))
    assert f["title:senior"] == 1.0 and f["email:business"] == 1.0 and f["industry=software"] == 1.0
    assert f["employees_log"] == pytest.approx(math.log1p(1200))
    assert extract({}, "x@gmail.com", [], AT)["email:free"] == 1.0


def test_traits_at_a_time_are_the_identify_calls_until_then() -> None:
    calls = [(AT, {"title": "CEO"}), (AT - timedelta(days=9), {"title": "Intern", "country": "DE"})]
    assert traits_at(calls, AT - timedelta(days=1)) == {"title": "Intern", "country": "DE"}
    assert traits_at(calls, AT) == {"title": "CEO", "country": "DE"}


def test_vocabulary_keeps_rare_one_hot_keys_out() -> None:
    rows = [{"pricing_7d": 1.0, "industry=retail": 1.0}] * 3 + [{"industry=mining": 1.0}]
    assert vocabulary(rows, min_count=2) == ["pricing_7d", "industry=retail"]


def test_numpy_apply_matches_scikit_learn_and_survives_json() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4)) * [1, 5, 0.1, 2] + [0, 3, 1, -1]
    y = (x[:, 0] + 0.3 * x[:, 1] + rng.normal(size=400) > 1).astype(int)
    art = fit(x, y, ["a", "b", "c", "d"])
    again = Artifact.from_json(art.to_json())
    # The same estimator scikit-learn would use, refitted: the stored numbers reproduce its probabilities.
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

    pipe = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(C=0.5, max_iter=2000))])
    reference = CalibratedClassifierCV(pipe, method="sigmoid", cv=3, ensemble=False).fit(x, y)
    np.testing.assert_allclose(predict(again, x), reference.predict_proba(x)[:, 1], rtol=1e-6)
    contrib = contributions(again, x)
    top = top_features(again, x[0], contrib[0], k=2)
    assert top[0]["feature"] in {"a", "b"}
    assert top[0]["direction"] == ("raises" if contrib[0][again.features.index(top[0]["feature"])] > 0 else "lowers")


def test_matrix_puts_missing_features_at_zero() -> None:
    x = matrix([{"a": 2.0, "zz": 9.0}, {"b": 1.0}], ["a", "b"])
    assert x.tolist() == [[2.0, 0.0], [0.0, 1.0]]


def test_auc_counts_ties_half_and_precision_at_top() -> None:
    y = np.array([1, 0, 1, 0])
    assert auc(np.array([0.9, 0.1, 0.8, 0.2]), y) == 1.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert auc(np.array([0.1, 0.9, 0.2, 0.8]), y) == 0.0
    scores = np.arange(20, dtype=float)
    labels = np.array([0] * 18 + [1, 0])
    assert precision_at_top(scores, labels) == 0.5


def test_gain_bound_is_positive_only_for_a_clearly_better_model() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.2).astype(int)
    good = y + rng.normal(scale=0.5, size=600)
    noise = rng.normal(size=600)
    gain, chance = lower_bounds(good, noise, y, 0.95, 500, 1)
    assert gain > 0.2 and chance > 0.3
    gain, _ = lower_bounds(noise, good, y, 0.95, 500, 1)
    assert gain < 0


def test_decision_needs_positives_and_a_gain() -> None:
    assert not decide(10, 50, 0.2, 0.3, 30, 0.95).activate
    assert "too few positives" in decide(50, 10, 0.2, 0.3, 30, 0.95).reason
    assert not decide(50, 50, -0.01, 0.3, 30, 0.95).activate
    assert not decide(50, 50, 0.01, -0.01, 30, 0.95).activate
    assert decide(50, 50, 0.01, 0.01, 30, 0.95).activate


def test_only_a_leads_latest_events_count_so_a_hot_lead_costs_no_more() -> None:
    from services.predictive.features import MAX_EVENTS

    old = [Event("page", None, "/pricing", AT - timedelta(days=60, seconds=i)) for i in range(50)]
    recent = [Event("page", None, "/blog", AT - timedelta(seconds=i)) for i in range(MAX_EVENTS)]
    f = extract({}, None, old + recent, AT)
    assert f["page_90d"] == pytest.approx(math.log1p(MAX_EVENTS))
    assert f["pricing_90d"] == 0  # pushed out by the newer ones

"""One training run against the database: load histories, fit and judge (in a worker thread, the
pure `service.train`), store the run, activate it when the decision says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.predictive import repository
from services.predictive.features import LONGEST
from services.predictive.service import Params, train
from services.scoring.rulebook import active, scorer_of
from shared.settings import PredictiveSettings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


class TrainingError(ValueError):
    """The request names a funnel model or stage the active rules do not have."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def params_of(settings: PredictiveSettings, **overrides: object) -> Params:
    values = {
        "funnel_model": settings.predictive_funnel_model or "",
        "target_stage": settings.predictive_target_stage,
        "horizon_days": settings.predictive_horizon_days,
        "train_snapshots": settings.predictive_train_snapshots,
        "min_positives": settings.predictive_min_positives,
        "confidence": settings.predictive_confidence,
        "bootstrap": settings.predictive_bootstrap,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Params(**values)  # type: ignore[arg-type]


async def run_training(
    session: AsyncSession, params: Params, now: datetime, max_leads: int, progress: Progress = log.info
) -> repository.RunRow:
    """Train, store the run with its metrics, decision and reason, and activate it if it earned it."""
    rules_row = await active(session)
    scorer = scorer_of(rules_row)
    funnel = scorer.rules.model(params.funnel_model or scorer.rules.primary_model)
    if funnel is None:
        raise TrainingError(f"no funnel model {params.funnel_model!r} in the active rules", "funnel_model")
    names = [s.name for s in funnel.stages]
    if params.target_stage not in names:
        raise TrainingError(f"funnel model {funnel.name!r} has no stage {params.target_stage!r}", "target_stage")
    params = Params(**(params.to_json() | {"funnel_model": funnel.name}))
    reached = names[names.index(params.target_stage) :]
    horizon = timedelta(days=params.horizon_days)
    since = now - horizon * (params.train_snapshots + 1) - LONGEST
    progress(f"loading leads with events since {since.date()} (funnel model {funnel.name}, target {reached[0]})")
    leads = await repository.histories(session, funnel.name, reached, since, max_leads)
    progress(f"{len(leads)} leads, {sum(len(h.events) for h in leads)} events; training and evaluating")
    outcome = await asyncio.to_thread(train, leads, scorer, now, params)
    m = outcome.metrics
    progress(
        f"train {m['train']['leads']} leads ({m['train']['positives']} positives), "
        f"test {m['test']['leads']} leads ({m['test']['positives']} positives)"
    )
    if "model" in m:
        progress(
            f"AUC model {m['model']['auc']} vs rules {m['rules']['auc']}; precision at top decile "
            f"{m['model']['precision_top_decile']} vs {m['rules']['precision_top_decile']}; brier {m['model']['brier']}"
        )
    version = await repository.insert_run(
        session,
        funnel_model=funnel.name,
        target_stage=params.target_stage,
        horizon_days=params.horizon_days,
        decision="activate" if outcome.activate else "reject",
        reason=outcome.reason,
        metrics=m,
        artifact=outcome.artifact.to_json() if outcome.artifact is not None else None,
        params=params.to_json() | {"max_leads": max_leads, "now": now.isoformat()},
        rule_set_version=rules_row.version,
    )
    if outcome.activate:
        await repository.activate(session, version)
    progress(f"model version {version}: {'activated' if outcome.activate else 'not activated'} ({outcome.reason})")
    row = await repository.run(session, version)
    assert row is not None  # noqa: S101 - inserted in this transaction
    return row


async def training_loop(settings: PredictiveSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Train every `predictive_train_interval_hours` in one scoring process at a time (advisory lock)."""
    interval = settings.predictive_train_interval_hours * 3600
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            async with sessionmaker() as session, session.begin():
                if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(7315530)")):
                    continue
                await run_training(session, params_of(settings), datetime.now(UTC), settings.predictive_max_leads)
        except Exception:
            log.exception("scheduled predictive training failed; next attempt in %.0f s", interval)


async def train_once(settings: PredictiveSettings, progress: Progress, **overrides: object) -> repository.RunRow:
    """`funnelstream train`: one run in its own transaction (waits for the schema like the services)."""
    from funnelstream.migrate import wait_for_schema
    from shared.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        await wait_for_schema(engine)
        async with make_sessionmaker(engine)() as session, session.begin():
            params = params_of(settings, **overrides)
            return await run_training(session, params, datetime.now(UTC), settings.predictive_max_leads, progress)
    finally:
        await engine.dispose()

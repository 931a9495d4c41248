"""Which variant of an A/B step a lead gets, as the scheduler asks it.

With a running experiment on the step the variant is the one already recorded for the lead, else
`assign(experiment id, lead)` over the experiment's weights; once a winner is decided, leads not yet
assigned get the winner. Without an experiment (none created yet, or stopped) the step still splits
by its own weights, keyed by sequence and step, and nothing is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.nurture.experiments import repository
from services.nurture.experiments.assignment import assign
from services.nurture.sequences.definition import EmailVariant, SendEmail, Split, SplitPath


@dataclass(frozen=True)
class Choice:
    experiment_id: uuid.UUID | None
    variant: str
    template_id: str | None  # a send step's variant
    next: str | None  # a split's path

    def exposed(
        self, lead_id: uuid.UUID, enrollment_id: uuid.UUID, key: str, now: datetime
    ) -> list[repository.Exposure]:
        """The exposure to record (none without an experiment); `key` is "<enrollment>:<step count>"."""
        if self.experiment_id is None:
            return []
        return [repository.Exposure(self.experiment_id, lead_id, self.variant, enrollment_id, key, now)]


async def choose(session: AsyncSession, sequence_id: uuid.UUID, step: SendEmail | Split, lead_id: uuid.UUID) -> Choice:
    """The lead's variant of `step` (the same one every time it is asked)."""
    arms: list[EmailVariant] | list[SplitPath] = step.variants if isinstance(step, SendEmail) else step.paths
    by_key = {arm.key: arm for arm in arms}
    own = assign(f"{sequence_id}:{step.id}", lead_id, [(arm.key, arm.weight) for arm in arms])
    found = await repository.live_for_step(session, sequence_id, step.id, lead_id)
    experiment_id: uuid.UUID | None = None
    key = own
    if found is not None:
        experiment, recorded = found
        experiment_id = experiment["id"]
        if recorded is not None:
            key = recorded
        elif experiment["winner"] is not None:
            key = experiment["winner"]
        else:
            weights = [(v["key"], float(v["weight"])) for v in experiment["variants"]]
            key = assign(str(experiment_id), lead_id, weights)
    arm = by_key.get(key) or by_key[own]  # an older version of the sequence without that variant
    return Choice(
        experiment_id if arm.key == key else None,
        arm.key,
        arm.template_id if isinstance(arm, EmailVariant) else None,
        arm.next if isinstance(arm, SplitPath) else None,
    )

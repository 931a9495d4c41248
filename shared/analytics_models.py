"""Funnel analytics tables: incrementally maintained summaries, campaign spend and exchange rates (issue 8).

Summary tables are keyed by the fixed report dimensions: day, funnel model, the lead's source and its
first-touch utm source and campaign ('' and the nil UUID stand for "none", so they can be key columns).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Index, Integer, Numeric, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

NIL = text("'00000000-0000-0000-0000-000000000000'::uuid")
EMPTY = text("''")
ZERO = text("0")


class AnalyticsTouch(Base):
    """The first utm-tagged event of an identity (user or anonymous id), from the `events` topic."""

    __tablename__ = "analytics_touches"

    identity_kind: Mapped[str] = mapped_column(Text, primary_key=True)
    identity_value: Mapped[str] = mapped_column(Text, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    utm_source: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    utm_medium: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, server_default=EMPTY)


class AnalyticsLead(Base):
    """A lead as analytics knows it: when first seen, its attribution, its orders."""

    __tablename__ = "analytics_leads"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    utm_medium: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    orders: Mapped[int] = mapped_column(Integer, server_default=ZERO)
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_analytics_leads_customers", "last_order_at", postgresql_where=text("orders > 0")),)


class AnalyticsLeadStage(Base):
    """Where a lead is in one funnel model, since when, and which stages it ever reached."""

    __tablename__ = "analytics_lead_stages"

    lead_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reached: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))

    __table_args__ = (Index("ix_analytics_lead_stages_stage", "model", "stage", "entered_at"),)


class AnalyticsFunnelDaily(Base):
    """Leads entering and leaving each stage, per day and dimensions."""

    __tablename__ = "analytics_funnel_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    entered: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)
    exited: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)

    __table_args__ = (Index("ix_analytics_funnel_daily_model_day", "model", "day"),)


class AnalyticsDuration(Base):
    """Histogram of time spent in a stage (stage `__cycle__`: first seen to won), by the day it ended."""

    __tablename__ = "analytics_durations"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    leads: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)

    __table_args__ = (Index("ix_analytics_durations_model_day", "model", "day"),)


class AnalyticsCohort(Base):
    """Leads of an entry week reaching a stage for the first time, so many weeks after entering."""

    __tablename__ = "analytics_cohorts"

    cohort_week: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(Text, primary_key=True)
    week_offset: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    leads: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)

    __table_args__ = (Index("ix_analytics_cohorts_model_week", "model", "cohort_week"),)


class AnalyticsLeadsDaily(Base):
    """New leads (first seen) per day and dimensions."""

    __tablename__ = "analytics_leads_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    new_leads: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)


class AnalyticsRevenueDaily(Base):
    """Orders and revenue (in the order's currency) per day and dimensions; `first_orders` are new customers."""

    __tablename__ = "analytics_revenue_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=NIL)
    utm_source: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, primary_key=True, server_default=EMPTY)
    currency: Mapped[str] = mapped_column(Text, primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)
    first_orders: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)
    revenue: Mapped[Decimal] = mapped_column(Numeric(18, 4), server_default=ZERO)


class AnalyticsEmailEngagement(Base):
    """Opens and clicks of one email (by Message-ID), human and bot counted apart."""

    __tablename__ = "analytics_email_engagement"

    message_id: Mapped[str] = mapped_column(Text, primary_key=True)
    opens: Mapped[int] = mapped_column(Integer, server_default=ZERO)
    clicks: Mapped[int] = mapped_column(Integer, server_default=ZERO)
    bot_opens: Mapped[int] = mapped_column(Integer, server_default=ZERO)
    bot_clicks: Mapped[int] = mapped_column(Integer, server_default=ZERO)


class AnalyticsSpend(Base):
    """Campaign spend entered through the API."""

    __tablename__ = "analytics_spend"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    day: Mapped[date] = mapped_column(Date)
    source_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    utm_source: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    utm_campaign: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, server_default=EMPTY)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_analytics_spend_day", "day"),)


class AnalyticsRate(Base):
    """An exchange rate entered through the API: 1 `base` = `rate` `quote`, valid from `day`."""

    __tablename__ = "analytics_rates"

    base: Mapped[str] = mapped_column(Text, primary_key=True)
    quote: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 10))


class AnalyticsAlert(Base):
    """Whether an alert (the stalled-lead count of a model over its threshold) is raised, since when."""

    __tablename__ = "analytics_alerts"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    count: Mapped[int] = mapped_column(Integer, server_default=ZERO)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

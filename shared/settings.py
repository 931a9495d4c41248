"""Settings, read from FUNNELSTREAM_* environment variables, one frozen class per service."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FUNNELSTREAM_"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


class Settings(BaseSettings):
    """What every process needs: where the database and the broker are, and how topics are named."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    database_url: str = Field(description="PostgreSQL URL, e.g. postgresql://user:pass@host/db")
    kafka_bootstrap_servers: str = Field(description="Comma-separated host:port list of Kafka brokers")
    kafka_idempotence: bool = Field(
        default=True,
        description="Idempotent producer; on for real Kafka, off for the embedded broker (it refuses it)",
    )
    kafka_compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = Field(
        default="zstd", description="Producer compression; zstd measured fastest here (Kafka >= 2.1)"
    )
    kafka_linger_ms: int = Field(default=2, ge=0, le=1000, description="How long the producer waits to fill a batch")
    topic_prefix: str = Field(default="funnelstream.", pattern=r"^[A-Za-z0-9._-]*$")
    partitions: int = Field(default=12, ge=1, le=10_000, description="Partitions per topic when created")
    health_port: int = Field(
        default=0, ge=0, le=65535, description="Health/metrics port of consumers; 0 picks a free port"
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=1000, le=300_000, description="Consumer group session timeout; also bounds join time"
    )
    consumer_batch_size: int = Field(default=500, ge=1, le=100_000)
    consumer_poll_ms: int = Field(default=100, ge=1, le=60_000)
    consumer_fetch_wait_ms: int = Field(
        default=20,
        ge=0,
        le=10_000,
        description="How long the broker may hold a fetch to fill it; low keeps the reaction to a lone event fast",
    )
    log_level: str = Field(default="INFO", pattern=r"^(?i)(DEBUG|INFO|WARNING|ERROR)$")

    @property
    def asyncpg_url(self) -> str:
        """The database URL in the form SQLAlchemy's asyncpg dialect wants."""
        return to_asyncpg_url(self.database_url)


class IngestSettings(Settings):
    """The public collection edge."""

    secret_key: SecretStr = Field(description="Signs tracking, unsubscribe and form tokens")
    ingest_workers: int = Field(default=1, ge=1, le=256)
    # Every tracking answer waits for the broker's acknowledgement, so a linger is paid by each call;
    # batches fill from concurrent requests anyway (measured with bench/ingest.py, see README).
    kafka_linger_ms: int = Field(default=0, ge=0, le=1000, description="How long the producer waits to fill a batch")
    produce_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    write_key_cache_seconds: float = Field(default=10.0, ge=0, le=3600, description="How long a revoked key may work")
    rate_limit_per_second: float = Field(
        default=2000, ge=0, description="Events per second per write key and worker; 0 turns the limit off"
    )
    rate_limit_burst: int = Field(default=10_000, ge=1, description="Events a write key may send at once")
    sns_verify_signatures: bool = Field(
        default=True,
        description="Verify Amazon SNS message signatures on /v1/email-feedback/ses (fetches Amazon's certificate)",
    )
    sendgrid_verification_key: str | None = Field(
        default=None,
        max_length=1024,
        description="SendGrid's signed Event Webhook verification key (base64); set, unsigned events are refused",
    )
    # -- lead capture forms (services/forms)
    form_min_seconds: float = Field(
        default=2.0, ge=0, le=3600, description="A form submitted sooner after it was shown is refused (bots)"
    )
    form_max_seconds: float = Field(
        default=86_400, gt=0, le=30 * 86_400, description="A form shown longer ago is refused (reload to submit)"
    )
    form_ip_per_minute: int = Field(default=10, ge=0, description="Form submissions per IP and minute; 0: no limit")
    form_per_minute: int = Field(default=120, ge=0, description="Submissions per form and minute; 0: no limit")


class PredictiveSettings(Settings):
    """Predictive scoring (issue 10): read by `funnelstream train`, the admin API and the scoring process."""

    predictive_funnel_model: str | None = Field(default=None, description="Funnel model to learn; none: the primary")
    predictive_target_stage: str = Field(default="customer", description="Stage whose reaching is predicted")
    predictive_horizon_days: float = Field(default=30, gt=0, le=3650, description="Reached within this many days")
    predictive_train_snapshots: int = Field(default=3, ge=1, le=24, description="Training snapshots, a horizon apart")
    predictive_min_positives: int = Field(default=30, ge=1, description="Positives needed in training and in test")
    predictive_confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Of the AUC-gain lower bound")
    predictive_bootstrap: int = Field(default=1000, ge=100, le=100_000, description="Bootstrap samples of the gain")
    predictive_max_leads: int = Field(default=50_000, ge=100, description="At most this many leads per training")
    predictive_train_interval_hours: float = Field(
        default=0, ge=0, description="Scoring processes train this often (one at a time); 0: only on command"
    )


class AdminSettings(PredictiveSettings):
    """The admin API and dashboard."""

    admin_token: SecretStr = Field(description="Bearer token for every /api route")
    secret_key: SecretStr
    # -- marketer console (services/console)
    console_session_hours: float = Field(
        default=12, gt=0, le=24 * 90, description="A console sign-in lasts this long, then asks for the password"
    )
    console_invite_hours: float = Field(
        default=72, gt=0, le=24 * 90, description="An invite link works once, for this many hours"
    )
    console_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Public URL of the admin API and console, for invite links; default: the URL of the request",
    )


class ScoringSettings(PredictiveSettings):
    """The scoring consumer, which also applies retention."""

    anonymous_retention_days: int = Field(
        default=90, ge=0, description="Delete never-identified anonymous leads idle this long; 0 keeps them"
    )
    event_retention_days: int = Field(default=395, ge=0, description="Delete lead event history older; 0 keeps it")
    dedup_window_hours: float = Field(
        default=24, gt=0, description="How long applied event ids are remembered to skip redeliveries"
    )
    retention_interval_seconds: float = Field(default=3600, gt=0)
    tick_seconds: float = Field(
        default=60, gt=0, description="How often the scoring tick (inactivity, decay crossing thresholds) is published"
    )
    rescore_chunk: int = Field(default=200, ge=1, le=10000, description="Leads rebuilt per transaction in a rescore")
    rescore_poll_seconds: float = Field(default=2.0, gt=0, description="How often to look for leads to rescore")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Deadline of one webhook POST")
    webhook_max_attempts: int = Field(default=12, ge=1, le=100, description="Attempts before a delivery fails")
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=3600, description="How often due deliveries are sent")
    webhook_backoff_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="Wait after the first failure; doubles per attempt, at most 1 h"
    )


class NurtureSettings(Settings):
    """The nurture consumer and scheduler."""

    secret_key: SecretStr
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "FunnelStream <noreply@localhost>"
    # -- templates (services/nurture/templates)
    # -- consent (services/nurture/consent)
    # -- delivery (services/nurture/delivery)
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Public URL of the collection edge, for the open pixel, click and unsubscribe links in emails",
    )
    mailbox_dir: Path | None = Field(
        default=None, description="Write emails as .eml files into this folder instead of SMTP (the dev mailbox)"
    )
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Deadline of one SMTP attempt, from connecting to the server's answer"
    )
    smtp_connections: int = Field(
        default=4, ge=1, le=64, description="SMTP connections kept open per process; a batch goes out over all of them"
    )
    smtp_attempts: int = Field(
        default=4, ge=1, le=20, description="Attempts per email while errors happen before the server took it"
    )
    smtp_backoff_seconds: float = Field(
        default=2.0, gt=0, le=600, description="Wait after a transient SMTP error; doubles per attempt, at most 60 s"
    )
    send_lease_seconds: float = Field(
        default=600,
        ge=30,
        le=86_400,
        description="How long a claimed send may take; a claim older than this whose process died becomes `unknown`",
    )
    send_sweep_seconds: float = Field(
        default=30, gt=0, le=3600, description="How often expired claims are turned into `unknown` sends"
    )
    dkim_domain: str | None = Field(default=None, description="DKIM d= for sources without their own key")
    dkim_selector: str | None = Field(default=None, description="DKIM s= for sources without their own key")
    dkim_private_key: SecretStr | None = Field(default=None, description="PEM RSA key signing mail (DKIM)")
    default_timezone: str = Field(default="UTC", description="IANA time zone of sources without their own")
    # -- sequences and scheduler (services/nurture/sequences)
    quiet_hours_start: time = Field(default=time(21, 0), description="Marketing mail waits from this local time ...")
    quiet_hours_end: time = Field(default=time(8, 0), description="... until this one, in the recipient's time zone")
    frequency_cap_hours: float = Field(
        default=16,
        ge=0,
        le=24 * 30,
        description="At most one marketing email per lead in this many hours, across sequences",
    )
    scheduler_poll_seconds: float = Field(default=0.25, gt=0, le=60, description="How often due steps are looked for")
    scheduler_batch: int = Field(default=500, ge=1, le=10_000, description="Due steps taken per scheduler round")
    # -- cart reminders (services/commerce; per-shop schedules, templates and incentives via /api/commerce)
    cart_reminder_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often carts with a due reminder are looked for"
    )
    cart_reminder_batch: int = Field(default=200, ge=1, le=10_000, description="Due carts taken per reminder round")
    # -- experiments (services/nurture/experiments)
    experiment_check_seconds: float = Field(
        default=60, gt=0, le=86_400, description="How often running auto-winner experiments are evaluated"
    )
    # -- retargeting audiences (services/nurture/audiences)
    audience_sync_seconds: float = Field(
        default=10, gt=0, le=60, description="How often membership changes are pushed to destinations"
    )
    audience_refresh_seconds: float = Field(
        default=60, gt=0, le=86_400, description="How often time-driven changes (windows, idle carts) are found"
    )
    audience_backoff_seconds: float = Field(
        default=30, gt=0, le=3600, description="Wait after a failed sync; doubles per failure, at most 1 h"
    )
    audience_http_timeout_seconds: float = Field(default=30, gt=0, le=300, description="Deadline of one push request")
    audience_batch_size: int = Field(default=10_000, ge=1, le=10_000, description="Records per push request")
    meta_api_base_url: str = Field(default="https://graph.facebook.com", description="Meta Graph API base URL")
    meta_api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    google_ads_api_base_url: str = Field(default="https://googleads.googleapis.com", description="Google Ads API")
    google_ads_api_version: str = Field(default="v26", pattern=r"^v\d+$")


class AnalyticsSettings(Settings):
    """The analytics consumer (summaries, stalled-lead alert) and the analytics API and dashboard."""

    reporting_currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="Currency money is reported in (rates entered via the API)"
    )
    analytics_won_stages: str = Field(
        default="customer,purchase,won",
        description="Stage names that count as won (sales cycle, forecast); else a model's last stage",
    )
    analytics_stalled_days: float = Field(
        default=30, gt=0, description="A lead in one stage longer than this is stalled (reports and alert)"
    )
    analytics_stalled_alert_threshold: int = Field(
        default=100, ge=1, description="Webhook `analytics.stalled_leads` when a model's stalled count reaches this"
    )
    analytics_alert_interval_seconds: float = Field(
        default=300, gt=0, le=86_400, description="How often the stalled-lead count is checked for the alert"
    )
    analytics_churn_days: int = Field(
        default=180, ge=1, description="A customer with no purchase in this many days counts as churned"
    )


class DevSettings(BaseSettings):
    """What only `funnelstream dev` reads; the rest comes from the service classes above."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    data_dir: Path = Path(".funnelstream")
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    admin_token: SecretStr | None = None
    secret_key: SecretStr | None = None


ALL_SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    Settings,
    IngestSettings,
    AdminSettings,
    ScoringSettings,
    NurtureSettings,
    AnalyticsSettings,
    DevSettings,
)


def setting_env_names() -> set[str]:
    """Every environment variable name that some settings class reads."""
    return {ENV_PREFIX + name.upper() for cls in ALL_SETTINGS_CLASSES for name in cls.model_fields}


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build a settings object, turning validation errors into one line per bad setting."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(part) for part in err["loc"]).upper()
            msg = "is not set" if err["type"] == "missing" else err["msg"]
            lines.append(f"{name}: {msg}")
        raise SettingsError("; ".join(lines)) from None


def to_asyncpg_url(url: str) -> str:
    """postgresql://… or postgres://… → postgresql+asyncpg://…"""
    for scheme in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    raise SettingsError(f"{ENV_PREFIX}DATABASE_URL: must start with postgresql:// (got {url.split(':')[0]}:)")


def to_libpq_url(url: str) -> str:
    """The plain postgresql:// form asyncpg.connect accepts."""
    return "postgresql://" + to_asyncpg_url(url)[len("postgresql+asyncpg://") :]

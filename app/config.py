"""Runtime configuration: one Settings object read from HERALD_* environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Env(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Provider(StrEnum):
    SIMULATED = "simulated"
    CLOUD_API = "cloud_api"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class MessagingTier(StrEnum):
    """The Cloud API's messaging limit tiers: unique users per moving 24 hours."""

    TIER_250 = "250"
    TIER_2K = "2000"
    TIER_10K = "10000"
    TIER_100K = "100000"
    UNLIMITED = "unlimited"

    @property
    def limit(self) -> int | None:
        """Unique users per window; None when unlimited."""
        return None if self is MessagingTier.UNLIMITED else int(self.value)


class ConfigError(Exception):
    """Raised with one human-readable line naming the offending variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", env_file=".env", extra="ignore")

    env: Env = Env.DEV
    # Unset URLs mean "start embedded services" under `herald dev`; other commands require them.
    database_url: str | None = None
    redis_url: str | None = None
    # The Dramatiq broker: unset means Redis (HERALD_REDIS_URL); an amqp:// URL selects
    # RabbitMQ (needs the [rabbitmq] extra). Redis keeps the cache, locks, quotas and limits.
    broker_url: str | None = None
    data_dir: str = ".herald"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    graphiql: bool | None = None  # None: on in dev, off in prod
    # Adds `extensions.sqlStatements` to every GraphQL response (tests, bench, debugging).
    expose_sql_count: bool = False
    # Benchmarks only: no batching, no caching — the audited API's N+1 state, for the ratio.
    naive_resolvers: bool = False
    # Plain attribute fields answered from a per-selection plan (schema/execution/executor.py);
    # false runs every field through graphql-core's standard path.
    fast_execution: bool = True

    # Observability (app/observability/requests.py, app/observability/metrics.py).
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat | None = None  # None: text in dev, one JSON object per line in prod
    # Strawberry's OpenTelemetry extension + an OTLP exporter configured by OTEL_* variables;
    # needs the [otel] extra, imported only when on.
    otel_enabled: bool = False

    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)
    import_max_rows: int = Field(default=10_000, ge=1)

    # Security (issue 6): query limits, request size, rate limits, error masking.
    query_max_depth: int = Field(default=10, ge=1)
    # Parsing costs 4 to 6 µs a token: the limit bounds what a new document costs before
    # any other check can refuse it. Herald's largest documents (README, clients,
    # introspection) hold under 250; 1,000 is also GraphQL Armor's default.
    query_max_tokens: int = Field(default=1_000, ge=10)
    query_max_aliases: int = Field(default=30, ge=0)
    # Times one response path may be asked for (overlapping fragments merge a few).
    query_max_field_repeats: int = Field(default=20, ge=1)
    # Cost: each field costs 1, times the page size (`first`, else page_size_default) of
    # every connection above it; lists without `first` count as query_cost_list_size items.
    query_max_cost: int = Field(default=250_000, ge=1)
    query_cost_list_size: int = Field(default=10, ge=1)
    query_timeout_s: float = Field(default=10.0, gt=0)
    request_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A GraphQL request without a well-formed key: introspection is under 2 KB.
    request_max_bytes_anonymous: int = Field(default=8 * 1024, ge=1024)
    # A request's line and headers: larger is refused with 431 before it is all buffered.
    http_max_head_bytes: int = Field(default=16 * 1024, ge=1024)
    # From connection (or a kept-alive connection's next byte) to a complete head: a client
    # trickling its headers (slowloris) is cut off after this.
    http_head_timeout_s: float = Field(default=10.0, gt=0)
    http_keep_alive_s: float = Field(default=5.0, gt=0)  # an idle connection is closed
    # HTTP requests one process works on at once; more are answered 503 (app/http/shedding.py).
    max_in_flight: int = Field(default=32, ge=1)
    # Sliding window per API key (anonymous callers: per client address); 0 turns it off.
    rate_limit_requests: int = Field(default=600, ge=0)
    rate_limit_window_s: float = Field(default=60.0, gt=0)
    # How long a process trusts a key lookup (app/api_keys/auth.py); 0 looks up every request.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    introspection: bool | None = None  # None: on in dev, off in prod
    # A JSON manifest of trusted documents, {id: document} (app/http/persisted.py), read at start;
    # with `trusted_documents_only` no other document runs.
    trusted_documents: str | None = None
    trusted_documents_only: bool = False
    mask_errors: bool | None = None  # None: off in dev, on in prod
    # Pre-filled in GraphiQL's headers; set by `herald dev` only, ignored outside dev.
    graphiql_api_key: str | None = None

    # Live progress over WebSocket (subscriptions, app/live/hub.py).
    live_min_interval_ms: int = Field(default=200, ge=10)  # at most ~5 events/s per campaign
    live_poll_s: float = Field(default=2.0, gt=0)  # safety re-read while pub/sub is up
    live_fallback_poll_s: float = Field(default=1.0, gt=0)  # re-read while Redis is down
    live_max_subscriptions_per_connection: int = Field(default=10, ge=1)
    live_max_subscriptions_per_key: int = Field(default=100, ge=1)  # over all API processes
    # A subscription counts against its key's cap this long after its process last renewed it.
    live_subscription_lease_s: float = Field(default=30.0, ge=1)
    live_connection_init_timeout_s: float = Field(default=5.0, gt=0)
    live_ping_interval_s: float = Field(default=15.0, gt=0)  # server pings; no pong: closed
    live_key_recheck_s: float = Field(default=5.0, gt=0)  # revoked keys end within this
    # A campaign's progress stream ends once it is final and no late status has moved its
    # figures for progress_settle_s, or progress_settle_max_s after its final status.
    progress_settle_s: float = Field(default=5.0, ge=0)
    progress_settle_max_s: float = Field(default=60.0, ge=0)

    cache_ttl_stats: int = Field(default=60, ge=1)
    cache_ttl_categories: int = Field(default=120, ge=1)
    cache_ttl_contacts_count: int = Field(default=60, ge=1)
    cache_ttl_contacts_list: int = Field(default=30, ge=1)
    cache_ttl_campaigns_list: int = Field(default=15, ge=1)
    cache_ttl_campaign_stats: int = Field(default=60, ge=1)

    whatsapp_provider: Provider = Provider.SIMULATED
    whatsapp_api_base_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_phone_number_id: str = ""
    # The default number as WhatsApp shows it (digits): quality webhooks name it so.
    whatsapp_display_number: str = ""
    whatsapp_access_token: str = ""
    # The WhatsApp Business Account whose message templates `herald templates sync` lists.
    whatsapp_business_account_id: str = ""
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    # Whether the provider posts status webhooks (the Cloud API does). Off: a message whose
    # worker died mid-send stays failed "unknown"; retryFailedMessages may re-send it.
    whatsapp_status_webhooks: bool = True
    # The portfolio's messaging limit: unique users reached outside a customer-service window
    # in a moving 24 h (app/whatsapp/limit.py). Unset: the tier the Cloud API last reported
    # (business_capability_update), 250 until it reports one.
    whatsapp_messaging_limit: MessagingTier | None = None
    # Replaced by whatsapp_messaging_limit: set, it stops the process with a pointer to it.
    whatsapp_daily_quota: str | None = None
    # The default sender number's throughput, messages per second (each sender number has
    # its own, app/senders/).
    whatsapp_rate_per_second: int = Field(default=80, ge=1)
    # A slow-down error (130429...) halves the shared rate; it climbs back linearly, from 0
    # to the full rate in this many seconds (app/whatsapp/pacing.py).
    whatsapp_rate_recovery_s: float = Field(default=20.0, gt=0)

    # Redis clients heal after a blip: connections idle this long are checked before use,
    # and a command failing on a connection or timeout error is retried on a fresh one.
    redis_health_check_interval_s: int = Field(default=5, ge=0)
    # Workers and the broker retry that many times with capped exponential backoff, which
    # rides out an outage of about 10 s; API processes retry once, at once, and then serve
    # uncached (a request must not wait for Redis).
    worker_redis_retries: int = Field(default=10, ge=0)
    redis_retry_backoff_cap_ms: int = Field(default=2_000, ge=1)

    worker_processes: int = Field(default=2, ge=1)
    worker_threads: int = Field(default=4, ge=1)

    # Dispatch (app/worker): actor retries and time limits, batch shape, crash recovery.
    worker_max_retries: int = Field(default=5, ge=0)
    worker_min_backoff_ms: int = Field(default=1_000, ge=1)
    worker_max_backoff_ms: int = Field(default=60_000, ge=1)
    worker_time_limit_ms: int = Field(default=10 * 60_000, ge=1_000)
    # Any one statement of a worker's (materializing a large campaign is the longest).
    worker_statement_timeout_s: float = Field(default=300.0, gt=0)
    dispatch_batch_size: int = Field(default=200, ge=1)
    # Independent send_batch chains per campaign; SKIP LOCKED lets them share the work.
    dispatch_lanes: int = Field(default=4, ge=1)
    # A send_batch message keeps batching this long before handing over to a new message.
    dispatch_chain_seconds: float = Field(default=1.0, ge=0)
    # Requests in flight per batch.
    dispatch_send_concurrency: int = Field(default=32, ge=1)
    # A message left in `sending` this long belongs to a dead worker: its fate is unknown.
    dispatch_sending_timeout_s: float = Field(default=300.0, gt=0)
    # Then status webhooks have this long to settle it before it is re-sent (once).
    dispatch_reconcile_grace_s: float = Field(default=120.0, ge=0)
    # Every worker process looks for sending campaigns with no live chain this often
    # (and at boot), and re-arms them.
    dispatch_recovery_interval_s: float = Field(default=15.0, gt=0)
    dispatch_lock_ttl_ms: int = Field(default=60_000, ge=100)
    whatsapp_http_timeout_s: float = Field(default=10.0, gt=0)
    whatsapp_http_retries: int = Field(default=3, ge=0)
    whatsapp_http_backoff_ms: int = Field(default=200, ge=0)
    # A provider connection idle this long is closed, not reused: shorter than any server's
    # own idle close, so a request never crosses that close on the wire (see README).
    whatsapp_http_keepalive_s: float = Field(default=2.0, gt=0)
    # Where the simulated provider posts its status callbacks and replies (default: this API).
    whatsapp_webhook_url: str | None = None
    simulated_latency_ms: int = Field(default=40, ge=0)
    simulated_failure_rate: float = Field(default=0.02, ge=0, le=1)
    simulated_reply_rate: float = Field(default=0.05, ge=0, le=1)
    # The messaging limit the simulator reports on its first send (a new portfolio's 250), so
    # a demo campaign larger than that shows one waiting for the window; -1: unlimited.
    simulated_messaging_limit: int = Field(default=250, ge=-1)
    # Callback posts in flight per worker process, and attempts per callback: a campaign's
    # callbacks come in bursts, and the API must not be flooded into refusing them.
    simulated_callback_concurrency: int = Field(default=8, ge=1)
    simulated_callback_attempts: int = Field(default=8, ge=1)
    simulated_callback_backoff_ms: int = Field(default=250, ge=0)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("whatsapp_daily_quota")
    @classmethod
    def _quota_replaced(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "replaced by HERALD_WHATSAPP_MESSAGING_LIMIT (250, 2000, 10000, 100000 or "
                "unlimited): WhatsApp limits the unique users reached in a moving 24 hours, "
                "not messages a day; unset it and set that one, or leave both unset to follow "
                "the tier the Cloud API reports"
            )
        return None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_kind(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("must be an amqp://, amqps://, redis:// or rediss:// URL")
        return value

    @property
    def log_format_effective(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.TEXT if self.env is Env.DEV else LogFormat.JSON

    @property
    def graphiql_enabled(self) -> bool:
        return self.env is Env.DEV if self.graphiql is None else self.graphiql

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is None:  # GraphiQL needs introspection to work
            return self.env is Env.DEV or self.graphiql_enabled
        return self.introspection

    @property
    def mask_errors_enabled(self) -> bool:
        return self.env is Env.PROD if self.mask_errors is None else self.mask_errors

    @property
    def async_database_url(self) -> str:
        """The URL in the form SQLAlchemy's asyncpg dialect expects."""
        if self.database_url is None:
            raise ConfigError("HERALD_DATABASE_URL: not set")
        url = self.database_url
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"HERALD_{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

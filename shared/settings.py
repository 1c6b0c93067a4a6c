"""Settings shared by every service; each service's config.py extends BaseServiceSettings."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BaseServiceSettings(BaseSettings):
    """Where Kafka and Postgres are, and how to talk to them. Read from the environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    kafka_enable_idempotence: bool = Field(
        False,
        description="Idempotent producer. On for Apache Kafka; the embedded Tansu broker refuses it.",
    )
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer session timeout; a group's first join waits about half of it."
    )
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    kafka_batch_wait_ms: int = Field(
        10, ge=1, le=1000,
        description="How long a batch consumer waits for records before it looks again. FastStream then sleeps "
                    "as long once more, deaf: at its default (200) an idle hop adds up to 400 ms, at 10 up to 20.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        500, ge=1, le=5000,
        description="How long the broker may hold a fetch that has no records yet. Tansu does not always answer "
                    "as soon as a record arrives: one raw consumer's hop was 125 ms p50 at 500 and 5.5 ms at 100; "
                    "but in the whole stack lower values did not shorten the hops (docs/benchmarks.md, Latency), "
                    "so 500 stays until that is understood.",
    )
    topic_partitions: int = Field(6, ge=1, description="Partitions of the topics a service creates.")
    topic_replication_factor: int = Field(1, ge=1)
    kafka_watch_s: float = Field(
        2.0, gt=0, description="How often a service checks that the broker still has its topics and its "
                               "consumers' positions (shared/kafka_watch.py)."
    )
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/takedown",
        description="SQLAlchemy URL of the Postgres database (asyncpg driver).",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024,
        description="Largest HTTP request body a service reads; a larger one gets 413 (a batch of 1,000 referrals "
                    "of up to 10 KB each fits).",
    )
    log_level: str = "INFO"
    auth_cache_s: float = Field(5.0, ge=0, le=300, description="How long an API key's check is remembered; "
                                "a revoked key is refused within this time.")
    oidc_issuer: str | None = Field(None, description="Issuer of accepted access tokens (JWT); unset: API keys only.")
    oidc_audience: str | None = Field(None, description="Audience accepted tokens must name.")
    oidc_jwks_url: str | None = Field(None, description="The identity provider's JWKS URL.")
    oidc_algorithms: list[str] = Field(["RS256", "ES256", "EdDSA"], description="Accepted token algorithms "
                                       "(asymmetric only).")
    oidc_roles_claim: str = Field("roles", description="Claim (dotted path) listing the caller's roles.")
    oidc_agency_claim: str = Field("agency", description="Claim naming an agency principal's agency.")
    oidc_name_claim: str = Field("sub", description="Claim naming a person, recorded as user:<name>.")

    def oidc(self):
        """The OIDC configuration, or None when no identity provider is configured."""
        from shared.auth.oidc import OidcConfig

        if not self.oidc_issuer:
            return None
        if not (self.oidc_audience and self.oidc_jwks_url):
            raise ValueError("OIDC_ISSUER needs OIDC_AUDIENCE and OIDC_JWKS_URL too")
        return OidcConfig(issuer=self.oidc_issuer, audience=self.oidc_audience, jwks_url=self.oidc_jwks_url,
                          algorithms=self.oidc_algorithms, roles_claim=self.oidc_roles_claim,
                          agency_claim=self.oidc_agency_claim, name_claim=self.oidc_name_claim)


class OutboxSettings(BaseServiceSettings):
    """How a service that publishes through an outbox (shared/outbox.py) relays and re-drives it."""

    outbox_batch: int = Field(1000, ge=1, description="Most outbox rows the relay sends at once.")
    outbox_idle_poll_s: float = Field(1.0, gt=0, description="Relay poll interval when idle.")
    redrive_after_s: float = Field(
        30.0, gt=0, description="Work that made no progress for this long is driven on again: an event its readers "
        "have not confirmed is published again, a report not delivered is put back on its lane. Each later re-drive "
        "of the same item waits twice as long, up to 64 times this.")
    reconcile_every_s: float = Field(5.0, gt=0, description="How often the reconciler looks for stuck work.")

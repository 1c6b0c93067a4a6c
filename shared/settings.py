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
    topic_partitions: int = Field(6, ge=1, description="Partitions of the topics a service creates.")
    topic_replication_factor: int = Field(1, ge=1)
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

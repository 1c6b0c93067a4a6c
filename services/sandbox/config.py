"""The sandbox's settings, from the environment; credentials default to docs/platform-apis.md's."""

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.sandbox.domain import parse_policy
from services.sandbox.personas import load_personas
from shared import webhooks
from shared.settings import BaseServiceSettings


class SandboxSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(hide_input_in_errors=True)  # a malformed secret is not echoed

    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(8090, ge=0, le=65535)
    sandbox_personas: Path | None = Field(
        None, description="YAML file of platform personas; None: the shipped services/sandbox/personas.yaml.")
    sandbox_policy: str | None = Field(
        None,
        description="Overrides every persona's decision weights, e.g. 'removed=0.48,rejected=0.40,none=0.12'; "
                    "None: each persona's own.",
    )
    sandbox_decision_delay_s: float | None = Field(
        None, ge=0, description="Overrides every persona's decision delay (seconds); None: each persona's own.")
    sandbox_seed: str = Field("takedown", description="Seed of the per-report draw; same seed, same fates.")
    sandbox_smtp_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the sandbox's SMTP mailbox for e-mail channels; None: no mailbox.")
    sandbox_token_ttl_s: int = Field(3600, ge=1, description="Lifetime of OAuth2 access tokens.")
    sandbox_state_file: Path | None = Field(
        None, description="SQLite file the sandbox keeps its tickets, keys, answers, tokens and counters in, so a "
                          "restart forgets nothing (created if missing); None: memory only.")

    sandbox_meta_client_id: str = "sandbox-meta"
    sandbox_meta_client_secret: str = "sandbox-meta-secret"
    sandbox_meta_app_secret: str = Field("sandbox-meta-app-secret", description="Signs meta's callbacks.")
    sandbox_x_client_id: str = "sandbox-x"
    sandbox_x_client_secret: str = "sandbox-x-secret"
    sandbox_x_consumer_secret: str = Field("sandbox-x-consumer-secret", description="Signs x's callbacks.")
    sandbox_youtube_api_key: str = "sandbox-youtube-key"
    sandbox_tiktok_api_key: str = "sandbox-tiktok-key"
    sandbox_webhook_secret: str = Field(
        "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA==",
        description="`whsec_<base64>` (Standard Webhooks): verifies generic webhook reports, signs their callbacks.")

    @field_validator("sandbox_policy", "sandbox_decision_delay_s", "sandbox_personas", "sandbox_state_file",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # SANDBOX_POLICY= in an env file or compose means "not set", not "an empty policy".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sandbox_policy")
    @classmethod
    def _policy_parses(cls, value: str | None) -> str | None:
        # Fail at start with the reason, not on the first report.
        if value is not None:
            parse_policy(value)
        return value

    @field_validator("sandbox_webhook_secret")
    @classmethod
    def _whsec(cls, value: str) -> str:
        return webhooks.check_secret(value)

    @field_validator("sandbox_personas")
    @classmethod
    def _personas_load(cls, value: Path | None) -> Path | None:
        if value is not None:
            load_personas(value)
        return value

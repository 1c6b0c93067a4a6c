"""The sandbox's settings, from the environment."""

from pydantic import Field, field_validator

from services.sandbox.domain import parse_policy
from shared.settings import BaseServiceSettings


class SandboxSettings(BaseServiceSettings):
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(8090, ge=0, le=65535)
    sandbox_policy: str = Field(
        "removed=0.48,rejected=0.40,none=0.12",
        description="Relative weights of outcomes: removed, restricted, rejected, none (never answers).",
    )
    sandbox_decision_delay_s: float = Field(
        0.5, ge=0, description="Seconds between receiving a report and deciding on it."
    )
    sandbox_seed: str = Field("takedown", description="Seed of the per-report draw; same seed, same fates.")

    @field_validator("sandbox_policy")
    @classmethod
    def _policy_parses(cls, value: str) -> str:
        # Fail at start with the reason, not on the first report.
        parse_policy(value)
        return value

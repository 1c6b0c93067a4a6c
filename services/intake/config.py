"""Intake's settings, from the environment."""

from pydantic import Field

from shared.settings import BaseServiceSettings


class IntakeSettings(BaseServiceSettings):
    intake_host: str = "127.0.0.1"
    intake_port: int = 8001
    batch_max: int = Field(1000, ge=1, description="Most referrals one batch request may carry.")
    outbox_batch: int = Field(1000, ge=1, description="Most outbox rows the relay sends at once.")
    outbox_idle_poll_s: float = Field(1.0, gt=0, description="Relay poll interval when idle.")
    max_redispatches: int = Field(3, ge=0, description="Times one referral may be dispatched again "
                                  "(escalations and appeals together); more answer 409.")

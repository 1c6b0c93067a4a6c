"""Intake's settings, from the environment."""

from pydantic import Field

from shared.settings import OutboxSettings


class IntakeSettings(OutboxSettings):
    intake_host: str = "127.0.0.1"
    intake_port: int = 8001
    batch_max: int = Field(1000, ge=1, description="Most referrals one batch request may carry.")
    max_redispatches: int = Field(3, ge=0, description="Times one referral may be dispatched again "
                                  "(escalations and appeals together); more answer 409.")
    inbound_tolerance_s: float = Field(
        300.0, gt=0, le=3600, description="How far a record's webhook-timestamp on referrals.inbound may be from when "
        "the broker appended it, either way.")
    inbound_replay_window_s: float = Field(
        86_400.0, ge=3600, description="How long the webhook-ids of accepted records are remembered, from when they "
        "were signed, to refuse replays; keep it longer than any backlog on referrals.inbound.")
    backpressure_max_backlog: int = Field(
        5000, ge=1, description="Work accepted and not yet dispatched (intake's events the dispatcher has not routed, "
        "plus reports waiting on the platforms' lanes) at which intake answers 429 and pauses referrals.inbound. "
        "Size it as what the dispatcher delivers in about half REDRIVE_AFTER_S (docs/operations.md, Backpressure).")
    backpressure_resume_fraction: float = Field(
        0.8, gt=0, le=1, description="Once refusing, intake accepts again when the backlog is under this fraction of "
        "the bound.")
    backpressure_sample_s: float = Field(1.0, gt=0, le=10, description="How often intake measures the backlog.")

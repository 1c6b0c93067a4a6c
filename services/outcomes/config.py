"""Outcomes' settings, from the environment."""

from pydantic import Field

from shared.settings import BaseServiceSettings


class OutcomesSettings(BaseServiceSettings):
    outcomes_host: str = "127.0.0.1"
    outcomes_port: int = 8003
    page_size_max: int = Field(500, ge=1, description="Most referrals one page of a search returns.")

"""Outcomes' settings, from the environment."""

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, PositiveFloat, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.outcomes.deadlines import Policy
from shared import netpolicy
from shared.events import Category, Platform
from shared.fetch import FetchSettings
from shared.settings import BaseServiceSettings

DAY = 24.0


class Deadlines(BaseModel):
    """Hours a platform has to decide, per category (DEADLINES__TERRORISM=1, ...)."""

    terrorism: PositiveFloat = Field(1.0, description="EU regulation 2021/784: removal orders within one hour.")
    violent_extremism: PositiveFloat = DAY
    people_smuggling: PositiveFloat = 3 * DAY
    human_trafficking: PositiveFloat = 3 * DAY
    illegal_goods: PositiveFloat = 7 * DAY
    fraud: PositiveFloat = 7 * DAY
    other: PositiveFloat = 14 * DAY


class OutcomesSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_nested_delimiter="__")

    outcomes_host: str = "127.0.0.1"
    outcomes_port: int = 8003
    page_size_max: int = Field(500, ge=1, description="Most referrals one page of a search returns.")
    export_concurrency: int = Field(2, ge=1, description="Exports streaming at once; more answer 429.")
    export_statement_timeout_s: float = Field(300.0, gt=0, description="Longest any one statement of an export runs.")

    deadlines: Deadlines = Field(default_factory=Deadlines)
    deadline_overrides: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="Hours per category/platform, e.g. DEADLINE_OVERRIDES__TERRORISM/FACEBOOK=0.5, "
                    "DEADLINE_OVERRIDES__TERRORISM__FACEBOOK=0.5 or DEADLINE_OVERRIDES='{\"terrorism/facebook\": 0.5}'.")
    expire_after_factor: float = Field(4.0, ge=1, description="A referral expires after this many times its allowed time.")
    stays_down_checks_s: list[PositiveFloat] = Field(
        default_factory=lambda: [DAY * 3600, 7 * DAY * 3600],
        description="Seconds after a removal or restriction at which its URL is checked again, e.g. '[86400, 604800]'.")
    liveness_checks_s: list[PositiveFloat] = Field(
        default_factory=lambda: [3600.0, DAY * 3600, 3 * DAY * 3600, 7 * DAY * 3600, 14 * DAY * 3600],
        description="Seconds after a dispatch at which a referral still waiting for the platform's decision has its "
                    "URL checked; content found gone is recorded as content.gone_without_reply. Default an hour, a "
                    "day, 3, 7 and 14 days; '[]' switches liveness checks off.")
    content_check_url: str = Field(
        "{url}", description="What a content check GETs; {url} is the canonical URL (percent-encoded unless "
                             "the template starts with it). Sandbox: http://127.0.0.1:8090/content?url={url}")
    content_check_timeout_s: float = Field(
        10.0, gt=0, description="The whole of one check, redirects and body included, must finish within this.")
    content_check_concurrency: int = Field(8, ge=1, description="Most content checks under way at once.")
    content_check_retry_s: float = Field(
        60.0, gt=0, description="A failed check waits about this long before it is tried again, twice as long after "
                                "each further failure, up to content_check_retry_max_s.")
    content_check_retry_max_s: float = Field(
        6 * 3600.0, gt=0, description="The longest wait; a refused check (not a public address) waits this long.")
    fetch_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host:port entries a check may reach although they are not public addresses, comma-separated, "
                    "e.g. FETCH_ALLOW=127.0.0.1:8090 for the sandbox (`takedown run` sets it). See shared/fetch.py.")
    scheduler_enabled: bool = Field(
        True, description="Run the deadline and content-check scheduler here (several instances may: ids are stable).")
    scheduler_tick_s: float = Field(5.0, gt=0, description="How often deadlines and content checks are looked at.")
    scheduler_batch: int = Field(500, ge=1, description="Referrals read at a time by the scheduler.")
    scheduler_republish_s: float = Field(
        300.0, gt=0, description="An event the scheduler published that is still not recorded after this long is "
                                 "published again (a content check made again): a lost event is made again, a "
                                 "consumer that lags is not sent a copy every tick.")

    @field_validator("deadline_overrides", mode="before")
    @classmethod
    def _flatten_overrides(cls, value: Any) -> Any:
        # DEADLINE_OVERRIDES__TERRORISM__FACEBOOK arrives nested: {"terrorism": {"facebook": "0.5"}}.
        if not isinstance(value, dict):
            return value
        flat: dict[str, Any] = {}
        for key, hours in value.items():
            if isinstance(hours, dict):
                flat.update({f"{key}/{platform}": h for platform, h in hours.items()})
            else:
                flat[key] = hours
        return flat

    @field_validator("deadline_overrides")
    @classmethod
    def _known_pairs(cls, value: dict[str, float]) -> dict[str, float]:
        normalised = {}
        for key, hours in value.items():
            category, _, platform = key.strip().lower().partition("/")
            if category not in Category.__members__ or platform not in Platform.__members__:
                raise ValueError(f"{key!r} is not category/platform (e.g. terrorism/facebook)")
            normalised[f"{category}/{platform}"] = hours
        return normalised

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # '127.0.0.1:8090, sandbox:8090' or a JSON list
            return json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        return value

    @field_validator("fetch_allow")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            netpolicy.allow_entry(entry)  # a typo fails at start, not as a refused check a day later
        return [entry.strip() for entry in value]

    @field_validator("stays_down_checks_s", "liveness_checks_s")
    @classmethod
    def _ascending(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("checks must be in increasing order")
        return value

    def fetch_settings(self) -> FetchSettings:
        """How stays-down checks fetch: the allow-list and the deadline of one check."""
        return FetchSettings.allowing(self.fetch_allow, deadline_s=self.content_check_timeout_s,
                                      user_agent="takedown-outcomes stays-down check")

    def deadline_policy(self) -> Policy:
        overrides = {tuple(key.split("/")): hours for key, hours in self.deadline_overrides.items()}
        return Policy(hours=self.deadlines.model_dump(), overrides=overrides,
                      expire_after_factor=self.expire_after_factor)

"""Dispatcher's settings, from the environment."""

from pydantic import Field

from shared.settings import BaseServiceSettings


class DispatcherSettings(BaseServiceSettings):
    dispatcher_host: str = "127.0.0.1"
    dispatcher_port: int = 8002
    dispatcher_callback_base_url: str = Field(
        "http://127.0.0.1:8002", description="Base URL platforms call back with decisions."
    )
    sandbox_url: str = Field(
        "http://127.0.0.1:8090", description="Base URL of the platforms' reporting APIs (the sandbox)."
    )
    delivery_timeout_s: float = Field(10.0, gt=0)
    delivery_attempts: int = Field(5, ge=1, description="Tries per referral before dispatch_failed.")
    delivery_backoff_base_s: float = Field(0.5, gt=0, description="First retry delay; doubles, with jitter.")

"""Personas: how each platform's reporting API behaves, read from a YAML file.

The file maps platform names (and `default`) to personas. Each platform's entry is laid over
`default` key by key (a key given replaces the default's value whole), then validated:

    default:
      latency_ms: {mean: 2, jitter: 1}      # each answer waits mean ± jitter milliseconds
      error_rate: 0                         # share of report and answer requests answered 500
      rate_limit: {per_second: 1000, burst: 1000, retry_after_s: 1}   # or null: unlimited
      outages: [{start_s: 60, end_s: 90}]   # seconds since the sandbox started: 503s
      decision_delay_s: 0.5                 # 0: tiktok decides in its response
      decisions: {removed: 0.48, rejected: 0.40, none: 0.12}   # relative weights
      drop_callbacks: 0                     # share of tickets whose callbacks are never sent
    x:
      decision_delay_s: 2
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.sandbox import domain
from shared.events import Platform

DEFAULT_PERSONAS = Path(__file__).with_name("personas.yaml")
DEFAULT_ENTRY = "default"
NAMES = (DEFAULT_ENTRY, *(p.value for p in Platform))
NCA_2020 = {"removed": 0.48, "rejected": 0.40, "none": 0.12}


class PersonaError(ValueError):
    """A persona file that cannot be read or does not describe valid personas."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Strict):
    mean: float = Field(2.0, ge=0, le=60_000, description="Milliseconds.")
    jitter: float = Field(1.0, ge=0, le=60_000, description="Milliseconds either side of the mean.")


class RateLimit(_Strict):
    per_second: float = Field(gt=0, description="Requests refilled per second.")
    burst: int = Field(ge=1, description="Requests that may come at once.")
    retry_after_s: int = Field(1, ge=1, description="The Retry-After of a 429, in whole seconds.")


class Window(_Strict):
    start_s: float = Field(ge=0, description="Seconds after the sandbox started.")
    end_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> "Window":
        if self.end_s <= self.start_s:
            raise ValueError(f"an outage must end after it starts (start_s {self.start_s}, end_s {self.end_s})")
        return self


class Persona(_Strict):
    latency_ms: Latency = Latency()
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of report and answer requests answered 500.")
    rate_limit: RateLimit | None = None
    outages: tuple[Window, ...] = ()
    decision_delay_s: float = Field(0.5, ge=0, le=86_400)
    decisions: dict[str, float] = Field(default_factory=lambda: dict(NCA_2020),
                                        description="Outcome weights, normalised to sum to 1.")
    drop_callbacks: float = Field(0.0, ge=0, le=1, description=(
        "Share of tickets whose callbacks are never sent, not even retried (the platform gave up on "
        "them); their status API still shows the decision."))

    @field_validator("decisions", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> dict[str, float]:
        return domain.parse_weights(value)


Personas = dict[Platform, Persona]


def parse_personas(data: Any, source: str = "personas") -> Personas:
    """Every platform's persona from a persona file's parsed YAML; PersonaError says what is wrong."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PersonaError(f"{source}: must map platform names to personas, got {type(data).__name__}")
    unknown = [str(name) for name in data if name not in NAMES]
    if unknown:
        raise PersonaError(f"{source}: unknown platform {', '.join(map(repr, unknown))}; "
                           f"allowed: {', '.join(NAMES)}")
    base = _entry(data, DEFAULT_ENTRY, source)
    _validate({**base}, DEFAULT_ENTRY, source)
    return {p: _validate({**base, **_entry(data, p.value, source)}, p.value, source) for p in Platform}


def _entry(data: Mapping, name: str, source: str) -> dict:
    entry = data.get(name)
    if entry is None:
        return {}
    if not isinstance(entry, Mapping):
        raise PersonaError(f"{source}: {name}: must be a mapping of settings, got {type(entry).__name__}")
    return dict(entry)


def _validate(raw: dict, name: str, source: str) -> Persona:
    try:
        return Persona.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'persona'}: {_message(e)}"
                             for e in exc.errors())
        raise PersonaError(f"{source}: {name}: {problems}") from None


def _message(error: dict) -> str:
    # A ValueError raised in a validator reads "Value error, <message>"; keep just the message.
    return error["msg"].removeprefix("Value error, ")


def load_personas(path: Path | str | None = None) -> Personas:
    """The personas in the YAML file at path (the shipped personas.yaml when None)."""
    path = Path(path) if path is not None else DEFAULT_PERSONAS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PersonaError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise PersonaError(f"{path}: is not valid YAML: {exc}") from None
    return parse_personas(data, str(path))


def with_overrides(personas: Personas, decisions: Mapping[str, float] | None = None,
                   decision_delay_s: float | None = None) -> Personas:
    """personas with the same decision weights and/or delay imposed on every platform."""
    update: dict[str, Any] = {}
    if decisions is not None:
        update["decisions"] = dict(decisions)
    if decision_delay_s is not None:
        update["decision_delay_s"] = decision_delay_s
    return {p: persona.model_copy(update=update) for p, persona in personas.items()}


def describe(personas: Personas) -> dict[str, dict]:
    """The personas as JSON-ready data, platform by platform."""
    return {p.value: persona.model_dump(mode="json") for p, persona in personas.items()}

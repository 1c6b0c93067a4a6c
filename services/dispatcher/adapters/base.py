"""The port every platform adapter implements."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pydantic import BaseModel

from shared.events import Platform, ReferralSubmitted


@dataclass(frozen=True)
class Receipt:
    """The platform's acknowledgement of a report."""

    ticket_id: str
    duplicate: bool = False


class DeliveryError(Exception):
    """A report the platform did not take; permanent errors are not worth retrying."""

    def __init__(self, reason: str, *, permanent: bool):
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


class PlatformAdapter(ABC):
    """Delivers referrals to one or more platforms the way they take them."""

    slug: str
    title: str
    version: str = "1"
    Config: type[BaseModel]

    @property
    @abstractmethod
    def platforms(self) -> tuple[Platform, ...]:
        """The platforms this adapter delivers to."""

    @abstractmethod
    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        """Report one referral; the same referral twice must not make two reports."""

    async def close(self) -> None:
        """Release connections; adapters without any need not override it."""

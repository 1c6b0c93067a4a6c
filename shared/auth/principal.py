"""Who is calling: the principal every route receives, and the roles it may hold. No I/O."""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a principal may do (docs/security.md has the matrix)."""

    agency = "agency"  # refers, acts on and reads only its own agency's referrals
    auditor = "auditor"  # reads and exports everything, runs reports
    oversight = "oversight"  # alone reads the log of auditors' queries
    operator = "operator"  # records e-mailed answers, replays dead letters, watches the pipeline
    platform = "platform"  # signed callbacks only


PEOPLE = (Role.auditor, Role.oversight, Role.operator)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its roles, its agency (agency principals only), and the
    credential that proved it ('key:<key id>' or 'oidc:<issuer>#<subject>')."""

    name: str
    roles: frozenset[Role]
    credential: str
    agency: str | None = None

    @property
    def actor(self) -> str:
        """The actor recorded on what it does: agency:<id>, platform:<slug> or user:<name>."""
        if Role.agency in self.roles and self.agency:
            return f"agency:{self.agency}"
        if Role.platform in self.roles:
            return f"platform:{self.name}"
        return f"user:{self.name}"

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def sees(self, agency: str | None) -> bool:
        """Whether this principal may see a referral made by agency: its own, or any if not an agency."""
        return Role.agency not in self.roles or agency == self.agency

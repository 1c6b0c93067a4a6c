"""Every Kafka topic name and consumer group in one place."""

# Agency systems publish plain JSON submissions here (not CloudEvents).
REFERRALS_INBOUND = "referrals.inbound"
REFERRALS_INBOUND_DLQ = "referrals.inbound.dlq"

# Lifecycle events, CloudEvents 1.0 in binary mode, keyed by referral id.
REFERRALS_SUBMITTED = "referrals.submitted"  # owned by intake
REFERRALS_DISPATCH = "referrals.dispatch"  # owned by dispatcher: dispatched, dispatch_failed
TAKEDOWN_DECISIONS = "takedown.decisions"  # owned by dispatcher: decided
DISPATCH_DLQ = "referrals.submitted.dlq"  # owned by dispatcher
OUTCOMES_DLQ = "outcomes.dlq"  # owned by outcomes

# What each service publishes to (owns) and reads. A service creates both at start, with the
# configured partition count, so no start order lets a broker auto-create one with its default.
OWNED = {
    "intake": (REFERRALS_INBOUND_DLQ, REFERRALS_SUBMITTED),
    "dispatcher": (REFERRALS_DISPATCH, TAKEDOWN_DECISIONS, DISPATCH_DLQ),
    "outcomes": (OUTCOMES_DLQ,),
}
CONSUMED = {
    "intake": (REFERRALS_INBOUND,),
    "dispatcher": (REFERRALS_SUBMITTED,),
    "outcomes": (REFERRALS_SUBMITTED, REFERRALS_DISPATCH, TAKEDOWN_DECISIONS),
}


def needed_by(service: str) -> tuple[str, ...]:
    """Every topic a service must find at start: those it owns and those it reads."""
    return OWNED[service] + CONSUMED[service]

GROUP_INTAKE = "takedown-intake"
GROUP_DISPATCHER = "takedown-dispatcher"
GROUP_OUTCOMES = "takedown-outcomes"

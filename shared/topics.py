"""Every Kafka topic name and consumer group in one place."""

# Agency systems publish plain JSON submissions here (not CloudEvents).
REFERRALS_INBOUND = "referrals.inbound"
REFERRALS_INBOUND_DLQ = "referrals.inbound.dlq"

# Lifecycle events, CloudEvents 1.0 in binary mode, keyed by referral id.
REFERRALS_SUBMITTED = "referrals.submitted"  # owned by intake
REFERRALS_DISPATCH = "referrals.dispatch"  # owned by dispatcher: dispatched, dispatch_failed
TAKEDOWN_DECISIONS = "takedown.decisions"  # owned by dispatcher: decided, information requested
REFERRALS_LIFECYCLE = "referrals.lifecycle"  # owned by outcomes: overdue, expired, content checks
DISPATCH_DLQ = "referrals.submitted.dlq"  # owned by dispatcher: records that are not referrals
DELIVERY_DLQ = "dispatch.dlq"  # owned by dispatcher: reports no platform would take
OUTCOMES_DLQ = "outcomes.dlq"  # owned by outcomes
# Each reader of lifecycle events confirms the events it has durably handled, so that their
# publisher keeps them until then and publishes again what was lost (shared/receipts.py).
RECEIPTS = "takedown.receipts"  # written by dispatcher and outcomes, read by intake and dispatcher
PLATFORMS = ("facebook", "instagram", "youtube", "x", "tiktok", "telegram", "other")


def lane(platform: str) -> str:
    """The topic of one platform's delivery lane (owned by dispatcher)."""
    return f"dispatch.{platform}"


def retry_lane(platform: str) -> str:
    """Where a platform's failed reports wait for their next attempt (owned by dispatcher)."""
    return f"dispatch.{platform}.retry"


# Topic configs set when a service creates the topic. referrals.inbound's records are signed with a
# timestamp that intake compares with the record's own (docs/kafka-submissions.md): LogAppendTime
# makes that the broker's clock when it appended the record, not one the producer chose. An
# existing topic keeps its configs: alter it by hand (kafka-configs --alter). Tansu accepts and
# describes the config but keeps the producer's timestamp.
TOPIC_CONFIGS = {REFERRALS_INBOUND: {"message.timestamp.type": "LogAppendTime"}}

DEAD_LETTER_TOPICS = (REFERRALS_INBOUND_DLQ, DISPATCH_DLQ, DELIVERY_DLQ, OUTCOMES_DLQ)

# What each service publishes to (owns) and reads. A service creates both at start, with the
# configured partition count, so no start order lets a broker auto-create one with its default.
OWNED = {
    "intake": (REFERRALS_INBOUND_DLQ, REFERRALS_SUBMITTED),
    "dispatcher": (RECEIPTS, REFERRALS_DISPATCH, TAKEDOWN_DECISIONS, DISPATCH_DLQ, DELIVERY_DLQ,
                   *(lane(p) for p in PLATFORMS), *(retry_lane(p) for p in PLATFORMS)),
    "outcomes": (OUTCOMES_DLQ, REFERRALS_LIFECYCLE, RECEIPTS),
}
CONSUMED = {
    "intake": (REFERRALS_INBOUND, RECEIPTS),
    "dispatcher": (REFERRALS_SUBMITTED, RECEIPTS),
    "outcomes": (REFERRALS_SUBMITTED, REFERRALS_DISPATCH, TAKEDOWN_DECISIONS, REFERRALS_LIFECYCLE),
}


def needed_by(service: str) -> tuple[str, ...]:
    """Every topic a service must find at start: those it owns and those it reads."""
    return tuple(dict.fromkeys(OWNED[service] + CONSUMED[service]))


def readers_of(topic: str) -> tuple[str, ...]:
    """The services that read a lifecycle topic, and so confirm its events (not the receipts topic)."""
    if topic == RECEIPTS:
        return ()
    return tuple(service for service, read in CONSUMED.items() if topic in read)


def receipts_group(service: str) -> str:
    """The consumer group in which a service reads the receipts for the events it published."""
    return f"takedown-{service}-receipts"

GROUP_INTAKE = "takedown-intake"
GROUP_DISPATCHER = "takedown-dispatcher"


def lane_group(platform: str) -> str:
    """Each lane has its own consumer group, so its lag is its own."""
    return f"takedown-dispatcher-{platform}"


def retry_group(platform: str) -> str:
    """The consumer group releasing a platform's parked reports back onto its lane."""
    return f"takedown-dispatcher-{platform}-retry"
GROUP_OUTCOMES = "takedown-outcomes"

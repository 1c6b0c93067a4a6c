"""Lifecycle events, carried as CloudEvents 1.0 in Kafka binary mode (ce_* headers, JSON body).

Each event has a unique id, the referral id (as `subject` and in its data), the time it
happened, a schema version and the actor who caused it (agency, service or platform).
"""

from shared.events.envelope import (SPEC_VERSION, Event, InvalidEvent, Kind, actor, describe_errors, from_kafka,  # noqa: F401
                                    to_kafka)
from shared.events.lifecycle import *  # noqa: F403 - every event model is part of the package's surface
from shared.events.lifecycle import EVENT_TYPES, EventData  # noqa: F401
from shared.events.vocabulary import *  # noqa: F403
from shared.events.vocabulary import summarise  # noqa: F401

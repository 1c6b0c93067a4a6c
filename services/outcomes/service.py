"""Outcomes' service layer: record an event and its effect on the referral, exactly once."""

import logging

from sqlalchemy.ext.asyncio import async_sessionmaker

from services.outcomes import db
from services.outcomes.domain import apply
from shared.events import Event

log = logging.getLogger(__name__)


class OutcomesService:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def record(self, event: Event) -> bool:
        """Append the event and update the referral's state in one transaction; False for a replay."""
        async with self.sessions() as session, session.begin():
            if not await db.append_event(session, event):
                log.debug("event %s already recorded, skipped", event.id)
                return False
            state = await db.load_state(session, event.referral_id)
            await db.save_state(session, apply(state, event))
        return True

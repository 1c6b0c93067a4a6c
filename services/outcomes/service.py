"""Outcomes' service layer: record a batch of events and their effect on referrals, exactly once."""

import logging

from sqlalchemy.ext.asyncio import async_sessionmaker

from services.outcomes import audit, db
from services.outcomes.domain import project
from shared.events import Event
from shared.faults import crash_point

log = logging.getLogger(__name__)


class OutcomesService:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def record(self, events: list[Event]) -> list[Event]:
        """Append new events to the chain and re-project their referrals, in one transaction.

        Events recorded before (by id) are skipped, so a redelivered batch changes nothing.
        Returns the events that were new.
        """
        async with self.sessions() as session, session.begin():
            new = await audit.append(session, events)
            touched = list(dict.fromkeys(e.referral_id for e in new))
            if touched:
                histories = await db.history_events(session, touched, known={e.id: e for e in new})
                await db.save_states(session, {rid: project(histories[rid]) for rid in touched})
            crash_point("outcomes.before_commit")
        crash_point("outcomes.after_commit")  # in the trail; the batch's offsets not yet committed
        if len(new) < len(events):
            log.debug("%s of %s events were recorded before and skipped", len(events) - len(new), len(events))
        return new

"""Outcomes' service layer: record a batch of events and their effect on referrals, exactly once."""

import logging
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.outcomes import audit, db, domain
from shared.events import Event
from shared.faults import crash_point

log = logging.getLogger(__name__)


class OutcomesService:
    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def record(self, events: list[Event]) -> list[Event]:
        """Append new events to the chain and fold them into their referrals' states, in one transaction.

        Events recorded before (by id) are skipped, so a redelivered batch changes nothing.
        Returns the events that were new.
        """
        async with self.sessions() as session, session.begin():
            new = await audit.append(session, events)
            if new:
                await db.save_states(session, await fold_in(session, new))
            crash_point("outcomes.before_commit")
        crash_point("outcomes.after_commit")  # in the trail; the batch's offsets not yet committed
        if len(new) < len(events):
            log.debug("%s of %s events were recorded before and skipped", len(events) - len(new), len(events))
        return new


async def fold_in(session: AsyncSession, new: list[Event]) -> dict[UUID, dict]:
    """The states of the referrals of new events (just appended to the trail) with those events in.

    Events that all come after the last one in their referral's stored state are folded onto it;
    a referral with an event that comes before (it arrived late) is projected from its whole
    history in the trail, this batch's events included. Called with the chain's head locked, so
    no other transaction changes these states meanwhile.
    """
    arrived: dict[UUID, list[Event]] = {}
    for event in new:
        arrived.setdefault(event.referral_id, []).append(event)
    stored = await db.load_states(session, list(arrived))
    states, late = {}, []
    for rid, events in arrived.items():
        state = stored.get(rid) or domain.initial()
        if domain.folds_onto(state, events):
            states[rid] = domain.fold(state, events)
        else:
            late.append(rid)
    if late:
        histories = await db.history_events(session, late, known={e.id: e for e in new})
        states.update((rid, domain.project(histories[rid])) for rid in late)
        log.debug("%s of %s referrals had an event arrive late: projected from their history",
                  len(late), len(arrived))
    return states

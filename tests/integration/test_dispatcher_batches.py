"""Batches against a real database, without Kafka (a recording broker): what came of a lane batch is
recorded in one transaction, a delivery held up never holds back what came of the others, a record
that cannot be stored fails alone, and callbacks arriving
together are recorded together, each answered on its own."""

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy import event, select

from services.dispatcher import db
from services.dispatcher.adapters.base import DeliveryError, InvalidCallback, Receipt
from services.dispatcher.adapters.registry import AdapterRegistry
from services.dispatcher.app import MIGRATIONS
from services.dispatcher.decisions import Decisions, UnknownTicket
from services.dispatcher.deliveries import DECIDED, FAILED, REPORT, REPORTED, Owed
from services.dispatcher.handlers import deliver_and_record, parse_delivery
from services.dispatcher.lanes import Lane, RetryPolicy
from services.dispatcher.outbound import ATTEMPT, Outbound, Record
from services.dispatcher.resilience import CircuitBreaker, TokenBucket
from services.dispatcher.service import DispatchService, Timing
from shared import db as shared_db
from shared import topics
from shared.events import Event, Platform, ReferralSubmitted, to_kafka
from tests.fakes import DELIVERY, SIGNATURE, FakeAdapter, RecordingBroker, referral, removal
from tests.support import eventually


class ByCase(FakeAdapter):
    """A fake platform answering each referral by its case reference: a ticket, or a DeliveryError."""

    def __init__(self, answers: dict[str, str | DeliveryError]):
        super().__init__(answer_in_receipt=True)
        self.by_case = answers

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        self.calls.append(referral)
        answer = self.by_case[referral.case_reference]
        if isinstance(answer, DeliveryError):
            raise answer
        return Receipt(ticket_id=answer, answer=removal(answer, referral.referral_id))


class HeldBack(ByCase):
    """ByCase, but the referral of case "held" is answered only once `release` is set (a platform's
    Retry-After, an open circuit or a slow answer)."""

    def __init__(self, answers: dict[str, str | DeliveryError]):
        super().__init__(answers)
        self.release = asyncio.Event()

    async def submit(self, referral: ReferralSubmitted) -> Receipt:
        if referral.case_reference == "held":
            await self.release.wait()
        return await super().submit(referral)


@pytest.fixture
async def engine(database_url):
    await shared_db.migrate(database_url, MIGRATIONS, db.SCHEMA)
    engine = shared_db.make_engine(database_url)
    yield engine
    await engine.dispose()


def commits(engine) -> Counter:
    """Counts the transactions committed on engine from now on."""
    counted = Counter()
    event.listen(engine.sync_engine, "commit", lambda _: counted.update(["commit"]))
    return counted


def service_for(engine, adapter: FakeAdapter, broker: RecordingBroker) -> DispatchService:
    lane = Lane(adapter, CircuitBreaker(), TokenBucket(1000, 1000), RetryPolicy(max_attempts=3, backoff_base_s=0.01))
    registry = AdapterRegistry()
    registry.register(adapter)
    return DispatchService(registry, {Platform.facebook: lane}, Outbound(broker), engine, Timing(redrive_after_s=30))


async def owed(engine, *cases: str) -> list[Record]:
    """Deliveries routed to facebook's lane (one per case reference), and their lane records."""
    records, owe = [], []
    for offset, case in enumerate(cases):
        ref = referral(case_reference=case)
        key, value, headers = to_kafka(Event(source="/takedown/intake", actor="agency:NCA", data=ref))
        records.append(Record(key, value, headers, topics.lane("facebook"), 0, offset))
        owe.append(Owed(uuid.UUID(headers["ce_id"]), REPORT, ref.referral_id, 1, "facebook", key, value, headers))
    async with engine.begin() as conn:
        await db.DELIVERIES.owe(conn, owe, within_s=30)
    return records


async def run_lane_batch(service: DispatchService, records: list[Record]) -> None:
    """What a lane does with a batch: take it, attempt every delivery at once, record what came of them."""
    due = await service.take(records)
    attempts = await asyncio.gather(*(service.attempt(parse_delivery(r.headers, r.value), r) for r in due))
    await service.conclude(attempts)


async def deliveries(engine) -> dict[str, tuple]:
    t = db.DELIVERIES.table
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.c.headers, t.c.state, t.c.ticket_id, t.c.attempt))
    return {r.headers["ce_id"]: (r.state, r.ticket_id, r.attempt) for r in rows}


async def outbox_types(engine) -> Counter:
    async with engine.connect() as conn:
        return Counter(h["ce_type"] for h in (await conn.execute(select(db.OUTBOX.table.c.headers))).scalars())


async def test_what_came_of_a_lane_batch_is_recorded_in_one_transaction(engine):
    adapter = ByCase({"taken": "T1", "busy": DeliveryError("busy", permanent=False),
                      "refused": DeliveryError("no such content", permanent=True), "late": "T4"})
    broker = RecordingBroker()
    service = service_for(engine, adapter, broker)
    taken, busy, refused, late = records = await owed(engine, "taken", "busy", "refused", "late")
    due = await service.take(records)
    attempts = await asyncio.gather(*(service.attempt(parse_delivery(r.headers, r.value), r) for r in due))
    async with engine.begin() as conn:  # another copy of "late" was reported and decided meanwhile
        await db.DELIVERIES.delivered(conn, [(uuid.UUID(late.headers["ce_id"]), REPORTED, "T4")])
        await db.DELIVERIES.decided(conn, [("facebook", "T4")])
    counted = commits(engine)
    await service.conclude(attempts)

    states = await deliveries(engine)
    assert counted["commit"] == 1, "tickets, states and events of the whole batch in one transaction"
    assert states[taken.headers["ce_id"]] == (DECIDED, "T1", 1), "reported, and decided in its receipt"
    assert states[busy.headers["ce_id"]][0::2] == ("due", 2), "parked for its second attempt"
    assert states[refused.headers["ce_id"]][0] == FAILED
    assert states[late.headers["ce_id"]] == (DECIDED, "T4", 1), "a late copy's receipt steps nothing back"
    assert await outbox_types(engine) == Counter({"referral.dispatched": 2, "takedown.decided": 2,
                                                  "referral.dispatch_failed": 1})
    [retry] = broker.on(topics.retry_lane("facebook"))
    [dead] = broker.on(topics.DELIVERY_DLQ)
    assert retry.headers["ce_id"] == busy.headers["ce_id"] and retry.headers[ATTEMPT] == "2"
    assert dead.headers["ce_id"] == refused.headers["ce_id"] and "no such content" in dead.headers["dlq_reason"]
    async with engine.connect() as conn:
        tickets = dict((await conn.execute(select(db.tickets.c.ticket_id, db.tickets.c.status))).all())
    assert tickets == {"T1": db.DECIDED, "T4": db.DECIDED}


async def test_a_delivery_held_up_does_not_hold_back_what_came_of_the_rest_of_its_batch(engine):
    adapter = HeldBack({"quick": "T1", "held": "T2"})
    service = service_for(engine, adapter, RecordingBroker())
    quick, held = await owed(engine, "quick", "held")
    batch = asyncio.gather(*(deliver_and_record(service, r) for r in await service.take([quick, held])))

    async def quick_recorded():
        return (await deliveries(engine))[quick.headers["ce_id"]][0] == DECIDED

    await eventually(quick_recorded, 10, "the quick delivery's outcome while the held one waits")
    assert (await deliveries(engine))[held.headers["ce_id"]][0] == "due"
    assert not batch.done(), "the batch (its offsets) is not done before every delivery is recorded"
    adapter.release.set()
    await batch
    assert (await deliveries(engine))[held.headers["ce_id"]] == (DECIDED, "T2", 1)


async def test_a_delivery_that_cannot_be_stored_is_given_up_alone_and_the_rest_of_its_batch_recorded(engine):
    adapter = ByCase({"fine": "T1", "odd": "X" * 300})  # a ticket id longer than the column takes
    broker = RecordingBroker()
    service = service_for(engine, adapter, broker)
    fine, odd = await owed(engine, "fine", "odd")
    await run_lane_batch(service, [fine, odd])

    states = await deliveries(engine)
    assert states[fine.headers["ce_id"]] == (DECIDED, "T1", 1)
    assert states[odd.headers["ce_id"]][0] == FAILED
    [dead] = broker.on(topics.DELIVERY_DLQ)
    assert dead.headers["ce_id"] == odd.headers["ce_id"]
    assert await outbox_types(engine) == Counter({"referral.dispatched": 1, "takedown.decided": 1,
                                                  "referral.dispatch_failed": 1})


async def test_callbacks_arriving_together_are_recorded_together_each_answered_on_its_own(engine):
    registry = AdapterRegistry()
    registry.register(FakeAdapter())
    decisions = Decisions(registry, {}, engine)
    one, two = referral(), referral()
    async with engine.begin() as conn:
        await db.open_ticket(conn, "facebook", "T1", one.referral_id, "fake", None)
        await db.open_ticket(conn, "facebook", "T2", two.referral_id, "fake", None)

    def callback(ticket: str, ref, delivery: str):
        body = f'{{"ticket_id": "{ticket}", "referral_id": "{ref.referral_id}"}}'.encode()
        return decisions.accept_callback(Platform.facebook, decisions.verify_callback(
            Platform.facebook, {SIGNATURE: "valid", DELIVERY: delivery}, body))

    counted = commits(engine)
    outcomes = await asyncio.gather(callback("T1", one, "d1"), callback("T1", one, "d1"), callback("T9", one, "d9"),
                                    callback("T2", one, "d3"), callback("T2", two, "d2"), return_exceptions=True)

    assert counted["commit"] == 1
    assert outcomes[0] == 1 and outcomes[4] == 1
    assert isinstance(outcomes[1], InvalidCallback) and "replayed" in str(outcomes[1])
    assert isinstance(outcomes[2], UnknownTicket), "a ticket we do not hold: the platform should try again"
    assert isinstance(outcomes[3], InvalidCallback) and "not for referral" in str(outcomes[3])
    assert await outbox_types(engine) == Counter({"takedown.decided": 2})
    async with engine.connect() as conn:
        seen = set((await conn.execute(select(db.callbacks_seen.c.replay_key))).scalars())
    assert seen == {"d1", "d2"}, "only accepted callbacks are remembered"

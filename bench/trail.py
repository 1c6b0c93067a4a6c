"""What the outcomes service has recorded, read straight from Postgres with asyncpg.

Audit positions are gapless and committed in order (appends hold the chain's head), so reading
`position > last seen` again and again sees every event once, and cheaply (a primary-key range).
"""

import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.engine import make_url

SUBMITTED, DISPATCHED, DECIDED = "referral.submitted", "referral.dispatched", "takedown.decided"


def connect_args(database_url: str, database: str | None = None) -> dict:
    """asyncpg.connect() arguments for a SQLAlchemy URL of the embedded Postgres (a unix socket)."""
    url = make_url(database_url)
    return {"user": url.username or "postgres", "database": database or url.database,
            "host": url.query.get("host") or url.host, "port": int(url.query.get("port") or url.port or 5432)}


@dataclass
class Progress:
    """Events recorded so far, by type; decisions also by how their referral came in."""

    at: float = 0.0
    position: int = 0
    by_type: Counter = field(default_factory=Counter)
    decided_by_path: Counter = field(default_factory=Counter)

    def snapshot(self) -> dict:
        return {"at": self.at, "position": self.position, **{t: self.by_type[t] for t in (SUBMITTED, DISPATCHED,
                DECIDED)}, "decided_http": self.decided_by_path["http"], "decided_kafka": self.decided_by_path["kafka"]}


class Trail:
    def __init__(self, conn: asyncpg.Connection):
        self.conn, self.progress = conn, Progress()

    @classmethod
    async def open(cls, database_url: str) -> "Trail":
        return cls(await asyncpg.connect(**connect_args(database_url)))

    async def close(self) -> None:
        await self.conn.close()

    async def exists(self) -> bool:
        return bool(await self.conn.fetchval("SELECT to_regclass('outcomes.audit_events')"))

    async def poll(self, http_ids: set[str] | None = None) -> Progress:
        """Count what was recorded since the last poll; a decision whose referral id is not among
        http_ids (referrals accepted over HTTP) came in on referrals.inbound."""
        if not await self.exists():
            return self.progress
        rows = await self.conn.fetch(
            "SELECT position, event_type, CASE WHEN event_type = $2 THEN referral_id::text END AS rid "
            "FROM outcomes.audit_events WHERE position > $1 ORDER BY position", self.progress.position, DECIDED)
        for row in rows:
            self.progress.by_type[row["event_type"]] += 1
            if row["rid"] is not None and http_ids is not None:
                self.progress.decided_by_path["http" if row["rid"] in http_ids else "kafka"] += 1
        if rows:
            self.progress.position = rows[-1]["position"]
        self.progress.at = time.time()
        return self.progress

    async def decided_among(self, referral_ids: set[str]) -> int:
        """How many of referral_ids have their platform's decision recorded."""
        return await self.conn.fetchval(
            "SELECT count(DISTINCT referral_id) FROM outcomes.audit_events "
            "WHERE event_type = $1 AND referral_id = ANY($2::text[]::uuid[])", DECIDED, list(referral_ids))

    async def timings(self, case_reference: str) -> list[asyncpg.Record]:
        """Each referral of a run (by its case reference): its key, how it came in, its platform,
        intake's submitted_at, when it was dispatched, and when each event was recorded."""
        return await self.conn.fetch("""
            SELECT s.data->>'idempotency_key' AS key, s.data->>'received_via' AS via, s.data->>'platform' AS platform,
                   extract(epoch FROM (s.data->>'submitted_at')::timestamptz)::float8 AS submitted_at,
                   extract(epoch FROM s.recorded_at)::float8 AS submitted_recorded,
                   extract(epoch FROM d.occurred_at)::float8 AS dispatched_at,
                   extract(epoch FROM d.recorded_at)::float8 AS dispatched_recorded,
                   extract(epoch FROM c.occurred_at)::float8 AS decided_at,
                   extract(epoch FROM c.recorded_at)::float8 AS decided_recorded
            FROM outcomes.audit_events s
            LEFT JOIN outcomes.audit_events d ON d.referral_id = s.referral_id AND d.event_type = $2
            LEFT JOIN outcomes.audit_events c ON c.referral_id = s.referral_id AND c.event_type = $3
            WHERE s.event_type = $1 AND s.data->>'case_reference' = $4""",
            SUBMITTED, DISPATCHED, DECIDED, case_reference)

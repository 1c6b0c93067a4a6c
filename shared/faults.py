"""Crash points: where the fault suite kills a service, to prove it recovers.

With TAKEDOWN_CRASH_AT="outcomes.after_commit:3" the third pass through crash_point
("outcomes.after_commit") kills this process with SIGKILL: no cleanup, no flush, no offset
commit, as a power cut would. Unset (always, outside the fault suite) a point costs a compare.

The points, named service.moment, are where a crash matters: before a database commit,
between it and the Kafka offset commit, and after both (see docs/guarantees.md).
"""

import os
import signal

VARIABLE = "TAKEDOWN_CRASH_AT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    return name, int(nth or 1)


_target = _parse(os.environ.get(VARIABLE))
_passes = 0


def crash_point(name: str) -> None:
    """Die here, at once, if the fault suite asked for this pass through this point."""
    global _passes
    if _target is None or _target[0] != name:
        return
    _passes += 1
    if _passes >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)

"""Crash points: the n-th pass through the named point kills the process with SIGKILL, and
nothing else does."""

import os
import signal
import subprocess
import sys

SCRIPT = """
from shared.faults import crash_point
for i in range(1, 6):
    crash_point("other.point")
    print(i, flush=True)
    crash_point("svc.after_commit")
"""


def run(crash_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TAKEDOWN_CRASH_AT"}
    if crash_at is not None:
        env["TAKEDOWN_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_the_nth_pass_through_the_named_point_kills_the_process():
    result = run("svc.after_commit:3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_without_a_count_the_first_pass_kills():
    assert run("svc.after_commit").stdout.split() == ["1"]


def test_unset_or_another_point_kills_nothing():
    for crash_at in (None, "", "svc.before_commit:1"):
        result = run(crash_at)
        assert result.returncode == 0, crash_at
        assert result.stdout.split() == ["1", "2", "3", "4", "5"]

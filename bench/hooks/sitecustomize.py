"""Python imports this at start when bench/hooks is on PYTHONPATH: the benchmarks put it there for
the service processes they start, and it installs stage timers only if BENCH_TIMERS_FILE is set."""

import os

if os.environ.get("BENCH_TIMERS_FILE"):
    import stagetimers

    stagetimers.install()

"""bench/report.py renders the benchmarks' figures into docs/benchmarks.md and leaves the prose alone."""

from bench.common import Target
from bench.report import END, START, render, update

MACHINE = {"cpus": 2, "cpu_model": "AMD EPYC", "memory_gb": 23.5, "python": "CPython 3.11.7", "kernel": "6.1",
           "load_average_at_start": [0.5, 0.4, 0.3], "commit": "abc1234"}


def memory_result(peak_mb: float) -> dict:
    target = Target("peak resident memory, intake", peak_mb, "MB", 200, "at_most")
    return {"name": "memory", "started_at": "2026-11-22T09:00:00+00:00", "machine": MACHINE,
            "command": "python -m bench.memory", "targets": [target.as_dict()],
            "peaks": {"intake": {"peak_mb": peak_mb, "in": "e2e"}}}


def test_figures_replace_only_what_is_between_the_markers():
    document = f"# Benchmarks\n\nintro\n\n{START}\nold figures\n{END}\n\n## What bounds it\n\nprose\n"

    updated = update(document, "new figures\n")

    assert updated == f"# Benchmarks\n\nintro\n\n{START}\nnew figures\n{END}\n\n## What bounds it\n\nprose\n"


def test_a_document_without_markers_gets_them_at_its_end():
    assert update("# Benchmarks\n\nprose\n", "figures\n") == f"# Benchmarks\n\nprose\n\n{START}\nfigures\n{END}\n"


def test_each_figure_is_shown_next_to_its_target_with_its_verdict():
    met = render({"memory": memory_result(150.0)})
    missed = render({"memory": memory_result(250.0)})

    assert "| memory | peak resident memory, intake | 150 MB | <= 200 | met |" in met
    assert "| memory | peak resident memory, intake | 250 MB | <= 200 | **not met** |" in missed
    assert "2 cores (AMD EPYC)" in met


def test_a_target_without_a_figure_says_so():
    assert Target("p99", None, "ms", 100, "at_most").met is None
    assert Target("throughput", 4999, "referrals/s", 5000).met is False

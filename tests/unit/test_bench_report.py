"""bench/report.py renders the benchmarks' figures into docs/benchmarks.md and leaves the prose alone."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from bench.common import Target
from bench.load import Agency, retry_after
from bench.perreferral import OUR_SERVICES, cpu_ms_per_referral
from bench.report import END, START, render, update
from bench.report_limits import limits_section

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


def test_a_target_with_an_aim_shows_both():
    target = Target("end-to-end referrals/s", 2500, "referrals/s", 2000, aim=5000)
    result = {**memory_result(150.0), "targets": [target.as_dict()]}

    assert "| >= 2,000 (aim 5,000) | met |" in render({"memory": result})
    assert "(aim 5,000): met" in target.line()


def test_cpu_per_referral_sums_our_services_and_counts_a_further_instance_as_its_service():
    cpu = {"intake": 0.1, "dispatcher": 0.3, "dispatcher-2": 0.2, "outcomes": 0.1, "sandbox": 0.2,
           "postgres": 0.4, "tansu (Kafka)": 0.05, "machine (all processes)": 1.9}

    ms = cpu_ms_per_referral(cpu, 1000)

    assert ms["dispatcher"] == 0.5
    assert ms[OUR_SERVICES] == 0.7
    assert ms["postgres"] == 0.4 and "machine (all processes)" not in ms
    assert cpu_ms_per_referral(cpu, 0)[OUR_SERVICES] is None


def test_retry_after_reads_seconds_or_a_date_and_falls_back_to_a_second():
    in_three = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)

    assert retry_after("2") == 2.0
    assert 1.0 < retry_after(in_three) <= 3.0
    assert retry_after(None) == retry_after("soon") == 1.0
    assert retry_after("3600") == 60.0


async def test_a_throttled_batch_is_sent_again_with_the_same_keys_after_its_retry_after():
    bodies = []

    def intake(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        items = json.loads(request.content)["referrals"]
        return httpx.Response(202, json={"results": [{"status": "accepted", "referral_id": f"r{i}"}
                                                     for i, _ in enumerate(items)]})

    agency = Agency("http://intake", "unused:9092", "t", {"token": "x", "signing_secret": "y"})
    agency.client = httpx.AsyncClient(base_url="http://intake", transport=httpx.MockTransport(intake))
    await agency._post([agency.item(n, "http") for n in range(3)])
    await asyncio.gather(*agency._posts)

    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert agency.paths["http"].summary(1)["throttled_429"] == 1
    assert agency.paths["http"].acked == 3 and agency.http_ids == {"r0", "r1", "r2"}


def test_end_to_end_is_shown_against_the_broker_the_naive_pipeline_and_two_dispatchers():
    e2e = {**memory_result(150.0), "name": "e2e", "targets": [], "best": 6,
           "runs": [{"partitions": 6, "decided_per_s": 100.0, "cpu_cores": {"dispatcher": 0.5}}]}
    limits = {**memory_result(150.0), "targets": [],
              "broker": {"records": 10, "consumed": 10, "record_bytes": 777, "partitions": 6, "seconds": 1,
                         "records_per_s": 20000, "cpu_cores": {}},
              "naive": {"referrals": 10, "recorded": 10, "hops": ["a", "b", "c"], "seconds": 1,
                        "referrals_per_s": 50.0, "cpu_cores": {}}}

    shown = "\n".join(limits_section(e2e, limits, None, None))

    assert "end-to-end is 0.50% of it" in shown
    assert "end-to-end is 2.0 times it" in shown
    assert "| dispatcher | 5.000 |" in shown

"""What each catalogued adapter says it can do: poll a status API, and how decisions come back."""

import pytest

from services.dispatcher.adapters import CATALOGUE, load
from services.dispatcher.adapters.base import DecisionMode, PlatformAdapter

WITH_STATUS_API = {"meta", "x", "webhook", "youtube", "tiktok"}


@pytest.mark.parametrize("slug", sorted(CATALOGUE))
def test_exactly_the_adapters_whose_poll_works_say_they_have_a_status_api(slug):
    adapter = load(slug)
    assert adapter.has_status_api is (slug in WITH_STATUS_API)
    assert (adapter.poll is not PlatformAdapter.poll) is adapter.has_status_api


@pytest.mark.parametrize("slug", sorted(CATALOGUE))
def test_every_adapter_forwards_answers_and_every_webhook_platform_can_be_polled(slug):
    adapter = load(slug)
    assert adapter.answer is not PlatformAdapter.answer
    if adapter.decisions is DecisionMode.webhook:
        assert adapter.has_status_api, "a callback the platform gave up on must not be a decision lost"


def test_the_port_assumes_no_status_api():
    assert PlatformAdapter.has_status_api is False

"""No sandbox secret outside the sandbox: a dispatcher whose adapter talks to a real platform with a
secret still at its shipped (sandbox) default refuses to start, and says which and where."""

import pytest

from services.dispatcher.adapters.registry import (SandboxSecretOutsideSandbox, build_registry, is_under,
                                                   refuse_sandbox_secrets)
from services.dispatcher.app import create_app
from services.dispatcher.config import DispatcherSettings

NOWHERE = {"database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/nothing", "kafka_bootstrap_servers": "127.0.0.1:9"}
SANDBOX = "http://127.0.0.1:8090"
REAL_META = {"client_secret": "real-client-secret", "app_secret": "real-app-secret"}


def refusal(**adapters) -> str:
    settings = DispatcherSettings(_env_file=None, sandbox_url=SANDBOX, adapters=adapters)
    with pytest.raises(SandboxSecretOutsideSandbox) as refused:
        refuse_sandbox_secrets(build_registry(settings.adapter_settings), settings.sandbox_url)
    return str(refused.value)


def test_a_dispatcher_with_a_sandbox_secret_for_a_real_platform_refuses_to_start_before_connecting():
    # Nothing listens at NOWHERE: the refusal comes before any connection is tried.
    settings = DispatcherSettings(_env_file=None, **NOWHERE, sandbox_url=SANDBOX, adapters={
        "meta": {"base_url": "https://graph.facebook.com", "client_secret": "real-client-secret"}})
    with pytest.raises(SandboxSecretOutsideSandbox) as refused:
        create_app(settings)
    reason = str(refused.value)
    assert "adapter meta: app_secret" in reason and "https://graph.facebook.com" in reason
    assert "ADAPTERS__META__APP_SECRET" in reason and SANDBOX in reason
    assert "client_secret" not in reason, "a secret that was set is not named"
    assert "sandbox-meta-app-secret" not in reason, "the secret's value is never said"


def test_every_secret_left_at_its_default_is_named_for_each_adapter_that_left_the_sandbox():
    reason = refusal(meta={"base_url": "https://graph.facebook.com"}, webhook={"base_url": "https://hooks.example"})
    for named in ("adapter meta: client_secret", "adapter meta: app_secret", "adapter webhook: secret"):
        assert named in reason
    assert "whsec_" not in reason and "sandbox-meta-secret" not in reason


def test_a_platform_url_with_credentials_in_it_is_named_without_them():
    reason = refusal(webhook={"base_url": "https://user:hunter2@hooks.example/in"})
    assert "https://hooks.example/in" in reason and "hunter2" not in reason


def test_sandbox_secrets_against_the_sandbox_and_real_secrets_against_a_platform_start():
    settings = DispatcherSettings(_env_file=None, sandbox_url="http://sandbox:8090", adapters={
        "meta": {"base_url": "https://graph.facebook.com", **REAL_META}})
    refuse_sandbox_secrets(build_registry(settings.adapter_settings), settings.sandbox_url)


@pytest.mark.parametrize("url, under", [
    ("http://127.0.0.1:8090", True), ("http://127.0.0.1:8090/platforms/other", True),
    ("HTTP://127.0.0.1:8090/", True), ("http://sandbox/x", "http://sandbox:80"),
    ("http://127.0.0.1:8091", False), ("https://127.0.0.1:8090", False), ("http://127.0.0.1.evil.example:8090", False),
    ("http://127.0.0.1:8090@evil.example", False), ("http://127.0.0.1:port", False)])
def test_a_url_is_the_sandbox_when_it_has_its_origin_and_lies_under_its_path(url, under):
    root = under if isinstance(under, str) else SANDBOX
    assert is_under(url, root) is bool(under)


def test_a_sandbox_with_a_path_does_not_cover_a_sibling_path():
    assert is_under("http://host/sandbox/meta", "http://host/sandbox")
    assert not is_under("http://host/sandboxes/meta", "http://host/sandbox")

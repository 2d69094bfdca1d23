"""redact: secrets are stripped from audit details at any depth; everything else is kept."""

from __future__ import annotations

import copy
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory.kam.audit import is_secret_name, redact

REDACTED = "[redacted]"

SECRET_NAMES = [
    "password",
    "Password",
    "PASSWORD",
    "new_password",
    "passwd",
    "token",
    "sessionToken",
    "session_token",
    "access_token",
    "refresh_token",
    "x-bitware-session-token",
    "api_key",
    "apiKey",
    "X-API-Key",
    "secret",
    "client_secret",
    "webhook_secret",
    "authorization",
    "Authorization",
    "proxy-authorization",
    "password_hash",
    "credentials",
    "signature",
    "Cookie",
]

# Field names of the domain that say nothing about secrets.
DOMAIN_NAMES = [
    "email",
    "name",
    "tier",
    "role",
    "client_id",
    "login_type",
    "reason",
    "status",
    "template",
    "parameters",
    "execution_id",
    "estimate_usd",
    "cost_usd",
    "monthly_budget_usd",
    "size",
    "topic",
    "title",
    "description",
    "attempt",
    "items",
    "",
]
# Random names that hold no fragment of a secret-sounding word.
_STEMS = (
    "pass",
    "pwd",
    "token",
    "key",
    "secret",
    "auth",
    "cookie",
    "hash",
    "credential",
    "signature",
)
random_names = st.text(alphabet=string.ascii_letters + string.digits + "_-", max_size=12).filter(
    lambda name: not any(stem in name.lower() for stem in _STEMS)
)
benign_names = st.sampled_from(DOMAIN_NAMES) | random_names
secret_names = st.sampled_from(SECRET_NAMES)

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
)


def _documents(depth: int) -> st.SearchStrategy[tuple[Any, Any]]:
    """Pairs (document, what redact must make of it)."""
    leaves = scalars.map(lambda v: (v, v))
    if depth == 0:
        return leaves
    child = _documents(depth - 1)

    @st.composite
    def objects(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
        document: dict[str, Any] = {}
        expected: dict[str, Any] = {}
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            if draw(st.booleans()):
                name = draw(secret_names)
                value, _kept = draw(child)
                document[name], expected[name] = value, REDACTED
            else:
                name = draw(benign_names)
                document[name], expected[name] = draw(child)
        return document, expected

    lists = st.lists(child, max_size=3).map(
        lambda pairs: ([v for v, _ in pairs], [e for _, e in pairs])
    )
    tuples = st.lists(child, max_size=3).map(
        lambda pairs: (tuple(v for v, _ in pairs), [e for _, e in pairs])
    )
    return leaves | objects() | lists | tuples


documents = _documents(4)


@given(documents)
@settings(max_examples=300)
def test_secrets_are_redacted_at_any_depth_and_nothing_else_changes(
    pair: tuple[Any, Any],
) -> None:
    document, expected = pair
    original = copy.deepcopy(document)
    assert redact(document) == expected
    assert document == original  # the input is not modified


@given(secret_names, scalars | st.lists(scalars) | st.dictionaries(st.text(), scalars))
@settings(max_examples=100)
def test_a_secret_field_is_replaced_whatever_its_value(name: str, value: Any) -> None:
    assert redact({name: value}) == {name: REDACTED}


def test_a_realistic_login_record() -> None:
    details = {
        "login_type": "client",
        "headers": {"Authorization": "Bearer abc", "x-bitware-session-token": "tok", "accept": "*"},
        "body": {"username": "ann@example.com", "password": "hunter2"},
        "attempts": [{"api_key": "k1", "ok": False}, {"api_key": "k2", "ok": True}],
        "client": {"settings": {"webhook": {"url": "https://x", "secret": "s"}}},
    }
    assert redact(details) == {
        "login_type": "client",
        "headers": {"Authorization": REDACTED, "x-bitware-session-token": REDACTED, "accept": "*"},
        "body": {"username": "ann@example.com", "password": REDACTED},
        "attempts": [{"api_key": REDACTED, "ok": False}, {"api_key": REDACTED, "ok": True}],
        "client": {"settings": {"webhook": {"url": "https://x", "secret": REDACTED}}},
    }


def test_values_are_never_inspected_only_names() -> None:
    # A value that looks like a secret under an innocent name is the caller's business.
    assert redact({"note": "password=hunter2"}) == {"note": "password=hunter2"}
    assert redact(["token", "secret"]) == ["token", "secret"]


def test_scalars_pass_through() -> None:
    for value in (None, 1, 1.5, "text", True):
        assert redact(value) == value


@pytest.mark.parametrize("name", ["keywords", "keyword_count", "hashtags", "passage"])
def test_names_that_merely_contain_a_secret_word_are_kept(name: str) -> None:
    # Template parameters are audited (request.assign_template); a parameter such as
    # `keywords` is not a secret and must survive in the audit log.
    assert redact({"parameters": {name: ["ai", "tools"]}}) == {
        "parameters": {name: ["ai", "tools"]}
    }


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name) is True


@pytest.mark.parametrize("name", [n for n in DOMAIN_NAMES if n])
def test_domain_names_are_not_secret(name: str) -> None:
    assert is_secret_name(name) is False

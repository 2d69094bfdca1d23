"""The JSON codec: every wire message and model survives a round trip; bad input is refused.

Strategies are built by hand for every class (no inference of `Any`), so the round trips cover
nested storage references, money, datetimes with and without offsets, enums and free-form
JSON documents.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aifactory.models
import aifactory.protocol.messages
from aifactory._exceptions import BadInputError
from aifactory.models import (
    ApiKeyInfo,
    AuditEvent,
    Checkpoint,
    Client,
    Cost,
    Deliverable,
    Execution,
    ExecutionEvent,
    ExecutionOwner,
    ExecutionStatus,
    LoginFailures,
    LoginThrottle,
    MetricsLine,
    MetricsReport,
    ModelUsage,
    Notification,
    ParameterSpec,
    PasswordReset,
    Principal,
    Recommendation,
    Request,
    RequestStatus,
    Role,
    Session,
    StagePolicy,
    StageRun,
    StageSpec,
    StageStatus,
    StorageRef,
    Template,
    TemplateVersion,
    Tier,
    TierLimits,
    Urgency,
    Usage,
    UsageLine,
    UsageReport,
    User,
    WebhookDelivery,
    WorkerStatus,
)
from aifactory.protocol.codec import dumps, from_json, loads, structure, to_json, unstructure
from aifactory.protocol.messages import (
    AcknowledgeByDigest,
    AcknowledgeReply,
    AcknowledgeRequest,
    Binding,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    ResourceEstimate,
    StageInput,
    StageSummary,
    WorkerHealth,
)

# -- strategies ------------------------------------------------------------------------------

texts = st.text(max_size=20)
ids = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)
counts = st.integers(min_value=0, max_value=2**53)
attempts = st.integers(min_value=-(2**31), max_value=2**31)
money = st.decimals(allow_nan=False, allow_infinity=False, places=None)
cents = st.decimals(min_value=-(10**9), max_value=10**9, places=8)
scores = st.none() | st.floats(allow_nan=False, allow_infinity=False)
offsets = st.builds(
    timezone, st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timedelta(minutes=m))
)
datetimes = st.datetimes(timezones=st.none() | st.just(UTC) | offsets)
maybe_datetimes = st.none() | datetimes

# JSON documents as they travel in `dict[str, Any]` fields: lists (not tuples), finite floats.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)

_SEGMENT_FIRST = string.ascii_letters + string.digits + "_-"
segments = st.builds(
    str.__add__, st.sampled_from(_SEGMENT_FIRST), st.text(_SEGMENT_FIRST + ".=+@,", max_size=8)
)
namespaces = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_lowercase + string.digits),
    st.text(string.ascii_lowercase + string.digits + "_-", max_size=10),
)
media_types = st.sampled_from(["application/octet-stream", "text/markdown", "application/json"])
inline_refs = st.builds(StorageRef.inline, st.binary(max_size=64), media_types)


@st.composite
def stored_refs(draw: st.DrawFn) -> StorageRef:
    scheme = draw(st.sampled_from(["kv", "r2"]))
    key = "/".join(draw(st.lists(segments, min_size=1, max_size=3)))
    body = draw(st.binary(max_size=32))
    ref = StorageRef.parse(
        f"{scheme}://{draw(namespaces)}/{key}",
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
    )
    return StorageRef(
        ref.scheme, ref.namespace, ref.key, ref.size, ref.sha256, media_type=draw(media_types)
    )


refs = inline_refs | stored_refs()
maybe_refs = st.none() | refs
tiers = st.sampled_from(Tier)
tier_tuples = st.lists(tiers, unique=True, max_size=4).map(tuple)
str_tuples = st.lists(texts, max_size=3).map(tuple)

usages = st.builds(
    Usage, prompt_tokens=counts, completion_tokens=counts, bytes_stored=counts, compute_ms=counts
)
costs = st.builds(Cost, llm_usd=cents, storage_usd=cents, compute_usd=cents)
estimates = st.builds(
    ResourceEstimate,
    prompt_tokens=counts,
    completion_tokens=counts,
    duration_ms=counts,
    memory_mb=counts,
    cost_usd=money,
)
bindings = st.builds(Binding, ref=maybe_refs, path=texts, value=json_values)
summaries = st.builds(
    StageSummary,
    method=texts,
    usage=usages,
    cost=costs,
    quality_score=scores,
    continue_pipeline=st.booleans(),
    notes=str_tuples,
    cpu_ms=st.floats(0, 1e9),
    peak_rss_kb=counts,
    queue_ms=st.floats(0, 1e9),
)
metrics_lines = st.builds(
    MetricsLine,
    name=ids,
    executions=counts,
    failed=counts,
    success_rate=st.none() | st.floats(0, 1),
    latency_p99_s=st.none() | st.floats(0, 1e9),
    retries=counts,
    queue_p50_s=st.none() | st.floats(0, 1e9),
    cost_usd=cents,
    cpu_s=st.floats(0, 1e9),
    peak_rss_kb=counts,
)

parameter_specs = st.builds(
    ParameterSpec,
    name=ids,
    type=st.sampled_from(["string", "integer", "number", "boolean", "enum"]),
    description=texts,
    default=json_values,
    minimum=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    maximum=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    choices=str_tuples,
    max_length=st.none() | counts,
    required=st.booleans(),
    visible_tiers=tier_tuples,
    editable_tiers=tier_tuples,
)
maybe_seconds = st.none() | st.floats(min_value=0, max_value=1e6)
stage_policies = st.builds(
    StagePolicy,
    maximum_attempts=st.none() | st.integers(min_value=0, max_value=100),
    initial_interval_s=maybe_seconds,
    backoff_coefficient=maybe_seconds,
    maximum_interval_s=maybe_seconds,
    schedule_to_start_s=maybe_seconds,
    start_to_close_s=maybe_seconds,
    heartbeat_s=maybe_seconds,
    cache=st.booleans(),
)
stage_specs = st.builds(
    StageSpec,
    id=ids,
    worker=ids,
    action=ids,
    depends_on=st.lists(ids, max_size=3).map(tuple),
    input_mapping=st.dictionaries(ids, texts, max_size=3),
    parameters=json_objects,
    required=st.booleans(),
    condition=st.none() | texts,
    deliverable=st.booleans(),
    policy=stage_policies,
)
templates = st.builds(
    Template,
    name=ids,
    display_name=texts,
    description=texts,
    category=texts,
    tiers=tier_tuples,
    stages=st.lists(stage_specs, max_size=3).map(tuple),
    parameters=st.lists(parameter_specs, max_size=3).map(tuple),
    keywords=str_tuples,
    max_execution_time_s=counts,
    allow_partial=st.booleans(),
    estimated_cost_usd=st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
usage_lines = st.builds(
    UsageLine,
    name=texts,
    executions=counts,
    model_calls=counts,
    prompt_tokens=counts,
    completion_tokens=counts,
    model_usd=cents,
    storage_usd=cents,
    compute_usd=cents,
)
users = st.builds(
    User,
    id=ids,
    email=texts,
    role=st.sampled_from(Role),
    client_id=st.none() | ids,
    created_at=datetimes,
    display_name=texts,
    active=st.booleans(),
)

MESSAGES: dict[type[Any], st.SearchStrategy[Any]] = {
    ResourceEstimate: estimates,
    HandshakeRequest: st.builds(
        HandshakeRequest,
        execution_id=ids,
        stage_id=ids,
        attempt=attempts,
        worker=ids,
        action=ids,
        input_ref=refs,
        idempotency_key=ids,
        requirements=json_objects,
    ),
    HandshakeReply: st.builds(
        HandshakeReply,
        accepted=st.booleans(),
        handshake_id=ids,
        worker=ids,
        estimate=estimates,
        reason=st.none() | texts,
        retryable=st.booleans(),
        capabilities=str_tuples,
    ),
    ProcessRequest: st.builds(
        ProcessRequest,
        execution_id=ids,
        stage_id=ids,
        attempt=attempts,
        handshake_id=ids,
        data_ref=refs,
    ),
    StageSummary: summaries,
    ProcessReply: st.builds(
        ProcessReply, handshake_id=ids, attempt=attempts, output_ref=refs, summary=summaries
    ),
    AcknowledgeRequest: st.builds(
        AcknowledgeRequest,
        execution_id=ids,
        stage_id=ids,
        attempt=attempts,
        handshake_id=ids,
        status=st.sampled_from(["completed", "failed"]),
        output_ref=maybe_refs,
    ),
    AcknowledgeByDigest: st.builds(
        AcknowledgeByDigest,
        execution_id=ids,
        stage_id=ids,
        attempt=attempts,
        handshake_id=ids,
        status=st.sampled_from(["completed", "failed"]),
        output_sha256=st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    ),
    AcknowledgeReply: st.builds(
        AcknowledgeReply, handshake_id=ids, committed=st.booleans(), duplicate=st.booleans()
    ),
    WorkerHealth: st.builds(
        WorkerHealth,
        worker=ids,
        healthy=st.booleans(),
        slots_total=counts,
        slots_free=counts,
        capabilities=str_tuples,
        cacheable=st.booleans(),
        version=texts,
    ),
    Binding: bindings,
    StageInput: st.builds(
        StageInput,
        action=ids,
        parameters=json_objects,
        bindings=st.dictionaries(ids, bindings, max_size=3),
    ),
}

MODELS: dict[type[Any], st.SearchStrategy[Any]] = {
    StorageRef: refs,
    Usage: usages,
    Cost: costs,
    LoginFailures: st.builds(
        LoginFailures,
        failures=counts,
        last_at=st.floats(allow_nan=False, allow_infinity=False),
        locked_until=st.floats(allow_nan=False, allow_infinity=False),
    ),
    LoginThrottle: st.builds(
        LoginThrottle,
        account_failures=counts,
        address_failures=counts,
        lock_s=st.floats(min_value=0, max_value=1e6),
        max_lock_s=st.floats(min_value=0, max_value=1e6),
        forget_s=st.floats(min_value=0, max_value=1e6),
        enabled=st.booleans(),
    ),
    TierLimits: st.builds(
        TierLimits,
        monthly_requests=st.none() | counts,
        max_users=st.none() | counts,
        rate_limit_per_minute=counts,
        concurrent_executions=st.none() | counts,
    ),
    Client: st.builds(
        Client,
        id=ids,
        name=texts,
        tier=tiers,
        monthly_budget_usd=money,
        used_this_month_usd=money,
        month=texts,
        created_at=datetimes,
        active=st.booleans(),
    ),
    User: users,
    Principal: st.builds(Principal, user=users),
    ApiKeyInfo: st.builds(
        ApiKeyInfo,
        id=ids,
        prefix=ids,
        user_id=ids,
        client_id=st.none() | ids,
        role=st.sampled_from(list(Role)),
        created_at=datetimes,
        revoked_at=maybe_datetimes,
        name=texts,
        key=st.none() | texts,
    ),
    Session: st.builds(
        Session,
        token_hash=texts,
        user_id=ids,
        created_at=datetimes,
        expires_at=datetimes,
        revoked_at=maybe_datetimes,
    ),
    Request: st.builds(
        Request,
        id=ids,
        client_id=ids,
        created_by=ids,
        title=texts,
        description=texts,
        urgency=st.sampled_from(Urgency),
        category=texts,
        status=st.sampled_from(RequestStatus),
        created_at=datetimes,
        updated_at=datetimes,
        template_name=st.none() | ids,
        parameters=json_objects,
        execution_id=st.none() | ids,
    ),
    ParameterSpec: parameter_specs,
    StagePolicy: stage_policies,
    StageSpec: stage_specs,
    Template: templates,
    Execution: st.builds(
        Execution,
        id=ids,
        request_id=st.none() | ids,
        client_id=st.none() | ids,
        template=templates,
        parameters=json_objects,
        status=st.sampled_from(ExecutionStatus),
        created_at=datetimes,
        updated_at=datetimes,
        started_at=maybe_datetimes,
        finished_at=maybe_datetimes,
        error=st.none() | texts,
        usage=usages,
        cost=costs,
        stages_total=counts,
        stages_done=counts,
        context=json_objects,
        resources=json_objects,
        runs=counts,
    ),
    StageRun: st.builds(
        StageRun,
        execution_id=ids,
        stage_id=ids,
        worker=ids,
        status=st.sampled_from(StageStatus),
        attempt=attempts,
        handshake_id=st.none() | ids,
        input_ref=maybe_refs,
        output_ref=maybe_refs,
        summary=json_objects,
        usage=usages,
        cost=costs,
        error=st.none() | texts,
        started_at=maybe_datetimes,
        finished_at=maybe_datetimes,
    ),
    Checkpoint: st.builds(
        Checkpoint,
        execution_id=ids,
        version=counts,
        completed=st.dictionaries(ids, refs, max_size=3),
        created_at=datetimes,
    ),
    ExecutionOwner: st.builds(
        ExecutionOwner,
        execution_id=ids,
        status=st.sampled_from(list(ExecutionStatus)),
        state=st.sampled_from(["running", "interrupted", "waiting"]),
        owner=st.none() | texts,
        expires_at=maybe_datetimes,
    ),
    WorkerStatus: st.builds(
        WorkerStatus,
        worker=ids,
        state=st.sampled_from(["ready", "busy", "unhealthy", "unreachable"]),
        local=st.booleans(),
        slots_total=counts,
        slots_free=counts,
        capabilities=st.lists(texts, max_size=3).map(tuple),
        version=texts,
    ),
    ExecutionEvent: st.builds(
        ExecutionEvent,
        execution_id=ids,
        seq=counts,
        at=datetimes,
        kind=texts,
        stage_id=st.none() | ids,
        data=json_objects,
    ),
    AuditEvent: st.builds(
        AuditEvent,
        id=counts,
        at=datetimes,
        actor=texts,
        action=texts,
        target=texts,
        outcome=texts,
        details=json_objects,
    ),
    Deliverable: st.builds(
        Deliverable,
        id=ids,
        request_id=ids,
        client_id=ids,
        execution_id=ids,
        type=texts,
        filename=texts,
        media_type=media_types,
        ref=refs,
        created_at=datetimes,
        metadata=json_objects,
    ),
    Notification: st.builds(
        Notification,
        id=ids,
        user_id=ids,
        kind=texts,
        message=texts,
        created_at=datetimes,
        data=json_objects,
        read_at=maybe_datetimes,
    ),
    Recommendation: st.builds(
        Recommendation,
        template=ids,
        display_name=texts,
        confidence=st.floats(0, 1),
        reasons=st.lists(texts, max_size=3).map(tuple),
        estimated_cost_usd=st.decimals(0, 100, places=2).map(str),
        method=texts,
    ),
    PasswordReset: st.builds(PasswordReset, user=users, password=texts, sessions_revoked=counts),
    ModelUsage: st.builds(
        ModelUsage,
        id=ids,
        client_id=ids,
        request_id=st.none() | ids,
        purpose=texts,
        model=texts,
        outcome=texts,
        requests=counts,
        prompt_tokens=counts,
        completion_tokens=counts,
        cost_usd=cents,
        at=datetimes,
    ),
    UsageLine: usage_lines,
    MetricsLine: metrics_lines,
    MetricsReport: st.builds(
        MetricsReport,
        since=datetimes,
        until=datetimes,
        by=st.sampled_from(["client", "template", "worker", "stage"]),
        total=metrics_lines,
        groups=st.lists(metrics_lines, max_size=3).map(tuple),
    ),
    TemplateVersion: st.builds(
        TemplateVersion,
        name=ids,
        version=counts,
        template=templates,
        created_at=datetimes,
        created_by=texts,
        retired_at=maybe_datetimes,
    ),
    UsageReport: st.builds(
        UsageReport,
        client_id=ids,
        month=texts,
        total=usage_lines,
        recommendations=usage_lines,
        by_template=st.lists(usage_lines, max_size=3).map(tuple),
        by_worker=st.lists(usage_lines, max_size=3).map(tuple),
        by_status=st.dictionaries(texts, counts, max_size=3),
        charged_usd=cents,
        budget_usd=cents,
    ),
    WebhookDelivery: st.builds(
        WebhookDelivery,
        id=ids,
        event_id=ids,
        event_type=texts,
        url=texts,
        attempt=attempts,
        at=datetimes,
        duration_s=st.floats(0, 1e6),
        status_code=st.none() | st.integers(100, 599),
        error=st.none() | texts,
        delivered=st.booleans(),
    ),
}

ALL = {**MESSAGES, **MODELS}


# -- round trips -----------------------------------------------------------------------------


def test_every_exported_message_and_model_has_a_strategy() -> None:
    # A new message or model must be added to the round trips below.
    exported = [
        getattr(module, name)
        for module in (aifactory.models, aifactory.protocol.messages)
        for name in module.__all__
    ]
    assert {cls for cls in exported if isinstance(cls, type) and attrs.has(cls)} <= set(ALL)


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_message_and_model_survives_a_json_round_trip(
    cls: type[Any], data: st.DataObject
) -> None:
    value = data.draw(ALL[cls])
    raw = to_json(value)
    assert isinstance(raw, bytes)
    back = from_json(raw, cls)
    assert back == value
    # Stable encoding: the same value always gives the same bytes (so digests are stable).
    assert to_json(back) == raw


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_unstructured_values_are_plain_json(cls: type[Any], data: st.DataObject) -> None:
    plain = unstructure(data.draw(ALL[cls]))
    assert json.loads(json.dumps(plain)) == plain


@given(money)
@settings(max_examples=100)
def test_decimal_precision_survives_exactly(amount: Decimal) -> None:
    estimate = ResourceEstimate(cost_usd=amount)
    back = from_json(to_json(estimate), ResourceEstimate)
    # Same digits and exponent, not just an equal number.
    assert str(back.cost_usd) == str(amount)
    assert back.cost_usd.as_tuple() == amount.as_tuple()


def test_money_travels_as_a_string() -> None:
    cost = Cost(Decimal("0.1"), Decimal("0.20"), Decimal("12345678901234567890.123456789"))
    body = json.loads(to_json(cost))
    assert body == {
        "llm_usd": "0.1",
        "storage_usd": "0.20",
        "compute_usd": "12345678901234567890.123456789",
    }
    back = from_json(to_json(cost), Cost)
    assert back == cost
    assert str(back.compute_usd) == "12345678901234567890.123456789"


def test_money_sent_as_a_json_number_keeps_its_decimal_digits() -> None:
    # 0.1 as a float is 0.1000000000000000055...; the codec must not keep that noise.
    assert from_json(b'{"llm_usd": 0.1, "compute_usd": 3}', Cost) == Cost(
        Decimal("0.1"), Decimal(0), Decimal(3)
    )


def test_datetimes_travel_as_iso_8601_and_keep_their_offset() -> None:
    at = datetime(2024, 5, 17, 9, 30, 12, 345678, tzinfo=timezone(timedelta(hours=2)))
    event = ExecutionEvent("e1", 1, at, "execution.started")
    body = json.loads(to_json(event))
    assert body["at"] == "2024-05-17T09:30:12.345678+02:00"
    back = from_json(to_json(event), ExecutionEvent)
    assert back.at == at
    assert back.at.utcoffset() == timedelta(hours=2)


def test_inline_refs_travel_as_base64_and_stored_refs_by_uri() -> None:
    inline = StorageRef.inline(b"\x00\xffhello", "text/plain")
    assert unstructure(inline) == {
        "inline": "AP9oZWxsbw==",
        "size": 7,
        "sha256": hashlib.sha256(b"\x00\xffhello").hexdigest(),
        "media_type": "text/plain",
    }
    stored = StorageRef.parse("kv://stages/exec-1/out.json", size=5, sha256="ab" * 32)
    assert unstructure(stored) == {
        "ref": "kv://stages/exec-1/out.json",
        "size": 5,
        "sha256": "ab" * 32,
        "media_type": "application/octet-stream",
    }


def test_a_storage_ref_may_arrive_as_a_bare_uri() -> None:
    request = from_json(
        b'{"execution_id":"e","stage_id":"s","attempt":1,"handshake_id":"h",'
        b'"data_ref":"r2://bucket/a/b.txt"}',
        ProcessRequest,
    )
    assert request.data_ref == StorageRef.parse("r2://bucket/a/b.txt")


def test_inline_data_keeps_the_claimed_size_and_digest() -> None:
    # The claim is kept, not re-hashed, so that reading the blob can detect bytes that were
    # altered in transit.
    body = {"inline": "aGVsbG8=", "size": 99, "sha256": "0" * 64}
    ref = structure(body, StorageRef)
    assert ref.data == b"hello"
    assert (ref.size, ref.sha256) == (99, "0" * 64)
    assert structure({"inline": "aGVsbG8="}, StorageRef).size == 5


def test_dumps_is_compact_sorted_and_keeps_unicode() -> None:
    assert dumps({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    assert loads(dumps({"x": [1, 2]})) == {"x": [1, 2]}


def test_extra_keys_are_ignored_for_forward_compatibility() -> None:
    reply = from_json(b'{"handshake_id":"h","committed":true,"new_field":1}', AcknowledgeReply)
    assert reply == AcknowledgeReply("h", True)


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"{'a': 1}",
        b"[1,",
        b"\xff\xfe\x00",
        "not json",
        b'{"a":1}}',
        b"NaN-ish",
        # Nested beyond the parser's recursion limit: a BadInputError, not a RecursionError.
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ],
)
def test_malformed_json_is_bad_input(raw: bytes | str) -> None:
    with pytest.raises(BadInputError, match="malformed JSON"):
        from_json(raw, AcknowledgeReply)
    with pytest.raises(BadInputError):
        loads(raw)


GOOD_PROCESS = {
    "execution_id": "e",
    "stage_id": "s",
    "attempt": 1,
    "handshake_id": "h",
    "data_ref": "kv://stages/x",
}
GOOD_REPLY = {"accepted": False, "handshake_id": "h", "worker": "w"}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = dict(base)
    for name, value in changes.items():
        if value is _DROP:
            del body[name]
        else:
            body[name] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (ProcessRequest, [1, 2]),
        (ProcessRequest, None),
        (ProcessRequest, "text"),
        (ProcessRequest, _with(GOOD_PROCESS, execution_id=_DROP)),
        (ProcessRequest, _with(GOOD_PROCESS, attempt="one")),
        (ProcessRequest, _with(GOOD_PROCESS, attempt=None)),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref="ftp://host/file")),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref="kv://stages/../etc/passwd")),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref="kv://stages")),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref=42)),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref={"size": 1})),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref={"inline": "not base64!"})),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref={"inline": 12})),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref={"ref": "kv://a/b", "size": "big"})),
        (ProcessRequest, _with(GOOD_PROCESS, data_ref={"ref": "kv://a/b", "size": None})),
        (HandshakeReply, _with(GOOD_REPLY, estimate={"cost_usd": "NaN"})),
        (HandshakeReply, _with(GOOD_REPLY, estimate={"cost_usd": "Infinity"})),
        (HandshakeReply, _with(GOOD_REPLY, estimate={"cost_usd": "ten dollars"})),
        (HandshakeReply, _with(GOOD_REPLY, capabilities=5)),
        (
            Session,
            {
                "token_hash": "t",
                "user_id": "u",
                "created_at": "yesterday",
                "expires_at": "2024-01-01T00:00:00",
            },
        ),
        (
            Session,
            {
                "token_hash": "t",
                "user_id": "u",
                "created_at": 1700000000,
                "expires_at": "2024-01-01T00:00:00",
            },
        ),
        (
            Template,
            {
                "name": "t",
                "display_name": "T",
                "description": "",
                "category": "c",
                "tiers": ["gold"],
                "stages": [],
            },
        ),
        (StageRun, {"execution_id": "e", "stage_id": "s", "worker": "w", "status": "done"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_malformed_values_are_bad_input(cls: type[Any], body: Any) -> None:
    with pytest.raises(BadInputError) as info:
        from_json(json.dumps(body), cls)
    errors = info.value.details["errors"]
    assert isinstance(errors, list)
    assert errors
    assert all(isinstance(e, str) for e in errors)


# Wrong JSON types must be refused, not coerced: `bool("false")` is True, `int(3.9)` is 3.
@pytest.mark.parametrize(
    ("cls", "body"),
    [
        pytest.param(HandshakeReply, _with(GOOD_REPLY, accepted="false"), id="accepted-str-false"),
        pytest.param(HandshakeReply, _with(GOOD_REPLY, accepted=0), id="accepted-int"),
        pytest.param(HandshakeReply, _with(GOOD_REPLY, handshake_id=5), id="handshake_id-int"),
        pytest.param(HandshakeReply, _with(GOOD_REPLY, capabilities="abc"), id="capabilities-str"),
        pytest.param(ProcessRequest, _with(GOOD_PROCESS, attempt=3.9), id="attempt-float"),
        pytest.param(ProcessRequest, _with(GOOD_PROCESS, attempt="7"), id="attempt-str"),
        pytest.param(ProcessRequest, _with(GOOD_PROCESS, attempt=True), id="attempt-bool"),
        pytest.param(
            AcknowledgeReply, {"handshake_id": "h", "committed": "no"}, id="committed-str"
        ),
        pytest.param(
            ProcessRequest, _with(GOOD_PROCESS, execution_id={"a": 1}), id="execution_id-object"
        ),
        pytest.param(HandshakeReply, _with(GOOD_REPLY, estimate=[]), id="estimate-list"),
    ],
)
def test_wrong_json_types_are_bad_input_not_coerced(cls: type[Any], body: Any) -> None:
    with pytest.raises(BadInputError):
        from_json(json.dumps(body), cls)


def test_a_bad_field_is_named_in_the_error() -> None:
    with pytest.raises(BadInputError) as info:
        from_json(json.dumps(_with(GOOD_PROCESS, attempt="one")), ProcessRequest)
    assert "attempt" in str(info.value)
    assert "ProcessRequest" in str(info.value)


@pytest.mark.parametrize(
    "raw", [b'"ftp://x/y"', b'"kv://Bad Namespace/k"', b"42", b'{"ref": "kv://a//b"}']
)
def test_a_bad_storage_ref_alone_is_bad_input(raw: bytes) -> None:
    with pytest.raises(BadInputError):
        from_json(raw, StorageRef)


# -- dumps ---------------------------------------------------------------------------------------


@given(json_values)
def test_dumps_writes_what_json_dumps_would(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    assert dumps(value) == expected.encode()


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), {"nested": [complex(1, 2)]}])
def test_dumps_refuses_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps(value)


# -- signed request bodies ------------------------------------------------------------------------


def test_signed_bodies_leave_inline_digests_out_and_the_receiver_works_them_out() -> None:
    from aifactory.protocol.codec import to_signed_json

    inline = StorageRef.inline(b'{"a": 1}', "application/json")
    stored = StorageRef.parse("kv://stages/e/s/output-1.json", size=9, sha256="ab" * 32)
    request = HandshakeRequest("e", "s", 1, "w", "act", inline, "idem")
    wire = json.loads(to_signed_json(request))
    assert set(wire["input_ref"]) == {"inline", "media_type"}
    back = from_json(to_signed_json(request), HandshakeRequest)
    assert back.input_ref == inline  # size and sha256 worked out from the bytes
    kept = json.loads(to_signed_json(ProcessRequest("e", "s", 1, "h", stored)))
    assert kept["data_ref"]["sha256"] == "ab" * 32  # by reference: the digest travels


def test_an_inline_digest_that_is_sent_is_kept_and_checked_on_read() -> None:
    wrong = {"inline": base64.b64encode(b"abc").decode(), "sha256": "00" * 32, "size": 3}
    ref = structure(wrong, StorageRef)
    assert ref.sha256 == "00" * 32  # not silently re-hashed: BlobStore.get will refuse it

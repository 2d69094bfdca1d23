"""Worker request signing: what is accepted, and every way a request is refused."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory import AuthenticationError, BadInputError, ManualClock, QuotaExceededError
from aifactory.auth.signing import (
    SIGNATURE_HEADER,
    WORKER_ID_HEADER,
    SignatureVerifier,
    WorkerKey,
    generate_worker_key,
    sign,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START.timestamp()
PATH = "/api/process?worker=report_builder"
BODY = b'{"execution_id":"exec_1"}'
A = WorkerKey("orchestrator", b"a" * 32)
B = WorkerKey("content_granulator", b"b" * 32)
BEARER = "migration-token-0123456789"


def _fields(headers: dict[str, str]) -> tuple[str, str, str]:
    """The timestamp, nonce and signature of a signature header."""
    timestamp, nonce, signature = headers[SIGNATURE_HEADER].split(".")
    return timestamp, nonce, signature


def _with(headers: dict[str, str], **fields: str) -> dict[str, str]:
    """`headers` with fields of the signature header replaced."""
    timestamp, nonce, signature = _fields(headers)
    parts = {"timestamp": timestamp, "nonce": nonce, "signature": signature} | fields
    return headers | {SIGNATURE_HEADER: ".".join(parts.values())}


def _verifier(clock: ManualClock | None = None, **kw: object) -> SignatureVerifier:
    return SignatureVerifier({A.worker_id: A, B.worker_id: B}, clock or ManualClock(START), **kw)  # type: ignore[arg-type]


def _refused(
    verifier: SignatureVerifier,
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(method, path, headers, body)
    assert caught.value.status == 401
    return caught.value.message


def test_a_signed_request_is_accepted_as_its_worker() -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    assert set(headers) == {WORKER_ID_HEADER, SIGNATURE_HEADER}
    assert headers[WORKER_ID_HEADER] == "orchestrator"
    timestamp, nonce, signature = _fields(headers)
    assert timestamp == str(int(NOW))
    assert len(nonce) >= 22  # 128 bits in base64url
    assert len(signature) == 43  # 256 bits in base64url, no padding
    assert _verifier().verify("POST", PATH, headers, BODY) == "orchestrator"


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in sign("GET", "/health", b"", B, now=NOW).items()}
    assert _verifier().verify("get", "/health", headers, b"") == "content_granulator"


def test_two_signatures_never_share_a_nonce() -> None:
    nonces = {_fields(sign("POST", PATH, BODY, A, now=NOW))[1] for _ in range(200)}
    assert len(nonces) == 200


@pytest.mark.parametrize("offset", [-300, 300])
def test_a_timestamp_300_s_off_is_still_accepted(offset: int) -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW + offset)
    assert _verifier().verify("POST", PATH, headers, BODY) == "orchestrator"


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_more_than_300_s_off_is_refused(offset: int) -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW + offset)
    assert "timestamp" in _refused(_verifier(), headers)


def test_the_clock_moving_on_expires_a_signature() -> None:
    clock = ManualClock(START)
    headers = sign("POST", PATH, BODY, A, now=NOW)
    clock.advance(301)
    _refused(_verifier(clock), headers)


def test_a_replayed_request_is_refused() -> None:
    verifier = _verifier()
    headers = sign("POST", PATH, BODY, A, now=NOW)
    verifier.verify("POST", PATH, headers, BODY)
    assert "nonce" in _refused(verifier, headers)


def test_nonces_are_forgotten_once_their_window_has_passed() -> None:
    clock = ManualClock(START)
    verifier = _verifier(clock)
    for _ in range(5):
        verifier.verify("POST", PATH, sign("POST", PATH, BODY, A, now=NOW), BODY)
    assert verifier.remembered_nonces == 5
    clock.advance(601)
    verifier.verify("POST", PATH, sign("POST", PATH, BODY, A, now=NOW + 601), BODY)
    assert verifier.remembered_nonces == 1


def test_a_full_nonce_cache_refuses_rather_than_forgets() -> None:
    verifier = _verifier(max_nonces=2)
    for _ in range(2):
        verifier.verify("POST", PATH, sign("POST", PATH, BODY, A, now=NOW), BODY)
    with pytest.raises(QuotaExceededError):
        verifier.verify("POST", PATH, sign("POST", PATH, BODY, A, now=NOW), BODY)


def test_a_nonce_is_accepted_once_across_threads() -> None:
    verifier = _verifier()
    headers = sign("POST", PATH, BODY, A, now=NOW)
    outcomes: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        try:
            verifier.verify("POST", PATH, headers, BODY)
            ok = True
        except AuthenticationError:
            ok = False
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]


def test_a_tampered_body_is_refused() -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    assert "signature" in _refused(_verifier(), headers, body=BODY.replace(b"1", b"2"))


def test_a_tampered_path_or_query_is_refused() -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    _refused(_verifier(), headers, path="/api/acknowledge?worker=report_builder")
    _refused(_verifier(), headers, path="/api/process?worker=content_granulator")
    _refused(_verifier(), headers, path="/api/process")


def test_a_tampered_method_is_refused() -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    _refused(_verifier(), headers, method="PUT")


def test_worker_a_cannot_sign_as_worker_b() -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW) | {WORKER_ID_HEADER: B.worker_id}
    assert "signature" in _refused(_verifier(), headers)


def test_an_unknown_worker_is_refused_even_with_a_valid_signature() -> None:
    stranger = generate_worker_key("stranger")
    assert "unknown" in _refused(_verifier(), sign("POST", PATH, BODY, stranger, now=NOW))


@pytest.mark.parametrize("missing", [WORKER_ID_HEADER, SIGNATURE_HEADER])
def test_each_missing_header_is_refused_by_name(missing: str) -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    del headers[missing]
    assert missing in _refused(_verifier(), headers)


def test_no_credentials_at_all_is_refused() -> None:
    _refused(_verifier(), {})


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": "1e9"},
        {"timestamp": "-5"},
        {"timestamp": ""},
        {"nonce": "short"},
        {"nonce": "not base64url but twenty-two+"},
        {"signature": "ABCDEF"},
        {"signature": "0" * 64},  # the hex form
        {"signature": "A" * 42 + "+"},
    ],
)
def test_malformed_signature_fields_are_refused(fields: dict[str, str]) -> None:
    headers = _with(sign("POST", PATH, BODY, A, now=NOW), **fields)
    _refused(_verifier(), headers)


@pytest.mark.parametrize("value", ["", "1767225600", "1767225600.nonce", "a.b.c.d", "..."])
def test_a_signature_header_without_three_fields_is_refused(value: str) -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW) | {SIGNATURE_HEADER: value}
    _refused(_verifier(), headers)


def test_a_bearer_token_is_refused_unless_configured() -> None:
    message = _refused(_verifier(), {"Authorization": f"Bearer {BEARER}"})
    assert BEARER not in message


def test_a_configured_bearer_token_is_accepted_as_bearer() -> None:
    verifier = _verifier(static_bearer=BEARER)
    assert verifier.verify("POST", PATH, {"authorization": f"Bearer {BEARER}"}, BODY) == "bearer"
    assert BEARER not in _refused(verifier, {"Authorization": f"Bearer {BEARER}x"})
    _refused(verifier, {"Authorization": f"Basic {BEARER}"})


def test_signatures_still_work_when_a_bearer_token_is_configured() -> None:
    verifier = _verifier(static_bearer=BEARER)
    assert verifier.verify("POST", PATH, sign("POST", PATH, BODY, A, now=NOW), BODY) == A.worker_id


def test_a_short_bearer_token_or_a_misfiled_key_is_a_configuration_error() -> None:
    with pytest.raises(BadInputError):
        _verifier(static_bearer="short")
    with pytest.raises(BadInputError):
        SignatureVerifier({"someone_else": A}, ManualClock())


def test_refusals_never_show_secrets_or_signatures() -> None:
    verifier = _verifier()
    headers = sign("POST", PATH, BODY, A, now=NOW)
    signature = _fields(headers)[2]
    for bad in (
        headers | {WORKER_ID_HEADER: B.worker_id},
        _with(headers, signature="A" * 43),
        _with(headers, signature="0" * 64),
    ):
        with pytest.raises(AuthenticationError) as caught:
            verifier.verify("POST", PATH, bad, BODY)
        text = repr(caught.value.to_dict())
        assert signature not in text
        assert A.to_text().split(":")[1] not in text


def test_a_key_hides_its_secret_and_round_trips_as_text() -> None:
    key = generate_worker_key("report_builder")
    assert len(key.secret) == 32
    text = key.to_text()
    assert text.startswith("report_builder:")
    assert "=" not in text
    assert text.split(":", 1)[1] not in repr(key)
    assert repr(key.secret) not in repr(key)
    assert WorkerKey.parse(text) == key
    assert WorkerKey.parse(f"  {text}\n") == key


@pytest.mark.parametrize(
    "text", ["no-colon", "worker:", ":c2VjcmV0c2VjcmV0c2VjcmV0", "w:not*base64", "w:c2hvcnQ"]
)
def test_malformed_key_text_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(BadInputError) as caught:
        WorkerKey.parse(text)
    secret_part = text.partition(":")[2]
    if secret_part:
        assert secret_part not in repr(caught.value.to_dict())


def test_bad_worker_ids_are_refused() -> None:
    with pytest.raises(BadInputError):
        generate_worker_key("has space")
    with pytest.raises(BadInputError):
        WorkerKey("ok", b"too short")


_FIELDS = ("body", "path", "timestamp", "nonce", "worker_id")


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(_FIELDS),
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.integers(min_value=0, max_value=255),
)
def test_any_single_byte_change_is_refused(field: str, position: int, replacement: int) -> None:
    headers = sign("POST", PATH, BODY, A, now=NOW)
    timestamp, nonce, _ = _fields(headers)
    values = {
        "body": BODY,
        "path": PATH.encode(),
        "timestamp": timestamp.encode(),
        "nonce": nonce.encode(),
        "worker_id": headers[WORKER_ID_HEADER].encode(),
    }
    original = values[field]
    index = position % len(original)
    if original[index] == replacement:
        replacement = (replacement + 1) % 256
    changed = original[:index] + bytes([replacement]) + original[index + 1 :]
    values[field] = changed
    # Header values travel as text; bytes that are not valid UTF-8 arrive as replacement
    # characters, which are just as wrong.
    text = {k: v.decode("utf-8", "replace") for k, v in values.items() if k != "body"}
    tampered = _with(headers, timestamp=text["timestamp"], nonce=text["nonce"]) | {
        WORKER_ID_HEADER: text["worker_id"]
    }
    with pytest.raises(AuthenticationError):
        _verifier().verify("POST", text["path"], tampered, values["body"])

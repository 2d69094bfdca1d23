"""The local OpenAI-compatible test server itself, seen through plain HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.openai_server import OpenAIServer, ScriptedCompletion, rate_limited


def chat(server: OpenAIServer, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers)


def test_it_listens_on_loopback_and_lists_models(openai_server: OpenAIServer) -> None:
    assert openai_server.base_url.startswith("http://127.0.0.1:")
    assert openai_server.base_url.endswith("/v1")

    models = httpx.get(f"{openai_server.base_url}/models").json()

    assert models["object"] == "list"
    assert "gpt-4o-mini" in [m["id"] for m in models["data"]]


def test_replies_come_in_script_order(openai_server: OpenAIServer) -> None:
    openai_server.add(
        "text",
        {"json": True},
        ScriptedCompletion("counted", prompt_tokens=7, completion_tokens=3),
        lambda body: f"echo {body['messages'][0]['content']}",
        rate_limited(retry_after="2"),
    )

    replies = [chat(openai_server) for _ in range(5)]

    assert [r.status_code for r in replies] == [200, 200, 200, 200, 429]
    contents = [r.json()["choices"][0]["message"]["content"] for r in replies[:4]]
    assert contents == ["text", json.dumps({"json": True}), "counted", "echo hi"]
    assert replies[2].json()["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
    }
    assert replies[4].headers["retry-after"] == "2"
    assert replies[4].json()["error"]["code"] == "rate_limit_exceeded"
    assert len(openai_server.completions) == 5
    assert openai_server.pending == 0


def test_replies_aimed_at_a_schema_go_to_its_requests_first(openai_server: OpenAIServer) -> None:
    def asking(schema: str) -> httpx.Response:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema, "schema": {"type": "object"}},
            },
        }
        return httpx.post(f"{openai_server.base_url}/chat/completions", json=body)

    openai_server.add("main 1", "main 2")
    openai_server.add("plan", schema="research_plan")
    assert openai_server.pending == 3

    replies = [asking("outline"), asking("research_plan"), asking("research_plan")]

    contents = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert contents == ["main 1", "plan", "main 2"]  # an empty aimed script falls back
    assert openai_server.billed_for("research_plan") == openai_server.billed[1:]
    assert openai_server.pending == 0
    assert chat(openai_server).json()["error"]["code"] == "script_exhausted"


def test_an_exhausted_script_answers_400_or_the_default(openai_server: OpenAIServer) -> None:
    exhausted = chat(openai_server)
    assert exhausted.status_code == 400
    assert exhausted.json()["error"]["code"] == "script_exhausted"

    openai_server.reset(default="always")
    assert [chat(openai_server).json()["choices"][0]["message"]["content"] for _ in "ab"] == [
        "always",
        "always",
    ]


def test_a_required_key_is_checked_without_using_the_script(
    openai_server: OpenAIServer,
) -> None:
    openai_server.reset(["for the right key"], api_key="secret")

    assert chat(openai_server).status_code == 401
    assert chat(openai_server, {"Authorization": "Bearer wrong"}).status_code == 401
    ok = chat(openai_server, {"Authorization": "Bearer secret"})

    assert ok.json()["choices"][0]["message"]["content"] == "for the right key"


def test_the_context_manager_starts_and_stops_a_server_of_its_own() -> None:
    with OpenAIServer(["own"]) as server:
        base_url = server.base_url
        assert chat(server).json()["choices"][0]["message"]["content"] == "own"

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models")

"""A canary secret typed into every field of every login path never lands in the audit log,
the logs, an error, or the state database's files; a failed login names the account only
when the name typed is an account's, and otherwise keeps a salted digest of it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from aifactory import AIFactoryError, AsyncFactory
from aifactory._embedded import EmbeddedFactory
from aifactory.protocol.codec import dumps, unstructure
from aifactory.server import serving
from aifactory.transports.factory import InProcessFactoryTransport
from tests.helpers import ADMIN, ANA, ANA_PASSWORD, fast_config
from tests.servers import UvicornThread

CANARY = "canary-Secret-4b1d9e"


def _attempts(admin_password: str) -> list[tuple[str, str, str]]:
    """(username, password, login type): the canary as a name, as a wrong password, and as a
    password typed into the name field; with the right password at the wrong door too."""
    return [
        (CANARY, "whatever-password", "client"),
        (f"{CANARY}@example.com", CANARY, "admin"),
        (ADMIN, CANARY, "admin"),
        (ADMIN, CANARY, "client"),
        (ANA, CANARY, "client"),
        (CANARY, admin_password, "admin"),
    ]


def test_no_login_path_leaks_the_canary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = EmbeddedFactory(fast_config(home=tmp_path))
    errors: list[Any] = []

    async def prepare() -> str:
        password = await runtime.accounts.bootstrap_admin(ADMIN)
        admin = await runtime.accounts.login(ADMIN, password, "admin")
        principal = await runtime.accounts.authenticate(admin.session_token)
        client = await runtime.accounts.create_client(principal, "Acme", "basic", 5)
        await runtime.accounts.create_user(
            principal, ANA, ANA_PASSWORD, "client", client_id=client.id
        )
        return password

    async def in_process(password: str) -> None:
        transports = [InProcessFactoryTransport(runtime)]
        for transport in transports:
            for username, secret, kind in _attempts(password):
                with pytest.raises(AIFactoryError) as refused:
                    await transport.login(username, secret, kind)
                errors.append(refused.value)
        # The service itself, and the password change (a wrong current password).
        with pytest.raises(AIFactoryError) as refused:
            await runtime.accounts.login(CANARY, CANARY, "admin", client_address="10.0.0.1")
        errors.append(refused.value)
        session = await runtime.accounts.login(ANA, ANA_PASSWORD, "client")
        principal = await runtime.accounts.authenticate(session.session_token)
        with pytest.raises(AIFactoryError) as refused:
            await runtime.administration.change_password(principal, CANARY, "a-new-password-1")
        errors.append(refused.value)

    async def remote(url: str, password: str) -> None:
        async with AsyncFactory.connect(url) as factory:
            for username, secret, kind in _attempts(password):
                with pytest.raises(AIFactoryError) as refused:
                    await factory.login(username, secret, login_type=kind)
                errors.append(refused.value)

    with caplog.at_level(logging.DEBUG):
        password = anyio.run(prepare)
        with UvicornThread(serving(runtime)) as server:
            anyio.run(in_process, password)
            anyio.run(remote, server.url, password)
            with httpx.Client(base_url=server.url) as http:
                for username, secret, kind in _attempts(password):
                    body = {"username": username, "password": secret, "loginType": kind}
                    reply = http.post("/api/auth/login", json=body)
                    assert reply.status_code in (401, 429)
                    assert CANARY not in reply.text
                    assert CANARY not in str(reply.headers)
            audit = anyio.run(lambda: runtime.store.list_audit(limit=1000))

    assert len(errors) == 2 * len(_attempts(password)) + 2
    for error in errors:
        assert CANARY not in str(error)
        assert CANARY not in dumps(error.to_dict()).decode()
    logged = "\n".join(f"{r.getMessage()} {r.exc_info} {r.__dict__}" for r in caplog.records)
    assert CANARY not in logged
    audit_text = dumps(unstructure(audit)).decode()
    assert CANARY not in audit_text
    assert CANARY.lower() not in audit_text
    denied = [e for e in audit if e.action == "auth.login" and e.outcome == "denied"]
    assert len(denied) >= 2 * len(_attempts(password))
    # A known account's failures name it; anything else is a digest.
    assert {e.target for e in denied if e.actor != "anonymous"} == {
        f"email:{ADMIN}",
        f"email:{ANA}",
    }
    assert all(e.target.startswith("name_digest:") for e in denied if e.actor == "anonymous")
    # The same name gives the same digest (attempts can be told apart and counted).
    digests = [e.target for e in denied if e.actor == "anonymous"]
    assert len(set(digests)) < len(digests)
    # Nor is the canary anywhere in the state database's files.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY.encode() not in data, path
            assert CANARY.lower().encode() not in data, path

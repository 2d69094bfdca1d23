"""A webhook receiver on 127.0.0.1 (uvicorn in a thread), as an operator would write one: it
checks every delivery with `verify_webhook` and answers as the test scripts it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aifactory import WebhookSignatureError, verify_webhook
from tests.servers import UvicornThread


@attrs.frozen
class Arrival:
    """One POST that reached the receiver: the verified event (None if refused), its
    headers, and the status it was answered with."""

    event: dict[str, Any] | None
    headers: dict[str, str]
    status: int


class Receiver:
    """Answers the n-th delivery with `answers[n]` (200 past their end), after `delay_s`;
    refuses with 401 what `verify_webhook` refuses. `now` is the receiver's clock (Unix
    seconds): the factory's, when that is a `ManualClock`."""

    def __init__(
        self,
        secret: str,
        *,
        answers: Sequence[int] = (),
        delay_s: float = 0.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.answers = list(answers)
        self.delay_s = delay_s
        self.now = now
        self.arrived = 0  # POSTs received, answered or not
        self.answered: list[Arrival] = []
        self._lock = threading.Lock()
        self.server = UvicornThread(
            Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        )

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with self._lock:
            number = self.arrived
            self.arrived += 1
        try:
            event: dict[str, Any] | None = verify_webhook(
                self.secret, request.headers, body, now=self.now()
            )
        except WebhookSignatureError:
            event, status = None, 401
        else:
            status = self.answers[number] if number < len(self.answers) else 200
        await anyio.sleep(self.delay_s)
        with self._lock:
            self.answered.append(Arrival(event, headers, status))
        return Response(status_code=status)

    async def wait_for(self, answered: int, timeout_s: float = 15.0) -> list[Arrival]:
        """The answered deliveries, once there are `answered` of them."""
        with anyio.fail_after(timeout_s):
            while len(self.answered) < answered:  # noqa: ASYNC110 - another thread's list
                await anyio.sleep(0.02)
        return list(self.answered)

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

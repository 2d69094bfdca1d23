"""Live progress as server-sent events: a request's progress section, sent again each time
its execution has news.

The stream follows the execution with the long-polled `executions.events` operation (the
same one remote clients follow it with: it answers when there is news, whichever process
runs the execution) and, after each batch of events, sends the re-rendered progress section
as one `progress` event; `static/live.js` (the page's own script, packaged, no inline code)
swaps it in with htmx. When the execution has ended the stream sends `end` and closes, and
the page reloads once to show the final status, cost and deliverables.

A stream lasts at most `STREAM_S`: the browser's `EventSource` then reconnects by itself,
sending the last event's id (`Last-Event-ID`), and goes on from there. Each stream counts as
one page view against the client's rate limit, so following an execution costs about one a
minute rather than one per stage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.responses import Response, StreamingResponse

from ...models import Request as WorkRequest
from .pages import progress_context
from .security import page_headers
from .site import Visit

__all__ = ["LIVE_POLL_S", "STREAM_S", "progress_stream"]

#: How long one stream lasts before the browser is told to reconnect, in seconds.
STREAM_S = 60.0
#: How long each long poll of `executions.events` may wait for news, in seconds.
LIVE_POLL_S = 15.0


def sse(event: str, data: str, event_id: int | None = None) -> bytes:
    """One server-sent event: its name, its data (one `data:` line per line) and its id."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


def _after(visit: Visit) -> int:
    # Where the browser was: the id of the last event it saw, if it reconnects.
    text = visit.request.headers.get("last-event-id") or visit.request.query_params.get("after")
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 19 else 0


async def progress_stream(visit: Visit) -> Response:
    """`/requests/{id}/live`: the request's progress section as server-sent events. Raises
    `NotFoundError` for another client's request (before the stream starts)."""
    session = visit.session
    req = await session.requests.get(visit.arg("request_id"))
    execution_id = req.execution_id
    after = _after(visit)

    async def render(current: WorkRequest) -> str:
        context = await progress_context(session, current)
        return visit.site.fragment(visit.request, "_progress.html", session, **context)

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        yield b"retry: 1000\n\n"  # reconnect after a second when a stream ends early
        if execution_id is None:
            yield sse("end", "")
            return
        with anyio.move_on_after(STREAM_S):
            while True:
                batch = await session.executions.poll(execution_id, after, LIVE_POLL_S)
                if batch:
                    after = batch[-1].seq
                    current = await session.requests.get(req.id)
                    yield sse("progress", await render(current), after)
                execution = await session.executions.get(execution_id)
                if execution.status.is_final and not batch:
                    yield sse("end", "", after)
                    return

    response = StreamingResponse(events(), media_type="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"  # a proxy must pass events on at once
    return page_headers(response)

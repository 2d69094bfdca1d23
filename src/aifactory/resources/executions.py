"""Pipeline executions: status, stages, events, waiting, retrying and resuming
(`session.executions`)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

import anyio
import tenacity

from .._exceptions import TransportError
from ..models import Execution, ExecutionEvent, ExecutionOwner, StageRun, WorkerStatus
from ._base import AsyncResource

__all__ = ["FOLLOW_OUTAGE_S", "AsyncExecutions"]

#: How long following an execution (`executions.events`, `executions.wait`) keeps asking a
#: server it cannot reach before giving up, in seconds: long enough for a restart.
FOLLOW_OUTAGE_S = 20.0


class AsyncExecutions(AsyncResource):
    """Pipeline executions: status, stages, events, waiting and resuming."""

    async def get(self, execution_id: str) -> Execution:
        """An execution's current record."""
        return await self._call("executions.get", execution_id=execution_id)

    async def stages(self, execution_id: str) -> builtins.list[StageRun]:
        """Its stage runs, in template order."""
        return await self._call("executions.stages", execution_id=execution_id)

    async def events(self, execution_id: str, after: int = 0) -> AsyncIterator[ExecutionEvent]:
        """Follow its events from sequence number `after` until it has finished.

        A server that cannot be reached for a moment (restarting) is asked again, with
        backoff, for about `FOLLOW_OUTAGE_S`; then the `TransportError` is raised.
        """
        transport, token = self._session._transport, self._session.token
        while True:
            batch: list[ExecutionEvent] = await self._through_outages(
                "executions.events",
                execution_id=execution_id,
                after=after,
                wait_s=transport.long_poll_s,
            )
            for event in batch:
                after = event.seq
                yield event
            if batch:
                continue
            execution = await self._through_outages("executions.get", execution_id=execution_id)
            if execution.status.is_final:
                await transport.reported(token, execution_id)
                # The final status and the last events commit together: one more read drains.
                for event in await self._call(
                    "executions.events", execution_id=execution_id, after=after
                ):
                    yield event
                return
            await transport.changed(token, execution_id, 1.0)

    async def poll(
        self, execution_id: str, after: int = 0, wait_s: float = 0
    ) -> builtins.list[ExecutionEvent]:
        """One long poll: its events after sequence number `after`, waiting up to `wait_s`
        (at most 25) for news when there is none yet; an empty list when none came (`events`
        follows an execution to its end with these)."""
        return await self._call(
            "executions.events", execution_id=execution_id, after=after, wait_s=wait_s
        )

    async def _through_outages(self, operation: str, /, **arguments: Any) -> Any:
        # Following is a long affair: a server restart meanwhile should not end it. Only the
        # transport failing is retried; every answer, refusals included, is final.
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(TransportError),
            wait=tenacity.wait_exponential(multiplier=0.25, max=4.0),
            stop=tenacity.stop_after_delay(FOLLOW_OUTAGE_S),
            sleep=anyio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._call(operation, **arguments)
        raise AssertionError("unreachable: tenacity re-raises")

    async def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        """Wait until the execution has finished; return its final record.

        Raises `TimeoutError` after `timeout_s`, `ConflictError` if nothing runs it.
        """
        with anyio.fail_after(timeout_s):
            async for _ in self.events(execution_id):
                pass
        return await self.get(execution_id)

    async def metrics(self, execution_id: str) -> dict[str, Any]:
        """Durations, attempts, tokens, cost and bytes stored, per stage and in total."""
        return await self._call("executions.metrics", execution_id=execution_id)

    async def cancel(self, execution_id: str) -> Execution:
        """Stop it; it (and its request) end `cancelled`."""
        return await self._call("executions.cancel", execution_id=execution_id)

    async def retry(self, execution_id: str) -> Execution:
        """Run a failed or cancelled execution again, reusing committed stages (staff)."""
        return await self._call("executions.retry", execution_id=execution_id)

    async def prune(self, older_than_days: float = 30) -> dict[str, int]:
        """Forget checkpoints and events of executions finished long ago, and the stage data
        of those that completed (admins). Returns what went, by kind."""
        return await self._call("executions.prune", older_than_days=older_than_days)

    async def resume(self, execution_id: str) -> Execution:
        """Continue an interrupted execution from its last checkpoint (staff)."""
        return await self._call("executions.resume", execution_id=execution_id)

    async def owners(self) -> builtins.list[ExecutionOwner]:
        """Executions that want running and which replica runs each (staff): `running`,
        `interrupted` (its replica gone; another takes it over) or `waiting`."""
        return await self._call("executions.owners")

    async def workers(self) -> builtins.list[WorkerStatus]:
        """The worker endpoints as the orchestrator's registry sees them (staff): each
        `ready`, `busy`, `unhealthy` or `unreachable`, with its free slots."""
        return await self._call("executions.workers")

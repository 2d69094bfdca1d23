"""How the orchestrator asks the account side for budget, without knowing about accounts.

Before a stage processes (so before any model is called), the orchestrator reserves the
stage's estimated cost; the account side refuses with `QuotaExceededError` when the client's
remaining budget cannot cover it. A succeeded stage's hold becomes its actual cost, a failed
one's is released, and the execution's settlement (the sink) charges and clears the rest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from ..models.execution import Execution

__all__ = ["QuotaGate", "Unlimited"]


class QuotaGate(Protocol):
    """The account side's budget keeper."""

    async def reserve(self, execution: Execution, stage_id: str, amount: Decimal) -> Decimal | None:
        """Hold `amount` for a stage; return the most it may spend (`None`: unbounded).
        Raises `QuotaExceededError` if `amount` is not available."""
        ...

    async def settle(self, execution: Execution, stage_id: str, cost: Decimal) -> None:
        """Replace a stage's hold by what it actually cost."""
        ...

    async def release(self, execution: Execution, stage_id: str) -> None:
        """Drop a stage's hold (the stage failed or was cancelled)."""
        ...


class Unlimited:
    """A gate that never refuses (executions that belong to no client)."""

    async def reserve(self, execution: Execution, stage_id: str, amount: Decimal) -> Decimal | None:
        """Nothing to hold: no bound."""
        return None

    async def settle(self, execution: Execution, stage_id: str, cost: Decimal) -> None:
        """Nothing to settle."""

    async def release(self, execution: Execution, stage_id: str) -> None:
        """Nothing to release."""

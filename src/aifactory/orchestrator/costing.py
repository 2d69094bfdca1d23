"""Storage prices, turning bytes stored into USD.

LLM costs come priced from the worker (tokens times its model's price); the orchestrator adds what
keeping the stage's data costs. Defaults follow the seed's design (KV priced per MB, R2 per GB).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ..models.execution import Cost, Usage

__all__ = ["StoragePrices"]

_MB = Decimal(1_000_000)
_GB = Decimal(1_000_000_000)


@attrs.frozen
class StoragePrices:
    """USD per MB written to KV and per GB written to R2; per second of worker compute."""

    kv_usd_per_mb: Decimal = Decimal("0.0005")
    r2_usd_per_gb: Decimal = Decimal("0.015")
    compute_usd_per_s: Decimal = Decimal(0)
    r2_threshold_bytes: int = 25 * 1024 * 1024

    def cost(self, usage: Usage) -> Cost:
        """The storage and compute cost of `usage` (rounded to 1e-8 USD)."""
        size = Decimal(usage.bytes_stored)
        storage = (
            size / _GB * self.r2_usd_per_gb
            if usage.bytes_stored > self.r2_threshold_bytes
            else size / _MB * self.kv_usd_per_mb
        )
        compute = Decimal(usage.compute_ms) / 1000 * self.compute_usd_per_s
        q = Decimal("0.00000001")
        return Cost(storage_usd=storage.quantize(q), compute_usd=compute.quantize(q))

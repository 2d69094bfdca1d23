"""The checks an account's values pass, alike when they are created and when they change:
emails, client names, tiers and amounts of money. Each raises `BadInputError` naming the
field."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .._exceptions import BadInputError
from ..models import Tier

__all__ = [
    "MAX_MONEY_USD",
    "MONEY_STEP",
    "client_name",
    "display_name",
    "email",
    "money",
    "tier",
]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")


def email(value: str) -> str:
    """An email address, trimmed and lower-cased."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise BadInputError("not an email address", details={"field": "email"})
    return value.strip().lower()


#: The largest amount of money (US dollars) a budget may be.
MAX_MONEY_USD = Decimal(1_000_000_000)
#: The smallest step of an amount of money given: cents.
MONEY_STEP = Decimal("0.01")


def money(value: Decimal | float | int | str, field: str) -> Decimal:
    """A finite amount from 0 to `MAX_MONEY_USD`, in whole cents (`MONEY_STEP`)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int | str):
        raise BadInputError(f"{field} is not a number", details={"field": field})
    if isinstance(value, str) and len(value) > 100:
        raise BadInputError(f"{field} is not an amount of money", details={"field": field})
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: an int too long to turn into text
        raise BadInputError(f"{field} is not a number", details={"field": field}) from None
    if not amount.is_finite() or not 0 <= amount <= MAX_MONEY_USD:
        raise BadInputError(
            f"{field} must be an amount from 0 to {MAX_MONEY_USD}",
            details={"field": field, "min": "0", "max": str(MAX_MONEY_USD)},
        )
    if amount != amount.quantize(MONEY_STEP):
        raise BadInputError(
            f"{field} is given in whole cents (at most 2 decimal places)",
            details={"field": field, "step": str(MONEY_STEP)},
        )
    return amount


def client_name(value: str) -> str:
    """A client organisation's name: 1-200 characters once trimmed."""
    clean = str(value).strip()
    if not 1 <= len(clean) <= 200:
        raise BadInputError("client names are 1-200 characters", details={"field": "name"})
    return clean


def tier(value: Tier | str) -> Tier:
    """A tier, by value."""
    try:
        return Tier(value)
    except ValueError:
        raise BadInputError(
            f"unknown tier {value!r}",
            details={"field": "tier", "tiers": [t.value for t in Tier]},
        ) from None


def display_name(value: str) -> str:
    """A user's display name, cut to 200 characters."""
    return str(value)[:200]

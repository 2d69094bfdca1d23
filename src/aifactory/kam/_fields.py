"""The checks an account's values pass, alike when they are created and when they change:
emails, client names, tiers and amounts of money. Each raises `BadInputError` naming the
field."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .._exceptions import BadInputError
from ..models import Tier

__all__ = ["client_name", "display_name", "email", "money", "tier"]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")


def email(value: str) -> str:
    """An email address, trimmed and lower-cased."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise BadInputError("not an email address", details={"field": "email"})
    return value.strip().lower()


def money(value: Decimal | float | int | str, field: str) -> Decimal:
    """A finite, non-negative amount."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadInputError(f"{field} is not a number", details={"field": field}) from None
    if not amount.is_finite() or amount < 0:
        raise BadInputError(f"{field} must be a non-negative amount", details={"field": field})
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

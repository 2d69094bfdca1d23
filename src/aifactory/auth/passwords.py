"""Password hashing with Argon2id (argon2-cffi), and generated passwords.

The original system stored base64(password + fixed salt); here passwords are hashed with
Argon2id and a random salt per hash, verified in constant time, and re-hashed on login when
the cost parameters have been raised.
"""

from __future__ import annotations

import secrets

import argon2

from .._exceptions import BadInputError

__all__ = ["MIN_PASSWORD_LENGTH", "PasswordHasher", "generate_password"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def generate_password() -> str:
    """A new random password (144 bits, URL-safe text)."""
    return secrets.token_urlsafe(18)


class PasswordHasher:
    """Argon2id with configurable cost; the defaults are argon2-cffi's (RFC 9106 low-memory).

    Tests pass a cheap `time_cost`/`memory_cost` to stay fast; production keeps the defaults.
    """

    def __init__(
        self,
        time_cost: int = argon2.DEFAULT_TIME_COST,
        memory_cost: int = argon2.DEFAULT_MEMORY_COST,
        parallelism: int = argon2.DEFAULT_PARALLELISM,
    ) -> None:
        self._argon = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """Hash `password`. Raises `BadInputError` if it is too short or too long."""
        check_password_strength(password)
        return self._argon.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """Whether `password` matches `stored_hash` (constant-time; never raises on mismatch)."""
        try:
            return self._argon.verify(stored_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether `stored_hash` was made with other cost parameters than these."""
        return self._argon.check_needs_rehash(stored_hash)

    def burn(self, password: str) -> None:
        """Spend one verification's time, so an unknown user answers as slowly as a known one."""
        if self._dummy_hash is None:
            self._dummy_hash = self._argon.hash(generate_password())
        self.verify(self._dummy_hash, password)


def check_password_strength(password: str) -> None:
    """Refuse passwords shorter than 12 or longer than 1024 characters (`BadInputError`)."""
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise BadInputError(
            f"passwords are {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long",
            details={"field": "password"},
        )

"""Session tokens: 256 random bits, handed out once, stored only as a sha256 digest."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_session_token"]

SESSION_TOKEN_PREFIX = "sess_"  # noqa: S105 (a public prefix, not a secret)


def new_session_token() -> str:
    """A new session token (`sess_` + 256 random bits, URL-safe)."""
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The digest under which a token is stored and looked up.

    A plain sha256 is enough here: the token has 256 bits of entropy, so there is nothing to
    brute-force, and lookups stay a single indexed query.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

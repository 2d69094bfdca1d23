"""Session tokens: 256 random bits, handed out once, stored only as a sha256 digest."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_api_key", "new_session_token", "parse_api_key"]

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


API_KEY_PREFIX = "afk"


def new_api_key() -> tuple[str, str]:
    """A new API key and its lookup prefix: `afk_<prefix>_<secret>` (256 random bits)."""
    prefix = secrets.token_hex(6)
    return f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def parse_api_key(key: str) -> str | None:
    """The lookup prefix of a well-formed API key, or None."""
    parts = key.split("_", 2) if isinstance(key, str) else []
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]

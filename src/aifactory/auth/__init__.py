"""Authentication: password hashing and session tokens."""

from .passwords import (
    MIN_PASSWORD_LENGTH,
    PasswordHasher,
    check_password_strength,
    generate_password,
)
from .tokens import hash_token, new_api_key, new_session_token, parse_api_key

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PasswordHasher",
    "check_password_strength",
    "generate_password",
    "hash_token",
    "new_api_key",
    "new_session_token",
    "parse_api_key",
]

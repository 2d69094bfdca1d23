"""How failed logins are throttled: a pure policy, kept per account and per client address.

Each key (an account, by a salted digest of the name typed; a client address) counts its
failed logins. The first `account_failures` (or `address_failures`) failures cost nothing;
each further one locks the key for `lock_s`, doubled with every failure after that, up to
`max_lock_s`. While a key is locked no login is tried for it, with the right password
neither. A key's count is forgotten `forget_s` after its last failure, and an account's on
a successful login (an address's is not: one good account must not buy an address more
guesses at the others).

```
failures: 1 … n      n+1      n+2      n+3     …
lock:     none       lock_s   2·lock_s 4·lock_s … max_lock_s
```
"""

from __future__ import annotations

import attrs

__all__ = ["LoginFailures", "LoginThrottle"]


@attrs.frozen
class LoginFailures:
    """A key's failed logins: how many, the latest at `last_at`, and until when the key is
    locked (seconds since the epoch; 0 when it is not)."""

    failures: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0

    def wait(self, now: float) -> float | None:
        """The seconds left on the lock at `now`, or `None` if the key is not locked."""
        return self.locked_until - now if now < self.locked_until else None


@attrs.frozen
class LoginThrottle:
    """The policy: free failures per account and per address, the first lock, its cap, and
    when failures are forgotten. `enabled=False` turns throttling off."""

    account_failures: int = 5
    address_failures: int = 20
    lock_s: float = 30.0
    max_lock_s: float = 900.0
    forget_s: float = 3600.0
    enabled: bool = True

    def after_failure(self, seen: LoginFailures, free: int, now: float) -> LoginFailures:
        """`seen` after one more failure at `now`, for a key allowed `free` failures."""
        failures = 0 if now - seen.last_at > self.forget_s else seen.failures
        failures += 1
        over = failures - free
        locked_until = seen.locked_until
        if over > 0:
            lock = min(self.max_lock_s, self.lock_s * 2.0 ** min(over - 1, 32))
            locked_until = max(locked_until, now + lock)
        return LoginFailures(failures, now, locked_until)

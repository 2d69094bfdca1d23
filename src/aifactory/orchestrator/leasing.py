"""Who may run an execution: replica identities, and when another holder counts as gone.

Each orchestrator process is a *replica* named `host:pid:start:nonce` (`replica_id`). It runs
an execution only under the execution's lease (see `aifactory.state` for the store's side):
it claims the lease before its first commit, renews it while it runs, and hands it back when
it stops. Another replica may take a lease over once it has expired, or at once when its
holder is a process on this host that no longer exists (`is_gone`): an embedded factory
reopened after a crash resumes what its previous process left, without waiting out the lease.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime

from ..state import Lease

__all__ = ["held_elsewhere", "is_gone", "replica_id"]


def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The command name (field 2) may hold spaces: count fields after its ')'.
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def replica_id(nonce: str | None = None) -> str:
    """This process's name as a lease holder: `host:pid:start:nonce` (the nonce tells apart
    two orchestrators in one process)."""
    pid = os.getpid()
    return (
        f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '-'}:{nonce or secrets.token_hex(3)}"
    )


def is_gone(owner: str) -> bool:
    """Whether `owner` names a process of this host that has ended (its pid is free, or now
    belongs to a process started later). Holders on other hosts are never judged gone here:
    their leases expire instead."""
    host, _, rest = owner.partition(":")
    pid_text, _, rest = rest.partition(":")
    started = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another orchestrator of this very process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    now = _start_ticks(pid)
    return started not in ("-", "") and now is not None and now != started


def held_elsewhere(lease: Lease, me: str, now: datetime) -> bool:
    """Whether another live replica holds `lease` now."""
    return (
        lease.owner is not None
        and lease.owner != me
        and lease.expires_at is not None
        and lease.expires_at > now
        and not is_gone(lease.owner)
    )

"""`WalCheckpointer`: moves the WAL into the database file mostly on a thread of its own.

In WAL mode a commit appends pages to the write-ahead log; a *checkpoint* copies them into
the database file, syncing the log before and the file after (that is where
`synchronous=NORMAL` pays for its safety). SQLite's automatic checkpoint runs inside
whichever commit crosses its threshold and stalls the event loop for milliseconds, mostly
copying pages. Here the store's connection does not checkpoint automatically:

- this thread, with its own connection, runs a PASSIVE checkpoint (which never blocks
  writers) every `every` commits, so the copying and its syncs happen on another core;
- such a checkpoint cannot catch the log's tail while commits keep coming, and the log only
  starts over once it is completely copied; so after `restart_every` commits the thread is
  asked for one more pass, and once that pass is done (few frames are left) the store's
  connection checkpoints the tail itself between two transactions, which lets the next
  commit restart the log and keeps it from growing.

Commits are exactly as durable as before: checkpoints only move pages already committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time

__all__ = ["WalCheckpointer"]

_TRIES = 5
_PAUSE_S = 0.002


class WalCheckpointer:
    """Checkpoints the WAL of the database at `path` from a daemon thread."""

    def __init__(
        self, path: str, every: int = 100, restart_every: int = 1000, interval_s: float = 1.0
    ) -> None:
        self.path = path
        self.every = every
        self.restart_every = restart_every
        self.interval_s = interval_s
        self._commits = 0
        self._since_restart = 0
        # Passes asked for and done, by number: the tail waits for a pass asked for after
        # the restart was due, so that it is left only what was committed during that pass.
        self._asked = 0
        self._done = 0
        self._tail_after: int | None = None
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="aifactory-wal", daemon=True)
        self._thread.start()

    def _ask(self) -> int:
        self._asked += 1
        self._wake.set()
        return self._asked

    def committed(self) -> bool:
        """Count one commit; returns whether the caller should checkpoint the tail now."""
        self._commits += 1
        self._since_restart += 1
        if self._commits >= self.every:
            self._commits = 0
            self._ask()
        if self._since_restart < self.restart_every:
            return False
        if self._tail_after is None:
            self._tail_after = self._ask()
            return False
        return self._done >= self._tail_after

    def tail_done(self, finished: bool) -> None:
        """The caller checkpointed the tail (`finished`: completely, not busy)."""
        if finished:
            self._since_restart = 0
            self._tail_after = None
        else:
            self._tail_after = self._ask()

    def close(self) -> None:
        """Stop the thread (after a last checkpoint)."""
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _pass(self, db: sqlite3.Connection) -> None:
        number = self._asked
        # A checkpoint that finds the log busy (briefly, while a commit touches its header)
        # is tried again a little later; failing that, at the next wake-up: the log only
        # grows meanwhile, no data is at stake.
        for _ in range(_TRIES):
            with contextlib.suppress(sqlite3.Error):
                [(busy, _, _)] = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if not busy:
                    self._done = number
                    return
            time.sleep(_PAUSE_S)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error:
            return  # the store's own connection reports problems with the file
        with contextlib.closing(db):
            while True:
                self._wake.wait(self.interval_s)
                self._wake.clear()
                self._pass(db)
                if self._stop:
                    return

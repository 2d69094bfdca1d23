-- Schema version 7: failed logins, per account and per client address, live in the shared
-- state, so that a lock holds across every API replica. `key` names the account (by a salted
-- digest of the name typed, never the name itself) or the address; `failures` counts the
-- failures since the last forgotten one, the latest at `last_at`; no login for the key
-- is tried before `locked_until` (seconds since the epoch). `salts` holds the random salts
-- those digests are made with, one per purpose, made once per database.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at DOUBLE PRECISION NOT NULL,
    locked_until DOUBLE PRECISION NOT NULL
);
CREATE TABLE salts (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

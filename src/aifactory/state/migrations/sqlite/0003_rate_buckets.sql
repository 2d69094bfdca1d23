-- Schema version 3: API rate-limit buckets live in the shared state, so that a client's
-- requests a minute hold across every API replica. A bucket holds `tokens` (up to a minute's
-- allowance) as of `at` (seconds since the epoch) and refills continuously.
CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    at REAL NOT NULL
);

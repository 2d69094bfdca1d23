-- Schema version 5: webhooks. Every attempt to post an event to a webhook is recorded (the
-- attempts of one event share its `event_id`), for staff to read. `budget_thresholds` holds
-- which share of its monthly budget each client has been told it reached this month: a
-- threshold is announced once per client, month and threshold, whichever process settles.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    status_code INTEGER,
    error TEXT,
    delivered BOOLEAN NOT NULL
);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id, attempt);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries(at);

CREATE TABLE budget_thresholds (
    client_id TEXT NOT NULL,
    month TEXT NOT NULL,
    percent INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (client_id, month, percent)
);

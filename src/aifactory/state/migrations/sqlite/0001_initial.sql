-- aifactory state, schema version 1. Column names match the attrs fields of aifactory.models;
-- columns holding JSON end up structured by the codec. Tables written on every stage and
-- keyed by execution are WITHOUT ROWID: one b-tree per table, so a commit dirties one page
-- for the row instead of a row page plus a primary-key index page.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    tier TEXT NOT NULL,
    monthly_budget_usd TEXT NOT NULL,
    used_this_month_usd TEXT NOT NULL,
    month TEXT NOT NULL,
    created_at TEXT NOT NULL,
    active INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL,
    client_id TEXT REFERENCES clients(id),
    created_at TEXT NOT NULL,
    display_name TEXT NOT NULL,
    active INTEGER NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_client ON users(client_id);

CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    created_by TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    urgency TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    template_name TEXT,
    parameters TEXT NOT NULL,
    execution_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_client ON requests(client_id, created_at);

CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    request_id TEXT,
    client_id TEXT,
    template TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    usage TEXT NOT NULL,
    cost TEXT NOT NULL,
    stages_total INTEGER NOT NULL,
    stages_done INTEGER NOT NULL,
    context TEXT NOT NULL,
    resources TEXT NOT NULL,
    runs INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_client ON executions(client_id, status);
CREATE INDEX IF NOT EXISTS executions_status ON executions(status);

CREATE TABLE IF NOT EXISTS stage_runs (
    execution_id TEXT NOT NULL REFERENCES executions(id),
    stage_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    handshake_id TEXT,
    input_ref TEXT,
    output_ref TEXT,
    summary TEXT NOT NULL,
    usage TEXT NOT NULL,
    cost TEXT NOT NULL,
    error TEXT,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (execution_id, stage_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS checkpoints (
    execution_id TEXT NOT NULL REFERENCES executions(id),
    version INTEGER NOT NULL,
    completed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (execution_id, version)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage_id TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS deliverables (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    type TEXT NOT NULL,
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    ref TEXT NOT NULL,
    created_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    UNIQUE (execution_id, filename)
);
CREATE INDEX IF NOT EXISTS deliverables_request ON deliverables(request_id);

CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    read_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications(user_id, created_at);

-- What each execution has been charged so far: settling again charges only the difference.
CREATE TABLE IF NOT EXISTS charges (
    execution_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    amount_usd TEXT NOT NULL,
    month TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL
);
-- The audit log is append-only, enforced by the database itself.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Budget held for stages in flight (and, once a stage succeeds, its actual cost) until the
-- execution settles; what is available = budget - used this month - reserved.
CREATE TABLE IF NOT EXISTS reservations (
    execution_id TEXT NOT NULL,
    stage_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    amount_usd TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (execution_id, stage_id)
);
CREATE INDEX IF NOT EXISTS reservations_client ON reservations(client_id);

CREATE TABLE IF NOT EXISTS result_cache (
    key TEXT PRIMARY KEY,
    worker TEXT NOT NULL,
    output_ref TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- External API keys: looked up by their public prefix, verified by the sha256 of the whole key.
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    name TEXT NOT NULL
);

-- The bytes of large inline storage references, written once and referenced by id from the
-- JSON of the rows that hold the reference ({"payload": id, "size", "sha256", ...}). Stage
-- runs are rewritten as they progress and checkpoints repeat outputs; their payloads are not.
CREATE TABLE IF NOT EXISTS payloads (id INTEGER PRIMARY KEY, data BLOB NOT NULL);

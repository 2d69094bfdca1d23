-- Schema version 6: model calls made for a request outside any execution (the template
-- recommendation), each as the provider billed it, for the usage report. The calls of stage
-- attempts are counted in their stage runs' usage and cost.
CREATE TABLE model_usage (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    request_id TEXT,
    purpose TEXT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX model_usage_client ON model_usage(client_id, at);
CREATE INDEX executions_client_created ON executions(client_id, created_at);

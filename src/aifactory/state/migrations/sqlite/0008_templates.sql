-- Schema version 8: pipeline templates as data. Each save of a template is a new version
-- (the template as JSON); executions keep a copy of the version they started with. A
-- retired template's versions stay, marked. Rows are never deleted, so the count of
-- versions plus retired ones tells a process whether its cached templates are stale.
CREATE TABLE templates (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    retired_at TEXT,
    PRIMARY KEY (name, version)
);

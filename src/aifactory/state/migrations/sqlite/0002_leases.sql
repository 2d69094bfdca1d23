-- Schema version 2: executions run under leases, so that several processes can share one
-- database. `runnable` is 1 from the moment an execution is asked to run until it ends;
-- `owner` is the process running it, until `lease_expires_at`; `lease_token` grows with
-- every claim and fences every commit of the claimant.
ALTER TABLE executions ADD COLUMN runnable BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE executions ADD COLUMN owner TEXT;
ALTER TABLE executions ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN lease_expires_at TEXT;
-- What a previous release left running or about to run was interrupted: run it again.
UPDATE executions SET runnable = TRUE WHERE status IN ('pending', 'running') AND runs > 0;
CREATE INDEX executions_runnable ON executions(runnable, lease_expires_at);

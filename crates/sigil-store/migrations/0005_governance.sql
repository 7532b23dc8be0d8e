-- Governance: accepted risks, the external credential inventory and the webhook outbox.

-- Who accepted a finding's risk, when and why; and when a finding was resolved.
ALTER TABLE findings ADD COLUMN accepted_by TEXT;
ALTER TABLE findings ADD COLUMN accepted_at INTEGER;
ALTER TABLE findings ADD COLUMN accepted_reason TEXT;
ALTER TABLE findings ADD COLUMN resolved_at INTEGER;

-- The scanner loads every unresolved finding at the start of a scan, and opening a finding
-- looks up the accepted one of the same kind and subject.
CREATE INDEX findings_unresolved ON findings (status) WHERE status != 'resolved';
CREATE INDEX findings_kind_subject ON findings (kind, subject, status);

-- Static credentials agents hold in other systems, known only by metadata imported from an
-- inventory. No secret is ever stored. `agent` is NULL when the entry maps to no registered agent.
CREATE TABLE external_credentials (
    id              TEXT PRIMARY KEY NOT NULL,
    source          TEXT NOT NULL,
    source_user     TEXT NOT NULL,
    agent           TEXT REFERENCES agents (name),
    kind            TEXT NOT NULL,
    active          INTEGER NOT NULL,
    created_at      INTEGER,
    last_rotated_at INTEGER,
    last_used_at    INTEGER,
    scopes          TEXT NOT NULL DEFAULT '[]',
    imported_at     INTEGER NOT NULL
);

CREATE INDEX external_credentials_agent ON external_credentials (agent, active, last_used_at);

-- Findings opened or resolved and not yet delivered to the webhook; rows are deleted once
-- delivered (or at once when no webhook is configured).
CREATE TABLE finding_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id  INTEGER NOT NULL REFERENCES findings (id),
    event       TEXT NOT NULL CHECK (event IN ('opened', 'resolved')),
    at          INTEGER NOT NULL
);

-- Pending review items (open or overdue) per agent, for the scan and for certification.
CREATE INDEX review_items_pending ON review_items (agent, due_at)
    WHERE status IN ('open', 'overdue');

-- The scan aggregates each agent's certificates; this index covers that aggregate, so the scan
-- reads the index alone. It replaces the narrower `credentials_agent`.
CREATE INDEX credentials_agent_activity
    ON credentials (agent, issued_at, last_used_at, revoked_at, expires_at);
DROP INDEX credentials_agent;

-- Review items: an owner must certify an agent's entitlements by a due date.
CREATE TABLE review_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    agent        TEXT NOT NULL REFERENCES agents (name),
    owner_email  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'certified', 'dropped', 'overdue')),
    opened_at    INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    closed_at    INTEGER
);

-- At most one open review item per agent.
CREATE UNIQUE INDEX review_items_open ON review_items (agent) WHERE status = 'open';

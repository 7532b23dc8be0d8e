-- Sigil's initial schema. Times are Unix milliseconds (INTEGER).

CREATE TABLE owners (
    email        TEXT PRIMARY KEY NOT NULL,
    name         TEXT,
    status       TEXT NOT NULL CHECK (status IN ('active', 'departed')),
    created_at   INTEGER NOT NULL,
    departed_at  INTEGER
);

CREATE TABLE agents (
    name         TEXT PRIMARY KEY NOT NULL,
    spiffe_id    TEXT NOT NULL UNIQUE,
    owner_email  TEXT NOT NULL REFERENCES owners (email),
    purpose      TEXT,
    status       TEXT NOT NULL
                 CHECK (status IN ('registered', 'active', 'suspended', 'decommissioned')),
    status_reason TEXT,
    ttl_secs     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE INDEX agents_owner ON agents (owner_email);

CREATE TABLE entitlements (
    agent        TEXT NOT NULL REFERENCES agents (name),
    action       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    baseline     INTEGER NOT NULL,
    granted_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (agent, action, resource)
);

-- Every X.509-SVID Sigil issued, for agents and for admins (agent is NULL for admins).
CREATE TABLE credentials (
    serial                 TEXT PRIMARY KEY NOT NULL,
    spiffe_id              TEXT NOT NULL,
    agent                  TEXT REFERENCES agents (name),
    kind                   TEXT NOT NULL,
    fingerprint            TEXT NOT NULL,
    public_key_fingerprint TEXT NOT NULL,
    cert_pem               TEXT NOT NULL,
    issued_at              INTEGER NOT NULL,
    expires_at             INTEGER NOT NULL,
    revoked_at             INTEGER,
    revoke_reason          TEXT,
    -- The credential that authenticated the renewal that produced this one. UNIQUE makes one
    -- live line per agent: a second, different successor of the same parent is a fork.
    parent_serial          TEXT UNIQUE REFERENCES credentials (serial),
    last_used_at           INTEGER
);

CREATE INDEX credentials_agent ON credentials (agent);
CREATE INDEX credentials_revoked ON credentials (revoked_at) WHERE revoked_at IS NOT NULL;

-- Join tokens are stored only as SHA-256 hashes.
CREATE TABLE join_tokens (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    agent        TEXT NOT NULL REFERENCES agents (name),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

CREATE TABLE findings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    severity     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'accepted')),
    evidence     TEXT NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
);

-- At most one open finding per kind and subject.
CREATE UNIQUE INDEX findings_open ON findings (kind, subject) WHERE status = 'open';

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY NOT NULL,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);

-- The last event's sequence number and hash, so that deleting events from the end is detected.
CREATE TABLE audit_head (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    seq          INTEGER NOT NULL,
    hash         TEXT NOT NULL
);

-- Monotonic counters, such as the CRL number.
CREATE TABLE counters (
    name         TEXT PRIMARY KEY NOT NULL,
    value        INTEGER NOT NULL
);

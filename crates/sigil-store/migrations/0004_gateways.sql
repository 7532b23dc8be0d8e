-- Gateways (enforcement points) and the revocation event log that gateways follow.

-- A gateway's SVID carries its SPIFFE ID as the only URI SAN, plus `localhost`, `127.0.0.1`,
-- `::1` and the DNS names and IP addresses recorded here at registration (a JSON array).
CREATE TABLE gateways (
    name         TEXT PRIMARY KEY NOT NULL,
    spiffe_id    TEXT NOT NULL UNIQUE,
    sans         TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL CHECK (status IN ('registered', 'active')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Gateway join tokens, stored only as SHA-256 hashes, single use like agent join tokens.
CREATE TABLE gateway_join_tokens (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    gateway      TEXT NOT NULL REFERENCES gateways (name),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

CREATE INDEX credentials_spiffe_id ON credentials (spiffe_id);

-- What gateways must apply, in commit order. AUTOINCREMENT keeps sequence numbers from being
-- reused after old events are pruned, so a resume point always means the same event.
--   revoke        serial (one certificate revoked), agent (NULL for admins and gateways)
--   agent-status  agent, spiffe_id, status
--   policy        policy_version (the policy set changed)
CREATE TABLE revocation_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('revoke', 'agent-status', 'policy')),
    agent          TEXT,
    spiffe_id      TEXT,
    status         TEXT,
    serial         TEXT,
    policy_version INTEGER
);

CREATE INDEX revocation_events_at ON revocation_events (at);

-- The triggers below write the events in the transaction of the change itself, whichever code
-- path makes it, so that a committed revocation, status change or policy change always has its
-- event and a rolled-back one never does.

CREATE TRIGGER revocation_events_revoke
AFTER UPDATE OF revoked_at ON credentials
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO revocation_events (at, kind, agent, spiffe_id, serial)
    VALUES (NEW.revoked_at, 'revoke', NEW.agent, NEW.spiffe_id, NEW.serial);
END;

CREATE TRIGGER revocation_events_agent_status
AFTER UPDATE OF status ON agents
WHEN OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO revocation_events (at, kind, agent, spiffe_id, status)
    VALUES (NEW.updated_at, 'agent-status', NEW.name, NEW.spiffe_id, NEW.status);
END;

-- `unixepoch('subsec')` is SQLite's wall clock with millisecond precision (SQLite 3.42 or later).
CREATE TRIGGER revocation_events_policy_insert
AFTER INSERT ON counters
WHEN NEW.name = 'policy_version'
BEGIN
    INSERT INTO revocation_events (at, kind, policy_version)
    VALUES (CAST(unixepoch('subsec') * 1000 AS INTEGER), 'policy', NEW.value);
END;

CREATE TRIGGER revocation_events_policy_update
AFTER UPDATE OF value ON counters
WHEN NEW.name = 'policy_version' AND OLD.value IS NOT NEW.value
BEGIN
    INSERT INTO revocation_events (at, kind, policy_version)
    VALUES (CAST(unixepoch('subsec') * 1000 AS INTEGER), 'policy', NEW.value);
END;

-- Custom Cedar policies written by admins. Entitlements compile to policies at load time and
-- are not stored here.
CREATE TABLE policies (
    id          TEXT PRIMARY KEY NOT NULL,
    text        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);

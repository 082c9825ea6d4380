-- The desks: people with a role each, signing in with tokens stored only as their
-- SHA-256 (a token is 32 random bytes, so a fast hash is enough to keep it secret).
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER
);

-- Every change a person makes, with who, when, and the subject before and after.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    user_name  TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    before     TEXT,
    after      TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject, at_ms);

-- Working a ticket: who has it, how it ended, and its SLA clock. The clock is computed
-- from ticket_events (kind 'pause' and 'resume'); these columns summarise it for the
-- queue, written in the same transaction as each event: the window the tier gave,
-- the due time with completed pauses counted in, the start of a pause in force, and
-- when a breach was recorded.
ALTER TABLE tickets ADD COLUMN assignee TEXT;
ALTER TABLE tickets ADD COLUMN outcome TEXT;
ALTER TABLE tickets ADD COLUMN outcome_category TEXT;
ALTER TABLE tickets ADD COLUMN sla_window_ms INTEGER;
ALTER TABLE tickets ADD COLUMN sla_paused_ms INTEGER;
ALTER TABLE tickets ADD COLUMN sla_breached_ms INTEGER;
UPDATE tickets SET sla_window_ms = due_ms - opened_ms;
CREATE INDEX tickets_queue ON tickets (state, due_ms);

-- A ticket's log holds more than state moves: 'move', 'assign', 'note', 'pause' (note:
-- the reason), 'resume', 'sla_breached'. to_state is the state the ticket is in after.
ALTER TABLE ticket_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'move';

-- Every change to a ticket bumps its version: a desk action carries the version it was
-- decided on, and loses (409) to any change made meanwhile.
ALTER TABLE tickets ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

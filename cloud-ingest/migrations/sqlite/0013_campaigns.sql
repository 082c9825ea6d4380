-- Campaigns proposed from a flagged cohort: what was proposed (the proposal's figures,
-- JSON), who proposed and who decided, and a version every change bumps (a decision
-- carries the version it was made on and loses, 409, to any change meanwhile).
CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_id     INTEGER NOT NULL REFERENCES cohort_flags (id),
    title       TEXT    NOT NULL,
    problem     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 0,
    proposal    TEXT    NOT NULL,
    proposed_ms INTEGER NOT NULL,
    proposed_by TEXT    NOT NULL,
    decided_ms  INTEGER,
    decided_by  TEXT,
    note        TEXT
);

-- Each device a campaign reaches, and what the rollout did for it: 'pending' until
-- worked, then 'offered' (a ticket of its own), 'attached' (its open ticket for the
-- problem carries the campaign), 'held' (the contact rules, with the reason) or
-- 'dropped' (the campaign was rejected).
CREATE TABLE campaign_members (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    device_id   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    ticket_id   INTEGER,
    reason      TEXT,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX campaign_members_status ON campaign_members (status, campaign_id);

-- The campaign a ticket was opened for, or attached to.
ALTER TABLE tickets ADD COLUMN campaign_id INTEGER;

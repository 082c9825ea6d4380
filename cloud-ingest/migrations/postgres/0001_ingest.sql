-- Every accepted device message, keyed for deduplication on (device, seq). The payload
-- is the validated JSON as received: features are rebuilt from it after a restart.
CREATE TABLE messages (
    device_id      TEXT    NOT NULL,
    seq            BIGINT NOT NULL,
    tenant         TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    ts_ms          BIGINT NOT NULL,
    received_ms    BIGINT NOT NULL,
    payload        TEXT    NOT NULL,
    export_pending BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX messages_device_time ON messages (device_id, ts_ms);
CREATE INDEX messages_export ON messages (export_pending) WHERE export_pending = 1;

-- Rejected input, kept whole with the reason.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    received_ms BIGINT NOT NULL,
    topic       TEXT    NOT NULL,
    payload     BYTEA    NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);

-- The device registry: identity from births, purchase terms from the operator,
-- liveness, sequence accounting and the latest score.
CREATE TABLE devices (
    device_id         TEXT    PRIMARY KEY,
    tenant            TEXT    NOT NULL,
    model             TEXT,
    device_class      TEXT,
    hw_revision       TEXT,
    batch             TEXT,
    firmware          TEXT,
    customer_id       TEXT,
    purchased_ms      BIGINT,
    warranty_until_ms BIGINT,
    price_minor       BIGINT,
    currency          TEXT,
    online            BIGINT NOT NULL DEFAULT 0,
    state_ms          BIGINT,
    first_seen_ms     BIGINT NOT NULL,
    last_seen_ms      BIGINT NOT NULL,
    min_seq           BIGINT NOT NULL,
    max_seq           BIGINT NOT NULL,
    msg_count         BIGINT NOT NULL DEFAULT 0,
    risk              DOUBLE PRECISION,
    risk_alarm        BIGINT NOT NULL DEFAULT 0,
    scored_ms         BIGINT,
    model_version     TEXT,
    explanation       TEXT
);

-- Service tickets. At most one open ticket per device and problem, enforced here so it
-- holds across replicas.
CREATE TABLE tickets (
    id            BIGSERIAL PRIMARY KEY,
    ticket_ref    TEXT    NOT NULL UNIQUE,
    device_id     TEXT    NOT NULL,
    tenant        TEXT    NOT NULL,
    customer_id   TEXT,
    problem       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    tier          TEXT    NOT NULL,
    offer_kind    TEXT    NOT NULL,
    quote_minor   BIGINT,
    currency      TEXT,
    opened_ms     BIGINT NOT NULL,
    due_ms        BIGINT NOT NULL,
    closed_ms     BIGINT,
    risk          DOUBLE PRECISION    NOT NULL,
    model_version TEXT    NOT NULL,
    evidence      TEXT    NOT NULL
);
CREATE UNIQUE INDEX tickets_one_open ON tickets (device_id, problem)
    WHERE state IN ('opened', 'offered', 'accepted', 'in_progress');
CREATE INDEX tickets_customer ON tickets (customer_id, opened_ms);

-- Every state change of a ticket, with time and actor.
CREATE TABLE ticket_events (
    id        BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    at_ms     BIGINT NOT NULL,
    from_state TEXT,
    to_state  TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    note      TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id);

-- Commands to devices (offers), an outbox: written with the ticket, sent and resent
-- until the device answers.
CREATE TABLE commands (
    command_id    TEXT    PRIMARY KEY,
    ticket_id     BIGINT REFERENCES tickets (id),
    device_id     TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_wall_ms  BIGINT NOT NULL,
    status        TEXT,
    answered_ms   BIGINT
);
CREATE INDEX commands_due ON commands (next_wall_ms) WHERE status IS NULL;

-- Webhook deliveries, an outbox: written with the ticket, posted by a worker.
CREATE TABLE webhook_outbox (
    id           BIGSERIAL PRIMARY KEY,
    ticket_id    BIGINT NOT NULL REFERENCES tickets (id),
    url          TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_wall_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    failed       BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX webhook_due ON webhook_outbox (next_wall_ms) WHERE delivered_ms IS NULL AND failed = 0;

-- The recycling desk. A trade-in is opened with its trade-in ticket (quoted) and moves
-- through its own lifecycle (see docs/desk.md); every change bumps its version, so a
-- desk action decided on an older version loses (409). The columns the queues and the
-- totals read are kept beside the whole record (JSON: shipping, grade, erasure,
-- settlement, routing), all written in one transaction with the event.
CREATE TABLE tradeins (
    ticket_id      BIGINT PRIMARY KEY REFERENCES tickets (id),
    device_id      TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    version        BIGINT NOT NULL DEFAULT 0,
    state_since_ms BIGINT NOT NULL,
    opened_ms      BIGINT NOT NULL,
    quote_minor    BIGINT NOT NULL,
    currency       TEXT    NOT NULL,
    -- What telemetry showed when the quote was made: battery health, %, if it has one.
    quoted_soh     DOUBLE PRECISION,
    has_battery    BIGINT NOT NULL,
    model          TEXT,
    final_minor    BIGINT,
    received_ms    BIGINT,
    graded_ms      BIGINT,
    settled_ms     BIGINT,
    route          TEXT,
    routed_ms      BIGINT,
    weight_g       BIGINT,
    record         TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX tradeins_state ON tradeins (state, state_since_ms);
CREATE INDEX tradeins_routed ON tradeins (routed_ms);
CREATE INDEX tradeins_device ON tradeins (device_id);

CREATE TABLE tradein_events (
    id         BIGSERIAL PRIMARY KEY,
    ticket_id  BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    note       TEXT
);
CREATE INDEX tradein_events_ticket ON tradein_events (ticket_id, id);

-- The registry's SKUs: each model's weight, grams, for the e-waste totals.
CREATE TABLE skus (
    model      TEXT    PRIMARY KEY,
    weight_g   BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Trade-in tickets opened before the desk existed get their trade-in, as far as the
-- ticket tells: its answer to the quote, or closed once the ticket is.
INSERT INTO tradeins (ticket_id, device_id, tenant, state, state_since_ms, opened_ms,
    quote_minor, currency, has_battery, model)
SELECT t.id, t.device_id, t.tenant,
    CASE t.state WHEN 'opened' THEN 'quoted' WHEN 'offered' THEN 'quoted'
        WHEN 'accepted' THEN 'accepted' WHEN 'in_progress' THEN 'accepted'
        WHEN 'declined' THEN 'declined' WHEN 'resolved' THEN 'closed' ELSE 'cancelled' END,
    COALESCE(t.closed_ms, t.opened_ms), t.opened_ms, COALESCE(t.quote_minor, 0),
    COALESCE(t.currency, 'EUR'), 1, d.model
FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id
WHERE t.offer_kind = 'trade_in';

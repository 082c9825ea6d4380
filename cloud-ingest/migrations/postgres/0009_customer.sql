-- The customer's side of a ticket. A progress link is a random token shown once and
-- stored only as its SHA-256, with its expiry: it opens that one ticket's page.
CREATE TABLE progress_links (
    token_hash TEXT    PRIMARY KEY,
    ticket_id  BIGINT  NOT NULL REFERENCES tickets (id),
    created_ms BIGINT  NOT NULL,
    expires_ms BIGINT  NOT NULL,
    created_by TEXT    NOT NULL
);
CREATE INDEX progress_links_ticket ON progress_links (ticket_id);

-- The satisfaction follow-up after a resolution: three ratings of 1 to 5 and a comment,
-- once per ticket.
CREATE TABLE ticket_ratings (
    ticket_id  BIGINT  PRIMARY KEY REFERENCES tickets (id),
    result     BIGINT  NOT NULL,
    speed      BIGINT  NOT NULL,
    service    BIGINT  NOT NULL,
    comment    TEXT,
    rated_ms   BIGINT  NOT NULL
);

-- The whole feature vector as scored when the ticket opened (JSON, the model's schema
-- order, with the schema's fingerprint), so that its outcome becomes a training label.
ALTER TABLE tickets ADD COLUMN features TEXT;

-- Offers are resent and expire on one clock, the service's: the column says so.
-- Workers claim due rows by moving next_ms / next_wall_ms past the send they make,
-- in the transaction that selects them (FOR UPDATE SKIP LOCKED on PostgreSQL), so
-- each attempt is made by one replica only.
ALTER TABLE commands RENAME COLUMN next_wall_ms TO next_ms;

-- export_pending: 0 exported (or never to be), 1 waiting, above 1 claimed by an
-- exporter until that wall-clock ms (a claim that lapses is taken again).
DROP INDEX messages_export;
CREATE INDEX messages_export ON messages (export_pending) WHERE export_pending <> 0;

-- Sequence epochs (protocol schema 2): a device that loses its state counts seq from
-- the start again under a new random epoch, so a message is identified by
-- (device, epoch, seq); schema-1 messages are epoch 0. SQLite cannot change a primary
-- key in place, so the table is rebuilt (its indexes with it).
CREATE TABLE messages_epochs (
    device_id      TEXT    NOT NULL,
    epoch          INTEGER NOT NULL DEFAULT 0,
    seq            INTEGER NOT NULL,
    tenant         TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    ts_ms          INTEGER NOT NULL,
    received_ms    INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    export_pending INTEGER NOT NULL DEFAULT 0,
    arrival        INTEGER,
    PRIMARY KEY (device_id, epoch, seq)
);
INSERT INTO messages_epochs (device_id, epoch, seq, tenant, channel, ts_ms, received_ms,
        payload, export_pending, arrival)
    SELECT device_id, 0, seq, tenant, channel, ts_ms, received_ms, payload, export_pending,
        arrival FROM messages;
DROP TABLE messages;
ALTER TABLE messages_epochs RENAME TO messages;
CREATE INDEX messages_device_time ON messages (device_id, ts_ms);
CREATE INDEX messages_export ON messages (export_pending) WHERE export_pending <> 0;
CREATE INDEX messages_received ON messages (received_ms);
CREATE INDEX messages_arrival ON messages (device_id, arrival);

-- A device's current epoch; min_seq, max_seq and pruned_seq are of that epoch, and
-- epoch_first_count is how many of msg_count came before it (so gaps are counted within
-- the epoch). seq_resets counts the times the device restarted its count.
ALTER TABLE devices ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN epoch_first_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN seq_resets INTEGER NOT NULL DEFAULT 0;

-- Every epoch a device has used, with its first seq and when the cloud first saw it:
-- tells a late message of an earlier epoch from the start of a new one.
CREATE TABLE seq_epochs (
    device_id   TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, epoch)
);
INSERT INTO seq_epochs (device_id, epoch, first_seq, received_ms)
    SELECT device_id, 0, min_seq, first_seen_ms FROM devices;

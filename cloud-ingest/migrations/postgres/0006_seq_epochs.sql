-- Sequence epochs (protocol schema 2): a device that loses its state counts seq from
-- the start again under a new random epoch, so a message is identified by
-- (device, epoch, seq); schema-1 messages are epoch 0.
ALTER TABLE messages ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (device_id, epoch, seq);

-- A device's current epoch; min_seq, max_seq and pruned_seq are of that epoch, and
-- epoch_first_count is how many of msg_count came before it (so gaps are counted within
-- the epoch). seq_resets counts the times the device restarted its count.
ALTER TABLE devices ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN epoch_first_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN seq_resets BIGINT NOT NULL DEFAULT 0;

-- Every epoch a device has used, with its first seq and when the cloud first saw it:
-- tells a late message of an earlier epoch from the start of a new one.
CREATE TABLE seq_epochs (
    device_id   TEXT   NOT NULL,
    epoch       BIGINT NOT NULL,
    first_seq   BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, epoch)
);
INSERT INTO seq_epochs (device_id, epoch, first_seq, received_ms)
    SELECT device_id, 0, min_seq, first_seen_ms FROM devices;

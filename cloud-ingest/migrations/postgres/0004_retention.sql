-- Retention: old rows are pruned by the retention worker. A device's highest pruned
-- seq stays behind, so a redelivery of a pruned message is still known as a repeat.
ALTER TABLE devices ADD COLUMN pruned_seq BIGINT;
CREATE INDEX messages_received ON messages (received_ms);
CREATE INDEX dead_letters_received ON dead_letters (received_ms);

-- Each message's place among its device's messages as the store received them (1 for
-- the first). A stored feature state is written every few batches; a process picking
-- the device up replays only the messages that arrived after it.
ALTER TABLE messages ADD COLUMN arrival BIGINT;
CREATE INDEX messages_arrival ON messages (device_id, arrival);

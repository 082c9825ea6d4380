-- Each device's feature history as the last committed batch left it, so any replica
-- (or a restart) picks a device up without replaying its month of messages. Written in
-- the batch's transaction; `msg_count` is the device's message count it reflects, and
-- `version` the snapshot layout and feature schema it was written for (another
-- version is rebuilt from the messages).
CREATE TABLE feature_states (
    device_id  TEXT    PRIMARY KEY,
    version    TEXT    NOT NULL,
    msg_count  INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
);

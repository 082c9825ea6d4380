-- A device's score history, one row per device and day (UTC, device time): the day's
-- highest risk and its last score. Bounded at a row a day however often a device is scored.
CREATE TABLE score_days (
    device_id     TEXT    NOT NULL,
    day_ms        BIGINT  NOT NULL,
    risk_max      DOUBLE PRECISION NOT NULL,
    risk_last     DOUBLE PRECISION NOT NULL,
    alarm         BIGINT  NOT NULL,
    scored_ms     BIGINT  NOT NULL,
    model_version TEXT    NOT NULL,
    PRIMARY KEY (device_id, day_ms)
);
CREATE INDEX tickets_device ON tickets (device_id, opened_ms);

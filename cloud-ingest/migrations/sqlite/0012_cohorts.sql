-- The firmware each boot of a device ran, from its birth: a device that comes back
-- online births before it sends what it spooled while offline, so the firmware a
-- heartbeat ran is its boot's, not the device's latest.
CREATE TABLE device_boots (
    device_id TEXT    NOT NULL,
    boot_id   TEXT    NOT NULL,
    firmware  TEXT    NOT NULL,
    ts_ms     INTEGER NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);

-- Each device's days on each firmware version, summed from its heartbeats in the batch
-- that accepted them: the cohort watch's exposure per version and the restarts and
-- crash-free time it compares with the version before. A row a device, day and version.
CREATE TABLE firmware_days (
    device_id           TEXT    NOT NULL,
    day_ms              INTEGER NOT NULL,
    firmware            TEXT    NOT NULL,
    operational_s       INTEGER NOT NULL,
    crash_free_s        INTEGER NOT NULL,
    unexpected_restarts INTEGER NOT NULL,
    crashes             INTEGER NOT NULL,
    PRIMARY KEY (device_id, day_ms, firmware)
);
CREATE INDEX firmware_days_day ON firmware_days (day_ms);

-- Cohorts the watch flagged: one row per cohort, problem, window and measure, with the
-- first and latest run that flagged it and the latest evidence (JSON). Status: 'open'
-- until an analyst proposes a campaign or dismisses it.
CREATE TABLE cohort_flags (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_key         TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL,
    cohort           TEXT    NOT NULL,
    problem          TEXT,
    window_days      INTEGER,
    measure          TEXT    NOT NULL,
    first_flagged_ms INTEGER NOT NULL,
    last_flagged_ms  INTEGER NOT NULL,
    runs             INTEGER NOT NULL DEFAULT 1,
    status           TEXT    NOT NULL DEFAULT 'open',
    evidence         TEXT    NOT NULL
);

-- The model registry: every model version with its artifact (the JSON `models train`
-- writes), what it was trained on and how it validated; the aliases `champion` (drives
-- policy) and `challenger` (scored in its shadow); and every change of an alias, by whom,
-- with the gate measured at the time and whether it was overridden.
CREATE TABLE model_versions (
    version       TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    sha256        TEXT    NOT NULL,
    artifact      TEXT    NOT NULL,
    threshold     DOUBLE PRECISION    NOT NULL,
    training      TEXT    NOT NULL,
    validation    TEXT    NOT NULL,
    registered_ms BIGINT NOT NULL,
    registered_by TEXT    NOT NULL
);
CREATE TABLE model_aliases (
    alias    TEXT    PRIMARY KEY,
    version  TEXT    NOT NULL REFERENCES model_versions (version),
    since_ms BIGINT NOT NULL,
    set_by   TEXT    NOT NULL
);
CREATE TABLE model_changes (
    id         BIGSERIAL PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    version    TEXT,
    previous   TEXT,
    gate       TEXT,
    overridden BIGINT NOT NULL DEFAULT 0,
    reason     TEXT
);
-- The challenger's score beside the champion's: on the device (its latest) and per day.
ALTER TABLE devices ADD COLUMN shadow_risk DOUBLE PRECISION;
ALTER TABLE devices ADD COLUMN shadow_alarm BIGINT;
ALTER TABLE devices ADD COLUMN shadow_version TEXT;
ALTER TABLE score_days ADD COLUMN shadow_risk_max DOUBLE PRECISION;
ALTER TABLE score_days ADD COLUMN shadow_alarm BIGINT;
ALTER TABLE score_days ADD COLUMN shadow_version TEXT;
CREATE INDEX score_days_day ON score_days (day_ms);

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
-- The queue: open tickets (those not closed: every close sets closed_ms) in due order,
-- running clocks and paused ones each in an index of its own, with the columns the
-- queue's filters and counts read. Rows closed without a closed_ms (none are written so)
-- are given one, so these indexes hold exactly the open tickets.
UPDATE tickets SET closed_ms = opened_ms
    WHERE closed_ms IS NULL AND state NOT IN ('opened', 'offered', 'accepted', 'in_progress');
CREATE INDEX tickets_open_running ON tickets (due_ms, id, tier, problem, assignee, sla_window_ms)
    WHERE closed_ms IS NULL AND sla_paused_ms IS NULL;
CREATE INDEX tickets_open_paused ON tickets (due_ms, id, tier, problem, assignee, sla_window_ms,
    sla_paused_ms) WHERE closed_ms IS NULL AND sla_paused_ms IS NOT NULL;

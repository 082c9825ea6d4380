-- Action items: a problem, its owner, due time, KPI and target, where it stands, and
-- where it was raised (a period's report, a flag, or by hand). Every change bumps the
-- version; done_ms is when it reached done or dropped, for the next report's review.
CREATE TABLE action_items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    problem    TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    due_ms     INTEGER NOT NULL,
    kpi        TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    note       TEXT,
    created_ms INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL,
    done_ms    INTEGER,
    version    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX action_items_due ON action_items (status, due_ms);

-- The after-sales review: an action item may name the report figure that measures it
-- (docs/reports.md), and a flagged cohort gets its root-cause record, the "five whys":
-- each why with its answer and a link to the evidence, as JSON, rewritten whole.
ALTER TABLE action_items ADD COLUMN measure TEXT;
CREATE TABLE root_causes (
    flag_id    INTEGER  PRIMARY KEY REFERENCES cohort_flags (id),
    whys       TEXT    NOT NULL,
    conclusion TEXT    NOT NULL,
    written_by TEXT    NOT NULL,
    written_ms INTEGER  NOT NULL,
    version    INTEGER  NOT NULL DEFAULT 0
);

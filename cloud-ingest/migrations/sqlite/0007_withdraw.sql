-- A command sent only once another is answered (or lapsed): an offer that supersedes
-- another waits for the device to acknowledge the withdrawal of the old one, so the
-- device never holds both.
ALTER TABLE commands ADD COLUMN after_command TEXT;

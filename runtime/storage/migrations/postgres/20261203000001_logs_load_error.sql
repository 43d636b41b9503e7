-- A line `mcp db load` could not read is stored as it came, with why: the
-- run then quarantines it with that reason, not with whatever a field check
-- of the unread line would say.
ALTER TABLE logs ADD COLUMN IF NOT EXISTS load_error TEXT;

-- A guest's `logs.query` may filter by source; without this index such a
-- query scans every row of the tenant's log type.
CREATE INDEX IF NOT EXISTS logs_by_source ON logs (tenant, log_type, source, id);

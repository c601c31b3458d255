-- A queued job's place in its printer's queue: higher goes first, then the older job. Managers
-- move a job to the front from the console ("print next"); every job starts at 0, so the
-- queue stays in submission order until someone does.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

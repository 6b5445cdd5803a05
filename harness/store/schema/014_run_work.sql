-- 014: a run's work time (issue 16.5). work_ms is the time actually spent working on the run,
-- summed over its starts and resumes (NULL: not recorded, e.g. a run from before 014 that
-- never finished, or one folded from shards by merge); segment_ms is when the current start
-- began (NULL while the run is not being worked on). A running process adds to work_ms every
-- few seconds, so a SIGKILL loses at most that much, and the time between a kill and the
-- resume is never counted.
ALTER TABLE runs ADD COLUMN work_ms INTEGER;
ALTER TABLE runs ADD COLUMN segment_ms INTEGER;
UPDATE runs SET work_ms = finished_ms - started_ms WHERE finished_ms IS NOT NULL;

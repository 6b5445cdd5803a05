-- 018: which run wrote a feature's description (issue 17: a description's origin is traceable
-- like any score's). desc_run_id is the `evalrun explain` run whose explainer wrote it, or the
-- run (explain, specificity, completeness) that stored it from a features file or explained it
-- on the way; NULL for a description stored before 018. The run's row and its grades (an
-- explain run stores one per explainer answer) give the grader, template, seed, date and the
-- parsed/unparsed counts.
ALTER TABLE features ADD COLUMN desc_run_id INTEGER REFERENCES runs(id);

-- 0004: `fail_count` now means "the number of failures at which the task has
-- failed" (the task format's definition; before, the task stopped only when
-- failures EXCEEDED it). Stored tasks keep their behaviour: a task that
-- stopped after more than N failures now says N + 1. -1 (never) is kept.
UPDATE tasks SET fail_count = fail_count + 1 WHERE fail_count >= 0;

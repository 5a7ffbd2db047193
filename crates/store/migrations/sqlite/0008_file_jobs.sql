-- Async bulk file jobs (copy, move, delete of up to 100 files or folders), which are also the
-- engine's queue: workers claim rows with a lease, and `attempt` fences every later write. The
-- items are done in order; each item's effect, its result and the job's cursor (`next_item`)
-- are committed in one transaction, so a resumed attempt neither skips nor repeats an item.
CREATE TABLE file_jobs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    owner            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    total_items      BIGINT NOT NULL,
    next_item        BIGINT NOT NULL DEFAULT 0,
    completed_items  BIGINT NOT NULL DEFAULT 0,
    failed_items     BIGINT NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX file_jobs_queue ON file_jobs (state, next_attempt_at, seq);
CREATE INDEX file_jobs_owner ON file_jobs (owner, seq);

-- One row per item, in request order. `resource` (the file right after the effect) or `error`
-- is set when the item is done; an item refused at submission carries its error from the start.
CREATE TABLE file_job_items (
    job_id     TEXT NOT NULL,
    position   BIGINT NOT NULL,
    file_id    TEXT NOT NULL,
    project_id TEXT,
    parent_id  TEXT,
    name       TEXT,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    resource   TEXT,
    error      TEXT,
    PRIMARY KEY (job_id, position)
);

-- Export jobs, which are also the engine's queue: workers claim rows with a lease, and
-- `attempt` is the fencing token every later write carries.
CREATE TABLE exports (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    owner            TEXT NOT NULL,
    file_id          TEXT NOT NULL,
    volume_id        TEXT NOT NULL,
    location         TEXT NOT NULL,
    object_key       TEXT NOT NULL,
    properties       JSONB NOT NULL,
    overwrite        BOOLEAN NOT NULL,
    copy_only        BOOLEAN NOT NULL,
    state            TEXT NOT NULL,
    error            JSONB,
    attempt          BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    upload_id        TEXT,
    bytes_total      BIGINT NOT NULL,
    bytes_copied     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX exports_queue ON exports (state, owner, volume_id, seq);
CREATE INDEX exports_destination ON exports (volume_id, object_key, seq);
CREATE INDEX exports_file ON exports (file_id, state);
CREATE INDEX exports_owner ON exports (owner, seq);

-- First responses to POSTs sent with an Idempotency-Key, replayed on a retry.
CREATE TABLE idempotency (
    owner      TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, key)
);

-- Import jobs: volume objects (or whole folders) become alias files in a project. A folder
-- import commits in batches and remembers the last key it committed, so a resumed attempt
-- neither skips nor duplicates an object.
CREATE TABLE imports (
    seq                       INTEGER PRIMARY KEY,
    id                        TEXT NOT NULL UNIQUE,
    owner                     TEXT NOT NULL,
    volume_id                 TEXT NOT NULL,
    location                  TEXT NOT NULL,
    project_id                TEXT NOT NULL,
    parent_id                 TEXT NOT NULL,
    name                      TEXT,
    overwrite                 BOOLEAN NOT NULL,
    autorename                BOOLEAN NOT NULL,
    preserve_folder_structure BOOLEAN NOT NULL,
    state                     TEXT NOT NULL,
    error                     TEXT,
    attempt                   BIGINT NOT NULL DEFAULT 0,
    lease_owner               TEXT,
    lease_expires_at          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at           BIGINT NOT NULL DEFAULT 0,
    cursor                    TEXT,
    objects_imported          BIGINT NOT NULL DEFAULT 0,
    result_file_id            TEXT,
    created_at                BIGINT NOT NULL,
    started_at                BIGINT,
    finished_at               BIGINT
);
CREATE INDEX imports_queue ON imports (state, next_attempt_at, seq);
CREATE INDEX imports_owner ON imports (owner, seq);

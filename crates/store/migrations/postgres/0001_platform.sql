-- Users, projects, members, files, blobs and uploads (Postgres).
CREATE TABLE users (
    username   TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    is_admin   BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- API tokens, stored only as SHA-256 hashes.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username),
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT,
    billing_group TEXT NOT NULL,
    category      TEXT NOT NULL,
    tags          JSONB NOT NULL,
    settings      JSONB NOT NULL,
    root_folder   TEXT NOT NULL,
    is_public     BOOLEAN NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL
);

-- Members of projects and volumes.
CREATE TABLE members (
    kind        TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    username    TEXT NOT NULL,
    read        BOOLEAN NOT NULL,
    copy        BOOLEAN NOT NULL,
    write       BOOLEAN NOT NULL,
    execute     BOOLEAN NOT NULL,
    admin       BOOLEAN NOT NULL,
    PRIMARY KEY (kind, resource_id, username)
);
CREATE INDEX members_by_user ON members (username, kind);

-- Platform bytes, shared by files and freed by the sweeper once refs reaches 0.
CREATE TABLE blobs (
    id         TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    md5        TEXT NOT NULL,
    crc32c     TEXT NOT NULL,
    refs       BIGINT NOT NULL,
    deleting   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs (refs) WHERE refs <= 0;

CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    parent_id   TEXT,
    name        TEXT NOT NULL,
    is_folder   BOOLEAN NOT NULL,
    size        BIGINT,
    blob_id     TEXT REFERENCES blobs (id),
    -- Checksums recorded when the bytes arrived; they stay when a file becomes an alias.
    md5         TEXT,
    crc32c      TEXT,
    volume_id   TEXT,
    location    TEXT,
    is_public   BOOLEAN NOT NULL,
    metadata    JSONB NOT NULL,
    tags        JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX files_name ON files (parent_id, name);
CREATE INDEX files_project ON files (project_id);
CREATE INDEX files_blob ON files (blob_id);

CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    project_id TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    part_size  BIGINT NOT NULL,
    overwrite  BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads (expires_at);

CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL,
    part_number BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    etag        TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

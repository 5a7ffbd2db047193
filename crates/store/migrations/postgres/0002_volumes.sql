-- Volumes: users' buckets. `service` holds everything but the secret, which is sealed
-- with AES-256-GCM under the server key.
CREATE TABLE volumes (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    access_mode TEXT NOT NULL,
    active      BOOLEAN NOT NULL,
    service     JSONB NOT NULL,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);

CREATE INDEX files_volume ON files (volume_id);

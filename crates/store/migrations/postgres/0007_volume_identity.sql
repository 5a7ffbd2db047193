-- A volume's identity, which never changes and never comes back: aliases and jobs bind to it,
-- so a volume deleted and made again under the same name never serves their objects.
ALTER TABLE volumes ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE volumes SET uid = substr(md5(random()::text || id), 1, 24);
ALTER TABLE files ADD COLUMN volume_uid TEXT;
UPDATE files SET volume_uid = (SELECT uid FROM volumes WHERE volumes.id = files.volume_id)
    WHERE volume_id IS NOT NULL;
ALTER TABLE exports ADD COLUMN volume_uid TEXT NOT NULL DEFAULT '';
UPDATE exports SET volume_uid = COALESCE((SELECT uid FROM volumes WHERE volumes.id = exports.volume_id), '');
ALTER TABLE imports ADD COLUMN volume_uid TEXT NOT NULL DEFAULT '';
UPDATE imports SET volume_uid = COALESCE((SELECT uid FROM volumes WHERE volumes.id = imports.volume_id), '');

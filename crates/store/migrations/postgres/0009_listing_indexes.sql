-- Folder listings are ordered folders first, then by name and id: in this index's order, so a
-- page reads its 100 entries instead of sorting the whole folder on every request.
CREATE INDEX files_listing ON files (parent_id, is_folder DESC, name, id);
-- A count of one volume's imports in some states (how a client polls) reads only those,
-- as exports_queue does for exports, instead of every import the owner ever made.
CREATE INDEX imports_by_volume ON imports (owner, volume_id, state);

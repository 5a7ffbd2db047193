-- The unfinished-moves index (0005) answers every lookup of a file's exports; the wider
-- index only cost writes on every job's claim and end.
DROP INDEX exports_file;

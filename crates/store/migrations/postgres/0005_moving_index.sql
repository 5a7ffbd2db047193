-- Submission asks, per item, whether a pending or running move will take the file: answer it
-- from the few unfinished moves, not from every job the file ever had.
CREATE INDEX exports_unfinished_moves ON exports (file_id) WHERE NOT copy_only AND state IN ('PENDING', 'RUNNING');

ALTER TABLE upload_ids DROP COLUMN reserved_file_id;

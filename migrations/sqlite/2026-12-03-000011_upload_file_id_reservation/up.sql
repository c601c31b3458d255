-- GET /v1/file/upload-id promises the uploaded file its id: taken from the files id sequence
-- at once, inserted with it when the upload comes. No foreign key: the file does not exist
-- yet (file_id, with its key, is set once it does).
ALTER TABLE upload_ids ADD COLUMN reserved_file_id BIGINT;

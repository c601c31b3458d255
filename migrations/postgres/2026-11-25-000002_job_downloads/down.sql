ALTER TABLE jobs DROP COLUMN download_token_hash;

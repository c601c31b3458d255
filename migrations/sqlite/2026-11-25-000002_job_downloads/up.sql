-- Agents download a started job's G-code with a per-job secret in the link.
ALTER TABLE jobs ADD COLUMN download_token_hash TEXT;

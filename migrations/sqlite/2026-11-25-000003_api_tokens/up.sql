-- Secrets every server instance shares (the API token signing key), and token expiry.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;

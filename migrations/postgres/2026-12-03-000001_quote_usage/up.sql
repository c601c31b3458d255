-- One row per quote made, kept when the quote is deleted: /v1 quotes_used counts quotes made
-- since the month's reset date, so deleting quotes does not get round v1.quotes_per_month.
CREATE TABLE quote_usage (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX quote_usage_user_idx ON quote_usage (user_id, created_at);
INSERT INTO quote_usage (user_id, created_at) SELECT user_id, created_at FROM quotes;

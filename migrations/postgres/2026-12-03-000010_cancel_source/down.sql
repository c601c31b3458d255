-- The chosen reasons have no place in the old schema: the source takes the column back.
UPDATE jobs SET cancel_reason = cancel_source WHERE cancel_source IS NOT NULL;
ALTER TABLE jobs DROP COLUMN cancel_source;

-- Who or what ended a job early (CANCELLED_WEB, CANCELLED_PRINTER, STOPPED_ON_PRINTER,
-- PRINTER_ERROR, AGENT_RESET, NOT_CHARGEABLE), apart from the reason a person chose when
-- cancelling (cancel_reason, a code of the documented list). Until now only the server wrote
-- cancel_reason, and only these codes: every such value moves to the new column.
ALTER TABLE jobs ADD COLUMN cancel_source TEXT;
UPDATE jobs SET cancel_source = cancel_reason, cancel_reason = NULL WHERE cancel_reason IS NOT NULL;

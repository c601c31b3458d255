-- Every agent poll clears the delivered token of its printer's registration code by printer_id.
CREATE INDEX registration_codes_printer_idx ON registration_codes (printer_id);

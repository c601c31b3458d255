DROP TABLE quote_usage;

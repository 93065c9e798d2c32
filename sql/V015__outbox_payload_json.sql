-- Outgoing messages are stored as written and read back as written: `json` checks the text but
-- does not parse it into `jsonb` on insert and print it again for the relay, and the payload is
-- not compressed (rows live seconds until the relay deletes them). A batch of 10 000 transaction
-- outcomes writes ~2 MB of JSON here: 73 ms as compressed `jsonb` (docs/PERFORMANCE.md, P4).
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE outbox ALTER COLUMN payload SET STORAGE EXTERNAL;

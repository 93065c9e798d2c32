-- Records from the tkm-transactions queue (messages.md) are matched as uploads of their own kind,
-- named by their message_id: a redelivered message finds its first run (same name and SHA-256)
-- and is never matched twice; its report is GET /transactions/{id} like a file's.
ALTER TABLE upload DROP CONSTRAINT upload_kind_check;
ALTER TABLE upload ADD CONSTRAINT upload_kind_check
    CHECK (kind IN ('token-list', 'transactions', 'transaction-message'));

-- 0004: when each account was last active (the purge's retention clock) and when it was
-- deleted or anonymized (its tokens stop working). Independent of any other migration.
ALTER TABLE users ADD COLUMN last_active_at TEXT;
ALTER TABLE users ADD COLUMN deleted_at TEXT;
-- The mall's deleted accounts, read whole at start and after each deletion: a small index.
CREATE INDEX users_deleted ON users (id) WHERE deleted_at IS NOT NULL;

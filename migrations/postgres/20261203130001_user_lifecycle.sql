-- The account lifecycle in the inline access model. A deactivation records
-- its log position: every session and API key that started at or before it
-- stays dead, so a reactivation restores login and nothing older.
ALTER TABLE access_users ADD COLUMN deactivated_at timestamptz;
ALTER TABLE access_users ADD COLUMN deactivation_reason text;
ALTER TABLE access_users ADD COLUMN credentials_after bigint NOT NULL DEFAULT 0;
ALTER TABLE access_sessions ADD COLUMN started_position bigint NOT NULL DEFAULT 0;
ALTER TABLE access_api_keys ADD COLUMN issued_position bigint NOT NULL DEFAULT 0;

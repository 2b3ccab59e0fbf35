-- Identity self-service in the inline access model. A password change
-- records its log position: every session of the user that started before
-- it, except the one the change was made from (`kept_session`), is dead.
-- Sessions keep the User-Agent of their login, and are listed per user.
ALTER TABLE access_users ADD COLUMN sessions_after INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_users ADD COLUMN kept_session BLOB;
ALTER TABLE access_sessions ADD COLUMN user_agent TEXT;
CREATE INDEX access_sessions_by_user ON access_sessions (generation, user_id, created_at);

-- Free-text task search (`search=` on task lists) matches every word as a
-- substring of `search` (key, title and description, lower-cased by the
-- projector). A B-tree cannot answer `LIKE '%word%'`; a trigram index can,
-- so a search no longer reads every task of the tenant to find and count
-- its matches. Words under three characters have no trigram and fall back
-- to the other filters' indexes.
--
-- pg_trgm ships with Postgres and is a trusted extension (13+): the
-- database owner may create it without superuser rights.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX tasks_view_search ON tasks_view USING gin (search gin_trgm_ops);

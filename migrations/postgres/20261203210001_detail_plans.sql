-- Every "one row by id" read names the whole primary key. With current
-- statistics the planner knows the primary key finds one row and a
-- secondary index (generation, tenant_id, …) finds all the tenant's rows.
-- With stale statistics (a table analyzed at five rows, then grown to
-- thousands before autovacuum's next round; or never analyzed) every index
-- looks as if it found one row, and on a tie Postgres takes the index it
-- considers first: the most recently created one. A secondary index
-- created after the primary key then wins, and a cached generic plan walks
-- every row of a tenant for a lookup by id (5 ms at 22,000 projects).
--
-- Re-creating each read model's primary key after its secondary indexes
-- makes the primary key the tie's winner. A migration that adds a
-- secondary index to one of these tables must re-create its primary key
-- the same way afterwards: `projections/tests/plans.rs` checks every
-- detail statement's plan under stale statistics and fails otherwise.
ALTER TABLE access_users DROP CONSTRAINT access_users_pkey,
    ADD CONSTRAINT access_users_pkey PRIMARY KEY (generation, id);
ALTER TABLE access_members DROP CONSTRAINT access_members_pkey,
    ADD CONSTRAINT access_members_pkey PRIMARY KEY (generation, workspace_id, user_id);
ALTER TABLE access_api_keys DROP CONSTRAINT access_api_keys_pkey,
    ADD CONSTRAINT access_api_keys_pkey PRIMARY KEY (generation, id);
ALTER TABLE projects_view DROP CONSTRAINT projects_view_pkey,
    ADD CONSTRAINT projects_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE tasks_view DROP CONSTRAINT tasks_view_pkey,
    ADD CONSTRAINT tasks_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE comments_view DROP CONSTRAINT comments_view_pkey,
    ADD CONSTRAINT comments_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE feature_flags DROP CONSTRAINT feature_flags_pkey,
    ADD CONSTRAINT feature_flags_pkey PRIMARY KEY (generation, id);
ALTER TABLE webhooks_view DROP CONSTRAINT webhooks_view_pkey,
    ADD CONSTRAINT webhooks_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE templates_view DROP CONSTRAINT templates_view_pkey,
    ADD CONSTRAINT templates_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE analytics_tasks DROP CONSTRAINT analytics_tasks_pkey,
    ADD CONSTRAINT analytics_tasks_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE automations_view DROP CONSTRAINT automations_view_pkey,
    ADD CONSTRAINT automations_view_pkey PRIMARY KEY (generation, tenant_id, id);
ALTER TABLE automation_executions_view DROP CONSTRAINT automation_executions_view_pkey,
    ADD CONSTRAINT automation_executions_view_pkey PRIMARY KEY (generation, tenant_id, id);

-- access_sessions_by_user (20261203190001) lists a user's sessions; the
-- credential check still reads one session by its id.
ALTER TABLE access_sessions DROP CONSTRAINT access_sessions_pkey,
    ADD CONSTRAINT access_sessions_pkey PRIMARY KEY (generation, id);

//! The first vertical slice as a client meets it over HTTP: identity,
//! workspaces and projects, their errors, pagination, read-your-writes and
//! tenant isolation, against the real binary in both modes.
//!
//! Reads of the asynchronous projects view wait on the consistency token of
//! the write they follow; nothing here sleeps.

use crate::common::{
    Backing, Client, PASSWORD, Reply, Tenet, User, login, project_url, projects_url, register,
    workspace_url,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One string field of every item of a page (a 200), in order.
#[track_caller]
fn column(page: &Reply, field: &str) -> Vec<String> {
    page.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item[field].as_str().expect("string field").to_owned())
        .collect()
}

fn quoted(version: i64) -> String {
    format!("\"{version}\"")
}

/// Creates a project and answers the 201.
async fn create_project(user: &User, workspace: &str, body: Value) -> Reply {
    let reply = user.client.post(&projects_url(workspace), body).await;
    reply.assert_status(201);
    reply
}

async fn patch_if_match(client: &Client, path: &str, if_match: &str, body: Value) -> Reply {
    client
        .send(
            client
                .request(Method::PATCH, path)
                .header("If-Match", if_match)
                .json(&body),
        )
        .await
}

/// Sends the same POST 16 times at once and answers the replies.
async fn race(client: &Client, path: &str, body: Value) -> Vec<Reply> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = client.clone();
        let path = path.to_owned();
        let body = body.clone();
        requests.spawn(async move { client.post(&path, body).await });
    }
    requests.join_all().await
}

#[track_caller]
fn assert_one_winner(replies: &[Reply]) -> &Reply {
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    for loser in replies.iter().filter(|r| r.status != 201) {
        loser.assert_problem(409, "CONFLICT");
    }
    winners[0]
}

// Identity

async fn register_then_login_then_me_lists_the_owned_workspace(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let registered = register(&tenet, "Someone", "  Ada.Lovelace@Example.COM ", PASSWORD).await;
    let body = registered.assert_status(201);
    assert_eq!(body["email"], "ada.lovelace@example.com");
    assert_eq!(body["name"], "Someone");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    assert_eq!(
        registered.header("location").as_deref(),
        Some("/api/v1/auth/me")
    );
    let user_id = registered.id();

    let logged_in = login(&tenet, "ada.lovelace@example.com", PASSWORD).await;
    let tokens = logged_in.assert_status(200);
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().is_some_and(|s| s > 0));
    let client = Client::anonymous(&tenet).with_token(tokens["access_token"].as_str().unwrap());

    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.assert_status(200)["id"], user_id.as_str());
    assert_eq!(me.body["email"], "ada.lovelace@example.com");
    assert_eq!(me.body["platform_admin"], false);
    assert_eq!(me.body["workspaces"], json!([]));

    let created = client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Analytical Engines" }),
        )
        .await;
    let workspace = created.id();
    let me = client.get("/api/v1/auth/me").await;
    let listed = me.assert_status(200)["workspaces"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{:#}", me.body);
    assert_eq!(listed[0]["id"], workspace.as_str());
    assert_eq!(listed[0]["name"], "Analytical Engines");
    assert_eq!(listed[0]["slug"], "analytical-engines");
    assert_eq!(listed[0]["role"], "owner");
}

async fn duplicate_email_is_a_conflict_whatever_its_case(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    register(&tenet, "Someone", "grace@example.com", PASSWORD)
        .await
        .assert_status(201);
    register(
        &tenet,
        "Someone",
        "Grace@EXAMPLE.com",
        "another long password",
    )
    .await
    .assert_problem(409, "CONFLICT");
    register(&tenet, "Someone", "grace@example.com", PASSWORD)
        .await
        .assert_problem(409, "CONFLICT");
    // The first password still opens the account, under any case.
    login(&tenet, "GRACE@example.com", PASSWORD)
        .await
        .assert_status(200);
    login(&tenet, "grace@example.com", "another long password")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn wrong_password_and_unknown_email_are_the_same_401(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "alan").await;
    let wrong_password = login(&tenet, &user.email, "not the right password").await;
    wrong_password.assert_problem(401, "AUTHENTICATION_ERROR");
    assert!(wrong_password.body.get("access_token").is_none());
    let unknown = login(&tenet, "nobody-at-all@example.com", PASSWORD).await;
    unknown.assert_problem(401, "AUTHENTICATION_ERROR");
    // Nothing tells a caller which of the two was wrong.
    assert_eq!(wrong_password.body["detail"], unknown.body["detail"]);
    let empty = login(&tenet, &user.email, "").await;
    empty.assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn invalid_email_or_short_password_is_422_naming_the_field(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    for email in ["not-an-email", "ada@", "@example.com", "ada@example", ""] {
        let reply = register(&tenet, "Someone", email, PASSWORD).await;
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), vec!["email"], "{email:?}: {:#}", reply.body);
    }
    let short = register(&tenet, "Someone", "short@example.com", "123456789").await;
    short.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(short.fields(), vec!["password"]);
    let both = register(&tenet, "Someone", "nope", "short").await;
    both.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(both.fields(), vec!["email", "password"]);
    // Nothing was registered by the refused attempts; ten characters is enough.
    register(&tenet, "Someone", "short@example.com", "1234567890")
        .await
        .assert_status(201);
}

// Workspaces

async fn creating_a_workspace_answers_201_with_location_etag_and_token(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let created = user
        .client
        .post("/api/v1/workspaces", json!({ "name": "  Acme Corp!  " }))
        .await;
    let body = created.assert_status(201);
    let workspace = created.id();
    assert_eq!(body["name"], "Acme Corp!");
    assert_eq!(body["slug"], "acme-corp");
    assert_eq!(body["role"], "owner");
    assert_eq!(body["version"], 1);
    assert_eq!(
        created.header("location"),
        Some(workspace_url(&workspace)),
        "Location"
    );
    assert_eq!(created.etag(), quoted(1));
    assert!(
        created.token().parse::<u64>().is_ok(),
        "{}",
        created.token()
    );

    let read = user
        .client
        .get_after(&workspace_url(&workspace), &created.token())
        .await;
    assert_eq!(read.assert_status(200), &created.body);
    assert_eq!(read.etag(), created.etag());

    let explicit = user
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Acme Two", "slug": "acme-2" }),
        )
        .await;
    assert_eq!(explicit.assert_status(201)["slug"], "acme-2");
    let bad_slug = user
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Acme Three", "slug": "Acme Three" }),
        )
        .await;
    bad_slug.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad_slug.fields(), vec!["slug"]);
}

async fn listing_my_workspaces_is_paginated_and_shows_only_mine(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let grace = User::register(&tenet, "grace").await;
    let mut mine = Vec::new();
    for name in ["First", "Second", "Third"] {
        mine.push(ada.workspace(name).await);
    }
    let theirs = grace.workspace("Elsewhere").await;

    let first = ada.client.get("/api/v1/workspaces?limit=2").await;
    first.assert_status(200);
    assert_eq!(column(&first, "id"), mine[..2].to_vec());
    assert_eq!(first.body["total"], 3);
    assert_eq!(first.body["has_more"], true);
    assert_eq!(first.body["offset"], 0);
    assert_eq!(first.body["limit"], 2);
    let second = ada.client.get("/api/v1/workspaces?limit=2&offset=2").await;
    assert_eq!(column(&second, "id"), mine[2..].to_vec());
    assert_eq!(second.body["total"], 3);
    assert_eq!(second.body["has_more"], false);
    assert_eq!(second.body["offset"], 2);
    let beyond = ada.client.get("/api/v1/workspaces?offset=10").await;
    assert_eq!(beyond.assert_status(200)["items"], json!([]));
    assert_eq!(beyond.body["total"], 3);
    assert_eq!(beyond.body["has_more"], false);

    let everything = ada.client.get("/api/v1/workspaces").await;
    assert!(!column(&everything, "id").contains(&theirs));
    assert_eq!(everything.body["limit"], 50);
    let newest_first = ada.client.get("/api/v1/workspaces?sort=-created_at").await;
    let mut reversed = mine.clone();
    reversed.reverse();
    assert_eq!(column(&newest_first, "id"), reversed);
    let bad_limit = ada.client.get("/api/v1/workspaces?limit=0").await;
    bad_limit.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad_limit.fields(), vec!["limit"]);
}

async fn renaming_a_workspace_checks_if_match_and_bumps_the_etag(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let path = workspace_url(&workspace);

    let renamed = patch_if_match(
        &user.client,
        &path,
        &quoted(1),
        json!({ "name": "Acme Ltd" }),
    )
    .await;
    assert_eq!(renamed.assert_status(200)["name"], "Acme Ltd");
    assert_eq!(renamed.etag(), quoted(2));
    let read = user.client.get_after(&path, &renamed.token()).await;
    assert_eq!(read.assert_status(200)["name"], "Acme Ltd");
    assert_eq!(read.etag(), quoted(2));

    let stale = patch_if_match(
        &user.client,
        &path,
        &quoted(1),
        json!({ "name": "Too Late" }),
    )
    .await;
    stale.assert_problem(412, "PRECONDITION_FAILED");
    let reslugged = user
        .client
        .patch(&path, json!({ "slug": "acme-ltd" }))
        .await;
    assert_eq!(reslugged.assert_status(200)["slug"], "acme-ltd");
    assert_eq!(reslugged.body["name"], "Acme Ltd");
    let read = user.client.get(&path).await;
    assert_eq!(read.assert_status(200)["slug"], "acme-ltd");
    assert_eq!(read.body["name"], "Acme Ltd");
    assert_eq!(read.etag(), quoted(3));
}

async fn duplicate_workspace_slug_is_a_conflict(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let grace = User::register(&tenet, "grace").await;
    ada.client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Acme", "slug": "acme" }),
        )
        .await
        .assert_status(201);
    // Unique across all workspaces, not per user.
    let taken = grace
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Other Acme", "slug": "acme" }),
        )
        .await;
    taken.assert_problem(409, "CONFLICT");
    assert_eq!(taken.fields(), vec!["slug"]);
    // A slug derived from the name is claimed just the same.
    grace
        .client
        .post("/api/v1/workspaces", json!({ "name": "ACME" }))
        .await
        .assert_problem(409, "CONFLICT");
    let other = grace.workspace("Other").await;
    grace
        .client
        .patch(&workspace_url(&other), json!({ "slug": "acme" }))
        .await
        .assert_problem(409, "CONFLICT");
    let unchanged = grace.client.get(&workspace_url(&other)).await;
    assert_ne!(unchanged.assert_status(200)["slug"], "acme");
}

async fn sixteen_concurrent_workspace_creates_for_one_slug_have_one_winner(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let replies = race(
        &user.client,
        "/api/v1/workspaces",
        json!({ "name": "Contested", "slug": "contested" }),
    )
    .await;
    let winner = assert_one_winner(&replies);
    let mine = user.client.get("/api/v1/workspaces").await;
    assert_eq!(column(&mine, "id"), vec![winner.id()]);
    assert_eq!(mine.body["total"], 1);
}

async fn a_deleted_workspace_is_404_and_frees_its_slug(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let created = user
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Doomed", "slug": "doomed" }),
        )
        .await;
    let workspace = created.id();
    create_project(&user, &workspace, json!({ "name": "Inside" })).await;

    let deleted = user.client.delete(&workspace_url(&workspace)).await;
    assert_eq!(deleted.assert_status(200), &json!({ "ok": true }));
    user.client
        .get_after(&workspace_url(&workspace), &deleted.token())
        .await
        .assert_problem(404, "NOT_FOUND");
    user.client
        .get(&projects_url(&workspace))
        .await
        .assert_problem(404, "NOT_FOUND");
    user.client
        .delete(&workspace_url(&workspace))
        .await
        .assert_problem(404, "NOT_FOUND");
    let me = user.client.get("/api/v1/auth/me").await;
    assert_eq!(me.assert_status(200)["workspaces"], json!([]));
    let listed = user.client.get("/api/v1/workspaces").await;
    assert_eq!(listed.assert_status(200)["total"], 0);

    user.client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Reborn", "slug": "doomed" }),
        )
        .await
        .assert_status(201);
}

// Projects

async fn creating_a_project_answers_201_with_location_and_fields(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(
        &user,
        &workspace,
        json!({ "name": "  Web Platform  ", "description": "The site.\nAnd its API." }),
    )
    .await;
    let project = created.id();
    let body = &created.body;
    assert_eq!(body["workspace_id"], workspace.as_str());
    assert_eq!(body["name"], "Web Platform");
    assert_eq!(body["slug"], "web-platform");
    assert_eq!(body["description"], "The site.\nAnd its API.");
    assert_eq!(body["status"], "active");
    assert_eq!(body["created_by"], user.id.as_str());
    assert_eq!(body["archived_at"], Value::Null);
    assert_eq!(body["version"], 1);
    assert!(body["created_at"].as_str().is_some());
    assert_eq!(
        created.header("location"),
        Some(project_url(&workspace, &project))
    );
    assert_eq!(created.etag(), quoted(1));

    let read = user
        .client
        .get_after(&project_url(&workspace, &project), &created.token())
        .await;
    assert_eq!(read.assert_status(200), &created.body);
    assert_eq!(read.etag(), quoted(1));

    let explicit = create_project(
        &user,
        &workspace,
        json!({ "name": "Mobile", "slug": "mobile-app" }),
    )
    .await;
    assert_eq!(explicit.body["slug"], "mobile-app");
    assert_eq!(explicit.body["description"], "");
}

async fn duplicate_project_slug_is_a_conflict(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let acme = user.workspace("Acme").await;
    let globex = user.workspace("Globex").await;
    create_project(&user, &acme, json!({ "name": "Web", "slug": "web" })).await;

    let duplicate = user
        .client
        .post(
            &projects_url(&acme),
            json!({ "name": "Other Web", "slug": "web" }),
        )
        .await;
    duplicate.assert_problem(409, "CONFLICT");
    assert_eq!(duplicate.fields(), vec!["slug"]);
    user.client
        .post(&projects_url(&acme), json!({ "name": "WEB" }))
        .await
        .assert_problem(409, "CONFLICT");
    // Unique per workspace only.
    let elsewhere = create_project(&user, &globex, json!({ "name": "Web", "slug": "web" })).await;
    assert_eq!(elsewhere.body["workspace_id"], globex.as_str());

    // Renaming onto a taken slug is refused; renaming away frees the old one.
    let api = create_project(&user, &acme, json!({ "name": "API" })).await;
    user.client
        .patch(&project_url(&acme, &api.id()), json!({ "slug": "web" }))
        .await
        .assert_problem(409, "CONFLICT");
    user.client
        .patch(&project_url(&acme, &api.id()), json!({ "slug": "api-v2" }))
        .await
        .assert_status(200);
    create_project(&user, &acme, json!({ "name": "Api" })).await;
}

async fn patching_a_project_with_a_stale_if_match_is_412_and_the_current_one_200(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(&user, &workspace, json!({ "name": "Web" })).await;
    let path = project_url(&workspace, &created.id());

    let first = patch_if_match(
        &user.client,
        &path,
        &created.etag(),
        json!({ "name": "Web 2" }),
    )
    .await;
    assert_eq!(first.assert_status(200)["name"], "Web 2");
    assert_eq!(first.etag(), quoted(2));
    assert_eq!(first.body["version"], 2);

    let stale = patch_if_match(
        &user.client,
        &path,
        &created.etag(),
        json!({ "name": "Web 3" }),
    )
    .await;
    stale.assert_problem(412, "PRECONDITION_FAILED");
    let garbage =
        patch_if_match(&user.client, &path, "\"seven\"", json!({ "name": "Web 3" })).await;
    garbage.assert_problem(412, "PRECONDITION_FAILED");

    let current = user.client.get_after(&path, &first.token()).await;
    assert_eq!(current.assert_status(200)["name"], "Web 2");
    let second = patch_if_match(
        &user.client,
        &path,
        &current.etag(),
        json!({ "description": "Now with words" }),
    )
    .await;
    assert_eq!(second.assert_status(200)["description"], "Now with words");
    assert_eq!(second.body["name"], "Web 2");
    assert_eq!(second.etag(), quoted(3));
    let read = user.client.get_after(&path, &second.token()).await;
    assert_eq!(read.assert_status(200)["description"], "Now with words");
    assert_eq!(read.etag(), quoted(3));
}

async fn deleting_a_project_archives_it_and_restore_brings_it_back(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let kept = create_project(&user, &workspace, json!({ "name": "Kept" })).await;
    let shelved = create_project(&user, &workspace, json!({ "name": "Shelved" })).await;
    let path = project_url(&workspace, &shelved.id());
    let list = projects_url(&workspace);

    let archived = user.client.delete(&path).await;
    assert_eq!(archived.assert_status(200), &json!({ "ok": true }));
    let token = archived.token();
    let read = user.client.get_after(&path, &token).await;
    assert_eq!(read.assert_status(200)["status"], "archived");
    assert!(read.body["archived_at"].as_str().is_some());
    assert_eq!(read.etag(), quoted(2));

    let active = user.client.get_after(&list, &token).await;
    assert_eq!(column(&active, "id"), vec![kept.id()]);
    assert_eq!(active.body["total"], 1);
    let explicit = user.client.get(&format!("{list}?status=active")).await;
    assert_eq!(column(&explicit, "id"), vec![kept.id()]);
    let only_archived = user.client.get(&format!("{list}?status=archived")).await;
    assert_eq!(column(&only_archived, "id"), vec![shelved.id()]);
    assert_eq!(only_archived.body["total"], 1);
    let all = user.client.get(&format!("{list}?status=all")).await;
    assert_eq!(column(&all, "id"), vec![kept.id(), shelved.id()]);
    assert_eq!(all.body["total"], 2);
    let bogus = user.client.get(&format!("{list}?status=deleted")).await;
    bogus.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bogus.fields(), vec!["status"]);

    let restored = user
        .client
        .post(&format!("{path}/restore"), json!({}))
        .await;
    assert_eq!(restored.assert_status(200)["status"], "active");
    assert_eq!(restored.body["archived_at"], Value::Null);
    assert_eq!(restored.etag(), quoted(3));
    let active = user.client.get_after(&list, &restored.token()).await;
    assert_eq!(column(&active, "id"), vec![kept.id(), shelved.id()]);
    assert_eq!(active.body["total"], 2);
    let only_archived = user.client.get(&format!("{list}?status=archived")).await;
    assert_eq!(only_archived.body["items"], json!([]));
    assert_eq!(only_archived.body["total"], 0);
}

async fn archiving_twice_restoring_an_active_project_and_updating_an_archived_one_conflict(
    backing: Backing,
) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(&user, &workspace, json!({ "name": "Web" })).await;
    let path = project_url(&workspace, &created.id());

    user.client
        .post(&format!("{path}/restore"), json!({}))
        .await
        .assert_problem(409, "CONFLICT");
    let archived = user.client.delete(&path).await;
    archived.assert_status(200);
    user.client
        .delete(&path)
        .await
        .assert_problem(409, "CONFLICT");
    user.client
        .patch(&path, json!({ "name": "Renamed" }))
        .await
        .assert_problem(409, "CONFLICT");
    let read = user.client.get_after(&path, &archived.token()).await;
    assert_eq!(read.assert_status(200)["status"], "archived");
    assert_eq!(read.body["name"], "Web");
    // Nothing the refused commands asked for happened.
    assert_eq!(read.etag(), quoted(2));
}

async fn sixteen_concurrent_project_creates_for_one_slug_have_one_winner(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let replies = race(
        &user.client,
        &projects_url(&workspace),
        json!({ "name": "Contested", "slug": "contested" }),
    )
    .await;
    let winner = assert_one_winner(&replies);
    // A later write, so that anything a loser appended is visible too.
    let marker = create_project(&user, &workspace, json!({ "name": "Marker" })).await;
    let found = user
        .client
        .get_after(
            &format!("{}?status=all&search=contested", projects_url(&workspace)),
            &marker.token(),
        )
        .await;
    assert_eq!(column(&found, "id"), vec![winner.id()]);
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["items"][0]["slug"], "contested");
}

// Pagination, sorting and search

/// Creates projects named `names` (slugs `p0`, `p1`, ...) in order; answers
/// their ids and the last consistency token.
async fn projects_named(user: &User, workspace: &str, names: &[&str]) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut token = String::new();
    for (index, name) in names.iter().enumerate() {
        let created = create_project(
            user,
            workspace,
            json!({ "name": name, "slug": format!("p{index}") }),
        )
        .await;
        ids.push(created.id());
        token = created.token();
    }
    (ids, token)
}

async fn project_pages_follow_limit_and_offset(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let names = ["A", "B", "C", "D", "E", "F", "G"];
    let (ids, token) = projects_named(&user, &workspace, &names).await;
    let list = projects_url(&workspace);

    let whole = user.client.get_after(&list, &token).await;
    assert_eq!(column(&whole, "id"), ids);
    assert_eq!(whole.body["total"], 7);
    assert_eq!(whole.body["has_more"], false);
    assert_eq!(whole.body["limit"], 50);

    let mut seen = Vec::new();
    for (offset, expected_len, has_more) in [(0, 3, true), (3, 3, true), (6, 1, false)] {
        let page = user
            .client
            .get(&format!("{list}?limit=3&offset={offset}"))
            .await;
        page.assert_status(200);
        let page_ids = column(&page, "id");
        assert_eq!(page_ids.len(), expected_len, "offset {offset}");
        assert_eq!(page.body["has_more"], has_more, "offset {offset}");
        assert_eq!(page.body["total"], 7);
        assert_eq!(page.body["offset"], offset);
        assert_eq!(page.body["limit"], 3);
        seen.extend(page_ids);
    }
    assert_eq!(seen, ids);

    let single = user.client.get(&format!("{list}?limit=1")).await;
    assert_eq!(column(&single, "id"), ids[..1].to_vec());
    assert_eq!(single.body["has_more"], true);
    let widest = user.client.get(&format!("{list}?limit=100")).await;
    assert_eq!(column(&widest, "id"), ids);
    let exact = user.client.get(&format!("{list}?limit=7")).await;
    assert_eq!(exact.body["has_more"], false);
    let one_short = user.client.get(&format!("{list}?limit=6&offset=0")).await;
    assert_eq!(one_short.body["has_more"], true);

    for offset in [7, 10, 1_000] {
        let beyond = user
            .client
            .get(&format!("{list}?offset={offset}&limit=3"))
            .await;
        assert_eq!(beyond.assert_status(200)["items"], json!([]));
        assert_eq!(beyond.body["total"], 7);
        assert_eq!(beyond.body["has_more"], false);
        assert_eq!(beyond.body["offset"], offset);
    }
}

async fn bad_limits_offsets_and_sorts_are_422_naming_the_parameter(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let list = projects_url(&workspace);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=abc", "offset"),
        ("offset=-3", "offset"),
        ("offset=1.5", "offset"),
        ("sort=password", "sort"),
        ("sort=--name", "sort"),
        ("sort=", "sort"),
    ] {
        let reply = user.client.get(&format!("{list}?{query}")).await;
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), vec![field], "{query}: {:#}", reply.body);
    }
}

async fn sorting_by_name_is_correct_and_stable_in_both_directions(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    // Two pairs of equal names: their order must come from the id.
    let names = [
        "Delta", "Alpha", "Charlie", "Bravo", "Delta", "Alpha", "Echo",
    ];
    let (ids, token) = projects_named(&user, &workspace, &names).await;
    let mut expected: Vec<(&str, String)> = names.iter().copied().zip(ids).collect();
    expected.sort();
    let ascending: Vec<String> = expected.iter().map(|(_, id)| id.clone()).collect();
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    let list = projects_url(&workspace);

    let by_name = user
        .client
        .get_after(&format!("{list}?sort=name"), &token)
        .await;
    assert_eq!(column(&by_name, "id"), ascending);
    let by_name_desc = user.client.get(&format!("{list}?sort=-name")).await;
    assert_eq!(column(&by_name_desc, "id"), descending);

    // Stable: the same order again, and pages that tile it exactly.
    for _ in 0..3 {
        let again = user.client.get(&format!("{list}?sort=name")).await;
        assert_eq!(column(&again, "id"), ascending);
    }
    let mut paged = Vec::new();
    for offset in (0..7).step_by(2) {
        let page = user
            .client
            .get(&format!("{list}?sort=-name&limit=2&offset={offset}"))
            .await;
        paged.extend(column(&page, "id"));
    }
    assert_eq!(paged, descending);

    let by_slug_desc = user.client.get(&format!("{list}?sort=-slug")).await;
    assert_eq!(
        column(&by_slug_desc, "slug"),
        vec!["p6", "p5", "p4", "p3", "p2", "p1", "p0"]
    );
}

async fn search_matches_every_word_in_any_order_and_case_including_description(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let list = projects_url(&workspace);
    let mut ids = Vec::new();
    let mut token = String::new();
    for (name, description) in [
        ("Web Platform", "Public site"),
        ("Mobile App", "Talks to the platform API"),
        ("Data Warehouse", "Nightly loads"),
        ("Sale 50% off", ""),
        ("Sale 500 off", ""),
    ] {
        let created = create_project(
            &user,
            &workspace,
            json!({ "name": name, "description": description }),
        )
        .await;
        ids.push(created.id());
        token = created.token();
    }

    let search = |terms: &str| {
        format!(
            "{list}?search={}",
            terms.replace('%', "%25").replace(' ', "+")
        )
    };
    let platform = user.client.get_after(&search("PLATFORM"), &token).await;
    assert_eq!(
        column(&platform, "id"),
        vec![ids[0].clone(), ids[1].clone()]
    );
    assert_eq!(platform.body["total"], 2);
    let reordered = user.client.get(&search("platform web")).await;
    assert_eq!(column(&reordered, "id"), vec![ids[0].clone()]);
    assert_eq!(reordered.body["total"], 1);
    let from_description = user.client.get(&search("api talks")).await;
    assert_eq!(column(&from_description, "id"), vec![ids[1].clone()]);
    let from_slug = user.client.get(&search("data-warehouse")).await;
    assert_eq!(column(&from_slug, "id"), vec![ids[2].clone()]);
    let no_match = user.client.get(&search("platform nightly")).await;
    assert_eq!(no_match.assert_status(200)["items"], json!([]));
    assert_eq!(no_match.body["total"], 0);
    // Wildcards in a word are matched literally.
    let percent = user.client.get(&search("50%")).await;
    assert_eq!(column(&percent, "id"), vec![ids[3].clone()]);
    let paged = user
        .client
        .get(&format!("{}&limit=1", search("sale")))
        .await;
    assert_eq!(paged.body["total"], 2);
    assert_eq!(paged.body["has_more"], true);
}

// Read-your-writes

async fn every_project_command_is_readable_with_its_consistency_token(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    for round in 0..3 {
        let name = format!("Round {round}");
        let created = create_project(&user, &workspace, json!({ "name": name })).await;
        let path = project_url(&workspace, &created.id());
        let read = user.client.get_after(&path, &created.token()).await;
        assert_eq!(read.assert_status(200), &created.body);
        assert_eq!(read.etag(), created.etag());

        let renamed = user
            .client
            .patch(&path, json!({ "name": format!("{name} renamed") }))
            .await;
        renamed.assert_status(200);
        let read = user.client.get_after(&path, &renamed.token()).await;
        assert_eq!(read.assert_status(200)["name"], format!("{name} renamed"));
        assert_eq!(read.etag(), renamed.etag());

        let archived = user.client.delete(&path).await;
        archived.assert_status(200);
        let read = user.client.get_after(&path, &archived.token()).await;
        assert_eq!(read.assert_status(200)["status"], "archived");

        let restored = user
            .client
            .post(&format!("{path}/restore"), json!({}))
            .await;
        restored.assert_status(200);
        let read = user.client.get_after(&path, &restored.token()).await;
        assert_eq!(read.assert_status(200)["status"], "active");
        assert_eq!(read.etag(), quoted(4));
    }
    // A command that changes nothing still answers a token that reads
    // everything written before it.
    let created = create_project(&user, &workspace, json!({ "name": "Still" })).await;
    let path = project_url(&workspace, &created.id());
    let unchanged = user.client.patch(&path, json!({ "name": "Still" })).await;
    assert_eq!(unchanged.assert_status(200)["version"], 1);
    let read = user.client.get_after(&path, &unchanged.token()).await;
    assert_eq!(read.assert_status(200)["name"], "Still");
}

async fn garbage_consistency_tokens_are_400_and_future_ones_412(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(&user, &workspace, json!({ "name": "Web" })).await;
    let project = project_url(&workspace, &created.id());
    let list = projects_url(&workspace);
    for path in [&list, &project] {
        for token in ["garbage", "-1", "1.5", "99999999999999999999999"] {
            let reply = user.client.get_after(path, token).await;
            reply.assert_problem(400, "BAD_REQUEST");
        }
        let far = created.token().parse::<i64>().unwrap() + 1_000_000_000;
        let ahead = user.client.get_after(path, &far.to_string()).await;
        ahead.assert_problem(412, "PRECONDITION_FAILED");
    }
    // The token it was given is of course fine.
    let read = user.client.get_after(&project, &created.token()).await;
    assert_eq!(read.assert_status(200)["name"], "Web");
}

// Tenant isolation

#[track_caller]
fn assert_reveals_nothing(reply: &Reply, secrets: &[&str]) {
    reply.assert_problem(404, "NOT_FOUND");
    let text = reply.body.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

async fn another_tenant_gets_404_on_every_workspace_and_project_route(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let mallory = User::register(&tenet, "mallory").await;
    let created = ada
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": "Umbrella Secret Labs", "slug": "umbrella-secret" }),
        )
        .await;
    let workspace = created.id();
    let project = create_project(
        &ada,
        &workspace,
        json!({ "name": "Project Nemesis", "slug": "nemesis", "description": "classified" }),
    )
    .await;
    let project_id = project.id();
    mallory.workspace("Mallory's own").await;
    let secrets = [
        "Umbrella",
        "umbrella-secret",
        "Nemesis",
        "nemesis",
        "classified",
        ada.email.as_str(),
        ada.id.as_str(),
    ];

    let ws = workspace_url(&workspace);
    let list = projects_url(&workspace);
    let one = project_url(&workspace, &project_id);
    let restore = format!("{one}/restore");
    let client = &mallory.client;
    let attempts = [
        client.get(&ws).await,
        client.patch(&ws, json!({ "name": "Pwned" })).await,
        client.delete(&ws).await,
        client.get(&list).await,
        client
            .get(&format!("{list}?status=all&search=nemesis"))
            .await,
        client.post(&list, json!({ "name": "Implant" })).await,
        client.get(&one).await,
        client.get_after(&one, &project.token()).await,
        client.patch(&one, json!({ "name": "Pwned" })).await,
        client.delete(&one).await,
        client.post(&restore, json!({})).await,
    ];
    for attempt in &attempts {
        assert_reveals_nothing(attempt, &secrets);
    }
    // Indistinguishable from a workspace that does not exist.
    let missing = client
        .get(&workspace_url(&uuid::Uuid::new_v4().to_string()))
        .await;
    assert_eq!(attempts[0].body["detail"], missing.body["detail"]);
    let me = client.get("/api/v1/auth/me").await;
    assert!(!me.body.to_string().contains(&workspace));

    // And nothing Mallory asked for happened: the slug she tried is free.
    let implant = create_project(&ada, &workspace, json!({ "name": "Implant" })).await;
    let nemesis = ada.client.get_after(&one, &implant.token()).await;
    assert_eq!(nemesis.assert_status(200)["name"], "Project Nemesis");
    assert_eq!(nemesis.body["status"], "active");
    assert_eq!(nemesis.etag(), quoted(1));
    let read = ada.client.get(&ws).await;
    assert_eq!(read.assert_status(200)["name"], "Umbrella Secret Labs");
    assert_eq!(read.etag(), quoted(1));
}

async fn a_project_requested_under_another_workspace_is_404(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let grace = User::register(&tenet, "grace").await;
    let home = ada.workspace("Home").await;
    let away = ada.workspace("Away").await;
    let graces = grace.workspace("Grace's").await;
    let project = create_project(&ada, &home, json!({ "name": "Homebody" })).await;
    let project_id = project.id();

    // Ada is a member of both workspaces; Grace only of her own.
    for (user, workspace) in [(&ada, &away), (&grace, &graces)] {
        let one = project_url(workspace, &project_id);
        let client = &user.client;
        for attempt in [
            client.get_after(&one, &project.token()).await,
            client.patch(&one, json!({ "name": "Moved" })).await,
            client.delete(&one).await,
            client.post(&format!("{one}/restore"), json!({})).await,
        ] {
            assert_reveals_nothing(&attempt, &["Homebody", "homebody"]);
        }
        let searched = client
            .get_after(
                &format!("{}?status=all&search=homebody", projects_url(workspace)),
                &project.token(),
            )
            .await;
        assert_eq!(searched.assert_status(200)["items"], json!([]));
        assert_eq!(searched.body["total"], 0);
    }

    let marker = create_project(&ada, &home, json!({ "name": "Marker" })).await;
    let read = ada
        .client
        .get_after(&project_url(&home, &project_id), &marker.token())
        .await;
    assert_eq!(read.assert_status(200)["name"], "Homebody");
    assert_eq!(read.body["status"], "active");
    assert_eq!(read.etag(), quoted(1));
}

async fn project_lists_show_only_their_own_workspace_projects(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let grace = User::register(&tenet, "grace").await;
    let home = ada.workspace("Home").await;
    let away = ada.workspace("Away").await;
    let graces = grace.workspace("Grace's").await;
    let mine = create_project(&ada, &home, json!({ "name": "Homebody" })).await;
    let hers = create_project(&grace, &graces, json!({ "name": "Homebody" })).await;
    let latest = [&mine, &hers]
        .iter()
        .map(|reply| reply.token().parse::<i64>().expect("numeric token"))
        .max()
        .unwrap_or_default()
        .to_string();
    for (user, workspace, expected) in [
        (&ada, &home, vec![mine.id()]),
        (&ada, &away, vec![]),
        (&grace, &graces, vec![hers.id()]),
    ] {
        for status in ["active", "all"] {
            let path = format!("{}?status={status}", projects_url(workspace));
            let listed = user.client.get_after(&path, &latest).await;
            assert_eq!(column(&listed, "id"), expected, "{path}");
            assert_eq!(listed.body["total"], expected.len(), "{path}");
        }
    }
}

// Malformed input

async fn malformed_json_is_a_400_problem(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    for (path, body) in [
        (projects_url(&workspace), r#"{"name": "#),
        (projects_url(&workspace), r#"{"name": "Web"} trailing"#),
        (projects_url(&workspace), ""),
        ("/api/v1/workspaces".to_owned(), "{name: 'Acme'}"),
        (
            "/api/v1/auth/register".to_owned(),
            r#"{"email": "a@example.com" "name": "A"}"#,
        ),
    ] {
        let reply = user
            .client
            .send(
                user.client
                    .request(Method::POST, &path)
                    .header("Content-Type", "application/json")
                    .body(body),
            )
            .await;
        reply.assert_problem(400, "BAD_REQUEST");
    }
}

async fn wrong_types_unknown_and_missing_fields_are_422(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(&user, &workspace, json!({ "name": "Web" })).await;
    let projects = projects_url(&workspace);
    let project = project_url(&workspace, &created.id());

    for (reply, field) in [
        (
            user.client.post(&projects, json!({ "name": 5 })).await,
            "name",
        ),
        (
            user.client
                .post(&projects, json!({ "name": "Web", "description": ["a"] }))
                .await,
            "description",
        ),
        (
            user.client.patch(&project, json!({ "slug": false })).await,
            "slug",
        ),
        (
            user.client
                .post("/api/v1/workspaces", json!({ "name": { "en": "Acme" } }))
                .await,
            "name",
        ),
        (
            user.client
                .post(&projects, json!({ "name": "Web", "colour": "red" }))
                .await,
            "colour",
        ),
        (
            user.client
                .patch(&project, json!({ "status": "archived" }))
                .await,
            "status",
        ),
    ] {
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), vec![field], "{:#}", reply.body);
    }

    for (reply, missing) in [
        (user.client.post(&projects, json!({})).await, "name"),
        (
            user.client
                .post("/api/v1/workspaces", json!({ "slug": "acme-x" }))
                .await,
            "name",
        ),
        (
            Client::anonymous(&tenet)
                .post("/api/v1/auth/login", json!({ "email": user.email }))
                .await,
            "password",
        ),
    ] {
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields().len(), 1, "{:#}", reply.body);
        assert!(
            reply.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|message| message.contains(missing)),
            "{:#}",
            reply.body
        );
    }
    let body = user.client.post(&projects, json!(["Web"])).await;
    body.assert_problem(422, "VALIDATION_ERROR");
}

async fn a_missing_field_is_named_in_the_errors(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let reply = user
        .client
        .post(
            &projects_url(&workspace),
            json!({ "description": "no name" }),
        )
        .await;
    reply.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(reply.fields(), vec!["name"], "{:#}", reply.body);
}

async fn a_body_that_is_not_json_is_415(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = user
            .client
            .request(Method::POST, &projects_url(&workspace))
            .body(r#"{"name": "Web"}"#);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let reply = user.client.send(request).await;
        reply.assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    // None of them created the project: its slug is still free.
    create_project(&user, &workspace, json!({ "name": "Web" })).await;
}

async fn a_bad_uuid_in_the_path_is_422_naming_the_parameter(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let client = &user.client;
    let bad_workspace = workspace_url("not-a-uuid");
    let bad_project = project_url(&workspace, "12345");
    for (reply, field) in [
        (client.get(&bad_workspace).await, "workspace_id"),
        (
            client.patch(&bad_workspace, json!({ "name": "X" })).await,
            "workspace_id",
        ),
        (client.delete(&bad_workspace).await, "workspace_id"),
        (
            client.get(&projects_url("not-a-uuid")).await,
            "workspace_id",
        ),
        (
            client
                .post(&projects_url("not-a-uuid"), json!({ "name": "X" }))
                .await,
            "workspace_id",
        ),
        (
            client.get(&project_url("nope", &workspace)).await,
            "workspace_id",
        ),
        (client.get(&bad_project).await, "project_id"),
        (
            client.patch(&bad_project, json!({ "name": "X" })).await,
            "project_id",
        ),
        (client.delete(&bad_project).await, "project_id"),
        (
            client
                .post(&format!("{bad_project}/restore"), json!({}))
                .await,
            "project_id",
        ),
    ] {
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), vec![field], "{:#}", reply.body);
    }
}

async fn nul_bytes_and_over_long_or_empty_names_are_422(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let created = create_project(&user, &workspace, json!({ "name": "Web" })).await;
    let projects = projects_url(&workspace);
    let project = project_url(&workspace, &created.id());
    let long = "n".repeat(101);
    for (reply, field) in [
        (
            user.client
                .post(&projects, json!({ "name": "We\u{0}b" }))
                .await,
            "name",
        ),
        (
            user.client.post(&projects, json!({ "name": long })).await,
            "name",
        ),
        (
            user.client.post(&projects, json!({ "name": "   " })).await,
            "name",
        ),
        (
            user.client
                .post(
                    &projects,
                    json!({ "name": "Web 2", "description": "a\u{0}b" }),
                )
                .await,
            "description",
        ),
        (
            user.client
                .post(
                    &projects,
                    json!({ "name": "Web 2", "description": "d".repeat(10_001) }),
                )
                .await,
            "description",
        ),
        (
            user.client
                .patch(&project, json!({ "name": "x\u{0}" }))
                .await,
            "name",
        ),
        (
            user.client.patch(&project, json!({ "name": long })).await,
            "name",
        ),
        (
            user.client
                .post("/api/v1/workspaces", json!({ "name": "Ac\u{0}me" }))
                .await,
            "name",
        ),
        (
            user.client
                .post("/api/v1/workspaces", json!({ "name": long }))
                .await,
            "name",
        ),
        (
            user.client
                .patch(&workspace_url(&workspace), json!({ "name": "\u{0}" }))
                .await,
            "name",
        ),
        (
            Client::anonymous(&tenet)
                .post(
                    "/api/v1/auth/register",
                    json!({ "email": "nul@example.com", "name": "N\u{0}", "password": PASSWORD }),
                )
                .await,
            "name",
        ),
    ] {
        reply.assert_problem(422, "VALIDATION_ERROR");
        assert_eq!(reply.fields(), vec![field], "{:#}", reply.body);
    }
    // A hundred characters is still a name.
    create_project(&user, &workspace, json!({ "name": "n".repeat(100) })).await;
}

async fn a_body_over_256_kib_is_413_problem_json(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let body = json!({ "name": "Big", "description": "d".repeat(300 * 1024) });
    let reply = user.client.post(&projects_url(&workspace), body).await;
    reply.assert_problem(413, "PAYLOAD_TOO_LARGE");
}

/// POSTs `body` with `Transfer-Encoding: chunked` (so the server cannot
/// know its length up front) and answers the status and the raw response.
async fn post_chunked(tenet: &Tenet, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let address = tenet.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    for chunk in body.chunks(16 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close once it has seen enough.
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, response)
}

async fn a_chunked_body_over_256_kib_is_413_problem_json(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let body = json!({ "name": "Big", "description": "d".repeat(256 * 1024) }).to_string();
    let token = user.client.token.clone().expect("token");
    let (status, response) =
        post_chunked(&tenet, &projects_url(&workspace), &token, body.as_bytes()).await;
    assert_eq!(status, 413, "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(
        response.contains("\"code\":\"PAYLOAD_TOO_LARGE\""),
        "{response}"
    );
    create_project(&user, &workspace, json!({ "name": "Big" })).await;
}

async fn missing_or_invalid_bearer_tokens_are_401_with_www_authenticate(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let ada = User::register(&tenet, "ada").await;
    let grace = User::register(&tenet, "grace").await;
    let workspace = ada.workspace("Acme").await;
    let ada_token = ada.client.token.clone().unwrap();
    let grace_token = grace.client.token.clone().unwrap();
    // Ada's claims under Grace's signature.
    let (ada_claims, _) = ada_token.rsplit_once('.').unwrap();
    let (_, grace_signature) = grace_token.rsplit_once('.').unwrap();
    let forged = format!("{ada_claims}.{grace_signature}");

    let anonymous = Client::anonymous(&tenet);
    let callers = [
        anonymous.clone(),
        anonymous.with_token(""),
        anonymous.with_token("garbage"),
        anonymous.with_token("tnt_not_a_real_key"),
        anonymous.with_token(&forged),
    ];
    for caller in &callers {
        for reply in [
            caller.get("/api/v1/auth/me").await,
            caller.get("/api/v1/workspaces").await,
            caller
                .post("/api/v1/workspaces", json!({ "name": "X" }))
                .await,
            caller.get(&workspace_url(&workspace)).await,
            caller.get(&projects_url(&workspace)).await,
            caller
                .post(&projects_url(&workspace), json!({ "name": "X" }))
                .await,
        ] {
            reply.assert_problem(401, "AUTHENTICATION_ERROR");
            assert_eq!(reply.header("www-authenticate").as_deref(), Some("Bearer"));
        }
    }
    let basic = anonymous.send(
        anonymous
            .request(Method::GET, "/api/v1/auth/me")
            .basic_auth(&ada.email, Some(PASSWORD)),
    );
    basic.await.assert_problem(401, "AUTHENTICATION_ERROR");
    // None of the refused creates happened: the slug is still free.
    create_project(&ada, &workspace, json!({ "name": "X" })).await;
}

// Request ids

async fn x_request_id_is_echoed_and_carried_by_the_problem_body(backing: Backing) {
    let tenet = Tenet::start(&backing, &[]).await;
    let user = User::register(&tenet, "ada").await;
    let workspace = user.workspace("Acme").await;
    let client = &user.client;
    let post = |request_id: &str, body: Value| {
        client
            .request(Method::POST, &projects_url(&workspace))
            .header("X-Request-ID", request_id)
            .json(&body)
    };

    let created = client
        .send(post("slice-create-1", json!({ "name": "Web" })))
        .await;
    created.assert_status(201);
    assert_eq!(
        created.header("x-request-id").as_deref(),
        Some("slice-create-1")
    );

    for (request_id, body, status, code) in [
        (
            "slice-conflict-2",
            json!({ "name": "Web" }),
            409,
            "CONFLICT",
        ),
        (
            "slice-invalid-3",
            json!({ "name": "" }),
            422,
            "VALIDATION_ERROR",
        ),
    ] {
        let failed = client.send(post(request_id, body)).await;
        failed.assert_problem(status, code);
        assert_eq!(failed.header("x-request-id").as_deref(), Some(request_id));
        assert_eq!(failed.body["request_id"], request_id);
    }
    let unauthenticated = Client::anonymous(&tenet);
    let refused = unauthenticated
        .send(
            unauthenticated
                .request(Method::POST, "/api/v1/workspaces")
                .header("X-Request-ID", "slice-401-4")
                .json(&json!({ "name": "X" })),
        )
        .await;
    refused.assert_problem(401, "AUTHENTICATION_ERROR");
    assert_eq!(
        refused.header("x-request-id").as_deref(),
        Some("slice-401-4")
    );
    assert_eq!(refused.body["request_id"], "slice-401-4");

    // Without one, the generated id is the one in the body.
    let failed = client
        .post(&projects_url(&workspace), json!({ "name": "Web" }))
        .await;
    failed.assert_problem(409, "CONFLICT");
    assert_eq!(
        failed.header("x-request-id").as_deref(),
        failed.body["request_id"].as_str()
    );
}

in_both_modes!(
    register_then_login_then_me_lists_the_owned_workspace,
    duplicate_email_is_a_conflict_whatever_its_case,
    wrong_password_and_unknown_email_are_the_same_401,
    invalid_email_or_short_password_is_422_naming_the_field,
    creating_a_workspace_answers_201_with_location_etag_and_token,
    listing_my_workspaces_is_paginated_and_shows_only_mine,
    renaming_a_workspace_checks_if_match_and_bumps_the_etag,
    duplicate_workspace_slug_is_a_conflict,
    sixteen_concurrent_workspace_creates_for_one_slug_have_one_winner,
    a_deleted_workspace_is_404_and_frees_its_slug,
    creating_a_project_answers_201_with_location_and_fields,
    duplicate_project_slug_is_a_conflict,
    patching_a_project_with_a_stale_if_match_is_412_and_the_current_one_200,
    archiving_twice_restoring_an_active_project_and_updating_an_archived_one_conflict,
    sixteen_concurrent_project_creates_for_one_slug_have_one_winner,
    bad_limits_offsets_and_sorts_are_422_naming_the_parameter,
    search_matches_every_word_in_any_order_and_case_including_description,
    every_project_command_is_readable_with_its_consistency_token,
    garbage_consistency_tokens_are_400_and_future_ones_412,
    another_tenant_gets_404_on_every_workspace_and_project_route,
    a_project_requested_under_another_workspace_is_404,
    malformed_json_is_a_400_problem,
    wrong_types_unknown_and_missing_fields_are_422,
    a_body_that_is_not_json_is_415,
    a_bad_uuid_in_the_path_is_422_naming_the_parameter,
    nul_bytes_and_over_long_or_empty_names_are_422,
    a_chunked_body_over_256_kib_is_413_problem_json,
    missing_or_invalid_bearer_tokens_are_401_with_www_authenticate,
    x_request_id_is_echoed_and_carried_by_the_problem_body,
    deleting_a_project_archives_it_and_restore_brings_it_back,
    project_pages_follow_limit_and_offset,
    sorting_by_name_is_correct_and_stable_in_both_directions,
    project_lists_show_only_their_own_workspace_projects,
    a_body_over_256_kib_is_413_problem_json,
    a_missing_field_is_named_in_the_errors,
);

//! Identity self-service through the real binary, in both modes: renaming
//! oneself, changing one's password (every other session ends on the next
//! request), listing and ending one's sessions (never another user's), the
//! effective scopes `/auth/me` shows per workspace; and access tokens from
//! an external identity provider (RS256 and ES256, against a JWKS file or a
//! PEM), with keys the test makes.

use serde_json::{Value, json};

use crate::common::{Backing, Client, PASSWORD, Tenet, User, add_member, issue_key, start};

const SESSIONS: &str = "/api/v1/auth/sessions";
const NEW_PASSWORD: &str = "a much longer passphrase now";

/// Logs in as `email` with `user_agent`; the token pair.
async fn login_as(tenet: &Tenet, email: &str, password: &str, user_agent: &str) -> Value {
    let client = Client::anonymous(tenet);
    let reply = client
        .send(
            client
                .request(reqwest::Method::POST, "/api/v1/auth/login")
                .header("user-agent", user_agent)
                .json(&json!({ "email": email, "password": password })),
        )
        .await;
    reply.assert_status(200).clone()
}

fn bearer(tenet: &Tenet, pair: &Value) -> Client {
    Client::anonymous(tenet).with_token(pair["access_token"].as_str().expect("access token"))
}

async fn refresh(tenet: &Tenet, pair: &Value) -> crate::common::Reply {
    Client::anonymous(tenet)
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await
}

async fn renaming_oneself(backing: Backing) {
    let tenet = start(&backing).await;
    let ada = User::register(&tenet, "ada").await;

    let renamed = ada
        .client
        .patch("/api/v1/auth/me", json!({ "name": "Ada Lovelace" }))
        .await;
    assert_eq!(renamed.assert_status(200)["name"], "Ada Lovelace");
    let me = ada
        .client
        .get_after("/api/v1/auth/me", &renamed.token())
        .await;
    assert_eq!(me.assert_status(200)["name"], "Ada Lovelace");

    // Merge patch: the name cannot be cleared; left out it is unchanged.
    let cleared = ada
        .client
        .patch("/api/v1/auth/me", json!({ "name": null }))
        .await;
    cleared.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(cleared.fields(), ["name"]);
    let empty = ada
        .client
        .patch("/api/v1/auth/me", json!({ "name": " " }))
        .await;
    assert_eq!(empty.fields(), ["name"]);
    let unchanged = ada.client.patch("/api/v1/auth/me", json!({})).await;
    assert_eq!(unchanged.assert_status(200)["name"], "Ada Lovelace");
    // As a merge patch document too.
    let merge = ada
        .client
        .send(
            ada.client
                .request(reqwest::Method::PATCH, "/api/v1/auth/me")
                .header("content-type", "application/merge-patch+json")
                .body(r#"{"name":"Countess"}"#),
        )
        .await;
    assert_eq!(merge.assert_status(200)["name"], "Countess");
    let anonymous = Client::anonymous(&tenet)
        .patch("/api/v1/auth/me", json!({ "name": "x" }))
        .await;
    anonymous.assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn changing_the_password_ends_every_other_session(backing: Backing) {
    let tenet = start(&backing).await;
    let ada = User::register(&tenet, "ada").await;
    let here = login_as(&tenet, &ada.email, PASSWORD, "laptop").await;
    let there = login_as(&tenet, &ada.email, PASSWORD, "phone").await;
    let board = ada.workspace("board").await;
    let key = issue_key(&bearer(&tenet, &here), &board, "ci", &["tasks:read"]).await;

    let wrong = bearer(&tenet, &here)
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": "not the password", "new_password": NEW_PASSWORD }),
        )
        .await;
    wrong.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(wrong.fields(), ["current_password"]);
    let short = bearer(&tenet, &here)
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": "short" }),
        )
        .await;
    assert_eq!(short.fields(), ["new_password"]);
    // Nothing changed so far.
    bearer(&tenet, &there)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);

    let changed = bearer(&tenet, &here)
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await;
    changed.assert_status(200);

    // The other session is dead at once: its access and refresh tokens.
    bearer(&tenet, &there)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    refresh(&tenet, &there)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // The session the change came from, and the account's API keys, work.
    bearer(&tenet, &here)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    key.client.get("/api/v1/auth/me").await.assert_status(200);
    let renewed = refresh(&tenet, &here).await;
    bearer(&tenet, renewed.assert_status(200))
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    // Only the new password logs in.
    crate::common::login(&tenet, &ada.email, PASSWORD)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    login_as(&tenet, &ada.email, NEW_PASSWORD, "tablet").await;

    // An API key cannot change the password.
    key.client
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": NEW_PASSWORD, "new_password": PASSWORD }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
}

async fn sessions_are_listed_and_ended_by_their_owner_only(backing: Backing) {
    let tenet = start(&backing).await;
    let ada = User::register(&tenet, "ada").await;
    let laptop = login_as(&tenet, &ada.email, PASSWORD, "Laptop/1.0").await;
    let phone = login_as(&tenet, &ada.email, PASSWORD, "Phone/2.0").await;
    let eve = User::register(&tenet, "eve").await;

    let listed = bearer(&tenet, &laptop).get(SESSIONS).await;
    let page = listed.assert_status(200);
    // The fixture's login, the laptop's and the phone's.
    assert_eq!(page["total"], 3, "{page:#}");
    let items = page["items"].as_array().expect("items");
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Laptop/1.0");
    let phone_session = items
        .iter()
        .find(|s| s["user_agent"] == "Phone/2.0")
        .expect("the phone's session")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for session in items {
        assert!(session["created_at"].is_string() && session["last_refreshed_at"].is_string());
        assert!(session["expires_at"].is_string());
    }

    // Another user's session: as if it did not exist, and still working.
    let foreign = eve
        .client
        .delete(&format!("{SESSIONS}/{phone_session}"))
        .await;
    foreign.assert_problem(404, "NOT_FOUND");
    bearer(&tenet, &phone)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    let theirs = eve.client.get(SESSIONS).await;
    assert_eq!(theirs.assert_status(200)["total"], 1);
    assert!(!theirs.body.to_string().contains(&phone_session));
    let unknown = ada
        .client
        .delete(&format!("{SESSIONS}/{}", uuid::Uuid::now_v7()))
        .await;
    unknown.assert_problem(404, "NOT_FOUND");
    let malformed = ada.client.delete(&format!("{SESSIONS}/nope")).await;
    assert_eq!(malformed.fields(), ["session_id"]);

    // Ended by its owner: refused on the next request, gone from the list.
    let ended = bearer(&tenet, &laptop)
        .delete(&format!("{SESSIONS}/{phone_session}"))
        .await;
    ended.assert_status(200);
    bearer(&tenet, &phone)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    refresh(&tenet, &phone)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    let listed = bearer(&tenet, &laptop).get(SESSIONS).await;
    assert_eq!(listed.assert_status(200)["total"], 2);
    Client::anonymous(&tenet)
        .get(SESSIONS)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn me_shows_the_effective_scopes_per_workspace(backing: Backing) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let viewer = User::register(&tenet, "viewer").await;
    let board = owner.workspace("board").await;
    let own = viewer.workspace("own").await;
    add_member(&owner.client, &board, &viewer.email, "viewer")
        .await
        .assert_status(201);

    let me = viewer.client.get("/api/v1/auth/me").await;
    let workspaces = me.assert_status(200)["workspaces"]
        .as_array()
        .expect("workspaces")
        .clone();
    let scopes_in = |id: &str| -> Vec<String> {
        workspaces
            .iter()
            .find(|w| w["id"] == id)
            .expect("the workspace")["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .map(|s| s.as_str().expect("scope").to_owned())
            .collect()
    };
    assert_eq!(scopes_in(&own), ["*"]);
    let read_only = scopes_in(&board);
    assert!(
        read_only.contains(&"tasks:read".to_owned()),
        "{read_only:?}"
    );
    assert!(
        read_only.iter().all(|s| s.ends_with(":read")),
        "{read_only:?}"
    );
    assert!(!read_only.contains(&"audit:read".to_owned()));
    assert_eq!(
        workspaces.iter().find(|w| w["id"] == board).expect("board")["role"],
        "viewer"
    );

    // A key: its own workspace, with what it holds of its issuer's role.
    let key = issue_key(
        &owner.client,
        &board,
        "ci",
        &["tasks:read", "projects:write"],
    )
    .await;
    let seen = key.client.get("/api/v1/auth/me").await;
    let workspaces = seen.assert_status(200)["workspaces"].clone();
    assert_eq!(workspaces.as_array().map(Vec::len), Some(1));
    let mut scopes: Vec<String> = workspaces[0]["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|s| s.as_str().expect("scope").to_owned())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["projects:write", "tasks:read"]);
}

in_both_modes!(
    renaming_oneself,
    changing_the_password_ends_every_other_session,
    sessions_are_listed_and_ended_by_their_owner_only,
    me_shows_the_effective_scopes_per_workspace,
);

//! Identity self-service through the real binary, in both modes: renaming
//! oneself, changing one's password (every other session ends on the next
//! request), listing and ending one's sessions (never another user's), the
//! effective scopes `/auth/me` shows per workspace; and access tokens from
//! an external identity provider (RS256 and ES256, against a JWKS file or a
//! PEM), with keys the test makes.

use serde_json::{Value, json};

use crate::common::{
    Backing, Client, PASSWORD, Tenet, User, add_member, issue_key, start, start_with,
};

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
    wrong.assert_problem(403, "WRONG_PASSWORD");
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

/// A key pair made for the test by `openssl`: the private key (PKCS#8
/// PEM) and the public key (PEM).
struct KeyPair {
    private: Vec<u8>,
    public: Vec<u8>,
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_pair(dir: &std::path::Path, name: &str, generate: &[&str]) -> KeyPair {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let private_path = private.to_str().expect("path");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(generate);
    args.extend_from_slice(&["-out", private_path]);
    openssl(&args);
    openssl(&[
        "pkey",
        "-in",
        private_path,
        "-pubout",
        "-out",
        public.to_str().expect("path"),
    ]);
    KeyPair {
        private: std::fs::read(private).expect("private key"),
        public: std::fs::read(public).expect("public key"),
    }
}

fn rsa_pair(dir: &std::path::Path, name: &str) -> KeyPair {
    key_pair(
        dir,
        name,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

fn ec_pair(dir: &std::path::Path, name: &str) -> KeyPair {
    key_pair(
        dir,
        name,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "tenet-api";

/// A token as the provider would sign it: `claims` over these defaults.
fn external_token(
    key: &KeyPair,
    algorithm: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    claims: Value,
) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut body = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "idp|42",
        "iat": now, "exp": now + 600,
    });
    for (field, value) in claims.as_object().expect("claims") {
        body[field] = value.clone();
    }
    let encoding = match algorithm {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&key.private),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&key.private),
    }
    .expect("encoding key");
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &body, &encoding).expect("signed")
}

fn oidc_env<'a>(keys: (&'a str, &'a str), auto_create: &'a str) -> [(&'a str, &'a str); 4] {
    [
        keys,
        ("TENET_OIDC_ISSUER", ISSUER),
        ("TENET_OIDC_AUDIENCE", AUDIENCE),
        ("TENET_OIDC_AUTO_CREATE", auto_create),
    ]
}

async fn external_tokens_act_as_their_user(backing: Backing) {
    let dir = tempfile::tempdir().expect("dir");
    let signer = rsa_pair(dir.path(), "idp");
    let stranger = rsa_pair(dir.path(), "stranger");
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(&signer.private).expect("key");
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::RS256)
            .expect("jwk");
    jwk.common.key_id = Some("k1".to_owned());
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).expect("jwks");
    let jwks = jwks.to_str().expect("path").to_owned();
    let env = oidc_env(("TENET_OIDC_JWKS_FILE", &jwks), "true");
    let tenet = start_with(&backing, &env).await;
    let rs256 = jsonwebtoken::Algorithm::RS256;
    let as_external = |claims: Value| {
        Client::anonymous(&tenet).with_token(&external_token(&signer, rs256, Some("k1"), claims))
    };

    // First sight: an account is created with the token's email and name.
    let newcomer = as_external(json!({ "email": "New.Comer@Example.com", "name": "New Comer" }));
    let me = newcomer.get("/api/v1/auth/me").await;
    let first = me.assert_status(200).clone();
    assert_eq!(first["email"], "new.comer@example.com");
    assert_eq!(first["name"], "New Comer");
    let again = newcomer.get("/api/v1/auth/me").await;
    assert_eq!(again.assert_status(200)["id"], first["id"]);
    // It acts like any user: its workspace, its scopes there.
    let created = newcomer
        .post("/api/v1/workspaces", json!({ "name": "From the IdP" }))
        .await;
    created.assert_status(201);
    // It has no password to log in with, nor a session to change one from.
    crate::common::login(&tenet, "new.comer@example.com", "")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    newcomer
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": "x", "new_password": NEW_PASSWORD }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    // An existing account is found by its email.
    let ada = User::register(&tenet, "ada").await;
    let mapped = as_external(json!({ "email": ada.email }))
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(mapped.assert_status(200)["id"], ada.id.as_str());
    // Tenet's own tokens still work beside the provider's.
    ada.client.get("/api/v1/auth/me").await.assert_status(200);

    let now = chrono::Utc::now().timestamp();
    let email = json!("someone@example.com");
    for (claims, kid, key, code) in [
        (
            json!({ "email": email, "exp": now - 3600, "iat": now - 7200 }),
            Some("k1"),
            &signer,
            "TOKEN_EXPIRED",
        ),
        (
            json!({ "email": email, "iss": "https://evil.example.com" }),
            Some("k1"),
            &signer,
            "TOKEN_ISSUER_INVALID",
        ),
        (
            json!({ "email": email, "aud": "another-api" }),
            Some("k1"),
            &signer,
            "TOKEN_AUDIENCE_INVALID",
        ),
        (
            json!({ "email": email }),
            Some("k2"),
            &signer,
            "TOKEN_KEY_UNKNOWN",
        ),
        // The right kid, the wrong signature.
        (
            json!({ "email": email }),
            Some("k1"),
            &stranger,
            "AUTHENTICATION_ERROR",
        ),
        // No email to name an account by.
        (json!({}), Some("k1"), &signer, "AUTHENTICATION_ERROR"),
        (
            json!({ "email": email, "email_verified": false }),
            Some("k1"),
            &signer,
            "AUTHENTICATION_ERROR",
        ),
    ] {
        let token = external_token(key, rs256, kid, claims.clone());
        let reply = Client::anonymous(&tenet)
            .with_token(&token)
            .get("/api/v1/auth/me")
            .await;
        reply.assert_problem(401, code);
    }
    // None of the refused tokens created an account.
    let found = as_external(json!({ "email": "someone@example.com" }))
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(found.assert_status(200)["name"], "someone@example.com");
}

async fn unknown_external_identities_are_refused_without_auto_create(backing: Backing) {
    let dir = tempfile::tempdir().expect("dir");
    let signer = ec_pair(dir.path(), "idp");
    let pem = dir.path().join("provider.pem");
    std::fs::write(&pem, &signer.public).expect("pem");
    let pem = pem.to_str().expect("path").to_owned();
    let env = oidc_env(("TENET_OIDC_PEM", &pem), "false");
    let tenet = start_with(&backing, &env).await;
    let es256 = jsonwebtoken::Algorithm::ES256;

    let unknown = external_token(
        &signer,
        es256,
        None,
        json!({ "email": "nobody@example.com" }),
    );
    Client::anonymous(&tenet)
        .with_token(&unknown)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "ACCOUNT_UNKNOWN");
    let ada = User::register(&tenet, "ada").await;
    let board = ada.workspace("board").await;
    let known = external_token(&signer, es256, None, json!({ "email": ada.email }));
    let client = Client::anonymous(&tenet).with_token(&known);
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.assert_status(200)["id"], ada.id.as_str());
    assert_eq!(me.body["workspaces"][0]["id"], board.as_str());
    // An RS256 token cannot pass for the ES256 key's.
    let rsa = rsa_pair(dir.path(), "other");
    let confused = external_token(
        &rsa,
        jsonwebtoken::Algorithm::RS256,
        None,
        json!({ "email": ada.email }),
    );
    Client::anonymous(&tenet)
        .with_token(&confused)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "TOKEN_KEY_UNKNOWN");
}

in_both_modes!(
    external_tokens_act_as_their_user,
    unknown_external_identities_are_refused_without_auto_create,
    renaming_oneself,
    changing_the_password_ends_every_other_session,
    sessions_are_listed_and_ended_by_their_owner_only,
    me_shows_the_effective_scopes_per_workspace,
);

/// Two processes of one deployment (shared Postgres and NATS): a password
/// changed through one ends the other sessions on the other at once, and a
/// session ended through one is refused by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_every_instance() {
    let Some(backing) = Backing::new(crate::common::Mode::Distributed).await else {
        return;
    };
    let first = start(&backing).await;
    let second = start(&backing).await;
    let ada = User::register(&first, "ada").await;
    let here = login_as(&first, &ada.email, PASSWORD, "laptop").await;
    let there = login_as(&first, &ada.email, PASSWORD, "phone").await;
    let elsewhere = login_as(&first, &ada.email, PASSWORD, "tablet").await;
    bearer(&second, &there)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);

    let phone = bearer(&second, &there).get(SESSIONS).await;
    let phone = phone.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["current"] == true)
        .expect("current")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    bearer(&first, &here)
        .delete(&format!("{SESSIONS}/{phone}"))
        .await
        .assert_status(200);
    bearer(&second, &there)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");

    bearer(&first, &here)
        .post(
            "/api/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await
        .assert_status(200);
    bearer(&second, &elsewhere)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    bearer(&second, &here)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
}

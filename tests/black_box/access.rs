//! Access control as a client meets it: members and roles, API keys,
//! sessions and refresh tokens, JWT validation, platform admins, rate
//! limits and security headers, in both modes (and across two processes).

use crate::common::{
    ApiKey, Backing, Client, Mode, Reply, Tenet, User, add_member, issue_key, keys_url,
    members_url, projects_url, start_with,
};
use base64::Engine;
use serde_json::{Value, json};

/// A signing secret the tests know, so they can forge tokens with it.
const SECRET: &str = "access-tests-signing-secret-0123456789";

/// The signing secret every service here starts with.
const KNOWN_SECRET: (&str, &str) = ("TENET_JWT_SECRET", SECRET);

async fn members_can_be_added_listed_changed_and_removed(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let ada = User::register(&tenet, "ada").await;
    let workspace = owner.workspace("Team").await;

    let added = add_member(&owner.client, &workspace, &ada.email, "member").await;
    assert_eq!(added.assert_status(201)["role"], "member");
    assert_eq!(added.body["email"], ada.email.as_str());
    assert!(added.header("location").unwrap().ends_with(&ada.id));
    add_member(&owner.client, &workspace, &ada.email, "viewer")
        .await
        .assert_problem(409, "CONFLICT");

    let listed = owner.client.get(&members_url(&workspace)).await;
    let list = listed.assert_status(200);
    assert_eq!(list["total"], 2);
    let roles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"owner") && roles.contains(&"member"));

    // Ada sees the workspace now.
    ada.client
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);

    let promoted = owner
        .client
        .patch(
            &format!("{}/{}", members_url(&workspace), ada.id),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(promoted.assert_status(200)["role"], "admin");

    owner
        .client
        .delete(&format!("{}/{}", members_url(&workspace), ada.id))
        .await
        .assert_status(200);
    // Her very next request is refused.
    ada.client
        .get(&projects_url(&workspace))
        .await
        .assert_problem(404, "NOT_FOUND");
}

async fn adding_an_unknown_email_names_the_field(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Team").await;
    let unknown = owner
        .client
        .post(
            &members_url(&workspace),
            json!({ "email": "nobody@example.com", "role": "member" }),
        )
        .await;
    unknown.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(unknown.fields(), vec!["email"]);
    let bad_role = owner
        .client
        .post(
            &members_url(&workspace),
            json!({ "email": owner.email, "role": "emperor" }),
        )
        .await;
    bad_role.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad_role.fields(), vec!["role"]);
}

async fn the_last_owner_stays_even_when_two_owners_step_down_at_once(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let first = User::register(&tenet, "first").await;
    let second = User::register(&tenet, "second").await;
    let workspace = first.workspace("Team").await;
    add_member(&first.client, &workspace, &second.email, "owner")
        .await
        .assert_status(201);

    // Each owner demotes the other at the same moment: one must lose.
    let demote = |by: &User, whom: &User| {
        let client = by.client.clone();
        let path = format!("{}/{}", members_url(&workspace), whom.id);
        async move { client.patch(&path, json!({ "role": "member" })).await }
    };
    let (a, b) = tokio::join!(demote(&first, &second), demote(&second, &first));
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&200), "{statuses:?}");
    // The loser is refused as the last owner's demoter (409) or, demoted
    // already, as no longer allowed to manage members (403).
    assert!(
        statuses.contains(&409) || statuses.contains(&403),
        "one demotion must fail: {statuses:?} {:#} {:#}",
        a.body,
        b.body
    );
    let list = first.client.get(&members_url(&workspace)).await;
    let survivor = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "owner")
        .count();
    let list = if survivor == 0 {
        second.client.get(&members_url(&workspace)).await
    } else {
        list
    };
    let owners = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "owner")
        .count();
    assert_eq!(owners, 1);

    // The last owner can neither be demoted nor removed.
    let owner_id = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "owner")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = if owner_id == first.id {
        &first
    } else {
        &second
    };
    last.client
        .patch(
            &format!("{}/{owner_id}", members_url(&workspace)),
            json!({ "role": "admin" }),
        )
        .await
        .assert_problem(409, "CONFLICT");
    last.client
        .delete(&format!("{}/{owner_id}", members_url(&workspace)))
        .await
        .assert_problem(409, "CONFLICT");
}

async fn roles_limit_what_members_may_do(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let admin = User::register(&tenet, "admin").await;
    let viewer = User::register(&tenet, "viewer").await;
    let workspace = owner.workspace("Team").await;
    add_member(&owner.client, &workspace, &admin.email, "admin")
        .await
        .assert_status(201);
    add_member(&owner.client, &workspace, &viewer.email, "viewer")
        .await
        .assert_status(201);

    viewer
        .client
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    let refused = viewer
        .client
        .post(&projects_url(&workspace), json!({ "name": "Nope" }))
        .await;
    refused.assert_problem(403, "AUTHORIZATION_ERROR");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("projects:write")
    );

    // Admins do almost everything, but neither delete the workspace nor
    // touch the owner role.
    admin
        .client
        .post(&projects_url(&workspace), json!({ "name": "Admin's" }))
        .await
        .assert_status(201);
    admin
        .client
        .delete(&format!("/api/v1/workspaces/{workspace}"))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let newcomer = User::register(&tenet, "newcomer").await;
    add_member(&admin.client, &workspace, &newcomer.email, "owner")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    admin
        .client
        .patch(
            &format!("{}/{}", members_url(&workspace), owner.id),
            json!({ "role": "member" }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    // Any member may leave; a viewer may not remove someone else.
    viewer
        .client
        .delete(&format!("{}/{}", members_url(&workspace), admin.id))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    viewer
        .client
        .delete(&format!("{}/{}", members_url(&workspace), viewer.id))
        .await
        .assert_status(200);
}

async fn api_keys_carry_a_subset_of_their_issuers_scopes(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let member = User::register(&tenet, "member").await;
    let workspace = owner.workspace("Team").await;
    add_member(&owner.client, &workspace, &member.email, "member")
        .await
        .assert_status(201);

    // A member holds no members:write, so cannot put it on a key.
    member
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "k", "scopes": ["projects:read"] }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let ApiKey {
        client: reader,
        issued,
    } = issue_key(&owner.client, &workspace, "key", &["projects:read"]).await;
    let secret = issued.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("tnt_") && secret.len() >= 4 + 43);
    assert_eq!(issued.body["scopes"], json!(["projects:read"]));
    assert!(secret.starts_with(issued.body["prefix"].as_str().unwrap()));

    reader
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    reader
        .post(&projects_url(&workspace), json!({ "name": "Nope" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    // Scopes outside the grammar, or none, are refused; so is expiry in the past.
    let bad = owner
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "k", "scopes": ["projects:fly"] }),
        )
        .await;
    bad.assert_problem(422, "VALIDATION_ERROR");
    assert_eq!(bad.fields(), vec!["scopes[0]"]);
    owner
        .client
        .post(&keys_url(&workspace), json!({ "name": "k", "scopes": [] }))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    owner
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "k", "scopes": ["*"], "expires_at": "2001-01-01T00:00:00Z" }),
        )
        .await
        .assert_problem(422, "VALIDATION_ERROR");

    // Listed without secrets.
    let listed = owner.client.get(&keys_url(&workspace)).await;
    let text = listed.body.to_string();
    assert!(!text.contains(secret), "a secret leaked into the list");
    assert_eq!(listed.body["total"], 1);
    assert!(listed.body["items"][0].get("secret").is_none());
}

async fn a_key_cannot_carry_more_than_its_issuer_holds_and_shows_when_last_used(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let admin = User::register(&tenet, "admin").await;
    let workspace = owner.workspace("Team").await;
    add_member(&owner.client, &workspace, &admin.email, "admin")
        .await
        .assert_status(201);
    // An admin holds everything but deleting the workspace: not `*`.
    let refused = admin
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "all", "scopes": ["*"] }),
        )
        .await;
    refused.assert_problem(403, "AUTHORIZATION_ERROR");
    admin
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "ws", "scopes": ["workspace:delete"] }),
        )
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    let ApiKey {
        client: key,
        issued,
    } = issue_key(
        &admin.client,
        &workspace,
        "key",
        &["projects:*", "tasks:read"],
    )
    .await;
    let listed = owner.client.get(&keys_url(&workspace)).await;
    let before = &listed.assert_status(200)["items"][0];
    assert_eq!(before["last_used_at"], Value::Null);
    key.get(&projects_url(&workspace)).await.assert_status(200);
    // Use is recorded off the request's path: soon, not at once.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = owner.client.get(&keys_url(&workspace)).await;
        let used = listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == issued.body["id"])
            .unwrap()
            .clone();
        if used["last_used_at"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{used:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn the_per_principal_limit_answers_429_with_retry_after(backing: Backing) {
    let tenet = Tenet::start(&backing, &[("TENET_RATE_LIMIT", "5")]).await;
    let user = User::register(&tenet, "busy").await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let reply = user.client.get("/api/v1/auth/me").await;
        statuses.push(reply.status);
        if reply.status == 429 {
            reply.assert_problem(429, "RATE_LIMITED");
            let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait));
            assert_eq!(reply.header("x-ratelimit-remaining").as_deref(), Some("0"));
            break;
        }
    }
    // Login and registration count per address, apart.
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
    // Invented API keys get no fresh bucket: they count against the address.
    let anonymous = Client::anonymous(&tenet);
    let mut limited = false;
    for n in 0..8 {
        let reply = anonymous
            .with_token(&format!("tnt_invented{n}"))
            .get("/api/v1/auth/me")
            .await;
        if reply.status == 429 {
            limited = true;
            break;
        }
        reply.assert_problem(401, "AUTHENTICATION_ERROR");
    }
    assert!(limited, "rotating invented keys is rate limited");
}

async fn a_key_is_bound_to_its_workspace(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let mine = owner.workspace("Mine").await;
    let other = owner.workspace("Other").await;
    let ApiKey { client: key, .. } = issue_key(&owner.client, &mine, "key", &["*"]).await;
    key.get(&projects_url(&mine)).await.assert_status(200);
    // Its issuer owns the other workspace too, but the key is not for it.
    key.get(&projects_url(&other))
        .await
        .assert_problem(404, "NOT_FOUND");
    let me = key.get("/api/v1/auth/me").await;
    let listed: Vec<&str> = me.body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![mine.as_str()]);
    // Keys cannot create workspaces.
    key.post("/api/v1/workspaces", json!({ "name": "By key" }))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
}

async fn a_revoked_or_expired_key_is_refused_on_the_next_request(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&tenet, "owner").await;
    let workspace = owner.workspace("Team").await;
    let ApiKey {
        client: key,
        issued,
    } = issue_key(&owner.client, &workspace, "key", &["projects:read"]).await;
    key.get(&projects_url(&workspace)).await.assert_status(200);
    let id = issued.body["id"].as_str().unwrap();
    owner
        .client
        .delete(&format!("{}/{id}", keys_url(&workspace)))
        .await
        .assert_status(200);
    key.get(&projects_url(&workspace))
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // Revoking again is harmless.
    owner
        .client
        .delete(&format!("{}/{id}", keys_url(&workspace)))
        .await
        .assert_status(200);
    let revoked = owner
        .client
        .get(&format!("{}?status=revoked", keys_url(&workspace)))
        .await;
    assert_eq!(revoked.body["total"], 1);

    // A key whose issuer leaves the workspace stops working too.
    let admin = User::register(&tenet, "admin").await;
    add_member(&owner.client, &workspace, &admin.email, "admin")
        .await
        .assert_status(201);
    let ApiKey {
        client: admins_key, ..
    } = issue_key(&admin.client, &workspace, "key", &["projects:read"]).await;
    admins_key
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    owner
        .client
        .delete(&format!("{}/{}", members_url(&workspace), admin.id))
        .await
        .assert_status(200);
    admins_key
        .get(&projects_url(&workspace))
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");

    // An expiry that passes ends it without any revocation.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let issued = owner
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "short", "scopes": ["projects:read"], "expires_at": soon }),
        )
        .await;
    let short = owner
        .client
        .with_token(issued.assert_status(201)["secret"].as_str().unwrap());
    short
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = short.get(&projects_url(&workspace)).await;
        if reply.status == 401 {
            reply.assert_problem(401, "AUTHENTICATION_ERROR");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key did not expire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn refresh(tenet: &Tenet, token: &str) -> Reply {
    Client::anonymous(tenet)
        .post("/api/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let user = User::register(&tenet, "ada").await;
    let first = user.new_session(&tenet).await;
    let old = first["refresh_token"].as_str().unwrap().to_owned();

    let rotated = refresh(&tenet, &old).await;
    let second = rotated.assert_status(200).clone();
    let new = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let access = Client::anonymous(&tenet).with_token(second["access_token"].as_str().unwrap());
    access.get("/api/v1/auth/me").await.assert_status(200);

    // The old token again: theft detected, the whole family is revoked.
    refresh(&tenet, &old)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    refresh(&tenet, &new)
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    access
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // Other sessions of the user are untouched.
    user.client.get("/api/v1/auth/me").await.assert_status(200);

    refresh(&tenet, "rt_not-a-token")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    refresh(&tenet, "")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

async fn logging_out_ends_the_session(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let user = User::register(&tenet, "ada").await;
    let pair = user.new_session(&tenet).await;
    let access = Client::anonymous(&tenet).with_token(pair["access_token"].as_str().unwrap());
    access
        .post("/api/v1/auth/logout", json!({}))
        .await
        .assert_status(200);
    access
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    refresh(&tenet, pair["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

fn encode(header: &Value, claims: &Value, signature: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{signature}",
        engine.encode(header.to_string()),
        engine.encode(claims.to_string())
    )
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn forged_and_stale_tokens_are_refused(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let user = User::register(&tenet, "ada").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, exp: i64| json!({ "sub": user.id, "iat": iat, "exp": exp });
    // A control: a token signed with the real secret works.
    let good = sign(&claims(now, now + 600), SECRET.as_bytes());
    let anonymous = Client::anonymous(&tenet);
    anonymous
        .with_token(&good)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);

    let public_key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    let mut tampered: Vec<String> = good.split('.').map(str::to_owned).collect();
    let other = User::register(&tenet, "mallory").await;
    tampered[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({ "sub": other.id, "iat": now, "exp": now + 600 }).to_string());
    let forged = [
        (
            "alg none",
            encode(
                &json!({ "alg": "none", "typ": "JWT" }),
                &claims(now, now + 600),
                "",
            ),
        ),
        (
            "HS256 keyed with a public key",
            sign(&claims(now, now + 600), public_key.as_bytes()),
        ),
        (
            "a wrong secret",
            sign(&claims(now, now + 600), b"some-other-secret-of-32-bytes-00"),
        ),
        ("a tampered payload", tampered.join(".")),
        (
            "expired",
            sign(&claims(now - 3600, now - 1800), SECRET.as_bytes()),
        ),
        (
            "not yet valid",
            sign(
                &json!({ "sub": user.id, "iat": now, "nbf": now + 3600, "exp": now + 7200 }),
                SECRET.as_bytes(),
            ),
        ),
        (
            "RS256 header",
            encode(
                &json!({ "alg": "RS256", "typ": "JWT" }),
                &claims(now, now + 600),
                "c2lnbmF0dXJl",
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in forged {
        let reply = anonymous.with_token(&token).get("/api/v1/auth/me").await;
        assert_eq!(reply.status, 401, "{what}: {:#}", reply.body);
        reply.assert_problem(401, "AUTHENTICATION_ERROR");
        assert_eq!(
            reply.header("www-authenticate").as_deref(),
            Some("Bearer"),
            "{what}"
        );
    }
}

async fn a_configured_issuer_and_audience_are_required(backing: Backing) {
    let tenet = start_with(
        &backing,
        &[
            KNOWN_SECRET,
            ("TENET_JWT_ISSUER", "https://tenet.example"),
            ("TENET_JWT_AUDIENCE", "tenet-api"),
        ],
    )
    .await;
    let user = User::register(&tenet, "ada").await;
    user.client.get("/api/v1/auth/me").await.assert_status(200);
    let now = chrono::Utc::now().timestamp();
    let token = |iss: &str, aud: &str| {
        sign(
            &json!({ "sub": user.id, "iat": now, "exp": now + 600, "iss": iss, "aud": aud }),
            SECRET.as_bytes(),
        )
    };
    let anonymous = Client::anonymous(&tenet);
    anonymous
        .with_token(&token("https://tenet.example", "tenet-api"))
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    for (what, forged) in [
        ("a wrong issuer", token("https://evil.example", "tenet-api")),
        (
            "a wrong audience",
            token("https://tenet.example", "another-api"),
        ),
        (
            "no issuer or audience",
            sign(
                &json!({ "sub": user.id, "iat": now, "exp": now + 600 }),
                SECRET.as_bytes(),
            ),
        ),
    ] {
        let reply = anonymous.with_token(&forged).get("/api/v1/auth/me").await;
        assert_eq!(reply.status, 401, "{what}");
        reply.assert_problem(401, "AUTHENTICATION_ERROR");
    }
}

async fn the_eleventh_login_in_a_minute_is_rate_limited(backing: Backing) {
    let tenet = Tenet::start(&backing, &[("TENET_AUTH_RATE_LIMIT", "10")]).await;
    let anonymous = Client::anonymous(&tenet);
    let body = json!({ "email": "nobody@example.com", "password": "wrong password" });
    for n in 1..=10 {
        let reply = anonymous.post("/api/v1/auth/login", body.clone()).await;
        assert_eq!(reply.status, 401, "login {n}");
        assert_eq!(reply.header("x-ratelimit-limit").as_deref(), Some("10"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some((10 - n).to_string())
        );
    }
    let limited = anonymous.post("/api/v1/auth/login", body).await;
    limited.assert_problem(429, "RATE_LIMITED");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        limited.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
}

async fn every_response_carries_rate_limit_and_security_headers(backing: Backing) {
    let tenet = Tenet::start(&backing, &[("TENET_RATE_LIMIT", "600")]).await;
    let user = User::register(&tenet, "ada").await;
    let me = user.client.get("/api/v1/auth/me").await;
    assert_eq!(me.header("x-ratelimit-limit").as_deref(), Some("600"));
    assert!(
        me.header("x-ratelimit-remaining")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            < 600
    );
    assert!(me.header("x-ratelimit-reset").is_some());
    assert_eq!(
        me.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(me.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(me.header("cache-control").as_deref(), Some("no-store"));
    // Errors too.
    let missing = Client::anonymous(&tenet).get("/api/v1/auth/me").await;
    assert_eq!(
        missing.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(missing.header("x-ratelimit-limit").is_some());

    let docs = tenet.http.get(tenet.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // No CORS unless configured.
    let preflight = tenet
        .http
        .request(reqwest::Method::OPTIONS, tenet.url("/api/v1/auth/me"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn configured_origins_are_allowed_by_cors(backing: Backing) {
    let tenet = Tenet::start(&backing, &[("TENET_CORS_ORIGINS", "https://app.example")]).await;
    let allowed = tenet
        .http
        .request(reqwest::Method::OPTIONS, tenet.url("/api/v1/auth/me"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = tenet
        .http
        .request(reqwest::Method::OPTIONS, tenet.url("/api/v1/auth/me"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

async fn platform_admins_are_granted_from_the_cli_and_see_every_tenant(backing: Backing) {
    let tenet = start_with(&backing, &[KNOWN_SECRET]).await;
    let admin = User::register(&tenet, "root").await;
    let tenant = User::register(&tenet, "tenant").await;
    tenant.workspace("Theirs").await;

    admin
        .client
        .get("/api/v1/admin/users")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    Client::anonymous(&tenet)
        .get("/api/v1/admin/users")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");

    let granted = backing.cli(&["admin", "grant", &admin.email]).await;
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let users = admin.client.get("/api/v1/admin/users?limit=100").await;
    let emails: Vec<&str> = users.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&tenant.email.as_str()));
    let workspaces = admin
        .client
        .get("/api/v1/admin/workspaces?search=theirs")
        .await;
    assert!(workspaces.assert_status(200)["total"].as_u64().unwrap() >= 1);
    let me = admin.client.get("/api/v1/auth/me").await;
    assert_eq!(me.body["platform_admin"], true);

    let revoked = backing.cli(&["admin", "revoke", &admin.email]).await;
    assert!(revoked.status.success());
    admin
        .client
        .get("/api/v1/admin/users")
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");

    let unknown = backing.cli(&["admin", "grant", "nobody@example.com"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account"));
}

in_both_modes!(
    a_key_cannot_carry_more_than_its_issuer_holds_and_shows_when_last_used,
    the_per_principal_limit_answers_429_with_retry_after,
    members_can_be_added_listed_changed_and_removed,
    adding_an_unknown_email_names_the_field,
    the_last_owner_stays_even_when_two_owners_step_down_at_once,
    roles_limit_what_members_may_do,
    api_keys_carry_a_subset_of_their_issuers_scopes,
    a_key_is_bound_to_its_workspace,
    a_revoked_or_expired_key_is_refused_on_the_next_request,
    refresh_tokens_rotate_and_a_reused_one_revokes_the_session,
    logging_out_ends_the_session,
    forged_and_stale_tokens_are_refused,
    a_configured_issuer_and_audience_are_required,
    the_eleventh_login_in_a_minute_is_rate_limited,
    every_response_carries_rate_limit_and_security_headers,
    configured_origins_are_allowed_by_cors,
    platform_admins_are_granted_from_the_cli_and_see_every_tenant,
);

/// Two processes of one deployment (shared Postgres and NATS): a key
/// revoked through one is refused by the other on the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_by_another_at_once() {
    let Some(backing) = Backing::new(Mode::Distributed).await else {
        return;
    };
    let first = start_with(&backing, &[KNOWN_SECRET]).await;
    let second = start_with(&backing, &[KNOWN_SECRET]).await;
    let owner = User::register(&first, "owner").await;
    let workspace = owner.workspace("Team").await;
    let ApiKey {
        client: key,
        issued,
    } = issue_key(&owner.client, &workspace, "key", &["projects:read"]).await;
    let on_second = Client::anonymous(&second).with_token(key.token.as_deref().unwrap());
    on_second
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    owner
        .client
        .delete(&format!(
            "{}/{}",
            keys_url(&workspace),
            issued.body["id"].as_str().unwrap()
        ))
        .await
        .assert_status(200);
    on_second
        .get(&projects_url(&workspace))
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
    // A key that expires is refused by every instance once it has.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let issued = owner
        .client
        .post(
            &keys_url(&workspace),
            json!({ "name": "short", "scopes": ["projects:read"], "expires_at": soon }),
        )
        .await;
    let secret = issued.assert_status(201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let short_on_second = Client::anonymous(&second).with_token(&secret);
    short_on_second
        .get(&projects_url(&workspace))
        .await
        .assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    for instance in [&first, &second] {
        Client::anonymous(instance)
            .with_token(&secret)
            .get(&projects_url(&workspace))
            .await
            .assert_problem(401, "AUTHENTICATION_ERROR");
    }
    // And a session logged out through one instance is dead on the other.
    let pair = owner.new_session(&first).await;
    let token = pair["access_token"].as_str().unwrap();
    Client::anonymous(&second)
        .with_token(token)
        .get("/api/v1/auth/me")
        .await
        .assert_status(200);
    Client::anonymous(&first)
        .with_token(token)
        .post("/api/v1/auth/logout", json!({}))
        .await
        .assert_status(200);
    Client::anonymous(&second)
        .with_token(token)
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "AUTHENTICATION_ERROR");
}

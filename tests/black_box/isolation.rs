//! Tenant isolation and scopes, driven by the service's own OpenAPI
//! document (`GET /openapi.json`): every operation it lists is called
//! across tenants (always 404, never a byte of the other tenant's data) and
//! by every workspace role and every single-scope API key (403 exactly when
//! the principal lacks the scope the operation declares).
//!
//! A route added to the document is covered without editing this file. A
//! new kind of id in a path (`{task_id}`, `{comment_id}`) needs one arm in
//! [`create`], which makes a fresh resource for a path parameter; the
//! sweep then fails loudly until it has one.

use std::collections::BTreeMap;

use crate::common::{
    Backing, Client, PASSWORD, Reply, Tenet, User, add_member, id, issue_key, register, start,
};
use reqwest::Method;
use serde_json::{Value, json};

/// The path parameter naming the tenant.
const WORKSPACE: &str = "workspace_id";

/// The path every workspace-scoped operation starts with.
const WORKSPACE_PATH: &str = "/api/v1/workspaces/{workspace_id}";

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Path parameter name to the id that fills it.
type Ids = BTreeMap<String, String>;

/// One operation of the OpenAPI document.
#[derive(Clone, Debug)]
struct Operation {
    method: Method,
    /// The path template, with `{name}` for each parameter.
    path: String,
    /// The scopes its security requirement lists.
    scopes: Vec<String>,
    /// The 2xx statuses it documents.
    success: Vec<u16>,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Its path parameters, in path order.
    fn params(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    /// Its path parameters other than the workspace.
    fn resource_params(&self) -> Vec<&str> {
        self.params()
            .into_iter()
            .filter(|param| *param != WORKSPACE)
            .collect()
    }

    /// The path with each parameter filled from `ids`.
    #[track_caller]
    fn fill(&self, ids: &Ids) -> String {
        self.params()
            .into_iter()
            .fold(self.path.clone(), |path, param| {
                let id = ids
                    .get(param)
                    .unwrap_or_else(|| panic!("{}: no id for {{{param}}}", self.label()));
                path.replace(&format!("{{{param}}}"), id)
            })
    }

    fn is_workspace_scoped(&self) -> bool {
        self.path.starts_with(WORKSPACE_PATH)
    }

    /// Outside the tenant sweep: platform-admin and identity routes.
    fn is_admin_or_auth(&self) -> bool {
        self.path.starts_with("/api/v1/admin/") || self.path.starts_with("/api/v1/auth/")
    }

    /// What is left of the path after the workspace prefix (`/projects`).
    fn within_workspace(&self) -> Option<&str> {
        self.path.strip_prefix(WORKSPACE_PATH)
    }

    /// Deleting the workspace itself: each check gets a workspace of its own.
    fn deletes_the_workspace(&self) -> bool {
        self.method == Method::DELETE && self.path == WORKSPACE_PATH
    }

    fn takes_a_body(&self) -> bool {
        self.method == Method::POST || self.method == Method::PATCH
    }
}

/// Every operation of the service's OpenAPI document.
async fn operations(tenet: &Tenet) -> Vec<Operation> {
    let reply = Client::anonymous(tenet).get("/openapi.json").await;
    let document = reply.assert_status(200);
    let default_security = document.get("security").cloned().unwrap_or(Value::Null);
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            let security = operation.get("security").unwrap_or(&default_security);
            let scopes = security
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|requirement| requirement.values())
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let success = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(status, _)| status.parse().ok())
                .filter(|status| (200..300).contains(status))
                .collect();
            operations.push(Operation {
                method,
                path: path.clone(),
                scopes,
                success,
            });
        }
    }
    operations
}

/// Sends one call: `body` as JSON, and a consistency token so reads see
/// the fixtures' writes.
async fn call(
    client: &Client,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Reply {
    let mut request = client.request(method.clone(), path);
    if let Some(token) = token {
        request = request.header("X-Consistency-Token", token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    client.send(request).await
}

/// The problem code of an error reply, if it is problem+json.
fn problem_code(reply: &Reply) -> Option<&str> {
    let problem = reply.header("content-type").as_deref() == Some("application/problem+json");
    problem.then(|| reply.body["code"].as_str()).flatten()
}

fn later(token: String, other: String) -> String {
    let position = |token: &str| token.parse::<i64>().expect("a consistency token");
    if position(&other) > position(&token) {
        other
    } else {
        token
    }
}

/// A resource made for a path parameter.
struct Made {
    id: String,
    /// What identifies it to anyone who sees it: id, names, slugs, emails.
    words: Vec<String>,
    /// The consistency token of its last write.
    token: String,
}

/// Registers an account without logging in (cheaper than [`User::register`])
/// and answers its id, email and name.
async fn stranger(tenet: &Tenet) -> (String, String, String) {
    let name = format!("stranger{}", unique());
    let email = format!("{name}@example.com");
    let id = id(&register(tenet, &name, &email, PASSWORD).await, 201);
    (id, email, name)
}

/// A name no other key in the test's workspaces has.
fn key_name() -> String {
    format!("Key {}", unique())
}

fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body:#}"))
        .to_owned()
}

/// Makes a fresh resource for the path parameter `param` in `workspace`,
/// as its owner. `ids` holds the parameters before it in the path, for
/// resources that live inside another (a task in a project).
///
async fn create(tenet: &Tenet, owner: &Client, workspace: &str, param: &str, ids: &Ids) -> Made {
    match param {
        "project_id" => {
            let made = unique();
            let created = owner
                .post(
                    &format!("/api/v1/workspaces/{workspace}/projects"),
                    json!({ "name": format!("Project {made}"), "description": format!("About {made}") }),
                )
                .await;
            let body = created.assert_status(201);
            Made {
                id: field(body, "id"),
                words: ["id", "name", "slug", "description"]
                    .map(|name| field(body, name))
                    .to_vec(),
                token: created.token(),
            }
        }
        "user_id" => {
            let (id, email, name) = stranger(tenet).await;
            let added = add_member(owner, workspace, &email, "viewer").await;
            added.assert_status(201);
            Made {
                id: id.clone(),
                words: vec![id, email, name],
                token: added.token(),
            }
        }
        "key_id" => {
            let issued = issue_key(owner, workspace, &key_name(), &["projects:read"])
                .await
                .issued;
            let body = &issued.body;
            Made {
                id: field(body, "id"),
                words: ["id", "name", "prefix", "secret"]
                    .map(|name| field(body, name))
                    .to_vec(),
                token: issued.token(),
            }
        }
        "task_id" => {
            let project = match ids.get("project_id") {
                Some(project) => project.clone(),
                None => {
                    Box::pin(create(tenet, owner, workspace, "project_id", ids))
                        .await
                        .id
                }
            };
            let made = unique();
            let created = owner
                .post(
                    &format!("/api/v1/workspaces/{workspace}/projects/{project}/tasks"),
                    json!({
                        "title": format!("Task {made}"),
                        "description": format!("Details {made}"),
                        "labels": [format!("label{made}")],
                    }),
                )
                .await;
            let body = created.assert_status(201);
            Made {
                id: field(body, "id"),
                words: ["id", "key", "title", "description"]
                    .map(|name| field(body, name))
                    .to_vec(),
                token: created.token(),
            }
        }
        "comment_id" => {
            let task = ids
                .get("task_id")
                .expect("a comment's path names its task first");
            let made = unique();
            let created = owner
                .post(
                    &format!("/api/v1/workspaces/{workspace}/tasks/{task}/comments"),
                    json!({ "body": format!("Comment {made}") }),
                )
                .await;
            let body = created.assert_status(201);
            Made {
                id: field(body, "id"),
                words: ["id", "body"].map(|name| field(body, name)).to_vec(),
                token: created.token(),
            }
        }
        "automation_id" => {
            let project = match ids.get("project_id") {
                Some(project) => project.clone(),
                None => {
                    Box::pin(create(tenet, owner, workspace, "project_id", ids))
                        .await
                        .id
                }
            };
            let made = unique();
            let created = owner
                .post(
                    &format!("/api/v1/workspaces/{workspace}/projects/{project}/automations"),
                    json!({
                        "name": format!("Automation {made}"),
                        "trigger": { "event": "task.status_changed", "to": "done" },
                        "actions": [{ "type": "add_label", "label": format!("label{made}") }],
                    }),
                )
                .await;
            let body = created.assert_status(201);
            Made {
                id: field(body, "id"),
                words: ["id", "name"].map(|name| field(body, name)).to_vec(),
                token: created.token(),
            }
        }
        "execution_id" => {
            // A run of an automation of a project of its own, triggered by
            // a task created there.
            let project = Box::pin(create(tenet, owner, workspace, "project_id", ids)).await;
            let made = unique();
            let automations = format!(
                "/api/v1/workspaces/{workspace}/projects/{}/automations",
                project.id
            );
            let created = owner
                .post(
                    &automations,
                    json!({
                        "name": format!("Automation {made}"),
                        "trigger": { "event": "task.created" },
                        "actions": [{ "type": "add_label", "label": format!("label{made}") }],
                    }),
                )
                .await;
            let automation = field(created.assert_status(201), "id");
            let task = owner
                .post(
                    &format!(
                        "/api/v1/workspaces/{workspace}/projects/{}/tasks",
                        project.id
                    ),
                    json!({ "title": format!("Task {made}") }),
                )
                .await;
            task.assert_status(201);
            let executions = format!("{automations}/{automation}/executions");
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let page = owner.get(&executions).await;
                let first = &page.body["items"][0];
                if page.status == 200 && first["finished_at"].is_string() {
                    let id = field(first, "id");
                    break Made {
                        id: id.clone(),
                        words: vec![id, automation, format!("label{made}")],
                        token: task.token(),
                    };
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no execution of {automation}: {:#}",
                    page.body
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        other => panic!(
            "no fixture for the path parameter {{{other}}} (after {:?}): add an arm to `create` \
             in tests/black_box/isolation.rs",
            ids.keys().collect::<Vec<_>>()
        ),
    }
}

/// A workspace holding one resource of every kind the document has a path
/// parameter for.
struct Tenant {
    owner: User,
    ids: Ids,
    /// Everything that identifies this tenant's data.
    words: Vec<String>,
    token: String,
}

impl Tenant {
    async fn set_up(tenet: &Tenet, owner: User, operations: &[Operation]) -> Tenant {
        let made = unique();
        let created = owner
            .client
            .post(
                "/api/v1/workspaces",
                json!({ "name": format!("Tenant {made}") }),
            )
            .await;
        let body = created.assert_status(201).clone();
        let workspace = field(&body, "id");
        let mut ids = Ids::from([(WORKSPACE.to_owned(), workspace.clone())]);
        let mut words = vec![
            workspace.clone(),
            field(&body, "name"),
            field(&body, "slug"),
            owner.id.clone(),
            owner.email.clone(),
        ];
        let mut token = created.token();
        for operation in operations.iter().filter(|o| !o.is_admin_or_auth()) {
            for param in operation.params() {
                if ids.contains_key(param) {
                    continue;
                }
                let made = create(tenet, &owner.client, &workspace, param, &ids).await;
                ids.insert(param.to_owned(), made.id);
                words.extend(made.words);
                token = later(token, made.token);
            }
        }
        Tenant {
            owner,
            ids,
            words,
            token,
        }
    }

    /// Every workspace-scoped read of the document, as the owner: what
    /// must not change while another tenant pokes at it.
    async fn snapshot(&self, operations: &[Operation], token: &str) -> Vec<(String, u16, Value)> {
        let mut seen = Vec::new();
        for operation in operations
            .iter()
            .filter(|o| o.method == Method::GET && o.is_workspace_scoped())
        {
            let path = operation.fill(&self.ids);
            let reply = call(&self.owner.client, &Method::GET, &path, None, Some(token)).await;
            seen.push((path, reply.status, reply.body));
        }
        seen
    }

    /// The first of this tenant's words that `reply` shows, body or headers.
    fn leaked(&self, reply: &Reply) -> Option<&str> {
        let body = reply.body.to_string();
        let headers: Vec<&str> = reply
            .headers
            .values()
            .filter_map(|value| value.to_str().ok())
            .collect();
        self.words
            .iter()
            .find(|word| {
                body.contains(word.as_str()) || headers.iter().any(|h| h.contains(word.as_str()))
            })
            .map(String::as_str)
    }
}

async fn another_tenant_gets_404_and_none_of_its_data_from_every_operation_with_an_id(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let operations = operations(&tenet).await;
    let a = Tenant::set_up(
        &tenet,
        User::register(&tenet, "alphaowner").await,
        &operations,
    )
    .await;
    for kind in ["project_id", "user_id", "key_id", "task_id", "comment_id"] {
        assert!(a.ids.contains_key(kind), "tenant A has no {kind}");
    }
    let b = User::register(&tenet, "bravo").await;
    let b_workspace = b.workspace("Bravo").await;
    let b_key = issue_key(&b.client, &b_workspace, &key_name(), &["*"])
        .await
        .client;
    let before = a.snapshot(&operations, &a.token).await;

    let swept: Vec<&Operation> = operations
        .iter()
        .filter(|o| !o.is_admin_or_auth() && !o.params().is_empty())
        .collect();
    let mut failures = Vec::new();
    let mut calls = 0;
    for operation in &swept {
        let body = operation.takes_a_body().then(|| json!({}));
        // A's ids throughout, then B's own workspace around A's other ids.
        let mut paths = vec![(operation.fill(&a.ids), false)];
        if !operation.resource_params().is_empty() && operation.params().contains(&WORKSPACE) {
            let mut ids = a.ids.clone();
            ids.insert(WORKSPACE.to_owned(), b_workspace.clone());
            paths.push((operation.fill(&ids), true));
        }
        for (caller, client) in [("user B", &b.client), ("B's * key", &b_key)] {
            for (path, in_own_workspace) in &paths {
                calls += 1;
                let reply = call(client, &operation.method, path, body.as_ref(), None).await;
                let what = format!("{} {path} as {caller}", operation.method);
                let code = problem_code(&reply);
                // In B's own workspace the body is validated before A's id
                // is looked up; a 422 about `{}` reveals nothing.
                let refused = (reply.status == 404 && code == Some("NOT_FOUND"))
                    || (*in_own_workspace
                        && body.is_some()
                        && reply.status == 422
                        && code == Some("VALIDATION_ERROR"));
                if !refused {
                    failures.push(format!(
                        "{what}: {} {}, expected 404 NOT_FOUND",
                        reply.status,
                        code.unwrap_or("(not problem+json)")
                    ));
                }
                if let Some(word) = a.leaked(&reply) {
                    failures.push(format!("{what}: {} shows A's {word:?}", reply.status));
                }
            }
        }
    }
    assert!(
        !swept.is_empty(),
        "the document lists no operation with an id"
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} cross-tenant calls went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A's data is as it was: read after a later write, so that anything
    // B's calls might have changed is visible.
    let barrier = a
        .owner
        .client
        .post(
            "/api/v1/workspaces",
            json!({ "name": format!("Barrier {}", unique()) }),
        )
        .await;
    barrier.assert_status(201);
    let after = a.snapshot(&operations, &barrier.token()).await;
    for ((path, status, body), (_, status_after, body_after)) in before.iter().zip(&after) {
        assert_eq!(*status, 200, "GET {path} as A: {body:#}");
        assert_eq!(
            (status, body),
            (status_after, body_after),
            "GET {path} as A changed"
        );
    }
}

/// Who calls: a user of the workspace with a role, or an API key of the
/// owner's holding exactly one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    Role(&'static str),
    Key(String),
}

impl Who {
    fn label(&self) -> String {
        match self {
            Who::Role(role) => format!("{role} user"),
            Who::Key(scope) => format!("key [{scope}]"),
        }
    }

    /// Whether it holds `scope` (concrete, `resource:action`).
    fn holds(&self, scope: &str) -> bool {
        match self {
            Who::Role(role) => role_holds(role, scope),
            Who::Key(held) => held == scope,
        }
    }
}

/// The scopes of a role, as API.md puts them: owner `*`; admin `*` but
/// deleting the workspace; member reads everything but the audit log and
/// writes and deletes projects, tasks and comments; viewer reads
/// everything but the audit log.
fn role_holds(role: &str, scope: &str) -> bool {
    let (resource, action) = scope
        .split_once(':')
        .unwrap_or_else(|| panic!("{scope:?} is not resource:action"));
    let reads = action == "read" && resource != "audit";
    match role {
        "owner" => true,
        "admin" => scope != "workspace:delete",
        "member" => {
            reads
                || matches!(
                    resource,
                    "projects" | "tasks" | "comments" | "templates" | "automations"
                )
        }
        "viewer" => reads,
        other => panic!("no role {other}"),
    }
}

const ROLES: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// One workspace, a user per role in it, and the calls they make.
struct Matrix<'a> {
    tenet: &'a Tenet,
    users: BTreeMap<&'static str, User>,
    workspace: String,
    /// Shared fixtures, for reads.
    ids: Ids,
    /// The consistency token reads wait for.
    token: String,
    /// Each principal's client in `workspace`.
    principals: Vec<(Who, Client)>,
}

impl Matrix<'_> {
    fn owner(&self) -> &Client {
        &self.users["owner"].client
    }

    /// `who` in another workspace of the owner's: a user joins it with
    /// their role, a key is issued there with its scope.
    async fn principal_in(&self, who: &Who, workspace: &str) -> Client {
        match who {
            Who::Role("owner") => self.owner().clone(),
            Who::Role(role) => {
                let user = &self.users[role];
                add_member(self.owner(), workspace, &user.email, role)
                    .await
                    .assert_status(201);
                user.client.clone()
            }
            Who::Key(scope) => {
                issue_key(self.owner(), workspace, &key_name(), &[scope])
                    .await
                    .client
            }
        }
    }

    /// A fresh workspace of the owner's, with `who` in it.
    async fn fresh_workspace(&self, who: &Who) -> (String, Client) {
        let workspace = self.users["owner"].workspace("Doomed").await;
        let client = self.principal_in(who, &workspace).await;
        (workspace, client)
    }

    /// Calls `operation` as `who` and answers what went wrong, if anything.
    async fn check(&self, operation: &Operation, who: &Who, client: &Client) -> Result<(), String> {
        let missing = operation.scopes.iter().find(|scope| !who.holds(scope));
        let (workspace, client) = if operation.deletes_the_workspace() {
            self.fresh_workspace(who).await
        } else {
            (self.workspace.clone(), client.clone())
        };
        let mut ids = self.ids.clone();
        ids.insert(WORKSPACE.to_owned(), workspace.clone());
        if operation.method != Method::GET {
            // Writes act on resources of their own, so one call never
            // changes what the next one finds.
            for param in operation.resource_params() {
                // A comment is changed by its author (authorship is checked
                // apart from scopes, in `check_special_cases`).
                let author = if param == "comment_id" {
                    self.author_of_comments(&client, &ids).await
                } else {
                    self.owner().clone()
                };
                let made = create(self.tenet, &author, &workspace, param, &ids).await;
                ids.insert(param.to_owned(), made.id);
            }
        }
        let path = operation.fill(&ids);
        let (body, known) = self.recipe(operation, &path).await;
        let token = (operation.method == Method::GET).then_some(self.token.as_str());
        let reply = call(&client, &operation.method, &path, body.as_ref(), token).await;
        let what = format!("{} {path} as {}", operation.method, who.label());
        let status = reply.status;
        let code = problem_code(&reply).unwrap_or("(not problem+json)");
        match missing {
            Some(scope) => {
                let detail = reply.body["detail"].as_str().unwrap_or_default();
                if status != 403
                    || code != "AUTHORIZATION_ERROR"
                    || !detail.contains(scope.as_str())
                {
                    return Err(format!(
                        "{what}: {status} {code} {detail:?}, expected 403 naming {scope}"
                    ));
                }
            }
            None if known => {
                if !operation.success.contains(&status) {
                    return Err(format!(
                        "{what}: {status} {code}, expected {:?}",
                        operation.success
                    ));
                }
            }
            None => {
                if matches!(status, 401 | 403 | 404) {
                    return Err(format!("{what}: {status} {code}, expected it allowed"));
                }
            }
        }
        Ok(())
    }

    /// Who writes the comment a principal then edits or deletes: the
    /// principal if it may comment, the owner otherwise.
    async fn author_of_comments(&self, client: &Client, ids: &Ids) -> Client {
        let task = &ids["task_id"];
        let probe = client
            .post(
                &format!(
                    "/api/v1/workspaces/{}/tasks/{task}/comments",
                    self.workspace
                ),
                json!({ "body": "May I?" }),
            )
            .await;
        if probe.status == 201 {
            client.clone()
        } else {
            self.owner().clone()
        }
    }

    /// A valid body for the operations this file knows how to call (with
    /// any state the call needs prepared), and whether it knows it. The
    /// rest get `{}` (POST, PATCH) and only need not be refused.
    async fn recipe(&self, operation: &Operation, path: &str) -> (Option<Value>, bool) {
        let name = format!("Renamed {}", unique());
        let rest = operation.within_workspace().unwrap_or_default();
        let body = match (&operation.method, rest) {
            (&Method::GET, _) => None,
            (
                &Method::DELETE,
                "" | "/members/{user_id}" | "/api-keys/{key_id}" | "/projects/{project_id}",
            ) => None,
            (&Method::PATCH, "") => Some(json!({ "name": name })),
            (&Method::POST, "/projects") => Some(json!({ "name": name })),
            (&Method::PATCH, "/projects/{project_id}") => Some(json!({ "description": name })),
            (&Method::POST, "/projects/{project_id}/restore") => {
                let project = path.trim_end_matches("/restore");
                self.owner().delete(project).await.assert_status(200);
                None
            }
            (&Method::POST, "/members") => {
                let (_, email, _) = stranger(self.tenet).await;
                Some(json!({ "email": email, "role": "viewer" }))
            }
            (&Method::PATCH, "/members/{user_id}") => Some(json!({ "role": "member" })),
            (&Method::POST, "/api-keys") => {
                Some(json!({ "name": name, "scopes": operation.scopes }))
            }
            (&Method::POST, "/projects/{project_id}/tasks") => Some(json!({ "title": name })),
            (&Method::PATCH, "/tasks/{task_id}") => {
                Some(json!({ "title": name, "priority": "high" }))
            }
            (&Method::POST, "/tasks/{task_id}/transitions") => Some(json!({ "to": "in_progress" })),
            (&Method::DELETE, "/tasks/{task_id}" | "/tasks/{task_id}/comments/{comment_id}") => {
                None
            }
            (&Method::POST, "/tasks/{task_id}/comments") => Some(json!({ "body": name })),
            (&Method::POST, "/projects/{project_id}/automations") => Some(json!({
                "name": name,
                "trigger": { "event": "task.status_changed", "to": "done" },
                "actions": [{ "type": "add_label", "label": "isolation" }],
            })),
            (&Method::PATCH, "/projects/{project_id}/automations/{automation_id}") => {
                Some(json!({ "name": name }))
            }
            (&Method::DELETE, "/projects/{project_id}/automations/{automation_id}") => None,
            (&Method::PATCH, "/tasks/{task_id}/comments/{comment_id}") => {
                Some(json!({ "body": name }))
            }
            _ => return (operation.takes_a_body().then(|| json!({})), false),
        };
        (body, true)
    }
}

async fn every_role_and_single_scope_key_is_refused_exactly_what_its_scopes_lack(backing: Backing) {
    let tenet = start(&backing).await;
    let operations: Vec<Operation> = operations(&tenet)
        .await
        .into_iter()
        .filter(Operation::is_workspace_scoped)
        .collect();
    for operation in &operations {
        assert!(
            !operation.scopes.is_empty(),
            "{} declares no scope",
            operation.label()
        );
    }
    let mut scopes: Vec<String> = operations.iter().flat_map(|o| o.scopes.clone()).collect();
    scopes.sort();
    scopes.dedup();

    let mut users = BTreeMap::new();
    for role in ROLES {
        users.insert(role, User::register(&tenet, role).await);
    }
    let owner = users["owner"].client.clone();
    let workspace = users["owner"].workspace("Matrix").await;
    let mut principals = vec![(Who::Role("owner"), owner.clone())];
    let mut token = String::new();
    for role in &ROLES[1..] {
        let added = add_member(&owner, &workspace, &users[role].email, role).await;
        added.assert_status(201);
        token = added.token();
        principals.push((Who::Role(role), users[role].client.clone()));
    }
    for scope in &scopes {
        let key = issue_key(&owner, &workspace, &key_name(), &[scope]).await;
        principals.push((Who::Key(scope.clone()), key.client));
    }
    let mut ids = Ids::from([(WORKSPACE.to_owned(), workspace.clone())]);
    for operation in &operations {
        for param in operation.resource_params() {
            if !ids.contains_key(param) {
                let made = create(&tenet, &owner, &workspace, param, &ids).await;
                ids.insert(param.to_owned(), made.id);
                token = later(token, made.token);
            }
        }
    }
    let matrix = Matrix {
        tenet: &tenet,
        users,
        workspace,
        ids,
        token,
        principals,
    };

    let mut failures = Vec::new();
    for operation in &operations {
        for (who, client) in &matrix.principals {
            if let Err(failure) = matrix.check(operation, who, client).await {
                failures.push(failure);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls ({} operations x {} principals) went wrong:\n{}",
        failures.len(),
        operations.len() * matrix.principals.len(),
        operations.len(),
        matrix.principals.len(),
        failures.join("\n")
    );
    check_special_cases(&matrix).await;
}

/// Fails with `what` unless `reply` is `status`, and, for an error, the
/// problem `code`.
#[track_caller]
fn assert_reply(reply: &Reply, status: u16, code: Option<&str>, what: &str) {
    let got = problem_code(reply);
    let with_code = |code: Option<&str>| code.map(|code| format!(" {code}")).unwrap_or_default();
    assert!(
        reply.status == status && (code.is_none() || got == code),
        "{what}: {}{}, expected {status}{}",
        reply.status,
        with_code(got),
        with_code(code)
    );
}

/// What scopes alone do not decide: leaving needs none, and only owners
/// grant, change or remove the owner role, whatever their scopes.
async fn check_special_cases(matrix: &Matrix<'_>) {
    let owner = matrix.owner();
    let admin = &matrix.users["admin"].client;
    let members = format!("/api/v1/workspaces/{}/members", matrix.workspace);
    let owner_id = &matrix.users["owner"].id;
    let forbidden = Some("AUTHORIZATION_ERROR");

    let (_, email, _) = stranger(matrix.tenet).await;
    let as_owner = json!({ "email": email, "role": "owner" });
    let viewer = create(
        matrix.tenet,
        owner,
        &matrix.workspace,
        "user_id",
        &matrix.ids,
    )
    .await;
    let viewer_path = format!("{members}/{}", viewer.id);
    let owner_path = format!("{members}/{owner_id}");
    let promote = json!({ "role": "owner" });
    let demote = json!({ "role": "admin" });
    let admins_key = issue_key(admin, &matrix.workspace, &key_name(), &["members:*"])
        .await
        .client;
    for (who, client) in [
        ("admin user", admin),
        ("admin's key [members:*]", &admins_key),
    ] {
        let what = |call: &str| format!("{call} as {who}");
        assert_reply(
            &client.post(&members, as_owner.clone()).await,
            403,
            forbidden,
            &what("POST members granting owner"),
        );
        assert_reply(
            &client.patch(&viewer_path, promote.clone()).await,
            403,
            forbidden,
            &what("PATCH a viewer to owner"),
        );
        assert_reply(
            &client.patch(&owner_path, demote.clone()).await,
            403,
            forbidden,
            &what("PATCH the owner to admin"),
        );
        assert_reply(
            &client.delete(&owner_path).await,
            403,
            forbidden,
            &what("DELETE the owner"),
        );
    }
    assert_reply(
        &owner.post(&members, as_owner).await,
        201,
        None,
        "POST members granting owner as the owner",
    );
    assert_reply(
        &owner.patch(&viewer_path, promote).await,
        200,
        None,
        "PATCH a viewer to owner as the owner",
    );

    // Only its author, an admin or an owner edits or deletes a comment.
    let member = &matrix.users["member"].client;
    let task = &matrix.ids["task_id"];
    let comments = format!(
        "/api/v1/workspaces/{}/tasks/{task}/comments",
        matrix.workspace
    );
    let by_owner = owner.post(&comments, json!({ "body": "Owner's" })).await;
    let by_owner = format!("{comments}/{}", field(by_owner.assert_status(201), "id"));
    let by_member = member.post(&comments, json!({ "body": "Member's" })).await;
    let by_member = format!("{comments}/{}", field(by_member.assert_status(201), "id"));
    let what = |call: &str| format!("{call} as the member user");
    assert_reply(
        &member.patch(&by_owner, json!({ "body": "Mine now" })).await,
        403,
        forbidden,
        &what("PATCH the owner's comment"),
    );
    assert_reply(
        &member.delete(&by_owner).await,
        403,
        forbidden,
        &what("DELETE the owner's comment"),
    );
    assert_reply(
        &member.patch(&by_member, json!({ "body": "Edited" })).await,
        200,
        None,
        &what("PATCH their own comment"),
    );
    assert_reply(
        &admin.delete(&by_member).await,
        200,
        None,
        "DELETE the member's comment as an admin",
    );

    // Any member may leave, holding no members:delete.
    for role in ["member", "viewer"] {
        let user = &matrix.users[role];
        let what = format!("DELETE {members}/{{self}} as {role} user");
        assert_reply(
            &user.client.delete(&format!("{members}/{}", user.id)).await,
            200,
            None,
            &what,
        );
        assert_reply(
            &user.client.get(&members).await,
            404,
            Some("NOT_FOUND"),
            &format!("GET members as the {role} who left"),
        );
    }
}

/// Leaving needs no scope, but an API key is not its issuer: a key that
/// holds only `projects:read` must not take its issuer, even an owner, out
/// of the workspace.
async fn a_key_without_members_delete_cannot_remove_its_issuer_from_the_workspace(
    backing: Backing,
) {
    let tenet = start(&backing).await;
    let owner = User::register(&tenet, "owner").await;
    let admin = User::register(&tenet, "admin").await;
    let second = User::register(&tenet, "second").await;
    let workspace = owner.workspace("Keys").await;
    let members = format!("/api/v1/workspaces/{workspace}/members");
    add_member(&owner.client, &workspace, &admin.email, "admin")
        .await
        .assert_status(201);
    // A second owner, so that removing the first is not refused as the last.
    add_member(&owner.client, &workspace, &second.email, "owner")
        .await
        .assert_status(201);
    for (role, issuer) in [("admin", &admin), ("owner", &owner)] {
        let key = issue_key(&issuer.client, &workspace, &key_name(), &["projects:read"])
            .await
            .client;
        let path = format!("{members}/{}", issuer.id);
        let removed = key.delete(&path).await;
        let what = format!("DELETE {path} (the {role}) as the {role}'s key [projects:read]");
        assert_reply(&removed, 403, Some("AUTHORIZATION_ERROR"), &what);
        let detail = removed.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("members:delete"), "{what}: {detail:?}");
        assert_reply(
            &issuer.client.get(&members).await,
            200,
            None,
            &format!("GET members as the {role} afterwards"),
        );
    }
}

in_both_modes!(
    another_tenant_gets_404_and_none_of_its_data_from_every_operation_with_an_id,
    every_role_and_single_scope_key_is_refused_exactly_what_its_scopes_lack,
    a_key_without_members_delete_cannot_remove_its_issuer_from_the_workspace,
);

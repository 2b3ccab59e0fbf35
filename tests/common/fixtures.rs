//! What tests set up before the part they are about, through the API as a
//! client would: accounts and sessions, workspaces and their members, API
//! keys, and a board (a workspace with one project) to put tasks on.

use serde_json::{Value, json};

use super::http::{Client, Reply, id};
use super::paths::{
    keys_url, members_url, project_tasks_url, project_url, projects_url, task_url, tasks_url,
};
use super::server::Tenet;

pub const PASSWORD: &str = "correct horse battery staple";

/// `POST /api/v1/auth/register`, anonymously; the reply unchecked.
pub async fn register(tenet: &Tenet, name: &str, email: &str, password: &str) -> Reply {
    Client::anonymous(tenet)
        .post(
            "/api/v1/auth/register",
            json!({ "email": email, "name": name, "password": password }),
        )
        .await
}

/// `POST /api/v1/auth/login`, anonymously; the reply unchecked.
pub async fn login(tenet: &Tenet, email: &str, password: &str) -> Reply {
    Client::anonymous(tenet)
        .post(
            "/api/v1/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
}

/// A registered, logged-in user.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub client: Client,
}

impl User {
    /// Registers a user with a unique email and logs in.
    pub async fn register(tenet: &Tenet, name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let id = id(&register(tenet, name, &email, PASSWORD).await, 201);
        let login = login(tenet, &email, PASSWORD).await;
        let token = login.assert_status(200)["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        User {
            id,
            email,
            password: PASSWORD.to_owned(),
            client: Client::anonymous(tenet).with_token(&token),
        }
    }

    /// Logs in again (a session of its own) and answers the 200's body,
    /// the token pair.
    pub async fn new_session(&self, tenet: &Tenet) -> Value {
        let reply = login(tenet, &self.email, &self.password).await;
        reply.assert_status(200).clone()
    }

    /// Creates a workspace and answers its id.
    pub async fn workspace(&self, name: &str) -> String {
        let created = self
            .client
            .post(
                "/api/v1/workspaces",
                json!({ "name": format!("{name} {}", uuid::Uuid::new_v4().simple()) }),
            )
            .await;
        id(&created, 201)
    }
}

/// Adds the account with `email` to `workspace` as `role`; the reply
/// unchecked.
pub async fn add_member(owner: &Client, workspace: &str, email: &str, role: &str) -> Reply {
    owner
        .post(
            &members_url(workspace),
            json!({ "email": email, "role": role }),
        )
        .await
}

/// An API key just issued.
pub struct ApiKey {
    /// The 201 that issued it; its body is the only place the secret shows.
    pub issued: Reply,
    /// The issuer's client, authenticating with the key instead.
    pub client: Client,
}

/// Issues an API key named `name` with `scopes` in `workspace` (asserting
/// the 201).
pub async fn issue_key(issuer: &Client, workspace: &str, name: &str, scopes: &[&str]) -> ApiKey {
    let issued = issuer
        .post(
            &keys_url(workspace),
            json!({ "name": name, "scopes": scopes }),
        )
        .await;
    issued.assert_status(201);
    let secret = issued.body["secret"].as_str().expect("secret");
    let client = issuer.with_token(secret);
    ApiKey { issued, client }
}

/// An owner with a workspace and a project (slug `web`) in it.
pub struct Board {
    pub owner: User,
    pub workspace: String,
    pub project: String,
    /// The consistency token of the project's creation.
    pub token: String,
}

impl Board {
    /// Registers the owner and creates the workspace (named `name`) and
    /// the project.
    pub async fn new(tenet: &Tenet, name: &str) -> Board {
        let owner = User::register(tenet, "owner").await;
        let workspace = owner.workspace(name).await;
        let project = owner
            .client
            .post(
                &projects_url(&workspace),
                json!({ "name": "Web", "slug": "web" }),
            )
            .await;
        let id = id(&project, 201);
        Board {
            owner,
            workspace,
            project: id,
            token: project.token(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.owner.client
    }

    /// The project's tasks.
    pub fn tasks(&self) -> String {
        project_tasks_url(&self.workspace, &self.project)
    }

    /// The workspace's tasks.
    pub fn all_tasks(&self) -> String {
        tasks_url(&self.workspace)
    }

    pub fn task(&self, task: &str) -> String {
        task_url(&self.workspace, task)
    }

    pub fn project_url(&self) -> String {
        project_url(&self.workspace, &self.project)
    }

    /// Creates a task from `body`; the reply unchecked.
    pub async fn create(&self, body: Value) -> Reply {
        self.client().post(&self.tasks(), body).await
    }

    /// Creates a task titled `title` and answers its id.
    pub async fn add_task(&self, title: &str) -> String {
        id(&self.create(json!({ "title": title })).await, 201)
    }

    pub async fn move_to(&self, task: &str, to: &str) -> Reply {
        self.client()
            .post(
                &format!("{}/transitions", self.task(task)),
                json!({ "to": to }),
            )
            .await
    }

    /// Registers a user (named for the role) and adds them as `role`.
    pub async fn add_member(&self, tenet: &Tenet, role: &str) -> User {
        let user = User::register(tenet, role).await;
        add_member(self.client(), &self.workspace, &user.email, role)
            .await
            .assert_status(201);
        user
    }
}

//! The console at `/console`: its files and their policy, the admin time
//! travel it calls, and the pages themselves in a real headless Chromium
//! driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs; without them the browser test is skipped, except
//! under `CI=true`, where it fails).

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Backing, Board, Tenet, User, start};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(30);

async fn the_console_is_served_with_a_strict_policy(backing: Backing) {
    let tenet = start(&backing).await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(tenet.url("/console"))
        .send()
        .await
        .expect("GET /console");
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/console/");

    for (path, kind) in [
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = tenet.http.get(tenet.url(path)).send().await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {:?}",
            headers["content-type"]
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        let body = response.text().await.expect("body");
        // Offline: nothing is loaded from anywhere but the binary.
        assert!(!body.contains("https://"), "{path} loads something remote");
    }
}

async fn admins_travel_to_a_stream_state_of_any_workspace(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Travel").await;
    let task = board.add_task("First title").await;
    let before = audit_instant(&board, &task, "task.created").await;
    board
        .client()
        .patch(&board.task(&task), json!({ "title": "Second title" }))
        .await
        .assert_status(200);
    let admin = User::register(&tenet, "admin").await;
    backing.grant_platform_admin(&admin.email).await;
    let path = |workspace: &str, stream: &str, at: &str| {
        format!(
            "/api/v1/admin/workspaces/{workspace}/streams/{stream}/state?as_of={}",
            urlencode(at)
        )
    };

    let then = admin
        .client
        .get(&path(&board.workspace, &task, &before))
        .await;
    let body = then.assert_status(200);
    assert_eq!(body["stream_type"], "task");
    assert_eq!(body["state"]["title"], "First title");
    assert_eq!(body["state"]["key"], "WEB-1");

    let project = admin
        .client
        .get(&path(&board.workspace, &board.project, &before))
        .await;
    assert_eq!(project.assert_status(200)["stream_type"], "project");

    // Another workspace's id finds nothing; a member who is no platform
    // admin is refused; a stream of another kind has no state.
    let other = Board::new(&tenet, "Elsewhere").await;
    admin
        .client
        .get(&path(&other.workspace, &task, &before))
        .await
        .assert_problem(404, "NOT_FOUND");
    board
        .client()
        .get(&path(&board.workspace, &task, &before))
        .await
        .assert_problem(403, "AUTHORIZATION_ERROR");
    admin
        .client
        .get(&path(&board.workspace, &board.workspace, &before))
        .await
        .assert_problem(422, "VALIDATION_ERROR");
    let early = "2000-01-01T00:00:00Z";
    admin
        .client
        .get(&path(&board.workspace, &task, early))
        .await
        .assert_problem(404, "NOT_FOUND");
}

/// Waits until the workspace's evaluated set says `expected` for the
/// `new-board` flag (the browser's change has no token to wait on).
async fn flag_becomes(board: &Board, features: &str, expected: bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = board.client().get(features).await;
        let value = seen.assert_status(200)["flags"]["new-board"].clone();
        if value == json!(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new-board stayed {value} for the workspace, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The instant of the first `event_type` of `stream` in the workspace's
/// audit log.
async fn audit_instant(board: &Board, stream: &str, event_type: &str) -> String {
    let log = board
        .client()
        .get(&format!(
            "/api/v1/workspaces/{}/audit-log?stream_id={stream}&event_type={event_type}",
            board.workspace
        ))
        .await;
    log.assert_status(200)["items"][0]["occurred_at"]
        .as_str()
        .expect("occurred_at")
        .to_owned()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A headless Chromium under a chromedriver of its own, closed on drop.
struct Chromium {
    driver: tokio::process::Child,
    browser: Option<Browser>,
}

impl Chromium {
    /// `None` when the browser is not installed (outside CI).
    async fn start() -> Option<Chromium> {
        let installed =
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: .ci/run installs them"
            );
            return None;
        }
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,900"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(browser) => {
                    return Some(Chromium {
                        driver,
                        browser: Some(browser),
                    });
                }
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    fn page(&self) -> &Browser {
        self.browser.as_ref().expect("browser")
    }

    async fn close(mut self) {
        if let Some(browser) = self.browser.take() {
            browser.close().await.expect("close the browser");
        }
        self.driver.kill().await.ok();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.expect("click");
    }

    /// Clicks the first button whose text is `label`.
    async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space(.)='{label}']");
        let button = self
            .page()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|error| panic!("no button {label:?}: {error}"));
        button.click().await.expect("press");
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.page()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css:?}: {error}"))
    }

    /// Waits until the text of the page's main area contains `needle`, and
    /// answers that text.
    async fn until_text(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.text("body").await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never showed {needle:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves what the browser shows as `<name>.png` in the folder
    /// `TENET_CONSOLE_SCREENSHOTS` names, if it names one.
    async fn snap(&self, name: &str) {
        let Ok(folder) = std::env::var("TENET_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.page().screenshot().await.expect("screenshot");
        std::fs::write(
            std::path::Path::new(&folder).join(format!("{name}.png")),
            png,
        )
        .expect("save the screenshot");
    }

    async fn text(&self, css: &str) -> String {
        let found: Value = self
            .page()
            .execute(
                "const node = document.querySelector(arguments[0]); return node ? node.innerText : '';",
                vec![json!(css)],
            )
            .await
            .expect("read the page");
        found.as_str().unwrap_or_default().to_owned()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

async fn signs_in(chromium: &Chromium, tenet: &Tenet, user: &User) {
    chromium
        .page()
        .goto(&tenet.url("/console/"))
        .await
        .expect("open");
    chromium.fill("input[name=email]", &user.email).await;
    chromium.fill("input[name=password]", &user.password).await;
    chromium.click("form.login button[type=submit]").await;
    chromium.until_text("Sign out").await;
}

async fn an_admin_uses_the_console_in_a_browser(backing: Backing) {
    let tenet = start(&backing).await;
    let board = Board::new(&tenet, "Console").await;
    let task = board.add_task("Draft the plan").await;
    board
        .client()
        .patch(&board.task(&task), json!({ "title": "Ship the plan" }))
        .await
        .assert_status(200);
    let admin = User::register(&tenet, "admin").await;
    backing.grant_platform_admin(&admin.email).await;
    let Some(chromium) = Chromium::start().await else {
        return;
    };

    signs_in(&chromium, &tenet, &admin).await;
    let nav = chromium.text("#nav").await;
    for page in [
        "Audit log",
        "Live tail",
        "Projections",
        "Stats",
        "Users",
        "Feature flags",
    ] {
        assert!(nav.contains(page), "the navigation lacks {page}: {nav}");
    }

    // Filter the audit log, open an event, travel to the task as it was.
    chromium
        .fill("input[name=event_type]", "task.created")
        .await;
    chromium.press("Apply").await;
    chromium.until_text("1–1 of 1").await;
    let rows = chromium.text("tbody").await;
    assert!(rows.contains("task.created"), "{rows}");
    assert!(!rows.contains("task.updated"), "{rows}");
    chromium.click("tbody tr.pick").await;
    let detail = chromium.until_text("Correlation id").await;
    assert!(detail.contains("Draft the plan"), "{detail}");
    chromium.press("The task at this event").await;
    let travelled = chromium.until_text("as it was at").await;
    let state = chromium.text("section.panel div[aria-live] pre").await;
    let then: Value = serde_json::from_str(&state).expect("the state is JSON");
    chromium.snap("audit-event").await;
    assert_eq!(then["state"]["title"], "Draft the plan", "{travelled}");
    // From the event to its stream's history: both of the task's events.
    chromium.press("Stream history").await;
    chromium.until_text("1–2 of 2").await;
    let history = chromium.text("tbody").await;
    assert!(history.contains("task.updated"), "{history}");

    // Replay a projection and watch it finish.
    chromium.click("#nav a[href='#/projections']").await;
    chromium.press("Replay tasks").await;
    chromium.until_text("swapped in").await;
    chromium.snap("projections").await;

    // Stats from the projection of the log.
    chromium.click("#nav a[href='#/stats']").await;
    let stats = chromium.until_text("active users 7d").await;
    assert!(stats.contains("tasks created"), "{stats}");
    chromium.snap("stats").await;

    // Deactivate a member: their token is refused on the next request.
    let member = board.add_member(&tenet, "member").await;
    chromium.click("#nav a[href='#/users']").await;
    chromium.fill("input[name=search]", &member.email).await;
    chromium.press("Search").await;
    chromium.until_text("1–1 of 1").await;
    chromium.click("tbody tr.pick").await;
    chromium
        .fill("textarea[name=reason]", "Left the company")
        .await;
    chromium.press("Deactivate").await;
    chromium.until_text("Left the company").await;
    chromium.snap("user").await;
    member
        .client
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401, "ACCOUNT_DEACTIVATED");

    // Create a flag, switch it off, override it for the workspace: the
    // workspace's evaluated set follows each change.
    let features = format!("/api/v1/workspaces/{}/features", board.workspace);
    chromium.click("#nav a[href='#/flags']").await;
    chromium
        .fill("form[aria-label='New flag'] input[name=key]", "new-board")
        .await;
    chromium
        .fill(
            "form[aria-label='New flag'] input[name=rollout_percent]",
            "100",
        )
        .await;
    chromium
        .click("form[aria-label='New flag'] input[name=enabled]")
        .await;
    chromium.press("Create flag").await;
    chromium.until_text("on for 100% of workspaces").await;
    flag_becomes(&board, &features, true).await;
    chromium
        .click("form[aria-label='Edit flag'] input[name=enabled]")
        .await;
    chromium.press("Save").await;
    chromium.until_text("Saved new-board.").await;
    flag_becomes(&board, &features, false).await;
    chromium
        .fill("input[name=workspace_id]", &board.workspace)
        .await;
    chromium.press("Override").await;
    chromium.until_text("Remove").await;
    chromium.snap("flag").await;
    flag_becomes(&board, &features, true).await;

    // A problem's detail is what the page says when something fails: a
    // workspace id that is not a UUID in the audit filter.
    chromium.click("#nav a[href='#/audit']").await;
    chromium
        .fill("input[name=tenant_id]", "not-a-workspace")
        .await;
    chromium.press("Apply").await;
    chromium.until_text("tenant_id").await;
    let alert = chromium.text("#alert").await;
    assert!(alert.contains("tenant_id"), "{alert}");

    chromium.close().await;
}

async fn a_workspace_owner_sees_only_their_workspace(backing: Backing) {
    let tenet = start(&backing).await;
    let mine = Board::new(&tenet, "Mine").await;
    mine.add_task("Mine only").await;
    let theirs = Board::new(&tenet, "Theirs").await;
    theirs.add_task("Not for you").await;
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    signs_in(&chromium, &tenet, &mine.owner).await;
    let nav = chromium.text("#nav").await;
    assert!(nav.contains("Audit log"), "{nav}");
    assert!(
        !nav.contains("Projections") && !nav.contains("Users"),
        "{nav}"
    );
    let scopes = chromium.text("select[name=scope]").await;
    assert!(!scopes.contains("platform"), "{scopes}");
    // The page is the owner's workspace log: the same total as the API's,
    // and none of the other workspace's streams.
    let total = mine
        .client()
        .get(&format!("/api/v1/workspaces/{}/audit-log", mine.workspace))
        .await
        .assert_status(200)["total"]
        .as_u64()
        .expect("total");
    chromium.until_text(&format!(" of {total}")).await;
    assert!(!scopes.contains("Theirs"), "{scopes}");
    // Another workspace's log is not reachable by editing the address.
    let other = format!("/console/#/audit?scope={}", theirs.workspace);
    chromium
        .page()
        .goto(&tenet.url(&other))
        .await
        .expect("open");
    chromium.until_text("No such workspace").await;
    chromium.close().await;
}

in_both_modes!(
    the_console_is_served_with_a_strict_policy,
    admins_travel_to_a_stream_state_of_any_workspace,
    an_admin_uses_the_console_in_a_browser,
    a_workspace_owner_sees_only_their_workspace,
);

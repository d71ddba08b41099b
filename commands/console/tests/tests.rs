//! HTTP-level tests of the console against a recording fake cluster and a table of accounts:
//! what a browser (or an attacker without a session) gets for each request.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use clever_console::auth::{AuthError, Authenticator};
use clever_console::cluster::{Cluster, MovePlan};
use clever_console::server::{self, Console};
use clevervm::error::ClevervmError;
use clevervm::model::{Cluster as ClusterModel, ClusterView, NodeView, Snapshot, VmView};
use clevervm::timeline::{Move, MoveKind, Phase};
use clevervm::StatusReport;
use futures_util::StreamExt;
use tower::ServiceExt;

mod browser;
mod lab;
mod pam;
mod support;

/// Records every call that would change the cluster; the VM moves when told to.
#[derive(Debug, Default)]
pub struct FakeCluster {
    calls: Mutex<Vec<String>>,
    vm_on: Mutex<String>,
    refusal: Mutex<Option<String>>,
    /// While false, a migration waits half-way (to test one action at a time).
    release: AtomicBool,
    /// Each phase of a migration takes a second, as a person watching would see it.
    pub slow: AtomicBool,
}

impl FakeCluster {
    pub fn new() -> Arc<Self> {
        let fake = Self::default();
        *fake.vm_on.lock().unwrap() = "node1".to_owned();
        fake.release.store(true, Ordering::SeqCst);
        Arc::new(fake)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Cluster for FakeCluster {
    fn report(&self) -> StatusReport {
        let on = self.vm_on.lock().unwrap().clone();
        let node = |name: &str| NodeView {
            name: name.to_owned(),
            state: "online".to_owned(),
            dc: name == "node1",
            attributes: [("pingd".to_owned(), "1000".to_owned())].into(),
        };
        StatusReport::of(Snapshot {
            node: Some("node1".to_owned()),
            cluster: ClusterView::Up(ClusterModel {
                quorum: Some(true),
                stonith_enabled: Some(true),
                nodes: vec![node("node1"), node("node2")],
                ..ClusterModel::default()
            }),
            configuration_error: None,
            storage: Vec::new(),
            vms: vec![VmView {
                resource: "vm".to_owned(),
                domain: "clever".to_owned(),
                running_on: vec![on],
                local_state: None,
                image: None,
                kept_images: Vec::new(),
            }],
            timeline: recorded_move(),
        })
    }

    fn plan_migrate(&self, to: Option<&str>) -> Result<MovePlan, ClevervmError> {
        if let Some(reason) = self.refusal.lock().unwrap().clone() {
            return Err(ClevervmError::CannotMigrate(reason));
        }
        let from = self.vm_on.lock().unwrap().clone();
        let other = if from == "node1" { "node2" } else { "node1" };
        if to.is_some_and(|t| t != "node1" && t != "node2") {
            return Err(ClevervmError::UnknownNode(
                to.unwrap_or_default().to_owned(),
            ));
        }
        Ok(MovePlan {
            from,
            to: vec![to.unwrap_or(other).to_owned()],
            vms: vec!["vm".to_owned()],
            last_move: Some(Duration::from_secs(7)),
        })
    }

    fn migrate(&self, to: Option<&str>, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        let plan = self.plan_migrate(to)?;
        self.calls
            .lock()
            .unwrap()
            .push(format!("migrate {}", to.unwrap_or("away")));
        let pause = || {
            if self.slow.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
            }
        };
        writeln!(progress, "vm stopping (hibernating) on {}", plan.from).unwrap();
        pause();
        let waited = Instant::now();
        while !self.release.load(Ordering::SeqCst) && waited.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        write!(progress, "vm starting (resuming) ").unwrap();
        writeln!(progress, "on {}", plan.to[0]).unwrap();
        pause();
        *self.vm_on.lock().unwrap() = plan.to[0].clone();
        write!(progress, "migration complete in 0.1s").unwrap();
        Ok(())
    }

    fn unmigrate(&self, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        self.calls.lock().unwrap().push("unmigrate".to_owned());
        writeln!(progress, "constraints removed").unwrap();
        Ok(())
    }

    fn cleanup(&self, progress: &mut dyn Write) -> Result<(), ClevervmError> {
        self.calls.lock().unwrap().push("cleanup".to_owned());
        writeln!(progress, "failures cleared").unwrap();
        Ok(())
    }
}

/// A 7 s move from node2 to node1, as clevervm's timeline derives it.
fn recorded_move() -> Vec<Move> {
    let phase = |resource: &str, operation: &str, node: &str, began: f64, seconds: f64| Phase {
        resource: resource.to_owned(),
        operation: operation.to_owned(),
        node: node.to_owned(),
        began,
        seconds,
        rc: 0,
    };
    vec![Move {
        vm: "vm".to_owned(),
        kind: MoveKind::Migration,
        from: Some("node2".to_owned()),
        to: Some("node1".to_owned()),
        began: 1_796_000_000.0,
        seconds: 7.0,
        phases: vec![
            phase("vm", "stop", "node2", 1_796_000_000.0, 3.0),
            phase("drbd", "demote", "node2", 1_796_000_003.0, 0.5),
            phase("drbd", "promote", "node1", 1_796_000_003.5, 0.5),
            phase("vm", "start", "node1", 1_796_000_004.0, 3.0),
        ],
    }]
}

/// alice is an administrator; bob has a password but is not in haclient.
#[derive(Debug)]
pub struct Accounts;

impl Authenticator for Accounts {
    fn authenticate(&self, user: &str, password: &str) -> Result<(), AuthError> {
        match (user, password) {
            ("alice", "right") => Ok(()),
            ("bob", "right") => Err(AuthError::NotInGroup {
                user: "bob".to_owned(),
                group: "haclient".to_owned(),
            }),
            _ => Err(AuthError::Rejected),
        }
    }
}

struct Harness {
    fake: Arc<FakeCluster>,
    app: Router,
}

impl Harness {
    fn new() -> Self {
        let fake = FakeCluster::new();
        let console = Console::new(
            Arc::clone(&fake) as Arc<dyn Cluster>,
            Arc::new(Accounts),
            Duration::from_millis(50),
        );
        tokio::spawn(server::refresh_loop(Arc::clone(&console)));
        Self {
            fake,
            app: server::router(console),
        }
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Response<Body> {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Response<Body> {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// Logs alice in: the cookie pair to send back, and the CSRF token of her session.
    async fn login(&self) -> (String, String) {
        let response = self.post("/login", None, "user=alice&password=right").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&response).expect("a session cookie");
        let pair = cookie.split(';').next().unwrap().to_owned();
        let page = text(self.get("/", Some(&pair)).await).await;
        (pair, csrf_of(&page))
    }

    async fn action(&self, cookie: &str) -> serde_json::Value {
        let response = self.get("/api/action", Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        serde_json::from_str(&text(response).await).unwrap()
    }

    /// Polls the action until it has an outcome (bounded).
    async fn outcome(&self, cookie: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let action = self.action(cookie).await;
            if !action["outcome"].is_null() {
                return action;
            }
            assert!(Instant::now() < deadline, "no outcome: {action}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn set_cookie(response: &Response<Body>) -> Option<String> {
    response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub fn csrf_of(page: &str) -> String {
    let start = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn without_a_session_nothing_is_shown_and_nothing_changes() {
    let h = Harness::new();
    let response = h.get("/", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/login");
    for path in ["/api/status", "/api/action", "/events"] {
        assert_eq!(
            h.get(path, None).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let forged = "__Host-clever-session=forged";
    assert_eq!(
        h.get("/api/status", Some(forged)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for path in ["/migrate", "/unmigrate", "/cleanup", "/logout"] {
        let response = h.post(path, Some(forged), "csrf=x").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(h.fake.calls().is_empty());
    // The login page itself is served, with the headers every page gets.
    let response = h.get("/login", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn a_wrong_password_or_a_user_outside_haclient_is_refused() {
    let h = Harness::new();
    for form in [
        "user=alice&password=wrong",
        "user=bob&password=right",
        "user=&password=",
        "user=alice",
    ] {
        let response = h.post("/login", None, form).await;
        assert!(
            response.status() == StatusCode::UNAUTHORIZED
                || response.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{form}: {}",
            response.status()
        );
        assert!(set_cookie(&response).is_none(), "{form}");
    }
}

#[tokio::test]
async fn failed_logins_are_rate_limited_even_for_the_right_password() {
    let h = Harness::new();
    for _ in 0..5 {
        let response = h.post("/login", None, "user=alice&password=guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = h.post("/login", None, "user=alice&password=right").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(set_cookie(&response).is_none());
}

#[tokio::test]
async fn a_login_gets_a_strict_cookie_and_the_status_screen() {
    let h = Harness::new();
    let response = h.post("/login", None, "user=alice&password=right").await;
    let cookie = set_cookie(&response).unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(cookie.starts_with("__Host-clever-session="));
    let (pair, csrf) = h.login().await;
    assert!(csrf.len() >= 40, "{csrf}");
    let page = text(h.get("/", Some(&pair)).await).await;
    for expected in [
        "No problems: the VM is safe.",
        "runs on",
        "node1",
        "1000",
        "will be hibernated on node1 and resumed on node2",
        "for about 7 s",
        "Logged in as",
    ] {
        assert!(
            page.contains(expected),
            "the page lacks {expected:?}:\n{page}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&text(h.get("/api/status", Some(&pair)).await).await).unwrap();
    assert_eq!(
        status["report"]["status"]["vms"][0]["running_on"][0],
        "node1"
    );
    assert!(status["report"]["problems"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_csrf_token_is_refused_and_changes_nothing() {
    let h = Harness::new();
    let (cookie, csrf) = h.login().await;
    for path in ["/migrate", "/unmigrate", "/cleanup", "/logout"] {
        for form in [String::new(), "csrf=".to_owned(), format!("csrf={csrf}x")] {
            let response = h.post(path, Some(&cookie), &form).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {form}");
        }
    }
    assert!(h.fake.calls().is_empty());
    assert!(h.action(&cookie).await["what"].is_null());
}

#[tokio::test]
async fn migrate_is_performed_and_followed_to_the_end() {
    let h = Harness::new();
    let (cookie, csrf) = h.login().await;
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}&to="))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let action = h.outcome(&cookie).await;
    assert_eq!(
        action["outcome"]["Ok"],
        "migrate to the other node finished."
    );
    assert_eq!(action["user"], "alice");
    let lines: Vec<&str> = action["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "vm stopping (hibernating) on node1",
            "vm starting (resuming) on node2",
            "migration complete in 0.1s"
        ]
    );
    assert_eq!(h.fake.calls(), ["migrate away"]);
    let page = text(h.get("/", Some(&cookie)).await).await;
    assert!(
        page.contains("runs on <b class=\"node\">node2</b>"),
        "{page}"
    );
    // To a chosen node, and the two other actions.
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}&to=node1"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(h.outcome(&cookie).await["outcome"]["Ok"].is_string());
    for verb in ["unmigrate", "cleanup"] {
        let response = h
            .post(&format!("/{verb}"), Some(&cookie), &format!("csrf={csrf}"))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.action(&cookie).await["what"] != verb || h.action(&cookie).await["running"] == true
        {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        h.fake.calls(),
        ["migrate away", "migrate node1", "unmigrate", "cleanup"]
    );
}

#[tokio::test]
async fn a_refused_move_says_why_and_does_nothing() {
    let h = Harness::new();
    let (cookie, csrf) = h.login().await;
    *h.fake.refusal.lock().unwrap() =
        Some("no other node can take the stack: node2 is offline".to_owned());
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let page = text(response).await;
    assert!(
        page.contains("Refused: no other node can take the stack: node2 is offline"),
        "{page}"
    );
    assert!(page.contains("Cannot move now"), "{page}");
    *h.fake.refusal.lock().unwrap() = None;
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}&to=node9"))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(text(response)
        .await
        .contains("node node9 is not a cluster node"));
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn one_action_at_a_time() {
    let h = Harness::new();
    let (cookie, csrf) = h.login().await;
    h.fake.release.store(false, Ordering::SeqCst);
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = h
        .post("/cleanup", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(text(response)
        .await
        .contains("another action is running (migrate to the other node)"));
    h.fake.release.store(true, Ordering::SeqCst);
    h.outcome(&cookie).await;
    assert_eq!(h.fake.calls(), ["migrate away"]);
}

#[tokio::test]
async fn the_event_stream_sends_the_status_and_the_phases_and_ends_at_logout() {
    let h = Harness::new();
    let (cookie, csrf) = h.login().await;
    let response = h.get("/events", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let mut seen = String::new();
    let mut next = async |seen: &mut String, until: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(until) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {until:?} in:\n{seen}"))
                .expect("the stream ended")
                .unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    next(&mut seen, "event: status").await;
    next(&mut seen, "No problems: the VM is safe.").await;
    let response = h
        .post("/migrate", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    next(&mut seen, "event: progress").await;
    next(&mut seen, "migration complete").await;
    next(&mut seen, "runs on <b class=\"node\">node2</b>").await;
    let response = h
        .post("/logout", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&response).unwrap().contains("Max-Age=0"));
    assert_eq!(
        h.get("/api/status", Some(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

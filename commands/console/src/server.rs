//! The HTTP side: routes, sessions and CSRF, the login limiter, the event stream, and the one
//! action at a time that may change the cluster. Everything that touches the cluster goes
//! through the [`Cluster`] seam on a blocking thread.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    RETRY_AFTER, SET_COOKIE, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use clevervm::StatusReport;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};

use crate::auth::{AuthError, Authenticator};
use crate::cluster::{Cluster, MovePlan};
use crate::page;
use crate::ratelimit::LoginLimiter;
use crate::session::{self, same_secret, Session, Sessions};

/// What the status part of the screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    pub report: StatusReport,
    /// Whether a move may start now (and what it would do), or why not.
    pub migrate: Result<MovePlan, String>,
}

/// The action running or last run, with its progress: the console runs one at a time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionState {
    pub what: Option<String>,
    pub user: String,
    pub started: String,
    pub running: bool,
    pub lines: Vec<String>,
    pub outcome: Option<Result<String, String>>,
}

/// Logins checked by PAM at once; more wait, so a flood cannot occupy every blocking thread.
const CONCURRENT_LOGINS: usize = 4;
/// Forms are a token and a node name, a login a name and a password.
const MAX_BODY: usize = 16 * 1024;

pub struct Console {
    cluster: Arc<dyn Cluster>,
    auth: Arc<dyn Authenticator>,
    sessions: Mutex<Sessions>,
    limiter: Mutex<LoginLimiter>,
    logins: Semaphore,
    view: watch::Sender<Option<Arc<View>>>,
    action: watch::Sender<ActionState>,
    refresh: Duration,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means another request panicked; the tables stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Console {
    pub fn new(
        cluster: Arc<dyn Cluster>,
        auth: Arc<dyn Authenticator>,
        refresh: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            auth,
            sessions: Mutex::default(),
            limiter: Mutex::default(),
            logins: Semaphore::new(CONCURRENT_LOGINS),
            view: watch::Sender::new(None),
            action: watch::Sender::new(ActionState::default()),
            refresh,
        })
    }

    /// Reads the cluster now and publishes the result to every open page.
    pub async fn refresh_now(&self) -> Arc<View> {
        let cluster = Arc::clone(&self.cluster);
        let fresh = tokio::task::spawn_blocking(move || View {
            report: cluster.report(),
            migrate: cluster.plan_migrate(None).map_err(|e| e.to_string()),
        })
        .await;
        match fresh {
            Ok(view) => {
                let view = Arc::new(view);
                // Open pages are sent only what changed: a replaced fragment would close a
                // menu or move a button under the admin's pointer for nothing.
                self.view.send_if_modified(|current| {
                    if current.as_deref() == Some(&*view) {
                        return false;
                    }
                    *current = Some(Arc::clone(&view));
                    true
                });
                view
            }
            Err(e) => {
                log::error!("reading the cluster failed: {e}");
                match self.view.borrow().clone() {
                    Some(view) => view,
                    None => Arc::new(View {
                        report: StatusReport::of(clevervm::model::Snapshot {
                            node: None,
                            cluster: clevervm::model::ClusterView::Down {
                                reason: format!("reading the cluster failed: {e}"),
                            },
                            configuration_error: None,
                            storage: Vec::new(),
                            vms: Vec::new(),
                            timeline: Vec::new(),
                        }),
                        migrate: Err("the cluster could not be read".to_owned()),
                    }),
                }
            }
        }
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie_token(headers)?;
        let session = lock(&self.sessions).touch(&token, Instant::now())?;
        Some((token, session))
    }

    pub fn action(&self) -> ActionState {
        self.action.borrow().clone()
    }
}

/// Keeps open pages current: reads the cluster every `refresh` while a page listens or an
/// action runs, and not at all otherwise.
pub async fn refresh_loop(console: Arc<Console>) {
    loop {
        if console.view.receiver_count() > 0 || console.action.borrow().running {
            console.refresh_now().await;
        }
        tokio::time::sleep(console.refresh).await;
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/events", get(events))
        .route("/api/status", get(api_status))
        .route("/api/action", get(api_action))
        .route("/migrate", post(migrate))
        .route("/unmigrate", post(unmigrate))
        .route("/cleanup", post(cleanup))
        .route("/static/console.js", get(script))
        .route("/static/console.css", get(style))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// The peer's address, when the server recorded it (tests without a socket have none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => write!(f, "an unknown address"),
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == session::COOKIE)
        .map(|(_, value)| value.to_owned())
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

async fn script() -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        page::SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE).into_response()
}

async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some((_, session)) = console.session(&headers) else {
        return see_other("/login");
    };
    let view = console.refresh_now().await;
    let action = console.action();
    html(
        StatusCode::OK,
        page::screen(&session.user, &session.csrf, &view, &action, None),
    )
}

async fn login_form(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).is_some() {
        return see_other("/");
    }
    html(StatusCode::OK, page::login(None))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    client: ClientAddr,
    Form(form): Form<LoginForm>,
) -> Response {
    // The name as logged and as a limiter key: bounded, and quoted where printed.
    let user: String = form.user.chars().take(64).collect();
    if let Err(wait) = lock(&console.limiter).check(client.0, &user, Instant::now()) {
        log::warn!("login as {user:?} from {client}: too many failed logins, refused");
        let seconds = wait.as_secs().max(1);
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            page::login(Some(&format!(
                "Too many failed logins: try again in {seconds} s."
            ))),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let verdict = match console.logins.acquire().await {
        Ok(_permit) => {
            let auth = Arc::clone(&console.auth);
            let (name, password) = (user.clone(), form.password);
            tokio::task::spawn_blocking(move || auth.authenticate(&name, &password))
                .await
                .unwrap_or_else(|e| Err(AuthError::Pam(e.to_string())))
        }
        Err(e) => Err(AuthError::Pam(e.to_string())),
    };
    match verdict {
        Ok(()) => {
            lock(&console.limiter).succeeded(client.0, &user);
            let token = match lock(&console.sessions).create(&user, Instant::now()) {
                Ok(token) => token,
                Err(e) => {
                    log::error!("login as {user:?} from {client}: {e}");
                    return html(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        page::login(Some("The server cannot make a session now.")),
                    );
                }
            };
            log::info!("{user} logged in from {client}");
            let cookie = format!(
                "{}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
                session::COOKIE,
                session::LIFETIME.as_secs()
            );
            let mut response = see_other("/");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            lock(&console.limiter).failed(client.0, &user, Instant::now());
            log::warn!("login as {user:?} from {client} refused: {e}");
            let message = match e {
                AuthError::Pam(_) => "The login could not be checked (see the system log).",
                AuthError::Rejected | AuthError::NotInGroup { .. } => {
                    "Login refused: wrong user name or password, or not a member of the \
                     haclient group."
                }
            };
            html(StatusCode::UNAUTHORIZED, page::login(Some(message)))
        }
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

/// Why a state-changing request is turned away before anything is looked at.
#[derive(Debug, Clone, Copy)]
enum Unauthorised {
    NoSession,
    Csrf,
}

impl IntoResponse for Unauthorised {
    fn into_response(self) -> Response {
        match self {
            Self::NoSession => (StatusCode::UNAUTHORIZED, "log in first\n").into_response(),
            Self::Csrf => (StatusCode::FORBIDDEN, "missing or wrong CSRF token\n").into_response(),
        }
    }
}

/// The session of a state-changing request whose CSRF token matches, or the refusal.
fn authorised(
    console: &Console,
    headers: &HeaderMap,
    form: &CsrfForm,
    client: ClientAddr,
    what: &str,
) -> Result<(String, Session), Unauthorised> {
    let Some((token, session)) = console.session(headers) else {
        return Err(Unauthorised::NoSession);
    };
    if !same_secret(&form.csrf, &session.csrf) {
        log::warn!(
            "{} from {client}: {what} refused, missing or wrong CSRF token",
            session.user
        );
        return Err(Unauthorised::Csrf);
    }
    Ok((token, session))
}

async fn logout(
    State(console): State<Arc<Console>>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (token, session) = match authorised(&console, &headers, &form, client, "logout") {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    lock(&console.sessions).remove(&token);
    log::info!("{} logged out from {client}", session.user);
    let mut response = see_other("/login");
    let expired = format!(
        "{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

async fn api_status(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    }
    Json(View::clone(&*console.refresh_now().await)).into_response()
}

async fn api_action(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    }
    Json(console.action()).into_response()
}

/// The verbs that change the cluster.
#[derive(Debug, Clone)]
enum Verb {
    Migrate(Option<String>),
    Unmigrate,
    Cleanup,
}

impl Verb {
    fn describe(&self) -> String {
        match self {
            Self::Migrate(None) => "migrate to the other node".to_owned(),
            Self::Migrate(Some(node)) => format!("migrate to {node}"),
            Self::Unmigrate => "unmigrate".to_owned(),
            Self::Cleanup => "cleanup".to_owned(),
        }
    }
}

async fn migrate(
    state: State<Arc<Console>>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let to = Some(form.to.trim().to_owned()).filter(|t| !t.is_empty());
    act(state, client, headers, form, Verb::Migrate(to)).await
}

async fn unmigrate(
    state: State<Arc<Console>>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    act(state, client, headers, form, Verb::Unmigrate).await
}

async fn cleanup(
    state: State<Arc<Console>>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    act(state, client, headers, form, Verb::Cleanup).await
}

/// Checks, starts the action in the background and answers at once: its phases reach the
/// page through the event stream.
async fn act(
    State(console): State<Arc<Console>>,
    client: ClientAddr,
    headers: HeaderMap,
    form: CsrfForm,
    verb: Verb,
) -> Response {
    let what = verb.describe();
    let (_, session) = match authorised(&console, &headers, &form, client, &what) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let user = session.user.clone();
    let refuse = |console: Arc<Console>, reason: String| async move {
        let view = console.refresh_now().await;
        let action = console.action();
        html(
            StatusCode::CONFLICT,
            page::screen(
                &session.user,
                &session.csrf,
                &view,
                &action,
                Some(&format!("Refused: {reason}")),
            ),
        )
    };
    if let Verb::Migrate(to) = &verb {
        let cluster = Arc::clone(&console.cluster);
        let target = to.clone();
        let plan = tokio::task::spawn_blocking(move || cluster.plan_migrate(target.as_deref()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|plan| plan.map_err(|e| e.to_string()));
        if let Err(reason) = plan {
            log::warn!("{user} from {client}: {what} refused: {reason}");
            return refuse(console, reason).await;
        }
    }
    let mut started = false;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    console.action.send_if_modified(|state| {
        if state.running {
            return false;
        }
        *state = ActionState {
            what: Some(what.clone()),
            user: user.clone(),
            started: started_at.clone(),
            running: true,
            lines: Vec::new(),
            outcome: None,
        };
        started = true;
        true
    });
    if !started {
        let running = console.action().what.unwrap_or_default();
        log::warn!("{user} from {client}: {what} refused, {running} is running");
        return refuse(console, format!("another action is running ({running})")).await;
    }
    log::info!("{user} from {client}: {what}");
    let worker = Arc::clone(&console);
    let done = tokio::task::spawn_blocking(move || {
        let mut progress = Progress {
            console: Arc::clone(&worker),
            partial: Vec::new(),
        };
        let result = match &verb {
            Verb::Migrate(to) => worker.cluster.migrate(to.as_deref(), &mut progress),
            Verb::Unmigrate => worker.cluster.unmigrate(&mut progress),
            Verb::Cleanup => worker.cluster.cleanup(&mut progress),
        };
        let _ = progress.flush();
        let outcome = match result {
            Ok(()) => {
                log::info!("{user}: {} finished", verb.describe());
                Ok(format!("{} finished.", verb.describe()))
            }
            Err(e) => {
                log::warn!("{user}: {} failed: {e}", verb.describe());
                Err(format!("{} failed: {e}", verb.describe()))
            }
        };
        worker.action.send_modify(|state| {
            state.running = false;
            state.outcome = Some(outcome);
        });
    });
    let refresher = Arc::clone(&console);
    tokio::spawn(async move {
        if let Err(e) = done.await {
            log::error!("an action ended abnormally: {e}");
            refresher.action.send_modify(|state| {
                state.running = false;
                state.outcome = Some(Err(format!("ended abnormally: {e}")));
            });
        }
        refresher.refresh_now().await;
    });
    see_other("/")
}

/// The action's output, line by line, to every open page.
struct Progress {
    console: Arc<Console>,
    partial: Vec<u8>,
}

impl Write for Progress {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            if !line.is_empty() {
                self.console
                    .action
                    .send_modify(|state| state.lines.push(line));
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            self.write(&[])?;
        }
        Ok(())
    }
}

/// Where an open page's stream stands.
struct Stream {
    console: Arc<Console>,
    token: String,
    csrf: String,
    view: watch::Receiver<Option<Arc<View>>>,
    action: watch::Receiver<ActionState>,
    ended: bool,
}

/// How often a stream re-checks that its session still lives.
const SESSION_CHECK: Duration = Duration::from_secs(15);

async fn events(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some((token, session)) = console.session(&headers) else {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    };
    let mut view = console.view.subscribe();
    view.mark_changed();
    let mut action = console.action.subscribe();
    action.mark_changed();
    let state = Stream {
        console,
        token,
        csrf: session.csrf,
        view,
        action,
        ended: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        let alive = lock(&s.console.sessions)
            .peek(&s.token, Instant::now())
            .is_some();
        if !alive {
            s.ended = true;
            return Some((
                Ok::<_, Infallible>(Event::default().event("logout").data("")),
                s,
            ));
        }
        let event = tokio::select! {
            changed = s.view.changed() => {
                if changed.is_err() {
                    return None;
                }
                let view = s.view.borrow_and_update().clone();
                let running = s.console.action.borrow().running;
                match view {
                    Some(view) => Event::default()
                        .event("status")
                        .data(page::status(&view, &s.csrf, running).into_string()),
                    None => Event::default().comment("reading the cluster"),
                }
            }
            changed = s.action.changed() => {
                if changed.is_err() {
                    return None;
                }
                let action = s.action.borrow_and_update().clone();
                Event::default().event("progress").data(page::progress(&action).into_string())
            }
            () = tokio::time::sleep(SESSION_CHECK) => Event::default().comment("alive"),
        };
        Some((Ok(event), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

//! Browser sessions: the dashboard logs in once with an API token
//! (`POST /api/login`) and then carries a session cookie (`EventSource`
//! cannot send an `Authorization` header). The cookie is `HttpOnly`,
//! `SameSite=Strict`, and `Secure` when the API is served over HTTPS. A
//! request authenticated by the cookie that changes anything (any method
//! but `GET`/`HEAD`) must carry the session's CSRF token in `X-CSRF-Token`.
//!
//! Sessions live in memory (a restart logs browsers out), at most
//! [`MAX_SESSIONS`], each for [`SESSION_TTL`]; the cookie holds a random
//! 256-bit id, and the server keeps only its SHA-256.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Body, Core, Error, json};
use crate::Scope;

/// The session cookie's name.
pub const COOKIE: &str = "bot_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts (from login).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; beyond it the oldest is dropped.
pub const MAX_SESSIONS: usize = 10_000;
/// Sessions of one token at most; beyond it that token's oldest is dropped
/// (one token logging in again and again cannot push others out).
pub const MAX_SESSIONS_PER_TOKEN: usize = 100;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub name: String,
    pub scope: Scope,
    pub csrf: String,
    expires: Instant,
}

/// The sessions, by SHA-256 of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session; returns its id (for the cookie).
    fn create(&self, name: String, scope: Scope) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            name,
            scope,
            csrf: random_hex(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        let mine: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, s)| s.name == session.name)
            .map(|(k, s)| (k.clone(), s.expires))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_TOKEN
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, e)| *e)
        {
            map.remove(oldest);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(bot_auth::digest_hex(id.as_bytes()), session.clone());
        (id, session)
    }

    /// The live session of a cookie id.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let key = bot_auth::digest_hex(id.as_bytes());
        let mut map = self.lock();
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(&bot_auth::digest_hex(id.as_bytes()));
    }
}

/// 256 random bits, hex.
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The session id in a request's cookies, if any.
pub(crate) fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `POST /api/login` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// An API token.
    pub token: String,
}

/// Who is logged in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// The token's name.
    pub name: String,
    /// Its scope.
    pub scope: &'static str,
    /// The CSRF token to send in `X-CSRF-Token` with every change.
    pub csrf: String,
}

fn info(s: &Session) -> SessionInfo {
    SessionInfo {
        name: s.name.clone(),
        scope: s.scope.as_str(),
        csrf: s.csrf.clone(),
    }
}

/// Logs a browser in with an API token: sets the session cookie and
/// returns the CSRF token. Repeated failures count against the address
/// like bad bearer tokens (429).
#[utoipa::path(post, path = "/api/login", security(()), request_body = Login,
    responses((status = 200, description = "Logged in; the session cookie is set", body = SessionInfo),
              (status = 401, description = "Invalid token", body = bot_proto::api::ApiError),
              (status = 429, description = "Too many failures from this address", body = bot_proto::api::ApiError)))]
pub(super) async fn login(
    State(core): State<Arc<Core>>,
    req: axum::extract::Request,
) -> Result<Response, Error> {
    // Requests from the network carry the peer's address (in-process
    // calls have none and are not limited), as in the token check.
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Body(body) =
        <Body<Login> as axum::extract::FromRequest<()>>::from_request(req, &()).await?;
    if let Some(retry) = ip.and_then(|ip| core.failures.blocked(ip)) {
        return Err(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed authentications from this address; retry in {retry} s"),
        ));
    }
    let Some(token) = core.token(body.token.trim()) else {
        if let Some(ip) = ip {
            core.failures.fail(ip);
        }
        return Err(Error::new(StatusCode::UNAUTHORIZED, "invalid token"));
    };
    let (id, session) = core.sessions.create(token.name, token.scope);
    let mut cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if core.secure_cookies {
        cookie.push_str("; Secure");
    }
    let mut r = json(StatusCode::OK, info(&session));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// The logged-in session (by its cookie).
#[utoipa::path(get, path = "/api/session", security(()),
    responses((status = 200, description = "Logged in", body = SessionInfo),
              (status = 401, description = "No valid session", body = bot_proto::api::ApiError)))]
pub(super) async fn session(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let s = cookie_id(&headers)
        .and_then(|id| core.sessions.get(id))
        .ok_or_else(|| Error::new(StatusCode::UNAUTHORIZED, "not logged in"))?;
    Ok(json(StatusCode::OK, info(&s)))
}

/// Logs the browser out: the session ends and the cookie is cleared.
#[utoipa::path(post, path = "/api/logout", security(()),
    responses((status = 204, description = "Logged out")))]
pub(super) async fn logout(State(core): State<Arc<Core>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_id(&headers) {
        core.sessions.remove(id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bot_session=abc ; b=2"),
        );
        assert_eq!(cookie_id(&h), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("bot_session="));
        assert_eq!(cookie_id(&h), None);
    }

    #[test]
    fn sessions_expire_and_are_capped() {
        let s = Sessions::default();
        let (id, session) = s.create("ops".into(), Scope::Read);
        assert_eq!(s.get(&id).map(|x| x.csrf), Some(session.csrf));
        assert!(s.get("other").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        // One token's sessions are capped; another token's are kept.
        let (other, _) = s.create("admin".into(), Scope::Admin);
        let first = s.create("ops".into(), Scope::Read).0;
        for _ in 0..MAX_SESSIONS_PER_TOKEN {
            s.create("ops".into(), Scope::Read);
        }
        assert!(
            s.get(&first).is_none(),
            "the oldest of the token's sessions went"
        );
        assert!(s.get(&other).is_some(), "another token's session stayed");
    }
}

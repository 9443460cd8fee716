//! The bare token server the hot path is measured against: axum, a SQLite lookup of the
//! token's digest and an ES256-signed registry token, nothing else (no cache, no usage or
//! access log, no throttle, no metrics). It is the floor the issue names for a load of
//! distinct tokens: one database lookup per request.
//!
//! `hubkey-bench bare-token-server DATA_DIR` serves `GET /token` on an ephemeral loopback
//! port for the bench user's tokens in `DATA_DIR/hubkeyd.db`, signing with that directory's
//! registry key, and prints `listening on URL` as hubkeyd does. The bench starts it as its
//! own process on the database it seeded for hubkeyd, so both serve the same file.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use hubkey_api::PlainToken;
use hubkeyd::registry::TokenIssuer;
use rusqlite::OptionalExtension;

use crate::Result;

/// The lookup: the token's owner and whether it may be used, by its digest.
const LOOKUP: &str = "SELECT u.username, t.is_active FROM access_tokens t \
                      JOIN users u ON u.id = t.user_id WHERE t.digest = ?1";

struct Bare {
    database: PathBuf,
    issuer: TokenIssuer,
}

thread_local! {
    /// One read connection per runtime thread: the lookup runs on the request's own thread.
    static CONNECTION: RefCell<Option<rusqlite::Connection>> = const { RefCell::new(None) };
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    service: String,
    scope: Option<String>,
}

/// Serves until killed (on the bench's own runtime: a worker thread per core, as hubkeyd).
pub async fn serve(mut args: impl Iterator<Item = String>) -> Result<()> {
    let data_dir = PathBuf::from(args.next().ok_or("usage: bare-token-server DATA_DIR")?);
    let keys = hubkeyd::registry::keys::RegistryKeys::open(&data_dir)?;
    let bare = Arc::new(Bare {
        database: data_dir.join("hubkeyd.db"),
        issuer: TokenIssuer::new(keys.signer()?)?,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/token", get(token)).with_state(bare);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn token(
    State(bare): State<Arc<Bare>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    match answer(&bare, &query, &headers) {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

fn answer(
    bare: &Bare,
    query: &TokenQuery,
    headers: &HeaderMap,
) -> Result<Option<serde_json::Value>> {
    let Some((user, secret)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(hubkeyd::http::registry::parse_basic)
    else {
        return Ok(None);
    };
    let Ok(token) = PlainToken::parse(&secret) else {
        return Ok(None);
    };
    let digest = token.digest();
    let owner = CONNECTION.with(|cell| -> Result<Option<(String, bool)>> {
        let mut cell = cell.borrow_mut();
        let conn = match cell.as_mut() {
            Some(conn) => conn,
            None => cell.insert(open(&bare.database)?),
        };
        let owner = conn
            .prepare_cached(LOOKUP)?
            .query_row([digest.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(owner)
    })?;
    match owner {
        Some((username, true)) if username == user => {}
        _ => return Ok(None),
    }
    let scopes: Vec<&str> = query.scope.iter().map(String::as_str).collect();
    let access = hubkeyd::registry::access::parse_scopes(&scopes)?;
    let issued = bare
        .issuer
        .issue(&user, &query.service, &access, Utc::now())?;
    Ok(Some(serde_json::json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    })))
}

fn open(database: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(15))?;
    Ok(conn)
}

/// A running bare token server, stopped when dropped.
pub struct BareServer {
    pub url: String,
    child: Child,
}

impl BareServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts this executable's `bare-token-server` on `data_dir` (seeded, hubkeyd's).
    pub fn start(data_dir: &Path) -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("bare-token-server")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the bare token server did not start".into());
        };
        Ok(BareServer {
            url: url.to_owned(),
            child,
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

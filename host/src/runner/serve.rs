//! Serve mode: one JavaScript file (a web bundle) at `/<SERVE_PATH>/<SERVE_NAME>`, with an
//! `ETag` so browsers and CDNs revalidate instead of downloading it again.
//!
//! The file is read again whenever its size or modification time changes, so replacing it on
//! disk takes effect without a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH, LAST_MODIFIED};
use http::{Method, Request, StatusCode};
use sha2::{Digest, Sha256};

use crate::intake::response::{self, HttpResponse};
use crate::intake::routes::PathPattern;
use crate::metrics::Route;

/// Browsers and CDNs may use the file for this long without asking; after that they
/// revalidate with the `ETag` (a 304 costs a few bytes). Five minutes: a new tag-manager
/// version reaches visitors soon, and a busy site still saves most downloads.
const CACHE_CONTROL_VALUE: HeaderValue =
    HeaderValue::from_static("public, max-age=300, must-revalidate");

/// The file serve mode serves.
pub struct ServedFile {
    file: PathBuf,
    url_path: String,
    pattern: PathPattern,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    body: Bytes,
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
}

impl ServedFile {
    /// Serves `file` at `/<serve_path>/<serve_name>` (`/walker.js` by default).
    pub fn new(file: &Path, serve_path: &str, serve_name: &str) -> Self {
        let dir = serve_path.trim_matches('/');
        let name = serve_name.trim_matches('/');
        let url_path = if dir.is_empty() {
            format!("/{name}")
        } else {
            format!("/{dir}/{name}")
        };
        Self {
            file: file.to_path_buf(),
            pattern: PathPattern::new(&url_path),
            url_path,
            cached: Mutex::new(None),
        }
    }

    /// The file on disk.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where it is served.
    pub fn url_path(&self) -> &str {
        &self.url_path
    }

    /// Answers a request that is not for one of the runner's endpoints.
    pub fn handle<B>(&self, request: &Request<B>) -> (Route, HttpResponse) {
        let method = request.method();
        let path = request.uri().path();
        if !self.pattern.matches(path) || !(method == Method::GET || method == Method::HEAD) {
            let message = format!("Cannot {method} {path}");
            return (
                Route::Other,
                response::html_error(StatusCode::NOT_FOUND, &message),
            );
        }
        let cached = match self.load() {
            Ok(cached) => cached,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (Route::Serve, text(StatusCode::NOT_FOUND, "File not found"));
            }
            Err(e) => {
                tracing::error!(file = %self.file.display(), error = %e, "Cannot read the served file");
                return (
                    Route::Serve,
                    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
                );
            }
        };

        let revalidated = request
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == "*" || t.as_bytes() == cached.etag.as_bytes())
            });
        let mut response = if revalidated {
            response::empty(StatusCode::NOT_MODIFIED)
        } else {
            response::with_body(
                StatusCode::OK,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
                cached.body.clone(),
            )
        };
        let headers = response.headers_mut();
        headers.insert(ETAG, cached.etag.clone());
        headers.insert(CACHE_CONTROL, CACHE_CONTROL_VALUE);
        if let Some(modified) = cached.last_modified {
            headers.insert(LAST_MODIFIED, modified);
        }
        (Route::Serve, response)
    }

    /// The file's contents, read again when its size or modification time changed.
    fn load(&self) -> std::io::Result<Cached> {
        let meta = std::fs::metadata(&self.file)?;
        let modified = meta.modified().ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cached.as_ref()
            && hit.len == meta.len()
            && hit.modified == modified
        {
            return Ok(hit.clone());
        }
        let body = Bytes::from(std::fs::read(&self.file)?);
        let digest = hex::encode(&Sha256::digest(&body)[..16]);
        let fresh = Cached {
            modified,
            len: meta.len(),
            etag: HeaderValue::from_str(&format!("\"{digest}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
            last_modified: modified
                .and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()),
            body,
        };
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

fn text(status: StatusCode, message: &'static str) -> HttpResponse {
    response::with_body(
        status,
        HeaderValue::from_static("text/html; charset=utf-8"),
        Bytes::from_static(message.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_path_joins_serve_path_and_name() {
        let f = ServedFile::new(Path::new("/x.js"), "", "walker.js");
        assert_eq!(f.url_path(), "/walker.js");
        let f = ServedFile::new(Path::new("/x.js"), "/static/js/", "tag.js");
        assert_eq!(f.url_path(), "/static/js/tag.js");
    }

    #[test]
    fn serves_revalidates_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("walker.js");
        std::fs::write(&file, "console.log(1)").unwrap();
        let served = ServedFile::new(&file, "", "walker.js");

        let (_, first) = served.handle(&Request::get("/walker.js").body(()).unwrap());
        assert_eq!(first.status(), 200);
        let etag = first.headers()[ETAG].clone();

        let again = Request::get("/walker.js")
            .header(IF_NONE_MATCH, etag.clone())
            .body(())
            .unwrap();
        assert_eq!(served.handle(&again).1.status(), 304);

        std::fs::write(&file, "console.log(22)").unwrap();
        let (_, changed) = served.handle(&again);
        assert_eq!(changed.status(), 200);
        assert_ne!(changed.headers()[ETAG], etag);

        let (_, other) = served.handle(&Request::get("/other.js").body(()).unwrap());
        assert_eq!(other.status(), 404);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(served.handle(&again).1.status(), 404);
    }
}

//! Outbound HTTP for guests: turns the JSON request of `host.http-start` into a real request
//! under the flow's limits and answers with the JSON that `guest.io-complete` delivers.
//!
//! One [`Outbound`] belongs to one flow and enforces its policy: allowed hosts, concurrent
//! requests, timeout and body sizes. Every flow shares the process's `reqwest::Client` and thus
//! one connection pool. This module does not assign request ids or deliver responses to the
//! guest; the sandbox does both.

use std::error::Error as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::{debug, trace};

/// Sent unless the guest sets its own `user-agent`.
const USER_AGENT: &str = concat!("flowhost/", env!("CARGO_PKG_VERSION"));

/// Idle pooled connections are closed after this long. Load balancers commonly drop idle
/// connections after 60 s; closing ours first avoids reusing one the peer is closing. Half of
/// that is an arbitrary margin.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers a guest may not set; they are dropped silently, as `fetch` drops them. They
/// describe the connection and its framing, which the host owns, and a guest-chosen `host`
/// would reach other virtual hosts behind an allowed address.
const DROPPED_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Answer of last resort if a response cannot be serialised, which should never happen.
const FALLBACK_ERROR: &str =
    r#"{"error":"the host could not encode the response","kind":"network"}"#;

/// The limits one flow's outbound requests run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Hosts the flow may call. `None` allows any host; `Some` denies every host not listed.
    /// Entries are exact host names (`api.example.com`), suffix wildcards (`*.example.com`,
    /// which matches subdomains but not `example.com` itself) or IP addresses, each optionally
    /// with `:port` to allow only that port. Default `None`, so that a flow works before an
    /// operator has listed its destinations.
    pub allow_hosts: Option<Vec<String>>,
    /// Requests of this flow in flight at once; more wait for a free slot. It bounds the
    /// sockets and response buffers one flow can hold. Default 256: far above what a
    /// destination batching its events needs, low enough that a runaway loop cannot exhaust
    /// the process's file descriptors.
    pub max_concurrency: usize,
    /// Longest a request may take from `send` to the last body byte, including the wait for a
    /// slot. A request's `timeoutMs` can lower it, never raise it. Default 10 s, so that a
    /// stalled destination cannot keep a flow's slots forever.
    pub timeout: Duration,
    /// Longest the TCP and TLS handshakes may take. It is a property of the shared client, so
    /// [`Outbound::default_client`] applies it; an `Outbound` built on that client only has
    /// `timeout`. Default 5 s: a reachable host answers within a few round trips.
    pub connect_timeout: Duration,
    /// Largest response body accepted, after decompression; a larger one fails with
    /// `too-large` and is never held in memory beyond this. Default 4 MiB, well above an API
    /// response and small next to the guest's memory, where the body is copied.
    pub max_response_bytes: usize,
    /// Largest request body accepted, after base64 decoding. Default 4 MiB, the same bound as
    /// responses.
    pub max_request_bytes: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_hosts: None,
            max_concurrency: 256,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 4 * 1024 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why a policy cannot be used; reported when the flow is loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// An allowed-hosts entry cannot be parsed.
    #[error(
        "allowed host {entry:?} is not valid: {reason}; use a host name, `*.example.com` or an \
         IP address, optionally followed by `:port`"
    )]
    InvalidHost {
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `max_concurrency` is zero, which would make every request wait forever, or too large
    /// for a semaphore.
    #[error("outbound max concurrency {0} is not usable; use a value from 1 to 1000000")]
    Concurrency(usize),
    /// `timeout` is zero, which would fail every request.
    #[error("outbound timeout must be longer than zero")]
    ZeroTimeout,
}

/// Counters of one flow's outbound requests, for metrics. Every request that `send` finished
/// counts once in `started` and once in exactly one of `succeeded`, `failed` or `denied`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundStats {
    /// Calls to [`Outbound::send`].
    pub started: u64,
    /// Requests that received a response, whatever its status.
    pub succeeded: u64,
    /// Requests that were invalid, timed out, hit a size limit or a network error.
    pub failed: u64,
    /// Requests to a host that is not allowed.
    pub denied: u64,
    /// Requests holding a concurrency slot now, i.e. using or waiting for a socket.
    pub in_flight: u64,
}

/// Makes the outbound requests of one flow.
#[derive(Debug)]
pub struct Outbound {
    /// The shared client; cloning it shares its pool.
    client: reqwest::Client,
    /// Parsed `allow_hosts`; `None` allows every host.
    allow: Option<Vec<HostRule>>,
    /// One permit per request in flight, `max_concurrency` in all.
    slots: Semaphore,
    timeout: Duration,
    max_request_bytes: usize,
    max_response_bytes: usize,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    denied: AtomicU64,
    in_flight: AtomicU64,
}

/// One parsed `allow_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: HostPattern,
    /// `None` allows every port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A host name or IP address as `Url` normalises it (lower case, punycode, `[v6]`).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
}

/// The guest's request, as `host.http-start` receives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson {
    method: Option<String>,
    url: String,
    headers: Option<Vec<(String, String)>>,
    body: Option<String>,
    body_encoding: Option<String>,
    timeout_ms: Option<f64>,
}

/// The answer on success, as `guest.io-complete` delivers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseJson {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    body_encoding: &'static str,
}

/// The answer on failure.
#[derive(Debug, Serialize)]
struct ErrorJson {
    error: String,
    kind: &'static str,
}

/// A validated request, ready to send.
#[derive(Debug)]
struct Prepared {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
    /// `host:port`, for messages; never the full URL, whose query may hold credentials.
    target: String,
}

/// Why a request failed; its `kind` is the `kind` of the error JSON.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "requests to {target} are not allowed for this flow; add {host:?} to the flow's \
         allowed hosts"
    )]
    Denied { target: String, host: String },
    #[error("request to {target} timed out after {} ms", .after.as_millis())]
    Timeout { target: String, after: Duration },
    #[error("request to {target} failed: {detail}")]
    Network { target: String, detail: String },
    #[error("{0}")]
    TooLarge(String),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Denied { .. } => "denied",
            Self::Timeout { .. } => "timeout",
            Self::Network { .. } => "network",
            Self::TooLarge(_) => "too-large",
        }
    }
}

/// Counts a request in `in_flight` while it holds a slot, also if its future is dropped.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Outbound {
    /// Creates the outbound client of one flow on the process's shared `client`.
    ///
    /// Fails if an allowed-hosts entry cannot be parsed or a limit is zero, naming the value.
    pub fn new(policy: OutboundPolicy, client: reqwest::Client) -> Result<Self, PolicyError> {
        // An arbitrary ceiling, far beyond any real need and below tokio's permit limit.
        if !(1..=1_000_000).contains(&policy.max_concurrency) {
            return Err(PolicyError::Concurrency(policy.max_concurrency));
        }
        if policy.timeout.is_zero() {
            return Err(PolicyError::ZeroTimeout);
        }
        let allow = match &policy.allow_hosts {
            None => None,
            Some(entries) => Some(
                entries
                    .iter()
                    .map(|entry| parse_rule(entry))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };

        Ok(Self {
            client,
            allow,
            slots: Semaphore::new(policy.max_concurrency),
            timeout: policy.timeout,
            max_request_bytes: policy.max_request_bytes,
            max_response_bytes: policy.max_response_bytes,
            counters: Counters::default(),
        })
    }

    /// Builds the client that every flow's `Outbound` should share: one connection pool and one
    /// TLS configuration per process. `policy` supplies the connect timeout.
    pub fn default_client(policy: &OutboundPolicy) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            // Redirects are not followed. The client is shared by flows with different allowed
            // hosts, so a followed redirect would skip the check; the guest gets the 3xx and
            // its `location` instead, and a request there is checked like any other.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
    }

    /// Performs the request described by `request_json` and returns the JSON for
    /// `guest.io-complete`: the response, or an error with its kind. Never panics and never
    /// takes longer than the policy's timeout.
    pub async fn send(&self, request_json: &str) -> String {
        self.counters.started.fetch_add(1, Ordering::Relaxed);

        let outcome = self.perform(request_json).await;

        let counter = match &outcome {
            Ok(_) => &self.counters.succeeded,
            Err(Failure::Denied { .. }) => &self.counters.denied,
            Err(_) => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        let json = match outcome {
            Ok(response) => {
                trace!(status = response.status, "Outbound request completed");
                serde_json::to_string(&response)
            }
            Err(failure) => {
                debug!(kind = failure.kind(), error = %failure, "Outbound request failed");
                serde_json::to_string(&ErrorJson {
                    error: failure.to_string(),
                    kind: failure.kind(),
                })
            }
        };
        json.unwrap_or_else(|_| FALLBACK_ERROR.to_owned())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> OutboundStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        OutboundStats {
            started: read(&self.counters.started),
            succeeded: read(&self.counters.succeeded),
            failed: read(&self.counters.failed),
            denied: read(&self.counters.denied),
            in_flight: read(&self.counters.in_flight),
        }
    }

    /// Validates, checks the allowed hosts, then exchanges the request within its timeout.
    async fn perform(&self, request_json: &str) -> Result<ResponseJson, Failure> {
        let request = self.prepare(request_json)?;
        self.check_allowed(&request)?;

        let (target, timeout) = (request.target.clone(), request.timeout);
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .unwrap_or(Err(Failure::Timeout {
                target,
                after: timeout,
            }))
    }

    /// Parses and validates the guest's JSON without touching the network.
    fn prepare(&self, request_json: &str) -> Result<Prepared, Failure> {
        let invalid = Failure::Invalid;
        let request: RequestJson = serde_json::from_str(request_json)
            .map_err(|error| invalid(format!("the request is not valid JSON: {error}")))?;

        let method = parse_method(request.method.as_deref())?;

        // Messages name the host at most: a URL's query may hold credentials, and they are logged.
        let url = Url::parse(&request.url)
            .map_err(|error| invalid(format!("the URL is not valid: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the URL scheme {:?} is not supported; use http or https",
                url.scheme()
            )));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(invalid("the URL has no host".to_owned()));
        };
        let target = format!("{host}:{port}");

        let mut headers = HeaderMap::new();
        for (name, value) in request.headers.unwrap_or_default() {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("the header name {name:?} is not valid")))?;
            let header_value = HeaderValue::from_str(&value)
                .map_err(|_| invalid(format!("the value of header {name:?} is not valid")))?;
            if !DROPPED_HEADERS.contains(&header_name.as_str()) {
                headers.append(header_name, header_value);
            }
        }

        let body = match (request.body, request.body_encoding.as_deref()) {
            (None, _) => None,
            (Some(text), None | Some("utf8")) => Some(text.into_bytes()),
            (Some(text), Some("base64")) => Some(
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|error| invalid(format!("the body is not valid base64: {error}")))?,
            ),
            (Some(_), Some(other)) => {
                return Err(invalid(format!(
                    "the body encoding {other:?} is not supported; use \"utf8\" or \"base64\""
                )));
            }
        };
        if let Some(body) = &body
            && body.len() > self.max_request_bytes
        {
            return Err(Failure::TooLarge(format!(
                "the request body to {target} is {} bytes, more than the flow's limit of {}",
                body.len(),
                self.max_request_bytes
            )));
        }

        let timeout = match request.timeout_ms {
            None => self.timeout,
            Some(ms) if ms.is_finite() && ms > 0.0 => Duration::try_from_secs_f64(ms / 1000.0)
                .map_or(self.timeout, |asked| asked.min(self.timeout)),
            Some(ms) => {
                return Err(invalid(format!(
                    "timeoutMs {ms} is not valid; use a positive number of milliseconds"
                )));
            }
        };

        Ok(Prepared {
            method,
            url,
            headers,
            body,
            timeout,
            target,
        })
    }

    /// Fails with `denied` unless the allowed hosts include the request's host and port.
    fn check_allowed(&self, request: &Prepared) -> Result<(), Failure> {
        let Some(rules) = &self.allow else {
            return Ok(());
        };
        let (Some(host), Some(port)) =
            (request.url.host_str(), request.url.port_or_known_default())
        else {
            return Err(Failure::Invalid("the URL has no host".to_owned()));
        };
        let is_domain = is_domain(host);

        if rules.iter().any(|rule| rule.allows(host, port, is_domain)) {
            Ok(())
        } else {
            Err(Failure::Denied {
                target: request.target.clone(),
                host: host.to_owned(),
            })
        }
    }

    /// Waits for a slot, sends the request and reads the response within the size limit.
    async fn exchange(&self, request: Prepared) -> Result<ResponseJson, Failure> {
        // The wait for a slot counts against the timeout: the guest was promised an answer
        // within it, however busy the flow is.
        let _slot = self.slots.acquire().await.map_err(|_| Failure::Network {
            target: request.target.clone(),
            detail: "the flow's outbound client is closed".to_owned(),
        })?;
        let _in_flight = InFlight::enter(&self.counters.in_flight);

        let target = request.target;
        let network = |error: reqwest::Error| network_failure(&target, error);
        let mut builder = self
            .client
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(network)?;

        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = value.to_str().map_or_else(
                    |_| String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    str::to_owned,
                );
                (name.as_str().to_owned(), value)
            })
            .collect();

        // Refuse a body that announces itself too large, and count the rest chunk by chunk so
        // that a body without a length never grows past the limit in memory either.
        let limit = self.max_response_bytes;
        let too_large = || {
            Failure::TooLarge(format!(
                "the response from {target} is larger than the flow's limit of {limit} bytes"
            ))
        };
        let announced = response.content_length().unwrap_or(0);
        if announced > limit as u64 {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }

        let (body, body_encoding) = match String::from_utf8(body) {
            Ok(text) => (text, "utf8"),
            Err(error) => (BASE64.encode(error.into_bytes()), "base64"),
        };
        Ok(ResponseJson {
            status,
            headers,
            body,
            body_encoding,
        })
    }
}

impl HostRule {
    fn allows(&self, host: &str, port: u16, is_domain: bool) -> bool {
        if self.port.is_some_and(|allowed| allowed != port) {
            return false;
        }
        // A trailing dot names the same host; compare without it.
        let host = if is_domain {
            host.trim_end_matches('.')
        } else {
            host
        };
        match &self.host {
            HostPattern::Exact(allowed) => allowed == host,
            HostPattern::Subdomains(suffix) => {
                is_domain && host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// Parses an `allow_hosts` entry, normalising the host as `Url` normalises request hosts so
/// that both compare as plain strings.
fn parse_rule(entry: &str) -> Result<HostRule, PolicyError> {
    let error = |reason: &str| PolicyError::InvalidHost {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };

    let (wildcard, rest) = match entry.trim().strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry.trim()),
    };
    if rest.contains('*') {
        return Err(error("a wildcard is only allowed as a leading `*.`"));
    }
    let (host, port) = split_port(rest).map_err(error)?;

    let url = Url::parse(&format!("http://{host}/"))
        .map_err(|parse_error| error(&parse_error.to_string()))?;
    let bare = url.path() == "/"
        && url.port().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    let Some(normalised) = url.host_str().filter(|_| bare) else {
        return Err(error("it is not a bare host"));
    };

    let host = if !is_domain(normalised) {
        if wildcard {
            return Err(error("a wildcard needs a domain name, not an IP address"));
        }
        HostPattern::Exact(normalised.to_owned())
    } else if wildcard {
        HostPattern::Subdomains(format!(".{}", normalised.trim_end_matches('.')))
    } else {
        HostPattern::Exact(normalised.trim_end_matches('.').to_owned())
    };
    Ok(HostRule { host, port })
}

/// Whether a host as `Url::host_str` returns it is a name rather than an IP address; `Url`
/// writes IPv4 addresses in canonical dotted form and IPv6 ones in brackets.
fn is_domain(host: &str) -> bool {
    !host.starts_with('[') && host.parse::<Ipv4Addr>().is_err()
}

/// Splits `host[:port]`, where a v6 address is bracketed when it has a port.
fn split_port(entry: &str) -> Result<(String, Option<u16>), &'static str> {
    const BAD_PORT: &str = "the port is not a number from 0 to 65535";

    if let Ok(v6) = entry.parse::<Ipv6Addr>() {
        return Ok((format!("[{v6}]"), None));
    }
    let (host, port) = if entry.starts_with('[') {
        let end = entry
            .find(']')
            .ok_or("the IPv6 address has no closing `]`")?;
        let (host, rest) = entry.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or(BAD_PORT)?)),
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = port
        .map(|port| port.parse::<u16>().map_err(|_| BAD_PORT))
        .transpose()?;
    Ok((host.to_owned(), port))
}

/// Accepts a method as `fetch` does: the standard ones in any case, others as given, and
/// never the ones that would turn the connection into something else.
fn parse_method(method: Option<&str>) -> Result<Method, Failure> {
    const NORMALISED: [&str; 6] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
    const FORBIDDEN: [&str; 3] = ["CONNECT", "TRACE", "TRACK"];

    let Some(method) = method else {
        return Ok(Method::GET);
    };
    if FORBIDDEN.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return Err(Failure::Invalid(format!(
            "the method {method:?} is not allowed"
        )));
    }
    let method = match NORMALISED.iter().find(|m| m.eq_ignore_ascii_case(method)) {
        Some(standard) => standard,
        None => method,
    };
    Method::from_bytes(method.as_bytes())
        .map_err(|_| Failure::Invalid(format!("the method {method:?} is not valid")))
}

/// Classifies a client error and describes it with its causes, which hold the useful part
/// ("connection refused"), but without the URL, whose query may hold credentials.
fn network_failure(target: &str, error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        cause = inner.source();
    }
    if error.is_timeout() {
        // Only the client's connect timeout reaches here; the overall one is ours.
        return Failure::Network {
            target: target.to_owned(),
            detail: format!("connect timed out ({detail})"),
        };
    }
    Failure::Network {
        target: target.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode};
    use axum::response::{AppendHeaders, IntoResponse};
    use axum::routing::{any, get};
    use serde_json::{Value, json};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves `router` on a free loopback port for the rest of the test.
    async fn serve(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        addr
    }

    fn outbound(policy: OutboundPolicy) -> Outbound {
        let client = Outbound::default_client(&policy).expect("client");
        Outbound::new(policy, client).expect("policy")
    }

    async fn send(outbound: &Outbound, request: Value) -> Value {
        let answer = outbound.send(&request.to_string()).await;
        serde_json::from_str(&answer).expect("answer is JSON")
    }

    /// Echoes the method, headers and body of the request as JSON, with two `x-multi` headers.
    async fn echo(
        method: axum::http::Method,
        headers: AxumHeaders,
        body: Bytes,
    ) -> impl IntoResponse {
        let received: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        let json = json!({
            "method": method.as_str(),
            "headers": received,
            "body": String::from_utf8_lossy(&body),
        });
        (
            StatusCode::CREATED,
            AppendHeaders([
                ("x-multi", "one"),
                ("x-multi", "two"),
                ("X-Mixed-Case", "v"),
            ]),
            json.to_string(),
        )
    }

    fn header<'a>(headers: &'a Value, name: &str) -> Vec<&'a str> {
        headers
            .as_array()
            .expect("headers array")
            .iter()
            .filter(|pair| pair[0] == name)
            .filter_map(|pair| pair[1].as_str())
            .collect()
    }

    #[tokio::test]
    async fn get_round_trip_carries_status_headers_and_body() {
        let addr = serve(Router::new().route("/echo", any(echo))).await;
        let outbound = outbound(OutboundPolicy::default());

        let answer = send(
            &outbound,
            json!({
                "url": format!("http://{addr}/echo?q=1"),
                "headers": [["X-Test", "a"], ["x-test", "b"]],
            }),
        )
        .await;

        assert_eq!(answer["status"], 201);
        assert_eq!(answer["bodyEncoding"], "utf8");
        assert_eq!(header(&answer["headers"], "x-multi"), ["one", "two"]);
        assert_eq!(header(&answer["headers"], "x-mixed-case"), ["v"]);
        let echoed: Value =
            serde_json::from_str(answer["body"].as_str().expect("body")).expect("json");
        assert_eq!(echoed["method"], "GET");
        assert_eq!(header(&echoed["headers"], "x-test"), ["a", "b"]);
        assert_eq!(header(&echoed["headers"], "user-agent"), [USER_AGENT]);
        assert_eq!(
            outbound.stats(),
            OutboundStats {
                started: 1,
                succeeded: 1,
                ..OutboundStats::default()
            }
        );
    }

    #[tokio::test]
    async fn post_sends_a_utf8_body_and_lower_case_method_is_normalised() {
        let addr = serve(Router::new().route("/echo", any(echo))).await;
        let outbound = outbound(OutboundPolicy::default());

        let answer = send(
            &outbound,
            json!({
                "method": "post",
                "url": format!("http://{addr}/echo"),
                "headers": [["content-type", "application/json"]],
                "body": "{\"event\":\"page view\",\"ü\":1}",
                "bodyEncoding": "utf8",
            }),
        )
        .await;

        let echoed: Value =
            serde_json::from_str(answer["body"].as_str().expect("body")).expect("json");
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["body"], "{\"event\":\"page view\",\"ü\":1}");
        assert_eq!(
            header(&echoed["headers"], "content-type"),
            ["application/json"]
        );
    }

    #[tokio::test]
    async fn binary_bodies_travel_as_base64_both_ways() {
        let raw = any(|body: Bytes| async move { body });
        let addr = serve(Router::new().route("/raw", raw)).await;
        let outbound = outbound(OutboundPolicy::default());
        let bytes: Vec<u8> = vec![0x00, 0xff, 0xfe, 0x80, 0x7f, 0x0a];

        let answer = send(
            &outbound,
            json!({
                "method": "PUT",
                "url": format!("http://{addr}/raw"),
                "body": BASE64.encode(&bytes),
                "bodyEncoding": "base64",
            }),
        )
        .await;

        assert_eq!(answer["status"], 200);
        assert_eq!(answer["bodyEncoding"], "base64");
        let body = BASE64
            .decode(answer["body"].as_str().expect("body"))
            .expect("base64");
        assert_eq!(body, bytes);
    }

    #[tokio::test]
    async fn slow_server_times_out_at_the_policy_timeout() {
        let slow = get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        });
        let addr = serve(Router::new().route("/slow", slow)).await;
        let outbound = outbound(OutboundPolicy {
            timeout: Duration::from_millis(200),
            ..OutboundPolicy::default()
        });

        // A larger timeoutMs must not extend the policy's.
        let started = Instant::now();
        let answer = send(
            &outbound,
            json!({"url": format!("http://{addr}/slow"), "timeoutMs": 60_000}),
        )
        .await;
        let elapsed = started.elapsed();

        assert_eq!(answer["kind"], "timeout", "{answer}");
        assert!(
            answer["error"].as_str().expect("error").contains("200 ms"),
            "{answer}"
        );
        // Not early; that it was not the server's late answer the kind already shows.
        assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
        assert_eq!(outbound.stats().failed, 1);
        assert_eq!(outbound.stats().in_flight, 0);
    }

    #[tokio::test]
    async fn request_timeout_lowers_the_policy_timeout() {
        let slow = get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        });
        let addr = serve(Router::new().route("/slow", slow)).await;
        let outbound = outbound(OutboundPolicy::default());

        // The server answers after 2 s and the policy allows 10 s, so a timeout can only be
        // the request's own 150 ms.
        let answer = send(
            &outbound,
            json!({"url": format!("http://{addr}/slow"), "timeoutMs": 150}),
        )
        .await;

        assert_eq!(answer["kind"], "timeout", "{answer}");
    }

    #[tokio::test]
    async fn response_over_the_limit_is_too_large() {
        let big = get(|| async { vec![b'x'; 64 * 1024] });
        let exact = get(|| async { vec![b'y'; 1024] });
        let addr = serve(Router::new().route("/big", big).route("/exact", exact)).await;
        let outbound = outbound(OutboundPolicy {
            max_response_bytes: 1024,
            ..OutboundPolicy::default()
        });

        let answer = send(&outbound, json!({"url": format!("http://{addr}/big")})).await;
        assert_eq!(answer["kind"], "too-large", "{answer}");

        let answer = send(&outbound, json!({"url": format!("http://{addr}/exact")})).await;
        assert_eq!(answer["status"], 200, "a body of exactly the limit passes");
        assert_eq!(answer["body"].as_str().map(str::len), Some(1024));
    }

    /// A server that streams an endless chunked body must be cut off at the limit, not read to
    /// the end: the test server sees its writes fail long before it has sent everything.
    #[tokio::test]
    async fn endless_chunked_response_is_cut_off_at_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.expect("head");
            let chunk = format!("{:x}\r\n{}\r\n", 4096, "z".repeat(4096));
            // At most 256 MiB; a client that reads it all would take far longer than the test.
            for _ in 0..65_536 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                counter.fetch_add(4096, Ordering::Relaxed);
            }
        });
        let outbound = outbound(OutboundPolicy {
            max_response_bytes: 64 * 1024,
            ..OutboundPolicy::default()
        });

        let answer = send(&outbound, json!({"url": format!("http://{addr}/stream")})).await;

        assert_eq!(answer["kind"], "too-large", "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            sent.load(Ordering::Relaxed) < 64 * 1024 * 1024,
            "the client kept reading"
        );
    }

    #[tokio::test]
    async fn request_body_over_the_limit_is_too_large() {
        let outbound = outbound(OutboundPolicy {
            max_request_bytes: 10,
            ..OutboundPolicy::default()
        });
        let answer = send(
            &outbound,
            json!({"method": "POST", "url": "http://127.0.0.1:9/", "body": "more than ten bytes"}),
        )
        .await;
        assert_eq!(answer["kind"], "too-large", "{answer}");
    }

    #[tokio::test]
    async fn host_outside_the_allowed_list_is_denied_with_a_hint() {
        let addr = serve(Router::new().route("/echo", any(echo))).await;
        let outbound = outbound(OutboundPolicy {
            allow_hosts: Some(vec!["api.example.com".into(), "*.example.org".into()]),
            ..OutboundPolicy::default()
        });

        let answer = send(&outbound, json!({"url": format!("http://{addr}/echo")})).await;

        assert_eq!(answer["kind"], "denied", "{answer}");
        let message = answer["error"].as_str().expect("error");
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("\"127.0.0.1\""), "{message}");
        assert!(message.contains("allowed hosts"), "{message}");
        let stats = outbound.stats();
        assert_eq!((stats.started, stats.denied, stats.failed), (1, 1, 0));
    }

    #[tokio::test]
    async fn allowed_ip_and_port_pass_and_other_ports_are_denied() {
        let addr = serve(Router::new().route("/echo", any(echo))).await;
        let outbound = outbound(OutboundPolicy {
            allow_hosts: Some(vec![format!("127.0.0.1:{}", addr.port())]),
            ..OutboundPolicy::default()
        });

        let answer = send(&outbound, json!({"url": format!("http://{addr}/echo")})).await;
        assert_eq!(answer["status"], 201, "{answer}");

        let other_port = if addr.port() == 65535 {
            1
        } else {
            addr.port() + 1
        };
        let answer = send(
            &outbound,
            json!({"url": format!("http://127.0.0.1:{other_port}/")}),
        )
        .await;
        assert_eq!(answer["kind"], "denied", "{answer}");
    }

    #[test]
    fn allow_rules_match_hosts_wildcards_ports_and_ips() {
        let rules: Vec<HostRule> = [
            "API.Example.com",
            "*.example.org",
            "internal.test:8443",
            "10.0.0.1",
            "::1",
            "[fd00::1]:443",
        ]
        .into_iter()
        .map(|entry| parse_rule(entry).expect("valid rule"))
        .collect();
        let allowed = |url: &str| {
            let url = Url::parse(url).expect("url");
            let (host, port) = (
                url.host_str().expect("host"),
                url.port_or_known_default().expect("port"),
            );
            rules
                .iter()
                .any(|rule| rule.allows(host, port, is_domain(host)))
        };

        assert!(allowed("https://api.example.com/v1"));
        assert!(allowed("http://API.EXAMPLE.COM:8080/"));
        assert!(allowed("https://api.example.com./"));
        assert!(!allowed("https://example.com/"));
        assert!(!allowed("https://evilapi.example.com/"));

        assert!(allowed("https://a.example.org/"));
        assert!(allowed("https://a.b.example.org/"));
        assert!(
            !allowed("https://example.org/"),
            "a wildcard does not match its apex"
        );
        assert!(!allowed("https://badexample.org/"));
        assert!(!allowed("https://example.org.evil.net/"));

        assert!(allowed("https://internal.test:8443/"));
        assert!(!allowed("https://internal.test/"));

        assert!(allowed("http://10.0.0.1:1234/"));
        assert!(!allowed("http://10.0.0.2/"));
        assert!(allowed("http://[::1]:8080/"));
        assert!(allowed("https://[fd00::1]/"));
        assert!(!allowed("http://[fd00::1]/"));
    }

    #[test]
    fn invalid_allow_entries_are_refused_with_the_entry() {
        for entry in [
            "",
            "*",
            "a.*.com",
            "*.10.0.0.1",
            "host:port",
            "host:70000",
            "user@host",
            "host/path",
            "[::1",
            "[::1]x",
        ] {
            let policy = OutboundPolicy {
                allow_hosts: Some(vec![entry.to_owned()]),
                ..OutboundPolicy::default()
            };
            let error = Outbound::new(policy, reqwest::Client::new()).expect_err(entry);
            assert!(error.to_string().contains(&format!("{entry:?}")), "{error}");
        }
    }

    #[test]
    fn unusable_limits_are_refused() {
        let client = reqwest::Client::new();
        let zero = OutboundPolicy {
            max_concurrency: 0,
            ..OutboundPolicy::default()
        };
        assert!(matches!(
            Outbound::new(zero, client.clone()),
            Err(PolicyError::Concurrency(0))
        ));
        let no_time = OutboundPolicy {
            timeout: Duration::ZERO,
            ..OutboundPolicy::default()
        };
        assert!(matches!(
            Outbound::new(no_time, client),
            Err(PolicyError::ZeroTimeout)
        ));
    }

    #[tokio::test]
    async fn malformed_requests_are_invalid_without_touching_the_network() {
        let outbound = outbound(OutboundPolicy::default());
        let cases = [
            "not json".to_owned(),
            "{}".to_owned(),
            json!({"url": 5}).to_string(),
            json!({"url": "not a url"}).to_string(),
            json!({"url": "ftp://127.0.0.1/file"}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "method": "BAD METHOD"}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "method": "connect"}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "headers": [["bad name", "v"]]}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "headers": [["x", "line\nbreak"]]}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "headers": {"x": "y"}}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "body": "%%%", "bodyEncoding": "base64"})
                .to_string(),
            json!({"url": "http://127.0.0.1:9/", "body": "x", "bodyEncoding": "utf16"}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "timeoutMs": -1}).to_string(),
            json!({"url": "http://127.0.0.1:9/", "timeoutMs": 0}).to_string(),
        ];
        for case in &cases {
            let answer: Value = serde_json::from_str(&outbound.send(case).await).expect("json");
            assert_eq!(answer["kind"], "invalid", "{case} -> {answer}");
            assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{answer}"
            );
        }
        let stats = outbound.stats();
        assert_eq!(stats.failed, cases.len() as u64);
        assert_eq!(stats.started, cases.len() as u64);
    }

    #[tokio::test]
    async fn refused_connection_is_a_network_error() {
        // Bind and drop a listener to get a port that nothing listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let outbound = outbound(OutboundPolicy::default());

        let answer = send(
            &outbound,
            json!({"url": format!("http://127.0.0.1:{port}/?token=secret")}),
        )
        .await;

        assert_eq!(answer["kind"], "network", "{answer}");
        let message = answer["error"].as_str().expect("error");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(
            !message.contains("secret"),
            "the URL query must not leak: {message}"
        );
    }

    #[tokio::test]
    async fn concurrency_is_capped_by_the_policy() {
        let current = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (c, p) = (current.clone(), peak.clone());
        let handler = get(move || {
            let (current, peak) = (c.clone(), p.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        });
        let addr = serve(Router::new().route("/job", handler)).await;
        let outbound = Arc::new(outbound(OutboundPolicy {
            max_concurrency: 2,
            ..OutboundPolicy::default()
        }));

        let request = json!({"url": format!("http://{addr}/job")}).to_string();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (outbound, request) = (outbound.clone(), request.clone());
                tokio::spawn(async move { outbound.send(&request).await })
            })
            .collect();
        for task in tasks {
            let answer: Value = serde_json::from_str(&task.await.expect("task")).expect("json");
            assert_eq!(answer["status"], 200, "{answer}");
        }

        assert_eq!(peak.load(Ordering::SeqCst), 2);
        let stats = outbound.stats();
        assert_eq!((stats.started, stats.succeeded, stats.in_flight), (6, 6, 0));
    }

    #[tokio::test]
    async fn redirects_are_returned_not_followed() {
        let redirect = get(|| async { (StatusCode::FOUND, [("location", "http://10.0.0.1/")]) });
        let addr = serve(Router::new().route("/moved", redirect)).await;
        let outbound = outbound(OutboundPolicy::default());

        let answer = send(&outbound, json!({"url": format!("http://{addr}/moved")})).await;

        assert_eq!(answer["status"], 302, "{answer}");
        assert_eq!(header(&answer["headers"], "location"), ["http://10.0.0.1/"]);
    }

    #[tokio::test]
    async fn connection_headers_from_the_guest_are_dropped() {
        let addr = serve(Router::new().route("/echo", any(echo))).await;
        let outbound = outbound(OutboundPolicy::default());

        let answer = send(
            &outbound,
            json!({
                "url": format!("http://{addr}/echo"),
                "headers": [["host", "other.example"], ["connection", "close"], ["x-kept", "1"]],
            }),
        )
        .await;

        let echoed: Value =
            serde_json::from_str(answer["body"].as_str().expect("body")).expect("json");
        assert_eq!(
            header(&echoed["headers"], "host"),
            [addr.to_string().as_str()]
        );
        assert!(header(&echoed["headers"], "connection").is_empty());
        assert_eq!(header(&echoed["headers"], "x-kept"), ["1"]);
    }

    #[test]
    fn send_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let outbound =
            Outbound::new(OutboundPolicy::default(), reqwest::Client::new()).expect("new");
        let future = outbound.send("{}");
        assert_send(&future);
    }
}

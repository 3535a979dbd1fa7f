//! Test support for `flowhost run`: the real binary on a loopback port, and a small raw
//! HTTP/1.1 client so tests see exactly the status line, headers and bytes the runner sends.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

/// Generous bound for anything a test waits on; never a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A running `flowhost run`, killed when dropped.
pub struct RunnerProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
}

impl RunnerProcess {
    /// Starts `flowhost run <bundle>` on a free loopback port and waits until it listens.
    pub async fn start(bundle: &str, envs: &[(&str, &str)]) -> Self {
        Self::start_args(&[bundle], envs).await
    }

    /// Starts `flowhost run <args>` and waits until it listens.
    pub async fn start_args(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowhost"));
        command
            .arg("run")
            .args(args)
            .env_remove("BUNDLE")
            .env_remove("MODE")
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("FLOWHOST_LOG", "info")
            .env("CACHE_DIR", super::support::shared_cache())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the flowhost binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(value);
            }
        });
        let mut runner = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            child,
            log,
        };
        let line = runner
            .wait_for_log("HTTP server listening")
            .await
            .unwrap_or_else(|| panic!("the runner never listened; log:\n{}", runner.log_text()));
        runner.addr = line["fields"]["address"]
            .as_str()
            .expect("the listening line names the address")
            .parse()
            .unwrap();
        runner
    }

    /// Starts and waits until the flow runs.
    pub async fn ready(bundle: &str, envs: &[(&str, &str)]) -> Self {
        let runner = Self::start(bundle, envs).await;
        runner
            .wait_for_log("Flow running")
            .await
            .unwrap_or_else(|| panic!("the flow never ran; log:\n{}", runner.log_text()));
        runner
    }

    /// The first log line whose message is `message`, waiting for it (None if the process
    /// ends or patience runs out first).
    pub async fn wait_for_log(&self, message: &str) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.find_log(message) {
                return Some(line);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first log line whose message is `message`.
    pub fn find_log(&self, message: &str) -> Option<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|line| line["fields"]["message"] == message)
            .cloned()
    }

    /// How many log lines so far have `message` as their message.
    pub fn count_logs(&self, message: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line["fields"]["message"] == message)
            .count()
    }

    /// `name` in the environment the kernel started the runner's program with (after any
    /// exec of its own), if set.
    pub fn environ(&self, name: &str) -> Option<String> {
        let pid = self.child.id().expect("the runner is running");
        let bytes = std::fs::read(format!("/proc/{pid}/environ")).expect("/proc/<pid>/environ");
        let prefix = format!("{name}=");
        bytes.split(|b| *b == 0).find_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            entry.strip_prefix(&prefix).map(str::to_string)
        })
    }

    /// Everything logged so far, one line each.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("the runner is running") as i32;
        // SAFETY: kill(2) on the pid of a child this test owns.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the runner exits")
            .expect("exit status")
            .code()
    }

    /// A fresh connection.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// One request on a fresh connection.
    pub async fn send(&self, request: Req) -> Response {
        self.connect().await.send(&request).await
    }

    /// `GET path` on a fresh connection.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Req::new("GET", path)).await
    }

    /// `POST path` with a JSON body on a fresh connection.
    pub async fn post_json(&self, path: &str, body: &str) -> Response {
        self.send(
            Req::new("POST", path)
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (true unless a test wants to omit it).
    pub content_length: bool,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: vec![("Host".into(), "flowhost.test".into())],
            body: Vec::new(),
            content_length: method != "GET" && method != "HEAD" && method != "OPTIONS",
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.content_length = true;
        self
    }

    pub fn without_content_length(mut self) -> Self {
        self.content_length = false;
        self
    }

    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.content_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// One client connection, kept alive across requests.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the runner");
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Writes raw bytes (for slow or malformed clients).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    /// Sends a request and reads its response.
    pub async fn send(&mut self, request: &Req) -> Response {
        self.write_raw(&request.encode())
            .await
            .expect("write the request");
        self.read_response(&request.method)
            .await
            .expect("read the response")
    }

    /// Reads one response to a request with `method`.
    pub async fn read_response(&mut self, method: &str) -> std::io::Result<Response> {
        let read = async {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                self.stream.read_line(&mut line).await?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            let find = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _): &&(String, String)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let mut body = Vec::new();
            if method != "HEAD" && status != 204 && status != 304 {
                if let Some(length) = find("content-length") {
                    body.resize(length.parse().unwrap_or(0), 0);
                    self.stream.read_exact(&mut body).await?;
                } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
                    loop {
                        let mut size = String::new();
                        self.stream.read_line(&mut size).await?;
                        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                        let mut chunk = vec![0; size + 2];
                        self.stream.read_exact(&mut chunk).await?;
                        if size == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..size]);
                    }
                } else {
                    self.stream.read_to_end(&mut body).await?;
                }
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Waits until the server closes the connection; true if it did (EOF or reset).
    pub async fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(PATIENCE, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Waits until `done` holds, checking every 20 ms.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! Helpers for `benches/load.sh`: a counting HTTP sink for the api flow's destination, and a
//! client that holds many idle keep-alive connections while it measures a fresh one.
//!
//! ```text
//! loadtool sink <port>                   answer 200 to everything; GET /count says how many POSTs
//! loadtool idle <host:port> <count> [pid]  hold <count> idle connections, then time 200
//!                                          requests (and report the server's RSS, given its pid)
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => sink(args.get(2).and_then(|p| p.parse().ok()).unwrap_or(9901)).await,
        Some("idle") if args.len() == 4 || args.len() == 5 => {
            let count = args[3].parse().expect("a connection count");
            idle(&args[2], count, args.get(4).map(String::as_str)).await
        }
        _ => {
            eprintln!("usage: loadtool sink <port> | loadtool idle <host:port> <count> [pid]");
            std::process::exit(2);
        }
    }
}

/// Counts POSTs; `GET /count` answers the count.
async fn sink(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the sink port");
    let count = Arc::new(AtomicU64::new(0));
    eprintln!("sink listening on 127.0.0.1:{port}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let count = count.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let count = count.clone();
                async move {
                    let is_post = request.method() == hyper::Method::POST;
                    let path = request.uri().path().to_string();
                    let _ = request.into_body().collect().await;
                    let body = if !is_post && path == "/count" {
                        count.load(Ordering::Relaxed).to_string()
                    } else {
                        if is_post {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        "{\"ok\":true}".to_string()
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Opens `count` connections that each make one request and then idle, and times requests on
/// a fresh connection while they are held.
async fn idle(addr: &str, count: usize, server_pid: Option<&str>) {
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("connection {i} failed: {e}");
                break;
            }
        };
        if stream.write_all(request).await.is_err() || read_response(&mut stream).await.is_err() {
            eprintln!("connection {i}: no answer");
            break;
        }
        held.push(stream);
    }
    println!(
        "idle connections held: {} (opened in {:.1} s)",
        held.len(),
        started.elapsed().as_secs_f64()
    );

    let mut fresh = TcpStream::connect(addr).await.expect("a fresh connection");
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        fresh.write_all(request).await.expect("write");
        read_response(&mut fresh).await.expect("an answer");
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "fresh connection while they idle: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1])
    );
    let metrics = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    fresh.write_all(metrics).await.expect("write");
    let page = read_body(&mut fresh).await.unwrap_or_default();
    if let Some(open) = page
        .lines()
        .find_map(|l| l.strip_prefix("flowhost_http_connections "))
    {
        println!("connections the server has open: {open}");
    }
    if let Some(pid) = server_pid
        && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
        && let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:"))
    {
        println!(
            "server {}",
            rss.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    // Check that the held connections still work.
    let mut alive = 0;
    let step = (held.len() / 50).max(1);
    for stream in held.iter_mut().step_by(step) {
        if stream.write_all(request).await.is_ok() && read_response(stream).await.is_ok() {
            alive += 1;
        }
    }
    println!("held connections still answering (sampled): {alive}");
}

/// Reads one small response with a Content-Length.
async fn read_response(stream: &mut TcpStream) -> std::io::Result<()> {
    read_body(stream).await.map(|_| ())
}

/// Reads one response with a Content-Length and returns its body as text.
async fn read_body(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Ok(String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned());
            }
        }
    }
}

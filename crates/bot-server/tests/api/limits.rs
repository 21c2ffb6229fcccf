//! Issue 12, item 2: the HTTP listener's limits, over real sockets. A
//! half-sent request, a silent connection and a slow body are closed after
//! their timeouts (short ones, set for the test); connections beyond the cap
//! are closed at once and the API answers again once slots free up. And the
//! API over HTTPS. Every wait is for an event with a deadline.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Harness, SECRET};

/// Longest wait for anything here.
const DEADLINE: Duration = Duration::from_secs(15);

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(s: &mut TcpStream) -> Result<String> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
        .await
        .map_err(|_| anyhow!("the server kept the connection open for {DEADLINE:?}"))??;
    Ok(String::from_utf8_lossy(&all).into_owned())
}

/// One `GET /api/health` over a fresh connection; the status line.
async fn health(addr: std::net::SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let text = read_to_close(&mut s).await?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_slow_requests_are_closed() -> Result<()> {
    let h = Harness::start_with(|c| {
        c.http_limits.header_timeout = Duration::from_millis(500);
        c.http_limits.body_timeout = Duration::from_millis(500);
    })
    .await?;
    let addr = h.addr().ok_or_else(|| anyhow!("no address"))?;
    // A connection that sends nothing.
    let mut silent = TcpStream::connect(addr).await?;
    // A request head that never ends.
    let mut half = TcpStream::connect(addr).await?;
    half.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .await?;
    // A body that never comes.
    let mut slow = TcpStream::connect(addr).await?;
    slow.write_all(
        format!(
            "POST /api/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await?;
    read_to_close(&mut silent).await?;
    let answer = read_to_close(&mut half).await?;
    ensure!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "half-sent head: {answer}"
    );
    let answer = read_to_close(&mut slow).await?;
    ensure!(
        answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 400"),
        "slow body: {answer}"
    );
    // An idle keep-alive connection is closed too, after its answer.
    let mut kept = TcpStream::connect(addr).await?;
    kept.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let answer = read_to_close(&mut kept).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    ensure!(health(addr).await?.starts_with("HTTP/1.1 200"));
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() -> Result<()> {
    const CAP: usize = 8;
    let h = Harness::start_with(|c| c.http_limits.max_connections = CAP).await?;
    let addr = h.addr().ok_or_else(|| anyhow!("no address"))?;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut s = TcpStream::connect(addr).await?;
        // A request that is answered proves the connection holds a slot.
        s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = [0u8; 12];
        tokio::time::timeout(DEADLINE, s.read_exact(&mut buf)).await??;
        ensure!(
            &buf == b"HTTP/1.1 200",
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
        held.push(s);
    }
    // One more: closed without an answer, while the others stay open.
    let mut extra = TcpStream::connect(addr).await?;
    let _ = extra
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_to_close(&mut extra).await.unwrap_or_default();
    ensure!(answer.is_empty(), "beyond the cap: {answer}");
    // Slots free up when connections close: the API answers again.
    drop(held);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match health(addr).await {
            Ok(line) if line.starts_with("HTTP/1.1 200") => break,
            other => ensure!(
                tokio::time::Instant::now() < deadline,
                "the API never answered again: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await
}

//! HTTP/1.1's rules at the socket: `Host` (RFC 9112 section 3.2) and the
//! number of headers.
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{work, TestServer};

/// Sends `request` on a new connection; the status line and body of the
/// answer.
async fn answer(server: &TestServer, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8(answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn an_http_1_1_request_needs_one_host_header() {
    let server = TestServer::spawn(work(0, 0, 0.0), 5).await;
    let before = server.scrape().await;
    let cases = [
        (
            "GET /work HTTP/1.1\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            "an HTTP/1.1 request needs a Host header\n",
        ),
        (
            "GET /work HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            "a request has one Host header, not several\n",
        ),
        (
            "GET /work HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
            "a request has one Host header, not several\n",
        ),
        (
            "GET /work HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "HTTP/1.0 400 Bad Request",
            "a request has one Host header, not several\n",
        ),
        (
            "GET /work HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK",
            "{\"delay_ms\":0}",
        ),
        // HTTP/1.0 did not have Host.
        (
            "GET /work HTTP/1.0\r\n\r\n",
            "HTTP/1.0 200 OK",
            "{\"delay_ms\":0}",
        ),
    ];
    for (request, status, body) in cases {
        assert_eq!(
            answer(&server, request).await,
            (status.to_string(), body.to_string()),
            "{request:?}"
        );
    }
    // The two 200s are counted; the 400s are answered before the app.
    let after = server.scrape().await;
    assert_eq!(after.processed("200") - before.processed("200"), 2);
    assert_eq!(after.processed("400"), before.processed("400"));
}

/// A request to `/work` with `count` headers in all.
fn with_headers(count: usize) -> String {
    let mut request = "GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for i in 2..count {
        request.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    request + "\r\n"
}

#[tokio::test]
async fn a_request_may_have_100_headers_and_not_101() {
    let server = TestServer::spawn(work(0, 0, 0.0), 5).await;
    assert_eq!(
        answer(&server, &with_headers(100)).await.0,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        answer(&server, &with_headers(101)).await.0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

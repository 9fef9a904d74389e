use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

fn config(url: &str, headers: &[(&str, &str)]) -> HttpRunConfig {
    HttpRunConfig {
        url: url.to_owned(),
        method: "GET".to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        label: None,
        plan: Plan {
            rate: 200.0,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(250),
            concurrency: 16,
        },
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn the_request_is_built_once_with_host_and_headers() {
    let p = config(
        "http://127.0.0.1:8080/reports/1?x=y",
        &[("X-Amz-Date", "20261202T000000Z")],
    )
    .prepare()
    .unwrap();
    assert_eq!(p.address, "127.0.0.1:8080");
    assert_eq!(
        String::from_utf8(p.request).unwrap(),
        "GET /reports/1?x=y HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nX-Amz-Date: 20261202T000000Z\r\n\r\n"
    );
    // A Host header given replaces the URL's authority; a URL without a path asks for "/".
    let p = config("http://localhost", &[("Host", "api.example")])
        .prepare()
        .unwrap();
    assert_eq!(p.address, "localhost:80");
    assert_eq!(
        String::from_utf8(p.request).unwrap(),
        "GET / HTTP/1.1\r\nHost: api.example\r\n\r\n"
    );
}

#[test]
fn bad_urls_methods_and_headers_are_usage_errors() {
    for url in ["https://x/", "ftp://x/", "http:///path", "http://user@x/"] {
        let e = config(url, &[]).prepare().unwrap_err();
        assert_eq!(e.exit_code(), 2, "{url}");
        assert!(e.to_string().contains("invalid --url"), "{e}");
    }
    let mut c = config("http://x/", &[]);
    c.method = "get me".into();
    assert!(c.prepare().unwrap_err().to_string().contains("--method"));
    let e = config("http://x/", &[("X-Evil", "a\r\nInjected: 1")])
        .prepare()
        .unwrap_err();
    assert!(e.to_string().contains("invalid --header"), "{e}");
    assert_eq!(
        parse_header("Authorization: AWS4-HMAC-SHA256 a=b").unwrap(),
        ("Authorization".into(), "AWS4-HMAC-SHA256 a=b".into())
    );
    assert_eq!(parse_header("no colon").unwrap_err().exit_code(), 2);
    assert_eq!(parse_header(": empty name").unwrap_err().exit_code(), 2);
}

/// Feeds `response` to `exchange` over an in-memory pipe; what it returns.
async fn exchange_with(response: &'static [u8]) -> std::io::Result<Response> {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let serve = tokio::spawn(async move {
        let mut request = [0u8; 64];
        let _ = server.read(&mut request).await;
        let _ = server.write_all(response).await;
        // Keep the pipe open: the client must stop reading by the framing alone, except for
        // a body framed by the end of the stream.
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let mut conn = BufReader::new(client);
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        exchange(&mut conn, b"GET / HTTP/1.1\r\n\r\n"),
    )
    .await
    .unwrap_or_else(|_| Err(std::io::Error::other("exchange did not end")));
    serve.abort();
    result
}

#[tokio::test]
async fn responses_are_framed_by_length_or_chunks() {
    let r = exchange_with(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(
        r,
        Response {
            status: 200,
            reusable: true
        }
    );
    let r = exchange_with(
        b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response {
            status: 403,
            reusable: true
        }
    );
    let r = exchange_with(
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response {
            status: 401,
            reusable: false
        }
    );
    let r = exchange_with(b"HTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        r,
        Response {
            status: 204,
            reusable: true
        }
    );
}

#[tokio::test]
async fn malformed_or_truncated_responses_are_errors() {
    for bad in [
        &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
    ] {
        let leaked: &'static [u8] = bad;
        assert!(
            exchange_with(leaked).await.is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn statuses_are_classified() {
    assert_eq!(classify(200), Reply::Ok);
    assert_eq!(classify(204), Reply::Ok);
    assert_eq!(classify(403), Reply::Denied);
    assert_eq!(classify(401), Reply::Failed("HTTP 401".into()));
    assert_eq!(classify(503), Reply::Failed("HTTP 503".into()));
}

/// A keep-alive server answering every request with `response`; its address.
async fn server(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut conn = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    // The request head, up to its empty line.
                    loop {
                        line.clear();
                        match tokio::io::AsyncBufReadExt::read_line(&mut conn, &mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    if conn.get_mut().write_all(response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/x")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replays_the_request_over_kept_alive_connections() {
    let url = server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
    let report = run(&config(&url, &[])).await.unwrap();
    assert_eq!(report.sent, 50);
    assert_eq!(report.completed, 50);
    assert_eq!(report.error_count(), 0, "{:?}", report.errors);
    assert_eq!(report.denied, 0);
    // At 200/s against an instant server, connections are reused, not one per request.
    assert!(
        (1..=16).contains(&report.settings.connections),
        "{} connections",
        report.settings.connections
    );
    assert!(report.latency_us.p50 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_count_as_denied_or_failed_by_status() {
    let url = server(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
    let report = run(&config(&url, &[])).await.unwrap();
    assert_eq!(report.denied, 50);
    assert_eq!(report.error_count(), 0);
    let url = server(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
    let report = run(&config(&url, &[])).await.unwrap();
    assert_eq!(report.errors.get("HTTP 401"), Some(&50));
}

#[tokio::test]
async fn an_unreachable_target_is_an_error_before_the_run() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = run(&config(&format!("http://{addr}/"), &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, BenchError::Connect { .. }), "{e}");
}

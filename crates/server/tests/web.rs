//! The web client served by a real (in-process) `sirrd` beside the WebSocket: both work on one
//! listener, and a wrong `web_dir` stops the start.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use sirr_server::Config;
use tokio::sync::oneshot;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn config(data: &std::path::Path, web: Option<std::path::PathBuf>) -> Config {
    // reqwest (rustls without a default provider) needs it before the server task installs it.
    sirr_server::install_crypto_provider();
    Config {
        listen: free_addr(),
        admin_listen: free_addr(),
        data: data.to_path_buf(),
        dev: true,
        web_dir: web,
        ..Config::default()
    }
}

async fn wait_for(url: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(url).await {
            Ok(r) => return r,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_client_and_websocket_share_the_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>Sirr web</title>").unwrap();
    let cfg = config(&tmp.path().join("data"), Some(dist));
    let base = format!("http://{}", cfg.listen);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(sirr_server::run(cfg, async move {
        let _ = stopped.await;
    }));

    let index = wait_for(&format!("{base}/")).await;
    assert_eq!(index.status(), 200);
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(csp, sirr_server::web::CONTENT_SECURITY_POLICY);
    assert!(index.text().await.unwrap().contains("Sirr web"));

    // The API routes keep their handlers (not the web fallback).
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.text().await.unwrap().contains("\"status\":\"ok\""));
    let ws_url = format!("ws://{}/v1/websocket", &base["http://".len()..]);
    let (socket, response) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("the WebSocket upgrade still works with a web_dir");
    assert_eq!(response.status(), 101);
    drop(socket);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_web_dir_there_are_no_web_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), None);
    let base = format!("http://{}", cfg.listen);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(sirr_server::run(cfg, async move {
        let _ = stopped.await;
    }));
    assert_eq!(wait_for(&format!("{base}/health")).await.status(), 200);
    let root = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(root.status(), 404);
    assert!(root.headers().get("content-security-policy").is_none());
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_missing_web_dir_stops_the_start_before_the_database_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = config(&data, Some(tmp.path().join("no-such-dist")));
    let err = sirr_server::run(cfg, std::future::pending())
        .await
        .expect_err("a missing web_dir is an error")
        .to_string();
    assert!(err.contains("no-such-dist"), "{err}");
    assert!(!data.exists(), "nothing was created");
}

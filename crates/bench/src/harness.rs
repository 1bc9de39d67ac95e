//! Shared machinery: a `sirrd` to measure (spawned or given), registering devices, and opening
//! authenticated raw sessions (optionally from a chosen loopback source address).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{FutureExt, SinkExt, StreamExt};
use sirr_client::Connection;
use sirr_proto::*;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A session that only receives, until `stop` changes or the server hangs up: every push goes
/// to `on_push`, and each batch of frames read at once is acknowledged with one `Ack`.
pub async fn receive_pushes(
    ws: Ws,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut on_push: impl FnMut(&Envelope),
) {
    let (mut sink, mut stream) = ws.split();
    let mut acks = Vec::new();
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return,
            m = stream.next() => m,
        };
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let Some(Ok(m)) = m else { return };
            if let Message::Binary(b) = m
                && let Ok(ServerFrame::Push(env)) = decode_server_frame(&b, 1 << 24)
            {
                acks.push(env.seq);
                on_push(&env);
            }
            next = stream.next().now_or_never();
        }
        if !acks.is_empty() {
            let f = ClientFrame::Ack {
                seqs: std::mem::take(&mut acks),
            };
            if sink.send(Message::Binary(encode(&f).into())).await.is_err() {
                return;
            }
        }
    }
}

/// A registered device's credentials.
#[derive(Clone)]
pub struct Device {
    pub account: AccountId,
    pub device: DeviceId,
    pub secret: Secret,
}

/// Where the server under test listens; cheap to clone into tasks.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
}

/// The server under test.
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

impl Target {
    /// The spawned server's data directory (`None` for `--server`).
    pub fn data_dir(&self) -> Option<std::path::PathBuf> {
        self._data.as_ref().map(|d| d.path().join("data"))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            // A graceful shutdown waits for sessions to end; a server wedged by the benchmark
            // must not keep the benchmark (or the machine's ports) hostage.
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(c.try_wait(), Ok(None)) {
                eprintln!(
                    "sirrd (pid {}) did not stop within 5 s of SIGTERM; killing it",
                    c.id()
                );
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Configuration the benchmark gives a spawned server: development mode, production-like
/// storage (durable commits), limits raised so that they do not cap the measurement.
const BENCH_CONFIG: &str = r#"
dev = true
[delivery]
max_connections = 1000000
# Every simulated client connects from 127.0.0.1.
[limits]
connections_per_ip = 1000000
[limits.send]
burst = 1000000
per_second = 1000000.0
[limits.registration_per_ip]
burst = 100000000
per_second = 100000000.0
[limits.code_per_prefix]
burst = 100000000
per_second = 100000000.0
[limits.lookup]
burst = 100000000
per_second = 100000000.0
[limits.sealed_send]
burst = 100000000
per_second = 100000000.0
# Each device fetches the sealed-send tokens its run needs before the clock starts.
[sealed_tokens]
batch = 1000
key_secs = 86400
max_per_key = 1000000000
[sealed_tokens.issue_per_account]
burst = 100000000
per_second = 100000000.0
[sealed_tokens.issue_per_ip]
burst = 100000000
per_second = 100000000.0
# Thousands of sign-ups from one address within seconds are exactly what the abuse engine
# stops at registration; the benchmark measures delivery. Its cost is measured on its own:
# SIRR_ABUSE__ENABLED=true with thresholds above 1 (it observes and scores, and never acts).
[abuse]
enabled = false
"#;

impl Target {
    /// Use `server` if given, else spawn `sirrd` (the given binary, or the one next to this
    /// binary) on a free port
    /// with a fresh data directory.
    pub fn obtain(
        server: Option<String>,
        sirrd: Option<PathBuf>,
        extra_config: &str,
    ) -> anyhow::Result<Target> {
        if let Some(url) = server {
            let hostport = url.split("://").nth(1).unwrap_or(&url).trim_end_matches('/');
            let addr: SocketAddr = hostport.parse().context("--server must be http://IP:PORT")?;
            return Ok(Target {
                url,
                addr,
                pid: None,
                child: None,
                _data: None,
            });
        }
        let sirrd = match sirrd {
            Some(p) => p,
            None => std::env::current_exe()?.with_file_name("sirrd"),
        };
        if !sirrd.exists() {
            bail!(
                "{} not found: build it (cargo build --release --bins) or pass --server",
                sirrd.display()
            );
        }
        let data = tempfile::tempdir()?;
        let config = data.path().join("bench.toml");
        std::fs::write(&config, format!("{BENCH_CONFIG}\n{extra_config}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = Command::new(&sirrd)
            .arg("--listen")
            .arg(addr.to_string())
            // Any free port: two benchmark servers must not fight over the default one.
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env("SIRR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", sirrd.display()))?;
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("sirrd did not start listening on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Target {
            url: format!("http://{addr}"),
            addr,
            pid: Some(pid),
            child: Some(child),
            _data: Some(data),
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.url.clone(),
            addr: self.addr,
        }
    }

    /// Resident memory of the server process, bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_rss_bytes(self.pid?)
    }
}

/// Resident memory of process `pid`, bytes (Linux).
pub fn proc_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) used by process `pid` so far (Linux).
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Bytes process `pid` caused to be written to storage so far (`write_bytes` of
/// `/proc/PID/io`: the database, its log and checkpoints, not sockets). Linux only.
pub fn proc_write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Total size of the files under `dir` (recursively), in bytes.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The one process whose command name is `comm` (e.g. `beam.smp`), if exactly one runs.
pub fn find_process(comm: &str) -> Option<u32> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm) {
            if found.is_some() {
                return None;
            }
            found = Some(pid);
        }
    }
    found
}

/// Register `n` devices, each as the first device of its own account (numbers from `first`).
/// Returns the devices and the registrations per second achieved.
pub async fn register_many(
    url: &str,
    n: usize,
    first: u64,
    concurrency: usize,
) -> anyhow::Result<(Vec<Device>, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1).min(n.max(1)) {
        let (next, url) = (next.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&url, None).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let phone = Phone::parse(&format!("+1{:010}", first + i as u64))?;
                let r = conn
                    .request(Request::Register {
                        phone,
                        code: "000000".into(),
                        pin: None,
                    })
                    .await?;
                let Response::Registered {
                    account,
                    device,
                    secret,
                    ..
                } = r
                else {
                    bail!("unexpected {r:?}")
                };
                out.push((
                    i,
                    Device {
                        account,
                        device,
                        secret,
                    },
                ));
            }
            conn.close().await;
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok((all.into_iter().map(|(_, d)| d).collect(), rate))
}

/// Open a WebSocket from `source` (a loopback address), not yet authenticated.
pub async fn open_ws(target: &Endpoint, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let url = sirr_client::websocket_url(&target.url)?;
    // Small read buffer: tungstenite zero-fills a whole buffer-sized chunk on every read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(64 << 20));
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config)).await?;
    Ok(ws)
}

/// Send one request and wait for its answer (pushes and notices in between are skipped).
pub async fn call(ws: &mut Ws, id: u32, body: Request) -> anyhow::Result<Result<Response, ErrorBody>> {
    ws.send(Message::Binary(encode(&ClientFrame::Request { id, body }).into()))
        .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                if let ServerFrame::Response { id: got, result } = decode_server_frame(&b, 1 << 24)?
                    && got == id
                {
                    return Ok(result);
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("connection failed: {e}"),
            None => bail!("connection closed"),
        }
    }
}

/// Open a WebSocket from `source` (a loopback address) and authenticate as `d`.
pub async fn open_session(target: &Target, source: Option<IpAddr>, d: &Device) -> anyhow::Result<Ws> {
    let mut ws = open_ws(&target.endpoint(), source).await?;
    let hello = Request::Hello {
        protocol: PROTOCOL_VERSION,
        account: d.account,
        device: d.device,
        secret: d.secret.clone(),
    };
    match call(&mut ws, 0, hello).await? {
        Ok(Response::Welcome { .. }) => {}
        Ok(other) => bail!("unexpected answer to Hello: {other:?}"),
        Err(e) => bail!("Hello refused: {e}"),
    }
    // Start sending only once the server has read this device's queue (`QueueEmpty`), as a
    // client that syncs first does, so the measurement starts from synced sessions. (Sending
    // while that read was pending wedged the server before the store fix; the soak sends at
    // once on purpose: see BENCHMARKS.md, soak.)
    let synced = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    if let ServerFrame::QueueEmpty = decode_server_frame(&b, 1 << 24)? {
                        return anyhow::Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("connection failed: {e}"),
                None => bail!("connection closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), synced)
        .await
        .context("queue not read within 10 s of Hello")??;
    Ok(ws)
}

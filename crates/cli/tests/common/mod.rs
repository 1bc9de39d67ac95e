//! Helpers for tests that drive the real `sirrd` and `sirr` binaries.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A built binary of this workspace (cargo builds every member's binaries before its tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sirrd` on 127.0.0.1 with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// The admin listener's port (`/metrics`).
    pub admin_port: u16,
    pub url: String,
    pub data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub log: Arc<Mutex<String>>,
    /// The thread copying the server's stderr into `log`; it ends when the process has exited
    /// and its last line is in, so [`Server::terminate`] joins it before the log is read.
    log_reader: Option<std::thread::JoinHandle<()>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Start with the binary's own defaults (no raised limits, abuse engine on).
    stock: bool,
}

impl Server {
    /// Start a development-mode server.
    pub fn dev() -> Server {
        Server::start(&["--dev"], &[])
    }

    /// Start a development-mode server exactly as a newcomer runs it (`sirrd --dev`): default
    /// rate limits and the abuse engine on, unlike [`Server::start`].
    pub fn stock_dev() -> Server {
        Server::launch(&["--dev"], &[], true)
    }

    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::launch(args, env, false)
    }

    fn launch(args: &[&str], env: &[(&str, &str)], stock: bool) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut s = Server {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            url: String::new(),
            data,
            _tmp: Some(tmp),
            log: Arc::default(),
            log_reader: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            stock,
        };
        s.spawn();
        s
    }

    fn scheme(&self) -> &'static str {
        if self.args.iter().any(|a| a == "--tls-cert") {
            "https"
        } else {
            "http"
        }
    }

    fn spawn(&mut self) {
        self.log.lock().unwrap().clear();
        let mut cmd = Command::new(bin("sirrd"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
            .arg("--data")
            .arg(&self.data)
            .args(&self.args)
            .env_remove("SIRR_CONFIG")
            .env("SIRR_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Generous limits so tests exercise behaviour, not the default production budgets,
        // unless a test sets its own (or asks for the stock configuration).
        for limit in [
            "SEND",
            "SEALED_SEND",
            "REGISTRATION_PER_IP",
            "CODE_PER_PREFIX",
            "LOOKUP",
            "CLAIM",
        ]
        .iter()
        .filter(|_| !self.stock)
        {
            cmd.env(format!("SIRR_LIMITS__{limit}__BURST"), "100000");
            cmd.env(format!("SIRR_LIMITS__{limit}__PER_SECOND"), "100000.0");
        }
        // The abuse engine would see every test's accounts come from one address in a burst;
        // tests about it turn it on.
        if !self.stock {
            cmd.env("SIRR_ABUSE__ENABLED", "false");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sirrd");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        self.log_reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }));
        self.child = Some(child);
        self.url = format!("{}://127.0.0.1:{}", self.scheme(), self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().contains("sirrd listening on") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("sirrd exited early with {status}:\n{}", self.log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sirrd did not start:\n{}", self.log.lock().unwrap());
    }

    /// Set an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Start again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn();
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                // The exit can be seen before the last lines are read from the pipe.
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join();
                }
                return s;
            }
            assert!(Instant::now() < deadline, "sirrd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET a path from the clients' listener with a minimal HTTP/1.1 request; returns (status
    /// line, body).
    pub fn get(&self, path: &str) -> (String, String) {
        http_get(self.port, path)
    }

    /// GET a path from the admin listener (where `/metrics` is served).
    pub fn admin_get(&self, path: &str) -> (String, String) {
        http_get(self.admin_port, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The running server's process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

/// GET `path` from 127.0.0.1:`port`; returns (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The server's database, read-only, beside the running server (WAL lets both work).
pub fn read_db(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        server.data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// Run `sirr --home HOME ARGS...`.
pub fn sirr(home: &Path, args: &[&str]) -> Output {
    Command::new(bin("sirr"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run sirr")
}

/// Run `sirr` and insist it succeeds; returns stdout.
pub fn sirr_ok(home: &Path, args: &[&str]) -> String {
    let out = sirr(home, args);
    assert!(
        out.status.success(),
        "sirr {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Register a home directory with the development code.
pub fn register(server: &Server, home: &Path, phone: &str) {
    sirr_ok(
        home,
        &[
            "register",
            "--server",
            &server.url,
            "--phone",
            phone,
            "--code",
            "000000",
            "--name",
            "test",
        ],
    );
}

/// Parse `recv --json` output.
pub fn recv_json(home: &Path, wait: &str) -> Vec<serde_json::Value> {
    sirr_ok(home, &["recv", "--json", "--wait", wait])
        .lines()
        .map(|l| serde_json::from_str(l).expect("recv --json prints one JSON object per line"))
        .collect()
}

/// What `link` saw: the approving and the linking commands' results.
pub struct Linked {
    pub approve: Output,
    pub link: Output,
}

/// Link `new_home` as a new device of `approver`'s account: `sirr device link` on the new
/// home prints a code, `sirr device approve CODE` on the approver takes it.
pub fn link(server: &Server, new_home: &Path, approver: &Path) -> Linked {
    let mut child = Command::new(bin("sirr"))
        .arg("--home")
        .arg(new_home)
        .args(["device", "link", "--server", &server.url, "--name", "linked"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sirr device link");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let code = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let out = child.wait_with_output().unwrap();
            panic!(
                "device link ended without a code: {printed}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        printed.push_str(&line);
        if let Some(code) = line.trim().strip_prefix("sirr device approve ") {
            break code.to_owned();
        }
    };
    let approve = sirr(approver, &["device", "approve", &code]);
    if !approve.status.success() {
        let _ = child.kill();
    }
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let mut link = child.wait_with_output().unwrap();
    link.stdout = format!("{printed}{rest}").into_bytes();
    Linked { approve, link }
}

/// Link and insist both sides succeed.
pub fn link_ok(server: &Server, new_home: &Path, approver: &Path) {
    let l = link(server, new_home, approver);
    assert!(
        l.approve.status.success() && l.link.status.success(),
        "linking failed:\napprove: {}\nlink: {}\n{}",
        String::from_utf8_lossy(&l.approve.stderr),
        String::from_utf8_lossy(&l.link.stderr),
        String::from_utf8_lossy(&l.link.stdout)
    );
}

/// A raw, authenticated protocol session as `home`'s device, and that device's address.
pub async fn session_as(
    server: &Server,
    home: &Path,
) -> (sirr_client::Connection, sirr_proto::DeviceAddress) {
    let creds = sirr_client::state::State::open(home)
        .unwrap()
        .credentials()
        .unwrap();
    let conn = sirr_client::Connection::connect(&server.url, None).await.unwrap();
    conn.request(sirr_proto::Request::Hello {
        protocol: sirr_proto::PROTOCOL_VERSION,
        account: creds.account,
        device: creds.device,
        secret: creds.secret().unwrap(),
    })
    .await
    .unwrap();
    let me = sirr_proto::DeviceAddress {
        account: creds.account,
        device: creds.device,
    };
    (conn, me)
}

/// A raw, authenticated protocol session as `home`'s device.
pub async fn session(server: &Server, home: &Path) -> sirr_client::Connection {
    session_as(server, home).await.0
}

/// Every file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether `needle` (non-empty) occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A new device linked to `approver`'s account over raw frames (the approver does not sign it
/// into the account's device list): its account, device and secret. Registering a number that
/// has an account starts the account anew, so linking is how a second device is made.
pub async fn link_device_raw(
    server: &Server,
    approver: &sirr_client::Connection,
) -> (sirr_proto::AccountId, sirr_proto::DeviceId, sirr_proto::Secret) {
    use sirr_proto::{Request, Response};
    let fresh = sirr_client::Connection::connect(&server.url, None).await.unwrap();
    let Response::LinkCode { link_id, secret, .. } = fresh
        .request(Request::RequestLink { public_key: [3; 32] })
        .await
        .unwrap()
    else {
        panic!("no link code")
    };
    let waiter = tokio::spawn(async move { fresh.request(Request::AwaitLink { link_id, secret }).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = approver
        .request(Request::ApproveLink {
            link_id,
            sealed: vec![7; 40].into(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Linked { .. }), "{r:?}");
    match waiter.await.unwrap().unwrap() {
        Response::LinkApproved {
            account,
            device,
            secret,
            ..
        } => (account, device, secret),
        other => panic!("{other:?}"),
    }
}

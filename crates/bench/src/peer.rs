//! The `throughput` workload against a side-by-side peer: ejabberd over XMPP, or redis-server
//! pub/sub. Same shape as Sirr's run (N clients in one-to-one pairs, the same send clock per
//! client, the same window of sends in flight, the same measurement window, histogram and
//! report), so a figure can be divided by Sirr's measured in the same session.
//!
//! What "in flight" means differs with what each protocol acknowledges: Sirr answers every send
//! once it is durable; Redis answers every PUBLISH once it is handed to the subscribers' output
//! buffers; XMPP acknowledges nothing (without stream management), so an XMPP sender counts a
//! message in flight until its peer has received it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::harness::find_process;
use crate::resp;
use crate::throughput::{Args, Report, Shared, histogram, measure, ticker};
use crate::xmpp::{self, Client, Item, Reader};

/// A server measured side by side with Sirr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// ejabberd over XMPP c2s (started by scripts/peers/start-ejabberd)
    Ejabberd,
    /// redis-server PUBLISH/SUBSCRIBE (started by scripts/peers/start-redis)
    Redis,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Ejabberd => "ejabberd",
            Peer::Redis => "redis",
        }
    }

    /// Where scripts/peers/start-* make it listen.
    pub fn default_addr(self) -> SocketAddr {
        let port = match self {
            Peer::Ejabberd => 5222,
            Peer::Redis => 6379,
        };
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// The server's process, for its CPU and memory: the one process of its name, if only one.
    pub fn pid(self) -> Option<u32> {
        find_process(match self {
            Peer::Ejabberd => "beam.smp",
            Peer::Redis => "redis-server",
        })
    }
}

/// Every XMPP account this benchmark uses has this password.
const PASSWORD: &str = "bench-password-1";
/// Accounts `bench0 .. benchN` known to exist on the ejabberd measured (registered earlier in
/// this process), so later runs of a comparison skip registering them again.
static XMPP_ACCOUNTS: AtomicUsize = AtomicUsize::new(0);

/// A tag unique to this run, carried in every payload: ejabberd stores messages that arrive after
/// their recipient left and hands them over at its next login, and those must not count.
fn run_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
}

/// Run the `throughput` workload against `peer` at `addr`.
pub async fn throughput(peer: Peer, addr: SocketAddr, a: &Args) -> anyhow::Result<Report> {
    let n = a.devices.max(2) & !1;
    let shared = Shared::new();
    let run = run_tag();
    let tasks = match peer {
        Peer::Ejabberd => xmpp_clients(addr, n, a, run, &shared).await?,
        Peer::Redis => redis_clients(addr, n, a, run, &shared).await?,
    };
    measure(peer.name(), n, a, peer.pid(), &shared, tasks).await
}

/// Make sure accounts `bench0 .. bench{n-1}` exist (in-band registration, one connection each).
pub async fn ensure_xmpp_accounts(addr: SocketAddr, n: usize) -> anyhow::Result<()> {
    let have = XMPP_ACCOUNTS.load(Ordering::Relaxed);
    if have >= n {
        return Ok(());
    }
    eprintln!("registering XMPP accounts bench{have}..bench{} ...", n - 1);
    let next = Arc::new(AtomicUsize::new(have));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let (mut c, _) = Client::connect(addr, None).await?;
                c.register(&format!("bench{i}"), PASSWORD).await?;
                c.close().await;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    XMPP_ACCOUNTS.store(n, Ordering::Relaxed);
    Ok(())
}

pub async fn xmpp_login(addr: SocketAddr, i: usize, resource: &str) -> anyhow::Result<Client> {
    let (mut c, features) = Client::connect(addr, None).await?;
    c.login(&features, &format!("bench{i}"), PASSWORD, resource)
        .await
        .with_context(|| format!("logging in bench{i}"))?;
    Ok(c)
}

async fn xmpp_clients(
    addr: SocketAddr,
    n: usize,
    a: &Args,
    run: u32,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Histogram<u64>>>> {
    ensure_xmpp_accounts(addr, n).await?;
    eprintln!("logging in {n} XMPP clients (SCRAM-SHA-1) ...");
    let resource = format!("r{run:08x}");
    let mut clients = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let logins =
            futures_util::future::join_all(chunk.iter().map(|&i| xmpp_login(addr, i, &resource))).await;
        for c in logins {
            clients.push(c?);
        }
    }
    let windows: Vec<Arc<Semaphore>> = (0..n).map(|_| Arc::new(Semaphore::new(a.window))).collect();
    let mut tasks = Vec::with_capacity(n);
    for (i, c) in clients.into_iter().enumerate() {
        let peer = (i + n / 2) % n;
        let to = format!("bench{peer}@{}/{resource}", xmpp::DOMAIN);
        let (mine, theirs) = (windows[i].clone(), windows[peer].clone());
        tasks.push(tokio::spawn(xmpp_device(
            c,
            to,
            mine,
            theirs,
            run,
            a.clone(),
            ticker(i, n, a.rate),
            shared.clone(),
        )));
    }
    Ok(tasks)
}

/// The body of a benchmark message: run tag and send time in hex, padded to `len` bytes.
fn xmpp_body(run: u32, sent_ns: u64, len: usize) -> String {
    let mut body = format!("{run:08x}{sent_ns:016x}");
    while body.len() < len {
        body.push('x');
    }
    body
}

/// The send time in a body made by [`xmpp_body`] for run `run`; None for another run's.
fn xmpp_sent_ns(body: &[u8], run: u32) -> Option<u64> {
    let text = std::str::from_utf8(body.get(..24)?).ok()?;
    if u32::from_str_radix(&text[..8], 16).ok()? != run {
        return None;
    }
    u64::from_str_radix(&text[8..], 16).ok()
}

/// One XMPP client: sends to its peer on its clock (or as its window allows), records the
/// latency of what it receives and returns the peer's window permits for it.
#[allow(clippy::too_many_arguments)]
async fn xmpp_device(
    mut c: Client,
    to: String,
    mine: Arc<Semaphore>,
    theirs: Arc<Semaphore>,
    run: u32,
    a: Args,
    mut tick: tokio::time::Interval,
    shared: Arc<Shared>,
) -> Histogram<u64> {
    let mut hist = histogram();
    let mut stop = shared.stop_tx.subscribe();
    let paced = a.rate > 0.0;
    let mut out = Vec::with_capacity(4096);
    let mut batch = 0u64;
    let stanza = |out: &mut Vec<u8>, batch: &mut u64| {
        let body = xmpp_body(run, shared.now_ns(), a.payload.max(24));
        out.extend_from_slice(
            format!("<message to='{to}' type='chat'><body>{body}</body></message>").as_bytes(),
        );
        *batch += 1;
    };
    'run: loop {
        loop {
            match c.reader.try_parse(xmpp::split_item) {
                Ok(Some(Item::Element(el))) => {
                    if xmpp::name(&el) == b"message"
                        && let Some(sent) = xmpp::child_text(&el, "body").and_then(|b| xmpp_sent_ns(b, run))
                    {
                        shared.delivered(&mut hist, sent);
                        theirs.add_permits(1);
                    }
                }
                Ok(Some(Item::Header)) => {}
                Ok(None) => break,
                Ok(Some(Item::Close)) | Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    break 'run;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if paced => {
                if let Ok(p) = mine.try_acquire() {
                    p.forget();
                    stanza(&mut out, &mut batch);
                }
            }
            p = mine.acquire(), if !paced => {
                let Ok(p) = p else { break };
                p.forget();
                stanza(&mut out, &mut batch);
                while let Ok(p) = mine.try_acquire() {
                    p.forget();
                    stanza(&mut out, &mut batch);
                }
            }
            r = c.reader.read() => {
                if !matches!(r, Ok(1..)) {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        if !out.is_empty() {
            if c.wr.write_all(&out).await.is_err() {
                break;
            }
            // XMPP answers nothing per message: "sent" is "written to the server".
            shared
                .sent
                .fetch_add(std::mem::take(&mut batch), Ordering::Relaxed);
            out.clear();
        }
    }
    c.close().await;
    hist
}

async fn redis_connect(addr: SocketAddr) -> anyhow::Result<(Reader, tokio::net::tcp::OwnedWriteHalf)> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let (rd, wr) = s.into_split();
    Ok((Reader::new(rd), wr))
}

async fn redis_clients(
    addr: SocketAddr,
    n: usize,
    a: &Args,
    run: u32,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Histogram<u64>>>> {
    eprintln!("connecting {n} Redis clients (a subscriber and a publisher connection each) ...");
    let channel = |i: usize| format!("bench:{run:08x}:{i}");
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (mut sub_rd, mut sub_wr) = redis_connect(addr).await?;
        let mut cmd = Vec::new();
        resp::encode(&mut cmd, &[b"SUBSCRIBE", channel(i).as_bytes()]);
        sub_wr.write_all(&cmd).await?;
        match sub_rd.next(resp::decode).await? {
            resp::Value::Array(Some(v))
                if v.first() == Some(&resp::Value::Bulk(Some(b"subscribe".to_vec()))) => {}
            other => bail!("SUBSCRIBE answered {other:?}"),
        }
        let publisher = redis_connect(addr).await?;
        tasks.push(tokio::spawn(redis_device(
            (sub_rd, sub_wr),
            publisher,
            channel((i + n / 2) % n),
            run,
            a.clone(),
            ticker(i, n, a.rate),
            shared.clone(),
        )));
    }
    Ok(tasks)
}

/// One Redis client: publishes to its peer's channel on its clock (or as its window of
/// unanswered PUBLISHes allows) and records the latency of what arrives on its own channel.
async fn redis_device(
    (mut sub, _sub_wr): (Reader, tokio::net::tcp::OwnedWriteHalf),
    (mut publ, mut pub_wr): (Reader, tokio::net::tcp::OwnedWriteHalf),
    to: String,
    run: u32,
    a: Args,
    mut tick: tokio::time::Interval,
    shared: Arc<Shared>,
) -> Histogram<u64> {
    let mut hist = histogram();
    let mut stop = shared.stop_tx.subscribe();
    let paced = a.rate > 0.0;
    let mut inflight = 0usize;
    let mut out = Vec::with_capacity(4096);
    let mut payload = vec![b'x'; a.payload.max(12)];
    payload[8..12].copy_from_slice(&run.to_le_bytes());
    let mut publish = |out: &mut Vec<u8>| {
        payload[..8].copy_from_slice(&shared.now_ns().to_le_bytes());
        resp::encode(out, &[b"PUBLISH", to.as_bytes(), &payload]);
    };
    loop {
        if !paced {
            while inflight < a.window {
                publish(&mut out);
                inflight += 1;
            }
        }
        if !out.is_empty() {
            if pub_wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if paced => {
                if inflight < a.window {
                    publish(&mut out);
                    inflight += 1;
                }
            }
            r = publ.read() => {
                if !matches!(r, Ok(1..)) {
                    break;
                }
                loop {
                    match publ.try_parse(resp::decode) {
                        Ok(Some(resp::Value::Int(1..))) => {
                            inflight = inflight.saturating_sub(1);
                            shared.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Some(_)) => {
                            // An error, or a PUBLISH that reached no subscriber.
                            inflight = inflight.saturating_sub(1);
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            return hist;
                        }
                    }
                }
            }
            r = sub.read() => {
                if !matches!(r, Ok(1..)) {
                    break;
                }
                loop {
                    match sub.try_parse(resp::decode) {
                        Ok(Some(v)) => {
                            if let Some(p) = resp::message_payload(&v)
                                && p.get(8..12) == Some(&run.to_le_bytes()[..])
                                && let Some(sent) = p.first_chunk::<8>()
                            {
                                shared.delivered(&mut hist, u64::from_le_bytes(*sent));
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            return hist;
                        }
                    }
                }
            }
        }
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmpp_bodies_carry_their_run_and_send_time() {
        let b = xmpp_body(0xdead_beef, 123_456_789, 64);
        assert_eq!(b.len(), 64);
        assert_eq!(xmpp_sent_ns(b.as_bytes(), 0xdead_beef), Some(123_456_789));
        assert_eq!(xmpp_sent_ns(b.as_bytes(), 1), None);
        assert_eq!(xmpp_sent_ns(b"short", 1), None);
    }
}

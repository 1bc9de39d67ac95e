//! The native platform: tokio for time and tasks, tokio-tungstenite for WebSockets
//! ([`ws`]), SQLite for the store ([`crate::store::SqliteStore`]).

pub mod ws;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::platform::{BlockingJob, BoxFuture, Clock, Spawner};

/// The system clock; sleeps on tokio's timer (needs a tokio runtime).
pub struct TokioClock;

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(Duration::from_millis(ms)))
    }
}

/// Tasks on the current tokio runtime; blocking jobs on its blocking pool.
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    fn run_blocking(&self, job: BlockingJob) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // A panicking job is reported by the caller: its result never arrives.
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }
}

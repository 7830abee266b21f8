//! Game-day chaos: function processes killed at step boundaries and their events delivered
//! again, as Lambda retries asynchronous events.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::SandboxError;

/// Game-day chaos, for every function process of this run: the processes are killed at random
/// step boundaries (right after the `k`-th change an attempt made took effect upstream, as seen
/// by the fault proxies every function talks through) and the events delivered again, as Lambda
/// retries asynchronous events: about a minute after the first failed attempt, about two after
/// the second ("How Lambda handles errors and retries with asynchronous invocation",
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>).
///
/// The waits pass on the functions' sandbox clock (`BREAKWATER_SANDBOX_NOW_MS`): the retry
/// runs in a new process whose clock reads the wait later, while only `wait / time_scale` of
/// real time goes by — so a dead attempt's claims lapse as they would in Lambda, in seconds.
#[derive(Debug)]
pub struct Chaos {
    /// The proxy between the functions and AWS.
    pub proxy: Arc<crate::proxy::FaultProxy>,
    /// The chance that an attempt is killed.
    pub kill_rate: f64,
    /// Attempts per event (Lambda: the first and two retries).
    pub attempts: u32,
    /// The waits before the second and the third attempt (Lambda: one minute, then two).
    pub retry_waits: [Duration; 2],
    /// How many times faster than real time the waits pass on the functions' clocks.
    pub time_scale: f64,
    /// Added to every function's environment (claims that lapse before the retry).
    pub env: Vec<(String, String)>,
    rng: Mutex<u64>,
    log: Mutex<Vec<(String, String)>>,
    /// Further proxies whose changes are step boundaries too (the Kubernetes API's).
    watched: Mutex<Vec<Arc<crate::proxy::FaultProxy>>>,
}

pub(super) static CHAOS: OnceLock<Chaos> = OnceLock::new();

impl Chaos {
    /// Chaos over `proxy`, repeatable by `seed`.
    pub fn new(proxy: Arc<crate::proxy::FaultProxy>, kill_rate: f64, seed: u64) -> Self {
        Chaos {
            proxy,
            kill_rate,
            attempts: 3,
            retry_waits: [Duration::from_secs(60), Duration::from_secs(120)],
            time_scale: 60.0,
            // A dead invocation's claims lapse within the minute Lambda waits before a retry
            // (leases: 60 s by default).
            env: vec![("BREAKWATER_IDEMPOTENCY_SECONDS".into(), "60".into())],
            rng: Mutex::new(seed | 1),
            log: Mutex::new(Vec::new()),
            watched: Mutex::new(Vec::new()),
        }
    }

    /// Counts the changes made through `proxy` as step boundaries too (a kill point can fall
    /// right after a Kubernetes patch).
    pub fn watch(&self, proxy: Arc<crate::proxy::FaultProxy>) {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(proxy);
    }

    /// The changes that took effect upstream so far, through every proxy watched.
    pub fn mutations_done(&self) -> usize {
        let watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        self.proxy.mutations_done() + watched.iter().map(|p| p.mutations_done()).sum::<usize>()
    }

    /// The real time that stands for `wait` on the functions' clocks.
    pub(super) fn real(&self, wait: Duration) -> Duration {
        wait.div_f64(self.time_scale.max(1.0))
    }

    /// Turns chaos on for this process (once).
    pub fn enable(self) -> Result<(), SandboxError> {
        CHAOS
            .set(self)
            .map_err(|_| SandboxError::Io("chaos is already on".into()))
    }

    /// The chaos of this run, when on.
    pub fn get() -> Option<&'static Chaos> {
        CHAOS.get()
    }

    pub(super) fn next(&self) -> u64 {
        let mut x = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// `Some(k)` (1–4): kill this attempt after its `k`-th change; `None`: let it run.
    pub(super) fn kill_point(&self) -> Option<usize> {
        let roll = (self.next() % 10_000) as f64 / 10_000.0;
        (roll < self.kill_rate).then(|| 1 + (self.next() % 4) as usize)
    }

    pub(super) fn note(&self, function: &str, what: &str) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((function.to_string(), what.to_string()));
    }

    /// What chaos did so far: `(function, what)`.
    pub fn log(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

//! One provider's pacing and health, kept by its upstream client (`providers::http`): a token
//! bucket where the provider documents a limit, the pause a 429's `Retry-After` (or an
//! exhausted `X-RateLimit-Remaining`) imposes, the delays between a read's retries, and a
//! circuit breaker that stops calling a provider that keeps failing and probes it back.
//!
//! Waits are bounded: a call that would wait longer than `max_retry_after_secs`, or past its
//! request's deadline, fails at once with `ProviderError::RateLimited` and is not sent.

use super::ProviderError;
use crate::config::{Bucket, BudgetConfig};
use crate::contact::ProviderId;
use backon::{BackoffBuilder, ExponentialBuilder};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A 429 without a `Retry-After` pauses the provider this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause a provider can impose: a `Retry-After` of a week is read as a day.
const MAX_PAUSE: Duration = Duration::from_secs(86_400);
/// The delay before a read's first retry; each further one doubles, up to the next bound.
/// Each is stretched by a random share of itself (up to twice), so callers drift apart.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The circuit breaker's state, as metrics and logs show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls fail at once until the cooldown ends.
    Open,
    /// The cooldown ended: one call (the probe) goes through, the others fail at once.
    HalfOpen,
}

/// Everything the gateway keeps of one provider's budget and health. Shared by the clones of
/// its upstream client; the accessors are what an operator would graph.
pub struct Pacing {
    provider: ProviderId,
    bucket: Option<DefaultDirectRateLimiter>,
    follow_rate_limit_headers: bool,
    max_wait: Duration,
    retries: u32,
    /// No call before this (a 429's `Retry-After`, an exhausted `X-RateLimit-Remaining`).
    paused_until: Mutex<Option<Instant>>,
    breaker: Breaker,
    waits: AtomicU64,
    waited_ms: AtomicU64,
    refused: AtomicU64,
    retried: AtomicU64,
}

impl Pacing {
    pub fn new(provider: ProviderId, config: &BudgetConfig) -> Self {
        Pacing {
            provider,
            bucket: config.bucket.as_ref().map(limiter),
            follow_rate_limit_headers: config.follow_rate_limit_headers,
            max_wait: Duration::from_secs(config.max_retry_after_secs),
            retries: config.retries,
            paused_until: Mutex::new(None),
            breaker: Breaker {
                threshold: config.breaker_failures.max(1),
                cooldown: config.breaker_cooldown,
                circuit: Mutex::new(Circuit::Closed { failures: 0 }),
                refusals: AtomicU64::new(0),
                openings: AtomicU64::new(0),
            },
            waits: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

    /// Waits until the provider may take a call: its pause over and a token taken from its
    /// bucket. When that would take longer than `limit` (what is left of the request's
    /// deadline) or than `max_retry_after_secs`, fails at once with `RateLimited`, saying when
    /// the provider would take a call, and takes no token.
    pub async fn wait_turn(&self, limit: Option<Duration>) -> Result<(), ProviderError> {
        let started = Instant::now();
        let give_up = started + limit.map_or(self.max_wait, |l| l.min(self.max_wait));
        let mut slept = false;
        loop {
            let now = Instant::now();
            let wait = match self.pause_left(now) {
                pause if !pause.is_zero() => pause,
                _ => match self.take_token() {
                    Ok(()) => break,
                    Err(wait) => wait,
                },
            };
            if now + wait > give_up {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(ProviderError::RateLimited {
                    provider: self.provider,
                    retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                });
            }
            // A zero wait would spin: the bucket's next token is due within the millisecond.
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
            slept = true;
        }
        if slept {
            self.waits.fetch_add(1, Ordering::Relaxed);
            self.waited_ms
                .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A token from the bucket, or how long until one is due.
    fn take_token(&self) -> Result<(), Duration> {
        match &self.bucket {
            None => Ok(()),
            // Measured on the bucket's own clock: another clock's instants may not compare.
            Some(bucket) => bucket
                .check()
                .map_err(|not_until| not_until.wait_time_from(bucket.clock().now())),
        }
    }

    fn pause_left(&self, now: Instant) -> Duration {
        lock(&self.paused_until)
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// The provider answered 429: no call for `retry_after` (its `Retry-After`; a second when
    /// it gave none).
    pub fn rate_limited(&self, retry_after: Option<Duration>) {
        self.pause(retry_after.unwrap_or(DEFAULT_PAUSE), "429");
    }

    /// Reads the provider's `X-RateLimit-*` headers (when it is followed): with nothing
    /// remaining, no call until the reset.
    pub fn observe_headers(&self, headers: &HeaderMap) {
        if !self.follow_rate_limit_headers {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if let Some(wait) = exhausted_for(headers, now) {
            self.pause(wait, "X-RateLimit-Remaining: 0");
        }
    }

    fn pause(&self, wait: Duration, why: &str) {
        let wait = wait.min(MAX_PAUSE);
        let until = Instant::now() + wait;
        let mut paused = lock(&self.paused_until);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            tracing::warn!(
                target: "upstream",
                provider = %self.provider, pause_ms = wait.as_millis() as u64, reason = why,
                "provider paused: no calls until its rate limit allows"
            );
        }
    }

    /// The delays before a read's retries: `retries` of them, doubling from 100 ms, jittered.
    pub fn retry_delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(self.retries as usize)
            .with_jitter()
            .build()
    }

    /// Counts a retry that is about to be sent.
    pub fn retrying(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the breaker for a call: refused at once (`Unavailable`, not sent) while it is
    /// open, or half-open with its probe out. The permit reports the call's outcome.
    pub fn admit(&self) -> Result<Permit<'_>, ProviderError> {
        self.breaker.admit(self.provider)
    }

    /// Calls that waited for their turn (bucket or pause).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Time those calls spent waiting, in total.
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }

    /// Calls failed at once with `RateLimited`: their turn was further than they could wait.
    pub fn rate_limit_refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Reads sent again after a failure.
    pub fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// How long the provider is still paused for (zero when it is not).
    pub fn paused_for(&self) -> Duration {
        self.pause_left(Instant::now())
    }

    pub fn breaker_state(&self) -> BreakerState {
        match *lock(&self.breaker.circuit) {
            Circuit::Closed { .. } => BreakerState::Closed,
            Circuit::Open { .. } => BreakerState::Open,
            Circuit::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Calls the breaker failed at once.
    pub fn breaker_refusals(&self) -> u64 {
        self.breaker.refusals.load(Ordering::Relaxed)
    }

    /// Times the breaker opened.
    pub fn breaker_openings(&self) -> u64 {
        self.breaker.openings.load(Ordering::Relaxed)
    }
}

fn limiter(bucket: &Bucket) -> DefaultDirectRateLimiter {
    let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
    // The config keeps the rate at one call an hour or more.
    let period = Duration::from_secs_f64(1.0 / bucket.rate_per_sec.max(1.0 / 3600.0));
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX));
    RateLimiter::direct(quota.allow_burst(burst))
}

/// How long until the reset, when `X-RateLimit-Remaining` says nothing is left (NOTES 2.4:
/// `X-RateLimit-Reset` in Unix seconds; a small number is read as seconds from now, as some
/// APIs send it). `None` while calls remain, or without the headers.
fn exhausted_for(headers: &HeaderMap, now_unix: u64) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    if number("x-ratelimit-remaining")? > 0.0 {
        return None;
    }
    let secs = match number("x-ratelimit-reset") {
        // Past 2001-09-09 as a Unix time: a point in time, not a delay.
        Some(reset) if reset >= 1e9 => reset - now_unix as f64,
        Some(delay) => delay,
        None => return Some(DEFAULT_PAUSE),
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_PAUSE.as_secs_f64())))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Breaker {
    threshold: u32,
    cooldown: Duration,
    circuit: Mutex<Circuit>,
    refusals: AtomicU64,
    openings: AtomicU64,
}

enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_out: bool },
}

impl Breaker {
    fn admit(&self, provider: ProviderId) -> Result<Permit<'_>, ProviderError> {
        let mut circuit = lock(&self.circuit);
        let refusal = match *circuit {
            Circuit::Closed { .. } => {
                return Ok(Permit {
                    breaker: self,
                    provider,
                    probe: false,
                    settled: false,
                })
            }
            Circuit::Open { until } if Instant::now() >= until => {
                *circuit = Circuit::HalfOpen { probe_out: true };
                return Ok(self.probe(provider));
            }
            Circuit::HalfOpen { probe_out: false } => {
                *circuit = Circuit::HalfOpen { probe_out: true };
                return Ok(self.probe(provider));
            }
            Circuit::Open { until } => format!(
                "it failed {} times in a row, so the gateway stops calling it for {} s \
                 (circuit breaker); the next call goes through in {} s",
                self.threshold,
                self.cooldown.as_secs_f64().ceil(),
                until
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0),
            ),
            Circuit::HalfOpen { probe_out: true } => "it kept failing, and the gateway is \
                 checking with one call whether it is back (circuit breaker)"
                .to_string(),
        };
        self.refusals.fetch_add(1, Ordering::Relaxed);
        Err(ProviderError::Unavailable {
            provider,
            reason: refusal,
            retryable: false,
            may_have_been_applied: false,
        })
    }

    fn probe(&self, provider: ProviderId) -> Permit<'_> {
        tracing::info!(target: "upstream", provider = %provider, "circuit breaker half-open: one call probes the provider");
        Permit {
            breaker: self,
            provider,
            probe: true,
            settled: false,
        }
    }

    fn open(&self, circuit: &mut Circuit) {
        *circuit = Circuit::Open {
            until: Instant::now() + self.cooldown,
        };
        self.openings.fetch_add(1, Ordering::Relaxed);
    }
}

/// A call the breaker let through. Report its outcome with `settle`; a permit dropped
/// unsettled (the call was not sent, or was cut by the request's deadline) counts for
/// nothing, and a probe's turn passes to the next call.
pub struct Permit<'a> {
    breaker: &'a Breaker,
    provider: ProviderId,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    /// The call's outcome: `failed` for a 5xx, a timeout or a connection failure; anything
    /// else the provider answered shows it is up.
    pub fn settle(mut self, failed: bool) {
        self.settled = true;
        let provider = self.provider;
        let breaker = self.breaker;
        let mut circuit = lock(&breaker.circuit);
        match (&mut *circuit, failed) {
            (Circuit::Closed { failures }, false) => *failures = 0,
            (Circuit::Closed { failures }, true) => {
                *failures += 1;
                if *failures >= breaker.threshold {
                    breaker.open(&mut circuit);
                    tracing::warn!(
                        target: "upstream",
                        provider = %provider, failures = breaker.threshold,
                        cooldown_ms = breaker.cooldown.as_millis() as u64,
                        "circuit breaker open: calls fail at once until the cooldown ends"
                    );
                }
            }
            (Circuit::HalfOpen { .. }, false) if self.probe => {
                *circuit = Circuit::Closed { failures: 0 };
                tracing::info!(target: "upstream", provider = %provider, "circuit breaker closed: the provider is back");
            }
            (Circuit::HalfOpen { .. }, true) if self.probe => {
                breaker.open(&mut circuit);
                tracing::warn!(target: "upstream", provider = %provider, "circuit breaker open again: the probe failed");
            }
            // A call let through before the circuit opened: the probe decides.
            _ => {}
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            let mut circuit = lock(&self.breaker.circuit);
            if let Circuit::HalfOpen { probe_out } = &mut *circuit {
                *probe_out = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn budget(adjust: impl FnOnce(&mut BudgetConfig)) -> BudgetConfig {
        let mut config = BudgetConfig::default();
        adjust(&mut config);
        config
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn nothing_remaining_pauses_until_the_reset() {
        let now = 1_700_000_000;
        let reset = (now + 42).to_string();
        let exhausted = headers(&[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]);
        assert_eq!(
            exhausted_for(&exhausted, now),
            Some(Duration::from_secs(42))
        );
        // A reset already past, or calls remaining: no pause.
        assert_eq!(exhausted_for(&exhausted, now + 50), None);
        let remaining = headers(&[
            ("x-ratelimit-remaining", "3"),
            ("x-ratelimit-reset", &reset),
        ]);
        assert_eq!(exhausted_for(&remaining, now), None);
        assert_eq!(exhausted_for(&HeaderMap::new(), now), None);
        // A reset given as seconds from now; none at all: a short pause.
        let relative = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")]);
        assert_eq!(exhausted_for(&relative, now), Some(Duration::from_secs(7)));
        let bare = headers(&[("x-ratelimit-remaining", "0")]);
        assert_eq!(exhausted_for(&bare, now), Some(DEFAULT_PAUSE));
        let garbage = headers(&[("x-ratelimit-remaining", "none left")]);
        assert_eq!(exhausted_for(&garbage, now), None);
    }

    #[tokio::test]
    async fn headers_pause_only_a_provider_that_follows_them() {
        let reset = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "30")]);
        let ignoring = Pacing::new(ProviderId::Consuelo, &BudgetConfig::default());
        ignoring.observe_headers(&reset);
        assert_eq!(ignoring.paused_for(), Duration::ZERO);
        let following = Pacing::new(
            ProviderId::Consuelo,
            &budget(|b| b.follow_rate_limit_headers = true),
        );
        following.observe_headers(&reset);
        assert!(following.paused_for() > Duration::from_secs(29));
        // A call that cannot wait 30 s fails at once, saying when to come back.
        let started = Instant::now();
        match following.wait_turn(Some(Duration::from_secs(5))).await {
            Err(ProviderError::RateLimited {
                retry_after_secs: Some(30),
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(following.rate_limit_refusals(), 1);
    }

    #[tokio::test]
    async fn a_short_pause_is_waited_out_and_a_long_one_refused() {
        let pacing = Pacing::new(
            ProviderId::Magicblocks,
            &budget(|b| b.max_retry_after_secs = 5),
        );
        pacing.rate_limited(Some(Duration::from_millis(300)));
        let started = Instant::now();
        pacing
            .wait_turn(Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(290));
        assert_eq!(pacing.waits(), 1);
        // Longer than max_retry_after_secs: refused even without a deadline.
        pacing.rate_limited(Some(Duration::from_secs(120)));
        for limit in [None, Some(Duration::from_secs(600))] {
            match pacing.wait_turn(limit).await {
                Err(ProviderError::RateLimited {
                    retry_after_secs: Some(120),
                    ..
                }) => {}
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // A pause never shortens a longer one.
        pacing.rate_limited(Some(Duration::from_secs(1)));
        assert!(pacing.paused_for() > Duration::from_secs(100));
    }

    #[tokio::test]
    async fn the_bucket_spaces_calls_and_refuses_one_that_cannot_wait() {
        let pacing = Pacing::new(
            ProviderId::Mainbrainer,
            &budget(|b| {
                b.bucket = Some(Bucket {
                    rate_per_sec: 2.0,
                    burst: 2,
                })
            }),
        );
        let started = Instant::now();
        for _ in 0..2 {
            pacing.wait_turn(None).await.unwrap();
        }
        assert_eq!(pacing.waits(), 0, "a burst of 2");
        pacing.wait_turn(None).await.unwrap();
        let third = started.elapsed();
        assert!(third >= Duration::from_millis(400), "{third:?}");
        assert_eq!(pacing.waits(), 1);
        match pacing.wait_turn(Some(Duration::from_millis(20))).await {
            Err(ProviderError::RateLimited {
                retry_after_secs: Some(1),
                ..
            }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(pacing.rate_limit_refusals(), 1);
        pacing.wait_turn(None).await.unwrap();
        assert_eq!(pacing.waits(), 2);
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_failures_and_one_probe_closes_it() {
        let pacing = Pacing::new(
            ProviderId::Maiagent,
            &budget(|b| {
                b.breaker_failures = 3;
                b.breaker_cooldown = Duration::from_millis(500);
            }),
        );
        // A success between failures starts the count again.
        for failed in [true, true, false, true, true] {
            pacing.admit().unwrap().settle(failed);
        }
        assert_eq!(pacing.breaker_state(), BreakerState::Closed);
        pacing.admit().unwrap().settle(true);
        assert_eq!(pacing.breaker_state(), BreakerState::Open);
        let refused = pacing.admit().err().expect("open: refused");
        assert!(refused.to_string().contains("circuit breaker"), "{refused}");
        assert!(!refused.retryable() && !refused.may_have_been_applied());
        tokio::time::sleep(Duration::from_millis(600)).await;
        // One probe; the others are refused while it is out.
        let probe = pacing.admit().expect("the probe");
        assert_eq!(pacing.breaker_state(), BreakerState::HalfOpen);
        assert!(pacing.admit().is_err());
        // A probe that was never sent passes its turn on.
        drop(probe);
        let probe = pacing.admit().expect("the next probe");
        probe.settle(true);
        assert_eq!(pacing.breaker_state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(600)).await;
        pacing.admit().unwrap().settle(false);
        assert_eq!(pacing.breaker_state(), BreakerState::Closed);
        assert_eq!(pacing.breaker_openings(), 2);
        assert_eq!(pacing.breaker_refusals(), 2);
    }

    #[test]
    fn retry_delays_double_with_jitter_and_stop_at_the_configured_count() {
        let pacing = Pacing::new(ProviderId::Magicblocks, &budget(|b| b.retries = 3));
        let delays: Vec<Duration> = pacing.retry_delays().collect();
        assert_eq!(delays.len(), 3);
        for (delay, base) in delays.iter().zip([100u64, 200, 400]) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base && *delay <= base * 2,
                "{delay:?} for {base:?}"
            );
        }
        let none = Pacing::new(ProviderId::Magicblocks, &budget(|b| b.retries = 0));
        assert_eq!(none.retry_delays().count(), 0);
    }
}

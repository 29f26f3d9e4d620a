//! Propagating the do-not-contact registry to providers. `addToDoNotContact` records the entry
//! and one outbox row per provider first (`store::dnc`), then sends each row it holds inline;
//! what did not apply for a reason that may pass (a timeout, a connection failure, a 5xx, a
//! 429) stays pending, and the outbox worker sends it again, with capped, jittered backoff,
//! until the provider takes it. A row is sent only by the holder of its lease, renewed while
//! the call runs: several gateways on one store send each propagation once at a time, and a
//! process that dies mid-call releases its rows when their leases run out (at least once: a
//! provider may then receive one twice).

use super::writes::DoNotContactStatus;
use super::Gateway;
use crate::contact::{Phone, ProviderId};
use crate::providers::{Capability, ProviderError};
use crate::store::dnc::{Entry, Outcome, Propagation, PropagationStatus};
use crate::store::{now_ms, Store, StoreError};
use crate::write::DoNotContact;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How long a held row stays held unless renewed; a dead holder's rows wait this long.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a holder renews its lease while the call runs.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often an idle worker looks for due rows.
const POLL: Duration = Duration::from_secs(1);
/// The first retry's delay; each further one doubles it, up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The delay before the next attempt after `calls` calls: doubling from `FIRST_RETRY`, capped
/// at `MAX_RETRY`, its second half random (replicas retrying together drift apart), and never
/// sooner than the provider's `Retry-After`.
pub fn backoff(calls: i64, retry_after_secs: Option<u64>) -> Duration {
    if calls <= 0 {
        return Duration::ZERO;
    }
    let doubled = FIRST_RETRY.saturating_mul(1u32 << (calls - 1).clamp(0, 20));
    let full = doubled.min(MAX_RETRY);
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_default();
    let share = u64::from_le_bytes(bytes) as f64 / u64::MAX as f64;
    let delay = full / 2 + (full / 2).mul_f64(share);
    delay.max(Duration::from_secs(retry_after_secs.unwrap_or(0)))
}

/// A failure as the outbox keeps it: a kind (with the HTTP status where one matters), from
/// which `error_from_kind` rebuilds an error of the same variant, so its GraphQL code is
/// assigned where every other is.
fn error_kind(error: &ProviderError) -> String {
    match error {
        ProviderError::Unavailable { .. } => "unavailable".into(),
        ProviderError::Timeout { .. } => "timeout".into(),
        ProviderError::RateLimited { .. } => "rate_limited".into(),
        ProviderError::AuthFailed { status, .. } => format!("auth_failed:{status}"),
        ProviderError::Unsupported { .. } => "unsupported".into(),
        ProviderError::NotConfigured { .. } => "not_configured".into(),
        ProviderError::InvalidId { .. } => "invalid_id".into(),
        ProviderError::NotFound { .. } => "not_found".into(),
        ProviderError::BudgetExceeded { limit, .. } => format!("budget_exceeded:{limit}"),
        ProviderError::RequestTimeout { timeout_ms, .. } => format!("request_timeout:{timeout_ms}"),
        ProviderError::Rejected { status, .. } => format!("rejected:{status}"),
    }
}

/// The error a stored kind stands for (`message` is what it said).
pub fn error_from_kind(provider: ProviderId, kind: &str, message: &str) -> ProviderError {
    let (kind, number) = kind.split_once(':').unwrap_or((kind, ""));
    let number: u64 = number.parse().unwrap_or_default();
    let status = u16::try_from(number).unwrap_or_default();
    match kind {
        "timeout" => ProviderError::Timeout {
            provider,
            timeout_ms: number,
        },
        "rate_limited" => ProviderError::RateLimited {
            provider,
            retry_after_secs: None,
        },
        "auth_failed" => ProviderError::AuthFailed { provider, status },
        "unsupported" => ProviderError::Unsupported {
            provider,
            operation: "do-not-contact",
        },
        "not_configured" => ProviderError::NotConfigured { provider },
        "invalid_id" => ProviderError::InvalidId {
            provider,
            native_id: String::new(),
        },
        "not_found" => ProviderError::not_found(provider),
        "budget_exceeded" => ProviderError::BudgetExceeded {
            provider,
            limit: number,
        },
        "request_timeout" => ProviderError::RequestTimeout {
            provider,
            timeout_ms: number,
            may_have_been_applied: true,
        },
        "rejected" => ProviderError::rejected(provider, status, message),
        _ => ProviderError::Unavailable {
            provider,
            reason: message.to_string(),
            retryable: true,
            may_have_been_applied: false,
        },
    }
}

/// What a provider's answer to a do-not-contact request comes to, after `calls` calls: a 2xx
/// is applied; a timeout, a connection failure, a 5xx or a 429 (or a call the request's budget
/// did not allow) stays pending; a provider without the mechanism is unsupported; any other
/// refusal (another 4xx) failed for good.
pub fn settle(provider: ProviderId, result: Result<String, ProviderError>, calls: i64) -> Outcome {
    let now = now_ms();
    let error = match result {
        Ok(message) => {
            return Outcome {
                status: PropagationStatus::Applied,
                message,
                error_code: None,
                next_attempt_ms: now,
                called: true,
            }
        }
        Err(error) => error,
    };
    let called = !matches!(
        error,
        ProviderError::BudgetExceeded { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::NotConfigured { .. }
            | ProviderError::RequestTimeout {
                may_have_been_applied: false,
                ..
            }
    );
    let name = provider.display_name();
    let (status, message, next) = match &error {
        ProviderError::Unavailable { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::RateLimited { .. }
        | ProviderError::RequestTimeout { .. }
        | ProviderError::BudgetExceeded { .. } => {
            let retry_after = match &error {
                ProviderError::RateLimited {
                    retry_after_secs, ..
                } => *retry_after_secs,
                _ => None,
            };
            let calls = if called { calls } else { calls - 1 };
            let delay = backoff(calls, retry_after);
            (
                PropagationStatus::Pending,
                format!("{error}; the gateway's outbox sends it again until {name} takes it"),
                now + delay.as_millis() as i64,
            )
        }
        ProviderError::Unsupported { .. } => (
            PropagationStatus::Unsupported,
            format!("{name} cannot take this request: {error} (the gateway's registry still covers its contacts)"),
            now,
        ),
        _ => (PropagationStatus::Failed, error.to_string(), now),
    };
    Outcome {
        status,
        message,
        error_code: Some(error_kind(&error)),
        next_attempt_ms: next,
        called,
    }
}

/// The request an entry stands for, as every attempt sends it.
pub fn request_of(entry: &Entry) -> DoNotContact {
    DoNotContact {
        phone: entry.phone.as_ref().map(|e164| Phone {
            number: e164.clone(),
            e164: Some(e164.clone()),
            kind: None,
            primary: true,
        }),
        email: entry.email.clone(),
        reason: entry.reason.clone(),
    }
}

/// The status a stored propagation shows.
pub fn status_of(propagation: &Propagation) -> DoNotContactStatus {
    match propagation.status {
        PropagationStatus::Pending => DoNotContactStatus::Pending,
        PropagationStatus::Applied => DoNotContactStatus::Applied,
        PropagationStatus::Failed => DoNotContactStatus::Failed,
        PropagationStatus::Unsupported => DoNotContactStatus::Unsupported,
    }
}

/// Numbers the holders of inline sends, so two requests of one process never share a lease.
static INLINE_SENDS: AtomicU64 = AtomicU64::new(0);

impl Gateway {
    /// Sends `provider`'s propagation of `entry` now, if this request can take it (no other
    /// holder is sending it and it is not applied), and records what it came to.
    pub(crate) async fn propagate_inline(
        &self,
        store: &Store,
        entry: &Entry,
        provider: ProviderId,
    ) -> Result<(), StoreError> {
        let n = INLINE_SENDS.fetch_add(1, Ordering::Relaxed);
        let holder = format!("{}/request/{n}", self.process_id);
        let Some(attempts) = store
            .open_dnc_propagation(&entry.id, provider, &holder, LEASE)
            .await?
        else {
            return Ok(());
        };
        self.send_held(
            store,
            entry,
            provider,
            &holder,
            attempts,
            std::future::pending(),
        )
        .await
    }

    /// Sends a propagation `holder` holds (after `attempts` earlier calls), renewing the lease
    /// while the call runs, and records the outcome. When `stop` comes first the call is
    /// dropped and the row given back, due at once (a provider may have received it).
    async fn send_held(
        &self,
        store: &Store,
        entry: &Entry,
        id: ProviderId,
        holder: &str,
        attempts: i64,
        stop: impl Future<Output = ()>,
    ) -> Result<(), StoreError> {
        let result = match self.registry.capable(id, Capability::DoNotContact) {
            Ok(provider) => {
                let request = request_of(entry);
                let call = provider.do_not_contact(&request);
                tokio::pin!(call, stop);
                let mut renew = tokio::time::interval_at(
                    tokio::time::Instant::now() + RENEW_EVERY,
                    RENEW_EVERY,
                );
                loop {
                    tokio::select! {
                        result = &mut call => break result,
                        () = &mut stop => {
                            return store.release_dnc_claim(&entry.id, id, holder).await;
                        }
                        _ = renew.tick() => {
                            if let Err(e) = store.renew_dnc_claim(&entry.id, id, holder, LEASE).await {
                                tracing::warn!(provider = %id, error = %e, "cannot renew a do-not-contact lease");
                            }
                        }
                    }
                }
            }
            Err(ProviderError::Unsupported { .. }) => {
                let outcome = Outcome {
                    status: PropagationStatus::Unsupported,
                    message: format!(
                        "{} documents no do-not-contact mechanism (the gateway's registry still covers its contacts)",
                        id.display_name()
                    ),
                    error_code: Some("unsupported".into()),
                    next_attempt_ms: now_ms(),
                    called: false,
                };
                store
                    .finish_dnc_propagation(&entry.id, id, holder, &outcome)
                    .await?;
                return Ok(());
            }
            Err(e) => Err(e),
        };
        let outcome = settle(id, result, attempts + 1);
        match outcome.status {
            PropagationStatus::Pending => tracing::info!(
                provider = %id, attempts = attempts + 1, message = %outcome.message,
                "do-not-contact propagation pending"
            ),
            PropagationStatus::Failed => tracing::warn!(
                provider = %id, message = %outcome.message, "do-not-contact propagation failed"
            ),
            _ => {}
        }
        store
            .finish_dnc_propagation(&entry.id, id, holder, &outcome)
            .await?;
        Ok(())
    }
}

/// The outbox worker: one loop per provider with a do-not-contact mechanism (a hung provider
/// holds up only its own rows), each sending one due row at a time.
pub struct OutboxWorker {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

impl OutboxWorker {
    /// Starts the loops; `None` for a gateway without a store.
    pub fn start(gateway: Arc<Gateway>) -> Option<OutboxWorker> {
        let store = gateway.store.clone()?;
        let (stop, stopped) = watch::channel(false);
        let loops = ProviderId::ALL
            .into_iter()
            .filter(|id| {
                gateway
                    .registry
                    .capable(*id, Capability::DoNotContact)
                    .is_ok()
            })
            .map(|id| {
                let span = tracing::info_span!("outbox", provider = %id);
                tokio::spawn(
                    run(gateway.clone(), store.clone(), id, stopped.clone()).instrument(span),
                )
            })
            .collect();
        Some(OutboxWorker { stop, loops })
    }

    /// Stops the loops: a call in flight is dropped and its row given back for another
    /// worker (or the next start) to send.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.loops {
            let _ = task.await;
        }
    }
}

async fn run(gateway: Arc<Gateway>, store: Store, id: ProviderId, mut stop: watch::Receiver<bool>) {
    let holder = format!("{}/outbox/{id}", gateway.process_id);
    loop {
        if *stop.borrow() {
            return;
        }
        match store.claim_due_dnc(id, &holder, LEASE).await {
            Ok(Some(claimed)) => {
                let mut watch = stop.clone();
                let stopped = async move {
                    let _ = watch.wait_for(|stop| *stop).await;
                };
                let sent = gateway
                    .send_held(
                        &store,
                        &claimed.entry,
                        id,
                        &holder,
                        claimed.attempts,
                        stopped,
                    )
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "the outbox cannot record a propagation");
                }
                // Look for the next due row at once.
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the outbox cannot read the store"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_cap_and_honours_retry_after() {
        assert_eq!(backoff(0, None), Duration::ZERO);
        for _ in 0..50 {
            let first = backoff(1, None);
            assert!(first >= Duration::from_millis(500) && first <= FIRST_RETRY);
            let third = backoff(3, None);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            let late = backoff(40, None);
            assert!(late >= MAX_RETRY / 2 && late <= MAX_RETRY);
        }
        assert!(backoff(1, Some(30)) >= Duration::from_secs(30));
    }

    #[test]
    fn answers_settle_as_the_contract_says() {
        let p = ProviderId::Consuelo;
        let status = |e: ProviderError| settle(p, Err(e), 1).status;
        assert_eq!(
            settle(p, Ok("ok".into()), 1).status,
            PropagationStatus::Applied
        );
        let pending = [
            ProviderError::Unavailable {
                provider: p,
                reason: "HTTP 503".into(),
                retryable: true,
                may_have_been_applied: false,
            },
            ProviderError::Timeout {
                provider: p,
                timeout_ms: 10,
            },
            ProviderError::RateLimited {
                provider: p,
                retry_after_secs: Some(3),
            },
        ];
        for e in pending {
            assert_eq!(status(e), PropagationStatus::Pending);
        }
        assert_eq!(
            status(ProviderError::rejected(p, 422, "bad")),
            PropagationStatus::Failed
        );
        assert_eq!(
            status(ProviderError::AuthFailed {
                provider: p,
                status: 401
            }),
            PropagationStatus::Failed
        );
        assert_eq!(
            status(ProviderError::Unsupported {
                provider: p,
                operation: "do-not-contact by email"
            }),
            PropagationStatus::Unsupported
        );
        let later = settle(
            p,
            Err(ProviderError::RateLimited {
                provider: p,
                retry_after_secs: Some(20),
            }),
            1,
        );
        assert!(
            later.next_attempt_ms >= now_ms() + 19_000,
            "Retry-After honoured"
        );
    }

    #[test]
    fn stored_kinds_rebuild_errors_of_the_same_variant() {
        let p = ProviderId::Mainbrainer;
        let errors = [
            ProviderError::Timeout {
                provider: p,
                timeout_ms: 10,
            },
            ProviderError::AuthFailed {
                provider: p,
                status: 403,
            },
            ProviderError::rejected(p, 422, "no"),
            ProviderError::NotConfigured { provider: p },
            ProviderError::RateLimited {
                provider: p,
                retry_after_secs: None,
            },
        ];
        for error in errors {
            let rebuilt = error_from_kind(p, &error_kind(&error), "no");
            assert_eq!(
                std::mem::discriminant(&rebuilt),
                std::mem::discriminant(&error)
            );
            assert_eq!(rebuilt.status(), error.status());
        }
    }
}

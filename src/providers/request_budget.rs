//! What one GraphQL request may spend upstream: a number of calls (`[limits]
//! max_upstream_calls`) and a deadline (`request_timeout_ms`). The request's budget travels
//! with its task as a task-local, so the one upstream client (`providers::http`) charges it
//! without every layer in between passing it on; code that runs outside a request (sandbox
//! tools, adapter tests) has none and is not limited.
//!
//! It lives with the providers, below the gateway, because the upstream client reads it; it
//! depends on nothing else in the crate.

use super::diagnostics::Diagnostics;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    /// The budget of the request the current task works for; `None` inside an exempt scope.
    static CURRENT: Option<Arc<RequestBudget>>;
}

/// Why a call may not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request made all the calls it may (`max_upstream_calls`).
    Exhausted { limit: u64 },
    /// The request's deadline passed (`request_timeout_ms`).
    DeadlinePassed { timeout_ms: u64 },
}

/// One request's upstream budget: calls left and a deadline.
#[derive(Debug)]
pub struct RequestBudget {
    max_calls: u64,
    calls: AtomicU64,
    timeout: Duration,
    deadline: Instant,
    /// Per-provider counts, when the request asked for them (`diagnostics`).
    diagnostics: std::sync::OnceLock<Arc<Diagnostics>>,
}

impl RequestBudget {
    /// A budget of `max_calls` upstream calls and `timeout` from now.
    pub fn new(max_calls: u64, timeout: Duration) -> Arc<Self> {
        Arc::new(RequestBudget {
            max_calls,
            calls: AtomicU64::new(0),
            timeout,
            deadline: Instant::now() + timeout,
            diagnostics: std::sync::OnceLock::new(),
        })
    }

    /// Starts noting the request's per-provider counts; returns them.
    pub fn diagnose(&self) -> Arc<Diagnostics> {
        self.diagnostics.get_or_init(Default::default).clone()
    }

    /// The request's per-provider counts, when it asked for them.
    pub fn diagnostics(&self) -> Option<&Arc<Diagnostics>> {
        self.diagnostics.get()
    }

    /// Takes one call from the budget, before it is sent. Refused when the deadline has passed
    /// (nothing is taken) or every call is spent.
    pub fn charge(&self) -> Result<(), Refusal> {
        if self.time_left().is_zero() {
            return Err(self.deadline_passed());
        }
        let spent = self.calls.fetch_add(1, Ordering::AcqRel);
        if spent >= self.max_calls {
            if spent == self.max_calls {
                tracing::warn!(
                    limit = self.max_calls,
                    "the request reached max_upstream_calls; further upstream calls are refused"
                );
            }
            return Err(Refusal::Exhausted {
                limit: self.max_calls,
            });
        }
        Ok(())
    }

    /// Upstream calls charged so far (refused ones included).
    pub fn calls_charged(&self) -> u64 {
        self.calls.load(Ordering::Acquire)
    }

    /// Whether another call could still be sent: a call left and time left.
    pub fn has_room(&self) -> bool {
        self.calls.load(Ordering::Acquire) < self.max_calls && !self.time_left().is_zero()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// What is left of the deadline (zero once it has passed).
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The refusal for a call the deadline cut.
    pub fn deadline_passed(&self) -> Refusal {
        Refusal::DeadlinePassed {
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }
}

/// Runs `work` under `budget` (`None`: unlimited): every upstream call it makes in this task
/// charges it.
pub async fn within<F: Future>(budget: Option<Arc<RequestBudget>>, work: F) -> F::Output {
    CURRENT.scope(budget, work).await
}

/// Runs `work` outside any request budget (`importContacts` has its own bound).
pub async fn exempt<F: Future>(work: F) -> F::Output {
    within(None, work).await
}

/// The budget of the request this task works for, if any.
pub fn current() -> Option<Arc<RequestBudget>> {
    CURRENT.try_with(Option::clone).ok().flatten()
}

/// Notes something in the current request's diagnostics, when it asked for them.
pub fn diagnose(f: impl FnOnce(&Diagnostics)) {
    let _ = CURRENT.try_with(|budget| {
        if let Some(diagnostics) = budget.as_ref().and_then(|b| b.diagnostics()) {
            f(diagnostics);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_past_the_limit_are_refused() {
        let budget = RequestBudget::new(2, Duration::from_secs(60));
        assert_eq!(budget.charge(), Ok(()));
        assert!(budget.has_room());
        assert_eq!(budget.charge(), Ok(()));
        assert!(!budget.has_room());
        assert_eq!(budget.charge(), Err(Refusal::Exhausted { limit: 2 }));
        assert_eq!(budget.charge(), Err(Refusal::Exhausted { limit: 2 }));
    }

    #[tokio::test]
    async fn nothing_is_charged_once_the_deadline_passed() {
        let budget = RequestBudget::new(5, Duration::from_millis(50));
        assert!(budget.time_left() <= Duration::from_millis(50));
        assert!(budget.has_room());
        tokio::time::sleep_until(budget.deadline()).await;
        assert_eq!(budget.time_left(), Duration::ZERO);
        assert!(!budget.has_room());
        assert_eq!(
            budget.charge(),
            Err(Refusal::DeadlinePassed { timeout_ms: 50 })
        );
        assert_eq!(budget.calls_charged(), 0);
    }

    #[tokio::test]
    async fn the_budget_is_seen_inside_its_scope_only_and_exempt_scopes_hide_it() {
        assert!(current().is_none());
        let budget = RequestBudget::new(1, Duration::from_secs(1));
        within(Some(budget.clone()), async {
            assert!(current().is_some_and(|b| Arc::ptr_eq(&b, &budget)));
            exempt(async { assert!(current().is_none()) }).await;
            assert!(current().is_some());
        })
        .await;
        assert!(current().is_none());
    }
}

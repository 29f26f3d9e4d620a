//! Webhook delivery (`[[webhooks]]`): each change of a kind an endpoint names is queued in the
//! store with the change (`webhook_deliveries`, in `Changes::publish`'s transaction) and POSTed
//! by a worker, signed, until the endpoint answers 2xx: again and again with capped, jittered
//! backoff (the first retry within 2 s), across restarts. Each replica runs a worker per
//! endpoint; a delivery is sent by the one holding its lease, so replicas do not send it twice
//! at once. At least once: a replica that dies mid-call leaves the row to be sent again, so a
//! receiver may get a delivery twice (`X-Contact-Gateway-Delivery` names it).
//!
//! Signature: `X-Contact-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` with the endpoint's secret, made at each attempt.

use crate::config::WebhookConfig;
use crate::gateway::outbox::backoff;
use crate::store::changes::{Delivery, DeliveryOutcome};
use crate::store::{now_ms, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::watch;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-contact-gateway-signature";
/// The header naming the delivery (the same on every attempt of it).
pub const DELIVERY_HEADER: &str = "x-contact-gateway-delivery";
/// The header naming the change kind.
pub const EVENT_HEADER: &str = "x-contact-gateway-event";

/// How long an endpoint has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a held delivery stays held (past the call's timeout, so one holder at a time).
const LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks for due deliveries (queued here wakes it at once).
const POLL: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// The signature header's value for `body` at `t` (unix seconds).
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// A url as logs show it: without its query (which may carry a token).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => String::from("<unreadable url>"),
    }
}

/// The client deliveries go out through: no redirects followed (a delivery goes where the
/// config says), `TIMEOUT` per attempt.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("contact-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One endpoint's worker.
pub struct Worker {
    pub store: Store,
    pub client: reqwest::Client,
    pub hook: WebhookConfig,
    pub holder: String,
    /// Bumped when this process queues a delivery.
    pub queued: watch::Receiver<u64>,
}

/// Sends the endpoint's due deliveries, one at a time, until `stop`.
pub async fn run(mut worker: Worker, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        match worker
            .store
            .claim_due_delivery(&worker.hook.url, &worker.holder, LEASE)
            .await
        {
            Ok(Some(delivery)) => {
                failing = false;
                tokio::select! {
                    outcome = worker.attempt(&delivery) => {
                        match worker.store.finish_delivery(&delivery.id, &worker.holder, &outcome).await {
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot record a webhook delivery"),
                        }
                    }
                    _ = stop.changed() => {
                        // Given back, due at once, for another replica or the next start.
                        let _ = worker.store.release_delivery(&delivery.id, &worker.holder).await;
                        return;
                    }
                }
                continue;
            }
            Ok(None) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the webhook queue");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = worker.queued.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

impl Worker {
    /// POSTs a delivery once; what it came to.
    async fn attempt(&self, delivery: &Delivery) -> DeliveryOutcome {
        let t = now_ms() / 1000;
        let signed = signature(self.hook.secret.expose().as_bytes(), t, &delivery.body);
        let sent = self
            .client
            .post(&self.hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(DELIVERY_HEADER, &delivery.id)
            .header(EVENT_HEADER, &delivery.kind)
            .body(delivery.body.clone())
            .send()
            .await;
        let attempts = delivery.attempts + 1;
        let retry = |status: Option<u16>, error: String, retry_after: Option<u64>| {
            let delay = backoff(attempts, retry_after.map(|s| s.min(MAX_RETRY_AFTER_SECS)));
            tracing::info!(
                delivery = %delivery.id, attempts, error = %error, retry_in_ms = delay.as_millis() as u64,
                "webhook delivery failed; it is sent again"
            );
            DeliveryOutcome {
                delivered: false,
                status,
                error: Some(error),
                next_attempt_ms: now_ms() + delay.as_millis() as i64,
            }
        };
        match sent {
            Ok(response) if response.status().is_success() => DeliveryOutcome {
                delivered: true,
                status: Some(response.status().as_u16()),
                error: None,
                next_attempt_ms: now_ms(),
            },
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                retry(Some(status), format!("HTTP {status}"), retry_after)
            }
            // Without the url: reqwest's message would repeat it, query included.
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("no answer within {} s", TIMEOUT.as_secs())
                } else if e.is_connect() {
                    "the connection failed".to_string()
                } else {
                    "the request failed".to_string()
                };
                retry(None, why, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_time_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        let signed = signature(b"secret", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(
            signed,
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(signed, signature(b"secret", 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(signed, signature(b"other", 1_700_000_000, r#"{"a":1}"#));
    }

    #[test]
    fn logged_urls_leave_the_query_out() {
        assert_eq!(
            shown_url("https://hooks.example.com/in?token=abc#x"),
            "https://hooks.example.com/in"
        );
    }
}

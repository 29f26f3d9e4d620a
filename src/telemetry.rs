//! The tracing subscriber: `RUST_LOG` sets the level (default `info`); `[telemetry]
//! log_format` chooses text or JSON lines.
//!
//! A line is formatted on the thread that logs it and written to stderr by a thread of its own,
//! in batches (the writer drains what is queued, writes it, then rests `WRITER_REST` while
//! lines gather), so a request never waits on stderr, and a busy gateway makes one write and
//! one wake-up of the writer per batch instead of one per line. Up to `LINES_QUEUED` lines wait
//! for the writer; past that (a sink that stopped reading) lines are dropped rather than
//! slowing requests down. Call `flush` before the process exits.

use crate::config::{LogFormat, OtlpProtocol, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::{BufWriter, IsTerminal, Stderr, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Lines that may wait for the writer thread (a few hundred KiB at most).
const LINES_QUEUED: usize = 16 * 1024;

/// How long the writer rests after writing a batch: lines logged meanwhile wait in the queue
/// and are written together, without waking it one by one.
const WRITER_REST: Duration = Duration::from_millis(5);

/// stderr as the writer thread sees it: buffered, and resting after each batch (the writer
/// flushes once it has drained the queue).
struct Batches(BufWriter<Stderr>);

impl Write for Batches {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        std::thread::sleep(WRITER_REST);
        Ok(())
    }
}

/// Keeps the writer thread running; dropping it writes out what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Whether the installed subscriber writes JSON lines.
static JSON: AtomicBool = AtomicBool::new(false);

/// The OTLP pipeline, when `[telemetry] otlp_endpoint` is set: shut down (spans sent) by
/// `flush`.
static TRACES: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Installs the global subscriber, in text; see `init_with`.
pub fn init(default_level: &str) {
    init_with(default_level, &TelemetryConfig::default());
}

/// The OTLP span exporter's pipeline for `config`, when it names an endpoint.
fn otlp(config: &TelemetryConfig) -> Option<SdkTracerProvider> {
    let endpoint = config.otlp_endpoint.as_deref()?;
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build(),
        OtlpProtocol::Http => {
            let endpoint = endpoint.trim_end_matches('/');
            let endpoint = if endpoint.ends_with("/v1/traces") {
                endpoint.to_string()
            } else {
                format!("{endpoint}/v1/traces")
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .build()
        }
    };
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OpenTelemetry export is off: {e}");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// Whether log lines are JSON (what is printed outside the subscriber follows it).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Installs the global subscriber once, writing `format`; later calls are no-ops (tests call
/// it per app).
pub fn init_with(default_level: &str, config: &TelemetryConfig) {
    let format = config.log_format;
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| default_level.to_string());
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(LINES_QUEUED)
        .thread_name("log-writer")
        .finish(Batches(BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        )));
    // Levels by target (what `RUST_LOG` almost always says) are checked once per call site;
    // `EnvFilter`, for span and field directives, also takes a lock each time a span is
    // entered, so it is used only when the directives need it.
    let targets = plain_targets(&directives);
    let env_filter = targets
        .is_none()
        .then(|| EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default_level)));
    let traces = otlp(config);
    let json = format == LogFormat::Json;
    let (text_writer, json_writer) = if json {
        (None, Some(writer))
    } else {
        (Some(writer), None)
    };
    let installed = tracing_subscriber::registry()
        .with(targets)
        .with(env_filter)
        .with(text_writer.map(|writer| {
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                // Colours for a terminal only: piped logs stay greppable.
                .with_ansi(std::io::stderr().is_terminal())
        }))
        .with(json_writer.map(|writer| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer)
        }))
        .with(traces.as_ref().map(|provider| {
            tracing_opentelemetry::layer().with_tracer(provider.tracer("contact-gateway"))
        }))
        .try_init();
    if installed.is_ok() {
        if traces.is_some() {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
        }
        *TRACES.lock().unwrap_or_else(|e| e.into_inner()) = traces;
        JSON.store(json, Ordering::Relaxed);
        *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }
}

/// `directives` as levels by target, when that is all they say (no `[span{field}]` part).
fn plain_targets(directives: &str) -> Option<Targets> {
    let plain = directives
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_:,=-. ".contains(c));
    plain.then(|| Targets::from_str(directives).ok()).flatten()
}

/// Writes out the lines still queued and stops the writer: call once, before exiting.
pub fn flush() {
    if let Some(traces) = TRACES.lock().unwrap_or_else(|e| e.into_inner()).take() {
        if let Err(e) = traces.shutdown() {
            tracing::warn!(error = %e, "spans could not all be sent");
        }
    }
    drop(WRITER.lock().unwrap_or_else(|e| e.into_inner()).take());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `init` reads with `Targets`, and what it leaves to `EnvFilter`.
    #[test]
    fn plain_levels_take_the_cheap_filter() {
        for plain in [
            "info",
            "warn",
            "contact_gateway=debug,info",
            "tower_http=off",
        ] {
            assert!(plain_targets(plain).is_some(), "{plain}");
        }
        for dynamic in ["[request]=debug", "contact_gateway[request{id=7}]=trace"] {
            assert!(plain_targets(dynamic).is_none(), "{dynamic}");
            assert!(EnvFilter::try_new(dynamic).is_ok(), "{dynamic}");
        }
    }
}

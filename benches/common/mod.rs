//! What the benchmarks share (`gateway.rs`, `soak.rs`): the processes they start (killed when
//! dropped, or on Ctrl-C / SIGTERM), the gateway's config over the sandbox, how busy the
//! machine is, and number formatting.

use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::Sandbox;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The processes this bench started and has not stopped yet.
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// On Ctrl-C or SIGTERM: stops the running targets (drops do not run then), and exits.
pub async fn stop_targets_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for pid in RUNNING.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    std::process::exit(130);
}

/// A process this bench started; killed when dropped.
pub struct Target {
    pub child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
    }
}

impl Target {
    /// Starts `command`, its stderr (the logs) into `log`, and reads its stdout until the
    /// `GraphQL: <url>` line. `dir` (its config…) lives as long as the process.
    pub fn launch(
        name: &str,
        mut command: Command,
        log: std::fs::File,
        dir: tempfile::TempDir,
    ) -> Target {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.trim().strip_prefix("GraphQL:") {
                        break url.trim().to_string();
                    }
                }
                _ => panic!("{name} exited without printing its URL; see its log"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Target {
            child,
            url,
            _dir: dir,
        }
    }

    /// Peak resident memory (VmHWM), MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// Resident memory now (VmRSS), MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    fn status_mib(&self, field: &str) -> f64 {
        status_mib(self.child.id(), field)
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }
}

/// A memory figure of process `pid` (`VmRSS:`, `VmHWM:`), MiB; `None` once it has exited.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(kib / 1024.0)
}

/// A gateway config file's text: listening on a free port, the default config otherwise, and
/// the `[providers.*]` sections of `providers` pointing at the sandbox's simulators.
pub fn gateway_config(sandbox: &Sandbox, providers: &[ProviderId]) -> String {
    let mut config: toml::Table = toml::from_str(&sandbox.config_toml()).expect("sandbox config");
    let sections = config["providers"].as_table_mut().expect("[providers]");
    sections.retain(|id, _| providers.iter().any(|p| p.as_str() == id));
    format!(
        "listen = \"127.0.0.1:0\"\n{}",
        toml::to_string(&config).expect("a TOML table")
    )
}

/// 12,345 or 1.23
pub fn number(value: f64, digits: usize) -> String {
    if digits > 0 {
        return format!("{value:.digits$}");
    }
    let text = format!("{:.0}", value);
    let mut grouped = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i) % 3 == 0 && c.is_ascii_digit() {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// Busy CPU time of the whole machine, in clock ticks (/proc/stat).
pub fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system (idle iowait) irq softirq steal
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| fields.get(*i))
        .sum()
}

pub fn clock_ticks() -> f64 {
    100.0 // USER_HZ on Linux
}

//! Start-up through the real binary: a bad config stops it with a message naming the key; a
//! good one serves, and SIGTERM stops it gracefully.

use crate::helpers::{binary, terminate, wait_for_url};
use contact_gateway::contact::ProviderId;
use contact_gateway::sandbox::api_key;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Runs `serve --config` and expects it to stop at once with exit code 2.
fn refused(text: &str) -> String {
    let file = write_config(text);
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(file.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(
                status.code(),
                Some(2),
                "config {text:?} should stop start-up"
            );
            break;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the gateway started with a bad config: {text:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_config_stops_start_up_naming_the_key() {
    let cases = [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[providers.maiagent]\nbase_url = \"https://api.maiagent.ai\"\napi_key = \"k\"\npage_size = 5\n", "page_size"),
        ("[providers.maiagent]\nbase_url = \"api.maiagent.ai\"\napi_key = \"k\"\n", "providers.maiagent.base_url"),
        ("[providers.whautomate]\nbase_url = \"https://api.whautomate.com\"\n", "providers.whautomate.api_key"),
        ("[providers.magicblocks]\nbase_url = \"https://x\"\napi_key_env = \"CG_TEST_UNSET_VARIABLE\"\n", "providers.magicblocks.api_key_env"),
        ("[providers.consuelo]\napi_key = \"k\"\nworkspace_id = \"ws\"\n", "base_url"),
    ];
    for (text, key) in cases {
        let stderr = refused(text);
        assert!(
            stderr.contains(key),
            "{text:?}: stderr {stderr:?} does not name {key}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let output = binary()
        .args(["serve", "--config", "/nonexistent/gateway.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/gateway.toml"));
}

/// The README's first command: `serve` with no config runs the sandbox.
#[tokio::test]
async fn serve_without_config_runs_the_sandbox_and_stops_on_sigterm() {
    let mut child = binary()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let url = wait_for_url(&mut child);
    let body: serde_json::Value = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "query": "{ providers { id enabled } contacts(first: 50) { nodes { id provider } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enabled = body["data"]["providers"].as_array().unwrap();
    assert!(enabled.iter().all(|p| p["enabled"] == true), "{body}");
    let nodes = body["data"]["contacts"]["nodes"].as_array().unwrap();
    assert!(
        nodes.len() >= 25,
        "the sandbox serves its seeded contacts: {body}"
    );
    terminate(&mut child);

    let logs = logs.join().unwrap();
    assert!(
        logs.contains("upstream call"),
        "one log line per upstream call: {logs}"
    );
    assert!(
        logs.contains("provider=maiagent") && logs.contains("status=200"),
        "{logs}"
    );
    for id in ProviderId::ALL {
        assert!(!logs.contains(api_key(id)), "the {id} key is in the logs");
    }
}

/// Start-up refuses to serve other machines without `[auth]`, unless told a proxy in front
/// authenticates (`insecure_no_auth`); the sandbox serves loopback only.
#[test]
fn an_unauthenticated_gateway_is_not_exposed_beyond_loopback() {
    let file = write_config("insecure_no_auth = false\n");
    let output = binary()
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listen") && stderr.contains("insecure_no_auth"),
        "{stderr}"
    );
    let output = binary()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

/// The request's log line names the caller's credential, never the key itself.
#[tokio::test]
async fn the_callers_name_is_in_the_log_line_and_never_its_key() {
    let sandbox = contact_gateway::sandbox::Sandbox::start().await.unwrap();
    let key = "a-logged-test-key-0123456789";
    let config = format!(
        "insecure_no_auth = true\n[auth]\n[[auth.keys]]\nname = \"web-frontend\"\nkey_env = \"CG_TEST_FRONTEND_KEY\"\nrole = \"read\"\n\n{}",
        sandbox.config_toml()
    );
    let file = write_config(&config);
    // A store of its own (the default would be a file beside the config, in the shared /tmp).
    let store = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", store.path().join("store.db").display());
    let mut child = binary()
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--store",
            &store_url,
            "--config",
        ])
        .arg(file.path())
        .env("CG_TEST_FRONTEND_KEY", key)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let url = wait_for_url(&mut child).replace("0.0.0.0", "127.0.0.1");
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(key)
        .json(&serde_json::json!({ "query": "{ contacts(first: 1) { nodes { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    terminate(&mut child);
    let logs = logs.join().unwrap();
    assert!(logs.contains("caller=web-frontend"), "{logs}");
    assert!(!logs.contains(key), "the key is in the logs");
}

/// `contact-gateway sandbox --print-config` runs the simulators alone and prints a config a
/// gateway can serve from; the simulators keep their state across gateway restarts.
#[tokio::test]
async fn the_sandbox_command_prints_a_config_gateways_can_restart_against() {
    use std::io::{BufRead, BufReader};
    let mut sandbox = binary()
        .args(["sandbox", "--print-config"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sandbox.stdout.take().unwrap()).lines();
    let mut config = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("# end of config") {
            break;
        }
        config += &line;
        config += "\n";
    }
    std::thread::spawn(move || for _ in lines {});
    let file = write_config(&config);
    let store = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", store.path().join("store.db").display());
    let create = serde_json::json!({ "query": "mutation { createContact(input: { provider: CONSUELO, firstName: \"Kept\", emails: [{ address: \"kept@example.com\" }] }) { contact { id } } }" });
    let search = serde_json::json!({ "query": "{ contacts(providers: [CONSUELO], filter: { email: \"kept@example.com\" }) { nodes { id } } }" });
    let mut ids = Vec::new();
    for body in [&create, &search] {
        let mut gateway = binary()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &store_url,
                "--config",
            ])
            .arg(file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = wait_for_url(&mut gateway);
        let answer: serde_json::Value = reqwest::Client::new()
            .post(&url)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(answer.to_string());
        terminate(&mut gateway);
    }
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let created: serde_json::Value = serde_json::from_str(&ids[0]).unwrap();
    let id = created["data"]["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ids[1].contains(&id),
        "the second gateway finds what the first created: {}",
        ids[1]
    );
}

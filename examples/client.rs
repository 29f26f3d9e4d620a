//! A small client: lists contacts across providers, page by page, then fetches one by id.
//!
//!   cargo run --release -- serve            # in one terminal (the sandbox)
//!   cargo run --example client              # in another
//!
//! Set GATEWAY_URL to point it elsewhere (default http://127.0.0.1:4000/graphql).

use serde_json::{json, Value};

const PAGE: &str = r#"query Page($after: String) {
  contacts(first: 10, after: $after) {
    nodes { id provider displayName primaryEmail primaryPhone }
    pageInfo { hasNextPage endCursor }
  }
}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("GATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:4000/graphql".into());
    let client = reqwest::Client::new();
    let mut after = Value::Null;
    let mut first_id = None;
    loop {
        let body: Value = client
            .post(&url)
            .json(&json!({ "query": PAGE, "variables": { "after": after } }))
            .send()
            .await?
            .json()
            .await?;
        // Errors name the failing provider; the other providers' contacts are still there.
        for error in body["errors"].as_array().into_iter().flatten() {
            eprintln!(
                "warning: {} ({})",
                error["message"], error["extensions"]["code"]
            );
        }
        let connection = &body["data"]["contacts"];
        for node in connection["nodes"].as_array().into_iter().flatten() {
            first_id.get_or_insert_with(|| node["id"].clone());
            println!(
                "{:<55} {:<28} {:<34} {}",
                node["id"].as_str().unwrap_or(""),
                node["displayName"].as_str().unwrap_or(""),
                node["primaryEmail"].as_str().unwrap_or("-"),
                node["primaryPhone"].as_str().unwrap_or("-"),
            );
        }
        if connection["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    if let Some(id) = first_id {
        let body: Value = client
            .post(&url)
            .json(&json!({
                "query": "query($id: ID!) { contact(id: $id) { id displayName emails { address } createdAt } }",
                "variables": { "id": id }
            }))
            .send()
            .await?
            .json()
            .await?;
        println!(
            "\n{}",
            serde_json::to_string_pretty(&body["data"]["contact"])?
        );
    }
    Ok(())
}

//! The simulators against a real HTTP client: auth, paging, the documents' quirks, faults and
//! the control surface.

use super::*;
use reqwest::{Client, Method};
use serde_json::json;
use std::time::{Duration, Instant};

fn client() -> Client {
    Client::builder()
        .user_agent("sandbox-tests/1")
        .build()
        .unwrap()
}

/// A request to `path` on provider `id`, signed the way its document says.
fn req(sb: &Sandbox, id: ProviderId, method: Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{}", sb.base_url(id), path);
    let r = client().request(method, url);
    let key = api_key(id);
    match id {
        ProviderId::Whautomate => r.header("x-api-key", key),
        ProviderId::Maiagent => r.header("authorization", format!("Api-Key {key}")),
        _ => r.bearer_auth(key),
    }
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn list_path(id: ProviderId) -> &'static str {
    match id {
        ProviderId::Consuelo => "/v1/contacts?workspaceId=ws_sandbox",
        ProviderId::Maiagent => "/api/contacts/",
        ProviderId::Mainbrainer => "/contacts/insertupdate",
        _ => "/v1/contacts",
    }
}

#[tokio::test]
async fn auth_is_refused_without_a_key_with_a_wrong_key_or_scheme() {
    let sb = Sandbox::start().await.unwrap();
    for id in ProviderId::ALL {
        let method = if id == ProviderId::Mainbrainer {
            Method::POST
        } else {
            Method::GET
        };
        let url = format!("{}{}", sb.base_url(id), list_path(id));
        let body = json!({"email": "a@b.co"});
        let none = client().request(method.clone(), &url).json(&body);
        let wrong_key = match id {
            ProviderId::Whautomate => client()
                .request(method.clone(), &url)
                .header("x-api-key", "nope"),
            ProviderId::Maiagent => client()
                .request(method.clone(), &url)
                .header("authorization", "Api-Key nope"),
            _ => client().request(method.clone(), &url).bearer_auth("nope"),
        };
        let wrong_scheme = match id {
            ProviderId::Whautomate => client()
                .request(method.clone(), &url)
                .bearer_auth(api_key(id)),
            ProviderId::Maiagent => client()
                .request(method.clone(), &url)
                .bearer_auth(api_key(id)),
            _ => client()
                .request(method.clone(), &url)
                .header("authorization", format!("Api-Key {}", api_key(id))),
        };
        for (what, r) in [
            ("no key", none),
            ("wrong key", wrong_key),
            ("wrong scheme", wrong_scheme),
        ] {
            let (status, _) = send(r.json(&body)).await;
            assert_eq!(status, 401, "{id}: {what}");
        }
        assert_eq!(
            sb.control(id).request_count(),
            3,
            "{id}: refused requests are counted"
        );
    }
    // maiagent.txt auth page: the two documented 401 bodies.
    let url = format!("{}/api/contacts/", sb.base_url(ProviderId::Maiagent));
    let (_, body) = send(client().get(&url)).await;
    assert_eq!(
        body,
        json!({"detail": "Authentication credentials were not provided."})
    );
    let (_, body) = send(
        client()
            .get(&url)
            .bearer_auth(api_key(ProviderId::Maiagent)),
    )
    .await;
    assert_eq!(body, json!({"detail": "Invalid API key format."}));
    let (_, body) = send(client().get(format!(
        "{}/v1/contacts?workspaceId=ws_sandbox",
        sb.base_url(ProviderId::Consuelo)
    )))
    .await;
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn magicblocks_lists_filters_creates_and_replaces() {
    let sb = Sandbox::start().await.unwrap();
    let mb = ProviderId::Magicblocks;
    let (status, page) = send(req(&sb, mb, Method::GET, "/v1/contacts")).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 8);
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        8,
        "default limit 20 holds all"
    );
    let (_, page) = send(req(&sb, mb, Method::GET, "/v1/contacts?limit=3&offset=6")).await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["con_01HSBX7K2M0000007", "con_01HSBX7K2M0000008"]);

    let (_, found) = send(
        req(&sb, mb, Method::GET, "/v1/contacts")
            .query(&[("email", "Priya.Natarajan@FASTMAIL.com")]),
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["data"][0]["name"]["first"], "Priya");
    let (_, found) =
        send(req(&sb, mb, Method::GET, "/v1/contacts").query(&[("phone", "+12125550143")])).await;
    assert_eq!(
        found["data"][0]["id"], "con_01HSBX7K2M0000007",
        "matches a non-primary phone"
    );

    let (status, one) = send(req(
        &sb,
        mb,
        Method::GET,
        "/v1/contacts/con_01HSBX7K2M0000001",
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["customFields"]["company"], "Northwind Traders");
    assert!(one["firstSeen"].is_i64() && one.get("custom").is_none());
    assert_eq!(
        one["primaryEmail"]["address"],
        "olivia.bennett@northwindtraders.com"
    );
    let (_, anon) = send(req(
        &sb,
        mb,
        Method::GET,
        "/v1/contacts/con_01HSBX7K2M0000005",
    ))
    .await;
    assert_eq!(
        anon["generatedName"],
        json!({"first": "Visitor", "middle": "", "last": "0177"})
    );
    assert!(anon.get("primaryEmail").is_none());
    let (status, _) = send(req(&sb, mb, Method::GET, "/v1/contacts/con_nope")).await;
    assert_eq!(status, 404);

    let body = json!({
        "name": {"first": "Johan", "middle": "", "last": "Greg"},
        "emails": [{"address": "johan.greg@magicblocks.ai", "type": "work", "primary": true}],
        "phones": [{"number": "+61412345678", "type": "mobile", "primary": true}],
        "isTest": false,
        "userKnowledge": "Imported",
        "custom": {"role": "Co-Founder"},
        "sendMessageEvents": true
    });
    let (status, created) = send(req(&sb, mb, Method::POST, "/v1/contacts").json(&body)).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("con_"));
    for key in [
        "firstSeen",
        "modifiedAt",
        "lastSeen",
        "generatedName",
        "primaryEmail",
        "primaryPhone",
        "sessionCount",
        "link",
        "preview",
    ] {
        assert!(created.get(key).is_some(), "created contact has {key}");
    }
    assert_eq!(created["customFields"], json!({"role": "Co-Founder"}));
    assert!(created.get("sendMessageEvents").is_none());
    let (status, _) = send(
        req(&sb, mb, Method::POST, "/v1/contacts").json(&json!({"phones": [{"number": "0412"}]})),
    )
    .await;
    assert_eq!(status, 400);

    // PUT replaces the writable fields: what the body leaves out is gone.
    let put = json!({"name": {"first": "Johan", "last": "Greg"}, "custom": {"plan": "Enterprise"}});
    let (status, replaced) =
        send(req(&sb, mb, Method::PUT, &format!("/v1/contacts/{id}")).json(&put)).await;
    assert_eq!(status, 200);
    assert_eq!(replaced["customFields"], json!({"plan": "Enterprise"}));
    assert_eq!(replaced["emails"], json!([]));
    assert_eq!(replaced["userKnowledge"], "");
    assert_eq!(replaced["firstSeen"], created["firstSeen"]);
    assert_eq!(sb.control(mb).records().len(), 9);
    let (status, _) = send(req(&sb, mb, Method::DELETE, &format!("/v1/contacts/{id}"))).await;
    assert_eq!(status, 405, "no delete");
}

#[tokio::test]
async fn consuelo_checks_the_workspace_pages_searches_and_writes() {
    let sb = Sandbox::start().await.unwrap();
    let co = ProviderId::Consuelo;
    let (status, body) = send(req(&sb, co, Method::GET, "/v1/contacts")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST"))
    );
    let (status, _) = send(req(
        &sb,
        co,
        Method::GET,
        "/v1/contacts?workspaceId=ws_other",
    ))
    .await;
    assert_eq!(status, 400);

    let resp = req(&sb, co, Method::GET, "/v1/contacts?workspaceId=ws_sandbox")
        .send()
        .await
        .unwrap();
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(resp.headers().contains_key(h), "{h}");
    }
    let page: Value = resp.json().await.unwrap();
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        10,
        "default limit 10"
    );
    assert_eq!(page["meta"], json!({"total": 13, "hasMore": true}));
    let (_, page) = send(req(
        &sb,
        co,
        Method::GET,
        "/v1/contacts?workspaceId=ws_sandbox&offset=10",
    ))
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["meta"]["hasMore"], false);

    let (status, one) = send(req(&sb, co, Method::GET, "/v1/contacts/contact_1001")).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["email"], "olivia.bennett@northwindtraders.com");
    let (status, nf) = send(req(&sb, co, Method::GET, "/v1/contacts/contact_9")).await;
    assert_eq!(
        (status, nf["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    let search = |body: Value| send(req(&sb, co, Method::POST, "/v1/contacts/search").json(&body));
    let (_, found) = search(json!({"workspaceId": "ws_sandbox", "query": "NORTHWIND"})).await;
    assert_eq!(found["meta"]["total"], 2);
    let (_, found) = search(json!({"workspaceId": "ws_sandbox", "query": "olivia bennett", "filters": {"company": "northwind traders"}, "limit": 10})).await;
    assert_eq!(found["data"][0]["id"], "contact_1001");
    let (_, found) = search(json!({"workspaceId": "ws_sandbox", "query": "415-555-0163"})).await;
    assert_eq!(found["data"][0]["lastName"], "Lin");
    let (status, _) = search(json!({"query": "x"})).await;
    assert_eq!(status, 400);
    let (status, _) = send(req(
        &sb,
        co,
        Method::GET,
        "/v1/contacts/search?workspaceId=ws_sandbox&query=x",
    ))
    .await;
    assert_eq!(status, 405);

    let (status, created) = send(req(&sb, co, Method::POST, "/v1/contacts").json(&json!({
        "workspaceId": "ws_sandbox", "firstName": "John", "lastName": "Smith", "phone": "(415) 555-0111", "email": "john@example.com", "company": "Acme Inc"
    }))).await;
    assert_eq!(status, 201);
    assert_eq!(created["data"]["phone"], "+14155550111");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("contact_")
            && created["data"]["createdAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
    );
    let (status, patched) = send(
        req(&sb, co, Method::PATCH, &format!("/v1/contacts/{id}"))
            .json(&json!({"firstName": "Jane", "notes": "Interested in premium plan"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            patched["data"]["firstName"].as_str(),
            patched["data"]["lastName"].as_str()
        ),
        (Some("Jane"), Some("Smith"))
    );
    assert_eq!(patched["data"]["notes"], "Interested in premium plan");
    let (status, _) = send(req(&sb, co, Method::DELETE, &format!("/v1/contacts/{id}"))).await;
    assert_eq!(status, 200);
    let (status, _) = send(req(&sb, co, Method::GET, &format!("/v1/contacts/{id}"))).await;
    assert_eq!(status, 404);

    let (status, dnc) = send(req(&sb, co, Method::POST, "/v1/dnc").json(&json!({"workspaceId": "ws_sandbox", "phone": "+14155551234", "reason": "Customer request"}))).await;
    assert_eq!(
        (status, dnc),
        (
            201,
            json!({"data": {"phone": "+14155551234", "reason": "Customer request"}})
        )
    );
    let (_, norm) = send(
        req(&sb, co, Method::POST, "/v1/contacts/normalize")
            .json(&json!({"phone": "(415) 555-1234"})),
    )
    .await;
    assert_eq!(
        norm["data"],
        json!({"original": "(415) 555-1234", "normalized": "+14155551234", "isValid": true, "countryCode": "US", "areaCode": "415"})
    );
}

#[tokio::test]
async fn whautomate_pages_a_bare_array_and_put_replaces() {
    let sb = Sandbox::start().await.unwrap();
    let wa = ProviderId::Whautomate;
    let (status, first) = send(req(&sb, wa, Method::GET, "/v1/contacts")).await;
    assert_eq!(status, 200);
    assert_eq!(
        first.as_array().unwrap().len(),
        10,
        "a bare array, default limit 10"
    );
    let (_, second) = send(req(&sb, wa, Method::GET, "/v1/contacts?page=2")).await;
    assert_eq!(
        second.as_array().unwrap().len(),
        2,
        "a short page is the last"
    );
    let (_, third) = send(req(&sb, wa, Method::GET, "/v1/contacts?page=3&limit=10")).await;
    assert_eq!(third, json!([]));
    assert!(first
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.get("email").is_none()));

    let (_, found) = send(req(
        &sb,
        wa,
        Method::GET,
        "/v1/contacts?searchText=mei-ling",
    ))
    .await;
    assert_eq!(found[0]["phoneNumber"], "+886912345678");
    let (_, found) = send(req(&sb, wa, Method::GET, "/v1/contacts?searchText=0156")).await;
    assert_eq!(found[0]["name"], "Sophie Tran");
    // Emily's tags are a JSON-encoded string (webhook quirk); the filter still sees them.
    let (_, found) =
        send(req(&sb, wa, Method::GET, "/v1/contacts").query(&[("tags", "trial,newsletter")]))
            .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["tags"], "[\"trial\",\"newsletter\"]");
    assert!(found[0]["customFields"].is_string());
    let (_, found) = send(req(
        &sb,
        wa,
        Method::GET,
        "/v1/contacts?locationId=loc_taipei&channel=whatsapp",
    ))
    .await;
    assert_eq!(found.as_array().unwrap().len(), 2);

    let id = "64f1a2b3c4d5e6f7a8b9c001";
    let (status, one) = send(req(&sb, wa, Method::GET, &format!("/v1/contacts/{id}"))).await;
    assert_eq!(
        (status, one["location"]["title"].as_str()),
        (200, Some("Taipei Clinic"))
    );
    let (status, _) = send(
        req(&sb, wa, Method::PUT, &format!("/v1/contacts/{id}")).json(&json!({"name": "Mei-Ling"})),
    )
    .await;
    assert_eq!(status, 400, "PUT without phoneNumber");
    let (status, _) = send(
        req(&sb, wa, Method::PUT, &format!("/v1/contacts/{id}"))
            .json(&json!({"phoneNumber": "+886912345678"})),
    )
    .await;
    assert_eq!(status, 400, "PUT without name");
    let (status, put) = send(req(&sb, wa, Method::PUT, &format!("/v1/contacts/{id}")).json(&json!({"name": "Chen Mei-Ling", "phoneNumber": "+886912345678", "stage": "Evangelist"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            put["stage"].as_str(),
            &put["notes"],
            &put["tags"],
            &put["location"]
        ),
        (Some("Evangelist"), &Value::Null, &json!([]), &Value::Null),
        "replaced"
    );
    assert_eq!(put["createdAt"], one["createdAt"]);

    let (status, tags) = send(
        req(
            &sb,
            wa,
            Method::POST,
            &format!("/v1/contacts/{id}/tags/add"),
        )
        .json(&json!({"tags": ["vip", "line"]})),
    )
    .await;
    assert_eq!(
        (status, tags),
        (200, json!({"id": id, "tags": ["vip", "line"]}))
    );
    let (_, tags) = send(
        req(
            &sb,
            wa,
            Method::POST,
            &format!("/v1/contacts/{id}/tags/remove"),
        )
        .json(&json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(tags["tags"], json!(["line"]));
    let (_, tags) = send(
        req(
            &sb,
            wa,
            Method::POST,
            "/v1/contacts/64f1a2b3c4d5e6f7a8b9c004/tags/add",
        )
        .json(&json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(
        tags["tags"],
        json!(["trial", "newsletter", "vip"]),
        "string-encoded tags decoded"
    );

    let (status, _) =
        send(req(&sb, wa, Method::POST, "/v1/contacts").json(&json!({"name": "No Phone"}))).await;
    assert_eq!(status, 400);
    let (status, created) = send(
        req(&sb, wa, Method::POST, "/v1/contacts")
            .json(&json!({"name": "Ana Lima", "phoneNumber": "+14155550190", "tags": ["new"]})),
    )
    .await;
    assert_eq!(status, 200);
    let new_id = created["id"].as_str().unwrap().to_string();
    let (status, deleted) = send(req(
        &sb,
        wa,
        Method::DELETE,
        &format!("/v1/contacts/{new_id}"),
    ))
    .await;
    assert_eq!((status, deleted), (200, json!({"success": true})));
    let (status, _) = send(req(&sb, wa, Method::GET, &format!("/v1/contacts/{new_id}"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn maiagent_serves_the_documented_quirks() {
    let sb = Sandbox::start().await.unwrap();
    let ma = ProviderId::Maiagent;
    let (status, page) = send(req(&sb, ma, Method::GET, "/api/contacts/")).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 34);
    let results = page["results"][0]
        .as_array()
        .expect("results nested one level");
    assert_eq!(
        (page["results"].as_array().unwrap().len(), results.len()),
        (1, 10),
        "default pageSize 10"
    );
    assert_eq!(page["next"], "http://api.example.org/api/contacts/?page=2");
    assert_eq!(page["previous"], Value::Null);
    let first = &results[0];
    assert_eq!(
        first["phoneNumber"],
        json!(912345678),
        "an integer of national digits"
    );
    assert_eq!(first["createdAt"], "1735700000000", "epoch ms as a string");

    let mut ids = Vec::new();
    let mut pages = 0;
    for n in 1.. {
        let (status, page) = send(req(
            &sb,
            ma,
            Method::GET,
            &format!("/api/contacts/?page={n}"),
        ))
        .await;
        if status == 404 {
            assert_eq!(page, json!({"detail": "Invalid page."}));
            break;
        }
        pages += 1;
        ids.extend(
            page["results"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone()),
        );
        if n == 4 {
            assert_eq!(page["next"], Value::Null);
            assert_eq!(
                page["previous"],
                "http://api.example.org/api/contacts/?page=3"
            );
        }
    }
    assert_eq!(
        (pages, ids.len()),
        (4, 34),
        "more than three pages, each contact once"
    );

    let (status, body) = send(req(&sb, ma, Method::GET, "/api/contacts")).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Not found."})),
        "no trailing slash"
    );
    let id = "3b1f8e2a-6c4d-4e7a-9f10-000000000002";
    let (status, _) = send(req(&sb, ma, Method::GET, &format!("/api/contacts/{id}"))).await;
    assert_eq!(status, 404, "no trailing slash on the item path");
    let (status, one) = send(req(&sb, ma, Method::GET, &format!("/api/contacts/{id}/"))).await;
    assert_eq!(
        (status, one["email"].as_str()),
        (200, Some("daniel.lin@pacificrimfoods.com"))
    );
    let (status, nf) = send(req(
        &sb,
        ma,
        Method::GET,
        "/api/contacts/00000000-0000-4000-8000-000000000000/",
    ))
    .await;
    assert_eq!((status, nf), (404, json!({"detail": "Not found."})));

    let (_, found) = send(req(&sb, ma, Method::GET, "/api/contacts/?search=912345678")).await;
    assert_eq!(found["count"], 1);
    let (_, found) = send(req(
        &sb,
        ma,
        Method::GET,
        "/api/contacts/?search=formosatech&pageSize=2",
    ))
    .await;
    assert_eq!(found["count"], 3);
    assert_eq!(
        found["next"],
        "http://api.example.org/api/contacts/?pageSize=2&search=formosatech&page=2"
    );
    let (_, found) = send(req(&sb, ma, Method::GET, "/api/contacts/?query=crm-90")).await;
    assert_eq!(found["count"], 3, "query matches sourceId");
    let (_, found) = send(req(
        &sb,
        ma,
        Method::GET,
        "/api/contacts/?inboxes=8a1c3e5f-2b4d-4f6a-8c0e-1a2b3c4d5e03",
    ))
    .await;
    assert!(found["results"][0]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["inboxes"][0]["name"] == "Facebook Messenger"));

    let (status, created) = send(req(&sb, ma, Method::POST, "/api/contacts/").json(&json!({
        "inboxes": [{"id": "8a1c3e5f-2b4d-4f6a-8c0e-1a2b3c4d5e02"}], "name": "user1", "avatar": "",
        "phoneNumber": "+886987654321", "email": "user1@example.com", "sourceId": "ext-1", "queryMetadata": "meta"
    }))).await;
    assert_eq!(status, 201);
    assert_eq!(
        created["phoneNumber"],
        json!(987654321),
        "a string phone is served as an integer"
    );
    assert_eq!(created["inboxes"][0]["name"], "Website Chat");
    assert!(
        created["createdAt"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_700_000_000_000
    );
    let new_id = created["id"].as_str().unwrap().to_string();
    let (status, patched) = send(
        req(&sb, ma, Method::PATCH, &format!("/api/contacts/{new_id}/"))
            .json(&json!({"name": "updated", "phoneNumber": 912000111})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            patched["name"].as_str(),
            &patched["phoneNumber"],
            patched["email"].as_str()
        ),
        (
            Some("updated"),
            &json!(912000111),
            Some("user1@example.com")
        )
    );
    let (status, _) =
        send(req(&sb, ma, Method::POST, "/api/contacts/").json(&json!({"email": "x@y.z"}))).await;
    assert_eq!(status, 400, "name is required");

    // Seeded contact 1 still has conversations.
    let (status, body) = send(req(
        &sb,
        ma,
        Method::DELETE,
        "/api/contacts/3b1f8e2a-6c4d-4e7a-9f10-000000000001/",
    ))
    .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("conversations"));
    let resp = req(&sb, ma, Method::DELETE, &format!("/api/contacts/{new_id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(sb.control(ma).records().len(), 34);
}

fn mainbrainer_id(body: &Value) -> i64 {
    let id = body["data"]["ContactId"]
        .as_str()
        .expect("ContactId is a string");
    id.parse().unwrap()
}

#[tokio::test]
async fn mainbrainer_follows_the_matching_rules() {
    let sb = Sandbox::start().await.unwrap();
    let mbr = ProviderId::Mainbrainer;
    let upsert =
        |body: Value| send(req(&sb, mbr, Method::POST, "/contacts/insertupdate").json(&body));
    let count = || sb.control(mbr).records().len();
    assert_eq!(count(), 6);

    // User-Agent is required.
    let url = format!("{}/contacts/insertupdate", sb.base_url(mbr));
    let bare = Client::new()
        .post(&url)
        .bearer_auth(api_key(mbr))
        .json(&json!({"email": "a@b.co"}));
    let (status, body) = send(bare).await;
    assert_eq!(
        (status, body["status"].as_str(), &body["data"]),
        (400, Some("Error"), &Value::Null)
    );

    let (status, body) =
        upsert(json!({"propertyFields": [{"propertyName": "firstname", "propertyValue": "X"}]}))
            .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("Error")),
        "no email, mobile or contactId"
    );
    let (status, _) = upsert(json!({"email": "not-an-email"})).await;
    assert_eq!(status, 422);

    // email + mobile → the record holding both (James, 1329301).
    let (status, body) = upsert(json!({"email": "James.Whitfield@harbourline.co.uk", "mobileCountryCode": 44, "mobileNumber": 7700900123i64, "propertyFields": [{"propertyName": "city", "propertyValue": "Bristol"}]})).await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"status": "Success", "message": "Contact added/updated successfully", "data": {"ContactId": "1329301", "InvalidProperties": [], "InvalidContactIds": []}})
    );
    assert_eq!(count(), 6);
    let james = sb
        .control(mbr)
        .records()
        .into_iter()
        .find(|r| r["contactId"] == 1329301)
        .unwrap();
    assert!(james["propertyFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["propertyName"] == "city" && p["propertyValue"] == "Bristol"));
    assert_eq!(
        james["mobileOptIn"], true,
        "omitted opt-ins keep their values"
    );

    // email only, but James has a mobile → a duplicate is created.
    let (_, body) = upsert(json!({"email": "james.whitfield@harbourline.co.uk"})).await;
    let dup = mainbrainer_id(&body);
    assert_ne!(dup, 1329301);
    assert_eq!(count(), 7);
    let dup_record = sb
        .control(mbr)
        .records()
        .into_iter()
        .find(|r| r["contactId"] == dup)
        .unwrap();
    assert_eq!(
        (
            dup_record["mobileOptIn"].as_bool(),
            dup_record["emailOptIn"].as_bool()
        ),
        (Some(false), Some(false)),
        "no consent by default"
    );

    // email only → Rachel (email, null mobile); mobile only → Victor (mobile, null email).
    let (_, body) =
        upsert(json!({"email": "rachel.kim@cedarpartners.com", "emailOptIn": false})).await;
    assert_eq!(mainbrainer_id(&body), 1329303);
    let (_, body) = upsert(
        json!({"mobileCountryCode": 1, "mobileNumber": 4155550182i64, "mobileOptIn": false}),
    )
    .await;
    assert_eq!(mainbrainer_id(&body), 1329304);
    // mobile only, but Ingrid has an email → a new record.
    let (_, body) = upsert(json!({"mobileCountryCode": 47, "mobileNumber": 90812501})).await;
    assert_ne!(mainbrainer_id(&body), 1329302);
    assert_eq!(count(), 8);

    // contactId → that record, lowercase seed keys accepted, unknown property id reported.
    let (_, body) = upsert(json!({"contactId": 1329302, "propertyfields": [
        {"propertyid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "propertyname": "firstname", "propertyvalue": "Inga"},
        {"propertyid": "3fa85f64-5717-4562-b3fc-123123d23dds", "propertyvalue": "0236"}
    ]})).await;
    assert_eq!(mainbrainer_id(&body), 1329302);
    assert_eq!(
        body["data"]["InvalidProperties"].as_array().unwrap().len(),
        1
    );
    let ingrid = sb
        .control(mbr)
        .records()
        .into_iter()
        .find(|r| r["contactId"] == 1329302)
        .unwrap();
    assert_eq!(
        ingrid["email"], "ingrid.solberg@fjordtech.no",
        "omitted fields keep their values"
    );
    assert!(ingrid["propertyFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["propertyValue"] == "Inga"));

    // unknown contactId → created, and the id reported.
    let (_, body) =
        upsert(json!({"contactId": 42, "email": "new@example.com", "listId": MAINBRAINER_LIST_ID}))
            .await;
    assert_ne!(mainbrainer_id(&body), 42);
    assert_eq!(body["data"]["InvalidContactIds"], json!(["42"]));
    assert_eq!(count(), 9);
}

#[tokio::test]
async fn faults_latency_and_the_request_log() {
    let sb = Sandbox::start().await.unwrap();
    let co = ProviderId::Consuelo;
    let ctl = sb.control(co);
    let list = || {
        req(
            &sb,
            co,
            Method::GET,
            "/v1/contacts?workspaceId=ws_sandbox&limit=2",
        )
    };

    ctl.set_fault(Some(Fault::Status(503)));
    let (status, body) = send(list()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("INTERNAL_ERROR"))
    );

    ctl.set_fault(Some(Fault::RateLimited {
        retry_after_secs: 3,
    }));
    let resp = list().send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");

    ctl.set_fault(Some(Fault::MalformedJson));
    let resp = list().send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.json::<Value>().await.is_err());

    ctl.set_fault(Some(Fault::Hang));
    let started = Instant::now();
    let err = list()
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(5));

    ctl.set_fault(Some(Fault::DropConnection));
    let result = list().send().await;
    assert!(
        result.is_err(),
        "a dropped connection is an error, not a response: {result:?}"
    );

    ctl.set_fault(None);
    ctl.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let (status, _) = send(list()).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    ctl.set_latency(Duration::ZERO);

    assert_eq!(ctl.request_count(), 6, "faulted requests count too");
    let log = ctl.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/v1/contacts");
    assert!(log[0]
        .query
        .contains(&("workspaceId".to_string(), "ws_sandbox".to_string())));
    assert!(log[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && *v == format!("Bearer {}", api_key(co))));
    ctl.reset_requests();
    let _ = send(
        req(&sb, co, Method::POST, "/v1/contacts/search")
            .json(&json!({"workspaceId": "ws_sandbox", "query": "ava"})),
    )
    .await;
    assert_eq!(
        ctl.requests()[0].body,
        json!({"workspaceId": "ws_sandbox", "query": "ava"})
    );
    assert_eq!(ctl.request_count(), 1);
}

#[tokio::test]
async fn faults_show_in_each_providers_error_style() {
    let sb = Sandbox::start().await.unwrap();
    let expectations = [
        (
            ProviderId::Magicblocks,
            "/v1/contacts",
            json!({"statusCode": 500, "error": "Internal Server Error", "message": "simulated fault"}),
        ),
        (
            ProviderId::Whautomate,
            "/v1/contacts",
            json!({"message": "simulated fault"}),
        ),
        (
            ProviderId::Maiagent,
            "/api/contacts/",
            json!({"detail": "simulated fault"}),
        ),
        (
            ProviderId::Mainbrainer,
            "/contacts/insertupdate",
            json!({"status": "Error", "message": "simulated fault", "data": null}),
        ),
    ];
    for (id, path, expected) in expectations {
        sb.control(id).set_fault(Some(Fault::Status(500)));
        let (status, body) = send(req(&sb, id, Method::GET, path)).await;
        assert_eq!((status, body), (500, expected), "{id}");
        // A hang and a dropped connection are errors for every provider.
        sb.control(id).set_fault(Some(Fault::DropConnection));
        assert!(
            req(&sb, id, Method::GET, path).send().await.is_err(),
            "{id}"
        );
    }
}

#[tokio::test]
async fn the_control_surface_answers_over_http_uncounted() {
    let sb = Sandbox::start().await.unwrap();
    let ma = ProviderId::Maiagent;
    let base = sb.base_url(ma);
    let c = client();
    let put = |path: &str, body: &str| {
        c.put(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    assert_eq!(
        put("/__sandbox/fault", r#"{"status":502}"#)
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(sb.control(ma).fault(), Some(Fault::Status(502)));
    let (status, _) = send(req(&sb, ma, Method::GET, "/api/contacts/")).await;
    assert_eq!(status, 502);
    put(
        "/__sandbox/fault",
        r#"{"rateLimited":{"retryAfterSecs":7}}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        sb.control(ma).fault(),
        Some(Fault::RateLimited {
            retry_after_secs: 7
        })
    );
    for (text, fault) in [
        ("\"malformedJson\"", Fault::MalformedJson),
        ("\"hang\"", Fault::Hang),
        ("\"dropConnection\"", Fault::DropConnection),
    ] {
        put("/__sandbox/fault", text).await.unwrap();
        assert_eq!(sb.control(ma).fault(), Some(fault));
    }
    assert_eq!(
        put("/__sandbox/fault", "\"explode\"")
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    put("/__sandbox/fault", "null").await.unwrap();
    assert_eq!(sb.control(ma).fault(), None);
    put("/__sandbox/latency", r#"{"ms":20}"#).await.unwrap();

    let log: Value = c
        .get(format!("{base}/__sandbox/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["path"], "/api/contacts/");
    let records: Value = c
        .get(format!("{base}/__sandbox/records"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records.as_array().unwrap().len(), 34);
    c.delete(format!("{base}/__sandbox/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(sb.control(ma).request_count(), 0);
    assert!(sb.control(ma).requests().is_empty());
}

#[tokio::test]
async fn configs_point_at_the_simulators_and_overlaps_exist() {
    let sb = Sandbox::start().await.unwrap();
    let configs = sb.provider_configs();
    assert_eq!(configs.len(), 5);
    assert_eq!(
        configs[&ProviderId::Consuelo].setting("workspace_id"),
        Some(CONSUELO_WORKSPACE_ID)
    );
    assert_eq!(
        configs[&ProviderId::Mainbrainer].setting("list_id"),
        Some(MAINBRAINER_LIST_ID)
    );
    assert_eq!(
        configs[&ProviderId::Maiagent].api_key.expose(),
        api_key(ProviderId::Maiagent)
    );
    assert!(configs[&ProviderId::Whautomate]
        .base_url
        .starts_with("http://127.0.0.1:"));

    let total: usize = ProviderId::ALL
        .iter()
        .map(|id| sb.control(*id).records().len())
        .sum();
    assert!(total >= 25, "{total}");
    // Same email in two providers, and the same phone in two providers.
    let mb = sb.control(ProviderId::Magicblocks).records();
    let co = sb.control(ProviderId::Consuelo).records();
    assert_eq!(mb[0]["emails"][0]["address"], co[0]["email"]);
    assert_eq!(mb[0]["phones"][0]["number"], co[0]["phone"]);
    let wa = sb.control(ProviderId::Whautomate).records();
    let ma = sb.control(ProviderId::Maiagent).records();
    assert_eq!(
        crate::phone::to_e164(
            &ma[0]["phoneNumber"].to_string(),
            crate::phone::parse_region("TW")
        ),
        wa[0]["phoneNumber"].as_str().map(String::from)
    );
    // And people in three: Olivia's phone in Whautomate too, Chen Mei-Ling's phone and email
    // in Consuelo too.
    assert_eq!(wa[11]["phoneNumber"], co[0]["phone"]);
    assert_eq!(co[12]["phone"], wa[0]["phoneNumber"]);
    assert_eq!(co[12]["email"], ma[0]["email"]);
}

#[tokio::test]
async fn a_fault_can_last_for_the_next_few_requests_only() {
    let sb = Sandbox::start().await.unwrap();
    let ma = ProviderId::Maiagent;
    let base = sb.base_url(ma);
    let c = client();
    let put = |path: &str, body: &'static str| c.put(format!("{base}{path}")).body(body).send();
    // A fault for the next two requests only, then service as usual.
    let times = put("/__sandbox/fault", r#"{"fault":{"status":503},"times":2}"#);
    assert_eq!(times.await.unwrap().status().as_u16(), 204);
    for expected in [503, 503, 200, 200] {
        let (status, _) = send(req(&sb, ma, Method::GET, "/api/contacts/")).await;
        assert_eq!(status, expected);
    }
    assert_eq!(sb.control(ma).fault(), None);
    sb.control(ma).set_fault_times(Fault::Status(500), 1);
    sb.control(ma).set_fault(None);
    let (status, _) = send(req(&sb, ma, Method::GET, "/api/contacts/")).await;
    assert_eq!(status, 200, "set_fault(None) clears a counted fault too");
}

#[tokio::test]
async fn the_printed_config_parses_into_the_sandbox_configs() {
    let sb = Sandbox::start().await.unwrap();
    let parsed = crate::config::Config::parse(&sb.config_toml(), |_| None).expect("parses");
    let expected = sb.provider_configs();
    assert_eq!(parsed.providers.len(), expected.len());
    for (id, config) in expected {
        let got = &parsed.providers[&id];
        assert_eq!(got.base_url, config.base_url);
        assert_eq!(got.api_key, config.api_key);
        assert_eq!(got.settings, config.settings);
        assert_eq!(got.default_region, config.default_region);
        assert_eq!(got.budget, config.budget, "{id}: the sandbox paces nothing");
    }
}

#[tokio::test]
async fn echo_mode_puts_the_received_key_into_answers_in_three_forms() {
    let sb = Sandbox::start().await.unwrap();
    let c = client();
    for id in ProviderId::ALL {
        let base = sb.base_url(id);
        let put = |on: &'static str| c.put(format!("{base}/__sandbox/echoKey")).body(on).send();
        assert_eq!(put("true").await.unwrap().status().as_u16(), 204);
        assert!(sb.control(id).echo_key());
        assert_eq!(put("\"yes\"").await.unwrap().status().as_u16(), 400);

        let key = api_key(id);
        let percent = control::percent_encoded(key);
        let escaped: String = key.bytes().map(|b| format!("\\u{b:04x}")).collect();
        // A success answer carrying records (Mainbrainer: its 2xx `status: Error`).
        let method = if id == ProviderId::Mainbrainer {
            Method::POST
        } else {
            Method::GET
        };
        let resp = req(&sb, id, method, list_path(id))
            .json(&json!({"email": "echo@example.com"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{id}: {}", resp.status());
        let text = resp.text().await.unwrap();
        // Consuelo's records carry the key JSON-escaped only.
        let forms = if id == ProviderId::Consuelo {
            vec![escaped.as_str()]
        } else {
            vec![key, percent.as_str(), escaped.as_str()]
        };
        for form in forms {
            assert!(text.contains(form), "{id}: {form} not in {text}");
        }
        if id == ProviderId::Consuelo {
            assert!(!text.contains(&key[..10]), "{text}");
        }
        // An error answer: the key across the 300th character of its message.
        sb.control(id).set_fault(Some(Fault::Status(400)));
        let resp = req(&sb, id, Method::GET, list_path(id))
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                ["/message", "/error/message", "/detail"]
                    .iter()
                    .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_string))
            })
            .unwrap_or(text);
        let at = message
            .find(key)
            .unwrap_or_else(|| panic!("{id}: {message}"));
        assert!(at < 300 && at + key.len() > 300, "{id}: key at {at}");

        sb.control(id).set_fault(None);
        sb.control(id).set_echo_key(false);
        let text = req(&sb, id, Method::GET, list_path(id))
            .json(&json!({"email": "echo@example.com"}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(key), "{id}: echo mode off");
    }
}

//! The sample contacts every simulator starts with, in each provider's wire shape.
//! Deterministic: fixed ids and timestamps, store order = list order.
//!
//! People in three providers (`person(email:)` or `person(phone:)` finds all three):
//! - Olivia Bennett: MagicBlocks `con_01HSBX7K2M0000001` ↔ Consuelo `contact_1001`
//!   (email olivia.bennett@northwindtraders.com and phone +14155550142) ↔ Whautomate
//!   `64f1a2b3c4d5e6f7a8b9c00c` (the phone; Whautomate holds no email)
//! - Chen Mei-Ling: Whautomate `64f1a2b3c4d5e6f7a8b9c001` (+886912345678) ↔ MaiAgent
//!   `3b1f8e2a-6c4d-4e7a-9f10-000000000001` (912345678, Taiwanese national digits, and email
//!   meiling.chen@formosatech.com.tw) ↔ Consuelo `contact_1013` (the phone and the email)
//!
//! People in two providers (same email or same phone):
//! - Sophie Tran: MagicBlocks `con_01HSBX7K2M0000002` ↔ Whautomate `64f1a2b3c4d5e6f7a8b9c002`
//!   (phone +61491570156)
//! - James Whitfield: Consuelo `contact_1002` ↔ Mainbrainer 1329301
//!   (email james.whitfield@harbourline.co.uk and phone +447700900123)
//! - Daniel Lin: Consuelo `contact_1003` ↔ MaiAgent `3b1f8e2a-6c4d-4e7a-9f10-000000000002`
//!   (email daniel.lin@pacificrimfoods.com)
//! - Emily Clarke: Whautomate `64f1a2b3c4d5e6f7a8b9c004` ↔ Mainbrainer 1329306
//!   (phone +447700900231)
//!
//! Mainbrainer cannot be searched (it reads nothing), so its side of a pair is never found
//! from the other provider.
//!
//! Phones are from ranges reserved for fiction where they exist (US 555-01xx, UK 07700 900xxx,
//! AU 0491 57x xxx).

// The seed tables are tuples, read row by row.
#![allow(clippy::type_complexity)]

use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// MagicBlocks: nested name/emails/phones, `customFields`, epoch-second timestamps.

pub fn magicblocks_id(n: u64) -> String {
    format!("con_01HSBX7K2M{n:07}")
}

struct Mb {
    first: &'static str,
    middle: &'static str,
    last: &'static str,
    emails: &'static [(&'static str, &'static str)],
    phones: &'static [(&'static str, &'static str)],
    is_test: bool,
    sessions: u64,
    knowledge: &'static str,
    custom: Value,
}

pub fn magicblocks() -> Vec<Value> {
    let people = [
        Mb {
            first: "Olivia",
            middle: "",
            last: "Bennett",
            emails: &[("olivia.bennett@northwindtraders.com", "work")],
            phones: &[("+14155550142", "mobile")],
            is_test: false,
            sessions: 14,
            knowledge: "Asked about enterprise SSO during the October webinar.",
            custom: json!({"company": "Northwind Traders", "role": "Head of Growth", "utm_source": "webinar", "country": "United States", "timezone": "PST"}),
        },
        Mb {
            first: "Sophie",
            middle: "",
            last: "Tran",
            emails: &[("sophie.tran@koalalogistics.com.au", "work")],
            phones: &[("+61491570156", "mobile")],
            is_test: false,
            sessions: 6,
            knowledge: "Runs a 40-truck fleet in NSW; evaluating route notifications.",
            custom: json!({"company": "Koala Logistics", "country": "Australia", "timezone": "AEST", "plan": "Pro"}),
        },
        Mb {
            first: "Marcus",
            middle: "A",
            last: "Reid",
            emails: &[("marcus@reidandco.co.uk", "work")],
            phones: &[("+447700900461", "mobile")],
            is_test: false,
            sessions: 3,
            knowledge: "",
            custom: json!({"company": "Reid & Co", "role": "Founder", "country": "United Kingdom"}),
        },
        Mb {
            first: "Priya",
            middle: "",
            last: "Natarajan",
            emails: &[
                ("priya.n@lumenhealth.io", "work"),
                ("priya.natarajan@fastmail.com", "personal"),
            ],
            phones: &[],
            is_test: false,
            sessions: 9,
            knowledge: "Procurement lead; needs a HIPAA BAA before signing.",
            custom: json!({"company": "Lumen Health", "plan": "Enterprise"}),
        },
        Mb {
            first: "",
            middle: "",
            last: "",
            emails: &[],
            phones: &[("+14155550177", "mobile")],
            is_test: false,
            sessions: 2,
            knowledge: "",
            custom: json!({"utm_source": "google-ads", "utm_campaign": "spring-promo"}),
        },
        Mb {
            first: "QA",
            middle: "",
            last: "Bot",
            emails: &[("qa-bot@magicblocks.test", "work")],
            phones: &[],
            is_test: true,
            sessions: 41,
            knowledge: "Internal test data",
            custom: json!({}),
        },
        Mb {
            first: "Hannah",
            middle: "",
            last: "Kowalski",
            emails: &[("hannah.kowalski@brightpathedu.org", "work")],
            phones: &[("+14155550189", "mobile"), ("+12125550143", "work")],
            is_test: false,
            sessions: 5,
            knowledge: "Admissions season starts in March.",
            custom: json!({"company": "BrightPath Education", "role": "Admissions Director"}),
        },
        Mb {
            first: "Liam",
            middle: "",
            last: "O'Connor",
            emails: &[("liam.oconnor@tidewaterbrewing.com.au", "work")],
            phones: &[("+61491570110", "mobile")],
            is_test: false,
            sessions: 1,
            knowledge: "",
            custom: json!({"company": "Tidewater Brewing", "country": "Australia"}),
        },
    ];
    people
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let id = magicblocks_id(i as u64 + 1);
            let first_seen = 1_730_200_000 + i as i64 * 86_400;
            let last_seen = first_seen + 3_600 * (i as i64 + 2);
            let body = json!({
                "name": {"first": p.first, "middle": p.middle, "last": p.last},
                "emails": p.emails.iter().enumerate().map(|(k, (a, t))| json!({"address": a, "type": t, "primary": k == 0})).collect::<Vec<_>>(),
                "phones": p.phones.iter().enumerate().map(|(k, (n, t))| json!({"number": n, "type": t, "primary": k == 0})).collect::<Vec<_>>(),
                "isTest": p.is_test,
                "userKnowledge": p.knowledge,
                "custom": p.custom,
            });
            let mut record = json!({
                "id": id,
                "firstSeen": first_seen,
                "modifiedAt": last_seen,
                "lastSeen": last_seen,
                "sessionCount": p.sessions,
                "link": format!("https://app.magicblocks.ai/contacts/{id}"),
                "preview": false,
            });
            super::magicblocks::apply_writable(&mut record, body.as_object().expect("object"))
                .expect("seed is valid");
            record
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Consuelo: flat fields, ISO-8601 `…Z` timestamps.

pub fn consuelo() -> Vec<Value> {
    #[rustfmt::skip]
    let people: [(&str, &str, Option<&str>, Option<&str>, Option<&str>, Option<&str>, &str); 13] = [
        ("Olivia", "Bennett", Some("+14155550142"), Some("olivia.bennett@northwindtraders.com"), Some("Northwind Traders"), Some("Prefers calls after 2pm PT"), "2024-11-04T09:15:00Z"),
        ("James", "Whitfield", Some("+447700900123"), Some("james.whitfield@harbourline.co.uk"), Some("Harbourline Shipping"), None, "2024-11-05T11:02:00Z"),
        ("Daniel", "Lin", Some("+14155550163"), Some("daniel.lin@pacificrimfoods.com"), Some("Pacific Rim Foods"), Some("Met at the Taipei food expo"), "2024-11-06T16:40:00Z"),
        ("Maria", "Gonzalez", Some("+13105550118"), Some("maria@solanarealty.com"), Some("Solana Realty"), Some("Interested in premium plan"), "2024-11-08T08:30:00Z"),
        ("Ethan", "Brooks", Some("+12125550176"), Some("ethan.brooks@ironcladsecurity.com"), Some("Ironclad Security"), None, "2024-11-12T14:05:00Z"),
        ("Grace", "Okafor", Some("+447700900789"), Some("grace.okafor@meridianlaw.co.uk"), Some("Meridian Law"), None, "2024-11-15T10:20:00Z"),
        ("Noah", "Fischer", Some("+14155550104"), None, None, Some("Walk-in lead, no email yet"), "2024-11-18T17:45:00Z"),
        ("Chloe", "Martin", Some("+61491570737"), Some("chloe.martin@bluegumdesign.com.au"), Some("Bluegum Design"), None, "2024-11-20T23:10:00Z"),
        ("Ava", "Thompson", Some("+14155550199"), Some("ava.t@northwindtraders.com"), Some("Northwind Traders"), None, "2024-11-22T09:00:00Z"),
        ("Lucas", "Wright", None, Some("lucas.wright@summitcapital.com"), Some("Summit Capital"), None, "2024-11-25T13:35:00Z"),
        ("Isabella", "Rossi", Some("+61491571266"), Some("isabella.rossi@veronawines.com"), Some("Verona Wines"), Some("Do not call before 10am AEST"), "2024-11-27T01:50:00Z"),
        ("Benjamin", "Carter", Some("+17185550131"), Some("ben.carter@keystonebuild.com"), Some("Keystone Builders"), None, "2024-12-02T15:25:00Z"),
        ("Mei-Ling", "Chen", Some("+886912345678"), Some("meiling.chen@formosatech.com.tw"), Some("Formosa Tech"), Some("Taipei office; prefers LINE"), "2024-12-04T02:15:00Z"),
    ];
    people
        .into_iter()
        .enumerate()
        .map(
            |(i, (first, last, phone, email, company, notes, created))| {
                json!({
                    "id": format!("contact_{}", 1001 + i),
                    "firstName": first,
                    "lastName": last,
                    "phone": phone,
                    "email": email,
                    "company": company,
                    "notes": notes,
                    "createdAt": created,
                    "updatedAt": created,
                })
            },
        )
        .collect()
}

// ---------------------------------------------------------------------------------------
// Whautomate: one `name`, `phoneNumber` with country code, no email. Some records carry
// `tags`/`customFields` as JSON-encoded strings (the webhook quirk, NOTES Decision 3).

pub const WHAUTOMATE_LOCATIONS: [(&str, &str); 4] = [
    ("loc_taipei", "Taipei Clinic"),
    ("loc_sydney", "Sydney Studio"),
    ("loc_london", "London Wellness Centre"),
    ("loc_sf", "San Francisco Studio"),
];

pub fn whautomate_id(n: u64) -> String {
    format!("64f1a2b3c4d5e6f7a8b9c{n:03x}")
}

/// (record, channel). The channel is kept internally for the `channel` filter.
pub fn whautomate() -> Vec<(Value, &'static str)> {
    // (name, phone, location index, stage, notes, tags, customFields, string-encoded?, channel)
    #[rustfmt::skip]
    let people: [(&str, &str, Option<usize>, Option<&str>, Option<&str>, Value, Value, bool, &str); 12] = [
        ("Chen Mei-Ling", "+886912345678", Some(0), Some("Customer"), Some("Books monthly physio sessions"), json!(["vip", "line"]), json!({"preferredLanguage": "zh-TW"}), false, "Whatsapp"),
        ("Sophie Tran", "+61491570156", Some(1), Some("Lead"), None, json!(["webinar"]), json!({"company": "Koala Logistics"}), false, "Whatsapp"),
        ("Arjun Mehta", "+14155550121", Some(3), Some("Subscriber"), Some("Asked for weekend class times"), json!([]), json!({}), false, "Website"),
        ("Emily Clarke", "+447700900231", Some(2), Some("Follow-up Required"), Some("Trial ends next Friday"), json!(["trial", "newsletter"]), json!({"referral": "friend"}), true, "Whatsapp"),
        ("Kenji Watanabe", "+61491570313", Some(1), Some("Engaged"), None, json!(["yoga"]), json!({"membership": "annual"}), true, "Instagram"),
        ("Fatima Al-Sayed", "+447700900555", Some(2), Some("Opportunity"), Some("Corporate wellness package for 25 staff"), json!(["corporate"]), json!({"company": "Meridian Law"}), false, "Messenger"),
        ("Carlos Mendes", "+14155550138", Some(3), Some("Customer"), None, json!(["vip"]), json!({"membership": "monthly"}), false, "Whatsapp"),
        ("Wang Jun-Hao", "+886922334455", Some(0), Some("Lead"), None, json!(["line", "trial"]), json!({}), false, "Telegram"),
        ("Zoe Anderson", "+61491570006", None, Some("Inactive"), None, json!([]), json!({}), false, "Whatsapp"),
        ("Tom Becker", "+12125550110", Some(3), Some("Lost"), Some("Moved to a competitor"), json!([]), json!({}), true, "Website"),
        ("Lin Yu-Ting", "+886933221100", Some(0), Some("Subscriber"), None, json!(["newsletter"]), json!({"preferredLanguage": "zh-TW"}), false, "Whatsapp"),
        ("Olivia Bennett", "+14155550142", Some(3), Some("Customer"), Some("Booked a team offsite class for March"), json!(["corporate"]), json!({"company": "Northwind Traders"}), false, "Whatsapp"),
    ];
    people
        .into_iter()
        .enumerate()
        .map(|(i, (name, phone, loc, stage, notes, tags, custom, encoded, channel))| {
            let created = format!("2025-01-{:02}T{:02}:30:00.000Z", 6 + i * 2, 8 + i);
            let (tags, custom) = if encoded {
                // whautomate webhooks: "tags": "[\"trial\"]", "customFields": "{...}"
                (Value::String(tags.to_string()), Value::String(custom.to_string()))
            } else {
                (tags, custom)
            };
            let record = json!({
                "id": whautomate_id(i as u64 + 1),
                "name": name,
                "phoneNumber": phone,
                "location": loc.map(|l| json!({"id": WHAUTOMATE_LOCATIONS[l].0, "title": WHAUTOMATE_LOCATIONS[l].1})),
                "stage": stage,
                "notes": notes,
                "customFields": custom,
                "tags": tags,
                "createdAt": created,
                "updatedAt": created,
            });
            (record, channel)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// MaiAgent: UUID ids, integer national `phoneNumber`, epoch-millisecond string timestamps.

pub const MAIAGENT_INBOXES: [(&str, &str); 3] = [
    ("8a1c3e5f-2b4d-4f6a-8c0e-1a2b3c4d5e01", "LINE 官方帳號"),
    ("8a1c3e5f-2b4d-4f6a-8c0e-1a2b3c4d5e02", "Website Chat"),
    ("8a1c3e5f-2b4d-4f6a-8c0e-1a2b3c4d5e03", "Facebook Messenger"),
];

pub fn maiagent_id(n: u64) -> String {
    format!("3b1f8e2a-6c4d-4e7a-9f10-{n:012}")
}

/// (record, conversations). The conversation count is internal (not served); a contact with
/// conversations cannot be deleted.
pub fn maiagent() -> Vec<(Value, u32)> {
    // (name, email, phone as national digits, sourceId, inbox index, conversations)
    #[rustfmt::skip]
    let people: [(&str, Option<&str>, Option<u64>, Option<&str>, usize, u32); 34] = [
        ("陳美玲 Chen Mei-Ling", Some("meiling.chen@formosatech.com.tw"), Some(912345678), Some("line:U4af4980629"), 0, 3),
        ("Daniel Lin", Some("daniel.lin@pacificrimfoods.com"), None, Some("crm-88213"), 1, 0),
        ("林怡君", Some("yijun.lin@gmail.com"), Some(928111203), None, 0, 0),
        ("王志明", None, Some(933456789), Some("line:U7c1d22e901"), 0, 1),
        ("張雅婷", Some("yating.chang@hotmail.com"), Some(910222333), None, 2, 0),
        ("李冠宇", Some("guanyu.li@tsmc-partners.com.tw"), Some(937654321), None, 1, 0),
        ("黃詩涵", None, Some(955100200), Some("fb:3345129988"), 2, 0),
        ("吳承恩", Some("chengen.wu@yahoo.com.tw"), None, None, 1, 0),
        ("劉家豪", Some("jiahao.liu@formosatech.com.tw"), Some(966300400), None, 0, 2),
        ("蔡佩珊", Some("peishan.tsai@gmail.com"), Some(975500600), None, 0, 0),
        ("楊宗翰", None, Some(988700800), Some("line:U91be0f5a22"), 0, 0),
        ("許雅雯", Some("yawen.hsu@nccu.edu.tw"), Some(919900100), None, 1, 0),
        ("鄭凱文", Some("kevin.cheng@pegatron-supply.com"), Some(921123456), None, 1, 0),
        ("謝欣怡", Some("xinyi.hsieh@gmail.com"), None, None, 2, 0),
        ("郭俊傑", None, Some(932234567), Some("fb:9901827364"), 2, 0),
        ("洪淑芬", Some("shufen.hung@chtmail.com.tw"), Some(958345678), None, 0, 0),
        ("Emma Wilson", Some("emma.wilson@harbourline.co.uk"), None, Some("crm-90017"), 1, 0),
        ("曾子軒", Some("zixuan.tseng@gmail.com"), Some(963456789), None, 0, 5),
        ("邱文傑", None, Some(972567890), None, 0, 0),
        ("廖美惠", Some("meihui.liao@kaohsiung-clinic.tw"), Some(981678901), None, 1, 0),
        ("賴俊宏", Some("junhong.lai@gmail.com"), Some(915789012), Some("line:U0b7e3c8d14"), 0, 0),
        ("周怡萱", Some("yixuan.chou@outlook.com"), None, None, 2, 0),
        ("徐志豪", None, Some(926890123), None, 0, 0),
        ("Kevin Huang", Some("kevin.huang@asiabridge.io"), Some(939901234), Some("crm-90342"), 1, 0),
        ("蘇怡伶", Some("yiling.su@gmail.com"), Some(952012345), None, 0, 0),
        ("葉家銘", Some("jiaming.yeh@foxlink-parts.com.tw"), Some(968123450), None, 1, 0),
        ("莊雅琪", None, Some(977234561), Some("line:U55d0a7b3e0"), 0, 1),
        ("呂建志", Some("jianzhi.lu@gmail.com"), None, None, 2, 0),
        ("高佳慧", Some("chiahui.kao@yahoo.com.tw"), Some(986345672), None, 0, 0),
        ("潘柏翰", Some("pohan.pan@ntu.edu.tw"), Some(913456783), None, 1, 0),
        ("Sarah Chen", Some("sarah.chen@brightpathedu.org"), Some(923567894), Some("crm-90455"), 1, 0),
        ("簡宏達", None, Some(935678905), None, 0, 0),
        ("范淑惠", Some("shuhui.fan@gmail.com"), Some(956789016), None, 2, 0),
        ("溫俊安", Some("junan.wen@formosatech.com.tw"), Some(967890127), None, 0, 0),
    ];
    people
        .into_iter()
        .enumerate()
        .map(|(i, (name, email, phone, source, inbox, conversations))| {
            let created: i64 = 1_735_700_000_000 + i as i64 * 90_000_000;
            let updated = created + 3_600_000 * (i as i64 % 5);
            let (inbox_id, inbox_name) = MAIAGENT_INBOXES[inbox];
            let mut record = json!({
                "id": maiagent_id(i as u64 + 1),
                "inboxes": [{"id": inbox_id, "name": inbox_name}],
                "name": name,
                "avatar": "",
                // maiagent.txt examples: "phoneNumber": 912345678 (an integer, national digits)
                "phoneNumber": phone,
                "email": email,
                "sourceId": source,
                "queryMetadata": null,
                // maiagent.txt examples: "createdAt": "1751875361000" (epoch ms as a string)
                "createdAt": created.to_string(),
                "updatedAt": updated.to_string(),
            });
            // maiagent.txt's response schema: "mcpCredentials": string, "List of the contact's
            // MCP credentials"; its examples leave the key out. Every third contact has one.
            if i % 3 == 0 {
                record["mcpCredentials"] = json!(format!("mcp-cred-{:04}-7f3a9c2e", i + 1));
            }
            (record, conversations)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Mainbrainer: not listable over the API; stored in the upsert item's (camelCase) shape.

/// Known contact properties (id, name). The first pairing is the document's example.
pub const MAINBRAINER_PROPERTIES: [(&str, &str); 7] = [
    ("3fa85f64-5717-4562-b3fc-2c963f66afa6", "firstname"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a51", "lastname"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a52", "company"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a53", "interest"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a54", "Street"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a55", "city"),
    ("5b2e9c10-7d41-4f0a-9a63-0c1d2e3f4a56", "state"),
];

pub const MAINBRAINER_FIRST_ID: i64 = 1_329_301;

pub fn mainbrainer() -> Vec<Value> {
    let list = super::MAINBRAINER_LIST_ID;
    // (email, mobile (cc, number), mobileOptIn, emailOptIn, in list?, properties)
    #[rustfmt::skip]
    let people: [(Option<&str>, Option<(u32, u64)>, bool, bool, bool, &[(&str, &str)]); 6] = [
        (Some("james.whitfield@harbourline.co.uk"), Some((44, 7_700_900_123)), true, true, true,
         &[("firstname", "James"), ("lastname", "Whitfield"), ("company", "Harbourline Shipping"), ("city", "London")]),
        (Some("ingrid.solberg@fjordtech.no"), Some((47, 90_812_501)), true, false, true,
         &[("firstname", "Ingrid"), ("lastname", "Solberg"), ("company", "FjordTech"), ("city", "Oslo"), ("interest", "ice hockey")]),
        (Some("rachel.kim@cedarpartners.com"), None, false, true, false,
         &[("firstname", "Rachel"), ("lastname", "Kim"), ("company", "Cedar Partners")]),
        (None, Some((1, 4_155_550_182)), true, false, false,
         &[("firstname", "Victor"), ("lastname", "Huang")]),
        (Some("jack.harrison@outbackoutfitters.com.au"), Some((61, 491_572_549)), false, false, true,
         &[("firstname", "Jack"), ("lastname", "Harrison"), ("company", "Outback Outfitters"), ("state", "QLD")]),
        (None, Some((44, 7_700_900_231)), false, false, false,
         &[("firstname", "Emily"), ("lastname", "Clarke"), ("interest", "pilates")]),
    ];
    people
        .into_iter()
        .enumerate()
        .map(|(i, (email, mobile, mobile_opt_in, email_opt_in, in_list, props))| {
            json!({
                "contactId": MAINBRAINER_FIRST_ID + i as i64,
                "listIds": if in_list { vec![list] } else { vec![] },
                "email": email,
                "mobileCountryCode": mobile.map(|m| m.0),
                "mobileNumber": mobile.map(|m| m.1),
                "mobileOptIn": mobile_opt_in,
                "emailOptIn": email_opt_in,
                "propertyFields": props.iter().map(|(name, value)| json!({
                    "propertyId": MAINBRAINER_PROPERTIES.iter().find(|p| p.1 == *name).map(|p| p.0),
                    "propertyName": name,
                    "propertyValue": value,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

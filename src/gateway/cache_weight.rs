//! What a read-cache entry weighs (`[cache] max_bytes`): an estimate of the heap it holds,
//! computed once, when moka stores the entry, by walking it (nothing is serialized).
//!
//! The estimate counts each value's inline size, the bytes of its strings, and a little per
//! allocation and per map entry for the allocator's and the map's own room. It errs high: a
//! window counts its contacts whole, though the contact cache may hold the same `Arc`s.

use super::cache::Window;
use crate::config::CacheConfig;
use crate::contact::Contact;
use serde_json::{Map, Value};
use std::mem::size_of;

/// How `[cache] max_bytes` and `max_entries` bound the read cache together: its capacity in
/// moka's weight, and what one entry weighs at least (`None`: every entry weighs 1).
///
/// With both set the capacity is `max_bytes` and an entry weighs its estimate but at least
/// `max_bytes / max_entries` (rounded up), so the estimates never sum past `max_bytes` and
/// no more than `max_entries` entries fit. `max_bytes = 0`: entries only, as before it.
pub fn bounds(config: &CacheConfig) -> (u64, Option<u64>) {
    match (config.max_bytes, config.max_entries) {
        (0, entries) | (_, entries @ 0) => (entries, None),
        (bytes, entries) => (bytes, Some(bytes.div_ceil(entries))),
    }
}

/// An entry of `bytes` (estimated) as moka weighs it, under `bounds`' floor.
pub fn weight(bytes: usize, floor: Option<u64>) -> u32 {
    match floor {
        None => 1,
        Some(floor) => u32::try_from((bytes as u64).max(floor)).unwrap_or(u32::MAX),
    }
}

/// What one heap allocation costs beyond its bytes (the allocator's rounding and header).
const PER_ALLOCATION: usize = 16;
/// What one entry of a JSON object costs beyond its key and value (its share of a B-tree
/// node's unused slots).
const PER_MAP_ENTRY: usize = 24;

/// A cached contact: the struct, its strings and lists, its custom fields and its `raw`.
pub fn contact(contact: &Contact) -> usize {
    let name = &contact.name;
    let strings = [
        Some(&contact.native_id),
        name.first.as_ref(),
        name.middle.as_ref(),
        name.last.as_ref(),
        name.full.as_ref(),
        contact.company.as_ref(),
        contact.notes.as_ref(),
        contact.stage.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| string(s))
    .sum::<usize>();
    let emails = contact
        .emails
        .iter()
        .map(|e| size_of_val(e) + string(&e.address) + e.kind.as_deref().map_or(0, string))
        .sum::<usize>();
    let phones = contact
        .phones
        .iter()
        .map(|p| {
            size_of_val(p)
                + string(&p.number)
                + p.e164.as_deref().map_or(0, string)
                + p.kind.as_deref().map_or(0, string)
        })
        .sum::<usize>();
    let groups = contact
        .groups
        .iter()
        .map(|g| {
            size_of_val(g) + string(&g.id) + g.name.as_deref().map_or(0, string) + string(&g.kind)
        })
        .sum::<usize>();
    let tags = contact
        .tags
        .iter()
        .map(|t| size_of::<String>() + string(t))
        .sum::<usize>();
    // The `Arc`'s counts and the allocations of the non-empty lists.
    size_of::<Contact>()
        + 2 * size_of::<usize>()
        + PER_ALLOCATION * 5
        + strings
        + emails
        + phones
        + groups
        + tags
        + map(&contact.custom_fields)
        + json(&contact.raw)
}

/// A cached list window: its contacts, whole.
pub fn window(window: &Window) -> usize {
    size_of::<Window>()
        + 2 * size_of::<usize>()
        + PER_ALLOCATION
        + window
            .contacts
            .iter()
            .map(|c| size_of_val(c) + contact(c))
            .sum::<usize>()
}

/// A JSON value, inline and on the heap.
pub fn json(value: &Value) -> usize {
    size_of::<Value>()
        + match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => string(s),
            Value::Array(items) => PER_ALLOCATION + items.iter().map(json).sum::<usize>(),
            Value::Object(entries) => map(entries),
        }
}

fn map(entries: &Map<String, Value>) -> usize {
    if entries.is_empty() {
        return 0;
    }
    PER_ALLOCATION
        + entries
            .iter()
            .map(|(key, value)| size_of::<String>() + string(key) + json(value) + PER_MAP_ENTRY)
            .sum::<usize>()
}

/// The heap bytes of a string (its inline `String` is counted by its holder).
fn string(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.len() + PER_ALLOCATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ProviderId;
    use crate::gateway::cache::{ReadCache, WindowKey};
    use crate::providers::ListQuery;
    use serde_json::json;
    use std::sync::Arc;

    /// The estimate grows with what a contact holds, `raw` included, and stays within a small
    /// factor of its JSON text (what the provider sent).
    #[test]
    fn a_contact_weighs_about_what_it_holds() {
        let raw = json!({
            "id": "c1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "emails": [{"address": "ada@example.com", "type": "work"}],
            "notes": "x".repeat(2000),
        });
        let text = raw.to_string().len();
        let mut small = Contact::new(ProviderId::Consuelo, "c1", Value::Null);
        small.name.first = Some("Ada".into());
        let mut big = Contact::new(ProviderId::Consuelo, "c1", raw);
        big.name.first = Some("Ada".into());
        big.notes = Some("x".repeat(2000));
        let (small, big) = (contact(&small), contact(&big));
        assert!(small < 1024, "{small}");
        assert!(big > small + 2 * 2000, "{big}");
        assert!(
            big < small + 3 * text + 2000,
            "{big} for {text} bytes of JSON"
        );
    }

    fn window(provider: ProviderId, offset: u64) -> (WindowKey, Arc<Window>) {
        let contacts = (0..20)
            .map(|n| {
                let native = format!("c{offset}-{n}");
                let raw = json!({ "id": native, "notes": "x".repeat(1000) });
                Arc::new(Contact::new(provider, native, raw))
            })
            .collect();
        let key = WindowKey {
            provider,
            query: ListQuery::default(),
            offset,
            limit: 20,
        };
        let window = Window {
            contacts,
            exhausted: false,
            total: None,
        };
        (key, Arc::new(window))
    }

    /// Many windows, each stamped out by a write after it is stored (as in the soak): what the
    /// cache holds stays within `max_bytes`, and `max_entries` still bounds it too.
    #[tokio::test]
    async fn the_read_cache_holds_at_most_max_bytes_and_max_entries() {
        let provider = ProviderId::Consuelo;
        let config = CacheConfig {
            max_bytes: 200_000,
            ..CacheConfig::default()
        };
        let cache = ReadCache::new(&config);
        for offset in 0..200 {
            let (key, window) = window(provider, offset);
            cache.put_window(cache.ticket(provider), key, window).await;
            cache.invalidate_provider(provider).await;
        }
        let held = cache.held_bytes().await;
        assert!(held <= 200_000, "{held} bytes held");
        assert!(held > 100_000, "it still caches: {held} bytes held");

        let config = CacheConfig {
            max_entries: 10,
            ..CacheConfig::default()
        };
        let cache = ReadCache::new(&config);
        for offset in 0..5 {
            let (key, window) = window(provider, offset);
            cache.put_window(cache.ticket(provider), key, window).await;
        }
        assert!(cache.held_entries().await <= 10);
    }
}

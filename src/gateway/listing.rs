//! `contacts`: one page across providers. The order is provider by provider (`ProviderId`
//! order), each in its own order; the providers the page needs are asked in parallel, so a
//! page costs the slowest one's time, not the sum. Which ones it needs comes from the sizes
//! their listings showed (`ListingSizes`); while one is unknown, every provider the page may
//! reach is asked.

use super::cursor::{fingerprint, Cursor};
use super::filter::Filter;
use super::Gateway;
use crate::contact::{Contact, ProviderId};
use crate::providers::{Capability, ListQuery, Provider, ProviderError};
use futures::future::join_all;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

pub const MAX_FIRST: usize = 100;

/// The providers a page may reach, in `ProviderId` order.
type Walk<'a> = Vec<&'a Arc<dyn Provider>>;

/// Records asked of a provider per call while the gateway filters (a filter it cannot push
/// down may need several windows to fill a page).
const FILTER_WINDOW: u32 = 50;

/// The most records asked of a provider in one call. A page-numbered API that caps its page
/// size below what we ask would answer a "short" page and seem to end early; 100 is the
/// largest page size the documents' examples and the simulators use.
const MAX_WINDOW: u32 = 100;

pub struct ContactsArgs {
    /// `None`: every enabled provider that can list.
    pub providers: Option<Vec<ProviderId>>,
    pub filter: Filter,
    pub first: usize,
    pub after: Option<String>,
    /// Whether `totalCount` was selected (it may cost a call per provider already paged past).
    pub want_total: bool,
    /// Whether list windows may come from the read cache.
    pub use_cache: bool,
}

pub struct Edge {
    pub cursor: String,
    pub contact: Arc<Contact>,
}

pub struct ContactsPage {
    pub edges: Vec<Edge>,
    pub has_next_page: bool,
    /// Where the next page starts: the last edge's cursor, or where a scan stopped at
    /// `max_scan` (then possibly with no edges). Set whenever `has_next_page` is.
    pub end_cursor: Option<String>,
    pub total_count: Option<u64>,
    /// One per provider that failed; the others' edges are still there.
    pub errors: Vec<ProviderError>,
}

/// Up to `needed` matching records of one provider from `offset` on, each with its position.
pub(crate) struct Collected {
    pub matches: Vec<(u64, Arc<Contact>)>,
    pub total: Option<u64>,
    /// Set when the scan read `max_scan` records before finding `needed` matches or reaching
    /// the end of the listing: the position the next page resumes from.
    pub stopped_at: Option<u64>,
}

impl Gateway {
    /// One page of `contacts`. `Err` is a bad argument (cursor, `first`), before any call.
    pub async fn contacts(&self, args: ContactsArgs) -> Result<ContactsPage, String> {
        if args.first > MAX_FIRST {
            return Err(format!("`first` is at most {MAX_FIRST}"));
        }
        let explicit = args.providers.is_some();
        let mut requested = args
            .providers
            .clone()
            .unwrap_or_else(|| ProviderId::ALL.to_vec());
        requested.sort();
        requested.dedup();

        let mut errors = Vec::new();
        let mut walk: Walk = Vec::new();
        for id in &requested {
            let Some(provider) = self.registry.get(*id) else {
                if explicit {
                    errors.push(ProviderError::NotConfigured { provider: *id });
                }
                continue;
            };
            let capabilities = provider.capabilities();
            if !capabilities.has(Capability::List) {
                if explicit {
                    errors.push(provider.unsupported(Capability::List.operation()));
                }
                continue;
            }
            if args.filter.can_match(&capabilities) {
                walk.push(provider);
            }
        }

        let query_fingerprint = fingerprint(&(&requested, &args.filter));
        let start = match &args.after {
            Some(text) => Some(Cursor::decode(text, query_fingerprint, &self.cursor_key)?),
            None => None,
        };
        if args.first == 0 {
            // Nothing is asked of any provider: an empty page that claims nothing about what
            // follows (README "Reading").
            return Ok(ContactsPage {
                edges: Vec::new(),
                has_next_page: false,
                end_cursor: None,
                total_count: None,
                errors,
            });
        }
        let start_offset = |id: ProviderId| match start {
            Some(c) if c.provider == id => c.offset,
            _ => 0,
        };
        let (done, ahead): (Walk, Walk) = walk
            .iter()
            .partition(|p| start.is_some_and(|c| p.id() < c.provider));

        let query = args.filter.to_list_query();
        let needed = args.first + 1;
        // Without a filter, the providers whose known sizes fill the page are asked first,
        // and the others only when they did not (README "Reading": fewer speculative calls).
        let first_wave = if args.filter.is_empty() && !args.want_total {
            self.listing_sizes.enough(&ahead, start_offset, needed)
        } else {
            ahead.len()
        };
        let mut collected = self
            .collect_each(&ahead[..first_wave], &args, &query, start_offset)
            .await;
        let found: usize = collected.iter().flatten().map(|c| c.matches.len()).sum();
        if found < needed && first_wave < ahead.len() {
            // A size was out of date, or a provider failed: the rest of the page comes from
            // the providers after, as if they had been asked at once.
            let rest = &ahead[first_wave..];
            collected.extend(self.collect_each(rest, &args, &query, start_offset).await);
        }
        if args.filter.is_empty() {
            for (provider, result) in ahead.iter().zip(&collected) {
                if let Ok(found) = result {
                    let start = start_offset(provider.id());
                    self.listing_sizes
                        .learn(provider.id(), start, found, needed);
                }
            }
        }

        let mut edges = Vec::with_capacity(args.first);
        let mut has_next_page = false;
        let mut end_cursor = None;
        // Set once nothing more goes on this page; the providers after still report their
        // errors and totals.
        let mut page_ended = false;
        let mut totals: Vec<Option<u64>> = Vec::new();
        for (provider, result) in ahead.iter().zip(collected) {
            let found = match result {
                Ok(found) => found,
                Err(e) => {
                    totals.push(None);
                    errors.push(e);
                    continue;
                }
            };
            totals.push(found.total);
            if page_ended {
                continue;
            }
            for (position, contact) in found.matches {
                if edges.len() == args.first {
                    has_next_page = true;
                    page_ended = true;
                    break;
                }
                let cursor = Cursor {
                    provider: provider.id(),
                    offset: position + 1,
                    query_fingerprint,
                };
                edges.push(Edge {
                    cursor: cursor.encode(&self.cursor_key),
                    contact,
                });
            }
            if let Some(stopped_at) = found.stopped_at.filter(|_| !page_ended) {
                // The scan stopped inside this provider's listing: the page ends here and
                // the next one resumes the scan (the providers after it have to wait).
                has_next_page = true;
                page_ended = true;
                let resume = Cursor {
                    provider: provider.id(),
                    offset: stopped_at,
                    query_fingerprint,
                };
                end_cursor = Some(resume.encode(&self.cursor_key));
            }
        }
        let end_cursor = end_cursor.or_else(|| edges.last().map(|e| e.cursor.clone()));

        let total_count = if args.want_total && args.filter.is_empty() && errors.is_empty() {
            // Providers paged past are not asked for records, only (when wanted) their count.
            let earlier = join_all(
                done.iter()
                    .map(|p| self.window(p.as_ref(), &query, 0, 1, args.use_cache)),
            )
            .await;
            earlier
                .into_iter()
                .map(|r| r.ok().and_then(|window| window.total))
                .chain(totals)
                .sum::<Option<u64>>()
        } else {
            None
        };

        Ok(ContactsPage {
            edges,
            has_next_page,
            end_cursor,
            total_count,
            errors,
        })
    }
}

/// How many contacts each provider's unfiltered listing holds, as last seen: its reported
/// total, where a listing was seen to end, or at least as far as one was read. A page asks
/// only the providers these say it needs; a size out of date costs a second round of calls
/// (the providers after), never a contact: the page checks what it received.
#[derive(Default)]
pub struct ListingSizes(Mutex<BTreeMap<ProviderId, u64>>);

impl ListingSizes {
    /// How many of `walk`'s first providers hold `needed` contacts from where the page
    /// starts in each, as far as known; all of them when that is not known.
    fn enough(&self, walk: &Walk, start: impl Fn(ProviderId) -> u64, needed: usize) -> usize {
        let sizes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut known = 0u64;
        for (i, provider) in walk.iter().enumerate() {
            let size = sizes.get(&provider.id()).copied().unwrap_or(0);
            known += size.saturating_sub(start(provider.id()));
            if known >= needed as u64 {
                return i + 1;
            }
        }
        walk.len()
    }

    /// What one unfiltered collection from `start` asking for `needed` showed.
    fn learn(&self, id: ProviderId, start: u64, found: &Collected, needed: usize) {
        let read = start + found.matches.len() as u64;
        let mut sizes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let size = sizes.entry(id).or_insert(0);
        *size = if found.matches.len() < needed {
            // The listing ended here, whatever total it reported.
            read
        } else {
            // There is at least what was read; the reported total, or what was known.
            found.total.unwrap_or(*size).max(read)
        };
    }
}

impl Gateway {
    /// What `args`' page needs of each of `providers` (from `start` in each), asked at once.
    async fn collect_each(
        &self,
        providers: &[&Arc<dyn Provider>],
        args: &ContactsArgs,
        query: &ListQuery,
        start: impl Fn(ProviderId) -> u64,
    ) -> Vec<Result<Collected, ProviderError>> {
        join_all(providers.iter().map(|p| {
            let needed = args.first + 1;
            self.collect(
                p.as_ref(),
                query,
                &args.filter,
                start(p.id()),
                needed,
                args.use_cache,
            )
            // One span per provider of the fan-out (its upstream calls are its children).
            .instrument(tracing::info_span!("provider", provider = %p.id()))
        }))
        .await
    }

    /// Up to `needed` records of one provider matching `filter`, from `offset` on. With a
    /// filter, at most `max_scan` records are read: past them the scan stops (`stopped_at`).
    pub(crate) async fn collect(
        &self,
        provider: &dyn Provider,
        query: &ListQuery,
        filter: &Filter,
        offset: u64,
        needed: usize,
        use_cache: bool,
    ) -> Result<Collected, ProviderError> {
        // Without a filter every record matches: ask for exactly what the page can use.
        let (limit, max_scan) = if filter.is_empty() {
            (needed as u32, u64::MAX)
        } else {
            (FILTER_WINDOW.max(needed as u32), self.limits.max_scan)
        };
        let limit = limit.min(MAX_WINDOW);
        let mut matches = Vec::new();
        let mut total = None;
        let mut position = offset;
        let mut scanned = 0u64;
        let mut previous_first: Option<String> = None;
        loop {
            // Never ask for more than the scan may still read.
            let limit = u32::try_from(max_scan - scanned).map_or(limit, |left| limit.min(left));
            let window = self
                .window(provider, query, position, limit, use_cache)
                .await?;
            total = total.or(window.total);
            // A provider that ignores the paging parameters would answer the same window
            // forever: stop with an error rather than loop or repeat contacts.
            let first = window.contacts.first().map(|c| c.native_id.clone());
            if first.is_some() && first == previous_first {
                return Err(ProviderError::unavailable(
                    provider.id(),
                    "the listing repeated a page instead of advancing",
                ));
            }
            previous_first = first;
            for (i, contact) in window.contacts.iter().enumerate() {
                if filter.matches(contact) {
                    matches.push((position + i as u64, contact.clone()));
                    if matches.len() == needed {
                        return Ok(Collected {
                            matches,
                            total,
                            stopped_at: None,
                        });
                    }
                }
            }
            let received = window.contacts.len() as u64;
            position += received;
            scanned += received;
            if window.exhausted || received == 0 {
                return Ok(Collected {
                    matches,
                    total,
                    stopped_at: None,
                });
            }
            if scanned >= max_scan {
                return Ok(Collected {
                    matches,
                    total,
                    stopped_at: Some(position),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CacheConfig, ProviderConfig, Secret};
    use crate::providers::http::UpstreamClient;
    use crate::providers::{Capabilities, ListChunk, Registry};
    use std::collections::BTreeMap;

    /// A provider that answers the same first page whatever offset it is asked for.
    struct IgnoresOffsets {
        client: UpstreamClient,
    }

    #[async_trait::async_trait]
    impl Provider for IgnoresOffsets {
        fn client(&self) -> &UpstreamClient {
            &self.client
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                list: true,
                ..Default::default()
            }
        }
        async fn list(
            &self,
            _: &ListQuery,
            _: u64,
            limit: u32,
        ) -> Result<ListChunk, ProviderError> {
            let contacts = (0..limit)
                .map(|i| {
                    Contact::new(
                        ProviderId::Consuelo,
                        format!("c{i}"),
                        serde_json::Value::Null,
                    )
                })
                .collect();
            Ok(ListChunk {
                contacts,
                exhausted: false,
                total: None,
            })
        }
    }

    /// A provider holding `count` contacts; the one at `rare` works for "Rare Widgets".
    struct Numbered {
        client: UpstreamClient,
        count: u64,
        rare: u64,
        asked: std::sync::Mutex<Vec<(u64, u32)>>,
    }

    #[async_trait::async_trait]
    impl Provider for Numbered {
        fn client(&self) -> &UpstreamClient {
            &self.client
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                list: true,
                holds_company: true,
                ..Default::default()
            }
        }
        async fn list(
            &self,
            _: &ListQuery,
            offset: u64,
            limit: u32,
        ) -> Result<ListChunk, ProviderError> {
            self.asked.lock().unwrap().push((offset, limit));
            let end = (offset + u64::from(limit)).min(self.count);
            let contacts = (offset..end)
                .map(|i| {
                    let mut c = Contact::new(
                        ProviderId::Magicblocks,
                        format!("n{i}"),
                        serde_json::Value::Null,
                    );
                    c.company = Some(
                        if i == self.rare {
                            "Rare Widgets"
                        } else {
                            "Common"
                        }
                        .into(),
                    );
                    c
                })
                .collect();
            Ok(ListChunk {
                contacts,
                exhausted: end == self.count,
                total: Some(self.count),
            })
        }
    }

    #[tokio::test]
    async fn a_filtered_scan_stops_at_max_scan_and_resumes_where_it_stopped() {
        let config = ProviderConfig::new("http://127.0.0.1:9", Secret::new("k"));
        let provider = Numbered {
            client: UpstreamClient::new(ProviderId::Magicblocks, &config),
            count: 1_000,
            rare: 700,
            asked: Default::default(),
        };
        let limits = crate::config::LimitsConfig {
            max_scan: 120,
            ..Default::default()
        };
        let gateway = Gateway::new(
            Registry::from_config(&BTreeMap::new()),
            &CacheConfig::default(),
        )
        .with_limits(&limits, super::super::cursor::CursorKey::random());
        let filter = Filter {
            company: Some("rare widgets".into()),
            ..Filter::default()
        };
        let query = filter.to_list_query();
        let mut offset = 0;
        let mut found = Vec::new();
        let mut pages = 0;
        loop {
            provider.asked.lock().unwrap().clear();
            let page = gateway
                .collect(&provider, &query, &filter, offset, 2, false)
                .await
                .unwrap();
            pages += 1;
            let asked = provider.asked.lock().unwrap().clone();
            let read: u64 = asked.iter().map(|(_, limit)| u64::from(*limit)).sum();
            assert!(read <= 120, "page {pages} read {read} records: {asked:?}");
            found.extend(page.matches.iter().map(|(position, _)| *position));
            match page.stopped_at {
                Some(stop) => {
                    assert_eq!(stop, offset + read, "resumes right after what was read");
                    offset = stop;
                }
                None => break,
            }
        }
        assert_eq!(found, [700]);
        assert_eq!(pages, 9, "1,000 records at 120 a page");

        // Without a filter every record matches: no scan bound, only what the page needs.
        provider.asked.lock().unwrap().clear();
        let plain = Filter::default();
        let page = gateway
            .collect(&provider, &plain.to_list_query(), &plain, 0, 21, false)
            .await
            .unwrap();
        assert_eq!((page.matches.len(), page.stopped_at), (21, None));
        assert_eq!(*provider.asked.lock().unwrap(), [(0, 21)]);
    }

    #[tokio::test]
    async fn a_provider_that_repeats_a_page_is_an_error_not_an_endless_loop() {
        let config = ProviderConfig::new("http://127.0.0.1:9", Secret::new("k"));
        let provider = IgnoresOffsets {
            client: UpstreamClient::new(ProviderId::Consuelo, &config),
        };
        let gateway = Gateway::new(
            Registry::from_config(&BTreeMap::new()),
            &CacheConfig::default(),
        );
        // A filter nothing matches makes the gateway keep asking for further windows.
        let filter = Filter {
            search: Some("no such contact".into()),
            ..Filter::default()
        };
        let result = gateway
            .collect(&provider, &filter.to_list_query(), &filter, 0, 5, false)
            .await;
        match result {
            Err(ProviderError::Unavailable { reason, .. }) => assert!(reason.contains("repeated")),
            other => panic!(
                "expected an error, got {:?}",
                other.map(|c| c.matches.len())
            ),
        }
    }
}

//! The opaque `contacts` cursor. `contacts` walks providers in `ProviderId` order, so a
//! position is "this provider, this many records into its listing"; the providers before it
//! are done and the ones after it have not started. A fingerprint of the query binds the
//! cursor to it, and a checksum makes a tampered cursor fail instead of paging wrongly.

use crate::contact::{shown, ProviderId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::hash::{Hash, Hasher};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub provider: ProviderId,
    /// Records of `provider`'s listing already walked past.
    pub offset: u64,
    /// Ties the cursor to the query (providers and filter) it was issued for.
    pub query_fingerprint: u64,
}

const VERSION: &str = "c1";

/// A stable hash (SipHash with fixed keys): the same in every process of the same build.
pub fn fingerprint(value: &impl Hash) -> u64 {
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Cursor {
    pub fn encode(&self) -> String {
        let body = format!(
            "{VERSION}:{}:{}:{:x}",
            self.provider, self.offset, self.query_fingerprint
        );
        let check = fingerprint(&body);
        URL_SAFE_NO_PAD.encode(format!("{body}:{check:x}"))
    }

    /// Reads a cursor issued for the query with `query_fingerprint`.
    pub fn decode(text: &str, query_fingerprint: u64) -> Result<Cursor, String> {
        let invalid = || format!("`{}` is not a cursor issued by this gateway", shown(text));
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (body, check) = decoded.rsplit_once(':').ok_or_else(invalid)?;
        if u64::from_str_radix(check, 16).ok() != Some(fingerprint(&body)) {
            return Err(invalid());
        }
        let parts: Vec<&str> = body.split(':').collect();
        let [VERSION, provider, offset, fp] = parts.as_slice() else {
            return Err(invalid());
        };
        let cursor = Cursor {
            provider: provider.parse().map_err(|_| invalid())?,
            offset: offset.parse().map_err(|_| invalid())?,
            query_fingerprint: u64::from_str_radix(fp, 16).map_err(|_| invalid())?,
        };
        if cursor.query_fingerprint != query_fingerprint {
            return Err(
                "the cursor was issued for other arguments (providers or filter); page with the same ones"
                    .into(),
            );
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering() {
        let c = Cursor {
            provider: ProviderId::Whautomate,
            offset: 42,
            query_fingerprint: 7,
        };
        let text = c.encode();
        assert_eq!(Cursor::decode(&text, 7), Ok(c));
        assert!(Cursor::decode(&text, 8)
            .unwrap_err()
            .contains("other arguments"));
        let forged = URL_SAFE_NO_PAD.encode("c1:whautomate:43:7:0");
        assert!(Cursor::decode(&forged, 7).is_err());
        assert!(Cursor::decode("!!!", 7).is_err());
        assert!(Cursor::decode("", 7).is_err());
    }
}

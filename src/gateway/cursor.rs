//! The opaque `contacts` cursor. `contacts` walks providers in `ProviderId` order, so a
//! position is "this provider, this many records into its listing"; the providers before it
//! are done and the ones after it have not started. A fingerprint of the query binds the
//! cursor to it, and an HMAC-SHA256 tag under the gateway's cursor key makes a forged or
//! tampered cursor fail instead of paging wherever it says.

use crate::contact::{shown, ProviderId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::hash::{Hash, Hasher};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub provider: ProviderId,
    /// Records of `provider`'s listing already walked past.
    pub offset: u64,
    /// Ties the cursor to the query (providers and filter) it was issued for.
    pub query_fingerprint: u64,
}

const VERSION: &str = "c2";

/// A stable hash (SipHash with fixed keys): the same in every process of the same build. It
/// only tells queries apart; the cursor key is what makes a cursor unforgeable.
pub fn fingerprint(value: &impl Hash) -> u64 {
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The key cursors are signed with: `[limits] cursor_secret_env`'s secret, or random per
/// process. Replicas behind one load balancer must share it. `Debug` prints no key.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

impl CursorKey {
    /// The key from a configured secret.
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes a key of any length.
        CursorKey(Hmac::new_from_slice(secret).expect("HMAC accepts any key length"))
    }

    /// A key of 32 random bytes, for a gateway configured without a secret.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system provides random bytes");
        CursorKey::new(&secret)
    }

    fn tag(&self, body: &str) -> Vec<u8> {
        let mut mac = self.0.clone();
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is this key's tag of `body` (compared in constant time).
    fn verify(&self, body: &str, tag: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

impl Cursor {
    pub fn encode(&self, key: &CursorKey) -> String {
        let body = format!(
            "{VERSION}:{}:{}:{:x}",
            self.provider, self.offset, self.query_fingerprint
        );
        let tag = URL_SAFE_NO_PAD.encode(key.tag(&body));
        URL_SAFE_NO_PAD.encode(format!("{body}:{tag}"))
    }

    /// Reads a cursor signed with `key` and issued for the query with `query_fingerprint`.
    pub fn decode(text: &str, query_fingerprint: u64, key: &CursorKey) -> Result<Cursor, String> {
        let invalid = || format!("`{}` is not a cursor issued by this gateway", shown(text));
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (body, tag) = decoded.rsplit_once(':').ok_or_else(invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        if !key.verify(body, &tag) {
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

    fn cursor() -> Cursor {
        Cursor {
            provider: ProviderId::Whautomate,
            offset: 42,
            query_fingerprint: 7,
        }
    }

    #[test]
    fn round_trips_and_is_bound_to_its_query() {
        let key = CursorKey::new(b"a secret for the tests");
        let text = cursor().encode(&key);
        assert_eq!(Cursor::decode(&text, 7, &key), Ok(cursor()));
        assert!(Cursor::decode(&text, 8, &key)
            .unwrap_err()
            .contains("other arguments"));
    }

    #[test]
    fn an_edited_cursor_is_refused() {
        let key = CursorKey::new(b"a secret for the tests");
        let text = cursor().encode(&key);
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(&text).unwrap()).unwrap();
        // Same tag, another offset or provider.
        for edited in [
            decoded.replace(":42:", ":43:"),
            decoded.replace("whautomate", "consuelo"),
        ] {
            assert_ne!(edited, decoded);
            let forged = URL_SAFE_NO_PAD.encode(edited);
            assert!(Cursor::decode(&forged, 7, &key).is_err(), "{forged}");
        }
        // Re-signed with the old keyless checksum scheme, or with no tag at all.
        for forged in [
            "c1:whautomate:43:7:0",
            "c2:whautomate:43:7:",
            "c2:whautomate:43:7",
        ] {
            assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(forged), 7, &key).is_err());
        }
        assert!(Cursor::decode("!!!", 7, &key).is_err());
        assert!(Cursor::decode("", 7, &key).is_err());
    }

    #[test]
    fn a_cursor_from_another_key_is_refused_and_one_key_is_shared_by_replicas() {
        let ours = CursorKey::new(b"the secret of this deployment");
        let replica = CursorKey::new(b"the secret of this deployment");
        let theirs = CursorKey::new(b"another deployment's secret");
        let text = cursor().encode(&ours);
        assert_eq!(Cursor::decode(&text, 7, &replica), Ok(cursor()));
        assert!(Cursor::decode(&text, 7, &theirs).is_err());
        assert!(Cursor::decode(&text, 7, &CursorKey::random()).is_err());
        assert_eq!(format!("{ours:?}"), "CursorKey(***)");
    }
}

//! Keeps a provider's key out of everything read from its answers. An upstream that echoes
//! the request may put the key anywhere: plain, JSON-escaped (`\u0073…`, `\/`),
//! percent-encoded (`%73…`), or cut. Every run of 10 or more of the key's characters in a row,
//! in any of those forms, becomes `***`; so does the whole key when it is shorter than that.

use aho_corasick::AhoCorasick;
use serde_json::Value;
use std::borrow::Cow;
use std::ops::Range;

/// The shortest fragment of a key that is redacted (the contract: no response holds a
/// 10-character fragment of a key).
pub const FRAGMENT: usize = 10;

/// What a redacted run becomes.
const MASK: &str = "***";

/// Finds a key and its fragments. Built once per upstream client.
pub struct Redactor {
    /// Every `FRAGMENT`-byte window of the key (the whole key when shorter); `None` for an
    /// empty key.
    windows: Option<AhoCorasick>,
}

impl Redactor {
    pub fn new(key: &str) -> Self {
        let key = key.as_bytes();
        let windows: Vec<&[u8]> = if key.len() <= FRAGMENT {
            vec![key]
        } else {
            key.windows(FRAGMENT).collect()
        };
        let windows = (!key.is_empty())
            .then(|| AhoCorasick::new(windows).ok())
            .flatten();
        Redactor { windows }
    }

    /// Whether `bytes` may hold the key or a fragment of it in any form: the cheap test a
    /// whole answer gets before its strings are walked. Never false when a string decoded
    /// from `bytes` (as JSON) holds one.
    pub fn may_hold(&self, bytes: &[u8]) -> bool {
        let Some(windows) = &self.windows else {
            return false;
        };
        if has_escapes(bytes) {
            windows.is_match(&decoded(bytes, false).0)
        } else {
            windows.is_match(bytes)
        }
    }

    /// `text` with every run of the key's characters replaced by `***`; borrowed when there
    /// was none.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(windows) = &self.windows else {
            return Cow::Borrowed(text);
        };
        let runs: Vec<Range<usize>> = if has_escapes(text.as_bytes()) {
            let (view, origins) = decoded(text.as_bytes(), true);
            merged(
                merged(matches(windows, &view))
                    .into_iter()
                    .map(|r| origins[r.start].start..origins[r.end - 1].end),
            )
        } else {
            merged(matches(windows, text.as_bytes()))
        };
        if runs.is_empty() {
            return Cow::Borrowed(text);
        }
        // Runs are made of ASCII bytes (the key's, or the escapes that spell them), so their
        // ends are character boundaries.
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for run in runs {
            out.push_str(&text[at..run.start]);
            out.push_str(MASK);
            at = run.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Redacts every string of `value` in place, object keys included.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(redacted) = self.text(s) {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                if map.keys().any(|k| matches!(self.text(k), Cow::Owned(_))) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (self.text(&k).into_owned(), v))
                        .collect();
                }
                map.values_mut().for_each(|v| self.value(v));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fn has_escapes(bytes: &[u8]) -> bool {
    memchr::memchr2(b'%', b'\\', bytes).is_some()
}

/// Every place a window matches, overlapping ones included, in order.
fn matches(windows: &AhoCorasick, haystack: &[u8]) -> Vec<Range<usize>> {
    windows
        .find_overlapping_iter(haystack)
        .map(|m| m.range())
        .collect()
}

/// Ranges in order of their start, overlapping or touching ones joined.
fn merged(ranges: impl IntoIterator<Item = Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `bytes` with `%XX`, `\uXXXX` (below 0x80), `\/`, `\\` and `\"` decoded, and (when `track`)
/// for each decoded byte the range of `bytes` it came from. A decoded byte that completes
/// another escape is decoded again (`%255C` → `%5C` → `\`), so layered encodings are seen
/// through. Away from escapes, bytes are copied in runs.
fn decoded(bytes: &[u8], track: bool) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut origins: Vec<Range<usize>> = Vec::with_capacity(if track { bytes.len() } else { 0 });
    let mut i = 0;
    while i < bytes.len() {
        if !escape_may_end_with(&out) {
            // No escape is open: nothing up to the next `%` or `\` can complete one.
            let end = memchr::memchr2(b'%', b'\\', &bytes[i..]).map_or(bytes.len(), |k| i + k);
            out.extend_from_slice(&bytes[i..end]);
            if track {
                origins.extend((i..end).map(|j| j..j + 1));
            }
            i = end;
            if i == bytes.len() {
                break;
            }
        }
        out.push(bytes[i]);
        if track {
            origins.push(i..i + 1);
        }
        while let Some((len, byte)) = escape_at_end(&out) {
            out.truncate(out.len() - len);
            out.push(byte);
            if track {
                let start = origins[origins.len() - len].start;
                origins.truncate(origins.len() - len);
                origins.push(start..i + 1);
            }
        }
        i += 1;
    }
    (out, origins)
}

/// Whether `out` may end inside an escape: a `%` or `\` among its last 5 bytes (an escape is
/// at most 6 long).
fn escape_may_end_with(out: &[u8]) -> bool {
    out[out.len().saturating_sub(5)..]
        .iter()
        .any(|b| matches!(b, b'%' | b'\\'))
}

/// The escape `out` ends with, as (its length, the byte it stands for).
fn escape_at_end(out: &[u8]) -> Option<(usize, u8)> {
    let n = out.len();
    let hex = |s: &[u8]| -> Option<u32> {
        s.iter()
            .try_fold(0u32, |acc, &c| Some(acc * 16 + char::from(c).to_digit(16)?))
    };
    if n >= 3 && out[n - 3] == b'%' {
        if let Some(v) = hex(&out[n - 2..]) {
            return Some((3, v as u8));
        }
    }
    if n >= 6 && out[n - 6] == b'\\' && out[n - 5] == b'u' {
        if let Some(v) = hex(&out[n - 4..]).filter(|v| *v < 0x80) {
            return Some((6, v as u8));
        }
    }
    if n >= 2 && out[n - 2] == b'\\' && matches!(out[n - 1], b'/' | b'\\' | b'"') {
        return Some((2, out[n - 1]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "sk_live/4f9a+Zq81=xY";

    fn percent(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    fn json_escaped(s: &str) -> String {
        s.bytes().map(|b| format!("\\u{:04x}", b)).collect()
    }

    #[test]
    fn the_key_is_redacted_in_every_form() {
        let r = Redactor::new(KEY);
        assert_eq!(r.text(&format!("key {KEY} echoed")), "key *** echoed");
        assert_eq!(r.text(&format!("a{}b", percent(KEY))), "a***b");
        assert_eq!(
            r.text(&format!("q={}&x", url_encoded(KEY))),
            "q=***&x",
            "form-encoded: only / + = escaped"
        );
        assert_eq!(r.text(&format!("<{}>", json_escaped(KEY))), "<***>");
        assert_eq!(r.text(r"sk_live\/4f9a+Zq81=xY!"), "***!", "JSON's \\/");
        // Layered: a percent-encoded `%` (`%25`), a JSON-escaped percent-encoding.
        assert_eq!(
            r.text(&KEY.replace('/', "%252F")),
            "***",
            "percent-encoded twice"
        );
        assert_eq!(r.text(&json_escaped(&percent(KEY))), "***");
        // Lower-case hex too.
        assert_eq!(r.text(&percent(KEY).to_lowercase()), "***");
    }

    fn url_encoded(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn fragments_of_ten_or_more_are_redacted_shorter_ones_kept() {
        let r = Redactor::new(KEY);
        assert_eq!(r.text(&format!("cut: {}", &KEY[..13])), "cut: ***");
        assert_eq!(r.text(&format!("{}…", &KEY[7..17])), "***…");
        assert_eq!(r.text(&KEY[..9]), &KEY[..9], "9 characters are no fragment");
        assert_eq!(
            r.text(&format!("{} and {}", &KEY[..12], &KEY[5..])),
            "*** and ***"
        );
        assert_eq!(
            r.text("ordinary text, 100% fine \\n"),
            "ordinary text, 100% fine \\n"
        );
    }

    #[test]
    fn a_short_key_is_redacted_whole() {
        let r = Redactor::new("abc123");
        assert_eq!(r.text("x abc123 abc12"), "x *** abc12");
        assert!(!Redactor::new("").may_hold(b"anything"));
    }

    #[test]
    fn every_string_of_a_json_value_is_redacted_keys_included() {
        let r = Redactor::new(KEY);
        let mut v = json!({
            "name": format!("Ada {KEY}"),
            "tags": ["vip", percent(KEY)],
            "custom": { KEY: "value", "n": 1, "deep": [{ "x": &KEY[2..14] }] },
            "ok": "untouched"
        });
        r.value(&mut v);
        assert_eq!(
            v,
            json!({
                "name": "Ada ***",
                "tags": ["vip", "***"],
                "custom": { "***": "value", "n": 1, "deep": [{ "x": "***" }] },
                "ok": "untouched"
            })
        );
    }

    #[test]
    fn the_cheap_test_sees_every_form_in_the_raw_answer() {
        let r = Redactor::new(KEY);
        assert!(!r.may_hold(br#"{"name":"Ada","url":"a%20b","q":"\"x\""}"#));
        for body in [
            format!(r#"{{"n":"{KEY}"}}"#),
            format!(r#"{{"n":"{}"}}"#, json_escaped(KEY)),
            format!(r#"{{"n":"{}"}}"#, percent(KEY)),
            format!(r#"{{"n":"{}"}}"#, KEY.replace('/', "\\/")),
            // A JSON-escaped backslash before an escape: the string holds `\u0073…`.
            format!(r#"{{"n":"{}"}}"#, json_escaped(KEY).replace('\\', "\\\\")),
            format!(r#"{{"n":"{}"}}"#, &KEY[3..14]),
        ] {
            assert!(r.may_hold(body.as_bytes()), "{body}");
            let mut v: Value = serde_json::from_str(&body).unwrap();
            r.value(&mut v);
            assert_eq!(v["n"], "***", "{body}");
        }
    }

    #[test]
    fn copying_runs_decodes_as_byte_by_byte_would() {
        let by_byte = |bytes: &[u8]| {
            let mut out = Vec::new();
            for &b in bytes {
                out.push(b);
                while let Some((len, byte)) = escape_at_end(&out) {
                    out.truncate(out.len() - len);
                    out.push(byte);
                }
            }
            out
        };
        for text in [
            r"plain",
            r"a%2Fb%2fc%zz%4",
            r"\u0073\u00\/\\\\\u0025%\u0032F",
            r"%%%25%32%46x\\u0073",
            r"%255C%75%30%30%37%33 é %C3%A9",
        ] {
            let (out, origins) = decoded(text.as_bytes(), true);
            assert_eq!(out, by_byte(text.as_bytes()), "{text}");
            assert_eq!(out.len(), origins.len(), "{text}");
            assert_eq!(decoded(text.as_bytes(), false).0, out, "{text}");
        }
    }

    #[test]
    fn non_ascii_text_around_a_key_survives() {
        let r = Redactor::new(KEY);
        assert_eq!(r.text(&format!("é{KEY}ü")), "é***ü");
        assert_eq!(r.text(&format!("%C3%A9{}", percent(KEY))), "%C3%A9***");
    }
}

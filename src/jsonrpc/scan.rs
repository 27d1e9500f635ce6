//! A strict JSON scanner: it validates values and finds their ends without
//! building anything, so members can be handed out as borrowed slices.
//!
//! Grammar: RFC 8259. The input is checked to be UTF-8 once, up front, by the
//! caller. Nesting is limited to [`MAX_DEPTH`] (as serde_json does).

use std::borrow::Cow;

/// Deepest nesting of arrays and objects accepted. Default: 128.
pub const MAX_DEPTH: usize = 128;

/// A JSON value borrowed from the input, already validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(pub(crate) &'a str);

impl std::fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawJson({})", self.0)
    }
}

impl<'a> RawJson<'a> {
    /// The value's JSON text, exactly as received.
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// Whether the value is a JSON string.
    #[cfg(feature = "fuzzing")]
    pub fn is_string(&self) -> bool {
        self.0.starts_with('"')
    }

    /// Whether the value is a JSON object.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// Whether the value is a JSON array.
    pub fn is_array(&self) -> bool {
        self.0.starts_with('[')
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.0 == "null"
    }

    /// The decoded string, borrowed unless it holds escapes; `None` if not a string.
    #[inline]
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        // Names and methods are short: eight bytes at a time with integer
        // operations costs less than `memchr`'s set-up for them.
        let escaped = if inner.len() < 64 {
            has_backslash(inner.as_bytes())
        } else {
            inner.contains('\\')
        };
        if !escaped {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// The decoded string, a lone surrogate escape (`\uD800`: valid JSON
    /// grammar, no Unicode text) read as U+FFFD; `None` if not a string.
    /// For names the server only compares with its own (member names,
    /// methods): such a name is an unknown one, not a broken message, as a
    /// string value with one is echoed rather than refused.
    pub fn as_str_lossy(&self) -> Option<Cow<'a, str>> {
        self.as_str().or_else(|| lossy_string(self.0))
    }

    /// An owned copy as serde_json's `RawValue`.
    pub fn to_raw_value(self) -> Box<serde_json::value::RawValue> {
        // The text was validated by the scanner, so this cannot fail; fall back to null.
        serde_json::value::RawValue::from_string(self.0.to_owned()).unwrap_or_else(|_| {
            serde_json::value::RawValue::from_string("null".to_owned()).unwrap_or_default()
        })
    }
}

/// A quoted JSON string with every surrogate escape (`\uD800`-`\uDFFF`,
/// paired or not) replaced by `\uFFFD`, decoded.
fn lossy_string(quoted: &str) -> Option<Cow<'static, str>> {
    let mut text = quoted.as_bytes().to_vec();
    let mut i = 0;
    while i + 6 <= text.len() {
        if text[i] != b'\\' {
            i += 1;
            continue;
        }
        let surrogate = text[i + 1] == b'u'
            && std::str::from_utf8(&text[i + 2..i + 6])
                .ok()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
                .is_some_and(|c| (0xD800..=0xDFFF).contains(&c));
        if surrogate {
            text[i + 2..i + 6].copy_from_slice(b"FFFD");
        }
        // Past the escaped character either way.
        i += 2;
    }
    serde_json::from_slice::<String>(&text).ok().map(Cow::Owned)
}

/// Where and why JSON text is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset of the problem.
    pub at: usize,
    /// What was expected or wrong.
    pub what: &'static str,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Bytes that end the plain run of a string: quote, backslash, control characters.
/// How many bytes of a string [`Scanner::string`] reads a word at a time
/// before it turns to a vectorized search.
const SHORT_STRING: usize = 64;

/// Ones in every byte of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);

/// The high bit of every byte.
const HIGH: u64 = ONES << 7;

/// Flags (its high bit) the zero bytes of `x`: the lowest one always, those
/// above it possibly wrongly (borrows). Nonzero exactly when `x` has a zero
/// byte.
#[inline(always)]
fn zero_in(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Whether `bytes` holds a backslash: eight bytes at a time, then the rest.
fn has_backslash(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let found = words.by_ref().any(|word| {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or([0; 8]));
        zero_in(word ^ (ONES * u64::from(b'\\'))) != 0
    });
    found || words.remainder().contains(&b'\\')
}

/// Flags (its high bit) every byte of `word` (little-endian) that is a
/// quote, a backslash or a control character; bytes above the first flagged
/// one may be flagged wrongly (borrows), the first one never is.
pub(crate) fn special_bytes(word: u64) -> u64 {
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// A cursor over JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    /// Consumes `lit` if the text continues with it, returning the consumed text.
    #[inline]
    pub(crate) fn take_literal(&mut self, lit: &str) -> Option<&'a str> {
        let rest = &self.text[self.pos..];
        if rest.starts_with(lit) {
            let taken = &rest[..lit.len()];
            self.pos += lit.len();
            Some(taken)
        } else {
            None
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub(crate) fn err<T>(&self, what: &'static str) -> Result<T, ScanError> {
        Err(ScanError { at: self.pos, what })
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    /// Consumes `b` after optional whitespace, or fails with `what`.
    #[inline]
    pub(crate) fn expect(&mut self, b: u8, what: &'static str) -> Result<(), ScanError> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// Skips one value (after whitespace) and returns it.
    #[inline]
    pub(crate) fn value(&mut self, depth: usize) -> Result<RawJson<'a>, ScanError> {
        self.ws();
        let start = self.pos;
        match self.peek() {
            None => return self.err("expected a value, found the end"),
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => self.object(depth + 1, |_, _| {})?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return self.err("expected a value"),
        }
        Ok(RawJson(&self.text[start..self.pos]))
    }

    /// Scans an object, reporting each member's key (decoded) and value.
    pub(crate) fn object(
        &mut self,
        depth: usize,
        member: impl FnMut(Cow<'a, str>, RawJson<'a>),
    ) -> Result<(), ScanError> {
        self.object_nesting(depth, member, "", |_, _| {})
    }

    /// [`Scanner::object`], whose member named `inner` (when not empty),
    /// if its value is an object, has its own members reported to `nested`
    /// in the same pass: what dispatch reads of `params._meta` without
    /// scanning it twice. (Inlined, so that [`Scanner::object`] keeps no
    /// trace of the nesting.)
    #[inline(always)]
    pub(crate) fn object_nesting(
        &mut self,
        depth: usize,
        mut member: impl FnMut(Cow<'a, str>, RawJson<'a>),
        inner: &str,
        mut nested: impl FnMut(Cow<'a, str>, RawJson<'a>),
    ) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.expect(b'{', "expected '{'")?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a member name");
            }
            let key = self.key()?;
            self.expect(b':', "expected ':'")?;
            let value = if !inner.is_empty() && *key == *inner && {
                self.ws();
                self.peek() == Some(b'{')
            } {
                let start = self.pos;
                // Through `dyn`: one instance whatever `nested` is.
                let nested: &mut dyn FnMut(Cow<'a, str>, RawJson<'a>) = &mut nested;
                self.object(depth + 1, nested)?;
                RawJson(&self.text[start..self.pos])
            } else {
                self.value(depth)?
            };
            member(key, value);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    /// Scans an object's members up to the first whose name `stop`
    /// accepts and returns that name, the cursor on its value (unscanned);
    /// `None` when the object ends first. For reading one member of a large
    /// object without scanning what follows it. (Its loop repeats
    /// [`Scanner::object`]'s on purpose: sharing one frame through a
    /// closure cost every message's scan about 1,800 instructions.)
    pub(crate) fn find_member(
        &mut self,
        stop: impl Fn(&str) -> bool,
    ) -> Result<Option<Cow<'a, str>>, ScanError> {
        self.ws();
        self.expect(b'{', "expected '{'")?;
        self.ws();
        if self.peek() == Some(b'}') {
            return Ok(None);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a member name");
            }
            let key = self.key()?;
            self.expect(b':', "expected ':'")?;
            if stop(&key) {
                return Ok(Some(key));
            }
            self.value(1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => return Ok(None),
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    pub(crate) fn array(&mut self, depth: usize) -> Result<(), ScanError> {
        self.array_with(depth, |_| Ok(()))
    }

    /// Scans an array at `pos` (on its bracket), reporting each element;
    /// an error from `element` ends the scan there.
    pub(crate) fn array_with(
        &mut self,
        depth: usize,
        mut element: impl FnMut(RawJson<'a>) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self.value(depth)?)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }

    #[inline]
    pub(crate) fn key(&mut self) -> Result<Cow<'a, str>, ScanError> {
        let start = self.pos;
        let escaped = self.string()?;
        let raw = RawJson(&self.text[start..self.pos]);
        if !escaped {
            return Ok(Cow::Borrowed(&self.text[start + 1..self.pos - 1]));
        }
        // A name with a lone surrogate can be no member we know: it is read
        // with U+FFFD in place (see `RawJson::as_str_lossy`).
        raw.as_str_lossy().ok_or(ScanError {
            at: start,
            what: "invalid member name",
        })
    }

    /// Skips a string at `pos` (on its quote); returns whether it held escapes.
    ///
    /// Inlined where it is called: a short plain string (most member
    /// names and values) ends here, and the rest is a call of its own.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, ScanError> {
        let b = self.bytes();
        let mut i = self.pos + 1;
        // Strings of up to some tens of bytes (member names, methods, ids,
        // `_meta` keys) end within a few words: eight bytes at a time with
        // plain integer operations beats setting up a vectorized search.
        let word_end = b.len().min(i + SHORT_STRING);
        while let Some(word) = b.get(i..i + 8).filter(|_| i + 8 <= word_end) {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or([b'"'; 8]));
            let special = special_bytes(word);
            if special == 0 {
                i += 8;
                continue;
            }
            // The lowest flag marks the first special byte exactly.
            i += (special.trailing_zeros() / 8) as usize;
            break;
        }
        if b.get(i) == Some(&b'"') {
            self.pos = i + 1;
            return Ok(false);
        }
        self.string_rest(i)
    }

    /// [`Scanner::string`] from `i`, past its plain short start: a longer
    /// string, a control character or an escape.
    #[inline(never)]
    fn string_rest(&mut self, mut i: usize) -> Result<bool, ScanError> {
        let b = self.bytes();
        let mut escaped = false;
        if let Some(&c) = b.get(i) {
            if c < 0x20 {
                self.pos = i;
                return self.err("control character in string");
            }
        }
        loop {
            // The next quote or backslash, found with memchr's vectorized search;
            // the bytes before it are then checked for control characters in a
            // branch-free pass that also vectorizes.
            let rest = &b[i..];
            let stop = memchr::memchr2(b'"', b'\\', rest);
            let plain = &rest[..stop.unwrap_or(rest.len())];
            if plain.iter().fold(false, |any, &c| any | (c < 0x20)) {
                let at = plain.iter().position(|&c| c < 0x20).unwrap_or(0);
                self.pos = i + at;
                return self.err("control character in string");
            }
            let Some(stop) = stop else {
                self.pos = b.len();
                return self.err("unterminated string");
            };
            i += stop;
            if b[i] == b'"' {
                self.pos = i + 1;
                return Ok(escaped);
            }
            escaped = true;
            match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = b.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        self.pos = i;
                        return self.err("invalid \\u escape");
                    }
                    i += 6;
                }
                _ => {
                    self.pos = i;
                    return self.err("invalid escape");
                }
            }
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ScanError> {
        if self.bytes()[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        let exponent = self.number_grammar()?;
        // Like serde_json (and unlike a bare grammar check), refuse numbers
        // that overflow a double: no peer could read them back. Only long
        // numbers or ones with an exponent can.
        if exponent || self.pos - start > 15 {
            let finite = self.text[start..self.pos]
                .parse::<f64>()
                .is_ok_and(f64::is_finite);
            if !finite {
                self.pos = start;
                return self.err("number out of range");
            }
        }
        Ok(())
    }

    /// Scans a number's grammar; returns whether it had an exponent.
    fn number_grammar(&mut self) -> Result<bool, ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
            return Ok(true);
        }
        Ok(false)
    }
}

/// Validates a whole JSON text (one value, surrounded by optional whitespace).
pub fn validate(text: &str) -> Result<RawJson<'_>, ScanError> {
    let mut s = Scanner::new(text);
    let v = s.value(0)?;
    s.ws();
    if !s.at_end() {
        return s.err("trailing characters after the value");
    }
    Ok(v)
}

/// Calls `member` for each member of a JSON object already validated (or fails).
pub fn each_member<'a>(
    object: RawJson<'a>,
    member: impl FnMut(Cow<'a, str>, RawJson<'a>),
) -> Result<(), ScanError> {
    Scanner::new(object.get()).object(1, member)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_backslash_is_found_at_every_offset() {
        for len in 0..40 {
            assert!(!has_backslash("a".repeat(len).as_bytes()));
            for at in 0..len {
                let mut text = "é".repeat(len).into_bytes();
                text[at] = b'\\';
                assert!(has_backslash(&text), "{len} {at}");
            }
        }
    }

    #[test]
    fn strings_end_and_fail_where_serde_json_says_at_every_offset() {
        // Each special byte at every offset of strings up to past the
        // word-at-a-time prefix, after plain ASCII and after UTF-8.
        let specials: [&str; 7] = ["\"", "\\n", "\\u00e9", "\u{1}", "\u{1f}", "\\x", "\\u12"];
        for fill in ["a", "é", "\u{7f}", " "] {
            for len in 0..80 {
                for special in specials {
                    let body = fill.repeat(len);
                    let text = format!("\"{body}{special}tail\" ");
                    let ours = {
                        let mut scanner = Scanner::new(&text);
                        scanner.string().map(|_| scanner.pos)
                    };
                    let theirs = serde_json::from_str::<serde_json::Value>(text.trim_end());
                    match (&ours, &theirs) {
                        (Ok(end), Ok(_)) => assert_eq!(*end, text.trim_end().len(), "{text:?}"),
                        // A quote inside ends the string early: serde_json
                        // sees trailing text, we see the string's end.
                        (Ok(end), Err(_)) if special == "\"" => {
                            assert_eq!(*end, 1 + body.len() + 1, "{text:?}")
                        }
                        (Err(_), Err(_)) => {}
                        _ => panic!("{text:?}: ours {ours:?}, serde_json {theirs:?}"),
                    }
                }
            }
        }
    }

    use super::*;

    #[test]
    fn accepts_what_serde_json_accepts() {
        let good = [
            "0",
            "-0",
            "1.5e10",
            "-2E-3",
            "1e+2",
            "true",
            "false",
            "null",
            "\"\"",
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
            "\"caf\u{e9} \u{1F600}\"",
            "[]",
            "[1,[2,[3]]]",
            r#"{"a":{"b":[{"c":null}]},"d":"e"}"#,
            " \n\t{ \"k\" : [ ] } \r\n",
            "\"0123456789abcdef0123456789abcdef\"",
        ];
        for text in good {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text}"
            );
            assert_eq!(validate(text).map(|v| v.get()), Ok(text.trim()), "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let bad = [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "0x1",
            "NaN",
            "tru",
            "nul",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12G4\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "[",
            "{",
            "1 2",
            "{} x",
            "'a'",
            "\"0123456789abcdef\u{1}0123456789abcdef\"",
            "1e333",
            "-1e400",
        ];
        for text in bad {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text}"
            );
            assert!(validate(text).is_err(), "{text}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(validate(&deep).unwrap_err().what, "nesting too deep");
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(validate(&ok).is_ok());
    }

    #[test]
    fn members_and_strings() {
        let v = validate(r#"{"a":1,"b\u0063":"x\ny","c":{"d":[]}}"#).unwrap();
        let mut seen = Vec::new();
        each_member(v, |k, v| seen.push((k.into_owned(), v.get().to_owned()))).unwrap();
        assert_eq!(
            seen,
            [
                ("a".into(), "1".into()),
                ("bc".into(), r#""x\ny""#.into()),
                ("c".into(), r#"{"d":[]}"#.into())
            ]
        );
        let s = validate(r#""plain""#).unwrap().as_str().unwrap();
        assert!(matches!(s, Cow::Borrowed("plain")));
        assert_eq!(validate(r#""a\u0041""#).unwrap().as_str().unwrap(), "aA");
        assert_eq!(validate("12").unwrap().as_str(), None);
    }
}

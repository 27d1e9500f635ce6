//! Incremental decoder for chunked request bodies (RFC 9112 section 7.1).
//!
//! The decoder is a byte-level state machine: feed it whatever arrived, it
//! appends the body bytes to an output buffer and says when the message ends.
//! It is strict where lenient parsers have been used for request smuggling:
//! chunk sizes are hex digits only (no sign, no `0x`, no overflow), every line
//! ends with CRLF (no bare LF), whitespace is allowed only before a `;`, and
//! extensions and trailers are bounded. Trailer fields are checked and
//! dropped: they are never merged into the head.

/// Most bytes of chunk extensions in one body. Default: 16 KiB.
pub const MAX_EXTENSION_BYTES: usize = 16 * 1024;

/// Most bytes of trailer section in one body. Default: 16 KiB.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk size is missing or holds a byte that is not a hex digit.
    BadSize,
    /// A chunk size does not fit in 64 bits.
    SizeOverflow,
    /// A line inside the body does not end with CRLF.
    BadLineEnding,
    /// A chunk extension holds a forbidden byte.
    BadExtension,
    /// The chunk extensions of this body exceed [`MAX_EXTENSION_BYTES`].
    ExtensionsTooLarge,
    /// A trailer field is malformed.
    BadTrailer,
    /// The trailer section exceeds [`MAX_TRAILER_BYTES`].
    TrailersTooLarge,
    /// The decoded body exceeds the configured body limit.
    TooLarge,
}

impl ChunkedError {
    /// The status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            ChunkedError::TooLarge => 413,
            _ => 400,
        }
    }

    /// A short message for the response body.
    pub fn message(self) -> &'static str {
        match self {
            ChunkedError::BadSize => "invalid chunk size",
            ChunkedError::SizeOverflow => "chunk size too large",
            ChunkedError::BadLineEnding => "chunked body lines must end with CRLF",
            ChunkedError::BadExtension => "invalid chunk extension",
            ChunkedError::ExtensionsTooLarge => "chunk extensions too large",
            ChunkedError::BadTrailer => "invalid trailer field",
            ChunkedError::TrailersTooLarge => "trailer section too large",
            ChunkedError::TooLarge => "request body too large",
        }
    }
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size; `digits` counts them.
    Size { digits: u8 },
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeSpace,
    /// After a `;`: optional whitespace, then an extension name (RFC 9112
    /// 7.1.1: `BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ]`).
    ExtStart,
    /// In an extension name (a token).
    ExtName,
    /// Whitespace after a name: `=`, `;` or the end of the line may follow.
    ExtAfterName,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtValueStart,
    /// In a token value.
    ExtToken,
    /// In a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After a value: whitespace, `;` or the end of the line.
    ExtAfterValue,
    /// Saw the CR ending a size line.
    SizeLf,
    /// Copying chunk data; `self.remaining` bytes left.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Saw the CR ending a trailer field.
    TrailerLf,
    /// Saw the CR of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// A chunked body decoder. One per body; [`ChunkedDecoder::reset`] reuses it.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    remaining: u64,
    decoded: u64,
    max_body: u64,
    extension_bytes: usize,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies longer than `max_body` decoded bytes.
    pub fn new(max_body: u64) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            remaining: 0,
            decoded: 0,
            max_body,
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Starts a new body with the same limit.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn reset(&mut self) {
        *self = ChunkedDecoder::new(self.max_body);
    }

    /// Whether the last chunk and trailers have been read.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending body bytes to `out`.
    ///
    /// Returns `Ok(None)` when all of `input` was consumed and the body is not
    /// finished (call again with the next bytes), and `Ok(Some(n))` when the
    /// body ended after `n` bytes of `input` (the rest belongs to the next
    /// request).
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                i += self.copy_data(&input[i..], out);
                continue;
            }
            if self.state == State::Done {
                return Ok(Some(i));
            }
            self.step(input[i])?;
            i += 1;
        }
        if self.state == State::Done {
            Ok(Some(i))
        } else {
            Ok(None)
        }
    }

    fn copy_data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let take = (self.remaining.min(input.len() as u64)) as usize;
        out.extend_from_slice(&input[..take]);
        self.remaining -= take as u64;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        take
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { digits } => self.size_byte(digits, b)?,
            State::SizeSpace => match b {
                b' ' | b'\t' => State::SizeSpace,
                b';' => self.extension_byte(State::ExtStart)?,
                _ => return Err(ChunkedError::BadSize),
            },
            State::ExtStart
            | State::ExtName
            | State::ExtAfterName
            | State::ExtValueStart
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtQuotedPair
            | State::ExtAfterValue => self.extension_step(b)?,
            State::SizeLf => match b {
                b'\n' => self.end_size_line()?,
                _ => return Err(ChunkedError::BadLineEnding),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkedError::BadLineEnding),
            },
            State::DataLf => match b {
                b'\n' => State::Size { digits: 0 },
                _ => return Err(ChunkedError::BadLineEnding),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                _ if is_token(b) => self.trailer_byte(State::TrailerName)?,
                // A line starting with whitespace would be obs-fold.
                _ => return Err(ChunkedError::BadTrailer),
            },
            State::TrailerName => match b {
                b':' => self.trailer_byte(State::TrailerValue)?,
                _ if is_token(b) => self.trailer_byte(State::TrailerName)?,
                _ => return Err(ChunkedError::BadTrailer),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer_byte(State::TrailerLf)?,
                b'\t' | b' '..=b'~' | 0x80..=0xff => self.trailer_byte(State::TrailerValue)?,
                _ => return Err(ChunkedError::BadTrailer),
            },
            State::TrailerLf => match b {
                b'\n' => self.trailer_byte(State::TrailerStart)?,
                _ => return Err(ChunkedError::BadLineEnding),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkedError::BadLineEnding),
            },
            State::Data | State::Done => unreachable!("handled by decode"),
        };
        Ok(())
    }

    fn size_byte(&mut self, digits: u8, b: u8) -> Result<State, ChunkedError> {
        let value = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ if digits == 0 => return Err(ChunkedError::BadSize),
            b'\r' => return Ok(State::SizeLf),
            b';' => return self.extension_byte(State::ExtStart),
            b' ' | b'\t' => return Ok(State::SizeSpace),
            _ => return Err(ChunkedError::BadSize),
        };
        if self.size >> 60 != 0 {
            return Err(ChunkedError::SizeOverflow);
        }
        self.size = (self.size << 4) | u64::from(value);
        Ok(State::Size {
            digits: digits.saturating_add(1),
        })
    }

    /// One byte of the chunk extensions, held to RFC 9112 7.1.1: names are
    /// tokens, values tokens or quoted strings, whitespace only around `;`
    /// and `=`, and the line ends outside a quoted string.
    fn extension_step(&mut self, b: u8) -> Result<State, ChunkedError> {
        let ws = matches!(b, b' ' | b'\t');
        let next = match (self.state, b) {
            // The line may end after a name or a value, never inside one's
            // syntax (`2;`, `2;a=`, an open quoted string).
            (
                State::ExtName | State::ExtAfterName | State::ExtToken | State::ExtAfterValue,
                b'\r',
            ) => {
                return Ok(State::SizeLf);
            }
            (
                State::ExtName | State::ExtAfterName | State::ExtToken | State::ExtAfterValue,
                b';',
            ) => State::ExtStart,
            (State::ExtStart, _) if ws => State::ExtStart,
            (State::ExtStart | State::ExtName, _) if is_token(b) => State::ExtName,
            (State::ExtName | State::ExtAfterName, _) if ws => State::ExtAfterName,
            (State::ExtName | State::ExtAfterName, b'=') => State::ExtValueStart,
            (State::ExtValueStart, _) if ws => State::ExtValueStart,
            (State::ExtValueStart, b'"') => State::ExtQuoted,
            (State::ExtValueStart | State::ExtToken, _) if is_token(b) => State::ExtToken,
            (State::ExtToken | State::ExtAfterValue, _) if ws => State::ExtAfterValue,
            (State::ExtQuoted, b'"') => State::ExtAfterValue,
            (State::ExtQuoted, b'\\') => State::ExtQuotedPair,
            // qdtext: HTAB, SP, VCHAR but `"` and `\`, obs-text.
            (State::ExtQuoted, b'\t' | b' '..=b'~' | 0x80..=0xff) => State::ExtQuoted,
            (State::ExtQuotedPair, b'\t' | b' '..=b'~' | 0x80..=0xff) => State::ExtQuoted,
            _ => return Err(ChunkedError::BadExtension),
        };
        self.extension_byte(next)
    }

    /// Counts one byte of the extensions against their budget.
    fn extension_byte(&mut self, next: State) -> Result<State, ChunkedError> {
        self.extension_bytes += 1;
        if self.extension_bytes > MAX_EXTENSION_BYTES {
            return Err(ChunkedError::ExtensionsTooLarge);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self, next: State) -> Result<State, ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkedError::TrailersTooLarge);
        }
        Ok(next)
    }

    fn end_size_line(&mut self) -> Result<State, ChunkedError> {
        let size = std::mem::take(&mut self.size);
        if size == 0 {
            return Ok(State::TrailerStart);
        }
        self.decoded = self.decoded.saturating_add(size);
        if self.decoded > self.max_body {
            return Err(ChunkedError::TooLarge);
        }
        self.remaining = size;
        Ok(State::Data)
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        match d.decode(input, &mut out)? {
            Some(n) => Ok((out, n)),
            None => Err(ChunkedError::BadSize).map(|()| (out, usize::MAX)),
        }
    }

    /// Decodes one byte at a time, the worst case for a state machine.
    fn decode_bytewise(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
        let mut d = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        for i in 0..input.len() {
            if let Some(n) = d.decode(&input[i..i + 1], &mut out)? {
                return Ok(Some((out, i + n)));
            }
        }
        Ok(None)
    }

    #[test]
    fn valid_bodies() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"005\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5 ;name\r\nhello\r\n0;x=\"q s\"\r\n\r\n", b"hello"),
            // RFC 9112 7.1.1: whitespace around `;` and `=`, several
            // extensions, quoted pairs and obs-text in quoted strings.
            (
                b"5 ; a = b ;c\t;d=\"x\\\"y\\\\\"\r\nhello\r\n0\r\n\r\n",
                b"hello",
            ),
            (b"5;a=\"\xe9;=\"\r\nhello\r\n0;last\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\nA: 1\r\nB:\r\n\r\n", b"hello"),
        ];
        for (input, body) in cases {
            let (out, n) = decode_all(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(&out, body, "{input:?}");
            assert_eq!(n, input.len(), "{input:?}");
            let (out2, n2) = decode_bytewise(input).unwrap().unwrap();
            assert_eq!((out2, n2), (out, n), "{input:?} bytewise");
        }
    }

    #[test]
    fn stops_at_end_of_body() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (out, n) = decode_all(input).unwrap();
        assert_eq!(out, b"abc");
        assert_eq!(&input[n..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn invalid_bodies() {
        let cases: &[(&[u8], ChunkedError)] = &[
            (b"\r\n", ChunkedError::BadSize),
            (b"-5\r\n", ChunkedError::BadSize),
            (b"+5\r\n", ChunkedError::BadSize),
            (b"0x5\r\n", ChunkedError::BadSize),
            (b"5g\r\n", ChunkedError::BadSize),
            (b" 5\r\n", ChunkedError::BadSize),
            (b"5 \r\n", ChunkedError::BadSize),
            (b"5\n", ChunkedError::BadSize),
            (b"5\r\r\n", ChunkedError::BadLineEnding),
            (b"1ffffffffffffffff\r\n", ChunkedError::SizeOverflow),
            (b"10000000000000000\r\n", ChunkedError::SizeOverflow),
            (b"5\r\nhello\n0\r\n\r\n", ChunkedError::BadLineEnding),
            (b"5\r\nhelloX\r\n", ChunkedError::BadLineEnding),
            (b"5\r\nhello\r\r\n", ChunkedError::BadLineEnding),
            (b"5;a\x00\r\n", ChunkedError::BadExtension),
            (b"5;a\nb\r\n", ChunkedError::BadExtension),
            // Not the grammar of RFC 9112 7.1.1 (llhttp's strict mode refuses
            // them too): no name, an empty value, an unterminated quoted
            // string, a name that is not a token, a value with a space in it,
            // a control byte in a quoted string.
            (b"2;\r\n", ChunkedError::BadExtension),
            (b"2;=x\r\n", ChunkedError::BadExtension),
            (b"2;a=\r\n", ChunkedError::BadExtension),
            (b"2;a=\"unterminated\r\n", ChunkedError::BadExtension),
            (b"2;a b\r\n", ChunkedError::BadExtension),
            (b"2;a=b c\r\n", ChunkedError::BadExtension),
            (b"2;a@b\r\n", ChunkedError::BadExtension),
            (b"2;a=\"x\x01\"\r\n", ChunkedError::BadExtension),
            (b"2;;a\r\n", ChunkedError::BadExtension),
            (b"0\r\n X: 1\r\n\r\n", ChunkedError::BadTrailer),
            (b"0\r\nX : 1\r\n\r\n", ChunkedError::BadTrailer),
            (b"0\r\nX\r\n\r\n", ChunkedError::BadTrailer),
            (b"0\r\nX: a\x00\r\n\r\n", ChunkedError::BadTrailer),
            (b"0\r\nX: 1\n\r\n", ChunkedError::BadTrailer),
            (b"0\r\n\n", ChunkedError::BadTrailer),
            (b"0\r\n\r\r", ChunkedError::BadLineEnding),
            (b"401\r\n", ChunkedError::TooLarge),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(input).err(), Some(*want), "{input:?}");
            assert_eq!(
                decode_bytewise(input).err(),
                Some(*want),
                "{input:?} bytewise"
            );
        }
    }

    #[test]
    fn limits_on_extensions_and_trailers() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES));
        ext.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(&ext).err(),
            Some(ChunkedError::ExtensionsTooLarge)
        );

        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILER_BYTES / 8 + 1 {
            trailers.extend_from_slice(b"X: abc\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(&trailers).err(),
            Some(ChunkedError::TrailersTooLarge)
        );
    }

    #[test]
    fn body_limit_is_cumulative() {
        let mut d = ChunkedDecoder::new(8);
        let mut out = Vec::new();
        assert_eq!(d.decode(b"5\r\nhello\r\n", &mut out), Ok(None));
        assert_eq!(d.decode(b"4\r\n", &mut out), Err(ChunkedError::TooLarge));
    }

    #[test]
    fn reset_reuses_decoder() {
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        assert_eq!(d.decode(b"1\r\na\r\n0\r\n\r\n", &mut out), Ok(Some(11)));
        assert!(d.is_done());
        d.reset();
        out.clear();
        assert_eq!(d.decode(b"2\r\nbc\r\n0\r\n\r\n", &mut out), Ok(Some(12)));
        assert_eq!(out, b"bc");
    }
}

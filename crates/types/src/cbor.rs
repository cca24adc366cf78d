//! Canonical CBOR (RFC 8949 §4.2.1 core deterministic encoding) for the subset chipledger's own
//! wire formats use: integers (negative ones only where a standard needs them, e.g. COSE
//! algorithm ids), byte strings, text strings, arrays, booleans and null.
//!
//! Structures are encoded as definite-length arrays (positional fields), so map key ordering
//! never arises. The decoder is strict: it rejects non-shortest heads, indefinite lengths, tags,
//! floats and trailing bytes, so every value has exactly one accepted encoding and a hash of the
//! bytes identifies the value. Every length, count and nesting depth is bounded by [`Limits`].

use alloc::string::String;
use alloc::vec::Vec;

/// Bounds applied while decoding. Callers pick the limits of the format they read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole input accepted, in bytes.
    pub input_bytes_max: usize,
    /// Largest single byte or text string, in bytes.
    pub string_bytes_max: usize,
    /// Most elements in one array.
    pub array_items_max: usize,
    /// Deepest array nesting.
    pub depth_max: usize,
}

impl Limits {
    /// Limits for one transaction envelope.
    pub const TX: Limits = Limits {
        input_bytes_max: crate::limits::MAX_TX_BYTES,
        string_bytes_max: crate::limits::MAX_TX_BYTES,
        array_items_max: 256,
        depth_max: 16,
    };
    /// Limits for a whole block (header + encoded transactions).
    pub const BLOCK: Limits = Limits {
        input_bytes_max: crate::limits::MAX_BLOCK_BYTES,
        string_bytes_max: crate::limits::MAX_TX_BYTES,
        array_items_max: crate::limits::MAX_BLOCK_TXS,
        depth_max: 16,
    };
    /// Limits for stored state values and other small internal records.
    pub const STATE: Limits = Limits {
        input_bytes_max: 1 << 20,
        string_bytes_max: 1 << 20,
        array_items_max: 4096,
        depth_max: 16,
    };
}

/// Why a CBOR input was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input ends early at byte {0}")]
    UnexpectedEnd(usize),
    #[error("input is {len} bytes, more than the limit of {max}")]
    InputTooLarge { len: usize, max: usize },
    #[error("{what} of length {len} exceeds the limit of {max}")]
    TooLong { what: &'static str, len: u64, max: usize },
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    #[error("non-canonical encoding at byte {0} (RFC 8949 §4.2.1 requires the shortest form)")]
    NonCanonical(usize),
    #[error("at byte {at}: expected {expected}, found major type {found}")]
    UnexpectedType {
        at: usize,
        expected: &'static str,
        found: u8,
    },
    #[error("unsupported CBOR item at byte {0} (indefinite length, tag or float)")]
    Unsupported(usize),
    #[error("text string at byte {0} is not valid UTF-8")]
    InvalidUtf8(usize),
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("expected an array of {expected} items, found {found}")]
    WrongArity { expected: usize, found: usize },
    #[error("unknown {what} variant {value}")]
    UnknownVariant { what: &'static str, value: u64 },
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: &'static str },
}

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_SIMPLE: u8 = 7;
const SIMPLE_FALSE: u8 = 20;
const SIMPLE_TRUE: u8 = 21;
const SIMPLE_NULL: u8 = 22;

/// Canonical CBOR writer.
#[derive(Default, Debug)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    fn head(&mut self, major: u8, value: u64) {
        let m = major << 5;
        if value < 24 {
            self.buf.push(m | value as u8);
        } else if value <= u8::MAX as u64 {
            self.buf.extend_from_slice(&[m | 24, value as u8]);
        } else if value <= u16::MAX as u64 {
            self.buf.push(m | 25);
            self.buf.extend_from_slice(&(value as u16).to_be_bytes());
        } else if value <= u32::MAX as u64 {
            self.buf.push(m | 26);
            self.buf.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }
    pub fn uint(&mut self, value: u64) -> &mut Self {
        self.head(MAJOR_UINT, value);
        self
    }
    /// A signed integer: major type 0 when non-negative, 1 (`-1 - n`) when negative.
    pub fn int(&mut self, value: i64) -> &mut Self {
        if value >= 0 {
            self.head(MAJOR_UINT, value as u64);
        } else {
            self.head(MAJOR_NINT, (-1 - value) as u64);
        }
        self
    }
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.head(MAJOR_BYTES, value.len() as u64);
        self.buf.extend_from_slice(value);
        self
    }
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.head(MAJOR_TEXT, value.len() as u64);
        self.buf.extend_from_slice(value.as_bytes());
        self
    }
    pub fn array(&mut self, len: usize) -> &mut Self {
        self.head(MAJOR_ARRAY, len as u64);
        self
    }
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.buf
            .push((MAJOR_SIMPLE << 5) | if value { SIMPLE_TRUE } else { SIMPLE_FALSE });
        self
    }
    pub fn null(&mut self) -> &mut Self {
        self.buf.push((MAJOR_SIMPLE << 5) | SIMPLE_NULL);
        self
    }
    /// Append bytes that are already one canonical CBOR item.
    pub fn raw(&mut self, item: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(item);
        self
    }
}

/// Strict canonical CBOR reader over a byte slice.
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8], limits: Limits) -> Result<Self, DecodeError> {
        if input.len() > limits.input_bytes_max {
            return Err(DecodeError::InputTooLarge {
                len: input.len(),
                max: limits.input_bytes_max,
            });
        }
        Ok(Self {
            input,
            pos: 0,
            depth: 0,
            limits,
        })
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Fail unless the whole input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.input.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::UnexpectedEnd(self.pos))?;
        let out = self
            .input
            .get(self.pos..end)
            .ok_or(DecodeError::UnexpectedEnd(self.pos))?;
        self.pos = end;
        Ok(out)
    }

    fn peek_major(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .map(|b| b >> 5)
            .ok_or(DecodeError::UnexpectedEnd(self.pos))
    }

    /// Read an item head, returning (major type, argument). Enforces shortest form.
    fn head(&mut self) -> Result<(u8, u64), DecodeError> {
        let at = self.pos;
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let value = match info {
            0..=23 => info as u64,
            24 => {
                let v = self.take(1)?[0] as u64;
                if v < 24 {
                    return Err(DecodeError::NonCanonical(at));
                }
                v
            }
            25 => {
                let v = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as u64;
                if v <= u8::MAX as u64 {
                    return Err(DecodeError::NonCanonical(at));
                }
                v
            }
            26 => {
                let v = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64;
                if v <= u16::MAX as u64 {
                    return Err(DecodeError::NonCanonical(at));
                }
                v
            }
            27 => {
                let v = u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                if v <= u32::MAX as u64 {
                    return Err(DecodeError::NonCanonical(at));
                }
                v
            }
            _ => return Err(DecodeError::Unsupported(at)),
        };
        if major == 6 || (major == MAJOR_SIMPLE && info >= 24) {
            return Err(DecodeError::Unsupported(at));
        }
        Ok((major, value))
    }

    fn expect(&mut self, major: u8, expected: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let (found, value) = self.head()?;
        if found != major {
            return Err(DecodeError::UnexpectedType { at, expected, found });
        }
        Ok(value)
    }

    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        self.expect(MAJOR_UINT, "unsigned integer")
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let v = self.uint()?;
        u32::try_from(v).map_err(|_| DecodeError::Invalid {
            what: "u32",
            why: "value too large",
        })
    }

    /// A signed integer (major type 0 or 1) within the 64-bit signed range.
    pub fn int(&mut self) -> Result<i64, DecodeError> {
        let at = self.pos;
        let (major, value) = self.head()?;
        let value = i64::try_from(value).map_err(|_| DecodeError::Invalid {
            what: "integer",
            why: "outside the 64-bit signed range",
        })?;
        match major {
            MAJOR_UINT => Ok(value),
            MAJOR_NINT => Ok(-1 - value),
            found => Err(DecodeError::UnexpectedType {
                at,
                expected: "integer",
                found,
            }),
        }
    }

    fn string_len(&mut self, major: u8, expected: &'static str) -> Result<usize, DecodeError> {
        let len = self.expect(major, expected)?;
        if len > self.limits.string_bytes_max as u64 {
            return Err(DecodeError::TooLong {
                what: expected,
                len,
                max: self.limits.string_bytes_max,
            });
        }
        Ok(len as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.string_len(MAJOR_BYTES, "byte string")?;
        self.take(len)
    }

    /// A byte string of exactly `N` bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.bytes()?;
        b.try_into().map_err(|_| DecodeError::Invalid {
            what: "fixed-size byte string",
            why: "wrong length",
        })
    }

    pub fn text(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let len = self.string_len(MAJOR_TEXT, "text string")?;
        core::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::InvalidUtf8(at))
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.text().map(String::from)
    }

    /// Open an array and return its length; pair with [`Decoder::end`] when its items are read.
    pub fn array(&mut self) -> Result<usize, DecodeError> {
        let len = self.expect(MAJOR_ARRAY, "array")?;
        if len > self.limits.array_items_max as u64 {
            return Err(DecodeError::TooLong {
                what: "array",
                len,
                max: self.limits.array_items_max,
            });
        }
        // Every item takes at least one byte: a cheap bound before anything is allocated.
        if len > (self.input.len() - self.pos) as u64 {
            return Err(DecodeError::UnexpectedEnd(self.pos));
        }
        self.depth += 1;
        if self.depth > self.limits.depth_max {
            return Err(DecodeError::TooDeep(self.limits.depth_max));
        }
        Ok(len as usize)
    }

    /// Open an array that must have exactly `n` items.
    pub fn array_of(&mut self, n: usize) -> Result<(), DecodeError> {
        let found = self.array()?;
        if found != n {
            return Err(DecodeError::WrongArity { expected: n, found });
        }
        Ok(())
    }

    /// Close the innermost array.
    pub fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.head()? {
            (MAJOR_SIMPLE, v) if v == SIMPLE_TRUE as u64 => Ok(true),
            (MAJOR_SIMPLE, v) if v == SIMPLE_FALSE as u64 => Ok(false),
            (found, _) => Err(DecodeError::UnexpectedType {
                at,
                expected: "bool",
                found,
            }),
        }
    }

    /// True (and consumes it) when the next item is `null`.
    pub fn null(&mut self) -> Result<bool, DecodeError> {
        if self.input.get(self.pos) == Some(&((MAJOR_SIMPLE << 5) | SIMPLE_NULL)) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Major type of the next item without consuming it.
    pub fn next_major(&self) -> Result<u8, DecodeError> {
        self.peek_major()
    }
}

/// A value with one canonical CBOR encoding.
pub trait Encode {
    fn encode(&self, e: &mut Encoder);
    fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_bytes()
    }
}

/// A value decodable from canonical CBOR.
pub trait Decode: Sized {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError>;
    /// Decode exactly one value filling `bytes`, within `limits`.
    fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, limits)?;
        let v = Self::decode(&mut d)?;
        d.finish()?;
        Ok(v)
    }
}

/// `Display` (lower-case hex) and the CBOR byte-string codec for a newtype over `[u8; N]`:
/// the identifiers of devices, CAs, releases and keys.
macro_rules! fixed_bytes_id {
    ($t:ident) => {
        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl $crate::cbor::Encode for $t {
            fn encode(&self, e: &mut $crate::cbor::Encoder) {
                e.bytes(&self.0);
            }
        }
        impl $crate::cbor::Decode for $t {
            fn decode(d: &mut $crate::cbor::Decoder<'_>) -> Result<Self, $crate::cbor::DecodeError> {
                d.fixed().map($t)
            }
        }
    };
}
pub(crate) use fixed_bytes_id;

/// Encode a list of values as an array.
pub fn encode_list<T: Encode>(e: &mut Encoder, items: &[T]) {
    e.array(items.len());
    for item in items {
        item.encode(e);
    }
}

/// Decode an array of at most `max` values.
pub fn decode_list<T: Decode>(d: &mut Decoder<'_>, max: usize) -> Result<Vec<T>, DecodeError> {
    let n = d.array()?;
    if n > max {
        return Err(DecodeError::TooLong {
            what: "list",
            len: n as u64,
            max,
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(T::decode(d)?);
    }
    d.end();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_uint(v: u64) -> Vec<u8> {
        let mut e = Encoder::new();
        e.uint(v);
        e.into_bytes()
    }

    #[test]
    fn rfc8949_appendix_a_integers() {
        // Examples from RFC 8949 Appendix A.
        let cases: &[(u64, &str)] = &[
            (0, "00"),
            (1, "01"),
            (10, "0a"),
            (23, "17"),
            (24, "1818"),
            (25, "1819"),
            (100, "1864"),
            (1000, "1903e8"),
            (1000000, "1a000f4240"),
            (1000000000000, "1b000000e8d4a51000"),
            (u64::MAX, "1bffffffffffffffff"),
        ];
        for (v, h) in cases {
            assert_eq!(hex::encode(enc_uint(*v)), *h, "encode {v}");
            let bytes = hex::decode(h).unwrap();
            let mut d = Decoder::new(&bytes, Limits::TX).unwrap();
            assert_eq!(d.uint().unwrap(), *v);
        }
    }

    #[test]
    fn rfc8949_appendix_a_negative_integers() {
        // Examples from RFC 8949 Appendix A (-16 is COSE's SHA-256 algorithm id).
        let cases: &[(i64, &str)] = &[(-1, "20"), (-10, "29"), (-16, "2f"), (-100, "3863"), (-1000, "3903e7")];
        for (v, h) in cases {
            let mut e = Encoder::new();
            e.int(*v);
            assert_eq!(hex::encode(e.into_bytes()), *h, "encode {v}");
            let bytes = hex::decode(h).unwrap();
            assert_eq!(Decoder::new(&bytes, Limits::TX).unwrap().int().unwrap(), *v);
        }
        // -2^64 is valid CBOR but outside i64; a non-shortest head is rejected as always.
        let big = hex::decode("3bffffffffffffffff").unwrap();
        assert!(Decoder::new(&big, Limits::TX).unwrap().int().is_err());
        let long = hex::decode("380f").unwrap();
        assert!(matches!(
            Decoder::new(&long, Limits::TX).unwrap().int(),
            Err(DecodeError::NonCanonical(0))
        ));
    }

    #[test]
    fn rejects_non_shortest_heads() {
        for h in [
            "1817",
            "190017",
            "1a00000017",
            "1b0000000000000017",
            "1900ff",
            "1a0000ffff",
        ] {
            let bytes = hex::decode(h).unwrap();
            let mut d = Decoder::new(&bytes, Limits::TX).unwrap();
            assert!(matches!(d.uint(), Err(DecodeError::NonCanonical(0))), "{h}");
        }
    }

    #[test]
    fn rejects_indefinite_tags_floats() {
        for h in ["5f41ff", "9fff", "c000", "f97e00", "1f"] {
            let bytes = hex::decode(h).unwrap();
            let mut d = Decoder::new(&bytes, Limits::TX).unwrap();
            let r = match bytes[0] >> 5 {
                2 => d.bytes().map(|_| ()),
                4 => d.array().map(|_| ()),
                _ => d.uint().map(|_| ()),
            };
            assert!(matches!(r, Err(DecodeError::Unsupported(_))), "{h}: {r:?}");
        }
    }

    #[test]
    fn bounds_are_enforced() {
        let small = Limits {
            input_bytes_max: 64,
            string_bytes_max: 4,
            array_items_max: 2,
            depth_max: 2,
        };
        let mut e = Encoder::new();
        e.bytes(&[1, 2, 3, 4, 5]);
        let b = e.into_bytes();
        assert!(matches!(
            Decoder::new(&b, small).unwrap().bytes(),
            Err(DecodeError::TooLong { .. })
        ));
        let deep = hex::decode("818181818100").unwrap();
        let mut d = Decoder::new(&deep, small).unwrap();
        let r = (|| -> Result<(), DecodeError> {
            loop {
                d.array()?;
            }
        })();
        assert_eq!(r, Err(DecodeError::TooDeep(2)));
        // A huge declared length with no bytes behind it fails without allocating.
        let lie = hex::decode("5bffffffffffffffff").unwrap();
        assert!(Decoder::new(&lie, Limits::TX).unwrap().bytes().is_err());
        let lie = hex::decode("9a00010000").unwrap();
        assert!(Decoder::new(&lie, Limits::STATE).unwrap().array().is_err());
        assert!(matches!(
            Decoder::new(&[0u8; 65], small),
            Err(DecodeError::InputTooLarge { .. })
        ));
    }

    #[test]
    fn text_must_be_utf8() {
        let bytes = hex::decode("62c328").unwrap();
        assert_eq!(
            Decoder::new(&bytes, Limits::TX).unwrap().text(),
            Err(DecodeError::InvalidUtf8(0))
        );
    }
}

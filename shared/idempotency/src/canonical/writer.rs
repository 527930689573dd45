//! Canonical JSON straight from `serde::Serialize`, without building a
//! `serde_json::Value` tree first.
//!
//! The output is byte-identical to [`write_canonical`](super::value::write_canonical)
//! applied to `serde_json::to_value(x)`: the same numbers (an `f32` is
//! widened to `f64` as `to_value` does, a non-finite float is `null`, a
//! 128-bit integer out of the 64-bit range is an error), the same map keys
//! (see [`map_key`](super::map_key)), the same enum encodings, and for a key
//! that occurs twice in one map, the last value wins. Only map entries are
//! buffered: each is written in place, then the entries of a finished map are
//! reordered by their raw key when they are not already in order.

use std::fmt::Display;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};
use serde_json::{Error, Value};

use super::map_key::KeyWriter;
use super::token::{TokenStruct, SERDE_JSON_TOKEN_PREFIX};

type Result<T> = std::result::Result<T, Error>;

/// One entry of an open map: the raw key (a range in `Canon::keys`) and the
/// bytes `"key":value` (a range in `Canon::out`, without the comma).
#[derive(Clone, Copy)]
struct Entry {
    key: (usize, usize),
    bytes: (usize, usize),
}

#[derive(Clone, Copy)]
enum Close {
    /// `]`
    Seq,
    /// `]}`: a tuple variant.
    SeqInObject,
    /// `}` after sorting.
    Map,
    /// `}}` after sorting: a struct variant.
    MapInObject,
}

#[derive(Clone, Copy)]
struct Frame {
    close: Close,
    /// Where the first element or entry starts.
    body: usize,
    /// Entries of this map start here in `Canon::entries`.
    entries: usize,
    /// Raw keys of this map start here in `Canon::keys`.
    keys: usize,
    /// A key written by `serialize_key`, waiting for its value: the raw key
    /// range and where its bytes start.
    pending: Option<((usize, usize), usize)>,
    /// Elements so far (for commas in sequences).
    len: usize,
    /// Whether every element (or value) so far is `null`.
    all_null: bool,
}

/// A canonical JSON writer that is also a `serde::Serializer`.
#[derive(Default)]
pub(crate) struct Canon {
    pub(crate) out: Vec<u8>,
    keys: Vec<u8>,
    entries: Vec<Entry>,
    frames: Vec<Frame>,
    scratch: Vec<u8>,
    /// Whether the last top-level value written is "missing": `null`, or an
    /// array or object whose elements are all `null`.
    top_missing: bool,
    /// Newtype variants open around the current value (their objects have
    /// no frame).
    in_variant: usize,
}

impl Canon {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Canon {
            out: Vec::with_capacity(n),
            ..Canon::default()
        }
    }

    /// Writes `v` as canonical JSON; returns whether it is "missing".
    pub(crate) fn write<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<bool> {
        self.out.clear();
        self.keys.clear();
        self.entries.clear();
        self.frames.clear();
        self.top_missing = false;
        self.in_variant = 0;
        let start = self.out.len();
        v.serialize(&mut *self)?;
        if self.out[start..] == *b"null" {
            self.top_missing = true;
        }
        Ok(self.top_missing)
    }

    fn str(&mut self, s: &str) -> Result<()> {
        ser::Serializer::serialize_str(&mut serde_json::Serializer::new(&mut self.out), s)
    }

    fn value(&mut self, v: &Value) -> Result<()> {
        v.serialize(&mut *self)
    }

    /// Before an element of a sequence: a comma after the first.
    fn seq_element(&mut self) -> usize {
        if let Some(f) = self.frames.last_mut() {
            if f.len > 0 {
                self.out.push(b',');
            }
            f.len += 1;
        }
        self.out.len()
    }

    fn seq_element_done(&mut self, start: usize) {
        let is_null = self.out[start..] == *b"null";
        if let Some(f) = self.frames.last_mut() {
            f.all_null &= is_null;
        }
    }

    fn open(&mut self, close: Close) {
        self.out.push(match close {
            Close::Seq | Close::SeqInObject => b'[',
            Close::Map | Close::MapInObject => b'{',
        });
        self.frames.push(Frame {
            close,
            body: self.out.len(),
            entries: self.entries.len(),
            keys: self.keys.len(),
            pending: None,
            len: 0,
            all_null: true,
        });
    }

    /// Opens `{"variant":` for a tuple or struct variant.
    fn open_variant(&mut self, variant: &str, close: Close) -> Result<()> {
        self.out.push(b'{');
        self.str(variant)?;
        self.out.push(b':');
        self.open(close);
        Ok(())
    }

    /// Starts a map entry whose raw key is already at the end of `keys`,
    /// from `key_start`.
    fn begin_entry(&mut self, key_start: usize, key: Option<&str>) -> Result<()> {
        if self
            .frames
            .last()
            .is_some_and(|f| self.entries.len() > f.entries)
        {
            self.out.push(b',');
        }
        let start = self.out.len();
        let key = match key {
            Some(k) => k,
            None => std::str::from_utf8(&self.keys[key_start..]).map_err(ser::Error::custom)?,
        };
        ser::Serializer::serialize_str(&mut serde_json::Serializer::new(&mut self.out), key)?;
        self.out.push(b':');
        if let Some(f) = self.frames.last_mut() {
            f.pending = Some(((key_start, self.keys.len()), start));
        }
        Ok(())
    }

    fn end_entry(&mut self) {
        let end = self.out.len();
        if let Some(f) = self.frames.last_mut() {
            if let Some((key, start)) = f.pending.take() {
                self.entries.push(Entry {
                    key,
                    bytes: (start, end),
                });
            }
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let key_start = self.keys.len();
        self.keys.extend_from_slice(key.as_bytes());
        self.begin_entry(key_start, Some(key))?;
        value.serialize(&mut *self)?;
        self.end_entry();
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let Some(frame) = self.frames.pop() else {
            return Err(ser::Error::custom("unbalanced canonical JSON writer"));
        };
        let all_null = match frame.close {
            Close::Seq | Close::SeqInObject => {
                self.out.push(b']');
                frame.all_null
            }
            Close::Map | Close::MapInObject => {
                let all_null = self.finish_map(&frame);
                self.out.push(b'}');
                all_null
            }
        };
        if matches!(frame.close, Close::SeqInObject | Close::MapInObject) {
            self.out.push(b'}');
        }
        if self.frames.is_empty() && self.in_variant == 0 {
            // An object holding one variant is missing only when its one
            // value is null, which a sequence or map never is.
            self.top_missing = matches!(frame.close, Close::Seq | Close::Map) && all_null;
        }
        Ok(())
    }

    /// Rewrites the entries of the map that starts at `frame.body` sorted by
    /// raw key, the last of equal keys kept, with commas between them.
    /// Returns whether every kept value is `null`.
    fn finish_map(&mut self, frame: &Frame) -> bool {
        let entries = &mut self.entries[frame.entries..];
        let keys = &self.keys;
        let raw = |e: &Entry| &keys[e.key.0..e.key.1];
        let sorted = entries.windows(2).all(|w| raw(&w[0]) < raw(&w[1]));
        let mut all_null = true;
        if sorted {
            // Already canonical, commas included.
            for e in entries.iter() {
                all_null &= self.out[e.bytes.0..e.bytes.1].ends_with(b":null");
            }
        } else {
            // Stable: among equal keys, the last written stays last.
            entries.sort_by(|a, b| raw(a).cmp(raw(b)));
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.out[frame.body..]);
            self.out.truncate(frame.body);
            let mut first = true;
            for (i, e) in entries.iter().enumerate() {
                if entries.get(i + 1).is_some_and(|next| raw(next) == raw(e)) {
                    continue;
                }
                if !first {
                    self.out.push(b',');
                }
                first = false;
                let bytes = &self.scratch[e.bytes.0 - frame.body..e.bytes.1 - frame.body];
                all_null &= bytes.ends_with(b":null");
                self.out.extend_from_slice(bytes);
            }
        }
        self.entries.truncate(frame.entries);
        self.keys.truncate(frame.keys);
        all_null
    }

    fn raw_struct_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let v = serde_json::to_value(TokenStruct { name, key, value })?;
        self.value(&v)
    }
}

impl<'a> ser::Serializer for &'a mut Canon {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = CanonStruct<'a>;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        ser::Serializer::serialize_i64(&mut serde_json::Serializer::new(&mut self.out), v)
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        if let Ok(u) = u64::try_from(v) {
            self.serialize_u64(u)
        } else if let Ok(i) = i64::try_from(v) {
            self.serialize_i64(i)
        } else {
            Err(ser::Error::custom("number out of range"))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        ser::Serializer::serialize_u64(&mut serde_json::Serializer::new(&mut self.out), v)
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        match u64::try_from(v) {
            Ok(u) => self.serialize_u64(u),
            Err(_) => Err(ser::Error::custom("number out of range")),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        // `to_value` keeps an f32 as the f64 it widens to.
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        // serde_json writes a non-finite float as null, as `to_value` holds it.
        ser::Serializer::serialize_f64(&mut serde_json::Serializer::new(&mut self.out), v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            SerializeSeq::serialize_element(&mut seq, b)?;
        }
        SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<()> {
        let top = self.frames.is_empty() && self.in_variant == 0;
        self.out.push(b'{');
        self.str(variant)?;
        self.out.push(b':');
        let start = self.out.len();
        self.in_variant += 1;
        v.serialize(&mut *self)?;
        self.in_variant -= 1;
        if top {
            // `{"variant":null}` is an object of nulls only.
            self.top_missing = self.out[start..] == *b"null";
        }
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self> {
        self.open(Close::Seq);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.open_variant(variant, Close::SeqInObject)?;
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self> {
        self.open(Close::Map);
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<CanonStruct<'a>> {
        if name.starts_with(SERDE_JSON_TOKEN_PREFIX) {
            return Ok(CanonStruct {
                canon: self,
                token: Some(name),
            });
        }
        self.open(Close::Map);
        Ok(CanonStruct {
            canon: self,
            token: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self> {
        self.open_variant(variant, Close::MapInObject)?;
        Ok(self)
    }
    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<()> {
        self.str(&v.to_string())
    }
}

macro_rules! seq_like {
    ($($tr:ident :: $method:ident),*) => {$(
        impl $tr for &mut Canon {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
                let start = self.seq_element();
                v.serialize(&mut **self)?;
                self.seq_element_done(start);
                Ok(())
            }
            fn end(self) -> Result<()> {
                self.close()
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl SerializeMap for &mut Canon {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        let key_start = self.keys.len();
        key.serialize(KeyWriter(&mut self.keys))?;
        self.begin_entry(key_start, None)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        v.serialize(&mut **self)?;
        self.end_entry();
        Ok(())
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl SerializeStructVariant for &mut Canon {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        self.field(key, v)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

/// A struct being written; `token` for a `serde_json` token struct.
pub(crate) struct CanonStruct<'a> {
    canon: &'a mut Canon,
    token: Option<&'static str>,
}

impl SerializeStruct for CanonStruct<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        match self.token {
            Some(name) => self.canon.raw_struct_field(name, key, v),
            None => self.canon.field(key, v),
        }
    }
    fn end(self) -> Result<()> {
        match self.token {
            Some(_) => Ok(()),
            None => self.canon.close(),
        }
    }
}

//! Map keys as `serde_json::to_value` turns them into strings: integers,
//! booleans, floats, chars and unit variants become their text; anything
//! else is an error.

use std::fmt::Display;

use serde::ser::{self, Impossible, Serialize};
use serde_json::Error;

type Result<T> = std::result::Result<T, Error>;

fn key_must_be_a_string() -> Error {
    ser::Error::custom("key must be a string")
}

/// Appends a map key as `serde_json::to_value` turns it into a string.
pub(crate) struct KeyWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl KeyWriter<'_> {
    fn display(self, v: impl Display) -> Result<()> {
        use std::io::Write;
        write!(self.0, "{v}").map_err(Error::io)
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.display(v)
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.display(v)
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.display(v)
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.display(v)
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.display(v)
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.display(v)
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.display(v)
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.display(v)
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.display(v)
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        if !v.is_finite() {
            return Err(ser::Error::custom("float key must be finite"));
        }
        // serde_json formats an f32 key as an f32, as its writer does.
        serde_json::to_writer(&mut *self.0, &v)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        if !v.is_finite() {
            return Err(ser::Error::custom("float key must be finite"));
        }
        serde_json::to_writer(&mut *self.0, &v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.0
            .extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }
    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<()> {
        self.display(v)
    }
}

//! Selecting a JSON path from a typed value: the value at the path, exactly
//! as [`JsonPath::select`](crate::JsonPath::select) finds it in
//! `serde_json::to_value(v)`, serializing only what lies on the path.

use std::fmt::Display;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};
use serde_json::{Error, Map, Value};

use crate::canonical::map_key::KeyWriter;
use crate::canonical::token::{TokenStruct, SERDE_JSON_TOKEN_PREFIX};
use crate::path::{select_steps, Step};

type Result<T> = std::result::Result<T, Error>;

/// The value at `steps` in `v`, exactly as
/// `JsonPath::select(&serde_json::to_value(v)?)` finds it, but serializing
/// only what lies on the path (the selected part goes through
/// `serde_json::to_value`). Parts off the path are never serialized, so an
/// error there (a map key that is not a string) does not surface.
pub(crate) fn select<T: Serialize + ?Sized>(v: &T, steps: &[Step]) -> Result<Option<Value>> {
    if steps.is_empty() {
        return serde_json::to_value(v).map(Some);
    }
    v.serialize(Select { steps })
}

/// Serializes a value at which `steps` (never empty) remain to be taken.
struct Select<'s> {
    steps: &'s [Step],
}

impl<'s> Select<'s> {
    fn field(&self) -> Option<&'s str> {
        match self.steps.first() {
            Some(Step::Field(f)) => Some(f),
            _ => None,
        }
    }
    fn index(&self) -> Option<usize> {
        match self.steps.first() {
            Some(Step::Index(i)) => Some(*i),
            _ => None,
        }
    }
    /// A string met with steps left is parsed as JSON.
    fn string(&self, s: &str) -> Result<Option<Value>> {
        Ok(serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| select_steps(&v, self.steps)))
    }
}

/// The selection so far in a sequence, map or struct.
pub(crate) struct SelectCompound<'s> {
    steps: &'s [Step],
    /// Elements seen (sequences).
    index: usize,
    /// Whether the pending map key matches the step.
    key_matches: bool,
    found: Option<Value>,
    /// A token struct or a variant, built as `to_value` would, then searched.
    whole: Option<Whole>,
}

enum Whole {
    Token(&'static str),
    TupleVariant(&'static str, Vec<Value>),
    StructVariant(&'static str, Map<String, Value>),
}

impl<'s> SelectCompound<'s> {
    fn new(steps: &'s [Step]) -> Self {
        SelectCompound {
            steps,
            index: 0,
            key_matches: false,
            found: None,
            whole: None,
        }
    }
    fn rest(&self) -> &'s [Step] {
        &self.steps[1..]
    }
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        if let Some(Whole::TupleVariant(_, items)) = &mut self.whole {
            items.push(serde_json::to_value(v)?);
            return Ok(());
        }
        if matches!(self.steps.first(), Some(Step::Index(i)) if *i == self.index) {
            self.found = select(v, self.rest())?;
        }
        self.index += 1;
        Ok(())
    }
    fn entry<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        match &mut self.whole {
            Some(Whole::StructVariant(_, map)) => {
                map.insert(key.to_owned(), serde_json::to_value(v)?);
            }
            Some(Whole::Token(name)) => {
                let value = serde_json::to_value(TokenStruct {
                    name,
                    key,
                    value: v,
                })?;
                self.found = select_steps(&value, self.steps);
            }
            _ => {
                // A later equal key replaces an earlier one, as in a map.
                if matches!(self.steps.first(), Some(Step::Field(f)) if f.as_str() == key) {
                    self.found = select(v, self.rest())?;
                }
            }
        }
        Ok(())
    }
    fn finish(self) -> Result<Option<Value>> {
        let (variant, inner) = match self.whole {
            Some(Whole::TupleVariant(variant, items)) => (variant, Value::Array(items)),
            Some(Whole::StructVariant(variant, map)) => (variant, Value::Object(map)),
            _ => return Ok(self.found),
        };
        let mut object = Map::new();
        object.insert(variant.to_owned(), inner);
        Ok(select_steps(&Value::Object(object), self.steps))
    }
}

impl<'s> ser::Serializer for Select<'s> {
    type Ok = Option<Value>;
    type Error = Error;
    type SerializeSeq = SelectCompound<'s>;
    type SerializeTuple = SelectCompound<'s>;
    type SerializeTupleStruct = SelectCompound<'s>;
    type SerializeTupleVariant = SelectCompound<'s>;
    type SerializeMap = SelectCompound<'s>;
    type SerializeStruct = SelectCompound<'s>;
    type SerializeStructVariant = SelectCompound<'s>;

    fn serialize_bool(self, _: bool) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_i8(self, _: i8) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_i16(self, _: i16) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_i32(self, _: i32) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_i64(self, _: i64) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_i128(self, v: i128) -> Result<Option<Value>> {
        serde_json::to_value(v).map(|_| None)
    }
    fn serialize_u8(self, _: u8) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_u16(self, _: u16) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_u32(self, _: u32) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_u64(self, _: u64) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_u128(self, v: u128) -> Result<Option<Value>> {
        serde_json::to_value(v).map(|_| None)
    }
    fn serialize_f32(self, _: f32) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_f64(self, _: f64) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_char(self, v: char) -> Result<Option<Value>> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Option<Value>> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Option<Value>> {
        // An array of numbers: an index selects a number, and no step goes
        // further into a number.
        Ok(match (self.index(), self.steps.len()) {
            (Some(i), 1) => v.get(i).map(|b| Value::from(*b)),
            _ => None,
        })
    }
    fn serialize_none(self) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Option<Value>> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Option<Value>> {
        Ok(None)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Option<Value>> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Option<Value>> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Option<Value>> {
        match self.field() {
            Some(f) if f == variant => select(v, &self.steps[1..]),
            _ => Ok(None),
        }
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SelectCompound<'s>> {
        Ok(SelectCompound::new(self.steps))
    }
    fn serialize_tuple(self, _: usize) -> Result<SelectCompound<'s>> {
        Ok(SelectCompound::new(self.steps))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<SelectCompound<'s>> {
        Ok(SelectCompound::new(self.steps))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SelectCompound<'s>> {
        let mut c = SelectCompound::new(self.steps);
        c.whole = Some(Whole::TupleVariant(variant, Vec::with_capacity(len)));
        Ok(c)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<SelectCompound<'s>> {
        Ok(SelectCompound::new(self.steps))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<SelectCompound<'s>> {
        let mut c = SelectCompound::new(self.steps);
        if name.starts_with(SERDE_JSON_TOKEN_PREFIX) {
            c.whole = Some(Whole::Token(name));
        }
        Ok(c)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<SelectCompound<'s>> {
        let mut c = SelectCompound::new(self.steps);
        c.whole = Some(Whole::StructVariant(variant, Map::new()));
        Ok(c)
    }
    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<Option<Value>> {
        self.string(&v.to_string())
    }
}

macro_rules! select_seq_like {
    ($($tr:ident :: $method:ident),*) => {$(
        impl $tr for SelectCompound<'_> {
            type Ok = Option<Value>;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
                self.element(v)
            }
            fn end(self) -> Result<Option<Value>> {
                self.finish()
            }
        }
    )*};
}

select_seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl SerializeMap for SelectCompound<'_> {
    type Ok = Option<Value>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        let mut k = Vec::new();
        key.serialize(KeyWriter(&mut k))?;
        self.key_matches = matches!(self.steps.first(), Some(Step::Field(f)) if f.as_bytes() == k);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        if self.key_matches {
            self.found = select(v, self.rest())?;
        }
        Ok(())
    }
    fn end(self) -> Result<Option<Value>> {
        self.finish()
    }
}

impl SerializeStruct for SelectCompound<'_> {
    type Ok = Option<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        self.entry(key, v)
    }
    fn end(self) -> Result<Option<Value>> {
        self.finish()
    }
}

impl SerializeStructVariant for SelectCompound<'_> {
    type Ok = Option<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        self.entry(key, v)
    }
    fn end(self) -> Result<Option<Value>> {
        self.finish()
    }
}

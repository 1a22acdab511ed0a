//! The JSON form of the published types: one adapter between serde's data model and JSON that
//! every JSON reader and writer of journal records, states and frames goes through.
//!
//! The record and state types are shaped for postcard (positional fields, variant indices), so
//! their derived serde is what postcard uses and must not change. In JSON the same derived
//! code runs through [`Ser`] and [`De`], which rewrite the shape, so that one derive serves
//! both formats and the postcard bytes stay exactly as they were:
//!
//! - a struct is an object whose keys are its field names in camelCase (`scheduled_for` →
//!   `scheduledFor`; a trailing `_` is dropped, `for_` → `for`); a field whose value is
//!   `None` is left out, and a missing field reads as `None`;
//! - an enum value is an object `{"type": "<variant in camelCase>", …}`:
//!   - a unit variant has nothing else: `{"type": "started"}`;
//!   - a struct variant has its fields beside `type`, as a struct: `{"type": "moved", "to": …}`;
//!   - a newtype variant has its value under the variant's name:
//!     `{"type": "agent", "agent": "a1"}`;
//!   - a tuple variant has its values as an array under the variant's name:
//!     `{"type": "binary", "binary": [{"type": "add"}, …, …]}`;
//!
//!   reading also takes a bare string for a unit variant (`"started"`);
//! - sequences, tuples, maps, strings, numbers and booleans are written as JSON writes them;
//!   map keys are kept as they are;
//! - a type that writes itself differently in human-readable formats does so: a variable
//!   value is plain JSON (`null`, `true`, `3`, `"x"`, `[…]`,
//!   [`ordo_model::value::Value`]), an agent run id a 32-digit hex string.
//!
//! Reading an enum buffers that one enum value (to find its `type` wherever it is in the
//! object); structs, sequences and maps are read as they stream.

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt;

/// The key of an enum value's variant.
pub const TYPE_KEY: &str = "type";

/// `value` as JSON text.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Adapt(value))
}

/// `value` as JSON, written to `w`.
pub fn to_writer<W: std::io::Write, T: Serialize + ?Sized>(
    w: W,
    value: &T,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(w, &Adapt(value))
}

/// `value` as a JSON tree.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
    serde_json::to_value(Adapt(value))
}

/// A value from JSON text.
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    let mut d = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(De(&mut d))?;
    d.end()?;
    Ok(value)
}

/// A value from JSON bytes.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    let mut d = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(De(&mut d))?;
    d.end()?;
    Ok(value)
}

/// A value from a JSON tree.
pub fn from_value<T: de::DeserializeOwned>(json: Json) -> Result<T, serde_json::Error> {
    T::deserialize(De(json))
}

/// For `#[serde(with = "ordo_api::json")]`: a field of a JSON-only type that holds a record
/// type, written in this module's form.
pub fn serialize<T: Serialize + ?Sized, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    value.serialize(Ser(s))
}

/// For `#[serde(with = "ordo_api::json")]`.
pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    T::deserialize(De(d))
}

/// Longest name converted on the stack; longer ones take an allocation.
const NAME_BYTES_MAX: usize = 64;

/// Calls `f` with [`camel`] of `name`, without allocating for names up to
/// [`NAME_BYTES_MAX`] bytes (every field and variant name the derives give).
fn with_camel<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    let trimmed = name.strip_suffix('_').unwrap_or(name);
    let first_upper = trimmed.starts_with(|c: char| c.is_ascii_uppercase());
    if !first_upper && !trimmed.contains('_') {
        return f(trimmed);
    }
    if trimmed.len() > NAME_BYTES_MAX {
        return f(&camel(name));
    }
    let mut buf = [0u8; NAME_BYTES_MAX];
    let mut len = 0;
    let mut upper_next = false;
    for (i, &b) in trimmed.as_bytes().iter().enumerate() {
        let out = if b == b'_' {
            upper_next = i > 0;
            continue;
        } else if upper_next {
            upper_next = false;
            b.to_ascii_uppercase()
        } else if i == 0 {
            b.to_ascii_lowercase()
        } else {
            b
        };
        buf[len] = out;
        len += 1;
    }
    // Only ASCII bytes were changed or dropped, so the bytes are still UTF-8.
    match std::str::from_utf8(&buf[..len]) {
        Ok(text) => f(text),
        Err(_) => f(&camel(name)),
    }
}

/// Whether `key` is [`camel`] of `name`.
fn is_camel_of(key: &str, name: &str) -> bool {
    with_camel(name, |c| c == key)
}

/// A name written as its [`camel`] form.
struct CamelName<'a>(&'a str);

impl Serialize for CamelName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        with_camel(self.0, |c| s.serialize_str(c))
    }
}

/// A name as a JSON key: snake_case → camelCase, PascalCase → camelCase, a trailing `_` cut.
pub fn camel(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('_').unwrap_or(name);
    let first_upper = name.starts_with(|c: char| c.is_ascii_uppercase());
    if !first_upper && !name.contains('_') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for (i, c) in name.chars().enumerate() {
        if c == '_' {
            upper_next = i > 0;
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else if i == 0 {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// Writing

/// A value whose serialisation goes through [`Ser`].
pub struct Adapt<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Serialize for Adapt<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Ser(s))
    }
}

/// A serializer that writes the shapes of the module doc into the serializer it wraps.
pub struct Ser<S>(pub S);

fn type_entry<M: SerializeMap>(map: &mut M, variant: &str) -> Result<(), M::Error> {
    map.serialize_entry(TYPE_KEY, &CamelName(variant))
}

impl<S: Serializer> Serializer for Ser<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = TupleVariant<S::SerializeMap>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Fields<S::SerializeMap>;
    type SerializeStructVariant = Fields<S::SerializeMap>;

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.0.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.0.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.0.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.0.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.0.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        self.0.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.0.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.0.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.0.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.0.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        self.0.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.0.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.0.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.0.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.0.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.0.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Adapt(value))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        let mut map = self.0.serialize_map(Some(1))?;
        type_entry(&mut map, variant)?;
        map.end()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Adapt(value))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let mut map = self.0.serialize_map(Some(2))?;
        type_entry(&mut map, variant)?;
        map.serialize_entry(&CamelName(variant), &Adapt(value))?;
        map.end()
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Ok(Compound(self.0.serialize_seq(len)?))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        Ok(Compound(self.0.serialize_tuple(len)?))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Ok(Compound(self.0.serialize_tuple_struct(name, len)?))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let mut map = self.0.serialize_map(Some(2))?;
        type_entry(&mut map, variant)?;
        Ok(TupleVariant {
            map,
            key: camel(variant).into_owned(),
            items: Vec::with_capacity(len),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(Compound(self.0.serialize_map(len)?))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        // Unknown length: fields that are `None` are left out.
        Ok(Fields(self.0.serialize_map(None)?))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let mut map = self.0.serialize_map(None)?;
        type_entry(&mut map, variant)?;
        Ok(Fields(map))
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }
}

/// A sequence, tuple or map whose elements go through [`Ser`].
pub struct Compound<C>(C);

impl<C: SerializeSeq> SerializeSeq for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Adapt(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTuple> SerializeTuple for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Adapt(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTupleStruct> SerializeTupleStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_field(&Adapt(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeMap> SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Adapt(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Adapt(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

/// A struct (or struct variant) written as an object with camelCase keys, `None` left out.
pub struct Fields<M>(M);

impl<M: SerializeMap> Fields<M> {
    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        if is_none(value) {
            return Ok(());
        }
        self.0.serialize_entry(&CamelName(key), &Adapt(value))
    }
}

impl<M: SerializeMap> SerializeStruct for Fields<M> {
    type Ok = M::Ok;
    type Error = M::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<M::Ok, M::Error> {
        self.0.end()
    }
}

impl<M: SerializeMap> SerializeStructVariant for Fields<M> {
    type Ok = M::Ok;
    type Error = M::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<M::Ok, M::Error> {
        self.0.end()
    }
}

/// A tuple variant: its values are gathered, then written as one array.
pub struct TupleVariant<M> {
    map: M,
    key: String,
    items: Vec<Json>,
}

impl<M: SerializeMap> SerializeTupleVariant for TupleVariant<M> {
    type Ok = M::Ok;
    type Error = M::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), M::Error> {
        let json = to_value(value).map_err(ser::Error::custom)?;
        self.items.push(json);
        Ok(())
    }
    fn end(mut self) -> Result<M::Ok, M::Error> {
        self.map.serialize_entry(&self.key, &self.items)?;
        self.map.end()
    }
}

/// Whether `value` serialises as `None`.
fn is_none<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(NoneProbe), Ok(true))
}

/// A serializer that only tells whether a value is `None`: it stops at the first call.
struct NoneProbe;

#[derive(Debug)]
struct NotNone;

impl fmt::Display for NotNone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not none")
    }
}

impl std::error::Error for NotNone {}

impl ser::Error for NotNone {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotNone
    }
}

macro_rules! not_none {
    ($($f:ident($t:ty)),* $(,)?) => {
        $(fn $f(self, _: $t) -> Result<bool, NotNone> { Ok(false) })*
    };
}

impl Serializer for NoneProbe {
    type Ok = bool;
    type Error = NotNone;
    type SerializeSeq = ser::Impossible<bool, NotNone>;
    type SerializeTuple = ser::Impossible<bool, NotNone>;
    type SerializeTupleStruct = ser::Impossible<bool, NotNone>;
    type SerializeTupleVariant = ser::Impossible<bool, NotNone>;
    type SerializeMap = ser::Impossible<bool, NotNone>;
    type SerializeStruct = ser::Impossible<bool, NotNone>;
    type SerializeStructVariant = ser::Impossible<bool, NotNone>;

    not_none!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn is_human_readable(&self) -> bool {
        true
    }
    fn serialize_none(self) -> Result<bool, NotNone> {
        Ok(true)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, NotNone> {
        Ok(false)
    }
    fn serialize_unit(self) -> Result<bool, NotNone> {
        Ok(false)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotNone> {
        Err(NotNone)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotNone> {
        Err(NotNone)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotNone> {
        Err(NotNone)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNone> {
        Err(NotNone)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotNone> {
        Err(NotNone)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotNone> {
        Err(NotNone)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotNone> {
        Err(NotNone)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Result<bool, NotNone> {
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A deserializer that reads the shapes of the module doc from the deserializer it wraps.
pub struct De<D>(pub D);

/// A seed whose value is read through [`De`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(De(d))
    }
}

/// A visitor whose nested values are read through [`De`].
struct Wrap<V>(V);

macro_rules! forward_visits {
    ($($f:ident($t:ty)),* $(,)?) => {
        $(fn $f<E: de::Error>(self, v: $t) -> Result<V::Value, E> { self.0.$f(v) })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visits!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(De(d))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(De(d))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Elements(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Entries(map))
    }
}

/// Sequence elements read through [`De`].
struct Elements<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// Map entries read through [`De`].
struct Entries<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An object key, borrowed from the input when it can be (no allocation per key).
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl std::ops::Deref for Key<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Reads an object as a struct: camelCase keys become the field names the struct knows.
struct StructVisitor<V> {
    fields: &'static [&'static str],
    inner: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StructVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(FieldEntries {
            map,
            fields: self.fields,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Elements(seq))
    }
}

/// The entries of a struct's object, with field names restored.
struct FieldEntries<A> {
    map: A,
    fields: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FieldEntries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<Key<'de>>()? else {
            return Ok(None);
        };
        let field = self.fields.iter().find(|f| is_camel_of(&key, f)).copied();
        match field {
            Some(f) => {
                let d: de::value::StrDeserializer<'_, A::Error> = f.into_deserializer();
                seed.deserialize(d).map(Some)
            }
            None => {
                let d: de::value::StrDeserializer<'_, A::Error> = (&*key).into_deserializer();
                seed.deserialize(d).map(Some)
            }
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<D> {
    type Error = D::Error;

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Wrap(v))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_bool(Wrap(v))
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_i8(Wrap(v))
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_i16(Wrap(v))
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_i32(Wrap(v))
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_i64(Wrap(v))
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_i128(Wrap(v))
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_u8(Wrap(v))
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_u16(Wrap(v))
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_u32(Wrap(v))
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_u64(Wrap(v))
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_u128(Wrap(v))
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_f32(Wrap(v))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_f64(Wrap(v))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_char(Wrap(v))
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_str(Wrap(v))
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_string(Wrap(v))
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_bytes(Wrap(v))
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_byte_buf(Wrap(v))
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(Wrap(v))
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit(Wrap(v))
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(v))
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(v))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_seq(Wrap(v))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(v))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(v))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(v))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(StructVisitor { fields, inner: v })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(EnumVisitor { variants, inner: v })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_identifier(Wrap(v))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_ignored_any(v)
    }
}

/// Reads an enum value: as it streams when `type` is its first key (as [`Ser`] writes it),
/// else from the buffered object.
struct EnumVisitor<V> {
    variants: &'static [&'static str],
    inner: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for EnumVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{\"{TYPE_KEY}\": …}} with one of {}",
            names(self.variants)
        )
    }

    fn visit_str<E: de::Error>(self, tag: &str) -> Result<V::Value, E> {
        enum_from_json(Json::String(tag.to_owned()), self.variants, self.inner).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        let Some(first) = map.next_key::<Key<'de>>()? else {
            return enum_from_json(
                Json::Object(serde_json::Map::new()),
                self.variants,
                self.inner,
            )
            .map_err(de::Error::custom);
        };
        if &*first != TYPE_KEY {
            // Another order (a JSON tree's keys are sorted): buffer the object.
            let mut object = serde_json::Map::new();
            object.insert(first.to_owned(), map.next_value::<Json>()?);
            while let Some(key) = map.next_key::<String>()? {
                object.insert(key, map.next_value::<Json>()?);
            }
            return enum_from_json(Json::Object(object), self.variants, self.inner)
                .map_err(de::Error::custom);
        }
        let tag = map.next_value::<Key<'de>>()?;
        let Some(variant) = self.variants.iter().find(|n| is_camel_of(&tag, n)).copied() else {
            return Err(de::Error::custom(format!(
                "unknown type {:?}; expected one of {}",
                &*tag,
                names(self.variants)
            )));
        };
        let value = self.inner.visit_enum(Streamed {
            map: &mut map,
            variant,
        })?;
        // Whatever follows what the variant read is not part of it.
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(value)
    }
}

/// An enum value whose `type` was read first; the rest of its object streams.
struct Streamed<'a, A> {
    map: &'a mut A,
    variant: &'static str,
}

impl<A> Streamed<'_, A> {
    /// Reads the key of a newtype or tuple variant's content: the variant's name.
    fn content_key<'de>(&mut self) -> Result<(), A::Error>
    where
        A: MapAccess<'de>,
    {
        match self.map.next_key::<Key<'de>>()? {
            Some(key) if is_camel_of(&key, self.variant) => Ok(()),
            Some(key) => Err(de::Error::custom(format!(
                "expected {:?} after \"{TYPE_KEY}\", found {:?}",
                camel(self.variant),
                &*key
            ))),
            None => Err(de::Error::custom(format!(
                "{:?} is missing after \"{TYPE_KEY}\"",
                camel(self.variant)
            ))),
        }
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Streamed<'_, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), A::Error> {
        let name: de::value::StrDeserializer<'_, A::Error> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, self))
    }
}

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Streamed<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<S::Value, A::Error> {
        self.content_key()?;
        self.map.next_value_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(mut self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.content_key()?;
        self.map.next_value_seed(TupleSeed { len, visitor: v })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        v.visit_map(FieldEntries {
            map: self.map,
            fields,
        })
    }
}

/// A tuple read through [`De`].
struct TupleSeed<V> {
    len: usize,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for TupleSeed<V> {
    type Value = V::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        De(d).deserialize_tuple(self.len, self.visitor)
    }
}

/// Reads an enum value from its buffered JSON.
fn enum_from_json<'de, V: Visitor<'de>>(
    json: Json,
    variants: &'static [&'static str],
    v: V,
) -> Result<V::Value, serde_json::Error> {
    let (tag, rest) = match json {
        Json::String(s) => (s, serde_json::Map::new()),
        Json::Object(mut map) => match map.remove(TYPE_KEY) {
            Some(Json::String(s)) => (s, map),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "\"{TYPE_KEY}\" must be a string, not {other}"
                )));
            }
            None => {
                return Err(de::Error::custom(format!(
                    "an object without \"{TYPE_KEY}\" where one of {} was expected",
                    names(variants)
                )));
            }
        },
        other => {
            return Err(de::Error::custom(format!(
                "expected {{\"{TYPE_KEY}\": …}} with one of {}, found {other}",
                names(variants)
            )));
        }
    };
    let Some(variant) = variants.iter().find(|n| is_camel_of(&tag, n)).copied() else {
        return Err(de::Error::custom(format!(
            "unknown type {tag:?}; expected one of {}",
            names(variants)
        )));
    };
    v.visit_enum(Variant { variant, rest })
}

fn names(variants: &[&str]) -> String {
    variants
        .iter()
        .map(|v| camel(v).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An enum value found by its `type`, with the rest of its object.
struct Variant {
    variant: &'static str,
    rest: serde_json::Map<String, Json>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = serde_json::Error;
    type Variant = Variant;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Variant), serde_json::Error> {
        let name: de::value::StrDeserializer<'_, serde_json::Error> =
            self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, self))
    }
}

impl Variant {
    /// The value of a newtype or tuple variant: under the variant's name.
    fn content(mut self) -> Json {
        self.rest
            .remove(camel(self.variant).as_ref())
            .unwrap_or(Json::Null)
    }
}

impl<'de> VariantAccess<'de> for Variant {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), serde_json::Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, serde_json::Error> {
        seed.deserialize(De(self.content()))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        v: V,
    ) -> Result<V::Value, serde_json::Error> {
        De(self.content()).deserialize_tuple(len, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, serde_json::Error> {
        De(Json::Object(self.rest)).deserialize_struct("", fields, v)
    }
}

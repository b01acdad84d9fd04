//! [`Guarded`]: a deserializer that passes a JSON, YAML or TOML document through
//! unchanged, except that it refuses numbers that are not finite, a list where a struct's
//! fields belong, and YAML's null where text belongs, hands TOML datetimes on as RFC 3339
//! text, puts a budget on what YAML aliases expand to, and bounds how deeply a YAML or
//! TOML document nests.
//!
//! It wraps every deserializer, visitor, sequence, map and enum the document goes
//! through, so that each rule holds at any depth and for any type being read.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

mod first_key;
mod rules;
mod shapes;

use first_key::{FirstKey, Key};
#[cfg(feature = "yaml")]
pub(crate) use rules::MAX_NESTING;
pub(crate) use rules::Rules;
use shapes::{FieldsByName, NotNull};

/// The key under which the `toml` crate hands a datetime to a visitor, as a one-entry map.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

fn finite<E: de::Error>(value: f64) -> Result<(), E> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(E::custom(format!(
            "{value} is not a finite number: numbers in a workflow must be finite"
        )))
    }
}

/// A deserializer under [`Rules`].
pub(crate) struct Guarded<'r, D> {
    inner: D,
    rules: &'r Rules,
    /// Whether a map's key is read: YAML keys are text as written, `~` included.
    key: bool,
}

impl<'r, D> Guarded<'r, D> {
    pub(crate) fn new(inner: D, rules: &'r Rules) -> Self {
        Self {
            inner,
            rules,
            key: false,
        }
    }
}

/// Forwards `deserialize_*` methods, wrapping the visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Visit { inner: visitor, rules: self.rules })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guarded<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char();
        deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit(); deserialize_seq(); deserialize_map();
        deserialize_identifier(); deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Visit {
            inner: visitor,
            rules: self.rules,
        };
        if self.rules.yaml_nulls && !self.key {
            self.inner.deserialize_option(NotNull(visitor))
        } else {
            self.inner.deserialize_str(visitor)
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = Visit {
            inner: visitor,
            rules: self.rules,
        };
        self.inner
            .deserialize_struct(name, fields, FieldsByName(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor under [`Rules`]: charges each value, checks numbers, wraps what it is given.
struct Visit<'r, V> {
    inner: V,
    rules: &'r Rules,
}

/// The bytes of text in a plain value, charged beside the value itself.
trait TextBytes {
    fn text_bytes(&self) -> usize {
        0
    }
}

impl TextBytes for bool {}
impl TextBytes for i8 {}
impl TextBytes for i16 {}
impl TextBytes for i32 {}
impl TextBytes for i64 {}
impl TextBytes for i128 {}
impl TextBytes for u8 {}
impl TextBytes for u16 {}
impl TextBytes for u32 {}
impl TextBytes for u64 {}
impl TextBytes for u128 {}

impl TextBytes for char {
    fn text_bytes(&self) -> usize {
        self.len_utf8()
    }
}

impl TextBytes for &str {
    fn text_bytes(&self) -> usize {
        self.len()
    }
}

impl TextBytes for String {
    fn text_bytes(&self) -> usize {
        self.len()
    }
}

impl TextBytes for &[u8] {
    fn text_bytes(&self) -> usize {
        self.len()
    }
}

impl TextBytes for Vec<u8> {
    fn text_bytes(&self) -> usize {
        self.len()
    }
}

/// Forwards `visit_*` methods for plain values, charging each one.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.rules.charge(value.text_bytes())?;
            self.inner.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_f32<E: de::Error>(self, value: f32) -> Result<V::Value, E> {
        finite(value.into())?;
        self.rules.charge(0)?;
        self.inner.visit_f32(value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<V::Value, E> {
        finite(value)?;
        self.rules.charge(0)?;
        self.inner.visit_f64(value)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.rules.charge(0)?;
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.rules.charge(0)?;
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Guarded::new(d, self.rules))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Guarded::new(d, self.rules))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.rules.charge(0)?;
        let _level = self.rules.enter()?;
        self.inner.visit_seq(Seq {
            inner: seq,
            rules: self.rules,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        self.rules.charge(0)?;
        if !self.rules.toml_datetimes {
            let _level = self.rules.enter()?;
            return self.inner.visit_map(Map {
                inner: map,
                first: None,
                ended: false,
                any_entry: false,
                rules: self.rules,
            });
        }
        // A TOML datetime arrives as a map with one entry under a private key: look at
        // the first key, and hand the rest on as a map if it is not that one.
        let first = map.next_key_seed(FirstKey)?;
        match first {
            Some(Key { text, span }) if text == TOML_DATETIME_KEY => {
                let text: String = map.next_value()?;
                // A table written with that key is not a datetime: its key has a place
                // in the file (a datetime's has none), or it has more keys.
                let more = map.next_key::<IgnoredAny>()?.is_some();
                let written = span.is_some() || more;
                let Some(text) = toml_datetime(&text).filter(|_| !written) else {
                    let kept = format!("the key `{TOML_DATETIME_KEY}` is kept for TOML datetimes");
                    return Err(de::Error::custom(kept));
                };
                self.inner.visit_string(text)
            }
            // A datetime is a value, not a level of nesting; a table is one.
            first => {
                let _level = self.rules.enter()?;
                self.inner.visit_map(Map {
                    ended: first.is_none(),
                    inner: map,
                    first,
                    any_entry: false,
                    rules: self.rules,
                })
            }
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Enum {
            inner: data,
            rules: self.rules,
        })
    }
}

/// `text` as the config takes it, if it is a TOML datetime as TOML's reader writes one
/// under its private key: a time written without its seconds (`07:32`) gets them.
fn toml_datetime(text: &str) -> Option<String> {
    #[cfg(feature = "toml")]
    return (text.parse::<toml::value::Datetime>().ok()).map(|mut datetime| {
        if let Some(time) = &mut datetime.time {
            time.second.get_or_insert(0);
        }
        datetime.to_string()
    });
    // Only TOML's rules take that key for a datetime.
    #[cfg(not(feature = "toml"))]
    return {
        let _ = text;
        None
    };
}

/// A seed under [`Rules`].
struct Seed<'r, S> {
    inner: S,
    rules: &'r Rules,
    /// Whether it reads a map's key.
    key: bool,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Guarded {
            inner: d,
            rules: self.rules,
            key: self.key,
        })
    }
}

struct Seq<'r, A> {
    inner: A,
    rules: &'r Rules,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed {
            inner: seed,
            rules: self.rules,
            key: false,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map under [`Rules`], which may first give back a key already read from it.
struct Map<'r, 'de, A> {
    inner: A,
    first: Option<Key<'de>>,
    /// The inner map said it had no more keys.
    ended: bool,
    /// Whether an entry was read.
    any_entry: bool,
    rules: &'r Rules,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = Seed {
            inner: seed,
            rules: self.rules,
            key: true,
        };
        let key = self.next_key(seed)?;
        if key.is_some() && !self.any_entry {
            self.rules.charge_first_entry()?;
            self.any_entry = true;
        }
        Ok(key)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            rules: self.rules,
            key: false,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> Map<'_, 'de, A> {
    fn next_key<K: DeserializeSeed<'de>>(
        &mut self,
        seed: Seed<'_, K>,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => {
                let Key { text, span } = key;
                let read = match text {
                    Cow::Borrowed(text) => seed.deserialize(BorrowedStrDeserializer::new(text)),
                    Cow::Owned(text) => seed.deserialize(StringDeserializer::new(text)),
                };
                // Read here rather than by the parser, the key's error has no place of
                // its own: its place is kept for the loader.
                read.map(Some).inspect_err(|error: &A::Error| {
                    if let Some(span) = span {
                        self.rules.key_refused(span, error.to_string());
                    }
                })
            }
            None if self.ended => Ok(None),
            None => self.inner.next_key_seed(seed),
        }
    }
}

struct Enum<'r, A> {
    inner: A,
    rules: &'r Rules,
}

impl<'r, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'r, A> {
    type Error = A::Error;
    type Variant = Enum<'r, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let rules = self.rules;
        let (value, variant) = self.inner.variant_seed(Seed {
            inner: seed,
            rules,
            // A variant's name, read as written, as a key is.
            key: true,
        })?;
        Ok((
            value,
            Enum {
                inner: variant,
                rules,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Enum<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            rules: self.rules,
            key: false,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Visit {
            inner: visitor,
            rules: self.rules,
        };
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Visit {
            inner: visitor,
            rules: self.rules,
        };
        self.inner.struct_variant(fields, visitor)
    }
}

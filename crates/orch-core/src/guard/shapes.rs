//! What may stand where: text in place of YAML's null, a map in place of a struct.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::Visit;

/// Text read from YAML: the YAML reader hands a plain `~`, `null` or empty value to a
/// text field as that text, so it is asked for an optional value first, which tells
/// null (refused, as JSON refuses it) from the same text quoted.
pub(super) struct NotNull<'r, V>(pub(super) Visit<'r, V>);

impl<'de, V: Visitor<'de>> Visitor<'de> for NotNull<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.rules.refuse_null();
        Err(E::invalid_type(de::Unexpected::Other("null"), &self.0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        d.deserialize_str(self.0)
    }
}

/// A struct's fields, read from a map only: serde reads them from a list too, in the
/// order they are declared, so that `backoff: [1, 4]` would silently be a backoff with
/// multiplier 4.
pub(super) struct FieldsByName<'r, V>(pub(super) Visit<'r, V>);

impl<'de, V: Visitor<'de>> Visitor<'de> for FieldsByName<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

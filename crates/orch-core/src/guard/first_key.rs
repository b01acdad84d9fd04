//! The first key of a TOML table, read ahead of the table (to spot datetimes) with its
//! place in the document, so that an error on that key, met once the key is handed on,
//! can still be placed at the key rather than at its table.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The struct name under which the `toml` crate hands a key with its place: a map of the
/// key's start, end and text, under these field names. Any other deserializer hands on
/// the key alone.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const START: &str = "$__serde_spanned_private_start";
const END: &str = "$__serde_spanned_private_end";
const TEXT: &str = "$__serde_spanned_private_value";

/// A key read ahead, borrowed from the document where it can be.
pub(super) struct Key<'de> {
    pub(super) text: Cow<'de, str>,
    /// Its bytes in the document, when the deserializer told.
    pub(super) span: Option<Range<usize>>,
}

/// Reads a [`Key`].
pub(super) struct FirstKey;

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_struct(SPANNED, &[START, END, TEXT], self)
    }
}

impl<'de> Visitor<'de> for FirstKey {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        KeyText.visit_borrowed_str(key).map(unplaced)
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        KeyText.visit_str(key).map(unplaced)
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        KeyText.visit_string(key).map(unplaced)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut start, mut end, mut text) = (None, None, None);
        while let Some(field) = map.next_key_seed(KeyText)? {
            match &*field {
                START => start = Some(map.next_value::<usize>()?),
                END => end = Some(map.next_value::<usize>()?),
                TEXT => text = Some(map.next_value_seed(KeyText)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let text = text.ok_or_else(|| de::Error::missing_field("key"))?;
        Ok(Key {
            text,
            span: start.zip(end).map(|(start, end)| start..end),
        })
    }
}

fn unplaced(text: Cow<'_, str>) -> Key<'_> {
    Key { text, span: None }
}

/// Reads a key as text, borrowed from the document where it can be.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key))
    }
}

//! Whether a value holds a number JSON cannot: NaN or an infinity, which serde_json writes
//! as `null` without a word.

use std::fmt;

use serde::Serialize;
use serde::ser;

/// Whether `value`, serialised, holds a floating-point number that is not finite.
pub(super) fn holds_non_finite<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(FloatCheck), Err(Stopped::NotFinite))
}

/// A serialiser that writes nothing and fails at the first number that is not finite.
/// (Any other failure of the value's own is the JSON serialiser's to report.)
struct FloatCheck;

/// Why the check stopped.
#[derive(Debug)]
enum Stopped {
    /// At a number that is not finite.
    NotFinite,
    /// The value failed to serialise in its own way (this time).
    Failed,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFinite => "a number that is not finite",
            Self::Failed => "the value failed to serialise",
        })
    }
}

impl std::error::Error for Stopped {}

impl ser::Error for Stopped {
    fn custom<M: fmt::Display>(_message: M) -> Self {
        Stopped::Failed
    }
}

type Checked = Result<(), Stopped>;

fn finite(value: f64) -> Checked {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Stopped::NotFinite)
    }
}

/// Methods of values that hold no number, or that hold their parts: nothing to check
/// yet.
macro_rules! nothing_to_check {
    ($($method:ident($($arg:ty),*) -> $ok:ty, $value:expr;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ok, Stopped> {
            Ok($value(self))
        }
    )*};
}

/// What a compound value's start gives: itself, to check the parts with.
fn parts(check: FloatCheck) -> FloatCheck {
    check
}

/// What a value with no number gives.
fn nothing(_: FloatCheck) {}

impl ser::Serializer for FloatCheck {
    type Ok = ();
    type Error = Stopped;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_f32(self, v: f32) -> Checked {
        finite(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Checked {
        finite(v)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Checked {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Checked {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Checked {
        value.serialize(self)
    }
    nothing_to_check! {
        serialize_bool(bool) -> (), nothing;
        serialize_i8(i8) -> (), nothing;
        serialize_i16(i16) -> (), nothing;
        serialize_i32(i32) -> (), nothing;
        serialize_i64(i64) -> (), nothing;
        serialize_i128(i128) -> (), nothing;
        serialize_u8(u8) -> (), nothing;
        serialize_u16(u16) -> (), nothing;
        serialize_u32(u32) -> (), nothing;
        serialize_u64(u64) -> (), nothing;
        serialize_u128(u128) -> (), nothing;
        serialize_char(char) -> (), nothing;
        serialize_str(&str) -> (), nothing;
        serialize_bytes(&[u8]) -> (), nothing;
        serialize_none() -> (), nothing;
        serialize_unit() -> (), nothing;
        serialize_unit_struct(&'static str) -> (), nothing;
        serialize_unit_variant(&'static str, u32, &'static str) -> (), nothing;
        serialize_seq(Option<usize>) -> Self, parts;
        serialize_tuple(usize) -> Self, parts;
        serialize_tuple_struct(&'static str, usize) -> Self, parts;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self, parts;
        serialize_map(Option<usize>) -> Self, parts;
        serialize_struct(&'static str, usize) -> Self, parts;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self, parts;
    }
}

/// Each element, field or entry of a compound value is checked in turn.
macro_rules! check_each {
    ($($trait:ident :: $method:ident ( $($name:ident),* );)*) => {$(
        impl ser::$trait for FloatCheck {
            type Ok = ();
            type Error = Stopped;
            fn $method<T: Serialize + ?Sized>(&mut self, $($name: &'static str,)* value: &T) -> Checked {
                value.serialize(FloatCheck)
            }
            fn end(self) -> Checked {
                Ok(())
            }
        }
    )*};
}

check_each! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(_key);
    SerializeStructVariant::serialize_field(_key);
}

impl ser::SerializeMap for FloatCheck {
    type Ok = ();
    type Error = Stopped;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Checked {
        key.serialize(FloatCheck)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Checked {
        value.serialize(FloatCheck)
    }
    fn end(self) -> Checked {
        Ok(())
    }
}

//! A task's `config` read from a file: any JSON value, except that an object may not
//! name a key twice. JSON and YAML readers would keep the last value and drop the others
//! without a word (TOML refuses the document itself).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Reads a configuration value, refusing an object that repeats a key.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(ConfigVisitor)
}

/// One value inside a configuration.
struct Config;

impl<'de> DeserializeSeed<'de> for Config {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ConfigVisitor)
    }
}

struct ConfigVisitor;

fn too_long<E: de::Error>(value: impl fmt::Display) -> E {
    E::custom(format_args!(
        "integer {value} does not fit in 64 bits: write it as text, or as a float \
         (`{value}.0`) if an approximation will do"
    ))
}

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    // YAML and TOML integers past 64 bits: a JSON configuration holds no such integer,
    // and reading one as a float would change its value without a word. (JSON has one
    // kind of number, so a JSON file's long integer is read as the float it denotes.)
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        i64::try_from(value)
            .map(Value::from)
            .map_err(|_| too_long(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        u64::try_from(value)
            .map(Value::from)
            .map_err(|_| too_long(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // As `serde_json::Value` reads it: a number that is not finite is null (file
        // readers refuse those before this).
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ConfigVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items =
            Vec::with_capacity(crate::load::cautious_capacity::<Value>(seq.size_hint()));
        while let Some(item) = seq.next_element_seed(Config)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}`",
                    crate::error::quoted(&key)
                )));
            }
            let value = map.next_value_seed(Config)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

//! Configs as plain JSON: what a YAML or TOML document's task configs are, read as plain
//! data and converted by the obvious rules, to compare with what the loader made of them.

use serde_json::Value;

use super::doc::Syntax;

/// Where a task is in a document: under a key (map form), or at a position in a list of
/// `of` tasks (list form).
pub(crate) enum At {
    Key(String),
    Index { at: usize, of: usize },
}

/// Each task's config in `text`, as plain JSON; `None` if the document is not plain data
/// with a map or list of tasks. Tasks without a config are left out.
pub(crate) fn configs(syntax: Syntax, text: &str) -> Option<Vec<(At, Result<Value, Plain>)>> {
    match syntax {
        Syntax::Yaml => {
            use serde_yaml_ng::Value as Y;
            let document: Y = serde_yaml_ng::from_str(text).ok()?;
            let tasks = match document.get("tasks")? {
                Y::Mapping(tasks) => Tasks::Map(
                    tasks
                        .iter()
                        .filter_map(|(key, task)| Some((key.as_str()?.to_owned(), task)))
                        .collect(),
                ),
                Y::Sequence(tasks) => Tasks::List(tasks.iter().collect()),
                _ => return None,
            };
            Some(per_task(tasks, |task| {
                task.get("config").map(|c| yaml_to_json(c, "config"))
            }))
        }
        Syntax::Toml => {
            use toml::Value as T;
            let document: toml::Table = text.parse().ok()?;
            let tasks = match document.get("tasks")? {
                T::Table(tasks) => Tasks::Map(tasks.iter().map(|(k, t)| (k.clone(), t)).collect()),
                T::Array(tasks) => Tasks::List(tasks.iter().collect()),
                _ => return None,
            };
            Some(per_task(tasks, |task| {
                task.get("config").map(|c| toml_to_json(c, "config"))
            }))
        }
        Syntax::Json => None,
    }
}

/// A document's tasks, in either form, whatever the format.
enum Tasks<'d, V> {
    Map(Vec<(String, &'d V)>),
    List(Vec<&'d V>),
}

/// `config` of each task, with where the task is; tasks without a config are left out.
fn per_task<V>(
    tasks: Tasks<'_, V>,
    config: impl Fn(&V) -> Option<Result<Value, Plain>>,
) -> Vec<(At, Result<Value, Plain>)> {
    match tasks {
        Tasks::Map(tasks) => tasks
            .into_iter()
            .filter_map(|(key, task)| Some((At::Key(key), config(task)?)))
            .collect(),
        Tasks::List(tasks) => {
            let of = tasks.len();
            tasks
                .into_iter()
                .enumerate()
                .filter_map(|(at, task)| Some((At::Index { at, of }, config(task)?)))
                .collect()
        }
    }
}

/// Why a document has no plain JSON form.
pub(crate) enum Plain {
    NonFinite(String),
    NoJson,
}

fn number(value: f64, path: &str) -> Result<Value, Plain> {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| Plain::NonFinite(path.to_owned()))
}

fn yaml_to_json(value: &serde_yaml_ng::Value, path: &str) -> Result<Value, Plain> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => number(f, path)?,
            _ => return Err(Plain::NoJson),
        },
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut object = serde_json::Map::new();
            for (key, item) in map {
                let Y::String(key) = key else {
                    return Err(Plain::NoJson);
                };
                object.insert(key.clone(), yaml_to_json(item, &format!("{path}.{key}"))?);
            }
            Value::Object(object)
        }
        Y::Tagged(_) => return Err(Plain::NoJson),
    })
}

/// TOML data as JSON: datetimes become their RFC 3339 text.
fn toml_to_json(value: &toml::Value, path: &str) -> Result<Value, Plain> {
    use toml::Value as T;
    Ok(match value {
        T::String(s) => Value::String(s.clone()),
        T::Integer(i) => Value::from(*i),
        T::Float(f) => number(*f, path)?,
        T::Boolean(b) => Value::Bool(*b),
        T::Datetime(d) => Value::String(d.to_string()),
        T::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| toml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        T::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, item)| Ok((key.clone(), toml_to_json(item, &format!("{path}.{key}"))?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

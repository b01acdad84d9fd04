//! Outputs too large for a result message: kept in a JetStream object store bucket
//! named after the results stream, under the attempt's message id, and named by the
//! result message instead of carried in it.

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, object_store};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use futures_util::StreamExt as _;
use orch_engine::TaskError;
use serde_json::Value;

use crate::LOOK_UP_WAIT;
use crate::protocol::Names;
use crate::routes::AttemptKey;

/// The largest chunk of an object (the object store's usual size).
const CHUNK: usize = 128 * 1024;

/// How long reading a stored output waits for its description, and then for each next
/// part: parts gone from the bucket (expired, purged) while the description stays never
/// come, and the attempt then fails rather than waiting for ever.
const PART_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Stores `output` (its JSON bytes) as object `name`, in chunks that fit in a message
/// of `max_message_bytes`, creating the bucket if it is missing; the object is kept as
/// long as results are. Returns the size of the object stored under `name`: an object
/// already there (an output of the same attempt, stored by a delivery that did not get
/// to report it) is kept rather than replaced, which would upload it all again and need
/// the right to purge the bucket's stream.
pub(crate) async fn put(
    js: &jetstream::Context,
    names: &Names,
    retention: std::time::Duration,
    max_message_bytes: usize,
    name: &str,
    output: &[u8],
) -> Result<u64, String> {
    let bucket = open_bucket(js, names, retention).await?;
    if let Ok(info) = bucket.info(name).await
        && !info.deleted
    {
        return Ok(info.size as u64);
    }
    let mut reader = output;
    let metadata = object_store::ObjectMetadata {
        name: name.to_owned(),
        // Room for the chunk's headers.
        chunk_size: Some(CHUNK.min(max_message_bytes.saturating_sub(1024)).max(1024)),
        ..Default::default()
    };
    match bucket.put(metadata, &mut reader).await {
        Ok(_) => Ok(output.len() as u64),
        // Stored whole; the chunks of an object it replaced (one put at the same time)
        // stay until they expire.
        Err(e) if e.kind() == object_store::PutErrorKind::PurgeOldChunks => Ok(output.len() as u64),
        Err(e) => Err(format!("cannot store the output in the object store: {e}")),
    }
}

/// Finds the bucket, or creates it (a coordinator does at start, so that workers need
/// no right to create streams).
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    names: &Names,
    retention: std::time::Duration,
) -> Result<object_store::ObjectStore, String> {
    if let Ok(bucket) = js.get_object_store(names.results_bucket()).await {
        return Ok(bucket);
    }
    js.create_object_store(object_store::Config {
        bucket: names.results_bucket().to_owned(),
        description: Some("orch outputs too large for a result message".to_owned()),
        max_age: retention,
        ..Default::default()
    })
    .await
    .map_err(|e| {
        format!(
            "cannot open the object store bucket `{}`: {e}",
            names.results_bucket()
        )
    })
}

/// Refuses a bucket whose stream was made for another prefix: the bucket's stream is
/// named `OBJ_<results stream>`, which is also the results stream of a prefix that
/// starts with `obj` (prefix `obj.orch`'s results stream is prefix `orch`'s bucket's).
pub(crate) async fn refuse_another_prefixs(
    js: &jetstream::Context,
    names: &Names,
) -> Result<(), crate::ConnectError> {
    let name = bucket_stream(names.results_bucket());
    let setup = |reason: String| crate::ConnectError::Setup {
        what: format!("stream `{name}`"),
        reason,
    };
    let mut stream = js
        .get_stream(&name)
        .await
        .map_err(|e| setup(e.to_string()))?;
    let info = stream.info().await.map_err(|e| setup(e.to_string()))?;
    let chunks = parts_subject(names.results_bucket(), ">");
    crate::setup::holds_subjects(&name, &info.config, &chunks)
}

/// The stream that holds object store bucket `bucket`.
fn bucket_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// The subject of the parts of object `nuid` (`>`: of every object) in `bucket`.
fn parts_subject(bucket: &str, nuid: &str) -> String {
    format!("$O.{bucket}.C.{nuid}")
}

/// Reads object `name` back as the output it holds. One over `max_bytes` fails its
/// attempt for good (the handler would give as much again); one that cannot be read,
/// for this attempt.
pub(crate) async fn get(
    js: &jetstream::Context,
    names: &Names,
    name: &str,
    max_bytes: u64,
) -> Result<Value, TaskError> {
    let bucket = js
        .get_object_store(names.results_bucket())
        .await
        .map_err(|e| {
            TaskError::new(format!(
                "cannot open the object store bucket `{}`: {e}",
                names.results_bucket()
            ))
        })?;
    let unreadable = |e: &dyn std::fmt::Display| {
        TaskError::new(format!("cannot read the stored output `{name}`: {e}"))
    };
    let waited = |what: &str| {
        let after = PART_PATIENCE.as_secs();
        unreadable(&format!(
            "no {what} came within {after} s (gone from the bucket?)"
        ))
    };
    // Not permanent: the next attempt stores its output under a name of its own.
    let a_link = |bucket: &str, linked: &str| {
        TaskError::new(format!(
            "the stored output `{name}` is a link to `{linked}` in bucket `{bucket}`, not \
             this attempt's own output"
        ))
    };
    // The client's own read follows a link to the object it names, and links that
    // lead back to themselves for as long as it is let (a worker that may write the
    // bucket could make one between a look and the read): the parts of the object
    // described here are read directly, and a link is refused.
    let info = tokio::time::timeout(PART_PATIENCE, bucket.info(name)).await;
    let info = (info.map_err(|_| waited("description"))?).map_err(|e| unreadable(&e))?;
    if let Some(link) = info
        .options
        .as_ref()
        .and_then(|options| options.link.as_ref())
    {
        return Err(a_link(&link.bucket, link.name.as_deref().unwrap_or("")));
    }
    if info.deleted {
        return Err(unreadable(&"it was deleted"));
    }
    let too_large = |bytes: u64| {
        TaskError::permanent(format!(
            "the stored output `{name}` is {bytes} bytes, over this coordinator's limit of \
             {max_bytes} bytes (RemoteBuilder::max_output_bytes)"
        ))
    };
    if info.size as u64 > max_bytes {
        return Err(too_large(info.size as u64));
    }
    let bytes = read_parts(
        js,
        names.results_bucket(),
        &info,
        max_bytes,
        waited,
        unreadable,
    )
    .await?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| TaskError::new(format!("the stored output `{name}` is not JSON: {e}")))
}

/// Reads the parts of the object `info` describes in `bucket`, in order, stopping one
/// byte past `max_bytes` at most, and checks them against its digest.
async fn read_parts(
    js: &jetstream::Context,
    bucket: &str,
    info: &object_store::ObjectInfo,
    max_bytes: u64,
    waited: impl Fn(&str) -> TaskError,
    unreadable: impl Fn(&dyn std::fmt::Display) -> TaskError,
) -> Result<Vec<u8>, TaskError> {
    let mut bytes = Vec::with_capacity(info.size.min(1 << 26));
    if info.chunks == 0 {
        return Ok(bytes);
    }
    let stream = js.get_stream_no_info(bucket_stream(bucket));
    let stream = (tokio::time::timeout(PART_PATIENCE, stream).await)
        .map_err(|_| waited("part"))?
        .map_err(|e| unreadable(&e))?;
    let parts = stream.create_consumer(jetstream::consumer::push::OrderedConfig {
        deliver_subject: js.client().new_inbox(),
        filter_subject: parts_subject(bucket, &info.nuid),
        ..Default::default()
    });
    let parts = (tokio::time::timeout(PART_PATIENCE, parts).await)
        .map_err(|_| waited("part"))?
        .map_err(|e| unreadable(&e))?;
    let mut parts = (parts.messages().await).map_err(|e| unreadable(&e))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    loop {
        let part = tokio::time::timeout(PART_PATIENCE, parts.next()).await;
        let part = (part.map_err(|_| waited("part"))?)
            .ok_or_else(|| waited("part"))?
            .map_err(|e| unreadable(&e))?;
        // One byte past the limit at most, whatever the size of a part.
        let room = (max_bytes.saturating_add(1)).saturating_sub(bytes.len() as u64);
        let kept = &part.payload[..part
            .payload
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX))];
        bytes.extend_from_slice(kept);
        digest.update(kept);
        let pending = part.info().map_err(|e| unreadable(&e))?.pending;
        if pending == 0 || bytes.len() as u64 > max_bytes {
            break;
        }
    }
    if bytes.len() as u64 > max_bytes {
        return Ok(bytes);
    }
    let read = format!("SHA-256={}", URL_SAFE.encode(digest.finish()));
    match &info.digest {
        Some(stored) if *stored != read => Err(unreadable(&"its parts do not match its digest")),
        _ => Ok(bytes),
    }
}

/// The server could not say whether a result is stored, and why.
pub(crate) struct NotAnswered(pub(crate) String);

/// The first result message stored on the results stream for `key` (the one that
/// counts, however many deliveries stored one): `Ok(None)` when the server says there
/// is none. Not answered after [`LOOK_UP_WAIT`] (on a connection full while the server
/// is away, the question would wait for room as long as the server stays away).
pub(crate) async fn find_result(
    js: &jetstream::Context,
    names: &Names,
    key: &AttemptKey,
) -> Result<Option<bytes::Bytes>, NotAnswered> {
    let subject = names.result_subject(&key.run, &key.task, key.attempt);
    let stream = (js.get_stream_no_info(names.results_stream()).await)
        .map_err(|error| NotAnswered(error.to_string()))?;
    let asked = stream.get_first_raw_message_by_subject(&subject, 1);
    match tokio::time::timeout(LOOK_UP_WAIT, asked).await {
        Ok(Ok(message)) => Ok(Some(message.payload)),
        Ok(Err(error)) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Ok(Err(error)) => Err(NotAnswered(error.to_string())),
        Err(_) => Err(NotAnswered(format!("no answer within {LOOK_UP_WAIT:?}"))),
    }
}

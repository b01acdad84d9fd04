//! Finding a value of a YAML document by its field path, for errors the YAML parser
//! that reads workflows cannot place itself (it places a refused null at the map that
//! holds it).

use saphyr_parser::{Event, Parser, Span};
use serde_path_to_error::{Path, Segment};

use crate::yaml_depth::Chars;

/// The byte offset where the value at `path` starts in `text`, read with saphyr-parser;
/// `None` when the path goes through an alias, a key that is not plain text or is
/// written twice in its mapping (the error may be in either copy), or past a syntax
/// error.
pub(crate) fn value_at(text: &str, path: &Path) -> Option<usize> {
    let segments: Vec<&Segment> = path.iter().collect();
    for (depth, segment) in segments.iter().enumerate() {
        if let Segment::Map { key } = segment {
            let mut events = events_of(text);
            let mapping = descend(&mut events, &segments[..depth])?;
            if occurrences(&mut events, &mapping.0, key)? > 1 {
                return None;
            }
        }
    }
    let node = descend(&mut events_of(text), &segments)?;
    Some(Chars::new(text).byte_offset(node.1.start.index()))
}

/// The events of `text`'s first document, up to the first syntax error.
fn events_of(text: &str) -> impl Iterator<Item = (Event<'_>, Span)> {
    Parser::new_from_str(text).map_while(Result::ok)
}

/// The first event of the value at `segments` (the first copy of a repeated key).
fn descend<'t>(events: &mut Events<'t>, segments: &[&Segment]) -> Option<(Event<'t>, Span)> {
    let mut node = loop {
        let next = events.next()?;
        if !matches!(
            next.0,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_)
        ) {
            break next;
        }
    };
    for &segment in segments {
        node = match (segment, &node.0) {
            (Segment::Map { key }, Event::MappingStart(..)) => entry(events, key)?,
            (Segment::Seq { index }, Event::SequenceStart(..)) => {
                for _ in 0..*index {
                    let element = node_start(events)?;
                    skip_rest(events, &element.0)?;
                }
                node_start(events)?
            }
            (Segment::Enum { .. }, _) => node,
            _ => return None,
        };
    }
    Some(node)
}

/// How many times `key` is a key of the mapping that `first` starts, if it is one.
fn occurrences(events: &mut Events<'_>, first: &Event<'_>, key: &str) -> Option<usize> {
    if !matches!(first, Event::MappingStart(..)) {
        return None;
    }
    let mut count = 0;
    while let Some(found) = node_start(events) {
        count += usize::from(matches!(&found.0, Event::Scalar(text, ..) if text == key));
        skip_rest(events, &found.0)?;
        let value = node_start(events)?;
        skip_rest(events, &value.0)?;
    }
    Some(count)
}

type Events<'t> = dyn Iterator<Item = (Event<'t>, Span)> + 't;

/// The first event of the value under `key` in the mapping being read.
fn entry<'t>(events: &mut Events<'t>, key: &str) -> Option<(Event<'t>, Span)> {
    loop {
        let found = node_start(events)?;
        let matches = matches!(&found.0, Event::Scalar(text, ..) if text == key);
        skip_rest(events, &found.0)?;
        let value = node_start(events)?;
        if matches {
            return Some(value);
        }
        skip_rest(events, &value.0)?;
    }
}

/// The first event of the next node; `None` at the end of its collection.
fn node_start<'t>(events: &mut Events<'t>) -> Option<(Event<'t>, Span)> {
    events
        .next()
        .filter(|(event, _)| !matches!(event, Event::SequenceEnd | Event::MappingEnd))
}

/// Reads the rest of the node that `first` starts.
fn skip_rest(events: &mut Events<'_>, first: &Event<'_>) -> Option<()> {
    if !matches!(first, Event::SequenceStart(..) | Event::MappingStart(..)) {
        return Some(());
    }
    let mut open = 1usize;
    while open > 0 {
        match events.next()?.0 {
            Event::SequenceStart(..) | Event::MappingStart(..) => open += 1,
            Event::SequenceEnd | Event::MappingEnd => open -= 1,
            _ => {}
        }
    }
    Some(())
}

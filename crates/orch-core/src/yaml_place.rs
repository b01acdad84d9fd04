//! Finding a value of a YAML document by its field path, for errors the YAML parser
//! that reads workflows cannot place itself (it places a refused null at the map that
//! holds it).

use saphyr_parser::{Event, Parser, Span};
use serde_path_to_error::{Path, Segment};

use crate::yaml_depth::Chars;

/// The byte offset where the value at `path` starts in `text`, read with saphyr-parser;
/// `None` when the path goes through an alias, a key that is not plain text, or past a
/// syntax error.
pub(crate) fn value_at(text: &str, path: &Path) -> Option<usize> {
    let mut events = Parser::new_from_str(text).map_while(Result::ok);
    let mut node = events.find(|(event, _)| {
        !matches!(
            event,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_)
        )
    })?;
    for segment in path.iter() {
        node = match (segment, &node.0) {
            (Segment::Map { key }, Event::MappingStart(..)) => entry(&mut events, key)?,
            (Segment::Seq { index }, Event::SequenceStart(..)) => {
                for _ in 0..*index {
                    let element = node_start(&mut events)?;
                    skip_rest(&mut events, &element.0)?;
                }
                node_start(&mut events)?
            }
            (Segment::Enum { .. }, _) => node,
            _ => return None,
        };
    }
    Some(Chars::new(text).byte_offset(node.1.start.index()))
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

//! A deliberately small CSV reader for the example data files: a header line, then one
//! record per line, fields separated by commas, no quoting. Empty fields are kept (as
//! empty strings) so that callers can treat them as missing values.

use std::fmt;

/// A parsed file: the header's column names and the records, each with one field per
/// column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Column names, from the first line.
    pub columns: Vec<String>,
    /// The records, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Why a text is not a table this reader accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsvError {
    /// The text has no header line.
    Empty,
    /// A record (1-based line number) has the wrong number of fields.
    FieldCount {
        /// The line, counting the header as line 1.
        line: usize,
        /// Fields the header has.
        expected: usize,
        /// Fields the line has.
        found: usize,
    },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the CSV text has no header line"),
            Self::FieldCount {
                line,
                expected,
                found,
            } => write!(
                f,
                "line {line} has {found} fields, the header has {expected}"
            ),
        }
    }
}

impl std::error::Error for CsvError {}

/// Parses `text`. Blank lines are ignored; fields are trimmed.
///
/// ```
/// let table = examples::csv::parse("a,b\n1,2\n3,\n").unwrap();
/// assert_eq!(table.columns, ["a", "b"]);
/// assert_eq!(table.rows, [vec!["1", "2"], vec!["3", ""]]);
/// assert!(examples::csv::parse("a,b\n1\n").is_err());
/// ```
pub fn parse(text: &str) -> Result<Table, CsvError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let (_, header) = lines.next().ok_or(CsvError::Empty)?;
    let columns: Vec<String> = split(header);
    let mut rows = Vec::new();
    for (index, line) in lines {
        let fields = split(line);
        if fields.len() != columns.len() {
            return Err(CsvError::FieldCount {
                line: index + 1,
                expected: columns.len(),
                found: fields.len(),
            });
        }
        rows.push(fields);
    }
    Ok(Table { columns, rows })
}

fn split(line: &str) -> Vec<String> {
    line.split(',')
        .map(|field| field.trim().to_owned())
        .collect()
}

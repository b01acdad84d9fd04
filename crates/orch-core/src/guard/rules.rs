//! [`Rules`]: what a document read through [`Guarded`](super::Guarded) may do (its
//! budget for what YAML aliases expand to, how deeply it nests), and how
//! much of it is left.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use serde::de;

/// What one value read costs, against 1 per byte of text: a value held in memory takes
/// about this many times a byte of text (its slot in a list or map), so the budget
/// bounds memory rather than a count.
pub(crate) const VALUE_UNITS: u64 = 8;

/// What a map's first entry costs beyond its key and value: a map of one entry takes
/// room for eleven (a node of serde_json's map). Charged in full, a document of nothing
/// but maps of one entry, `[{a},{a}]`, would reach the limit with no alias in it; as it
/// is, memory per unit is about what it is for a list of numbers.
const FIRST_ENTRY_UNITS: u64 = 32;

/// The deepest a workflow file may nest lists and maps (tables and arrays), the workflow
/// itself counting as the first level: as deep as the JSON reader reads, so that a
/// workflow read from YAML or TOML can be written as JSON and read back. In TOML each
/// part of a dotted key (`a.b.c = 1`) opens a table too, so a small file could nest
/// thousands deep (the TOML parser's own limit counts only brackets and braces), and
/// reading a value recurses once per level.
pub(crate) const MAX_NESTING: usize = 127;

/// What a document may do, and how much of its budget is left.
pub(crate) struct Rules {
    /// The budget in units, [`VALUE_UNITS`] per value plus 1 per byte of text
    /// (`u64::MAX`: none).
    limit: u64,
    spent: Cell<u64>,
    pub(super) toml_datetimes: bool,
    /// Whether a plain `~`, `null` or empty value is null (YAML), which text refuses.
    pub(super) yaml_nulls: bool,
    /// Whether a null was refused where text belongs.
    null_refused: Cell<bool>,
    /// The most tables and arrays open at once.
    max_depth: usize,
    /// How many are open now.
    depth: Cell<usize>,
    /// The last key refused after it was read ahead of its table: its place, and the
    /// message of the error refusing it.
    refused_key: RefCell<Option<(Range<usize>, String)>>,
}

impl Rules {
    /// YAML: at most `limit` units, aliases expanded ([`VALUE_UNITS`] per value plus 1
    /// per byte of its text).
    #[cfg(feature = "yaml")]
    pub(crate) fn yaml(limit: u64) -> Self {
        Self {
            limit,
            spent: Cell::new(0),
            toml_datetimes: false,
            yaml_nulls: true,
            null_refused: Cell::new(false),
            // Flow collections are bounded before the YAML parser reads them too
            // (`yaml_depth::too_deep`); the parser's own limit is one level deeper.
            max_depth: MAX_NESTING,
            depth: Cell::new(0),
            refused_key: RefCell::new(None),
        }
    }

    /// JSON: no budget (JSON has no aliases); nested at most [`MAX_NESTING`] deep, which
    /// the JSON reader's own limit refuses first.
    pub(crate) fn json() -> Self {
        Self {
            limit: u64::MAX,
            spent: Cell::new(0),
            toml_datetimes: false,
            yaml_nulls: false,
            null_refused: Cell::new(false),
            max_depth: MAX_NESTING,
            depth: Cell::new(0),
            refused_key: RefCell::new(None),
        }
    }

    /// TOML: datetimes become text; no budget (TOML has no aliases); tables and arrays
    /// nested at most [`MAX_NESTING`] deep.
    #[cfg(feature = "toml")]
    pub(crate) fn toml() -> Self {
        Self {
            limit: u64::MAX,
            spent: Cell::new(0),
            toml_datetimes: true,
            yaml_nulls: false,
            null_refused: Cell::new(false),
            max_depth: MAX_NESTING,
            depth: Cell::new(0),
            refused_key: RefCell::new(None),
        }
    }

    /// Notes that a null was refused where text belongs.
    pub(super) fn refuse_null(&self) {
        self.null_refused.set(true);
    }

    /// Whether a null was refused where text belongs: the YAML parser places that
    /// error at the map holding the null, not at the null.
    #[cfg(feature = "yaml")]
    pub(crate) fn null_refused(&self) -> bool {
        self.null_refused.get()
    }

    /// The budget, when reading stopped because it was spent.
    #[cfg(feature = "yaml")]
    pub(crate) fn exceeded(&self) -> Option<u64> {
        (self.spent.get() > self.limit).then_some(self.limit)
    }

    /// Charges a value with `text_bytes` bytes of text.
    pub(super) fn charge<E: de::Error>(&self, text_bytes: usize) -> Result<(), E> {
        self.spend(VALUE_UNITS.saturating_add(text_bytes as u64))
    }

    /// Charges a map's first entry beyond its key and value, which are charged as
    /// values.
    pub(super) fn charge_first_entry<E: de::Error>(&self) -> Result<(), E> {
        self.spend(FIRST_ENTRY_UNITS)
    }

    fn spend<E: de::Error>(&self, units: u64) -> Result<(), E> {
        let spent = self.spent.get().saturating_add(units);
        self.spent.set(spent);
        if spent > self.limit {
            return Err(E::custom(format!(
                "aliases expand the document past its limit of {} units ({VALUE_UNITS} per \
                 value, 1 per byte of text, {FIRST_ENTRY_UNITS} more for a map's first entry)",
                self.limit
            )));
        }
        Ok(())
    }

    /// Notes that the key at `span`, read ahead of its table, was refused with error
    /// `message`: the error does not say where the key is.
    pub(super) fn key_refused(&self, span: Range<usize>, message: String) {
        *self.refused_key.borrow_mut() = Some((span, message));
    }

    /// Where the key refused with error `message` is, if one read ahead of its table
    /// was ([`Rules::key_refused`]).
    #[cfg(feature = "toml")]
    pub(crate) fn refused_key_at(&self, message: &str) -> Option<Range<usize>> {
        let refused = self.refused_key.borrow();
        let (span, refused_with) = refused.as_ref()?;
        // (The error as text may end in a line break where its message does not.)
        (refused_with.trim_end() == message.trim_end()).then(|| span.clone())
    }

    /// Opens one more level of nesting, until the [`Level`] returned is dropped; an error
    /// past the most allowed.
    pub(super) fn enter<E: de::Error>(&self) -> Result<Level<'_>, E> {
        let depth = self.depth.get() + 1;
        if depth > self.max_depth {
            return Err(E::custom(format!(
                "collections nested deeper than {} levels",
                self.max_depth
            )));
        }
        self.depth.set(depth);
        Ok(Level(self))
    }
}

/// A level of nesting opened by [`Rules::enter`], closed when dropped.
pub(super) struct Level<'r>(&'r Rules);

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.depth.set(self.0.depth.get() - 1);
    }
}

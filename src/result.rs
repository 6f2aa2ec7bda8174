//! Typed result tables: named columns and rows of cells. No terminal code.
//!
//! Uses: `model`.

use std::fmt;

/// One value of a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Missing.
    Null,
    /// An integer (counts).
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A rate in [0, 1].
    Rate(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An instant (µs since the epoch), shown as ISO 8601 UTC.
    Time(i64),
}

impl fmt::Display for Cell {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => formatter.write_str("NULL"),
            Cell::Int(n) => write!(formatter, "{n}"),
            Cell::Float(x) => write!(formatter, "{}", (x * 1e6).round() / 1e6),
            Cell::Rate(x) => write!(formatter, "{:.4}", x),
            Cell::Str(s) => formatter.write_str(s),
            Cell::Bool(b) => write!(formatter, "{b}"),
            Cell::Time(us) => formatter.write_str(&crate::model::format_ts(*us)),
        }
    }
}

impl Cell {
    /// True for [`Cell::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// An integer cell's value (counts, ranks, customer numbers).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A number: an integer, decimal or rate cell's value as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(n) => Some(*n as f64),
            Cell::Float(x) | Cell::Rate(x) => Some(*x),
            _ => None,
        }
    }

    /// A text cell's value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Str(text) => Some(text),
            _ => None,
        }
    }

    /// An instant's value, in microseconds since the epoch.
    pub fn as_time(&self) -> Option<i64> {
        match self {
            Cell::Time(us) => Some(*us),
            _ => None,
        }
    }

    /// A boolean cell's value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The cell as a JSON value, as `--format json` writes it: numbers at full precision
    /// (a NaN or infinity as `null`), instants as ISO 8601 text.
    pub fn to_json(&self) -> String {
        match self {
            Cell::Null => "null".to_owned(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(x) | Cell::Rate(x) if x.is_finite() => x.to_string(),
            Cell::Float(_) | Cell::Rate(_) => "null".to_owned(),
            Cell::Bool(value) => value.to_string(),
            Cell::Str(_) | Cell::Time(_) => json_string(&self.to_string()),
        }
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ch if (ch as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", ch as u32)),
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// The prefix of TIMELINE's property columns (`properties.amount`): JSON nests them into one
/// `properties` object per row, the shell's table view shows them as one `name=value` column,
/// and the Python package as one struct column.
pub const PROPERTIES_PREFIX: &str = "properties.";

/// A result table.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use journeydb::{Db, Event, Options, Query};
/// let dir = tempfile::tempdir()?;
/// let db = Db::create(dir.path().join("shop"), Options::default())?;
/// let day = 86_400_000_000;
/// db.commit(&[
///     Event::new("ann", 0, "visit"),
///     Event::new("ann", day, "purchase"),
///     Event::new("bob", 0, "visit"),
/// ])?;
/// let funnel = db.query("FUNNEL visit -> purchase WITHIN 7d")?;
/// // One record per step: the share of step 1's customers that reached it.
/// let last = funnel.records().last().expect("a row per step");
/// assert_eq!(last.get("customers").and_then(|c| c.as_i64()), Some(1));
/// assert_eq!(last.get("conversion_from_first").and_then(|c| c.as_f64()), Some(0.5));
/// assert!(funnel.to_json().starts_with("[{\"step\": 1"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Column names (stable; documented in docs/QUERY.md).
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
    /// What the answer's reader should know (an event name not stored yet, which matched
    /// nothing); empty for most answers.
    pub warnings: Vec<String>,
}

impl Table {
    /// A table with these columns and no rows.
    pub fn new(columns: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|s| (*s).to_owned()).collect(),
            rows: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }

    /// The cell of row `row` in the column named `name`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Cell> {
        self.rows.get(row)?.get(self.column(name)?)
    }

    /// The rows as records, whose cells can be read by column name.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = Record<'_>> + ExactSizeIterator {
        self.rows.iter().map(move |cells| Record { table: self, cells })
    }

    /// The rows as one JSON array of objects on one line, exactly as `--format json` writes a
    /// result (keys in column order).
    pub fn to_json(&self) -> String {
        format!("[{}]\n", self.json_objects().join(", "))
    }

    /// The rows as JSON Lines, exactly as `--format jsonl` writes them: one object per row, one
    /// row per line (keys in column order).
    pub fn to_json_lines(&self) -> String {
        self.json_objects()
            .iter()
            .map(|object| format!("{object}\n"))
            .collect()
    }

    /// Each row as a JSON object. Columns named `properties.NAME` (TIMELINE's) form one nested
    /// object `"properties": {"NAME": …}` holding the row's non-null members, as event APIs
    /// write an event's properties.
    fn json_objects(&self) -> Vec<String> {
        (self.rows.iter())
            .map(|cells| {
                let mut fields: Vec<String> = Vec::new();
                let mut nested: Option<(usize, Vec<String>)> = None;
                for (name, cell) in self.columns.iter().zip(cells) {
                    match name.strip_prefix(PROPERTIES_PREFIX) {
                        Some(member) => {
                            let (_, members) = nested.get_or_insert_with(|| (fields.len(), Vec::new()));
                            if *cell != Cell::Null {
                                members.push(format!("{}: {}", json_string(member), cell.to_json()));
                            }
                        }
                        None => fields.push(format!("{}: {}", json_string(name), cell.to_json())),
                    }
                }
                if let Some((at, members)) = nested {
                    fields.insert(at, format!("\"properties\": {{{}}}", members.join(", ")));
                }
                format!("{{{}}}", fields.join(", "))
            })
            .collect()
    }

    /// Plain text: a header line, then one line per row, cells separated by " | ", then one
    /// `warning: …` line per warning.
    pub fn to_text(&self) -> String {
        let mut out = self.columns.join(" | ");
        out.push('\n');
        for r in &self.rows {
            out.push_str(&r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "));
            out.push('\n');
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {warning}\n"));
        }
        out
    }
}

/// One row of a [`Table`], read by column name.
#[derive(Clone, Copy, Debug)]
pub struct Record<'t> {
    table: &'t Table,
    cells: &'t [Cell],
}

impl<'t> Record<'t> {
    /// The cell in the column named `name`.
    pub fn get(&self, name: &str) -> Option<&'t Cell> {
        self.cells.get(self.table.column(name)?)
    }

    /// The cells, in column order.
    pub fn cells(&self) -> &'t [Cell] {
        self.cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each getter reads its own kind of cell and no other; JSON escapes text and writes no
    /// NaN; a table's cells are found by column name, row by row or as records.
    #[test]
    fn cells_and_tables_are_read_by_kind_and_name() {
        let cells = [
            Cell::Int(3),
            Cell::Float(0.25),
            Cell::Rate(0.5),
            Cell::Str("a\"b\n".into()),
            Cell::Time(0),
            Cell::Bool(true),
            Cell::Null,
        ];
        let ints: Vec<Option<i64>> = cells.iter().map(Cell::as_i64).collect();
        assert_eq!(ints, [Some(3), None, None, None, None, None, None]);
        let floats: Vec<Option<f64>> = cells.iter().map(Cell::as_f64).collect();
        assert_eq!(floats, [Some(3.0), Some(0.25), Some(0.5), None, None, None, None]);
        assert_eq!(cells[3].as_str(), Some("a\"b\n"));
        assert_eq!(cells[4].as_time(), Some(0));
        assert_eq!(cells[5].as_bool(), Some(true));
        assert!(cells[6].is_null() && !cells[0].is_null());
        let json: Vec<String> = cells.iter().map(Cell::to_json).collect();
        assert_eq!(
            json,
            [
                "3",
                "0.25",
                "0.5",
                "\"a\\\"b\\u000a\"",
                "\"1970-01-01T00:00:00.000Z\"",
                "true",
                "null"
            ]
        );
        assert_eq!(Cell::Float(f64::NAN).to_json(), "null");
        let mut table = Table::new(&["step", "customers"]);
        table.rows = vec![
            vec![Cell::Int(1), Cell::Int(10)],
            vec![Cell::Int(2), Cell::Int(4)],
        ];
        assert_eq!(table.get(1, "customers"), Some(&Cell::Int(4)));
        assert_eq!(table.get(2, "customers"), None);
        assert_eq!(table.get(0, "nope"), None);
        let last = table.records().next_back().unwrap();
        assert_eq!(last.get("step").and_then(Cell::as_i64), Some(2));
        assert_eq!(last.cells().len(), 2);
        assert_eq!(
            table.to_json(),
            "[{\"step\": 1, \"customers\": 10}, {\"step\": 2, \"customers\": 4}]\n"
        );
        assert_eq!(
            table.to_json_lines(),
            "{\"step\": 1, \"customers\": 10}\n{\"step\": 2, \"customers\": 4}\n"
        );
    }
}

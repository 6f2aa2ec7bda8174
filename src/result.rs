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

/// A result table.
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

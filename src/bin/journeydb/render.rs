//! Rendering result tables: aligned text, CSV, JSON (one array of row objects, as duckdb's
//! `.mode json`). Control characters in values are escaped so nothing printed can drive the
//! terminal.

use journeydb::{Cell, Table};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON array of row objects per result, on one line (several statements: JSON Lines of
    /// arrays).
    Json,
    /// JSON Lines: one object per row, one row per line.
    Jsonl,
    /// A GitHub-flavoured Markdown table.
    Markdown,
}

/// `text` with control characters written as escapes (`\n`, `\u{1b}`), so that nothing printed can
/// drive the terminal.
pub fn escape_control(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Rate(x) => format!("{:.2}%", x * 100.0),
        Cell::Int(n) => group_thousands(*n),
        other => escape_control(&other.to_string()),
    }
}

/// `number` with thousands separators: `1,234,567`.
pub fn group_thousands(number: i64) -> String {
    let digits = number.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if number < 0 { format!("-{out}") } else { out }
}

fn table(table: &Table) -> String {
    let rows: Vec<Vec<String>> = table.rows.iter().map(|r| r.iter().map(text).collect()).collect();
    let mut width: Vec<usize> = table.columns.iter().map(|c| c.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..table.columns.len())
        .map(|i| {
            table.rows.iter().all(|r| {
                matches!(
                    r.get(i),
                    Some(Cell::Int(_) | Cell::Float(_) | Cell::Rate(_) | Cell::Null)
                )
            })
        })
        .collect();
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = width[i].saturating_sub(c.chars().count());
                if numeric[i] {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        format!("│ {} │\n", parts.join(" │ "))
    };
    let rule = |l: &str, m: &str, r: &str| {
        format!(
            "{l}{}{r}\n",
            width
                .iter()
                .map(|w| "─".repeat(w + 2))
                .collect::<Vec<_>>()
                .join(m)
        )
    };
    let mut out = rule("┌", "┬", "┐");
    out += &line(&table.columns);
    out += &rule("├", "┼", "┤");
    for r in &rows {
        out += &line(r);
    }
    out += &rule("└", "┴", "┘");
    out += &format!(
        "{} row{}\n",
        table.rows.len(),
        if table.rows.len() == 1 { "" } else { "s" }
    );
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv(table: &Table) -> String {
    let mut out = table
        .columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for r in &table.rows {
        let cells: Vec<String> = r
            .iter()
            .map(|c| match c {
                Cell::Null => String::new(),
                // Numbers at full precision, as JSON has them (the table view rounds).
                Cell::Float(x) | Cell::Rate(x) if x.is_finite() => x.to_string(),
                Cell::Float(_) | Cell::Rate(_) => String::new(),
                other => csv_field(&other.to_string()),
            })
            .collect();
        out += &(cells.join(",") + "\n");
    }
    out
}

fn json(table: &Table) -> String {
    table.to_json()
}

fn markdown(table: &Table) -> String {
    let cell = |s: String| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n",
        table
            .columns
            .iter()
            .map(|c| cell(c.clone()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out += &format!("|{}\n", "---|".repeat(table.columns.len()));
    for r in &table.rows {
        out += &format!(
            "| {} |\n",
            r.iter().map(|c| cell(text(c))).collect::<Vec<_>>().join(" | ")
        );
    }
    out
}

/// Renders `result` in `format`.
pub fn render(result: &Table, format: Format) -> String {
    match format {
        Format::Table => table(result),
        Format::Csv => csv(result),
        Format::Json => json(result),
        Format::Jsonl => result.to_json_lines(),
        Format::Markdown => markdown(result),
    }
}

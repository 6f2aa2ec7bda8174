//! Rendering result tables: aligned text, CSV, JSON (one array of row objects, as duckdb's
//! `.mode json`). Control characters in values are escaped so nothing printed can drive the
//! terminal.

use std::fmt::Write as _;

use journeydb::{Cell, Table};

use crate::layout;

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

/// A column of seconds (its name ends in `_s`): the table view shows durations (`25m 10s`).
fn is_duration(name: &str) -> bool {
    name.ends_with("_s")
}

/// A column's name as the table view heads it: a column of seconds without its `_s`, since the
/// view shows durations (`median_time_to_convert`).
fn shown_header(name: &str) -> String {
    if is_duration(name) {
        name.trim_end_matches("_s").to_owned()
    } else {
        name.to_owned()
    }
}

/// Each cell of `table` as the table view shows it: rates as percentages, integers grouped,
/// seconds as durations, floats at one number of decimals per column.
fn cell_texts(table: &Table) -> Vec<Vec<String>> {
    let decimals: Vec<usize> = (0..table.columns.len())
        .map(|column| {
            layout::decimals_for(table.rows.iter().filter_map(|row| match row.get(column) {
                Some(Cell::Float(x)) => Some(*x),
                _ => None,
            }))
        })
        .collect();
    table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(column, cell)| {
                    let seconds = table.columns.get(column).is_some_and(|name| is_duration(name));
                    match cell {
                        Cell::Float(x) if seconds => layout::duration(*x),
                        Cell::Int(n) if seconds => layout::duration(*n as f64),
                        Cell::Float(x) if x.is_finite() => layout::float_text(*x, decimals[column]),
                        other => text(other),
                    }
                })
                .collect()
        })
        .collect()
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

/// The table view of `table`, fitted to `width` columns when given: headers wrap after `_`,
/// and a table still too wide is folded into blocks of columns, each repeating the first column
/// under a `(columns a–b of n)` marker; a cell too long for any block is cut with `…`.
fn table(table: &Table, width: Option<usize>) -> String {
    let rows = cell_texts(table);
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
    let cells_width: Vec<usize> = (0..table.columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let headers: Vec<String> = table.columns.iter().map(|name| shown_header(name)).collect();
    let natural: Vec<usize> = headers
        .iter()
        .zip(&cells_width)
        .map(|(name, &cells)| cells.max(name.chars().count()))
        .collect();
    let blocks = match width {
        Some(limit) if box_width(&natural) > limit => fold(&headers, &cells_width, &natural, limit),
        _ => vec![Block {
            columns: (0..natural.len()).collect(),
            widths: natural,
        }],
    };
    let mut out = String::new();
    for (index, block) in blocks.iter().enumerate() {
        if blocks.len() > 1 {
            let (first, last) = (block.columns.get(usize::from(index > 0)), block.columns.last());
            let _ = writeln!(
                out,
                "(columns {}–{} of {})",
                first.map_or(0, |c| c + 1),
                last.map_or(0, |c| c + 1),
                table.columns.len()
            );
        }
        out += &draw_block(&headers, &rows, &numeric, block);
    }
    out += &format!(
        "{} row{}\n",
        table.rows.len(),
        if table.rows.len() == 1 { "" } else { "s" }
    );
    out
}

/// Columns drawn together in one box, with their widths.
struct Block {
    columns: Vec<usize>,
    widths: Vec<usize>,
}

/// The width of a box of columns this wide: `│ a │ b │`.
fn box_width(widths: &[usize]) -> usize {
    widths.iter().sum::<usize>() + 3 * widths.len() + 1
}

/// Blocks of columns that fit `limit`: each column at its narrowest (its widest cell, or its
/// longest header word), cut to what one block can show; the first column repeats in every
/// block; spare width goes to wrapped headers, so they take fewer lines.
fn fold(headers: &[String], cells_width: &[usize], natural: &[usize], limit: usize) -> Vec<Block> {
    let narrowest: Vec<usize> = headers
        .iter()
        .zip(cells_width)
        .map(|(name, &cells)| cells.max(layout::header_min_width(name)))
        .collect();
    let key_share = if headers.len() == 1 {
        limit.saturating_sub(4)
    } else {
        limit.saturating_sub(4) / 2
    };
    let key = narrowest.first().copied().unwrap_or(0).min(key_share).max(1);
    // A column beside the key column can take the rest of the line.
    let cap = limit.saturating_sub(key + 7).max(1);
    let mut blocks: Vec<Block> = Vec::new();
    let mut current = Block {
        columns: vec![0],
        widths: vec![key],
    };
    for (column, &narrow) in narrowest.iter().enumerate().skip(1) {
        let column_width = narrow.min(cap);
        if current.columns.len() > 1 && box_width(&current.widths) + column_width + 3 > limit {
            blocks.push(std::mem::replace(
                &mut current,
                Block {
                    columns: vec![0],
                    widths: vec![key],
                },
            ));
        }
        current.columns.push(column);
        current.widths.push(column_width);
    }
    blocks.push(current);
    for block in &mut blocks {
        give_spare_width(headers, natural, limit, block);
    }
    blocks
}

/// Widens the columns of `block` within `limit` where that saves a header line: first the
/// header on the most lines, then the cheapest saving.
fn give_spare_width(headers: &[String], natural: &[usize], limit: usize, block: &mut Block) {
    loop {
        let spare = limit.saturating_sub(box_width(&block.widths));
        let mut best: Option<(usize, usize, usize)> = None; // (lines, cost, slot)
        for (slot, (&column, &width)) in block.columns.iter().zip(&block.widths).enumerate() {
            let lines = layout::wrap_header(&headers[column], width).len();
            let fewer = (width + 1..=natural[column].min(width + spare))
                .find(|&wider| layout::wrap_header(&headers[column], wider).len() < lines);
            if let Some(wider) = fewer {
                let candidate = (lines, wider - width, slot);
                let better = best.is_none_or(|(best_lines, best_cost, _)| {
                    lines > best_lines || (lines == best_lines && wider - width < best_cost)
                });
                if better {
                    best = Some(candidate);
                }
            }
        }
        let Some((_, cost, slot)) = best else { return };
        block.widths[slot] += cost;
    }
}

/// One box: the header (wrapped to the column widths), a rule, and every row.
fn draw_block(headers: &[String], rows: &[Vec<String>], numeric: &[bool], block: &Block) -> String {
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(block.columns.iter().zip(&block.widths))
            .map(|(cell, (&column, &width))| {
                let cell = layout::truncate(cell, width);
                let pad = width.saturating_sub(cell.chars().count());
                if numeric[column] {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        format!("│ {} │\n", parts.join(" │ "))
    };
    let rule = |l: &str, m: &str, r: &str| {
        let parts: Vec<String> = block.widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let wrapped: Vec<Vec<String>> = block
        .columns
        .iter()
        .zip(&block.widths)
        .map(|(&column, &width)| {
            let name = &headers[column];
            if name.chars().count() <= width {
                vec![name.clone()]
            } else {
                layout::wrap_header(name, width)
            }
        })
        .collect();
    let header_lines = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    let mut out = rule("┌", "┬", "┐");
    for index in 0..header_lines {
        out += &line(
            wrapped
                .iter()
                .map(|h| h.get(index).cloned().unwrap_or_default())
                .collect(),
        );
    }
    out += &rule("├", "┼", "┤");
    for row in rows {
        out += &line(
            block
                .columns
                .iter()
                .map(|&c| row.get(c).cloned().unwrap_or_default())
                .collect(),
        );
    }
    out += &rule("└", "┴", "┘");
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

/// TIMELINE's `properties.NAME` columns as one `properties` column for people
/// (`amount=191.64, channel=mobile`, the row's non-null values by name); other tables as they are.
fn with_properties_text(result: &Table) -> std::borrow::Cow<'_, Table> {
    const PREFIX: &str = journeydb::PROPERTIES_PREFIX;
    let Some(first) = result.columns.iter().position(|name| name.starts_with(PREFIX)) else {
        return std::borrow::Cow::Borrowed(result);
    };
    let keep: Vec<usize> = (0..result.columns.len())
        .filter(|&at| !result.columns[at].starts_with(PREFIX))
        .collect();
    let mut compact = Table::new(&[]);
    compact.columns = keep.iter().map(|&at| result.columns[at].clone()).collect();
    compact.columns.insert(first, "properties".to_owned());
    for row in &result.rows {
        let text = (result.columns.iter().zip(row))
            .filter_map(|(name, cell)| {
                let name = name.strip_prefix(PREFIX)?;
                let value = match cell {
                    Cell::Null => return None,
                    Cell::Float(x) => x.to_string(),
                    other => other.to_string(),
                };
                Some(format!("{name}={value}"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut cells: Vec<Cell> = keep
            .iter()
            .map(|&at| row.get(at).cloned().unwrap_or(Cell::Null))
            .collect();
        cells.insert(first, Cell::Str(text));
        compact.rows.push(cells);
    }
    compact.warnings = result.warnings.clone();
    std::borrow::Cow::Owned(compact)
}

/// Renders `result` in `format`; the table view fits `width` columns when given. The views
/// for people (table, markdown) show TIMELINE's properties as one column of `name=value`.
pub fn render(result: &Table, format: Format, width: Option<usize>) -> String {
    let shown = match format {
        Format::Table | Format::Markdown => with_properties_text(result),
        _ => std::borrow::Cow::Borrowed(result),
    };
    let result = shown.as_ref();
    match format {
        Format::Table => table(result, width),
        Format::Csv => csv(result),
        Format::Json => json(result),
        Format::Jsonl => result.to_json_lines(),
        Format::Markdown => markdown(result),
    }
}

//! Terminal charts for query results: funnel bars, a retention heat map, trend columns per
//! series, lifecycle and stage stacks, stickiness bars, and a journey map of stage transitions.
//! Colour only when asked (stdout is a TTY and `NO_COLOR` is unset); the plain form uses shade
//! characters so that it still reads in a log file. Every chart fits `Style::width`: bars
//! shrink, series are resampled, labels are cut with `…`.

mod customers;
mod journey;
mod series;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use journeydb::{Cell, Stage, Table};

use crate::render::{escape_control, group_thousands};
use customers::{calibration, fit, paths, time_unit, top_customers};
use journey::{funnel, lifecycle, retention, stages, stickiness, transitions};
use series::{changes, heatmap, trend};

const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

pub(super) const COLUMNS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

pub(super) const BAR: usize = 40;

/// Drawing options.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Emit ANSI colours.
    pub color: bool,
    /// The width the chart fits (`usize::MAX`: no limit); bars shrink to it.
    pub width: usize,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Cells for a bar on a line whose other parts take `used` cells: what is left of the
    /// width, at most `most`, at least 8 (a line may then be cut with `…`).
    fn bar_room(&self, used: usize, most: usize) -> usize {
        self.width.saturating_sub(used).min(most).max(most.min(8))
    }
}

/// A horizontal bar of `frac` (0..=1) of `width` cells, in eighths.
pub(super) fn bar(frac: f64, width: usize) -> String {
    let eighths = (frac.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[eighths % 8 - 1]);
    }
    s
}

/// A painted bar padded with spaces to `width` cells.
pub(super) fn padded_bar(frac: f64, width: usize, style: Style, code: &str) -> String {
    let b = bar(frac, width);
    let pad = width.saturating_sub(b.chars().count());
    format!("{}{}", style.paint(code, &b), " ".repeat(pad))
}

pub(super) fn col(table: &Table, name: &str) -> Option<usize> {
    table.columns.iter().position(|c| c == name)
}

pub(super) fn int(cell: Option<&Cell>) -> i64 {
    match cell {
        Some(Cell::Int(n)) => *n,
        Some(Cell::Float(x)) => *x as i64,
        _ => 0,
    }
}

pub(super) fn num(cell: Option<&Cell>) -> f64 {
    match cell {
        Some(Cell::Int(n)) => *n as f64,
        Some(Cell::Float(x) | Cell::Rate(x)) => *x,
        _ => 0.0,
    }
}

/// The widest label of a column, in characters (0 for no rows).
pub(super) fn widest(table: &Table, column: usize) -> usize {
    table
        .rows
        .iter()
        .map(|r| label(r.get(column)).chars().count())
        .max()
        .unwrap_or(0)
}

pub(super) fn label(cell: Option<&Cell>) -> String {
    cell.map_or_else(String::new, |cell| escape_control(&cell.to_string()))
}

pub(super) fn stage_color(name: &str) -> &'static str {
    match Stage::parse(name) {
        Some(Stage::Awareness) => "38;5;39",
        Some(Stage::Consideration) => "38;5;214",
        Some(Stage::Purchase) => "38;5;42",
        Some(Stage::Retention) => "38;5;141",
        Some(Stage::Advocacy) => "38;5;205",
        None => "38;5;250",
    }
}

/// Rows grouped by the value of column `group` (one group when there is no such column), in order
/// of first appearance.
pub(super) fn groups(table: &Table, group: Option<usize>) -> Vec<(String, Vec<&Vec<Cell>>)> {
    let mut out: Vec<(String, Vec<&Vec<Cell>>)> = Vec::new();
    // `BY p1, p2`: a group is the pair.
    let second = col(table, "group2");
    for r in &table.rows {
        let mut key = group.map(|group| label(r.get(group))).unwrap_or_default();
        if let Some(g2) = second {
            key = format!("{key} · {}", label(r.get(g2)));
        }
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(r),
            None => out.push((key, vec![r])),
        }
    }
    out
}

/// A chart for the result of `statement` (its first keyword decides), or `None` when the
/// result has no chart form.
pub fn chart(statement: &str, table: &Table, style: Style) -> Option<String> {
    if table.rows.is_empty() {
        return None;
    }
    let kind = statement
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let drawn = match kind.as_str() {
        "FUNNEL" => funnel(table, style),
        "RETENTION" => per_group(table, style, retention),
        "TREND" => trend(table, style),
        "LIFECYCLE" => per_group(table, style, lifecycle),
        "STICKINESS" => per_group(table, style, stickiness),
        "STAGES" => stages(table, style),
        "TRANSITIONS" => transitions(table, style),
        "TOP" => top_customers(table, style),
        "PATHS" => per_group(table, style, paths),
        "HEATMAP" => per_group(table, style, heatmap),
        "CHANGES" => changes(table, style),
        "FIT" => fit(table, style, time_unit(statement)),
        "PREDICT" if col(table, "expected_mean").is_some() => calibration(table, style),
        _ => None,
    };
    // Where a week appears, say where it starts.
    let words: Vec<String> = statement
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let weekly = words
        .windows(2)
        .any(|pair| pair[0] == "PERIOD" && pair[1].trim_end_matches(';') == "WEEK");
    let sunday = words
        .windows(2)
        .any(|pair| pair[0] == "WEEK" && pair[1] == "START");
    match drawn {
        Some(chart) if weekly && !sunday => {
            Some(chart + "(weeks start on Monday; WEEK START sunday changes it)\n")
        }
        other => other,
    }
}

/// `draw` once per value of a leading `group` column (`BY COHORT`), each under its group's
/// name; `draw` alone when there is no such column.
pub(super) fn per_group(
    table: &Table,
    style: Style,
    draw: fn(&Table, Style) -> Option<String>,
) -> Option<String> {
    let Some(g) = col(table, "group") else {
        return draw(table, style);
    };
    let mut out = String::new();
    for (name, rows) in groups(table, Some(g)) {
        let mut part = Table::new(&[]);
        part.columns = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != g)
            .map(|(_, c)| c.clone())
            .collect();
        part.rows = rows
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != g)
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .collect();
        if let Some(chart) = draw(&part, style) {
            let _ = writeln!(out, "{}", style.paint("1", &name));
            out.push_str(&chart);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A change with its sign (`+12`, `-3.5`), or empty for NULL.
pub(super) fn signed(cell: Option<&Cell>) -> String {
    match cell {
        Some(Cell::Int(n)) if *n > 0 => format!("+{}", group_thousands(*n)),
        Some(Cell::Int(n)) => group_thousands(*n),
        Some(Cell::Float(x)) if *x > 0.0 => format!("+{}", fmt_num(*x)),
        Some(Cell::Float(x)) => fmt_num(*x),
        _ => String::new(),
    }
}

pub(super) fn fmt_num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        group_thousands(value as i64)
    } else {
        format!("{value:.2}")
    }
}

/// Background colour for a retention rate: a ramp from dark to bright green.
pub(super) fn heat(rate: f64) -> &'static str {
    const RAMP: [&str; 6] = [
        "48;5;236;38;5;250",
        "48;5;22;38;5;255",
        "48;5;28;38;5;255",
        "48;5;34;38;5;16",
        "48;5;40;38;5;16",
        "48;5;46;38;5;16",
    ];
    RAMP[((rate.clamp(0.0, 1.0) * 5.0).round() as usize).min(5)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(0.0, 4), "");
        assert_eq!(bar(1.0 / 32.0, 4), "▏");
    }
}

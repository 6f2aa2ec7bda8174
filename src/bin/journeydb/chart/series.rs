//! Charts over time: trend columns per series (resampled to the width), the weekday × hour
//! heat map, and the risers and fallers of CHANGES.

use std::fmt::Write as _;

use journeydb::{Cell, Table};

use super::*;

/// HEATMAP: a 7 × 24 grid of events (weekdays down, hours across), each cell shaded between
/// the quietest and the busiest cell: the colour ramp on a terminal, shade glyphs otherwise.
pub(super) fn heatmap(table: &Table, style: Style) -> Option<String> {
    let (weekday, hour, events) = (col(table, "weekday")?, col(table, "hour")?, col(table, "events")?);
    let mut grid = [[0i64; 24]; 7];
    for r in &table.rows {
        let (d, h) = (int(r.get(weekday)), int(r.get(hour)));
        if let Some(cell) = grid
            .get_mut((d - 1) as usize)
            .and_then(|row| row.get_mut(h as usize))
        {
            *cell = int(r.get(events));
        }
    }
    let max = grid.iter().flatten().copied().max()?;
    let min = grid.iter().flatten().copied().min()?;
    let span = (max - min).max(1) as f64;
    let mut out = String::from("     ");
    for h in 0..24 {
        let _ = write!(
            out,
            "{}",
            if h % 3 == 0 {
                format!("{h:<3}")
            } else {
                String::new()
            }
        );
    }
    out.push('\n');
    for (d, row) in grid.iter().enumerate() {
        out.push_str(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d]);
        out.push_str("  ");
        for &n in row {
            let x = (n - min) as f64 / span;
            if style.color {
                out.push_str(&style.paint(heat(x), " "));
            } else {
                out.push([' ', '░', '▒', '▓', '█'][((x * 4.0).round() as usize).min(4)]);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "(events per local hour: lightest {}, darkest {})",
        group_thousands(min),
        group_thousands(max)
    );
    Some(out)
}

pub(super) fn trend(table: &Table, style: Style) -> Option<String> {
    let (bu, va) = (col(table, "bucket")?, col(table, "value")?);
    const HEIGHT: usize = 6;
    let mut out = String::new();
    for (g, rows) in groups(table, col(table, "group")) {
        // One column per bucket, up to the width (at most 100): beyond, each column is the mean
        // of neighbouring buckets, and the title says how many.
        let values: Vec<f64> = rows.iter().map(|r| num(r.get(va))).collect();
        let (vals, per) = crate::layout::resample(&values, style.width.saturating_sub(1).min(100));
        let max = vals.iter().copied().fold(0.0_f64, f64::max);
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let span = (max - min).max(f64::MIN_POSITIVE);
        let title = if g.is_empty() {
            String::new()
        } else {
            format!("{g}  ")
        };
        let averaged = if per > 1 {
            format!("  (each column: the mean of {per} buckets)")
        } else {
            String::new()
        };
        let _ = writeln!(out, "{}max {}{averaged}", style.paint("1", &title), fmt_num(max));
        for line in (0..HEIGHT).rev() {
            let mut s = String::new();
            for v in &vals {
                let level = (v - min) / span * HEIGHT as f64 - line as f64;
                s.push(if level >= 1.0 {
                    '█'
                } else if level > 0.0 {
                    COLUMNS[((level * 8.0) as usize).min(7)]
                } else {
                    ' '
                });
            }
            let _ = writeln!(out, "│{}", style.paint("38;5;39", s.trim_end()));
        }
        let first = label(rows.first().and_then(|r| r.get(bu)));
        let last = label(rows.last().and_then(|r| r.get(bu)));
        let gap = vals.len().saturating_sub(first.len() + last.len()).max(1);
        // The axis is dashed under an incomplete bucket (a column holding one, when resampled).
        let incomplete: Vec<bool> = rows.iter().map(|r| !is_complete(table, r)).collect();
        let axis: String = incomplete
            .chunks(per)
            .map(|chunk| if chunk.contains(&true) { '┄' } else { '─' })
            .collect();
        let _ = writeln!(out, "└{axis}");
        let _ = writeln!(out, " {first}{}{last}", " ".repeat(gap));
        if incomplete.contains(&true) {
            let _ = writeln!(
                out,
                "(┄ incomplete bucket: the range or the data covers only part of it)"
            );
        }
    }
    Some(out)
}

/// False when the row's `complete` column says the bucket is incomplete (true without one).
pub(super) fn is_complete(table: &Table, row: &[Cell]) -> bool {
    col(table, "complete").is_none_or(|c| !matches!(row.get(c), Some(Cell::Bool(false))))
}

/// CHANGES: under each bucket's total change, a bar per group as long as its |change|, ▲ in
/// green for a rise and ▼ in red for a fall, the largest of each marked `top riser` and
/// `top faller`, with the group's share of the total change.
pub(super) fn changes(table: &Table, style: Style) -> Option<String> {
    let (group, change) = (col(table, "group")?, col(table, "change")?);
    let (contribution, total) = (col(table, "contribution")?, col(table, "total_change")?);
    let second = col(table, "group2");
    let name = |row: &[Cell]| match second {
        Some(g2) => format!("{} · {}", label(row.get(group)), label(row.get(g2))),
        None => label(row.get(group)),
    };
    let max = table
        .rows
        .iter()
        .map(|r| num(r.get(change)).abs())
        .fold(0.0, f64::max);
    let width = table.rows.iter().map(|r| name(r).chars().count()).max()?.min(24);
    let mut out = String::new();
    let bucket = col(table, "bucket")?;
    let (mut rose, mut fell) = (false, false);
    for (index, row) in table.rows.iter().enumerate() {
        // Rows come bucket by bucket: a heading where a bucket starts.
        if index == 0 || table.rows[index - 1].get(bucket) != row.get(bucket) {
            let total_change = match signed(row.get(total)) {
                text if text.is_empty() => String::new(),
                text => format!("  total change {text}"),
            };
            let _ = writeln!(out, "{}{total_change}", style.paint("1", &label(row.get(bucket))));
            (rose, fell) = (false, false);
        }
        {
            let delta = num(row.get(change));
            let (mark, code) = match row.get(change) {
                Some(Cell::Null) | None => (" ", "2"),
                _ if delta > 0.0 => ("▲", "38;5;42"),
                _ if delta < 0.0 => ("▼", "38;5;203"),
                _ => ("=", "2"),
            };
            let top = if delta > 0.0 && !rose {
                rose = true;
                "  top riser"
            } else if delta < 0.0 && !fell {
                fell = true;
                "  top faller"
            } else {
                ""
            };
            let share = match row.get(contribution) {
                Some(Cell::Float(part)) => format!(" ({:.0}% of the change)", part * 100.0),
                _ => String::new(),
            };
            let group_name: String = name(row).chars().take(width).collect();
            let frac = if max > 0.0 { delta.abs() / max } else { 0.0 };
            let _ = writeln!(
                out,
                "{} {group_name:<width$} {} {}{share}{}",
                style.paint(code, mark),
                padded_bar(frac, style.bar_room(width + 40, BAR / 2), style, code),
                signed(row.get(change)),
                style.paint("1", top),
            );
        }
    }
    Some(out)
}

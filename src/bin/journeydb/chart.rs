//! Terminal charts for query results: funnel bars, a retention heat map, trend columns per
//! series, lifecycle and stage stacks, stickiness bars, and a journey map of stage transitions.
//! Colour only when asked (stdout is a TTY and `NO_COLOR` is unset); the plain form uses shade
//! characters so that it still reads in a log file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use journeydb::{Cell, Stage, Table};

use crate::render::{escape_control, group_thousands};

const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
const COLUMNS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const BAR: usize = 40;

/// Drawing options.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Emit ANSI colours.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A horizontal bar of `frac` (0..=1) of `width` cells, in eighths.
fn bar(frac: f64, width: usize) -> String {
    let eighths = (frac.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[eighths % 8 - 1]);
    }
    s
}

/// A painted bar padded with spaces to `width` cells.
fn padded_bar(frac: f64, width: usize, style: Style, code: &str) -> String {
    let b = bar(frac, width);
    let pad = width.saturating_sub(b.chars().count());
    format!("{}{}", style.paint(code, &b), " ".repeat(pad))
}

fn col(table: &Table, name: &str) -> Option<usize> {
    table.columns.iter().position(|c| c == name)
}

fn int(cell: Option<&Cell>) -> i64 {
    match cell {
        Some(Cell::Int(n)) => *n,
        Some(Cell::Float(x)) => *x as i64,
        _ => 0,
    }
}

fn num(cell: Option<&Cell>) -> f64 {
    match cell {
        Some(Cell::Int(n)) => *n as f64,
        Some(Cell::Float(x) | Cell::Rate(x)) => *x,
        _ => 0.0,
    }
}

fn label(cell: Option<&Cell>) -> String {
    cell.map_or_else(String::new, |cell| escape_control(&cell.to_string()))
}

fn stage_color(name: &str) -> &'static str {
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
fn groups(table: &Table, group: Option<usize>) -> Vec<(String, Vec<&Vec<Cell>>)> {
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
    match kind.as_str() {
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
    }
}

/// `draw` once per value of a leading `group` column (`BY COHORT`), each under its group's
/// name; `draw` alone when there is no such column.
fn per_group(table: &Table, style: Style, draw: fn(&Table, Style) -> Option<String>) -> Option<String> {
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

/// `FUNNEL … PERIOD`: the conversion to the last step (% of the bucket's step-1 customers) as a
/// line over the buckets, one per group.
fn funnel_over_time(table: &Table, style: Style, bucket: usize) -> Option<String> {
    let (step, first) = (col(table, "step")?, col(table, "conversion_from_first")?);
    let last = table.rows.iter().map(|r| int(r.get(step))).max()?;
    // The group columns (`BY p` or `BY p1, p2`) carried over: one line per group.
    let labels: Vec<usize> = ["group", "group2"]
        .iter()
        .filter_map(|name| col(table, name))
        .collect();
    let mut columns = vec!["bucket"];
    columns.extend(["group", "group2"].iter().take(labels.len()));
    columns.push("value");
    let mut line = Table::new(&columns);
    for r in table.rows.iter().filter(|r| int(r.get(step)) == last) {
        let mut row = vec![r.get(bucket).cloned().unwrap_or(Cell::Null)];
        row.extend(labels.iter().map(|&g| r.get(g).cloned().unwrap_or(Cell::Null)));
        row.push(Cell::Float(num(r.get(first)) * 100.0));
        line.rows.push(row);
    }
    let event = col(table, "event")?;
    let name = table
        .rows
        .iter()
        .find(|r| int(r.get(step)) == last)
        .map(|r| label(r.get(event)));
    let title = format!(
        "% of each bucket's step-1 customers reaching step {last} ({})",
        name.unwrap_or_default()
    );
    Some(format!("{}\n{}", style.paint("1", &title), trend(&line, style)?))
}

fn funnel(table: &Table, style: Style) -> Option<String> {
    if let Some(bucket) = col(table, "bucket") {
        return funnel_over_time(table, style, bucket);
    }
    let (ev, cu, first, prev) = (
        col(table, "event")?,
        col(table, "customers")?,
        col(table, "conversion_from_first")?,
        col(table, "conversion_from_previous")?,
    );
    let step = col(table, "step")?;
    let mut out = String::new();
    for (g, rows) in groups(table, col(table, "group")) {
        if !g.is_empty() {
            let _ = writeln!(out, "{}", style.paint("1", &g));
        }
        let top = rows.first().map_or(0, |r| int(r.get(cu))).max(1);
        let name_w = rows
            .iter()
            .map(|r| label(r.get(ev)).chars().count())
            .max()
            .unwrap_or(0);
        for r in rows {
            let n = int(r.get(cu));
            let since = col(table, "median_time_from_previous_s").and_then(|c| match r.get(c) {
                Some(Cell::Float(x)) => Some(format!(", median {} after it", short_duration(*x))),
                _ => None,
            });
            let step_pct = match r.get(prev) {
                Some(Cell::Rate(x)) => {
                    format!("  ({:.1}% of previous{})", x * 100.0, since.unwrap_or_default())
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:>2} {:<name_w$} {} {:>12} {:>7.1}%{step_pct}",
                int(r.get(step)),
                label(r.get(ev)),
                padded_bar(n as f64 / top as f64, BAR, style, "38;5;39"),
                group_thousands(n),
                num(r.get(first)) * 100.0,
            );
        }
    }
    Some(out)
}

/// A duration in seconds as its two largest units: `45s`, `25m 10s`, `1d 2h`.
fn short_duration(seconds: f64) -> String {
    let total = seconds.round().max(0.0) as u64;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = total;
    for (name, size) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 || (!parts.is_empty() && rest == 0) {
            break;
        }
    }
    parts.join(" ")
}

/// Background colour for a retention rate: a ramp from dark to bright green.
fn heat(rate: f64) -> &'static str {
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

fn retention(table: &Table, style: Style) -> Option<String> {
    let (co, pe, size, rate) = (
        col(table, "cohort")?,
        col(table, "period")?,
        col(table, "cohort_size")?,
        col(table, "rate")?,
    );
    let complete = col(table, "complete");
    let periods = table.rows.iter().map(|r| int(r.get(pe))).max()?.max(0) as usize + 1;
    let mut out = format!("{:<12} {:>9} ", "cohort", "size");
    for p in 0..periods {
        let _ = write!(out, "{:>6}", p);
    }
    out.push('\n');
    for (cohort, rows) in groups(table, Some(co)) {
        let n = rows.first().map_or(0, |r| int(r.get(size)));
        let _ = write!(out, "{:<12} {:>9} ", cohort, group_thousands(n));
        for r in rows {
            let x = num(r.get(rate));
            let done = complete.is_none_or(|c| !matches!(r.get(c), Some(Cell::Bool(false))));
            let text = format!("{:>5.0}%", x * 100.0);
            let cell = if !done {
                style.paint("2", &format!("{:>6}", "…"))
            } else if style.color {
                style.paint(heat(x), &text)
            } else {
                // Plain: a shade glyph in front of the number.
                let shade = [' ', '░', '▒', '▓', '█'][((x.clamp(0.0, 1.0) * 4.0).round() as usize).min(4)];
                format!(" {shade}{:>3.0}%", x * 100.0)
            };
            out.push_str(&cell);
        }
        out.push('\n');
    }
    out.push_str("(… = period not complete yet)\n");
    Some(out)
}

/// HEATMAP: a 7 × 24 grid of events (weekdays down, hours across), each cell shaded between
/// the quietest and the busiest cell: the colour ramp on a terminal, shade glyphs otherwise.
fn heatmap(table: &Table, style: Style) -> Option<String> {
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

fn trend(table: &Table, style: Style) -> Option<String> {
    let (bu, va) = (col(table, "bucket")?, col(table, "value")?);
    const HEIGHT: usize = 6;
    let mut out = String::new();
    for (g, rows) in groups(table, col(table, "group")) {
        // At most 100 columns: average neighbouring buckets when there are more.
        let per = rows.len().div_ceil(100).max(1);
        let vals: Vec<f64> = rows
            .chunks(per)
            .map(|c| c.iter().map(|r| num(r.get(va))).sum::<f64>() / c.len() as f64)
            .collect();
        let max = vals.iter().copied().fold(0.0_f64, f64::max);
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let span = (max - min).max(f64::MIN_POSITIVE);
        let title = if g.is_empty() {
            String::new()
        } else {
            format!("{g}  ")
        };
        let _ = writeln!(out, "{}max {}", style.paint("1", &title), fmt_num(max));
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
        let _ = writeln!(out, "└{}", "─".repeat(vals.len().max(1)));
        let _ = writeln!(out, " {first}{}{last}", " ".repeat(gap));
    }
    Some(out)
}

/// CHANGES: under each bucket's total change, a bar per group as long as its |change|, ▲ in
/// green for a rise and ▼ in red for a fall, the largest of each marked `top riser` and
/// `top faller`, with the group's share of the total change.
fn changes(table: &Table, style: Style) -> Option<String> {
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
                padded_bar(frac, BAR / 2, style, code),
                signed(row.get(change)),
                style.paint("1", top),
            );
        }
    }
    Some(out)
}

/// FIT: what the parameters say, in words — the mean purchase rate of the Gamma over rates,
/// the mean dropout chance after a purchase of the Beta, and the mean spend of Gamma-Gamma.
fn fit(table: &Table, style: Style, unit: &str) -> Option<String> {
    let (model, parameter, value) = (
        col(table, "model")?,
        col(table, "parameter")?,
        col(table, "value")?,
    );
    let get = |want_model: &str, want: &str| {
        table
            .rows
            .iter()
            .find(|r| label(r.get(model)) == want_model && label(r.get(parameter)) == want)
            .map(|r| num(r.get(value)))
    };
    let mut out = String::new();
    let (r, alpha, a, b) = (
        get("bg_nbd", "r")?,
        get("bg_nbd", "alpha")?,
        get("bg_nbd", "a")?,
        get("bg_nbd", "b")?,
    );
    let customers = get("bg_nbd", "customers").unwrap_or(0.0);
    let _ = writeln!(
        out,
        "{} {} customers buy at {:.3} purchases per {unit} on average (rates vary as Gamma(r {:.3}, α {:.3}));",
        style.paint("1", "BG/NBD:"),
        fmt_num(customers),
        r / alpha,
        r,
        alpha
    );
    let _ = writeln!(
        out,
        "        after each purchase a customer drops out with chance {:.1}% on average (Beta(a {:.3}, b {:.3})).",
        100.0 * a / (a + b),
        a,
        b
    );
    if let (Some(p), Some(q), Some(gamma)) = (
        get("gamma_gamma", "p"),
        get("gamma_gamma", "q"),
        get("gamma_gamma", "gamma"),
    ) {
        let mean = if q > 1.0 {
            format!("{:.2}", p * gamma / (q - 1.0))
        } else {
            "unbounded (q ≤ 1)".to_owned()
        };
        let _ = writeln!(
            out,
            "{} the mean spend per repeat purchase is {mean}.",
            style.paint("1", "Gamma-Gamma:")
        );
    }
    Some(out)
}

/// The time unit of a FIT or PREDICT statement (`UNIT day`, else weeks, the default).
fn time_unit(statement: &str) -> &'static str {
    let words: Vec<String> = statement
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let day = words.windows(2).any(|pair| pair[0] == "unit" && pair[1] == "day");
    if day { "day" } else { "week" }
}

/// PREDICT … SUMMARY: per calibration frequency, the mean purchases the model expected in the
/// holdout beside those seen (when the data reaches past TO), as paired bars.
fn calibration(table: &Table, style: Style) -> Option<String> {
    let (frequency, expected, actual) = (
        col(table, "frequency")?,
        col(table, "expected_mean")?,
        col(table, "actual_mean")?,
    );
    let rows: Vec<&Vec<Cell>> = table
        .rows
        .iter()
        .filter(|r| label(r.get(frequency)) != "all")
        .collect();
    let max = rows
        .iter()
        .flat_map(|r| [num(r.get(expected)), num(r.get(actual))])
        .fold(0.0, f64::max);
    let mut out = format!(
        "mean purchases in the horizon per calibration frequency: {} expected, {} seen\n",
        style.paint("38;5;39", "█"),
        style.paint("38;5;42", "█")
    );
    for r in rows {
        let scale = |v: f64| if max > 0.0 { v / max } else { 0.0 };
        let seen = match r.get(actual) {
            Some(Cell::Null) | None => String::new(),
            cell => format!(
                "{} {}",
                padded_bar(scale(num(cell)), BAR / 2, style, "38;5;42"),
                fmt_num(num(cell))
            ),
        };
        let _ = writeln!(
            out,
            "{:>3} {} {:<8} {seen}",
            label(r.get(frequency)),
            padded_bar(scale(num(r.get(expected))), BAR / 2, style, "38;5;39"),
            fmt_num(num(r.get(expected))),
        );
    }
    Some(out)
}

/// A change with its sign (`+12`, `-3.5`), or empty for NULL.
fn signed(cell: Option<&Cell>) -> String {
    match cell {
        Some(Cell::Int(n)) if *n > 0 => format!("+{}", group_thousands(*n)),
        Some(Cell::Int(n)) => group_thousands(*n),
        Some(Cell::Float(x)) if *x > 0.0 => format!("+{}", fmt_num(*x)),
        Some(Cell::Float(x)) => fmt_num(*x),
        _ => String::new(),
    }
}

fn fmt_num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        group_thousands(value as i64)
    } else {
        format!("{value:.2}")
    }
}

fn lifecycle(table: &Table, style: Style) -> Option<String> {
    let bu = col(table, "bucket")?;
    let parts = [
        ("new", "38;5;42", '█'),
        ("returning", "38;5;39", '▓'),
        ("resurrecting", "38;5;214", '▒'),
    ];
    let idx: Vec<usize> = parts
        .iter()
        .map(|(n, _, _)| col(table, n))
        .collect::<Option<_>>()?;
    let dormant = col(table, "dormant")?;
    let pos_max = table
        .rows
        .iter()
        .map(|r| idx.iter().map(|&i| int(r.get(i)).max(0)).sum::<i64>())
        .max()
        .unwrap_or(0);
    let neg_max = table
        .rows
        .iter()
        .map(|r| int(r.get(dormant)).abs())
        .max()
        .unwrap_or(0);
    let total = (pos_max + neg_max).max(1) as f64;
    let (neg_w, pos_w) = (
        (neg_max as f64 / total * 50.0).round() as usize,
        (pos_max as f64 / total * 50.0).round() as usize,
    );
    let cells = |n: i64, max: i64, w: usize| {
        if max == 0 {
            0
        } else {
            (n as f64 / max as f64 * w as f64).round() as usize
        }
    };
    let mut out = format!(
        "{:<12} {}dormant │ {} {} {}\n",
        "",
        " ".repeat(neg_w.saturating_sub(7)),
        style.paint(parts[0].1, "█ new"),
        style.paint(parts[1].1, "▓ returning"),
        style.paint(parts[2].1, "▒ resurrecting"),
    );
    for r in &table.rows {
        let d = cells(int(r.get(dormant)).abs(), neg_max, neg_w);
        let mut right = String::new();
        for ((_, code, ch), &i) in parts.iter().zip(&idx) {
            let n = cells(int(r.get(i)).max(0), pos_max, pos_w);
            right += &style.paint(code, &ch.to_string().repeat(n));
        }
        let _ = writeln!(
            out,
            "{:<12} {}{}│{}",
            label(r.get(bu)),
            " ".repeat(neg_w - d.min(neg_w)),
            style.paint("38;5;203", &"░".repeat(d)),
            right
        );
    }
    Some(out)
}

fn stickiness(table: &Table, style: Style) -> Option<String> {
    let (b, c) = (col(table, "buckets")?, col(table, "customers")?);
    let max = table.rows.iter().map(|r| int(r.get(c))).max()?.max(1);
    let total: i64 = table.rows.iter().map(|r| int(r.get(c))).sum::<i64>().max(1);
    let mut out = String::from("active in N buckets\n");
    for r in &table.rows {
        let n = int(r.get(c));
        let _ = writeln!(
            out,
            "{:>4} {} {:>10} {:>6.1}%",
            int(r.get(b)),
            padded_bar(n as f64 / max as f64, BAR, style, "38;5;39"),
            group_thousands(n),
            n as f64 / total as f64 * 100.0,
        );
    }
    Some(out)
}

/// TOP CUSTOMERS: one bar per customer, scaled to the largest magnitude (no bars for times).
fn top_customers(table: &Table, style: Style) -> Option<String> {
    let (rank, customer, value) = (col(table, "rank")?, col(table, "customer")?, col(table, "value")?);
    if table
        .rows
        .iter()
        .any(|r| matches!(r.get(value), Some(Cell::Time(_))))
    {
        return None;
    }
    let max = table
        .rows
        .iter()
        .map(|r| num(r.get(value)).abs())
        .fold(0.0, f64::max);
    let width = table
        .rows
        .iter()
        .map(|r| label(r.get(customer)).chars().count())
        .max()?
        .min(24);
    let mut out = String::new();
    for r in &table.rows {
        let name: String = label(r.get(customer)).chars().take(width).collect();
        let frac = if max > 0.0 {
            num(r.get(value)).abs() / max
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:>3} {name:<width$} {} {}",
            int(r.get(rank)),
            padded_bar(frac, BAR, style, "38;5;42"),
            label(r.get(value)),
        );
    }
    Some(out)
}

/// PATHS: one bar per path, scaled to the most customers; with EDGES, the flows of each depth
/// (`from ─▶ to`), a column of the Sankey chart per depth.
fn paths(table: &Table, style: Style) -> Option<String> {
    let customers = col(table, "customers")?;
    let max = table.rows.iter().map(|r| int(r.get(customers))).max()?.max(1);
    let frac = |r: &Vec<Cell>| int(r.get(customers)) as f64 / max as f64;
    let mut out = String::new();
    if let (Some(depth), Some(from), Some(to)) = (col(table, "depth"), col(table, "from"), col(table, "to")) {
        let width = |c: usize| {
            table
                .rows
                .iter()
                .map(|r| label(r.get(c)).chars().count())
                .max()
                .unwrap_or(0)
                .min(24)
        };
        let (wf, wt) = (width(from), width(to));
        let mut shown = None;
        let mut heading = GroupHeading::new(table);
        for r in &table.rows {
            if heading.next(r, &mut out) {
                shown = None;
            }
            let d = int(r.get(depth));
            if shown != Some(d) {
                let _ = writeln!(out, "depth {d}");
                shown = Some(d);
            }
            let cut = |c: usize, w: usize| label(r.get(c)).chars().take(w).collect::<String>();
            let _ = writeln!(
                out,
                "  {:<wf$} ─▶ {:<wt$} {} {}",
                cut(from, wf),
                cut(to, wt),
                padded_bar(frac(r), BAR, style, "38;5;39"),
                label(r.get(customers)),
            );
        }
        return Some(out);
    }
    let (rank, path) = (col(table, "rank")?, col(table, "path")?);
    let width = table
        .rows
        .iter()
        .map(|r| label(r.get(path)).chars().count())
        .max()?
        .min(48);
    let mut heading = GroupHeading::new(table);
    for r in &table.rows {
        heading.next(r, &mut out);
        let text: String = label(r.get(path)).chars().take(width).collect();
        let _ = writeln!(
            out,
            "{:>3} {text:<width$} {} {}",
            int(r.get(rank)),
            padded_bar(frac(r), BAR, style, "38;5;42"),
            label(r.get(customers)),
        );
    }
    Some(out)
}

/// A heading line before each group's rows of a table with a `group` column (PATHS … BY p).
struct GroupHeading {
    column: Option<usize>,
    current: Option<String>,
}

impl GroupHeading {
    fn new(table: &Table) -> Self {
        GroupHeading {
            column: col(table, "group"),
            current: None,
        }
    }

    /// Writes the heading when `row` starts a new group; true when it did.
    fn next(&mut self, row: &[Cell], out: &mut String) -> bool {
        let Some(c) = self.column else { return false };
        let group = label(row.get(c));
        if self.current.as_ref() == Some(&group) {
            return false;
        }
        let _ = writeln!(out, "{group}");
        self.current = Some(group);
        true
    }
}

fn stages(table: &Table, style: Style) -> Option<String> {
    let (bu, st, fu) = (
        col(table, "bucket")?,
        col(table, "stage")?,
        col(table, "furthest")?,
    );
    let mut by_bucket: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for r in &table.rows {
        by_bucket
            .entry(label(r.get(bu)))
            .or_default()
            .push((label(r.get(st)), int(r.get(fu))));
    }
    let max = by_bucket
        .values()
        .map(|v| v.iter().map(|(_, n)| *n).sum::<i64>())
        .max()?
        .max(1);
    let glyph = ['█', '▓', '▒', '░', '▚'];
    let mut out = String::from("furthest stage reached: ");
    for (i, s) in Stage::ALL.iter().enumerate() {
        out += &style.paint(stage_color(s.name()), &format!("{} {}  ", glyph[i], s.name()));
    }
    out.push('\n');
    for (b, parts) in &by_bucket {
        let mut line = String::new();
        for (name, n) in parts {
            let i = Stage::parse(name).map_or(0, |s| s.code().saturating_sub(1) as usize);
            let w = (*n as f64 / max as f64 * 50.0).round() as usize;
            line += &style.paint(stage_color(name), &glyph[i.min(4)].to_string().repeat(w));
        }
        let total: i64 = parts.iter().map(|(_, n)| n).sum();
        let _ = writeln!(out, "{b:<12} {line} {}", group_thousands(total));
    }
    Some(out)
}

/// The journey map: each stage in order, how many reached it, and where they went next.
fn transitions(table: &Table, style: Style) -> Option<String> {
    let (fr, to, cu) = (
        col(table, "from_stage")?,
        col(table, "to_stage")?,
        col(table, "customers")?,
    );
    let rows: Vec<(String, String, i64)> = table
        .rows
        .iter()
        .map(|r| (label(r.get(fr)), label(r.get(to)), int(r.get(cu))))
        .collect();
    let mut out = String::new();
    for s in Stage::ALL {
        let name = s.name();
        let reached: i64 = rows
            .iter()
            .filter(|(_, table, _)| table == name)
            .map(|r| r.2)
            .sum();
        let _ = writeln!(
            out,
            "{} {}  {} reached",
            style.paint(stage_color(name), "●"),
            style.paint(&format!("1;{}", stage_color(name)), name),
            group_thousands(reached)
        );
        let mut outs: Vec<&(String, String, i64)> = rows.iter().filter(|(f, _, _)| f == name).collect();
        outs.sort_by_key(|r| -r.2);
        for (_, dest, n) in outs {
            let frac = if reached > 0 {
                *n as f64 / reached as f64
            } else {
                0.0
            };
            let arrow = if dest == "(stayed)" {
                "stayed".to_owned()
            } else {
                format!("→ {dest}")
            };
            let _ = writeln!(
                out,
                "│   {} {:>10} {:>6.1}%  {arrow}",
                padded_bar(frac, 30, style, stage_color(dest)),
                group_thousands(*n),
                frac * 100.0,
            );
        }
    }
    Some(out)
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

    #[test]
    fn durations_show_their_two_largest_units() {
        assert_eq!(short_duration(0.0), "0s");
        assert_eq!(short_duration(45.4), "45s");
        assert_eq!(short_duration(1510.0), "25m 10s");
        assert_eq!(short_duration(3600.0), "1h");
        assert_eq!(short_duration(3610.0), "1h 10s");
        assert_eq!(short_duration(93_600.0), "1d 2h");
        assert_eq!(short_duration(-3.0), "0s");
    }
}

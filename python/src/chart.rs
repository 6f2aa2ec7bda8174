//! `Result._repr_html_`: the rows as an HTML table under the chart the shell draws, as inline
//! SVG — funnel bars, the retention heat map, trend lines (one per group), the journey map of
//! STAGES (each stage's customers per bucket), and bars of the first numeric column for any
//! other statement with a label column. Self-contained: no script, no style sheet.
//!
//! Uses: nothing of the package.

use std::fmt::Write as _;

use journeydb::{Cell, Table};

/// Rows shown in the HTML table (the chart uses every row).
const HTML_ROWS_MAX: usize = 1_000;
const WIDTH: f64 = 640.0;
/// Series colours (the shell's palette, as RGB).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Text safe inside HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn column(table: &Table, name: &str) -> Option<usize> {
    table.columns.iter().position(|c| c == name)
}

fn number(row: &[Cell], index: usize) -> Option<f64> {
    row.get(index).and_then(Cell::as_f64).filter(|x| x.is_finite())
}

fn text(row: &[Cell], index: usize) -> String {
    row.get(index).map_or_else(String::new, ToString::to_string)
}

/// The chart (if the statement has one) and the table.
pub fn html(statement: &str, table: &Table) -> String {
    let mut out = String::from("<div class=\"journeydb-result\">");
    if let Some(svg) = chart(statement, table) {
        out += &svg;
    }
    out += "<table><thead><tr>";
    for name in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out += "</tr></thead><tbody>";
    for row in table.rows.iter().take(HTML_ROWS_MAX) {
        out += "<tr>";
        for cell in row {
            let align = if cell.as_f64().is_some() {
                " style=\"text-align:right\""
            } else {
                ""
            };
            let _ = write!(out, "<td{align}>{}</td>", escape(&cell.to_string()));
        }
        out += "</tr>";
    }
    out += "</tbody></table>";
    let rows = table.rows.len();
    let _ = write!(out, "<p>{rows} row{}", if rows == 1 { "" } else { "s" });
    if rows > HTML_ROWS_MAX {
        let _ = write!(out, " (the first {HTML_ROWS_MAX} shown)");
    }
    out += "</p>";
    for warning in &table.warnings {
        let _ = write!(out, "<p>warning: {}</p>", escape(warning));
    }
    out + "</div>"
}

/// The statement's chart, by its first word.
pub fn chart(statement: &str, table: &Table) -> Option<String> {
    if table.rows.is_empty() {
        return None;
    }
    let kind = statement
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match kind.as_str() {
        "FUNNEL" => bars(table, &["group", "event"], "customers"),
        "RETENTION" => retention(table),
        "TREND" => lines(table),
        "STAGES" => stages(table),
        "HEATMAP" => heatmap(table),
        "TRANSITIONS" => transitions(table),
        _ => first_numeric_bars(table),
    }
}

/// Horizontal bars of `value` labelled by the `labels` columns present.
fn bars(table: &Table, labels: &[&str], value: &str) -> Option<String> {
    let value = column(table, value)?;
    let labels: Vec<usize> = labels.iter().filter_map(|name| column(table, name)).collect();
    let rows: Vec<(String, f64)> = (table.rows.iter())
        .take(60)
        .map(|row| {
            let label: Vec<String> = labels.iter().map(|&i| text(row, i)).collect();
            (label.join(" · "), number(row, value).unwrap_or(0.0))
        })
        .collect();
    let max = rows.iter().map(|(_, v)| v.abs()).fold(0.0, f64::max);
    let (label_width, bar_height) = (180.0, 22.0);
    let height = rows.len() as f64 * bar_height + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    for (index, (label, value)) in rows.iter().enumerate() {
        let y = index as f64 * bar_height + 5.0;
        let length = if max > 0.0 {
            value.abs() / max * (WIDTH - label_width - 90.0)
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{label}</text><rect x=\"{label_width}\" y=\"{y}\" width=\"{length:.1}\" height=\"{h}\" fill=\"{colour}\"/><text x=\"{vx:.1}\" y=\"{ty}\">{value}</text>",
            x = label_width - 6.0,
            ty = y + 15.0,
            label = escape(&label.chars().take(28).collect::<String>()),
            h = bar_height - 6.0,
            colour = COLOURS[0],
            vx = label_width + length + 6.0,
            value = format_number(*value),
        );
    }
    Some(svg + "</svg>")
}

/// A number as the table shows it: an integer with no decimals, else up to 4.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}").trim_end_matches('0').to_owned()
    }
}

/// Bars of the first numeric column, labelled by the first text column (at most 60 rows).
fn first_numeric_bars(table: &Table) -> Option<String> {
    let first_row = table.rows.first()?;
    let value = (0..table.columns.len()).find(|&i| {
        matches!(
            first_row.get(i),
            Some(Cell::Int(_) | Cell::Float(_) | Cell::Rate(_))
        )
    })?;
    let label = (0..table.columns.len()).find(|&i| matches!(first_row.get(i), Some(Cell::Str(_))))?;
    if table.rows.len() > 60 {
        return None;
    }
    let names = [table.columns[label].as_str()];
    bars(table, &names, &table.columns[value])
}

/// The retention heat map: a row per cohort, a cell per period, darker for a higher rate.
fn retention(table: &Table) -> Option<String> {
    let (cohort, period, rate) = (
        column(table, "cohort")?,
        column(table, "period")?,
        column(table, "rate")?,
    );
    let mut cohorts: Vec<String> = Vec::new();
    let mut periods = 0usize;
    for row in &table.rows {
        let name = text(row, cohort);
        if !cohorts.contains(&name) {
            cohorts.push(name);
        }
        periods = periods.max(row.get(period).and_then(Cell::as_i64).unwrap_or(0) as usize + 1);
    }
    let (label_width, cell_height) = (100.0, 20.0);
    let cell_width = ((WIDTH - label_width) / periods.max(1) as f64).min(60.0);
    let height = (cohorts.len() as f64 + 1.0) * cell_height + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    for index in 0..periods {
        let x = label_width + index as f64 * cell_width + cell_width / 2.0;
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"14\" text-anchor=\"middle\">{index}</text>"
        );
    }
    for row in &table.rows {
        let Some(y_index) = cohorts.iter().position(|c| *c == text(row, cohort)) else {
            continue;
        };
        let x_index = row.get(period).and_then(Cell::as_i64).unwrap_or(0) as f64;
        let (x, y) = (
            label_width + x_index * cell_width,
            (y_index as f64 + 1.0) * cell_height,
        );
        if x_index == 0.0 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                label_width - 6.0,
                y + 14.0,
                escape(&text(row, cohort))
            );
        }
        let Some(share) = number(row, rate) else {
            continue;
        };
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h}\" fill=\"#1f77b4\" fill-opacity=\"{o:.3}\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{p:.0}%</text>",
            w = cell_width - 2.0,
            h = cell_height - 2.0,
            o = 0.1 + 0.9 * share.clamp(0.0, 1.0),
            tx = x + cell_width / 2.0,
            ty = y + 14.0,
            p = share * 100.0,
        );
    }
    Some(svg + "</svg>")
}

/// Trend lines: `value` over `bucket`, one line per group (the first eight groups).
fn lines(table: &Table) -> Option<String> {
    let (bucket, value) = (column(table, "bucket")?, column(table, "value")?);
    let group = column(table, "group");
    let mut buckets: Vec<String> = Vec::new();
    let mut series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    for row in &table.rows {
        let name = text(row, bucket);
        let at = match buckets.iter().position(|b| *b == name) {
            Some(at) => at,
            None => {
                buckets.push(name);
                buckets.len() - 1
            }
        };
        let key = group.map_or_else(String::new, |g| text(row, g));
        let Some(y) = number(row, value) else { continue };
        match series.iter().position(|(k, _)| *k == key) {
            Some(index) => series[index].1.push((at, y)),
            None if series.len() < COLOURS.len() => series.push((key, vec![(at, y)])),
            None => {}
        }
    }
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(0.0, f64::max);
    let min = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(0.0, f64::min);
    let (left, top, plot_width, plot_height) = (60.0, 10.0, WIDTH - 80.0, 200.0);
    let x_of = |at: usize| left + plot_width * at as f64 / (buckets.len().max(2) - 1) as f64;
    let y_of = |y: f64| top + plot_height * (1.0 - (y - min) / (max - min).max(f64::MIN_POSITIVE));
    let legend = if group.is_some() {
        series.len() as f64 * 16.0
    } else {
        0.0
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\"><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/><text x=\"{l2}\" y=\"{t2}\" text-anchor=\"end\">{max}</text><text x=\"{l2}\" y=\"{b}\" text-anchor=\"end\">{min}</text>",
        top + plot_height + 30.0 + legend,
        b = top + plot_height,
        r = left + plot_width,
        l2 = left - 4.0,
        t2 = top + 10.0,
        max = format_number(max),
        min = format_number(min),
    );
    for (index, (name, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|&(at, y)| format!("{:.1},{:.1}", x_of(at), y_of(y)))
            .collect();
        let colour = COLOURS[index % COLOURS.len()];
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        if group.is_some() {
            let y = top + plot_height + 36.0 + index as f64 * 16.0;
            let _ = write!(
                svg,
                "<rect x=\"{left}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
                y - 9.0,
                left + 14.0,
                escape(name)
            );
        }
    }
    let (first, last) = (
        buckets.first().cloned().unwrap_or_default(),
        buckets.last().cloned().unwrap_or_default(),
    );
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{y:.1}\">{}</text><text x=\"{r:.1}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text>",
        escape(&first),
        escape(&last),
        y = top + plot_height + 16.0,
        r = left + plot_width,
    );
    Some(svg + "</svg>")
}

/// TRANSITIONS, the journey map: the stages in order as columns, how many customers reached
/// each, and under each stage a bar per next stage (or `(stayed)`) as long as its customers.
fn transitions(table: &Table) -> Option<String> {
    let (from, to, customers) = (
        column(table, "from_stage")?,
        column(table, "to_stage")?,
        column(table, "customers")?,
    );
    let stages = ["awareness", "consideration", "purchase", "retention", "advocacy"];
    let reached = |stage: &str| -> f64 {
        (table.rows.iter())
            .filter(|row| text(row, to) == stage)
            .filter_map(|row| number(row, customers))
            .sum()
    };
    let max = stages.iter().map(|stage| reached(stage)).fold(0.0, f64::max);
    let column_width = WIDTH / stages.len() as f64;
    let rows_max = stages
        .iter()
        .map(|stage| table.rows.iter().filter(|row| text(row, from) == *stage).count())
        .max()
        .unwrap_or(0);
    let height = 60.0 + rows_max as f64 * 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    for (index, stage) in stages.iter().enumerate() {
        let x = index as f64 * column_width + 4.0;
        let count = reached(stage);
        let width = if max > 0.0 {
            count / max * (column_width - 12.0)
        } else {
            0.0
        };
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"14\" font-weight=\"bold\">{stage}</text><rect x=\"{x:.1}\" y=\"20\" width=\"{width:.1}\" height=\"12\" fill=\"{}\"/><text x=\"{x:.1}\" y=\"46\">{} reached</text>",
            COLOURS[index],
            format_number(count),
        );
        let next = table.rows.iter().filter(|row| text(row, from) == *stage);
        for (at, row) in next.enumerate() {
            let y = 56.0 + at as f64 * 30.0;
            let count = number(row, customers).unwrap_or(0.0);
            let width = if max > 0.0 {
                count / max * (column_width - 12.0)
            } else {
                0.0
            };
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\">→ {} {}</text><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"8\" fill=\"#999\"/>",
                y + 10.0,
                escape(&text(row, to)),
                format_number(count),
                y + 14.0,
            );
        }
    }
    Some(svg + "</svg>")
}

/// HEATMAP: a row per weekday, a cell per hour, darker for more events.
fn heatmap(table: &Table) -> Option<String> {
    let (weekday, hour, events) = (
        column(table, "weekday")?,
        column(table, "hour")?,
        column(table, "events")?,
    );
    let max = table
        .rows
        .iter()
        .filter_map(|row| number(row, events))
        .fold(0.0, f64::max);
    let (label_width, cell) = (40.0, 22.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"10\">",
        8.0 * cell + 10.0
    );
    for at in (0..24).step_by(3) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"12\">{at:02}h</text>",
            label_width + at as f64 * cell
        );
    }
    for row in &table.rows {
        let (Some(day), Some(at), Some(count)) = (
            row.get(weekday).and_then(Cell::as_i64),
            row.get(hour).and_then(Cell::as_i64),
            number(row, events),
        ) else {
            continue;
        };
        let (x, y) = (label_width + at as f64 * cell, day as f64 * cell);
        if at == 0 {
            let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let name = names.get((day - 1).clamp(0, 6) as usize).copied().unwrap_or("");
            let _ = write!(svg, "<text x=\"2\" y=\"{:.1}\">{name}</text>", y + 14.0);
        }
        let opacity = if max > 0.0 { 0.05 + 0.95 * count / max } else { 0.0 };
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{w:.1}\" fill=\"#d62728\" fill-opacity=\"{opacity:.3}\"><title>{}</title></rect>",
            format_number(count),
            w = cell - 2.0,
        );
    }
    Some(svg + "</svg>")
}

/// The journey map of STAGES: per bucket, a stacked bar of each stage's active customers.
fn stages(table: &Table) -> Option<String> {
    let (bucket, stage, active) = (
        column(table, "bucket")?,
        column(table, "stage")?,
        column(table, "active")?,
    );
    let mut buckets: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for row in &table.rows {
        let name = text(row, bucket);
        let entry = (text(row, stage), number(row, active).unwrap_or(0.0));
        match buckets.iter_mut().find(|(b, _)| *b == name) {
            Some((_, stages)) => stages.push(entry),
            None => buckets.push((name, vec![entry])),
        }
    }
    let max = buckets
        .iter()
        .map(|(_, s)| s.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0.0, f64::max);
    let (label_width, bar_height) = (100.0, 22.0);
    let height = buckets.len() as f64 * bar_height + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let mut names: Vec<String> = Vec::new();
    for (index, (name, parts)) in buckets.iter().enumerate() {
        let y = index as f64 * bar_height + 5.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_width - 6.0,
            y + 15.0,
            escape(name)
        );
        let mut x = label_width;
        for (stage_name, value) in parts {
            let at = match names.iter().position(|n| n == stage_name) {
                Some(at) => at,
                None => {
                    names.push(stage_name.clone());
                    names.len() - 1
                }
            };
            let length = if max > 0.0 {
                value / max * (WIDTH - label_width - 20.0)
            } else {
                0.0
            };
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{length:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>",
                bar_height - 6.0,
                COLOURS[at % COLOURS.len()],
                escape(stage_name),
                format_number(*value)
            );
            x += length;
        }
    }
    let y = buckets.len() as f64 * bar_height + 20.0;
    for (index, name) in names.iter().enumerate() {
        let x = label_width + index as f64 * 100.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            COLOURS[index % COLOURS.len()],
            x + 14.0,
            escape(name)
        );
    }
    Some(svg + "</svg>")
}

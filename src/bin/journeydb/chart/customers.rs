//! Charts of customers: TOP CUSTOMERS and PATHS bars, the Sankey columns of PATHS … EDGES, and
//! FIT / PREDICT in words and calibration bars.

use std::fmt::Write as _;

use journeydb::{Cell, Table};

use super::*;

/// FIT: what the parameters say, in words — the mean purchase rate of the Gamma over rates,
/// the mean dropout chance after a purchase of the Beta, and the mean spend of Gamma-Gamma.
pub(super) fn fit(table: &Table, style: Style, unit: &str) -> Option<String> {
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
pub(super) fn time_unit(statement: &str) -> &'static str {
    let words: Vec<String> = statement
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let day = words.windows(2).any(|pair| pair[0] == "unit" && pair[1] == "day");
    if day { "day" } else { "week" }
}

/// PREDICT … SUMMARY: per calibration frequency, the mean purchases the model expected in the
/// holdout beside those seen (when the data reaches past TO), as paired bars.
pub(super) fn calibration(table: &Table, style: Style) -> Option<String> {
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

/// TOP CUSTOMERS: one bar per customer, scaled to the largest magnitude (no bars for times).
pub(super) fn top_customers(table: &Table, style: Style) -> Option<String> {
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
    let width = widest(table, customer).min(24);
    let value_w = widest(table, value).max(1);
    let bar_w = style.bar_room(width + value_w + 6, BAR);
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
            padded_bar(frac, bar_w, style, "38;5;42"),
            label(r.get(value)),
        );
    }
    Some(out)
}

/// PATHS: one bar per path, scaled to the most customers; with EDGES, the flows of each depth
/// (`from ─▶ to`), a column of the Sankey chart per depth.
pub(super) fn paths(table: &Table, style: Style) -> Option<String> {
    let customers = col(table, "customers")?;
    let max = table.rows.iter().map(|r| int(r.get(customers))).max()?.max(1);
    let frac = |r: &Vec<Cell>| int(r.get(customers)) as f64 / max as f64;
    let mut out = String::new();
    if let (Some(depth), Some(from), Some(to)) = (col(table, "depth"), col(table, "from"), col(table, "to")) {
        let width = |c: usize| widest(table, c).min(24);
        let (wf, wt) = (width(from), width(to));
        let count_w = widest(table, customers).max(1);
        let bar_w = style.bar_room(wf + wt + count_w + 8, BAR);
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
                padded_bar(frac(r), bar_w, style, "38;5;39"),
                label(r.get(customers)),
            );
        }
        return Some(out);
    }
    let (rank, path) = (col(table, "rank")?, col(table, "path")?);
    // The path whole where the width allows a bar of 12 beside it, else cut with `…`.
    let count_w = widest(table, customers).max(1);
    let width = widest(table, path).min(style.width.saturating_sub(count_w + 18).max(12));
    let bar_w = style.bar_room(width + count_w + 6, BAR);
    let mut heading = GroupHeading::new(table);
    for r in &table.rows {
        heading.next(r, &mut out);
        let text = crate::layout::truncate(&label(r.get(path)), width);
        let _ = writeln!(
            out,
            "{:>3} {text:<width$} {} {}",
            int(r.get(rank)),
            padded_bar(frac(r), bar_w, style, "38;5;42"),
            label(r.get(customers)),
        );
    }
    Some(out)
}

/// A heading line before each group's rows of a table with a `group` column (PATHS … BY p).
pub(super) struct GroupHeading {
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

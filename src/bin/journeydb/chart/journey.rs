//! Charts of journeys: funnel bars (and conversion over time), the retention heat map, the
//! lifecycle and stage stacks, stickiness bars, and the journey map of stage transitions.

use std::fmt::Write as _;

use journeydb::{Cell, Stage, Table};

use super::*;

/// `FUNNEL … PERIOD`: the conversion to the last step (% of the bucket's step-1 customers) as a
/// line over the buckets, one per group.
pub(super) fn funnel_over_time(table: &Table, style: Style, bucket: usize) -> Option<String> {
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

pub(super) fn funnel(table: &Table, style: Style) -> Option<String> {
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
            .unwrap_or(0)
            .min(style.width / 3);
        let count_w = rows
            .iter()
            .map(|r| group_thousands(int(r.get(cu))).len())
            .max()
            .unwrap_or(1);
        let notes: Vec<String> = rows
            .iter()
            .map(|r| {
                let since = col(table, "median_time_from_previous_s").and_then(|c| match r.get(c) {
                    Some(Cell::Float(x)) => {
                        Some(format!(", median {} after it", crate::layout::duration(*x)))
                    }
                    _ => None,
                });
                match r.get(prev) {
                    Some(Cell::Rate(x)) => {
                        format!("({:.1}% of previous{})", x * 100.0, since.unwrap_or_default())
                    }
                    _ => String::new(),
                }
            })
            .collect();
        // `nn name bar count pct%`, then the step's note on the same line when a bar of 20
        // cells still fits beside it, else on its own line under the bar.
        let fixed = name_w + count_w + 13;
        let note_w = notes.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let inline = style.width.saturating_sub(fixed + note_w + 2) >= 20;
        let bar_w = if inline {
            style.bar_room(fixed + note_w + 2, BAR)
        } else {
            style.bar_room(fixed, BAR)
        };
        for (r, note) in rows.iter().zip(&notes) {
            let n = int(r.get(cu));
            let name: String = label(r.get(ev)).chars().take(name_w).collect();
            let _ = write!(
                out,
                "{:>2} {name:<name_w$} {} {:>count_w$} {:>6.1}%",
                int(r.get(step)),
                padded_bar(n as f64 / top as f64, bar_w, style, "38;5;39"),
                group_thousands(n),
                num(r.get(first)) * 100.0,
            );
            match (note.is_empty(), inline) {
                (true, _) => out.push('\n'),
                (false, true) => {
                    let _ = writeln!(out, "  {note}");
                }
                (false, false) => {
                    let _ = writeln!(out, "\n{}{note}", " ".repeat(name_w + 4));
                }
            }
        }
    }
    Some(out)
}

pub(super) fn retention(table: &Table, style: Style) -> Option<String> {
    let (co, pe, size, rate) = (
        col(table, "cohort")?,
        col(table, "period")?,
        col(table, "cohort_size")?,
        col(table, "rate")?,
    );
    let complete = col(table, "complete");
    let all_periods = table.rows.iter().map(|r| int(r.get(pe))).max()?.max(0) as usize + 1;
    // `cohort size` take 23 cells, each period 6: the periods that fit the width.
    let periods = all_periods.min((style.width.saturating_sub(23) / 6).max(1));
    let mut out = format!("{:<12} {:>9} ", "cohort", "size");
    for p in 0..periods {
        let _ = write!(out, "{:>6}", p);
    }
    out.push('\n');
    let whole = col(table, "cohort_complete");
    let mut partial_cohort = false;
    for (cohort, rows) in groups(table, Some(co)) {
        let n = rows.first().map_or(0, |r| int(r.get(size)));
        // A cohort whose bucket the data covers only in part: `*`.
        let partial = whole.is_some_and(|c| rows.first().and_then(|r| r.get(c)) == Some(&Cell::Bool(false)));
        partial_cohort |= partial;
        let name = if partial { format!("{cohort}*") } else { cohort };
        let _ = write!(out, "{:<12} {:>9} ", name, group_thousands(n));
        for r in rows
            .into_iter()
            .filter(|r| (int(r.get(pe)).max(0) as usize) < periods)
        {
            let x = num(r.get(rate));
            let done = complete.is_none_or(|c| !matches!(r.get(c), Some(Cell::Bool(false))));
            let text = format!("{:>5.0}%", x * 100.0);
            let cell = if matches!(r.get(rate), Some(Cell::Null) | None) {
                // No value (the mean of a period no cohort has completed): blank, as in the table.
                " ".repeat(6)
            } else if !done {
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
    if partial_cohort {
        out.push_str("(* cohort whose bucket the range or the data covers only in part)\n");
    }
    if periods < all_periods {
        let _ = writeln!(
            out,
            "(periods {periods}–{} do not fit the width: the table has them)",
            all_periods - 1
        );
    }
    Some(out)
}

pub(super) fn lifecycle(table: &Table, style: Style) -> Option<String> {
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
    // 50 cells for both sides, fewer when the width (less the 14-cell label) is smaller.
    let cells_w = style.width.saturating_sub(14).clamp(20, 50) as f64;
    let (neg_w, pos_w) = (
        (neg_max as f64 / total * cells_w).round() as usize,
        (pos_max as f64 / total * cells_w).round() as usize,
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
    let mut marked = false;
    for r in &table.rows {
        let d = cells(int(r.get(dormant)).abs(), neg_max, neg_w);
        let mark = if super::series::is_complete(table, r) {
            ""
        } else {
            marked = true;
            "*"
        };
        let mut right = String::new();
        for ((_, code, ch), &i) in parts.iter().zip(&idx) {
            let n = cells(int(r.get(i)).max(0), pos_max, pos_w);
            right += &style.paint(code, &ch.to_string().repeat(n));
        }
        let _ = writeln!(
            out,
            "{:<12} {}{}│{}",
            format!("{}{mark}", label(r.get(bu))),
            " ".repeat(neg_w - d.min(neg_w)),
            style.paint("38;5;203", &"░".repeat(d)),
            right
        );
    }
    if marked {
        out.push_str("(* incomplete bucket: the range or the data covers only part of it)\n");
    }
    Some(out)
}

pub(super) fn stickiness(table: &Table, style: Style) -> Option<String> {
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
            padded_bar(n as f64 / max as f64, style.bar_room(24, BAR), style, "38;5;39"),
            group_thousands(n),
            n as f64 / total as f64 * 100.0,
        );
    }
    Some(out)
}

pub(super) fn stages(table: &Table, style: Style) -> Option<String> {
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
            let w = (*n as f64 / max as f64 * style.width.saturating_sub(24).clamp(20, 50) as f64).round()
                as usize;
            line += &style.paint(stage_color(name), &glyph[i.min(4)].to_string().repeat(w));
        }
        let total: i64 = parts.iter().map(|(_, n)| n).sum();
        let _ = writeln!(out, "{b:<12} {line} {}", group_thousands(total));
    }
    Some(out)
}

/// The journey map: each stage in order, how many reached it, and where they went next.
pub(super) fn transitions(table: &Table, style: Style) -> Option<String> {
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
            "{} {}  {} advanced to it (furthest stage so far)",
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
                padded_bar(frac, style.bar_room(41, 30), style, stage_color(dest)),
                group_thousands(*n),
                frac * 100.0,
            );
        }
    }
    Some(out)
}

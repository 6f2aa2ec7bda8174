//! CSV files: a header row names the columns (RFC 4180 quoting; a UTF-8 byte-order mark is
//! ignored). An empty field is a null.
//!
//! Uses: `ingest`, `limits`, `model`; rooms `values`.

use super::values::unknown_stage;
use std::io::BufRead;
use std::path::Path;

use super::{
    ImportError, ImportOptions, Imported, Layout, Parts, RowValues, Staged, bad_row, infer, parse_as,
};
use crate::ingest::check_name_text;
use crate::limits;
use crate::model::Stage;

/// Where each role's column is, and the staged property of every other column.
struct Columns {
    core: Layout,
    /// (field index, staged property index).
    props: Vec<(usize, usize)>,
    names: Vec<String>,
}

fn layout(
    file: &Path,
    header: &csv::ByteRecord,
    opts: &ImportOptions,
    staged: &mut Staged,
) -> Result<Columns, ImportError> {
    let bad = |reason: String| ImportError::File {
        file: file.to_owned(),
        reason,
    };
    let mut names = Vec::with_capacity(header.len());
    for (i, f) in header.iter().enumerate() {
        let name = std::str::from_utf8(f)
            .map_err(|_| bad(format!("header field {} is not UTF-8", i + 1)))?
            .trim();
        if names.iter().any(|n: &String| n == name) {
            return Err(bad(format!("the header names column `{name}` twice")));
        }
        names.push(name.to_owned());
    }
    let core = Layout::locate(&names, opts).map_err(bad)?;
    let mut props = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if core.is_core(i) {
            continue;
        }
        let p = staged
            .prop(name, opts)
            .map_err(|e| bad(format!("column {}: {e}", i + 1)))?;
        props.push((i, p));
    }
    Ok(Columns { core, props, names })
}

fn text(field: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(field).map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to()))
}

/// Parses one record into `row`; the error is (field index, reason).
fn parse_row<'r>(
    rec: &'r csv::ByteRecord,
    cols: &Columns,
    opts: &'r ImportOptions,
    out: &mut Imported,
    line: u64,
) -> Result<RowValues<'r>, (usize, String)> {
    let staged = &mut out.staged;
    let field = |i: usize| rec.get(i).ok_or((i, "missing field".to_owned()));
    let l = &cols.core;
    let customer = text(field(l.customer)?).map_err(|e| (l.customer, e))?;
    check_name_text("customer id", customer, limits::CUSTOMER_ID_BYTES_MAX).map_err(|e| (l.customer, e))?;
    let ts = text(field(l.ts)?)
        .and_then(|t| out.ts.text(t))
        .map_err(|e| (l.ts, e))?;
    let event = match l.event {
        Some(i) => {
            let event = text(field(i)?).map_err(|e| (i, e))?;
            check_name_text("event name", event, limits::NAME_BYTES_MAX).map_err(|e| (i, e))?;
            event
        }
        None => opts.event.as_deref().unwrap_or_default(),
    };
    let stage = match l.stage {
        None => None,
        Some(i) => {
            let t = text(field(i)?).map_err(|e| (i, e))?.trim();
            if t.is_empty() {
                None
            } else {
                Some(Stage::parse(t).ok_or_else(|| (i, unknown_stage(t)))?)
            }
        }
    };
    let mut props = Vec::with_capacity(cols.props.len());
    for &(i, p) in &cols.props {
        let raw = field(i)?;
        if raw.is_empty() {
            continue;
        }
        let t = text(raw).map_err(|e| (i, e))?;
        // The column's type reads the text; failing that, the inferred value makes admit() widen
        // (integers to floats) or explain the mismatch.
        let v = match staged.prop_type(p) {
            Some(ty) => parse_as(t, ty).unwrap_or_else(|_| infer(t)),
            None => infer(t),
        };
        let v = staged.admit(p, v, line).map_err(|e| (i, e))?;
        props.push((p, v));
        if props.len() > limits::EVENT_PROPS_MAX {
            return Err((i, super::too_many_props()));
        }
    }
    Ok(RowValues {
        customer: customer.into(),
        ts,
        event,
        stage,
        props,
    })
}

/// Reads a CSV stream; with `parts`, the staged rows are handed on part by part (the rows
/// returned are then none). The flag is false when a sink stopped the read.
pub(crate) fn read(
    file: &Path,
    input: Box<dyn BufRead>,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
    mut parts: Option<&mut Parts<'_>>,
) -> Result<(Imported, bool), ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 20)
        .from_reader(input);
    let csv_err = |e: csv::Error| -> ImportError {
        let line = e.position().map_or(0, csv::Position::line);
        match e.into_kind() {
            csv::ErrorKind::Io(source) => ImportError::Io {
                file: file.to_owned(),
                source,
            },
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => ImportError::Row {
                file: file.to_owned(),
                line,
                column_no: (len as usize).min(expected_len as usize) + 1,
                column: String::new(),
                reason: format!("{len} fields, the header has {expected_len}"),
            },
            other => ImportError::File {
                file: file.to_owned(),
                reason: format!("line {line}: {other:?}"),
            },
        }
    };
    let mut out = Imported::new(opts);
    let header = rdr.byte_headers().map_err(csv_err)?.clone();
    if header.is_empty() {
        return Err(ImportError::File {
            file: file.to_owned(),
            reason: "empty file: expected a header row".into(),
        });
    }
    let l = layout(file, &header, opts, &mut out.staged)?;
    let mut rec = csv::ByteRecord::new();
    let mut rows = 0u64;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let e = csv_err(e);
                if matches!(e, ImportError::Row { .. }) {
                    bad_row(opts, &mut out.skipped, e)?;
                    continue;
                }
                return Err(e);
            }
        }
        let line = rec.position().map_or(0, csv::Position::line);
        match parse_row(&rec, &l, opts, &mut out, line) {
            Ok(row) => out.staged.push(&row),
            Err((i, reason)) => bad_row(
                opts,
                &mut out.skipped,
                ImportError::Row {
                    file: file.to_owned(),
                    line,
                    column_no: i + 1,
                    column: l.names.get(i).cloned().unwrap_or_default(),
                    reason,
                },
            )?,
        }
        rows += 1;
        if rows.is_multiple_of(1 << 16) {
            tick(rows);
        }
        if let Some(p) = parts.as_deref_mut()
            && !p.offer(&mut out.staged, p.rows)
        {
            return Ok((out, false));
        }
    }
    tick(rows);
    let done = parts.is_none_or(|p| p.finish(&mut out.staged));
    Ok((out, done))
}

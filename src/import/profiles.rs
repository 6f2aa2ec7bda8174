//! Profile files (`journeydb import DB FILE --profiles`): one customer-profile write per row — a
//! customer column, an optional timestamp column (the write's time; without one every write
//! takes the time given by the caller), and every other column a `customer.NAME` property. CSV
//! and NDJSON, plain or compressed, as event files; the same column names are looked for, the
//! same value forms are read, and a bad row stops the read with its file, line and column
//! (docs/SHELL.md, "Importing profiles").
//!
//! Uses: `ingest`, `limits`, `model`, `time`; rooms `error`, `options`, `staged`, `values`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use super::error::{ImportError, bad_row};
use super::options::{ImportOptions, Role};
use super::staged::{Scalar, describe};
use super::values::{infer, parse_as};
use super::{FileFormat, open_input};
use crate::model::{ProfileUpdate, PropType, TimestampUs, Value};
use crate::time::{Inferred, TsReader};

/// What reading a profile file gives.
#[derive(Debug, Default)]
pub struct ProfileFile {
    /// The writes, in file order.
    pub writes: Vec<ProfileUpdate>,
    /// The properties and the type each was read as (fixed in advance or by its first value).
    pub props: Vec<(String, PropType)>,
    /// The timestamp column, if the file has one.
    pub ts_column: Option<String>,
    /// The bad rows skipped (at most [`ImportOptions::skip_bad`]).
    pub skipped: Vec<ImportError>,
    /// What was inferred about integer timestamps (see [`crate::time`]).
    pub ts_inferred: Option<Inferred>,
}

/// The header's roles: the customer column, the timestamp column if any, the properties.
struct Header {
    customer: usize,
    ts: Option<usize>,
    names: Vec<String>,
}

/// The file's columns and the property types fixed so far.
struct Reader<'a> {
    file: &'a Path,
    opts: &'a ImportOptions,
    now: TimestampUs,
    ts: TsReader,
    types: HashMap<String, PropType>,
    order: Vec<String>,
}

/// Reads profile file `file`. `opts.prop_types` fixes the types of properties the database
/// already has (names without the `customer.` prefix); `now` is the time of every write when
/// the file has no timestamp column.
pub fn read_profiles(
    file: &Path,
    opts: &ImportOptions,
    now: TimestampUs,
) -> Result<ProfileFile, ImportError> {
    let format = opts.format.or_else(|| FileFormat::from_path(file));
    let mut reader = Reader {
        file,
        opts,
        now,
        ts: TsReader::new(opts.ts_form()),
        types: opts.prop_types.clone(),
        order: Vec::new(),
    };
    let input = open_input(file, Default::default())?;
    let mut skipped = Vec::new();
    let (writes, ts_column) = match format {
        Some(FileFormat::Csv) => reader.csv(input, &mut skipped)?,
        Some(FileFormat::Ndjson) => reader.ndjson(input, &mut skipped)?,
        _ => {
            return Err(ImportError::File {
                file: file.to_owned(),
                reason: "profiles are read from CSV or NDJSON files (optionally .gz or .zst)".into(),
            });
        }
    };
    let props = (reader.order.iter())
        .filter_map(|name| reader.types.get(name).map(|ty| (name.clone(), *ty)))
        .collect();
    Ok(ProfileFile {
        writes,
        props,
        ts_column,
        skipped,
        ts_inferred: reader.ts.inferred(),
    })
}

impl Reader<'_> {
    fn row_error(&self, line: u64, column: usize, name: &str, reason: String) -> ImportError {
        ImportError::Row {
            file: self.file.to_owned(),
            line,
            column_no: column + 1,
            column: name.to_owned(),
            reason,
        }
    }

    /// Finds the customer and timestamp columns among `names`.
    fn header(&mut self, names: Vec<String>) -> Result<Header, ImportError> {
        let find = |role: Role| {
            let wanted = self.opts.names(role);
            (wanted.iter()).find_map(|w| names.iter().position(|n| n == w))
        };
        let Some(customer) = find(Role::Customer) else {
            let list: Vec<String> = self
                .opts
                .names(Role::Customer)
                .iter()
                .map(|w| format!("`{w}`"))
                .collect();
            return Err(ImportError::File {
                file: self.file.to_owned(),
                reason: format!(
                    "no customer column (looked for {}); name it with --customer-col",
                    list.join(", ")
                ),
            });
        };
        let ts = find(Role::Ts);
        if self.opts.ts_col.is_some() && ts.is_none() {
            return Err(ImportError::File {
                file: self.file.to_owned(),
                reason: format!(
                    "no timestamp column `{}`",
                    self.opts.ts_col.as_deref().unwrap_or("")
                ),
            });
        }
        Ok(Header { customer, ts, names })
    }

    /// The value of property `name`: of the property's type (an integer is accepted for a
    /// number), or fixing the type by this first value.
    fn value(&mut self, name: &str, scalar: Scalar<'_>) -> Result<Value, String> {
        if !self.order.iter().any(|n| n == name) {
            self.order.push(name.to_owned());
        }
        let fixed = *self.types.entry(name.to_owned()).or_insert(scalar_type(scalar));
        match (fixed, scalar) {
            (PropType::Str, Scalar::Str(s)) => Ok(Value::Str(s.to_owned())),
            (PropType::I64, Scalar::I64(i)) => Ok(Value::I64(i)),
            (PropType::F64, Scalar::F64(x)) => Ok(Value::F64(x)),
            (PropType::F64, Scalar::I64(i)) => Ok(Value::F64(i as f64)),
            (PropType::Bool, Scalar::Bool(b)) => Ok(Value::Bool(b)),
            (ty, other) => Err(format!(
                "the property is {ty} but the value is {}",
                describe(other)
            )),
        }
    }

    /// One write: the customer, the time and the properties of one row.
    fn write(&mut self, customer: &str, ts: Option<&str>) -> Result<ProfileUpdate, (usize, String)> {
        let ts_us = match ts {
            Some(text) => self.ts.text(text).map_err(|e| (1, e))?,
            None => self.now,
        };
        let customer = customer.trim();
        crate::ingest::check_name_text("customer id", customer, crate::limits::CUSTOMER_ID_BYTES_MAX)
            .map_err(|e| (0, e))?;
        Ok(ProfileUpdate::new(customer, ts_us))
    }

    /// Where the row's customer or timestamp error (0: customer, else time) is.
    fn core_error(&self, line: u64, header: &Header, (which, e): (usize, String)) -> ImportError {
        let column = if which == 0 {
            header.customer
        } else {
            header.ts.unwrap_or(0)
        };
        self.row_error(line, column, &header.names[column], e)
    }

    fn csv(&mut self, input: Box<dyn BufRead>, skipped: &mut Vec<ImportError>) -> Result<Read, ImportError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(input);
        let file = self.file.to_owned();
        let csv_error = move |e: csv::Error| match e.position().map(csv::Position::line) {
            Some(line) => ImportError::Row {
                file: file.clone(),
                line,
                column_no: 1,
                column: String::new(),
                reason: e.to_string(),
            },
            None => ImportError::File {
                file: file.clone(),
                reason: e.to_string(),
            },
        };
        let names: Vec<String> = (rdr.headers().map_err(&csv_error)?.iter())
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect();
        let header = self.header(names)?;
        let mut out = Vec::new();
        for record in rdr.records() {
            let row = record
                .map_err(&csv_error)
                .and_then(|record| self.csv_row(&record, &header));
            match row {
                Ok(write) => out.push(write),
                Err(e) => bad_row(self.opts, skipped, e)?,
            }
        }
        Ok((out, header.ts.map(|i| header.names[i].clone())))
    }

    fn csv_row(&mut self, record: &csv::StringRecord, header: &Header) -> Result<ProfileUpdate, ImportError> {
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(i).unwrap_or("");
        let mut write = (self.write(field(header.customer), header.ts.map(field)))
            .map_err(|e| self.core_error(line, header, e))?;
        for (i, name) in header.names.iter().enumerate() {
            let text = field(i);
            if i == header.customer || Some(i) == header.ts || text.is_empty() {
                continue;
            }
            let scalar = match self.types.get(name) {
                Some(&ty) => parse_as(text, ty).map_err(|e| self.row_error(line, i, name, e))?,
                None => infer(text),
            };
            let value = (self.value(name, scalar)).map_err(|e| self.row_error(line, i, name, e))?;
            write.props.push((name.clone(), Some(value)));
        }
        Ok(write)
    }

    fn ndjson(
        &mut self,
        input: Box<dyn BufRead>,
        skipped: &mut Vec<ImportError>,
    ) -> Result<Read, ImportError> {
        let mut out = Vec::new();
        let mut ts_column = None;
        for (index, text) in input.lines().enumerate() {
            let line = index as u64 + 1;
            let text = text.map_err(|source| ImportError::Io {
                file: self.file.to_owned(),
                source,
            })?;
            if text.trim().is_empty() {
                continue;
            }
            match self.ndjson_row(&text, line, &mut ts_column) {
                Ok(write) => out.push(write),
                Err(e) => bad_row(self.opts, skipped, e)?,
            }
        }
        Ok((out, ts_column))
    }

    fn ndjson_row(
        &mut self,
        text: &str,
        line: u64,
        ts_column: &mut Option<String>,
    ) -> Result<ProfileUpdate, ImportError> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| self.row_error(line, e.column().saturating_sub(1), "", e.to_string()))?;
        let header = self.header(object.keys().cloned().collect())?;
        let text_of = |i: usize| match &object[&header.names[i]] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut write = (self.write(&text_of(header.customer), header.ts.map(text_of).as_deref()))
            .map_err(|e| self.core_error(line, &header, e))?;
        if let Some(i) = header.ts {
            ts_column.get_or_insert_with(|| header.names[i].clone());
        }
        for (i, name) in header.names.iter().enumerate() {
            if i == header.customer || Some(i) == header.ts {
                continue;
            }
            let scalar = match &object[name] {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => Scalar::Str(s),
                serde_json::Value::Bool(b) => Scalar::Bool(*b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Scalar::I64(i),
                    None => Scalar::F64(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    let e = "nested values are not properties: flatten them".to_owned();
                    return Err(self.row_error(line, i, name, e));
                }
            };
            let value = (self.value(name, scalar)).map_err(|e| self.row_error(line, i, name, e))?;
            write.props.push((name.clone(), Some(value)));
        }
        Ok(write)
    }
}

/// The writes read and the timestamp column.
type Read = (Vec<ProfileUpdate>, Option<String>);

/// The type a value has on its own.
fn scalar_type(scalar: Scalar<'_>) -> PropType {
    match scalar {
        Scalar::Str(_) => PropType::Str,
        Scalar::I64(_) => PropType::I64,
        Scalar::F64(_) => PropType::F64,
        Scalar::Bool(_) => PropType::Bool,
    }
}

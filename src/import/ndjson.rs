//! NDJSON files: one JSON object per line; blank lines are skipped. Values keep their JSON types
//! (a string is never reinterpreted as a number); `null` is a null; nested arrays and objects are
//! rejected.
//!
//! Uses: `ingest`, `limits`, `model`; rooms `values`.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::values::unknown_stage;
use super::{ImportError, ImportOptions, Imported, Layout, Parts, RowValues, Scalar, bad_row};
use crate::ingest::check_name_text;
use crate::limits;
use crate::model::Stage;

/// One JSON value of a row.
#[derive(Debug)]
enum J<'a> {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    /// Not representable: the reason.
    Unsupported(&'static str),
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<J<'de>, E> {
        Ok(J::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<J<'de>, E> {
        Ok(J::I64(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<J<'de>, E> {
        Ok(i64::try_from(value).map_or(J::Unsupported("integer larger than 2^63-1"), J::I64))
    }
    fn visit_f64<E>(self, value: f64) -> Result<J<'de>, E> {
        Ok(J::F64(value))
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Borrowed(text)))
    }
    fn visit_str<E>(self, text: &str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(text.to_owned())))
    }
    fn visit_string<E>(self, value: String) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(value)))
    }
    fn visit_unit<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(J::Unsupported(
            "arrays are not supported; flatten them into columns",
        ))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(J::Unsupported(
            "nested objects are not supported; flatten them into columns",
        ))
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JVisitor)
    }
}

/// An object key, borrowed from the line when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// One line's object: its entries in order.
struct Obj<'a>(Vec<(Cow<'a, str>, J<'a>)>);

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("one JSON object per line")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    if out.iter().any(|(name, _)| *name == k) {
                        return Err(de::Error::custom(format!("key `{k}` given twice")));
                    }
                    out.push((k, map.next_value::<J<'de>>()?));
                }
                Ok(Obj(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn parse_obj(line: &[u8]) -> Result<Obj<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let obj = Obj::deserialize(&mut de)?;
    de.end()?;
    Ok(obj)
}

/// The error of a row: (1-based field number, key, reason).
type RowErr = (usize, String, String);

fn parse_row<'a>(
    obj: &'a Obj<'a>,
    opts: &'a ImportOptions,
    out: &mut Imported,
    line: u64,
) -> Result<RowValues<'a>, RowErr> {
    let staged = &mut out.staged;
    let entries = &obj.0;
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
    let core = Layout::locate(&keys, opts).map_err(|e| (0, String::new(), e))?;
    let (ci, ti, ei, si) = (core.customer, core.ts, core.event, core.stage);
    let err = |i: usize, reason: String| (i + 1, entries[i].0.to_string(), reason);
    let customer: Cow<'a, str> = match &entries[ci].1 {
        J::Str(s) => Cow::Borrowed(s.as_ref()),
        J::I64(n) => Cow::Owned(n.to_string()),
        _ => return Err(err(ci, "expected a string or an integer".into())),
    };
    check_name_text("customer id", &customer, limits::CUSTOMER_ID_BYTES_MAX).map_err(|e| err(ci, e))?;
    let ts = match &entries[ti].1 {
        J::Str(s) => out.ts.text(s),
        J::I64(n) => out.ts.integer(*n),
        J::F64(x) => out.ts.float(*x),
        _ => Err("expected a timestamp string or number".into()),
    }
    .map_err(|e| err(ti, e))?;
    let event = match ei {
        Some(ei) => {
            let event = match &entries[ei].1 {
                J::Str(s) => s.as_ref(),
                _ => return Err(err(ei, "expected a string".into())),
            };
            check_name_text("event name", event, limits::NAME_BYTES_MAX).map_err(|e| err(ei, e))?;
            event
        }
        None => opts.event.as_deref().unwrap_or_default(),
    };
    let stage = match si.map(|i| (i, &entries[i].1)) {
        None | Some((_, J::Null)) => None,
        Some((i, J::Str(s))) if s.trim().is_empty() => {
            let _ = i;
            None
        }
        Some((i, J::Str(s))) => Some(Stage::parse(s.trim()).ok_or_else(|| err(i, unknown_stage(s)))?),
        Some((i, _)) => return Err(err(i, "expected a stage name".into())),
    };
    let mut props = Vec::with_capacity(entries.len().saturating_sub(3));
    for (i, (k, v)) in entries.iter().enumerate() {
        if core.is_core(i) {
            continue;
        }
        let v = match v {
            J::Null => continue,
            J::Bool(b) => Scalar::Bool(*b),
            J::I64(n) => Scalar::I64(*n),
            J::F64(x) => Scalar::F64(*x),
            J::Str(s) => Scalar::Str(s.as_ref()),
            J::Unsupported(reason) => return Err(err(i, (*reason).to_owned())),
        };
        let p = staged.prop(k, opts).map_err(|e| err(i, e))?;
        let v = staged.admit(p, v, line).map_err(|e| err(i, e))?;
        props.push((p, v));
        if props.len() > limits::EVENT_PROPS_MAX {
            return Err(err(i, super::too_many_props()));
        }
    }
    Ok(RowValues {
        customer,
        ts,
        event,
        stage,
        props,
    })
}

/// Reads an NDJSON stream; with `parts`, the staged rows are handed on part by part (the rows
/// returned are then none). The flag is false when a sink stopped the read.
pub(crate) fn read(
    file: &Path,
    mut input: Box<dyn BufRead>,
    opts: &ImportOptions,
    tick: &mut dyn FnMut(u64),
    mut parts: Option<&mut Parts<'_>>,
) -> Result<(Imported, bool), ImportError> {
    let mut out = Imported::new(opts);
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    let mut rows = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| ImportError::Io {
                file: file.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let bad = |(column_no, column, reason): RowErr| ImportError::Row {
            file: file.to_owned(),
            line,
            column_no,
            column,
            reason,
        };
        let row = match parse_obj(text) {
            Ok(obj) => match parse_row(&obj, opts, &mut out, line) {
                Ok(row) => {
                    out.staged.push(&row);
                    Ok(())
                }
                Err(e) => Err(bad(e)),
            },
            Err(e) => Err(bad((e.column(), String::new(), strip_position(&e)))),
        };
        if let Err(e) = row {
            bad_row(opts, &mut out.skipped, e)?;
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

/// serde_json's message without its " at line L column C" suffix (we report our own line).
fn strip_position(error: &serde_json::Error) -> String {
    let s = error.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

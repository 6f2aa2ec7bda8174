//! Parsing one field: property values and their inferred types, stage names (timestamps have
//! their own module). Shared by every format's reader.
//!
//! Uses: `model`; rooms `staged`.

use crate::import::staged::Scalar;
use crate::model::{PropType, Stage};

/// Infers a CSV text value: integer (no leading zeros), float, `true`/`false`, else string.
pub(crate) fn infer(text: &str) -> Scalar<'_> {
    let t = text.trim();
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    let b = unsigned.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        if b.len() > 1 && b[0] == b'0' {
            // Zip codes, account numbers: leading zeros mean text.
            return Scalar::Str(text);
        }
        if let Ok(i) = t.parse::<i64>() {
            return Scalar::I64(i);
        }
    }
    let numeric_shape = !b.is_empty()
        && b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric_shape && let Ok(x) = t.parse::<f64>() {
        return Scalar::F64(x);
    }
    if t.eq_ignore_ascii_case("true") {
        return Scalar::Bool(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return Scalar::Bool(false);
    }
    Scalar::Str(text)
}

/// Parses a CSV text value as `ty` (a column whose type is already known).
pub(crate) fn parse_as(text: &str, ty: PropType) -> Result<Scalar<'_>, String> {
    let t = text.trim();
    match ty {
        PropType::Str => Ok(Scalar::Str(text)),
        PropType::I64 => match infer(t) {
            Scalar::I64(i) => Ok(Scalar::I64(i)),
            Scalar::F64(x) => Ok(Scalar::F64(x)),
            _ => t
                .parse::<i64>()
                .map(Scalar::I64)
                .map_err(|_| format!("expected an integer, got {t:?}")),
        },
        PropType::F64 => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Scalar::F64(x)),
            _ => Err(format!("expected a number, got {t:?}")),
        },
        PropType::Bool => match infer(t) {
            Scalar::Bool(v) => Ok(Scalar::Bool(v)),
            _ => Err(format!("expected true or false, got {t:?}")),
        },
    }
}

/// Parses a property type name: `string`, `int`/`i64`/`integer`, `float`/`f64`/`double`, `bool`.
pub fn parse_prop_type(text: &str) -> Option<PropType> {
    match text.to_ascii_lowercase().as_str() {
        "string" | "str" | "text" | "varchar" => Some(PropType::Str),
        "int" | "i64" | "integer" | "bigint" => Some(PropType::I64),
        "float" | "f64" | "double" | "number" => Some(PropType::F64),
        "bool" | "boolean" => Some(PropType::Bool),
        _ => None,
    }
}

/// The error for a stage name that is not one of the five.
pub(crate) fn unknown_stage(text: &str) -> String {
    format!(
        "unknown stage {text:?} (expected one of {})",
        Stage::ALL.map(Stage::name).join(", ")
    )
}

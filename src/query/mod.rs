//! The query language: lexer, abstract syntax tree, recursive-descent parser, and parse errors
//! that carry a span and render with a caret under the offending token. Depends on `model` only.
//! The grammar and exact semantics are in docs/QUERY.md.
//!
//! Uses: no other module of the crate.

pub mod ast;
pub mod lexer;
pub mod parser;

use std::fmt;

pub use parser::{parse, parse_set};

/// A byte range in the query text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The 1-based line and column (in characters) of the span's start in `text`.
    pub fn line_column(&self, text: &str) -> (usize, usize) {
        let start = self.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
        (before.matches('\n').count() + 1, column)
    }
}

/// An error located in the query text.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ParseError {
    /// Where.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl ParseError {
    /// A new error.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the error against the query text: line, column, the line, and a caret under the
    /// span (control characters in the echoed line are shown escaped).
    pub fn render(&self, text: &str) -> String {
        self.render_at(text, None, 1)
    }

    /// As [`ParseError::render`], for a statement that starts on line `first_line` of a script:
    /// the place reads `line L, column C` of the whole script, or `FILE:L:C` when the script is
    /// the file `file`.
    pub fn render_at(&self, text: &str, file: Option<&str>, first_line: usize) -> String {
        let start = self.span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |p| start + p);
        let (line_no, col) = self.span.line_column(text);
        let line = &text[line_start..line_end];
        let width = text[start..self.span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let shown: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line_no = line_no + first_line.max(1) - 1;
        let place = match file {
            Some(file) => format!("{file}:{line_no}:{col}"),
            None => format!("line {line_no}, column {col}"),
        };
        let mut out = format!("error: {}\n --> {place}\n  | {shown}\n  | ", self.message);
        out.push_str(&" ".repeat(col - 1));
        out.push_str(&"^".repeat(width));
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  = help: {help}"));
        }
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} (at bytes {}..{})",
            self.message, self.span.start, self.span.end
        )?;
        if let Some(h) = &self.help {
            write!(formatter, "; help: {h}")?;
        }
        Ok(())
    }
}

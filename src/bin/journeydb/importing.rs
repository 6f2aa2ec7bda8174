//! The options of `journeydb import` and `.import` (one definition: the shell takes exactly the
//! command's options), `--check`, and what an import says about its timestamps.

use std::io::Write;
use std::path::PathBuf;

use journeydb::import::{self, ImportOptions};
use journeydb::internals::model::format_ts;
use journeydb::time::{Inferred, TsForm, TsSpan, TsUnit};
use journeydb::{Db, PropType};

use crate::FileFormatArg;

/// The options of an import, shared by `journeydb import` and the shell's `.import`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ImportFlags {
    /// File format (default: from the file name).
    #[arg(long, value_enum)]
    format: Option<FileFormatArg>,
    /// Unit of integer timestamps: s, ms, us or ns (default: inferred from their magnitude, and
    /// said).
    #[arg(long, value_parser = parse_unit, conflicts_with = "ts_format")]
    ts_unit: Option<TsUnit>,
    /// strftime-style pattern of the timestamps, e.g. %Y%m%d or '%d/%m/%Y %H:%M' (UTC unless
    /// the pattern has %z).
    #[arg(long, value_name = "PATTERN")]
    ts_format: Option<String>,
    /// Customer column (default: customer, customer_id, user_id or distinct_id).
    #[arg(long)]
    customer_col: Option<String>,
    /// Timestamp column (default: ts, timestamp, time or event_time).
    #[arg(long)]
    ts_col: Option<String>,
    /// Event column (default: event, event_name or name).
    #[arg(long, conflicts_with = "event")]
    event_col: Option<String>,
    /// Every row's event name, for a file without an event column (no event column is then
    /// looked for).
    #[arg(long, value_name = "NAME")]
    event: Option<String>,
    /// Stage column (default: stage; optional).
    #[arg(long)]
    stage_col: Option<String>,
    /// Skip and report up to N bad rows per file instead of failing on the first.
    #[arg(long, default_value_t = 0)]
    skip_bad: usize,
    /// Fix a property's type: NAME=string|int|float|bool (repeatable).
    #[arg(long = "type", value_name = "NAME=TYPE")]
    types: Vec<String>,
    /// The files hold customer profiles, not events: a customer column, an optional timestamp
    /// column, and every other column a `customer.NAME` property.
    #[arg(long, conflicts_with = "links")]
    pub profiles: bool,
    /// The files hold identity links: columns `anonymous_id` and `customer_id`, one link per row
    /// (each file all or nothing).
    #[arg(long)]
    pub links: bool,
    /// Read and check the files, print what an import would bring (rows, customers, events,
    /// time range, types), and write nothing.
    #[arg(long)]
    pub check: bool,
}

fn parse_unit(text: &str) -> Result<TsUnit, String> {
    TsUnit::parse(text).ok_or_else(|| format!("unknown unit {text:?} (expected s, ms, us or ns)"))
}

impl ImportFlags {
    /// The import options, and the `--type` overrides.
    pub fn options(&self) -> Result<(ImportOptions, Vec<(String, PropType)>), String> {
        let overrides = (self.types.iter())
            .map(|t| crate::transfer::parse_type_override(t))
            .collect::<Result<Vec<_>, _>>()?;
        let opts = ImportOptions {
            format: self.format.map(Into::into),
            ts_unit: self.ts_unit,
            ts_format: self.ts_format.clone(),
            event: self.event.clone(),
            customer_col: self.customer_col.clone(),
            ts_col: self.ts_col.clone(),
            event_col: self.event_col.clone(),
            stage_col: self.stage_col.clone(),
            skip_bad: self.skip_bad,
            ..ImportOptions::default()
        };
        Ok((opts, overrides))
    }
}

/// `.import FILE… [options]`: the files and the options, parsed as `journeydb import` parses
/// them (words split as a POSIX shell splits them: quotes and backslashes).
#[derive(clap::Parser, Debug)]
#[command(name = ".import", no_binary_name = true, disable_help_flag = true)]
pub struct ShellImport {
    /// Files to import, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub flags: ImportFlags,
}

impl ShellImport {
    /// Parses the argument text of `.import`.
    pub fn parse(text: &str) -> Result<ShellImport, String> {
        use clap::Parser;
        ShellImport::try_parse_from(words(text)?).map_err(|e| {
            let rendered = e.render().to_string();
            rendered
                .trim_end()
                .replace("Usage: .import", "usage: .import")
                .to_owned()
        })
    }
}

/// Splits `text` into words as a POSIX shell does: blanks separate, '…' and "…" quote, a
/// backslash escapes the next character (outside single quotes).
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let (mut out, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(chars.next().ok_or("unterminated \" quote")?),
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or("a backslash ends the line")?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// How the timestamps were read, for the summary line.
pub fn read_as(opts: &ImportOptions, inferred: Option<Inferred>) -> String {
    match (inferred, opts.ts_form()) {
        (Some(Inferred::Unit(unit)), _) => format!(
            "integers read as {unit} since the Unix epoch, inferred from their magnitude (--ts-unit sets it)"
        ),
        (Some(Inferred::DateDigits), _) => {
            "integers read as YYYYMMDD dates, inferred from their form (--ts-format sets it)".into()
        }
        (None, TsForm::Unit(unit)) => format!("integers read as {unit} (--ts-unit)"),
        (None, TsForm::Pattern(pattern)) => format!("read with --ts-format {pattern:?}"),
        (None, TsForm::Infer) => "ISO 8601".into(),
    }
}

/// The timestamps line of a summary and the warnings the span calls for.
pub fn ts_report(file: &str, span: &TsSpan, how: &str, out: &mut dyn Write) {
    let (Some(first), Some(last)) = (span.first, span.last) else {
        return;
    };
    let _ = writeln!(
        out,
        "  timestamps {} … {}; {how}",
        format_ts(first),
        format_ts(last)
    );
    if span.before_1990 > 0 {
        eprintln!(
            "warning: {file}: {} of {} events are dated before 1990 (the earliest {}): is the \
             timestamp unit or format right? (--ts-unit, --ts-format)",
            span.before_1990,
            span.count,
            format_ts(first)
        );
    }
    if span.after_tomorrow > 0 {
        eprintln!(
            "warning: {file}: {} of {} events are dated more than a day after this machine's clock \
             (the latest {}): is the timestamp unit or format right? (--ts-unit, --ts-format)",
            span.after_tomorrow,
            span.count,
            format_ts(last)
        );
    }
}

/// `journeydb import --check`: reads and checks each file as an import would (against `db`'s
/// property types when there is one) and prints what it would bring; writes nothing.
pub fn check(
    db: Option<&Db>,
    files: &[PathBuf],
    base: &ImportOptions,
    overrides: &[(String, PropType)],
    out: &mut dyn Write,
) -> Result<(), String> {
    for file in files {
        let opts = crate::transfer::options_for(db, base, overrides, false)?;
        let name = file.display().to_string();
        let read = import::read_file(file, &opts, &mut |_, _| {})
            .map_err(|e| format!("{e}; nothing was written (--check)"))?;
        for e in &read.skipped {
            eprintln!("skipped: {}", crate::render::escape_control(&e.to_string()));
        }
        let staged = &read.staged;
        let _ = writeln!(
            out,
            "{name}: {} rows would be imported ({} bad rows skipped); nothing was written (--check)",
            staged.len(),
            read.skipped.len()
        );
        let _ = writeln!(out, "  customers  {}", staged.customers());
        let events: Vec<&str> = staged.event_names().collect();
        let shown = events.iter().take(12).copied().collect::<Vec<_>>().join(", ");
        let more = events.len().saturating_sub(12);
        let _ = writeln!(
            out,
            "  events     {} names: {shown}{}",
            events.len(),
            if more > 0 {
                format!(", … {more} more")
            } else {
                String::new()
            }
        );
        let props: Vec<String> = staged
            .properties()
            .map(|(name, ty)| match ty {
                Some(ty) => format!("{name} {ty}"),
                None => format!("{name} (every value null)"),
            })
            .collect();
        let _ = writeln!(
            out,
            "  properties {}",
            if props.is_empty() {
                "none".to_owned()
            } else {
                props.join(", ")
            }
        );
        let span = staged.ts_span(journeydb::time::now());
        ts_report(&name, &span, &read_as(&opts, read.ts_inferred()), out);
    }
    Ok(())
}

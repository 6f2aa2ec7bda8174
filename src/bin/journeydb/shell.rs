//! The shell: statements and dot-commands, from a script, `-c`, or the interactive editor
//! (rustyline: line editing, persistent history, multi-line statements ended by `;`,
//! completion of keywords, event, property and stage names, dot-commands and file names).

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::importing::ShellImport;
use journeydb::query::parser::{CONTEXTUAL, KEYWORDS, STATEMENTS};
use journeydb::{Db, PropType, Query, QueryError, QueryOptions, Stage};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::chart::{self, Style};
use crate::render::{self, Format, escape_control, group_thousands};
use crate::statements::{take_statements, take_statements_at};
use crate::transfer;

/// The dot-commands, with their one-line help.
pub const DOT_COMMANDS: [(&str, &str); 21] = [
    (
        ".help [STATEMENT]",
        "the statements and these commands; with a name, its syntax and examples",
    ),
    (
        ".events",
        "event names with counts, customers and stages (also .tables)",
    ),
    (".tables", "same as .events"),
    (".schema", "columns and properties with their types"),
    (".stats", "storage statistics"),
    (
        ".cohorts",
        "saved cohorts with their kind, size and definition (same as COHORTS)",
    ),
    (
        ".mode MODE",
        "output mode: table, csv, json (an array per result), jsonl (a row per line) or markdown",
    ),
    (".chart on|off", "draw charts under table results"),
    (".timer on|off", "print the run time of each statement"),
    (
        ".maxwidth [N|0]",
        "the width tables and charts fit (default: COLUMNS, else the terminal's, else 80; 0: no limit)",
    ),
    (
        ".maxrows N|all",
        "table rows shown per result (interactive default 200; the rest are counted)",
    ),
    (
        ".memory SIZE",
        "memory budget of each query's working state, e.g. 256MB or 2GB (default 1GB)",
    ),
    (
        ".output [FILE]",
        "send results to FILE (no argument: back to the screen)",
    ),
    (".read FILE", "run the statements and dot-commands in FILE"),
    (
        ".import FILE… [OPTIONS]",
        "import files with the options of `journeydb import` (--ts-unit, --ts-format, --event, --check, …)",
    ),
    (
        ".export FILE",
        "export every event to FILE (.csv or .ndjson, optionally .gz/.zst)",
    ),
    (
        ".stagemap [EVENT STAGE|none]",
        "show the event → stage map, or set one entry",
    ),
    (".compact", "merge all segments into one"),
    (".verify", "check every checksum of the database"),
    (".quit", "leave the shell (also .exit, Ctrl-D)"),
    (".exit", "same as .quit"),
];

/// What to do after a dot-command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// Leave the shell.
    Quit,
}

/// One shell session on one database.
pub struct Session {
    db: Db,
    read_only: bool,
    /// Output mode.
    pub format: Format,
    /// Draw charts under tables.
    pub chart: bool,
    timer: bool,
    output: Option<(PathBuf, std::fs::File)>,
    /// Rows shown at most in table mode (the rest are counted).
    pub rows_max: Option<usize>,
    /// Set by Ctrl-C while a statement runs (see [`install_ctrl_c`]).
    cancel: Arc<AtomicBool>,
    /// `.read` nesting, bounded so that a script reading itself ends with an error.
    depth: usize,
    /// Memory budget of each query (`.memory`).
    memory_max: usize,
    /// Where the statement being run starts in a script: the file (`None`: standard input or
    /// `-c`) and its line; errors then name that place.
    origin: Option<(Option<String>, usize)>,
    /// The width tables and charts fit: `None` follows the terminal (read before each result,
    /// so a resized window is followed); `Some(None)`: no limit; `Some(Some(n))`: `n` columns.
    pub width_setting: Option<Option<usize>>,
}

/// Parses a byte size: a number with an optional K, M, G or T suffix (powers of 1024; an
/// optional trailing `B` or `iB`).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").or_else(|| t.strip_suffix('B')).unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("expected a size such as 512MB or 2GB, got {text:?}"))?;
    n.checked_mul(1usize << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("size {text:?} is zero or too large"))
}

/// A place in a script: `FILE:LINE`, or `line LINE` of standard input or `-c`.
fn place(file: Option<&str>, line: usize) -> String {
    match file {
        Some(file) => format!("{file}:{line}"),
        None => format!("line {line}"),
    }
}

/// How deeply `.read` may nest.
const READ_DEPTH_MAX: usize = 16;

/// While a statement runs, Ctrl-C cancels it (the shell stays); otherwise Ctrl-C ends the
/// process as usual (at the interactive prompt the line editor reads Ctrl-C as a key instead).
static RUNNING: AtomicBool = AtomicBool::new(false);
static CANCEL: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Installs the Ctrl-C handler once per process.
pub fn install_ctrl_c() {
    let flag = CANCEL.get_or_init(|| Arc::new(AtomicBool::new(false))).clone();
    let _ = ctrlc::set_handler(move || {
        if RUNNING.load(Ordering::SeqCst) {
            flag.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(130);
        }
    });
}

impl Session {
    /// A session; `read_only` says how `db` was opened.
    pub fn new(db: Db, read_only: bool, format: Format) -> Session {
        Session {
            db,
            read_only,
            format,
            chart: format == Format::Table,
            timer: false,
            output: None,
            rows_max: None,
            cancel: CANCEL.get_or_init(|| Arc::new(AtomicBool::new(false))).clone(),
            depth: 0,
            memory_max: QueryOptions::default().memory_max,
            width_setting: None,
            origin: None,
        }
    }

    fn color(&self) -> bool {
        self.output.is_none()
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    /// Writes to the current output (the screen or the `.output` file).
    fn emit(&mut self, text: &str) {
        let r = match &mut self.output {
            Some((_, f)) => f.write_all(text.as_bytes()),
            None => {
                let mut o = std::io::stdout().lock();
                o.write_all(text.as_bytes()).and_then(|()| o.flush())
            }
        };
        if let Err(e) = r {
            eprintln!("error: writing output: {e}");
        }
    }

    /// Runs one statement; prints the result (and chart) or the error. False on error.
    pub fn statement(&mut self, input: &str) -> bool {
        let t0 = Instant::now();
        self.cancel.store(false, Ordering::SeqCst);
        RUNNING.store(true, Ordering::SeqCst);
        let opts = QueryOptions {
            cancel: self.cancel.clone(),
            memory_max: self.memory_max,
            ..QueryOptions::default()
        };
        let result = self.db.query_with(input, &opts);
        RUNNING.store(false, Ordering::SeqCst);
        let elapsed = t0.elapsed();
        match result {
            Ok(mut t) => {
                let total = t.rows.len();
                let mut text = String::new();
                if self.format == Format::Table && self.chart {
                    let style = Style {
                        color: self.color(),
                        width: self.width().unwrap_or(usize::MAX),
                    };
                    if let Some(c) = chart::chart(input, &t, style) {
                        // Every chart adapts its bars to the width; a label longer than the
                        // line is cut with `…`.
                        text += &match self.width() {
                            Some(width) => crate::layout::fit_lines(&c, width),
                            None => c,
                        };
                        text.push('\n');
                    }
                }
                if let Some(m) = self.rows_max.filter(|_| self.format == Format::Table) {
                    t.rows.truncate(m);
                }
                // `rows_max == 0` under a chart: the chart alone.
                if !(t.rows.is_empty() && total > 0 && !text.is_empty()) {
                    text += &render::render(&t, self.format, self.width());
                }
                if t.rows.len() < total && !t.rows.is_empty() {
                    text += &format!("… {} more rows\n", group_thousands((total - t.rows.len()) as i64));
                }
                if self.timer {
                    text += &format!("Run Time: {:.3} s\n", elapsed.as_secs_f64());
                }
                self.emit(&text);
                // On stderr, as sqlite3 and psql print warnings: the answer on stdout stays
                // exactly the table (CSV and JSON consumers read it unchanged).
                for warning in &t.warnings {
                    eprintln!("warning: {warning}");
                }
                true
            }
            Err(QueryError::Parse(e)) => {
                let (file, line) = self.origin.clone().unwrap_or((None, 1));
                eprintln!("{}", e.render_at(input, file.as_deref(), line));
                false
            }
            Err(QueryError::Cancelled) => {
                eprintln!("cancelled (Ctrl-C) after {:.3} s", elapsed.as_secs_f64());
                false
            }
            Err(e) => {
                match &self.origin {
                    Some((Some(file), line)) => eprintln!("error: {e}\n --> {file}:{line}"),
                    _ => eprintln!("error: {e}"),
                }
                false
            }
        }
    }

    fn writable(&self) -> Result<(), String> {
        if self.read_only {
            Err("the database is open read-only (another process holds the writer lock)".into())
        } else {
            Ok(())
        }
    }

    /// Runs one dot-command line.
    pub fn dot(&mut self, line: &str) -> Result<Flow, String> {
        let line = line.trim();
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        match cmd {
            ".help" if !arg.is_empty() => {
                let text = crate::help::statement(arg)?;
                self.emit(&text);
            }
            ".help" => self.help(),
            ".events" | ".tables" => self.events()?,
            ".cohorts" => {
                self.statement("COHORTS");
            }
            ".schema" => self.schema(),
            ".stats" => {
                let s = stats_text(&self.db);
                self.emit(&s);
            }
            ".mode" => return self.mode(arg),
            ".chart" => self.chart = on_off(arg)?,
            ".maxrows" => {
                self.rows_max = match arg {
                    "all" | "0" => None,
                    n => Some(
                        n.parse()
                            .map_err(|_| format!("expected a number or all, got {n:?}"))?,
                    ),
                };
            }
            ".timer" => self.timer = on_off(arg)?,
            ".maxwidth" => self.max_width(arg)?,
            ".memory" => {
                if arg.is_empty() {
                    let s = format!("memory: {} MiB per query\n", self.memory_max >> 20);
                    self.emit(&s);
                } else {
                    self.memory_max = parse_size(arg)?;
                }
            }
            ".output" => {
                self.output = if arg.is_empty() {
                    None
                } else {
                    let f = std::fs::File::create(arg).map_err(|e| format!("cannot write {arg}: {e}"))?;
                    Some((PathBuf::from(arg), f))
                };
            }
            ".read" => return self.read(arg),
            ".import" => self.import(arg)?,
            ".export" => self.export(arg)?,
            ".stagemap" => self.stagemap(arg)?,
            ".compact" => {
                self.writable()?;
                let t0 = Instant::now();
                let n = self.db.compact().map_err(|e| e.to_string())?;
                let s = format!("compacted {n} segments in {:.2} s\n", t0.elapsed().as_secs_f64());
                self.emit(&s);
            }
            ".verify" => {
                let n = self.db.verify().map_err(|e| format!("verify failed: {e}"))?;
                let s = format!("ok: {n} events, every checksum verified\n");
                self.emit(&s);
            }
            ".quit" | ".exit" | ".q" => return Ok(Flow::Quit),
            other => {
                return Err(format!("unknown command {other}; .help lists the commands"));
            }
        }
        Ok(Flow::Continue)
    }

    /// The width output fits now (`None`: no limit).
    pub fn width(&self) -> Option<usize> {
        self.width_setting.unwrap_or_else(crate::layout::terminal_width)
    }

    /// `.maxwidth [N|0]`: sets (or shows) the width output fits; 0 removes the limit.
    fn max_width(&mut self, arg: &str) -> Result<(), String> {
        if arg.is_empty() {
            let s = match self.width() {
                Some(width) => format!("maxwidth: {width}\n"),
                None => "maxwidth: 0 (no limit)\n".to_owned(),
            };
            self.emit(&s);
            return Ok(());
        }
        let width: usize = arg
            .parse()
            .map_err(|_| format!("expected a number of columns (0: no limit), got {arg:?}"))?;
        self.width_setting = Some((width > 0).then_some(width.max(crate::layout::MIN_WIDTH)));
        Ok(())
    }

    /// `.help`: the statements (a line each, from docs/QUERY.md) and the dot-commands.
    fn help(&mut self) {
        let mut s = crate::help::overview();
        s += "Customer-profile properties read as customer.NAME in WHERE, BY and cohorts (import them with `journeydb import DB FILE --profiles`).\n\nCommands:\n";
        for (c, h) in DOT_COMMANDS {
            s += &format!("{c:<30} {h}\n");
        }
        self.emit(&s);
    }

    /// `.mode [table|csv|json|jsonl|markdown]`: sets (or, without an argument, shows) the output form.
    fn mode(&mut self, arg: &str) -> Result<Flow, String> {
        self.format = match arg {
            "table" | "box" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            "markdown" | "md" => Format::Markdown,
            "" => {
                let s = format!("mode: {:?}\n", self.format).to_lowercase();
                self.emit(&s);
                return Ok(Flow::Continue);
            }
            other => {
                return Err(format!(
                    "unknown mode {other:?} (table, csv, json, jsonl, markdown)"
                ));
            }
        };
        Ok(Flow::Continue)
    }

    /// `.read FILE`: runs a script, stopping at its first error.
    fn read(&mut self, arg: &str) -> Result<Flow, String> {
        if arg.is_empty() {
            return Err(".read needs a file name".into());
        }
        if self.depth >= READ_DEPTH_MAX {
            return Err(format!(
                ".read nested more than {READ_DEPTH_MAX} deep (does {arg} read itself?)"
            ));
        }
        let text = std::fs::read_to_string(arg).map_err(|e| format!("cannot read {arg}: {e}"))?;
        self.depth += 1;
        let result = self.script(&text, Some(arg));
        self.depth -= 1;
        result.map_err(|()| format!("{arg}: stopped at the first error"))
    }

    /// `.import FILE… [options]`: imports files as `journeydb import` does, with its options.
    fn import(&mut self, arg: &str) -> Result<(), String> {
        if arg.is_empty() {
            return Err(".import needs a file name (then any option of `journeydb import`)".into());
        }
        let ShellImport { files, flags } = ShellImport::parse(arg)?;
        let (opts, overrides) = flags.options()?;
        let mut msg = Vec::new();
        if flags.check {
            crate::importing::check(Some(&self.db), &files, &opts, &overrides, &mut msg)?;
        } else {
            self.writable()?;
            if flags.links {
                transfer::import_links(&self.db, &files, &mut msg)?;
            } else if flags.profiles {
                transfer::import_profiles(&self.db, &files, &opts, &overrides, &mut msg)?;
            } else {
                transfer::import(&self.db, &files, &opts, &overrides, &mut msg)?;
            }
        }
        self.emit(&String::from_utf8_lossy(&msg));
        Ok(())
    }

    /// `.export FILE`: writes the database to a file (format by extension).
    fn export(&mut self, arg: &str) -> Result<(), String> {
        if arg.is_empty() {
            return Err(".export needs a file name".into());
        }
        let mut msg = Vec::new();
        transfer::export(&self.db, Path::new(arg), None, Default::default(), &mut msg)?;
        self.emit(&String::from_utf8_lossy(&msg));
        Ok(())
    }

    fn events(&mut self) -> Result<(), String> {
        let snap = self.db.snapshot();
        let dicts = snap.dicts();
        let mut counts = vec![0u64; dicts.events.len()];
        let set = journeydb::internals::segment::ColumnSet {
            ts: false,
            event: true,
            stage: false,
            props: false,
            prop_mask: 0,
        };
        snap.scan(set, |cols| {
            for &e in &cols.event {
                if let Some(c) = counts.get_mut(e as usize) {
                    *c += 1;
                }
            }
        })
        .map_err(|e| e.to_string())?;
        let map = self.db.stage_map();
        let mut t = journeydb::Table::new(&["event", "events", "customers", "stage"]);
        for (id, name) in dicts.events.names().enumerate() {
            t.rows.push(vec![
                journeydb::Cell::Str(name.to_owned()),
                journeydb::Cell::Int(counts.get(id).copied().unwrap_or(0) as i64),
                journeydb::Cell::Int(snap.customers_with_event(name).len() as i64),
                map.get(name).map_or(journeydb::Cell::Null, |s| {
                    journeydb::Cell::Str(s.name().to_owned())
                }),
            ]);
        }
        t.rows.sort_by_key(|r| match r.get(1) {
            Some(journeydb::Cell::Int(n)) => -n,
            _ => 0,
        });
        let s = render::render(&t, self.format, self.width());
        self.emit(&s);
        Ok(())
    }

    fn schema(&mut self) {
        let dicts = self.db.snapshot().dicts();
        let mut t = journeydb::Table::new(&["column", "type", "role"]);
        for (c, ty, role) in [
            ("customer", "string", "customer id"),
            ("ts", "timestamp", "event time (µs, UTC)"),
            ("event", "string", "event name"),
            ("stage", "stage", "lifecycle stage (explicit or from .stagemap)"),
        ] {
            t.rows.push(vec![
                journeydb::Cell::Str(c.into()),
                journeydb::Cell::Str(ty.into()),
                journeydb::Cell::Str(role.into()),
            ]);
        }
        for (id, name) in dicts.props.names().enumerate() {
            let ty = dicts.prop_types.get(id).map_or("?", |t: &PropType| t.name());
            t.rows.push(vec![
                journeydb::Cell::Str(name.to_owned()),
                journeydb::Cell::Str(ty.to_owned()),
                journeydb::Cell::Str("property".into()),
            ]);
        }
        let s = render::render(&t, self.format, self.width());
        self.emit(&s);
    }

    fn stagemap(&mut self, arg: &str) -> Result<(), String> {
        if arg.is_empty() {
            let mut map: Vec<(String, Stage)> = self.db.stage_map().into_iter().collect();
            map.sort_by(|a, b| (a.1.code(), &a.0).cmp(&(b.1.code(), &b.0)));
            let mut t = journeydb::Table::new(&["event", "stage"]);
            for (e, s) in map {
                t.rows.push(vec![
                    journeydb::Cell::Str(e),
                    journeydb::Cell::Str(s.name().to_owned()),
                ]);
            }
            let s = render::render(&t, self.format, self.width());
            self.emit(&s);
            return Ok(());
        }
        self.writable()?;
        let mut parts = arg.split_whitespace();
        let (Some(event), Some(stage), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("usage: .stagemap EVENT STAGE (or none)".into());
        };
        let stage = if stage.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(Stage::parse(stage).ok_or_else(|| {
                format!(
                    "unknown stage {stage:?} (expected {} or none)",
                    Stage::ALL.map(Stage::name).join(", ")
                )
            })?)
        };
        self.db.set_stage(event, stage).map_err(|e| e.to_string())?;
        let s = format!(
            "{event} → {} (for the events stored and those to come; an event's own stage is kept)\n",
            stage.map_or("none", Stage::name)
        );
        self.emit(&s);
        Ok(())
    }

    /// Runs a script: statements ended by `;` and dot-commands on their own lines. Stops at the
    /// first error (`Err`), or at `.quit`.
    pub fn script(&mut self, text: &str, file: Option<&str>) -> Result<Flow, ()> {
        let mut buf = String::new();
        // The script's line (1-based) that `buf` starts on.
        let mut buf_line = 1;
        for (index, line) in text.lines().enumerate() {
            if buf.trim().is_empty() && line.trim_start().starts_with('.') {
                buf.clear();
                match self.dot(line) {
                    Ok(Flow::Continue) => continue,
                    Ok(Flow::Quit) => return Ok(Flow::Quit),
                    Err(e) => {
                        eprintln!("error: {e}\n --> {}", place(file, index + 1));
                        return Err(());
                    }
                }
            }
            if buf.trim().is_empty() {
                buf.clear();
                buf_line = index + 1;
            }
            buf.push_str(line);
            buf.push('\n');
            let (statements, rest_line) = take_statements_at(&mut buf);
            for (statement, offset) in statements {
                if !self.statement_at(&statement, file, buf_line + offset) {
                    return Err(());
                }
            }
            buf_line += rest_line;
        }
        let rest = buf.trim();
        let leading = buf.len() - buf.trim_start().len();
        let rest_line = buf_line + buf[..leading].matches('\n').count();
        if !rest.is_empty() && !self.statement_at(rest, file, rest_line) {
            return Err(());
        }
        Ok(Flow::Continue)
    }

    /// Runs statement `input`, which starts on line `line` of a script (of `file`, when it is
    /// one): its errors say that line.
    fn statement_at(&mut self, input: &str, file: Option<&str>, line: usize) -> bool {
        self.origin = Some((file.map(str::to_owned), line));
        let ok = self.statement(input);
        self.origin = None;
        ok
    }

    /// One input of the interactive loop (a typed line, or several pasted at once): a
    /// dot-command at the start of a statement runs at once; statement text gathers in `pending`
    /// and each statement runs as soon as its `;` arrives (the rest waits, under the `...>`
    /// prompt). Returns whether to quit, and the text of the statements and commands run (for
    /// the history: a statement of several lines is one entry).
    fn interactive_input(&mut self, pending: &mut String, input: &str) -> (Flow, Vec<String>) {
        let mut finished = Vec::new();
        for line in input.lines() {
            if pending.trim().is_empty() {
                pending.clear();
                if line.trim().is_empty() {
                    continue;
                }
                if line.trim_start().starts_with('.') {
                    finished.push(line.trim().to_owned());
                    match self.dot(line) {
                        Ok(Flow::Continue) => continue,
                        Ok(Flow::Quit) => return (Flow::Quit, finished),
                        Err(e) => {
                            eprintln!("error: {e}");
                            continue;
                        }
                    }
                }
            }
            pending.push_str(line);
            pending.push('\n');
            for statement in take_statements(pending) {
                finished.push(format!("{statement};"));
                // An error is printed by `statement`; the shell goes on.
                let _ = self.statement(&statement);
            }
        }
        (Flow::Continue, finished)
    }

    /// The interactive loop.
    pub fn interactive(&mut self) -> Result<(), String> {
        if self.rows_max.is_none() {
            self.rows_max = Some(200);
        }
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .max_history_size(10_000)
            .map_err(|e| e.to_string())?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl: rustyline::Editor<ShellHelper, rustyline::history::FileHistory> =
            rustyline::Editor::with_config(config).map_err(|e| e.to_string())?;
        rl.set_helper(Some(ShellHelper::new(&self.db)));
        let history = history_path();
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        println!(
            "journeydb {} — {} ({}). Statements end with `;`. .help for help, .quit to leave.",
            env!("CARGO_PKG_VERSION"),
            self.db.path().display(),
            if self.read_only { "read-only" } else { "read-write" }
        );
        // The text of a statement not yet ended by `;` (its lines so far).
        let mut pending = String::new();
        loop {
            let prompt = if pending.trim().is_empty() {
                "journeydb> "
            } else {
                "   ...> "
            };
            match rl.readline(prompt) {
                Ok(input) => {
                    let (flow, finished) = self.interactive_input(&mut pending, &input);
                    for statement in finished {
                        let _ = rl.add_history_entry(statement.as_str());
                        if let Some(h) = &history {
                            let _ = rl.append_history(h);
                        }
                    }
                    if flow == Flow::Quit {
                        break;
                    }
                    // New events or properties may have arrived (.import): refresh completion.
                    rl.set_helper(Some(ShellHelper::new(&self.db)));
                }
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    pending.clear();
                    println!("(Ctrl-C: input cleared; .quit or Ctrl-D to leave)");
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

fn on_off(arg: &str) -> Result<bool, String> {
    match arg {
        "on" | "ON" | "1" | "true" => Ok(true),
        "off" | "OFF" | "0" | "false" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}

/// `$JOURNEYDB_HISTORY`, else `$XDG_STATE_HOME/journeydb/history`, else `~/.journeydb_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JOURNEYDB_HISTORY") {
        return Some(PathBuf::from(p));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME") {
        let dir = PathBuf::from(state).join("journeydb");
        if std::fs::create_dir_all(&dir).is_ok() {
            return Some(dir.join("history"));
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".journeydb_history"))
}

/// The stats as text.
pub fn stats_text(db: &Db) -> String {
    let s = db.stats();
    let mut out = format!(
        "events          {}\ncustomers       {}\nsegments        {}\nbuffered events {}\nbytes on disk   {}\nbytes/event     {:.2}\n",
        group_thousands(s.events as i64),
        group_thousands(s.customers as i64),
        s.segments,
        group_thousands(s.buffered_events as i64),
        group_thousands(s.bytes_on_disk as i64),
        s.bytes_per_event
    );
    if s.cache_bytes > 0 {
        out.push_str(&format!(
            "cached bytes    {}\n",
            group_thousands(s.cache_bytes as i64)
        ));
    }
    if s.pending_erasures > 0 {
        out.push_str(&format!(
            "erasures        {} customers ({} events) hidden, removed from disk by the next compaction\n",
            group_thousands(s.pending_erasures as i64),
            group_thousands(s.pending_erased_events as i64)
        ));
    }
    out
}

/// rustyline helper: multi-line validation and completion.
pub struct ShellHelper {
    /// Every word: keywords, functions, periods, stages, events, properties, cohorts.
    words: Vec<String>,
    /// Event names (after `->`, `OF`, `RETURN`, …).
    events: Vec<String>,
    /// Property names, `customer.NAME` included (after `BY`, `WHERE`, `HOLDING`, …).
    props: Vec<String>,
    /// Saved cohorts (after `IN`, `COHORT`).
    cohorts: Vec<String>,
    files: FilenameCompleter,
}

/// What may come after a word (by the word before the one being completed); `None`: anything.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    Event,
    Property,
    Period,
    Stage,
    Cohort,
}

/// What the grammar expects after `previous` (the word before the one being completed).
fn expected_after(previous: &str) -> Option<Expect> {
    Some(match previous.to_ascii_uppercase().as_str() {
        "->" | "OF" | "RETURN" | "RETENTION" | "FUNNEL" | "AFTER" | "BEFORE" | "EXCLUDE" | "DID"
        | "ATTRIBUTION" | "FIT" | "PREDICT" => Expect::Event,
        "BY" | "WHERE" | "AND" | "HOLDING" | "VALUE" => Expect::Property,
        "PERIOD" => Expect::Period,
        "STAGE" => Expect::Stage,
        "IN" | "COHORT" => Expect::Cohort,
        _ => return None,
    })
}

impl ShellHelper {
    fn new(db: &Db) -> ShellHelper {
        let snap = db.snapshot();
        let dicts = snap.dicts();
        let mut words: Vec<String> = KEYWORDS
            .iter()
            .chain(&STATEMENTS)
            .chain(&CONTEXTUAL)
            .map(|k| (*k).to_owned())
            .collect();
        words.extend(
            [
                "count", "uniq", "sum", "avg", "min", "max", "wau", "mau", "day", "week", "month", "hour",
            ]
            .map(String::from),
        );
        words.extend(Stage::ALL.map(|s| s.name().to_owned()));
        let events: Vec<String> = dicts.events.names().map(str::to_owned).collect();
        let props: Vec<String> = dicts.props.names().map(str::to_owned).collect();
        let cohorts: Vec<String> = snap.cohorts().iter().map(|c| c.name.clone()).collect();
        words.extend(events.iter().chain(&props).chain(&cohorts).cloned());
        words.sort();
        words.dedup();
        ShellHelper {
            words,
            events,
            props,
            cohorts,
            files: FilenameCompleter::new(),
        }
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let trimmed = before.trim_start();
        if trimmed.starts_with('.') && !trimmed.contains(' ') {
            let start = pos - trimmed.len();
            let cands = DOT_COMMANDS
                .iter()
                .map(|(c, _)| c.split(' ').next().unwrap_or(c))
                .filter(|c| c.starts_with(trimmed))
                .map(|c| Pair {
                    display: c.to_owned(),
                    replacement: format!("{c} "),
                })
                .collect();
            return Ok((start, cands));
        }
        if [".read ", ".import ", ".export ", ".output "]
            .iter()
            .any(|p| trimmed.starts_with(p))
        {
            return self.files.complete(line, pos, ctx);
        }
        let start = word_start(before);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let upper = word.chars().next().is_some_and(char::is_uppercase);
        let previous = before[..start].split_whitespace().next_back().unwrap_or("");
        let periods = ["hour", "day", "week", "month"].map(String::from);
        let stages = Stage::ALL.map(|s| s.name().to_owned());
        // The grammar's choice where it narrows one (keywords that may also come there kept).
        let (pool, extra): (&[String], &[&str]) = match expected_after(previous) {
            Some(Expect::Event) => (&self.events, &["STAGE", "ANY", "FIRST"]),
            Some(Expect::Property) => (&self.props, &["COHORT", "CUSTOMER"]),
            Some(Expect::Period) => (&periods, &[]),
            Some(Expect::Stage) => (&stages, &[]),
            Some(Expect::Cohort) => (&self.cohorts, &["STAGE", "COHORT"]),
            None => (&self.words, &[]),
        };
        let extra: Vec<String> = extra.iter().map(|k| (*k).to_owned()).collect();
        let cands = pool
            .iter()
            .chain(&extra)
            .filter(|w| w.to_lowercase().starts_with(&word.to_lowercase()))
            .map(|w| {
                // Keywords follow the case the user started typing in.
                let keyword = KEYWORDS
                    .iter()
                    .chain(&STATEMENTS)
                    .chain(&CONTEXTUAL)
                    .any(|k| k == w);
                let text = match (keyword, upper) {
                    (true, false) => w.to_lowercase(),
                    _ => w.clone(),
                };
                // A completed word gets its trailing space.
                Pair {
                    display: text.clone(),
                    replacement: format!("{text} "),
                }
            })
            .collect();
        Ok((start, cands))
    }
}

/// Every Enter hands the line over: the loop gathers a statement's lines itself (and shows the
/// `...>` prompt while one is open).
impl Validator for ShellHelper {}

/// Where the word being completed starts in `before` (a `customer.NAME` property is one word).
fn word_start(before: &str) -> usize {
    before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8))
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Helper for ShellHelper {}

/// Prints a dot-command error.
pub fn report(text: &str) {
    eprintln!("error: {}", escape_control(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_word_starts_after_the_last_separator() {
        assert_eq!(word_start("TREND uniq WHERE customer.pl"), 17);
        assert_eq!(word_start("FUNNEL vis"), 7);
    }
}

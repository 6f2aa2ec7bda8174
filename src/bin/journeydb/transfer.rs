//! `journeydb import` / `.import` and `journeydb export` / `.export`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use journeydb::export::{self, Range};
use journeydb::import::{self, FileFormat, ImportError, ImportOptions};
use journeydb::{Db, PropType, Query};

/// Imports `files` one after another, each by [`Db::import_file`] as one unit (a sealed segment
/// published atomically; a Parquet file in customer order streamed into it part by part, any
/// other file read and checked completely first), so a bad row or a failed write leaves
/// nothing of that file in the database. Returns the events imported.
pub fn import(
    db: &Db,
    files: &[PathBuf],
    base: &ImportOptions,
    overrides: &[(String, PropType)],
    out: &mut dyn Write,
) -> Result<u64, String> {
    let mut total = 0;
    for file in files {
        let opts = options_for(Some(db), base, overrides, false)?;
        let t0 = Instant::now();
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let bar = progress_bar(len);
        let mut tick = |bytes: u64, rows: u64| {
            if let Some(b) = &bar {
                b.set_position(bytes);
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!("{rows} rows, {:.0} rows/s", rows as f64 / secs));
            }
        };
        let done = db.import_file(file, &opts, &mut tick);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let done = done.map_err(|e| match e {
            journeydb::Error::Import(e) => describe(&e),
            e => format!(
                "{}: writing its events failed: {e}; nothing of this file was imported",
                file.display()
            ),
        })?;
        for e in &done.skipped {
            eprintln!("skipped: {}", crate::render::escape_control(&e.to_string()));
        }
        let events = done.events;
        let secs = t0.elapsed().as_secs_f64();
        let _ = writeln!(
            out,
            "{}: imported {} events in {:.2} s ({:.0} events/s; {}){}",
            file.display(),
            events,
            secs,
            events as f64 / secs.max(1e-9),
            match (done.streamed, done.runs) {
                (true, 0) => "streamed in parts".to_owned(),
                (true, runs) => format!("streamed in parts, sorted through {runs} runs on disk"),
                (false, _) => "read whole, then written".to_owned(),
            },
            if done.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {} bad rows", done.skipped.len())
            }
        );
        let name = file.display().to_string();
        let how = crate::importing::read_as(&opts, done.ts_inferred);
        crate::importing::ts_report(&name, &done.timestamps, &how, out);
        total += events;
    }
    db.flush().map_err(|e| e.to_string())?;
    Ok(total)
}

/// `base` with the property types fixed in advance: `db`'s (events' properties, or with
/// `profiles` its `customer.` properties without the prefix) and the `--type` overrides, which
/// must agree with them.
pub fn options_for(
    db: Option<&Db>,
    base: &ImportOptions,
    overrides: &[(String, PropType)],
    profiles: bool,
) -> Result<ImportOptions, String> {
    let mut opts = base.clone();
    if let Some(db) = db {
        opts.fix_types_of(&db.snapshot().dicts(), profiles);
    }
    let prefix = if profiles { "customer." } else { "" };
    for (name, ty) in overrides {
        let name = name.strip_prefix(prefix).unwrap_or(name);
        match opts.prop_types.insert(name.to_owned(), *ty) {
            Some(have) if have != *ty => {
                return Err(format!(
                    "--type {name}={ty}: the database already has `{prefix}{name}` as {have}"
                ));
            }
            _ => {}
        }
    }
    Ok(opts)
}

/// Imports link files (`--links`): each read and checked whole, then linked all or nothing
/// (`Db::link`); a refused link names its file and line. Returns the links added.
pub fn import_links(db: &Db, files: &[PathBuf], out: &mut dyn Write) -> Result<u64, String> {
    let mut total = 0;
    for file in files {
        let rows = import::read_links(file).map_err(|e| describe(&e))?;
        let pairs: Vec<(&str, &str)> = rows
            .iter()
            .map(|row| (row.anonymous.as_str(), row.known.as_str()))
            .collect();
        let added = db.link(&pairs).map_err(|e| {
            let message = e.to_string();
            // The refusal names its pair: the first row with that pair is the line to show.
            let line = rows
                .iter()
                .find(|row| message.contains(&format!("LINK '{}' TO '{}':", row.anonymous, row.known)))
                .map_or(String::new(), |row| format!(":{}", row.line));
            format!(
                "{}{line}: {message}; nothing of this file was linked",
                file.display()
            )
        })?;
        let _ = writeln!(
            out,
            "{}: {} links read, {added} new, {} already in force",
            file.display(),
            rows.len(),
            rows.len() - added
        );
        total += added as u64;
    }
    Ok(total)
}

/// Profile writes committed per batch by [`import_profiles`].
const PROFILE_BATCH: usize = 200_000;

/// Imports profile files (`--profiles`): each read and checked completely (types against the
/// database's `customer.` properties), then committed — as one batch up to [`PROFILE_BATCH`]
/// rows, else in batches of that many. A file without a timestamp column writes at the time of
/// the import, which the summary says. Returns the writes imported.
pub fn import_profiles(
    db: &Db,
    files: &[PathBuf],
    base: &ImportOptions,
    overrides: &[(String, PropType)],
    out: &mut dyn Write,
) -> Result<u64, String> {
    let mut total = 0;
    for file in files {
        let opts = options_for(Some(db), base, overrides, true)?;
        let now = jiff::Timestamp::now().as_microsecond();
        let read = import::read_profiles(file, &opts, now).map_err(|e| describe(&e))?;
        for e in &read.skipped {
            eprintln!("skipped: {}", crate::render::escape_control(&e.to_string()));
        }
        let batches = read.writes.len().div_ceil(PROFILE_BATCH);
        for (k, chunk) in read.writes.chunks(PROFILE_BATCH).enumerate() {
            db.commit_with_profiles(&[], chunk).map_err(|e| {
                let kept = if k == 0 {
                    "nothing of this file was imported".to_owned()
                } else {
                    format!("its first {} rows were imported", k * PROFILE_BATCH)
                };
                format!("{}: writing its profiles failed: {e}; {kept}", file.display())
            })?;
        }
        let customers: std::collections::HashSet<&str> =
            read.writes.iter().map(|w| w.customer.as_str()).collect();
        let props: Vec<String> = read
            .props
            .iter()
            .map(|(name, ty)| format!("customer.{name} ({ty})"))
            .collect();
        let time = match &read.ts_column {
            Some(column) => format!(
                "times from column `{column}` ({})",
                crate::importing::read_as(&opts, read.ts_inferred)
            ),
            None => format!(
                "no timestamp column: every write at {}",
                journeydb::internals::model::format_ts(now)
            ),
        };
        let _ = writeln!(
            out,
            "{}: imported {} profile writes of {} customers{}; {}; properties: {}",
            file.display(),
            read.writes.len(),
            customers.len(),
            if batches > 1 {
                format!(" in {batches} batches")
            } else {
                String::new()
            },
            time,
            if props.is_empty() {
                "none".to_owned()
            } else {
                props.join(", ")
            },
        );
        total += read.writes.len() as u64;
    }
    db.flush().map_err(|e| e.to_string())?;
    Ok(total)
}

fn describe(error: &ImportError) -> String {
    format!("{error}; nothing of this file was imported")
}

fn progress_bar(len: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Exports the database (or `range` of it) to `path` (`-` = standard output). The format comes
/// from `format` or the file name; `.gz` / `.zst` names are compressed. The file appears only
/// when complete (written under a temporary name, then renamed).
pub fn export(
    db: &Db,
    path: &Path,
    format: Option<FileFormat>,
    range: Range,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let format = format.or_else(|| FileFormat::from_path(path)).ok_or_else(|| {
        format!(
            "{}: cannot tell the format from the file name; give --format csv|ndjson|parquet",
            path.display()
        )
    })?;
    let snap = db.snapshot();
    let t0 = Instant::now();
    if path.as_os_str() == "-" {
        let mut lock = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
        return match export::write(&snap, format, range, &mut lock) {
            // `journeydb export DB - | head`: the reader left; that is not an error.
            Err(export::ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
            other => other.map_err(|e| e.to_string()),
        };
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("export");
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
    let file = std::fs::File::create(&tmp).map_err(|e| fail("cannot create the file", &e))?;
    let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    let lower = name.to_ascii_lowercase();
    let result = if lower.ends_with(".gz") {
        let mut w = flate2::write::GzEncoder::new(buffered, flate2::Compression::default());
        export::write(&snap, format, range, &mut w)
            .and_then(|n| w.finish().and_then(finish).map(|()| n).map_err(Into::into))
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        match zstd::stream::write::Encoder::new(buffered, 3) {
            Ok(mut w) => export::write(&snap, format, range, &mut w)
                .and_then(|n| w.finish().and_then(finish).map(|()| n).map_err(Into::into)),
            Err(e) => Err(e.into()),
        }
    } else {
        let mut w = buffered;
        export::write(&snap, format, range, &mut w).and_then(|n| finish(w).map(|()| n).map_err(Into::into))
    };
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("export failed", &e));
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| fail("cannot move the finished file into place", &e))?;
    let secs = t0.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "{}: exported {n} events in {secs:.2} s ({:.0} events/s)",
        path.display(),
        n as f64 / secs.max(1e-9)
    );
    Ok(n)
}

/// Exports the members of saved cohort `name` to `path` (`-` = standard output) as CSV (a
/// `customer` header, one id per line) or NDJSON (`{"customer": "id"}` per line), so that a
/// campaign tool can act on them. Written under a temporary name, then renamed.
pub fn export_cohort(
    db: &Db,
    path: &Path,
    format: Option<FileFormat>,
    name: &str,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let format = format
        .or_else(|| FileFormat::from_path(path))
        .unwrap_or(FileFormat::Csv);
    let opts = journeydb::QueryOptions {
        rows_max: usize::MAX,
        ..Default::default()
    };
    let text = format!("CUSTOMERS IN COHORT '{}'", name.replace('\'', "''"));
    let snapshot = db.snapshot();
    let table = snapshot
        .query_with(&text, &opts)
        .map_err(|e| format!("cohort {name}: {e}"))?;
    let ids: Vec<&str> = table
        .rows
        .iter()
        .filter_map(|row| match row.get(1) {
            Some(journeydb::Cell::Str(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let body = members_file(&snapshot, &ids, format).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.as_os_str() == "-" {
        std::io::stdout()
            .write_all(body.as_bytes())
            .map_err(|e| e.to_string())?;
        return Ok(ids.len() as u64);
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cohort");
    let tmp = path.with_file_name(format!(".{file_name}.partial"));
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(body.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("cannot write the file", &e));
    }
    std::fs::rename(&tmp, path).map_err(|e| fail("cannot move the finished file into place", &e))?;
    let _ = writeln!(
        out,
        "{}: exported {} customers of cohort {name}",
        path.display(),
        ids.len()
    );
    Ok(ids.len() as u64)
}

/// `field` as one RFC 4180 CSV field (quoted when it holds a comma, quote or line break).
/// The members `ids` and their latest profiles as a CSV file (a `customer` column, then one
/// column per profile property, by name) or NDJSON (one object per member).
fn members_file(snapshot: &journeydb::Snapshot, ids: &[&str], format: FileFormat) -> Result<String, String> {
    let mut profiles = Vec::with_capacity(ids.len());
    let mut names = std::collections::BTreeSet::new();
    for id in ids {
        let profile = snapshot.customer_profile(id).map_err(|e| e.to_string())?;
        names.extend(profile.iter().map(|(name, _)| name.clone()));
        profiles.push(profile);
    }
    let text = |value: &journeydb::Value| match value {
        journeydb::Value::Str(s) => s.clone(),
        journeydb::Value::I64(i) => i.to_string(),
        journeydb::Value::F64(x) => x.to_string(),
        journeydb::Value::Bool(b) => b.to_string(),
    };
    let mut body = String::new();
    match format {
        FileFormat::Csv => {
            let header: Vec<String> = ["customer".to_owned()]
                .into_iter()
                .chain(names.iter().map(|n| csv_field(n)))
                .collect();
            body.push_str(&header.join(","));
            body.push('\n');
            for (id, profile) in ids.iter().zip(&profiles) {
                body.push_str(&csv_field(id));
                for name in &names {
                    body.push(',');
                    if let Some((_, value)) = profile.iter().find(|(n, _)| n == name) {
                        body.push_str(&csv_field(&text(value)));
                    }
                }
                body.push('\n');
            }
        }
        FileFormat::Ndjson => {
            for (id, profile) in ids.iter().zip(&profiles) {
                let mut object = serde_json::Map::new();
                object.insert("customer".into(), serde_json::Value::from(*id));
                for (name, value) in profile {
                    let json = match value {
                        journeydb::Value::Str(s) => serde_json::Value::from(s.as_str()),
                        journeydb::Value::I64(i) => serde_json::Value::from(*i),
                        journeydb::Value::F64(x) => serde_json::Value::from(*x),
                        journeydb::Value::Bool(b) => serde_json::Value::from(*b),
                    };
                    object.insert(name.clone(), json);
                }
                body.push_str(&serde_json::Value::Object(object).to_string());
                body.push('\n');
            }
        }
        _ => return Err("a cohort exports as CSV or NDJSON".into()),
    }
    Ok(body)
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Flushes a buffered file writer and syncs the file to disk.
fn finish(writer: std::io::BufWriter<std::fs::File>) -> std::io::Result<()> {
    let f = writer.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    f.sync_all()
}

/// Parses `NAME=TYPE` (for `--type`).
pub fn parse_type_override(text: &str) -> Result<(String, PropType), String> {
    let (name, ty) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=TYPE, got {text:?}"))?;
    let ty = import::parse_prop_type(ty)
        .ok_or_else(|| format!("unknown type {ty:?} (expected string, int, float or bool)"))?;
    Ok((name.to_owned(), ty))
}

/// Parses a `--from` / `--to` time (ISO 8601, or unix milliseconds).
pub fn parse_time(text: &str) -> Result<i64, String> {
    journeydb::time::parse_ts(text, journeydb::TsUnit::Ms)
}

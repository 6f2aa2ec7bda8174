//! Tidy: mechanical rules the compiler does not hold (TigerBeetle's `tidy.zig` idea).
//! - Data flows one way: a module may use only modules declared before it in `src/internals.rs`
//!   (`error` is the root and may name every layer).
//! - No `unwrap()` / `expect(` in library code outside `#[cfg(test)]` items and test modules.
//! - Rooms stay small: no file in `src/` over 1,000 lines, no function over 100.
//! - Each room's first doc comment ends with what it uses (`//! Uses: …`), and that line names
//!   exactly the crate modules the room's code names.
//! - Every relative link in README.md and docs/*.md points at a file that exists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(root().join("src/internals.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .and_then(|r| r.strip_suffix(';'))
                .map(str::to_owned)
        })
        .collect()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_files(m: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = root().join(format!("src/{m}.rs"));
    if file.exists() {
        out.push(file);
    }
    let dir = root().join(format!("src/{m}"));
    if dir.is_dir() {
        rs_files(&dir, &mut out);
    }
    out
}

/// The code of a file without its `#[cfg(test)]` items (a `mod tests;` line, a `mod tests {…}`
/// block, a test-only function): each line kept or blanked, so line numbers stay true.
fn non_test(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        out.push(line);
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        // Skip the item the attribute applies to: up to its `;`, or until its braces close.
        let mut depth = 0i64;
        let mut opened = false;
        for item in lines.by_ref() {
            out.push("");
            let code = item.split("//").next().unwrap_or("");
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            opened |= code.contains('{');
            if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out
}

/// Whether `f` is a test module's file (`tests.rs`, declared `#[cfg(test)] mod tests;`).
fn is_test_module(f: &Path) -> bool {
    f.file_name().is_some_and(|n| n == "tests.rs")
}

/// The crate modules a file names through `crate::`: `crate::a::…`, `crate::a;` and every
/// first segment of a grouped `crate::{a, b::c, …}`.
fn crate_modules_named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
            out.push(first_segment(&item));
        } else {
            out.push(first_segment(part));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn grouped_imports_name_each_module() {
    let names =
        crate_modules_named("use crate::{db::Db, exec, query::{ast, parser}};\nlet x = crate::wal::list();");
    assert_eq!(names, ["db", "exec", "query", "wal"]);
}

#[test]
fn test_items_are_skipped_and_nothing_else() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nfn b() {\n    x.unwrap();\n}\nfn c() { y.unwrap() }\n";
    let kept = non_test(text);
    assert_eq!(kept.len(), text.lines().count());
    assert!(!kept[5].contains("unwrap"));
    assert!(kept[7].contains("unwrap"));
}

#[test]
fn modules_use_only_earlier_modules() {
    let mods = modules();
    assert!(mods.len() > 5, "could not read the module list: {mods:?}");
    let mut problems = Vec::new();
    for (i, m) in mods.iter().enumerate() {
        for f in module_files(m) {
            let text = std::fs::read_to_string(&f).unwrap();
            let named = crate_modules_named(&text);
            for (j, other) in mods.iter().enumerate() {
                let used = named.iter().any(|n| n == other);
                if used && j > i && m != "error" {
                    problems.push(format!("{} uses `{other}`, which comes after `{m}`", f.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn no_unwrap_or_expect_in_library_code() {
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    // The Python package's bindings are library code too.
    rs_files(&root().join("python/src"), &mut files);
    let mut problems = Vec::new();
    for f in files {
        if f.components().any(|c| c.as_os_str() == "bin") || is_test_module(&f) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in non_test(&text).into_iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(".unwrap()") || code.contains(".expect(") {
                problems.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn doc_links_point_at_files() {
    let mut docs = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut problems = Vec::new();
    for d in docs {
        let text = std::fs::read_to_string(&d).unwrap();
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("");
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let path = d.parent().unwrap().join(target);
            if !path.exists() {
                problems.push(format!("{} links to missing {target}", d.display()));
            }
        }
        // Paths written in backticks that look like repository files must exist too.
        for part in text.split('`').skip(1).step_by(2) {
            let looks_like_file = (part.starts_with("src/")
                || part.starts_with("tests/")
                || part.starts_with("benches/")
                || part.starts_with("docs/"))
                && !part.contains(' ')
                && !part.contains('<')
                && !part.contains('*');
            if looks_like_file {
                let p = part.split(':').next().unwrap_or(part).trim_end_matches(',');
                if !root().join(p).exists() {
                    problems.push(format!("{} names missing file `{p}`", d.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Test modules in their own files are compiled only for tests.
#[test]
fn test_module_files_are_declared_test_only() {
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    let mut problems = Vec::new();
    for f in files.iter().filter(|f| is_test_module(f)) {
        let dir = f.parent().unwrap();
        let parent = [dir.join("mod.rs"), dir.with_extension("rs"), dir.join("lib.rs")]
            .into_iter()
            .find(|p| p.exists());
        let declared = parent.is_some_and(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("#[cfg(test)]\nmod tests;")
        });
        if !declared {
            problems.push(format!(
                "{} is not declared `#[cfg(test)] mod tests;`",
                f.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The functions of a file as (name, first line, lines): from the `fn` line to the line that
/// closes it at the same indentation.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let code = line.trim_start();
        let code = [
            "pub ",
            "pub(crate) ",
            "pub(super) ",
            "const ",
            "async ",
            "unsafe ",
        ]
        .iter()
        .fold(code, |c, p| c.strip_prefix(p).unwrap_or(c));
        let code = match code.strip_prefix("pub(in ") {
            Some(rest) => rest.split_once(") ").map_or(rest, |(_, r)| r),
            None => code,
        };
        let Some(rest) = code.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') || line.trim_end().ends_with('}') {
            continue;
        }
        let name = first_segment(rest);
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            out.push((name, i + 1, end + 2));
        }
    }
    out
}

#[test]
fn rooms_and_functions_stay_small() {
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    // The Python package's bindings are library code too.
    rs_files(&root().join("python/src"), &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        if lines > 1_000 {
            problems.push(format!("{} has {lines} lines (at most 1,000)", f.display()));
        }
        for (name, line, len) in functions(&text) {
            if len > 100 {
                problems.push(format!(
                    "{}:{line}: fn {name} has {len} lines (at most 100)",
                    f.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The names of the simple parameters (`name: Type`, `mut name: Type`) of the function whose
/// `fn` is on line `line` (1-based) of `lines`.
fn parameter_names(lines: &[&str], line: usize) -> Vec<String> {
    let text = lines[line - 1..].join("\n");
    let Some(start) = text.find("fn ") else {
        return Vec::new();
    };
    // The parameter list: the first `(` outside the generics, to its matching `)`.
    let (mut depth, mut open, mut previous) = (0i32, None, ' ');
    let mut params = String::new();
    for ch in text[start..].chars() {
        match (ch, open) {
            ('<', None) => depth += 1,
            ('>', None) if previous != '-' => depth -= 1,
            ('(', None) if depth == 0 => {
                open = Some(0);
                previous = ch;
                continue;
            }
            ('(' | '[' | '{' | '<', Some(level)) => open = Some(level + 1),
            (')' | ']' | '}', Some(0)) => break,
            (')' | ']' | '}', Some(level)) => open = Some(level - 1),
            ('>', Some(level)) if previous != '-' => open = Some(level - 1),
            (',', Some(0)) => {
                params.push('\u{1}');
                previous = ch;
                continue;
            }
            _ => {}
        }
        if open.is_some() {
            params.push(ch);
        }
        previous = ch;
    }
    params
        .split('\u{1}')
        .filter_map(|param| {
            let param = param.trim();
            let param = param.strip_prefix("mut ").unwrap_or(param);
            let (name, _) = param.split_once(':')?;
            let name = name.trim();
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn parameters_have_names_that_say_what_they_hold() {
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    // The Python package's bindings are library code too.
    rs_files(&root().join("python/src"), &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (name, line, _) in functions(&text) {
            for param in parameter_names(&lines, line) {
                if param.len() == 1 && param != "_" {
                    problems.push(format!(
                        "{}:{line}: fn {name} has a parameter named `{param}`",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn parameter_names_are_read_across_lines_and_generics() {
    let text = "pub fn f<T: Fn(u8) -> u8, const N: usize>(\n    mut a: Vec<(u8, u8)>,\n    bb: impl Fn(u8, u8) -> T,\n    (c, d): (u8, u8),\n) -> u8 {\n}";
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(parameter_names(&lines, 1), ["a", "bb"]);
    assert_eq!(parameter_names(&["    fn g(&self, x: u8) {"], 1), ["x"]);
}

#[test]
fn function_lengths_count_from_fn_to_its_closing_brace() {
    let text = "fn a() {\n    1\n}\nimpl X {\n    pub(in crate::x) fn b(\n        y: u8,\n    ) {\n        2\n    }\n    fn c() {}\n}\n";
    assert_eq!(functions(text), [("a".to_owned(), 1, 3), ("b".to_owned(), 5, 5)]);
}

/// The crate modules a `//! Uses:` line lists (the backticked names before any `; rooms`).
fn listed_uses(text: &str) -> Option<Vec<String>> {
    let line = text
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .find(|l| l.starts_with("//! Uses:"))?;
    let crate_part = line.split("; rooms").next().unwrap_or("");
    let mut names: Vec<String> = crate_part
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    if line.contains("; rooms") || !line.contains("rooms ") {
        names.sort();
        return Some(names);
    }
    // "Uses: rooms `a`, `b`." lists no crate module.
    Some(Vec::new())
}

#[test]
fn each_room_says_what_it_uses() {
    let mods = modules();
    let mut files = Vec::new();
    rs_files(&root().join("src"), &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root().join("src")).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        if first == "bin"
            || is_test_module(f)
            || rel == Path::new("lib.rs")
            || rel == Path::new("internals.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let own = first.trim_end_matches(".rs").to_owned();
        let code: String = non_test(&text).join("\n");
        let mut used: Vec<String> = crate_modules_named(&code)
            .into_iter()
            .filter(|m| mods.contains(m) && *m != own)
            .collect();
        used.sort();
        used.dedup();
        match listed_uses(&text) {
            None => problems.push(format!(
                "{}: no `//! Uses:` line in its first doc comment",
                f.display()
            )),
            Some(listed) if listed != used => {
                problems.push(format!(
                    "{}: `Uses:` lists {listed:?}, the code names {used:?}",
                    f.display()
                ));
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

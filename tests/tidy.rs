//! Tidy: mechanical rules the compiler does not hold (TigerBeetle's `tidy.zig` idea).
//! - Data flows one way: a module may use only modules declared before it in `src/lib.rs`
//!   (`error` is the root and may name every layer).
//! - No `unwrap()` / `expect(` in library code outside `#[cfg(test)]`.
//! - Every relative link in README.md and docs/*.md points at a file that exists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
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

/// Code before the first `#[cfg(test)]`.
fn non_test(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or("")
}

#[test]
fn modules_use_only_earlier_modules() {
    let mods = modules();
    assert!(mods.len() > 5, "could not read the module list: {mods:?}");
    let mut problems = Vec::new();
    for (i, m) in mods.iter().enumerate() {
        for f in module_files(m) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (j, other) in mods.iter().enumerate() {
                let used = text.contains(&format!("crate::{other}::"))
                    || text.contains(&format!("crate::{other}}}"))
                    || text.contains(&format!("crate::{other};"))
                    || text.contains(&format!("crate::{other},"));
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
    let mut problems = Vec::new();
    for f in files {
        if f.components().any(|c| c.as_os_str() == "bin") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in non_test(&text).lines().enumerate() {
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

//! `.help` and `.help STATEMENT`: each statement's syntax, a one-line description and examples,
//! read from docs/QUERY.md (compiled into the binary), so that the shell's help and the
//! reference cannot drift: every statement's section there opens with its syntax and holds an
//! ```` ```examples ```` block (a `--` description line, then statements; the tests parse them).

use journeydb::query::parser::suggest;

const QUERY_MD: &str = include_str!("../../../docs/QUERY.md");

/// Each statement's first word, and the docs/QUERY.md section that defines it.
pub const SECTIONS: [(&str, &str); 26] = [
    ("FUNNEL", "FUNNEL"),
    ("RETENTION", "RETENTION"),
    ("TREND", "TREND"),
    ("TIMELINE", "TIMELINE"),
    ("LIFECYCLE", "LIFECYCLE"),
    ("STICKINESS", "STICKINESS"),
    ("STAGES", "STAGES"),
    ("TRANSITIONS", "TRANSITIONS"),
    ("CUSTOMERS", "CUSTOMERS"),
    ("TOP", "TOP CUSTOMERS"),
    ("PATHS", "PATHS"),
    ("HEATMAP", "HEATMAP"),
    ("ATTRIBUTION", "ATTRIBUTION"),
    ("CORRELATE", "CORRELATE"),
    ("CHANGES", "CHANGES"),
    ("RFM", "RFM"),
    ("FIT", "FIT and PREDICT"),
    ("PREDICT", "FIT and PREDICT"),
    ("CREATE", "Cohorts"),
    ("DROP", "Cohorts"),
    ("COHORTS", "Cohorts"),
    ("EXPLAIN", "EXPLAIN"),
    ("FORGET", "FORGET CUSTOMER"),
    ("LINK", "Identity links"),
    ("UNLINK", "Identity links"),
    ("LINKS", "Identity links"),
];

/// One statement's help, as docs/QUERY.md has it.
pub struct Section {
    /// The section's title.
    pub title: &'static str,
    /// The section's first paragraph: the syntax (and what the statement does).
    pub syntax: String,
    /// The examples block's `--` line.
    pub description: String,
    /// The examples block's statements.
    pub examples: Vec<String>,
}

/// The section titled `title`, if docs/QUERY.md has one.
pub fn section(title: &'static str) -> Option<Section> {
    let heading = format!("\n## {title}\n");
    let start = QUERY_MD.find(&heading)? + heading.len();
    let body = &QUERY_MD[start..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let syntax: Vec<&str> = body
        .lines()
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| !line.trim().is_empty())
        .collect();
    let block = body.split("```examples\n").nth(1)?;
    let block = &block[..block.find("```")?];
    let mut description = String::new();
    let mut examples = Vec::new();
    for line in block.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match line.strip_prefix("--") {
            Some(text) => description = text.trim().to_owned(),
            None => examples.push(line.to_owned()),
        }
    }
    Some(Section {
        title,
        syntax: syntax.join("\n"),
        description,
        examples,
    })
}

/// `.help`'s list: one line per statement.
pub fn overview() -> String {
    let mut out =
        String::from("Statements (end each with `;`; `.help NAME` shows its syntax and examples):\n");
    let mut seen: Vec<&str> = Vec::new();
    for (word, title) in SECTIONS {
        if seen.contains(&title) {
            continue;
        }
        seen.push(title);
        let name = match title {
            "Cohorts" => "CREATE COHORT",
            "FIT and PREDICT" => "FIT, PREDICT",
            "FORGET CUSTOMER" | "TOP CUSTOMERS" => title,
            _ => word,
        };
        let description = section(title).map(|s| s.description).unwrap_or_default();
        out += &format!("  {name:<15} {description}\n");
    }
    out
}

/// `.help NAME`: the statement's syntax, examples, and where docs/QUERY.md defines it.
pub fn statement(name: &str) -> Result<String, String> {
    let first = name.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    let Some(&(_, title)) = SECTIONS.iter().find(|(word, _)| *word == first) else {
        let words: Vec<&str> = SECTIONS.iter().map(|(word, _)| *word).collect();
        let hint = suggest(&first, &words).map_or(String::new(), |w| format!("; did you mean {w}?"));
        return Err(format!("no statement {name:?}{hint} (.help lists them)"));
    };
    let Some(found) = section(title) else {
        return Err(format!("docs/QUERY.md has no section \"{title}\""));
    };
    let mut out = format!(
        "{}\n\n{}\n\nExamples:\n",
        found.description,
        found.syntax.replace('`', "")
    );
    for example in &found.examples {
        out += &format!("  {example};\n");
    }
    out += &format!("\nEvery definition: docs/QUERY.md, \"{}\".\n", found.title);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement has its section, a description and at least two examples, and every
    /// example parses: the help cannot drift from the language.
    #[test]
    fn every_statement_has_examples_that_parse() {
        for word in journeydb::query::parser::STATEMENTS {
            let Some(&(_, title)) = SECTIONS.iter().find(|(w, _)| *w == word) else {
                panic!("no help section for {word}");
            };
            let found = section(title).unwrap_or_else(|| panic!("docs/QUERY.md lacks \"{title}\""));
            assert!(!found.description.is_empty(), "{title}: no description");
            assert!(found.examples.len() >= 2, "{title}: fewer than two examples");
            assert!(found.syntax.contains('`'), "{title}: no syntax paragraph");
            for example in &found.examples {
                if let Err(e) = journeydb::query::parse(example) {
                    panic!("{title}: {example}: {}", e.render(example));
                }
            }
        }
        assert!(statement("funnel").is_ok_and(|text| text.contains("FUNNEL visit -> add_to_cart")));
        assert!(statement("FUNEL").is_err_and(|e| e.contains("did you mean FUNNEL")));
        assert!(overview().contains("CHANGES"));
    }
}

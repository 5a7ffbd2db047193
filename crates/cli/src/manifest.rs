//! The export manifest: a CSV with a header naming a `file` column (a file id) and optionally a
//! `location` column, or one file id per line. Every line is checked before anything is sent.

use crate::Fail;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, PartialEq)]
pub struct Line {
    /// 1-based, as an editor shows it.
    pub number: usize,
    pub file: String,
    /// Overrides the location computed from the file's path in its project.
    pub location: Option<String>,
}

pub fn read(path: &Path) -> Result<Vec<Line>, Fail> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::Usage(format!("cannot read the manifest {}: {e}", path.display())))?;
    parse(&text).map_err(|e| Fail::Usage(format!("manifest {}: {e}", path.display())))
}

fn parse(text: &str) -> Result<Vec<Line>, String> {
    // Line by line (a manifest's fields hold no line breaks), so errors name the line an
    // editor shows, blank lines included.
    let mut records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            record(l)
                .map(|r| (i + 1, r))
                .map_err(|e| format!("line {}: {e}", i + 1))
        });
    let Some(first) = records.next() else {
        return Err("it is empty".into());
    };
    let (first_number, first) = first?;
    let column = |name: &str| first.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (file_col, location_col, mut lines) = match column("file") {
        Some(f) => (f, column("location"), Vec::new()),
        None if first.len() == 1 => (0, None, vec![line(first_number, &first, 0, None)?]),
        None => {
            return Err(format!("line {first_number}: give a header with a 'file' column (and, optionally, 'location'), or one file id per line"))
        }
    };
    for r in records {
        let (number, record) = r?;
        lines.push(line(number, &record, file_col, location_col)?);
    }
    let mut seen = HashMap::new();
    for l in &lines {
        if let Some(first) = seen.insert(l.file.as_str(), l.number) {
            return Err(format!(
                "line {}: file {} is listed twice (first on line {first})",
                l.number, l.file
            ));
        }
    }
    if lines.is_empty() {
        return Err("it lists no files".into());
    }
    Ok(lines)
}

fn record(text: &str) -> Result<csv::StringRecord, csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut r = csv::StringRecord::new();
    reader.read_record(&mut r)?;
    Ok(r)
}

fn line(
    number: usize,
    record: &csv::StringRecord,
    file_col: usize,
    location_col: Option<usize>,
) -> Result<Line, String> {
    let file = record.get(file_col).unwrap_or_default();
    if file.is_empty()
        || !file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("line {number}: '{file}' is not a file id"));
    }
    let location = location_col
        .and_then(|c| record.get(c))
        .filter(|l| !l.is_empty())
        .map(|l| check_location(number, l))
        .transpose()?;
    Ok(Line {
        number,
        file: file.to_string(),
        location,
    })
}

fn check_location(number: usize, location: &str) -> Result<String, String> {
    let bad = location.starts_with('/')
        || location.ends_with('/')
        || location
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || location.chars().any(char::is_control);
    if bad {
        return Err(format!(
            "line {number}: location '{location}' must be a relative key without empty, '.' or '..' segments"
        ));
    }
    Ok(location.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_with_file_and_location_or_one_id_per_line() {
        let with_header = parse("location,file\nout/a.txt, f1\n\n,f2\n").unwrap();
        assert_eq!(
            with_header,
            [
                Line {
                    number: 2,
                    file: "f1".into(),
                    location: Some("out/a.txt".into())
                },
                Line {
                    number: 4,
                    file: "f2".into(),
                    location: None
                },
            ]
        );
        let ids = parse("f1\nf2\n").unwrap();
        assert_eq!(
            ids.iter()
                .map(|l| (l.number, l.file.as_str()))
                .collect::<Vec<_>>(),
            [(1, "f1"), (2, "f2")]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(err(""), "it is empty");
        assert!(err("id,name\nf1,x\n").contains("'file' column"));
        assert_eq!(
            err("file\nf1\nf/../x\n"),
            "line 3: 'f/../x' is not a file id"
        );
        assert!(err("file,location\nf1,../etc\n").starts_with("line 2: location '../etc'"));
        assert!(err("file,location\nf1,/abs\n").starts_with("line 2:"));
        assert_eq!(
            err("file\nf1\nf2\nf1\n"),
            "line 4: file f1 is listed twice (first on line 2)"
        );
        assert_eq!(err("file\n"), "it lists no files");
    }
}

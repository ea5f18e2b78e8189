//! The text of a configuration file, and the problems found in it, each located as
//! `FILE:LINE:COLUMN` (the column in characters, as editors count them).

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

/// The text of a configuration file, with what it takes to say where a problem is.
pub struct Source {
    /// How the file is named in messages (the path as given).
    label: String,
    /// The folder relative `api_key_file` paths start from.
    pub(super) dir: PathBuf,
    pub(super) text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// `label` names the file in messages; `dir` is the folder relative paths start from.
    pub fn new(label: impl Into<String>, dir: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            label: label.into(),
            dir: dir.into(),
            text,
            line_starts,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Line and column (1-based; the column counts characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    /// A problem at `span` (or of the whole file).
    pub fn problem(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Problem {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        Problem {
            file: self.label.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Something wrong with the file, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COLUMN: message`, as compilers say it (editors jump there).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// In the order of the file, so that they read top to bottom; those of the whole file last.
pub(super) fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
}

#[cfg(test)]
mod tests {
    use crate::config_file::testkit::src;

    #[test]
    fn columns_count_characters() {
        let s = src("# Ștefan\nmerge = 1\n");
        assert_eq!(s.line_col(0), (1, 1));
        // "Ș" is two bytes: the "t" of "Ștefan" is byte 4, the 4th character.
        assert_eq!(s.line_col(4), (1, 4));
        assert_eq!(s.line_col(5), (1, 5));
        let off = "# Ștefan\n".len();
        assert_eq!(s.line_col(off + 8), (2, 9));
    }
}

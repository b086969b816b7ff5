//! Load diagnostics: every problem points at `file:line:column`, with a message and a hint.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

/// One policy source file held in memory, for spans and line/column numbers.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to the user.
    pub name: String,
    /// The file's text.
    pub text: Arc<str>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps a file's text.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> SourceFile {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|s| *s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }
}

/// One problem (error or warning) in a policy set.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// `file:line:column`, or just the file or directory when there is no position.
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    source: Option<(NamedSource<Arc<str>>, Range<usize>)>,
}

impl Problem {
    /// A problem at a span of a file.
    pub fn at(
        file: &SourceFile,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Problem {
        let (line, col) = file.line_col(span.start);
        Problem {
            severity: Severity::Error,
            location: format!("{}:{}:{}", file.name, line, col),
            message: message.into(),
            hint,
            source: Some((NamedSource::new(file.name.clone(), file.text.clone()), span)),
        }
    }

    /// A problem without a position (a missing file, an unreadable directory).
    pub fn general(location: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            location: location.into(),
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// The same problem as a warning.
    pub fn warning(mut self) -> Problem {
        self.severity = Severity::Warning;
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|(s, _)| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref().map(|(_, span)| {
            Box::new(std::iter::once(LabeledSpan::new_with_span(
                Some("here".to_owned()),
                span.clone(),
            ))) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

/// A policy set that did not load: every problem found, never a partial set.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the policy set in {dir} does not load: {} problem(s)", problems.len())]
pub struct LoadError {
    /// The directory that was loaded.
    pub dir: String,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

impl Diagnostic for LoadError {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let f = SourceFile::new("x.toml", "a = 1\nbé = 2\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        assert_eq!(f.line_col(9), (2, 3));
        let p = Problem::at(&f, 6..8, "bad", None);
        assert_eq!(p.to_string(), "x.toml:2:1: bad");
    }
}

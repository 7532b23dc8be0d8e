//! Conversion of Cedar diagnostics into messages with a line and a column.

use miette::Diagnostic;

use crate::error::SourceDiagnostic;

/// Converts one Cedar diagnostic into a message positioned in `text`.
///
/// Cedar reports positions as byte offsets into the text it parsed, through the diagnostic's first
/// labeled span. The help text, when present, is appended because it often names the fix.
pub(crate) fn source_diagnostic(text: &str, diagnostic: &dyn Diagnostic) -> SourceDiagnostic {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let (line, column) = match offset {
        Some(offset) => {
            let (line, column) = line_column(text, offset);
            (Some(line), Some(column))
        }
        None => (None, None),
    };

    let mut message = diagnostic.to_string();
    if let Some(help) = diagnostic.help() {
        message.push_str(" (help: ");
        message.push_str(&help.to_string());
        message.push(')');
    }

    SourceDiagnostic {
        line,
        column,
        message,
    }
}

/// Returns the 1-based line and the 1-based column in characters of a byte offset in `text`.
///
/// An offset past the end points after the last character; an offset inside a multi-byte
/// character counts as that character.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_column_counts_from_one() {
        let text = "ab\ncde\n\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 3));
        assert_eq!(line_column(text, 7), (3, 1));
        assert_eq!(line_column(text, 8), (4, 1));
        assert_eq!(line_column(text, 100), (4, 2));
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "é\néé x";
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 8), (2, 4));
        assert_eq!(line_column(text, 4), (2, 1));
    }
}

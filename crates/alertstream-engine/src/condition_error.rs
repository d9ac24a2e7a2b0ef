//! The one error of the condition language (lexer, parser, compiler and message templates): a message and the
//! byte range of the text it points at. Byte ranges become `file:line:col` only where a file is known.

use std::ops::Range;

/// A problem in a condition (or a message template), with the byte range of its text it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// The offending text, as a byte range of the condition.
    pub span: Range<usize>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

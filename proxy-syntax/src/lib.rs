//! The small languages inside the proxy DSL's string literals, parsed by one parser for
//! both the compiler (`proxy-macros`, which turns mistakes into compile errors pointing at
//! the character) and the runtime (configuration files, printing route tables).
//!
//! - [`pattern`]: route path patterns (`/users/{id}/files/{*path}`);
//! - [`duration`]: `"500ms"`, `"5s"`, `"1m30s"`;
//! - [`size`]: `"64KiB"`, `"10MB"`;
//! - [`address`]: upstream addresses (`ip:port`, `host:port`, `unix:/path`);
//! - [`suggest`]: "did you mean" for misspelled names.

#![forbid(unsafe_code)]

pub mod address;
pub mod duration;
pub mod pattern;
pub mod rate;
pub mod size;
pub mod suggest;

/// A mistake inside a string, located by byte offset so an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the offending part in the string.
    pub offset: usize,
    /// Its length in bytes (at least 1 for display).
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl SyntaxError {
    /// An error at `offset..offset+len`.
    pub fn new(offset: usize, len: usize, message: impl Into<String>) -> Self {
        SyntaxError {
            offset,
            len: len.max(1),
            message: message.into(),
            hint: None,
        }
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The input with a caret line under the offending part:
    ///
    /// ```text
    /// /users/{id
    ///        ^^^
    /// ```
    pub fn caret(&self, input: &str) -> String {
        let prefix: usize = input
            .get(..self.offset.min(input.len()))
            .map_or(self.offset, |p| p.chars().count());
        let width = input
            .get(self.offset.min(input.len())..(self.offset + self.len).min(input.len()))
            .map_or(1, |p| p.chars().count().max(1));
        format!("{input}\n{}{}", " ".repeat(prefix), "^".repeat(width))
    }
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SyntaxError {}

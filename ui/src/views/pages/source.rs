//! A DAG file's text on a page: shown there up to [`INLINE_MAX_BYTES`], else linked as plain
//! text. A 20,000-task file is 3.2 MB, and its lines as HTML were most of its DAG page.

use crate::views::format::{size_text, thousands};

/// The longest text a page shows inline.
pub const INLINE_MAX_BYTES: usize = 256 * 1024;

/// A DAG file's text for a page, and where all of it is served as plain text.
pub struct SourceText {
    pub text: String,
    pub href: String,
}

impl SourceText {
    pub fn is_inline(&self) -> bool {
        fits_inline(&self.text)
    }

    /// `60,006 lines, 3.2 MB`.
    pub fn size(&self) -> String {
        size_of(&self.text)
    }
}

/// Whether a page shows `text` inline.
pub fn fits_inline(text: &str) -> bool {
    text.len() <= INLINE_MAX_BYTES
}

/// How long `text` is, in lines and bytes: `60,006 lines, 3.2 MB`.
pub fn size_of(text: &str) -> String {
    format!(
        "{} lines, {}",
        thousands(text.lines().count()),
        size_text(text.len())
    )
}

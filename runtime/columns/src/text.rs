//! Reading text columns: the one decoder of `(data, ends)` pairs that the
//! host, the sandbox's checks and the SDK share.

use crate::TextColumn;

/// The text of entry `index` in `column`, if in range and on character boundaries.
pub fn text_at(column: &TextColumn, index: usize) -> Option<&str> {
    text_in(&column.data, &column.ends, index)
}

/// Every text of a column given as its parts, or `None` when an offset is
/// out of range or off a character boundary.
pub fn texts_in(data: &str, ends: &[u32]) -> Option<Vec<String>> {
    (0..ends.len()).map(|i| text_in(data, ends, i).map(str::to_string)).collect()
}

/// The text of entry `index` of a column given as its parts, for callers
/// whose column is a generated binding type with the same two fields.
pub fn text_in<'a>(data: &'a str, ends: &[u32], index: usize) -> Option<&'a str> {
    let end = *ends.get(index)? as usize;
    let start = if index == 0 { 0 } else { *ends.get(index - 1)? as usize };
    data.get(start..end)
}

/// Whether `c` is a bidirectional override or a zero-width character: in
/// text shown to a person they would let a log line or an agent reorder or
/// hide what is read.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

//! `Range: bytes=…` on downloads, so a client that lost a connection
//! resumes where it stopped. One range per request: a request for several
//! gets the whole file, which RFC 9110 allows and every resuming client
//! copes with.

/// What a download answers to a request's `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No range, one not understood, or several: the whole file (200).
    Whole,
    /// Bytes `start..=end` of the file (206).
    Part { start: u64, end: u64 },
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// The answer to `header` for a file of `length` bytes.
pub(crate) fn answer(header: Option<&str>, length: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeAnswer::Whole };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeAnswer::Whole };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
    };
    match (first.trim(), last.trim()) {
        // The last `n` bytes.
        ("", suffix) => match number(suffix) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if length == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part { start: length.saturating_sub(n), end: length - 1 },
            None => RangeAnswer::Whole,
        },
        (first, last) => {
            let Some(start) = number(first) else { return RangeAnswer::Whole };
            let end = match last {
                "" => None,
                // Digits past u64 name a position past any file: its end.
                text if text.len() > 19 && text.bytes().all(|b| b.is_ascii_digit()) => None,
                text => match number(text) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeAnswer::Whole,
                },
            };
            if start >= length {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Part { start, end: end.unwrap_or(u64::MAX).min(length - 1) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_hundred_bytes() {
        assert_eq!(answer(Some("bytes=10-99999999999999999999999"), 100), RangeAnswer::Part { start: 10, end: 99 });
        let of = |h: &str| answer(Some(h), 100);
        assert_eq!(answer(None, 100), RangeAnswer::Whole);
        assert_eq!(of("bytes=0-9"), RangeAnswer::Part { start: 0, end: 9 });
        assert_eq!(of("bytes=40-"), RangeAnswer::Part { start: 40, end: 99 });
        assert_eq!(of("bytes=90-500"), RangeAnswer::Part { start: 90, end: 99 });
        assert_eq!(of("bytes=-10"), RangeAnswer::Part { start: 90, end: 99 });
        assert_eq!(of("bytes=-500"), RangeAnswer::Part { start: 0, end: 99 });
        assert_eq!(of("bytes=100-"), RangeAnswer::Unsatisfiable);
        assert_eq!(of("bytes=-0"), RangeAnswer::Unsatisfiable);
        assert_eq!(of("bytes=0-1,5-6"), RangeAnswer::Whole);
        assert_eq!(of("bytes=9-3"), RangeAnswer::Whole);
        assert_eq!(of("items=0-1"), RangeAnswer::Whole);
        assert_eq!(of("bytes=a-b"), RangeAnswer::Whole);
        assert_eq!(of("bytes=+1-2"), RangeAnswer::Whole);
        assert_eq!(answer(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-5"), 0), RangeAnswer::Unsatisfiable);
    }
}

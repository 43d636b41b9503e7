//! Turning what a guest returns (columns of findings) into anomalies, after
//! checking every column. The columns exist so that what the host copies
//! out of a guest is bounded by the guest's memory; this module makes sure
//! what arrives is also well-formed and modest.

use mcp_columns::Anomaly;

use crate::bindings::v2::{Findings, TextColumn};

/// Longest label a finding may carry, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;
/// Longest reason a finding may carry, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

fn texts<'a>(column: &'a TextColumn, name: &str, count: usize) -> Result<Vec<&'a str>, String> {
    if column.ends.len() != count {
        return Err(format!("{} {name} for {count} findings", column.ends.len()));
    }
    let mut start = 0usize;
    column
        .ends
        .iter()
        .map(|&end| {
            let end = end as usize;
            let text = column
                .data
                .get(start..end)
                .filter(|_| end >= start)
                .ok_or_else(|| format!("{name}: bad offset {end}"))?;
            start = end;
            Ok(text)
        })
        .collect()
}

/// Checks `findings` and turns them into anomalies; at most `limit` of them.
/// The host fills in agent, times, log type and source afterwards.
pub fn unpack(findings: &Findings, limit: usize) -> Result<Vec<Anomaly>, UnpackError> {
    let count = findings.log_ids.len();
    if count > limit {
        return Err(UnpackError::TooMany { count });
    }
    let bad = UnpackError::Malformed;
    if findings.scores.len() != count || findings.severities.len() != count {
        return Err(bad(format!(
            "{count} log ids, {} scores and {} severities",
            findings.scores.len(),
            findings.severities.len()
        )));
    }
    let labels = texts(&findings.labels, "labels", count).map_err(bad)?;
    let reasons = texts(&findings.reasons, "reasons", count).map_err(bad)?;
    let mut anomalies = Vec::with_capacity(count);
    for i in 0..count {
        let (label, reason, score) = (labels[i], reasons[i], findings.scores[i]);
        if label.is_empty() || label.len() > MAX_LABEL_BYTES {
            return Err(bad(format!("label of {} bytes (1 to {MAX_LABEL_BYTES} allowed)", label.len())));
        }
        if reason.len() > MAX_REASON_BYTES {
            return Err(bad(format!("reason of {} bytes (at most {MAX_REASON_BYTES})", reason.len())));
        }
        if !(0.0..=1.0).contains(&score) {
            return Err(bad(format!("score {score} is not between 0 and 1")));
        }
        anomalies.push(Anomaly {
            agent: String::new(),
            log_id: findings.log_ids[i],
            log_type: String::new(),
            source: String::new(),
            log_timestamp_ms: 0,
            score,
            label: label.to_string(),
            severity: findings.severities[i].into(),
            reason: reason.to_string(),
            detected_at_ms: 0,
        });
    }
    Ok(anomalies)
}

/// What findings cost against the returned-bytes budget: their texts and
/// a fixed amount for the numbers.
pub fn bytes_of(anomalies: &[Anomaly]) -> u64 {
    anomalies.iter().map(|a| (a.label.len() + a.reason.len() + 24) as u64).sum()
}

/// Why findings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpackError {
    TooMany { count: usize },
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::v2::Severity;

    fn column(texts: &[&str]) -> TextColumn {
        let mut c = TextColumn { data: String::new(), ends: Vec::new() };
        for t in texts {
            c.data.push_str(t);
            c.ends.push(c.data.len() as u32);
        }
        c
    }

    fn two() -> Findings {
        Findings {
            log_ids: vec![7, 9],
            scores: vec![0.5, 1.0],
            severities: vec![Severity::Low, Severity::High],
            labels: column(&["scan", "flood"]),
            reasons: column(&["why one", "why two"]),
        }
    }

    #[test]
    fn well_formed_findings_become_anomalies() {
        let found = unpack(&two(), 10).unwrap_or_default();
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].log_id, found[1].label.as_str(), found[1].reason.as_str()), (9, "flood", "why two"));
    }

    #[test]
    fn malformed_findings_are_refused_with_the_reason() {
        let mut short = two();
        short.scores.pop();
        let mut offset = two();
        offset.reasons.ends[1] = 999;
        let mut backwards = two();
        backwards.labels.ends = vec![4, 2];
        let mut long = two();
        long.reasons = column(&["ok", &"r".repeat(MAX_REASON_BYTES + 1)]);
        let mut empty_label = two();
        empty_label.labels = column(&["", "flood"]);
        let mut score = two();
        score.scores[0] = f32::NAN;
        for (case, expected) in [
            (short, "1 scores"),
            (offset, "bad offset 999"),
            (backwards, "bad offset 2"),
            (long, "reason of 4097 bytes"),
            (empty_label, "label of 0 bytes"),
            (score, "score NaN"),
        ] {
            match unpack(&case, 10) {
                Err(UnpackError::Malformed(reason)) => {
                    assert!(reason.contains(expected), "{reason} lacks {expected}")
                }
                other => panic!("expected a refusal containing {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn more_than_the_limit_is_too_many() {
        assert_eq!(unpack(&two(), 1).err(), Some(UnpackError::TooMany { count: 2 }));
    }
}

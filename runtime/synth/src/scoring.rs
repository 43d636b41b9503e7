//! Detection quality against ground-truth labels: per entry, an entry is
//! positive when the generator labelled it as part of an attack.

use std::collections::{BTreeMap, HashSet};

/// Precision, recall and F1 of one agent on one labelled data set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detection {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    /// Per attack kind: (entries flagged, entries in the attack).
    pub per_kind: BTreeMap<String, (u64, u64)>,
    /// Entries of normal traffic, flagged or not.
    pub normal_entries: u64,
}

impl Detection {
    /// Scores the set of flagged log ids against `labels` (id, attack kind).
    pub fn score(labels: &[(u64, Option<String>)], flagged: &HashSet<u64>) -> Self {
        let mut d = Detection::default();
        for (id, label) in labels {
            let hit = flagged.contains(id);
            match label {
                Some(kind) => {
                    let slot = d.per_kind.entry(kind.clone()).or_default();
                    slot.1 += 1;
                    if hit {
                        slot.0 += 1;
                        d.true_positives += 1;
                    } else {
                        d.false_negatives += 1;
                    }
                }
                None => {
                    d.normal_entries += 1;
                    d.false_positives += u64::from(hit);
                }
            }
        }
        d
    }

    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
    }

    /// False positives per million entries of normal traffic: what an
    /// analyst at a site of millions of entries a day would wade through.
    pub fn false_positives_per_million(&self) -> f64 {
        ratio(self.false_positives, self.normal_entries) * 1e6
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_entries_against_labels() {
        let labels = vec![(1, None), (2, Some("scan".to_string())), (3, Some("scan".to_string())), (4, None)];
        let flagged: HashSet<u64> = [2, 4].into_iter().collect();
        let d = Detection::score(&labels, &flagged);
        assert_eq!((d.true_positives, d.false_positives, d.false_negatives), (1, 1, 1));
        assert!((d.precision() - 0.5).abs() < 1e-9 && (d.recall() - 0.5).abs() < 1e-9 && (d.f1() - 0.5).abs() < 1e-9);
        assert_eq!(d.per_kind.get("scan"), Some(&(1, 2)));
        assert_eq!(d.normal_entries, 2);
        assert!((d.false_positives_per_million() - 500_000.0).abs() < 1e-6);
    }

    #[test]
    fn nothing_flagged_scores_zero() {
        let d = Detection::score(&[(1, Some("x".into()))], &HashSet::new());
        assert_eq!(d.f1(), 0.0);
    }
}

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
                None if hit => d.false_positives += 1,
                None => {}
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

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

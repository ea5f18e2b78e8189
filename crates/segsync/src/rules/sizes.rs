//! Sizes that are true: the distinct Mailchimp members a set of predicates gives, counted as
//! the engine counts them (addresses checked and lower-cased, profiles that share an address
//! merged into one member carrying the union of their segments), with the overlap of each
//! pair, and how many members a changed predicate would give or take a tag from.
//!
//! Fed one profile at a time (its address and whether each predicate holds); keeps 16 bytes
//! and a bit set per member.

use std::collections::HashMap;

use segsync_core::model::MemberKey;
use segsync_core::normalize::check_email;
use serde_json::Value;

/// The most predicates counted together (one bit each).
pub const MAX_PREDICATES: usize = 64;

/// Members being counted.
#[derive(Default)]
pub struct Counter {
    n: usize,
    members: HashMap<MemberKey, u64>,
    /// Profiles in at least one predicate.
    profiles: u64,
    /// Profiles per predicate.
    per_predicate: Vec<u64>,
    /// Profiles in a predicate whose address is missing or not sendable.
    refused: u64,
}

/// What [`Counter::finish`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Distinct members (addresses) in at least one predicate.
    pub members: u64,
    /// Profiles in at least one predicate (before addresses are merged).
    pub profiles: u64,
    /// Profiles whose address is missing or invalid (not sent).
    pub refused: u64,
    /// Per predicate: its profiles and its distinct members.
    pub per_predicate: Vec<(u64, u64)>,
    /// `overlap[i][j]`: members in both predicate i and predicate j.
    pub overlap: Vec<Vec<u64>>,
    masks: Vec<u64>,
}

impl Counter {
    /// A counter of `n` predicates (at most [`MAX_PREDICATES`]).
    pub fn new(n: usize) -> Result<Counter, String> {
        if n > MAX_PREDICATES {
            return Err(format!(
                "at most {MAX_PREDICATES} segments can be counted together (got {n})"
            ));
        }
        Ok(Counter {
            n,
            per_predicate: vec![0; n],
            ..Counter::default()
        })
    }

    /// One profile: its address (as read) and whether each predicate holds for it.
    pub fn add(&mut self, email: &Value, in_predicate: &[bool]) {
        let mut mask = 0u64;
        for (i, inside) in in_predicate.iter().take(self.n).enumerate() {
            if *inside {
                mask |= 1 << i;
                self.per_predicate[i] += 1;
            }
        }
        if mask == 0 {
            return;
        }
        self.profiles += 1;
        let address = match email {
            Value::String(s) => check_email(s),
            Value::Null => Err(String::new()),
            other => check_email(&other.to_string()),
        };
        match address {
            Ok(a) => *self.members.entry(MemberKey::of(&a)).or_default() |= mask,
            Err(_) => self.refused += 1,
        }
    }

    pub fn finish(self) -> Counted {
        let masks: Vec<u64> = self.members.into_values().collect();
        let n = self.n;
        let mut overlap = vec![vec![0u64; n]; n];
        for m in &masks {
            for (i, row) in overlap.iter_mut().enumerate() {
                if m & (1 << i) == 0 {
                    continue;
                }
                for (j, cell) in row.iter_mut().enumerate() {
                    if m & (1 << j) != 0 {
                        *cell += 1;
                    }
                }
            }
        }
        let per_predicate = (0..n)
            .map(|i| (self.per_predicate[i], overlap[i][i]))
            .collect();
        Counted {
            members: masks.len() as u64,
            profiles: self.profiles,
            refused: self.refused,
            per_predicate,
            overlap,
            masks,
        }
    }
}

impl Counted {
    /// Members among those in any of `of` (predicate indexes) for which predicate `from`
    /// does not hold and predicate `to` does: `(gain, lose)` as `to` replaces `from`.
    pub fn moved(&self, of: &[usize], from: usize, to: usize) -> (u64, u64) {
        let any: u64 = of.iter().fold(0, |m, i| m | (1 << i));
        let (mut gain, mut lose) = (0, 0);
        for m in self.masks.iter().filter(|m| *m & any != 0) {
            match (m & (1 << from) != 0, m & (1 << to) != 0) {
                (false, true) => gain += 1,
                (true, false) => lose += 1,
                _ => {}
            }
        }
        (gain, lose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_addresses_are_one_member_with_the_union_of_segments() {
        let mut c = Counter::new(2).unwrap();
        c.add(&json!("Ana@Example.com"), &[true, false]);
        c.add(&json!(" ana@example.com "), &[false, true]);
        c.add(&json!("bob@example.com"), &[true, true]);
        c.add(&json!("cy@example.com"), &[false, true]);
        c.add(&json!("not an address"), &[true, false]);
        c.add(&json!(null), &[false, true]);
        c.add(&json!("dan@example.com"), &[false, false]);
        let r = c.finish();
        assert_eq!(r.members, 3);
        assert_eq!(r.profiles, 6);
        assert_eq!(r.refused, 2);
        assert_eq!(r.per_predicate, vec![(3, 2), (4, 3)]);
        assert_eq!(r.overlap, vec![vec![2, 2], vec![2, 3]]);
    }

    #[test]
    fn moved_counts_members_that_gain_or_lose_a_tag() {
        // Predicates: 0 = the other segment, 1 = the segment now, 2 = the segment changed.
        let mut c = Counter::new(3).unwrap();
        c.add(&json!("a@example.com"), &[true, true, false]); // loses
        c.add(&json!("b@example.com"), &[false, false, true]); // gains (joins the audience)
        c.add(&json!("c@example.com"), &[false, true, true]); // keeps
        c.add(&json!("d@example.com"), &[true, false, false]); // never had it
        c.add(&json!("e@example.com"), &[false, true, false]); // loses (leaves)
        c.add(&json!("E@example.com"), &[false, false, true]); // ...but a twin gains it: keeps
        let r = c.finish();
        assert_eq!(r.moved(&[0, 1, 2], 1, 2), (1, 1));
    }

    #[test]
    fn too_many_predicates_are_refused() {
        assert!(Counter::new(65).is_err());
    }
}

//! Members a run holds back: suppressed ones (an address or a profile key on the export's or
//! the installation's suppression list: never sent) and remembered refusals (an address
//! Mailchimp refused for good, not sent again until its content changes).
//!
//! A held member is left exactly as it is in Mailchimp: not created, not updated, not
//! tagged, not untagged, not removed. The diff never sees it.

use std::collections::{HashMap, HashSet};

use crate::model::{profile_keys, MemberKey};
use crate::normalize::check_email;

/// Why a member is held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// On a suppression list (its address, or the key of one of its profiles).
    Suppressed,
    /// Mailchimp refused this address for good with this very content.
    Remembered,
}

/// What a run holds back, built from the suppression lists and the remembered refusals.
#[derive(Clone, Debug, Default)]
pub struct Holds {
    addresses: HashSet<MemberKey>,
    profile_keys: HashSet<String>,
    /// Refused addresses, with the fingerprint of the content they were refused with.
    refused: HashMap<MemberKey, u64>,
}

/// A member as the diff meets it: what the profiles want (its content's fingerprint and its
/// profiles' keys), and the profiles behind it when the export last delivered it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidate<'a> {
    pub wanted: Option<(u64, &'a str)>,
    pub delivered_profiles: Option<&'a str>,
}

impl Holds {
    /// Suppresses an address (normalised as member addresses are); an address that is not
    /// one is refused with the reason.
    pub fn suppress_address(&mut self, raw: &str) -> Result<(), String> {
        let email = check_email(raw)?;
        self.addresses.insert(MemberKey::of(&email));
        Ok(())
    }

    /// Suppresses a profile key: the member its profile makes is never sent.
    pub fn suppress_profile(&mut self, key: &str) {
        self.profile_keys.insert(key.to_string());
    }

    /// Remembers that Mailchimp refused `email` for good when sent with content
    /// `fingerprint`.
    pub fn remember_refusal(&mut self, email: &str, fingerprint: u64) {
        self.refused
            .insert(MemberKey::of(&email.trim().to_lowercase()), fingerprint);
    }

    /// Whether member `key` is held back, and why. A suppression wins over a refusal; a
    /// refusal holds only while the content wanted is the content refused.
    pub fn judge(&self, key: MemberKey, c: Candidate<'_>) -> Option<Held> {
        if self.addresses.contains(&key) || self.has_suppressed_profile(c) {
            return Some(Held::Suppressed);
        }
        match (c.wanted, self.refused.get(&key)) {
            (Some((fp, _)), Some(refused)) if fp == *refused => Some(Held::Remembered),
            _ => None,
        }
    }

    /// Whether member `key` was refused with other content than `fingerprint`: it is sent
    /// again, once.
    pub fn retries(&self, key: MemberKey, fingerprint: u64) -> bool {
        self.refused.get(&key).is_some_and(|fp| *fp != fingerprint)
    }

    fn has_suppressed_profile(&self, c: Candidate<'_>) -> bool {
        if self.profile_keys.is_empty() {
            return false;
        }
        let wanted = c.wanted.map(|(_, p)| p);
        [wanted, c.delivered_profiles]
            .into_iter()
            .flatten()
            .any(|p| profile_keys(p).any(|k| self.profile_keys.contains(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PROFILE_SEP;

    fn key(email: &str) -> MemberKey {
        MemberKey::of(email)
    }

    fn wanted(fp: u64, profiles: &str) -> Candidate<'_> {
        Candidate {
            wanted: Some((fp, profiles)),
            delivered_profiles: None,
        }
    }

    #[test]
    fn addresses_are_normalised_like_members() {
        let mut h = Holds::default();
        h.suppress_address("  Ann@Example.COM ").unwrap();
        assert_eq!(
            h.judge(key("ann@example.com"), wanted(1, "c1")),
            Some(Held::Suppressed)
        );
        assert_eq!(h.judge(key("bob@example.com"), wanted(1, "c2")), None);
        assert!(h.suppress_address("not an address").is_err());
    }

    #[test]
    fn a_profile_key_suppresses_its_member_wanted_or_delivered() {
        let mut h = Holds::default();
        h.suppress_profile("c2");
        let merged = format!("c1{PROFILE_SEP}c2");
        assert_eq!(
            h.judge(key("a@x.io"), wanted(1, &merged)),
            Some(Held::Suppressed)
        );
        let delivered = Candidate {
            wanted: None,
            delivered_profiles: Some("c2"),
        };
        assert_eq!(h.judge(key("a@x.io"), delivered), Some(Held::Suppressed));
        assert_eq!(h.judge(key("a@x.io"), wanted(1, "c1")), None);
    }

    #[test]
    fn a_refusal_holds_until_the_content_changes() {
        let mut h = Holds::default();
        h.remember_refusal("Bad@X.io", 7);
        assert_eq!(
            h.judge(key("bad@x.io"), wanted(7, "c1")),
            Some(Held::Remembered)
        );
        assert_eq!(h.judge(key("bad@x.io"), wanted(8, "c1")), None);
        assert!(h.retries(key("bad@x.io"), 8));
        assert!(!h.retries(key("bad@x.io"), 7));
        // Not wanted any more: nothing to hold (the removal policy applies as usual).
        assert_eq!(h.judge(key("bad@x.io"), Candidate::default()), None);
    }

    #[test]
    fn a_suppression_wins_over_a_refusal() {
        let mut h = Holds::default();
        h.remember_refusal("bad@x.io", 7);
        h.suppress_address("bad@x.io").unwrap();
        assert_eq!(
            h.judge(key("bad@x.io"), wanted(7, "c1")),
            Some(Held::Suppressed)
        );
    }
}

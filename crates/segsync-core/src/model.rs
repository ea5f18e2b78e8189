//! The words of the domain: member keys, statuses, tag sets, what an export wants Mailchimp
//! to hold, and what its snapshot says was delivered.

use std::collections::BTreeMap;
use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A member's identity in an audience: the MD5 of the lower-cased address (Mailchimp's
/// subscriber hash), kept as its 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey(pub [u8; 16]);

impl MemberKey {
    /// The key of an address (normalised or not: it is lower-cased here). An address that
    /// is already trimmed lower-case ASCII, as every normalised one nearly always is, is
    /// hashed as it is, without a lower-cased copy.
    pub fn of(email: &str) -> MemberKey {
        let b = email.as_bytes();
        let plain = b.iter().all(|c| c.is_ascii() && !c.is_ascii_uppercase())
            && !b.first().is_some_and(u8::is_ascii_whitespace)
            && !b.last().is_some_and(u8::is_ascii_whitespace);
        if plain {
            return MemberKey(Md5::digest(b).into());
        }
        MemberKey(Md5::digest(email.trim().to_lowercase().as_bytes()).into())
    }

    pub fn from_hex(s: &str) -> Option<MemberKey> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(MemberKey(b))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

impl fmt::Display for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

/// A member's status in Mailchimp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "subscribed" => Status::Subscribed,
            "unsubscribed" => Status::Unsubscribed,
            "cleaned" => Status::Cleaned,
            "pending" => Status::Pending,
            "transactional" => Status::Transactional,
            "archived" => Status::Archived,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status a new member gets (`--status-if-new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NewStatus {
    #[default]
    Subscribed,
    Pending,
    Transactional,
}

impl NewStatus {
    pub fn status(self) -> Status {
        match self {
            NewStatus::Subscribed => Status::Subscribed,
            NewStatus::Pending => Status::Pending,
            NewStatus::Transactional => Status::Transactional,
        }
    }
}

/// What happens to a member once it leaves every chosen segment. Whatever the policy, only a
/// member this export added is archived or unsubscribed; one it only tagged is untagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RemovalPolicy {
    /// Remove the export's tags; the member stays in the audience.
    #[default]
    Untag,
    /// Remove the tags and archive the member.
    Archive,
    /// Remove the tags and unsubscribe the member.
    Unsubscribe,
}

/// The export's tags a member carries, as bits over the export's tag list (at most 64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TagSet(pub u64);

impl TagSet {
    pub const MAX: usize = 64;

    pub fn with(self, i: usize) -> TagSet {
        TagSet(self.0 | (1 << i))
    }
    pub fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, o: TagSet) -> TagSet {
        TagSet(self.0 | o.0)
    }
    pub fn minus(self, o: TagSet) -> TagSet {
        TagSet(self.0 & !o.0)
    }
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..Self::MAX).filter(move |i| self.contains(*i))
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
}

/// Merge-field values by tag (FNAME, LNAME, ...), already formatted for Mailchimp.
pub type MergeValues = BTreeMap<String, Value>;

/// A stable fingerprint of what is sent for a member's content, so an unchanged member costs
/// nothing on the next run.
pub fn fingerprint(merge: &MergeValues) -> u64 {
    let mut h = HashWriter(Md5::new());
    for (k, v) in merge {
        h.0.update(k.as_bytes());
        h.0.update([0]);
        // The value's compact JSON (as `Display` writes it), streamed into the hash.
        serde_json::to_writer(&mut h, v).expect("hashing cannot fail");
        h.0.update([0]);
    }
    let d = h.0.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Feeds written bytes to a hash.
struct HashWriter(Md5);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the export wants Mailchimp to hold for one address, after normalisation and the
/// merging of duplicate profiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The address as it will be sent: trimmed and lower-cased.
    pub email: String,
    pub merge: MergeValues,
    pub tags: TagSet,
}

/// What the export knows of one member: what it last delivered and the status Mailchimp
/// last told it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub email: String,
    /// Fingerprint of the merge values this export last delivered; `None` if it never sent
    /// this member's content.
    pub fingerprint: Option<u64>,
    /// The export's tags this export put on the member.
    pub tags: TagSet,
    /// The status Mailchimp last reported (or that this export's own writes produced).
    pub status: Status,
    /// The export created this member: only such members are ever archived or unsubscribed
    /// by it (a member it only tagged loses its tags when it leaves every segment, nothing
    /// more).
    pub owned: bool,
    /// The keys of the profiles behind this member when the export last saw it (see
    /// [`profile_keys`]); `None` when not known yet. A member follows its profiles: when
    /// their address changes, the member is moved to the new address (see
    /// [`moves`](crate::moves)).
    pub profiles: Option<String>,
}

/// Separates the profile keys of one member in [`SnapshotEntry::profiles`] (the ASCII unit
/// separator: no profile key a source yields contains it in practice, and one that did would
/// only make a move go unnoticed).
pub const PROFILE_SEP: char = '\u{1f}';

/// The profile keys of a [`SnapshotEntry::profiles`] value.
pub fn profile_keys(profiles: &str) -> impl Iterator<Item = &str> {
    profiles.split(PROFILE_SEP).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The fingerprint as first defined (each value's JSON text allocated): snapshots keep
    /// fingerprints across versions, so the streamed one must give the same numbers.
    fn fingerprint_by_strings(merge: &MergeValues) -> u64 {
        let mut h = Md5::new();
        for (k, v) in merge {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.to_string().as_bytes());
            h.update([0]);
        }
        u64::from_le_bytes(h.finalize()[..8].try_into().unwrap())
    }

    #[test]
    fn fingerprints_are_those_of_the_values_json_text() {
        let mut m = MergeValues::new();
        assert_eq!(fingerprint(&m), fingerprint_by_strings(&m));
        m.insert("FNAME".into(), json!("Ană \"quoted\" \u{1b}"));
        m.insert("LTV".into(), json!(1234.5));
        m.insert("ORDERS".into(), json!(7));
        m.insert("ADDR".into(), json!({"addr1": "x", "zip": "1"}));
        assert_eq!(fingerprint(&m), fingerprint_by_strings(&m));
    }

    #[test]
    fn keys_are_those_of_the_lower_cased_trimmed_address() {
        for e in [
            "ana@posta.ro",
            " Ana@Posta.RO ",
            "ANA@POSTA.RO",
            "jorg@straße.de",
            "İ@x.ro",
            "",
        ] {
            let want = MemberKey(Md5::digest(e.trim().to_lowercase().as_bytes()).into());
            assert_eq!(MemberKey::of(e), want, "{e:?}");
        }
    }
}

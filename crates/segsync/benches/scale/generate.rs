//! The generated profiles: each a pure function of its index and of how many times it
//! changed, written as the CSV that `profiles import` and PostgreSQL's COPY read, with what a
//! correct export of them must give ([`Expect`]) counted on the way.

use std::io::Write;
use std::path::Path;

/// The export's segments: (name, predicate). They overlap; their union is about 90% of the
/// profiles.
pub const SEGMENTS: [(&str, &str); 4] = [
    ("newsletter", "accepts_marketing = 1"),
    ("high-value", "lifetime_value >= 2000"),
    ("recent-buyers", "last_order_at >= '2026-06-01'"),
    ("romania", "country = 'RO'"),
];

pub const FIRST: [&str; 16] = [
    "Ana", "Ion", "Maria", "Andrei", "Élise", "Jürgen", "Zoë", "Luca", "Sofía", "Mihai", "Ioana",
    "Pierre", "Giulia", "Lukas", "Carmen", "Radu",
];
const FIRST_ASCII: [&str; 16] = [
    "ana", "ion", "maria", "andrei", "elise", "juergen", "zoe", "luca", "sofia", "mihai", "ioana",
    "pierre", "giulia", "lukas", "carmen", "radu",
];
pub const LAST: [&str; 12] = [
    "Popescu", "Ionescu", "Dumitru", "Müller", "Martin", "Rossi", "García", "Dubois", "Schmidt",
    "Stan", "Bianchi", "López",
];
const LAST_ASCII: [&str; 12] = [
    "popescu", "ionescu", "dumitru", "mueller", "martin", "rossi", "garcia", "dubois", "schmidt",
    "stan", "bianchi", "lopez",
];
pub const COUNTRIES: [(&str, &[&str]); 5] = [
    ("RO", &["București", "Cluj-Napoca", "Iași", "Timișoara"]),
    ("FR", &["Paris", "Lyon", "Marseille"]),
    ("DE", &["Berlin", "München", "Hamburg"]),
    ("IT", &["Milano", "Roma", "Torino"]),
    ("ES", &["Madrid", "Barcelona", "Sevilla"]),
];
const DOMAINS: [&str; 10] = [
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "posta.ro",
    "orange.fr",
    "web.de",
    "libero.it",
    "hotmail.es",
    "icloud.com",
    "gmx.de",
];
/// Days of `last_order_at` counted from 2024-01-01; 2026-06-01 is day 882.
const ORDER_DAYS: u64 = 1050;
const RECENT_FROM_DAY: u16 = 882;

pub fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Email {
    Valid,
    /// The address of an earlier profile, written differently (case, spaces).
    Duplicate {
        of: usize,
        variant: u8,
    },
    /// An address segsync must refuse (no TLD, no @, misplaced dot, empty, spaces).
    Invalid(u8),
}

/// 0.5% invalid, 1% duplicates of an earlier valid profile, the rest valid and distinct.
fn base_kind(i: usize) -> (u64, u64) {
    let h = mix(i as u64 ^ 0x5e65_7e3c);
    (h % 1000, h)
}

fn email_kind(i: usize) -> Email {
    let (r, h) = base_kind(i);
    if r < 5 {
        return Email::Invalid(((h >> 10) % 5) as u8);
    }
    if r < 15 && i > 0 {
        let mut of = i - 1 - ((h >> 20) as usize % i.min(1000));
        loop {
            let (r, _) = base_kind(of);
            if r >= 15 || (of == 0 && r >= 5) {
                return Email::Duplicate {
                    of,
                    variant: ((h >> 40) % 3) as u8,
                };
            }
            if of == 0 {
                return Email::Valid;
            }
            of -= 1;
        }
    }
    Email::Valid
}

/// One profile, as a pure function of its index and how many times it changed.
pub struct Profile {
    i: usize,
    email: Email,
    pub first: usize,
    pub last: usize,
    pub country: usize,
    pub city: usize,
    pub ltv_cents: u64,
    orders: u64,
    day: u16,
    accepts: bool,
    rev: u8,
    updated: (u8, u8, u8, u8, u8),
}

fn names(i: usize) -> (usize, usize, usize) {
    let h = mix(i as u64 ^ 0x0a11_ce00);
    (
        (h % 16) as usize,
        ((h >> 4) % 12) as usize,
        ((h >> 20) % 10) as usize,
    )
}

pub fn profile(i: usize, rev: u8) -> Profile {
    let h = mix(i as u64 ^ 0x0a11_ce00);
    let h2 = mix(h);
    let (first, last, _) = names(i);
    let country = match (h >> 8) % 100 {
        0..30 => 0,
        30..50 => 1,
        50..70 => 2,
        70..85 => 3,
        _ => 4,
    };
    let city = ((h >> 16) % COUNTRIES[country].1.len() as u64) as usize;
    let u = (h2 % 10_000) as f64 / 10_000.0;
    let mut ltv_cents = (500_000.0 * u * u * u) as u64;
    let mut orders = 1 + ltv_cents / 10_000 + (h2 >> 16) % 5;
    let mut day = ((h2 >> 24) % ORDER_DAYS) as u16;
    let accepts = (h2 >> 40) % 100 < 85;
    let mut updated = (
        1 + ((h2 >> 48) % 10) as u8,
        1 + ((h2 >> 52) % 28) as u8,
        ((h >> 32) % 24) as u8,
        ((h >> 40) % 60) as u8,
        ((h >> 48) % 60) as u8,
    );
    if rev > 0 {
        // A new order for every change: the value grows, the last order is recent.
        ltv_cents += 5_000 * rev as u64;
        orders += rev as u64;
        day = ORDER_DAYS as u16 + 5 + rev as u16;
        updated = (11, 21, rev.min(23), updated.3, updated.4);
    }
    Profile {
        i,
        email: email_kind(i),
        first,
        last,
        country,
        city,
        ltv_cents,
        orders,
        day,
        accepts,
        rev,
        updated,
    }
}

impl Profile {
    /// The segments the profile is in, as bits in the order of [`SEGMENTS`].
    pub fn mask(&self) -> u8 {
        (self.accepts as u8)
            | (((self.ltv_cents >= 200_000) as u8) << 1)
            | (((self.day >= RECENT_FROM_DAY) as u8) << 2)
            | (((self.country == 0) as u8) << 3)
    }

    /// The index of the profile whose address this one has, None for an invalid address.
    pub fn email_id(&self) -> Option<usize> {
        match self.email {
            Email::Valid => Some(self.i),
            Email::Duplicate { of, .. } => Some(of),
            Email::Invalid(_) => None,
        }
    }
}

/// The canonical (lower-case) address of profile `i`.
pub fn canonical_email(i: usize) -> String {
    let (f, l, d) = names(i);
    format!("{}.{}{i}@{}", FIRST_ASCII[f], LAST_ASCII[l], DOMAINS[d])
}

fn written_email(p: &Profile) -> String {
    let (f, l, d) = names(p.i);
    let (fa, la, dom) = (FIRST_ASCII[f], LAST_ASCII[l], DOMAINS[d]);
    let i = p.i;
    match p.email {
        Email::Valid => canonical_email(i),
        Email::Duplicate { of, variant } => {
            let e = canonical_email(of);
            match variant {
                0 => e.to_uppercase(),
                1 => format!("  {e} "),
                _ => {
                    // Capitalised: "Ana.popescu12@Gmail.com".
                    let (local, domain) = e.split_once('@').unwrap();
                    format!(
                        "{}{}@{}{}",
                        local[..1].to_ascii_uppercase(),
                        &local[1..],
                        domain[..1].to_ascii_uppercase(),
                        &domain[1..]
                    )
                }
            }
        }
        Email::Invalid(0) => format!("{fa}.{la}{i}@{}", dom.split('.').next().unwrap()),
        Email::Invalid(1) => format!("{fa}.{la}{i}{dom}"),
        Email::Invalid(2) => format!("{fa}..{la}{i}@{dom}"),
        Email::Invalid(3) => String::new(),
        Email::Invalid(_) => format!("{fa} {la}{i}@{dom}"),
    }
}

/// What the profiles written should give, computed while writing them.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub profiles: u64,
    pub invalid: u64,
    pub duplicate_profiles: u64,
    /// Profiles in each segment (what `segments add` counts).
    pub segment_profiles: [u64; 4],
    /// Profiles in at least one segment.
    pub selected: u64,
    /// Distinct valid addresses among the selected profiles: the audience's members.
    pub members: u64,
    /// Members carrying each segment's tag.
    pub tag_members: [u64; 4],
    /// Selected profiles with an invalid address.
    pub refused: u64,
    /// Selected profiles merged into another's member.
    pub duplicates: u64,
    /// Profiles changed at least once.
    pub changed: u64,
}

pub const HEADER: &str = "customer_id,email,first_name,last_name,city,country,lifetime_value,orders,last_order_at,accepts_marketing,updated_at";

/// Writes `n` profiles (changed `revs[i]` times) as CSV, or only counts them with `path` None.
pub fn write_profiles(path: Option<&Path>, n: usize, revs: &[u8], dates: &[String]) -> Expect {
    let mut out: Box<dyn Write> = match path {
        Some(p) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).expect("profiles file"),
        )),
        None => Box::new(std::io::sink()),
    };
    writeln!(out, "{HEADER}").unwrap();
    let mut e = Expect {
        profiles: n as u64,
        ..Default::default()
    };
    let mut member_mask = vec![0u8; n];
    for i in 0..n {
        let p = profile(i, revs.get(i).copied().unwrap_or(0));
        let mask = p.mask();
        for (s, count) in e.segment_profiles.iter_mut().enumerate() {
            *count += ((mask >> s) & 1) as u64;
        }
        e.changed += (p.rev > 0) as u64;
        match p.email {
            Email::Invalid(_) => e.invalid += 1,
            Email::Duplicate { .. } => e.duplicate_profiles += 1,
            Email::Valid => {}
        }
        if mask != 0 {
            e.selected += 1;
            match p.email_id() {
                Some(id) => member_mask[id] |= mask,
                None => e.refused += 1,
            }
        }
        if path.is_some() {
            let (country, cities) = COUNTRIES[p.country];
            let u = p.updated;
            writeln!(
                out,
                "C{i:08},{},{},{},{},{country},{}.{:02},{},{},{},2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                written_email(&p),
                FIRST[p.first],
                LAST[p.last],
                cities[p.city],
                p.ltv_cents / 100,
                p.ltv_cents % 100,
                p.orders,
                dates[p.day as usize],
                p.accepts,
                u.0,
                u.1,
                u.2,
                u.3,
                u.4
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
    for m in member_mask.iter().filter(|m| **m != 0) {
        e.members += 1;
        for (s, count) in e.tag_members.iter_mut().enumerate() {
            *count += ((m >> s) & 1) as u64;
        }
    }
    e.duplicates = e.selected - e.refused - e.members;
    e
}

pub fn order_dates() -> Vec<String> {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    (0..ORDER_DAYS as i64 + 300)
        .map(|d| (start + chrono::Duration::days(d)).to_string())
        .collect()
}

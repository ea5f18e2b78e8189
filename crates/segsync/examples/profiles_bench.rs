//! Measures the profile store by hand: generates N profiles of 10 columns as CSV, NDJSON and
//! Parquet, imports each, then runs a 3-predicate select over them.
//!
//! ```text
//! cargo run --release -p segsync --example profiles_bench -- [ROWS] [--random-keys] [--formats csv,ndjson,parquet]
//! ```
//! Prints times, rates and the process's peak resident memory (Linux).

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use segsync::profiles::{Format, ProfileStore};
use std::convert::Infallible;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const FIRST: [&str; 8] = [
    "Ana", "Ion", "Zoë", "Mihai", "Ioana", "Radu", "Élise", "Max",
];
const LAST: [&str; 6] = ["Popescu", "Ionescu", "Dumitru", "Müller", "Martin", "Stan"];
const COUNTRIES: [&str; 5] = ["RO", "FR", "DE", "IT", "ES"];
const CITIES: [&str; 5] = ["Cluj-Napoca", "Paris", "Berlin", "Milano", "Madrid"];

struct Profile {
    id: String,
    email: String,
    first: &'static str,
    last: &'static str,
    country: &'static str,
    city: &'static str,
    ltv: f64,
    orders: i64,
    vip: bool,
    signup_days: i32,
}

fn profile(i: u64, random_keys: bool) -> Profile {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    Profile {
        id: if random_keys {
            format!("{h:016x}")
        } else {
            format!("C{i:08}")
        },
        email: format!("user{i}@example.com"),
        first: FIRST[(h % 8) as usize],
        last: LAST[(h % 6) as usize],
        country: COUNTRIES[(h % 5) as usize],
        city: CITIES[(h % 5) as usize],
        ltv: (h % 200_000) as f64 / 100.0,
        orders: (h % 50) as i64,
        vip: h.is_multiple_of(7),
        signup_days: 17_000 + (h % 2_500) as i32,
    }
}

fn date(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days.into()))
        .format("%Y-%m-%d")
        .to_string()
}

fn write_csv(path: &Path, rows: u64, random_keys: bool) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        w,
        "customer_id,email,first_name,last_name,country,city,lifetime_value,orders,vip,signup_date"
    )
    .unwrap();
    for i in 0..rows {
        let p = profile(i, random_keys);
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            p.id,
            p.email,
            p.first,
            p.last,
            p.country,
            p.city,
            p.ltv,
            p.orders,
            p.vip,
            date(p.signup_days)
        )
        .unwrap();
    }
    w.flush().unwrap();
}

fn write_ndjson(path: &Path, rows: u64, random_keys: bool) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..rows {
        let p = profile(i, random_keys);
        let line = serde_json::json!({
            "customer_id": p.id, "email": p.email, "first_name": p.first, "last_name": p.last,
            "country": p.country, "city": p.city, "lifetime_value": p.ltv, "orders": p.orders,
            "vip": p.vip, "signup_date": date(p.signup_days),
        });
        writeln!(w, "{line}").unwrap();
    }
    w.flush().unwrap();
}

fn write_parquet(path: &Path, rows: u64, random_keys: bool) {
    let schema = Arc::new(
        parse_message_type(
            "message profile {
                REQUIRED BYTE_ARRAY customer_id (UTF8); REQUIRED BYTE_ARRAY email (UTF8);
                REQUIRED BYTE_ARRAY first_name (UTF8); REQUIRED BYTE_ARRAY last_name (UTF8);
                REQUIRED BYTE_ARRAY country (UTF8); REQUIRED BYTE_ARRAY city (UTF8);
                REQUIRED DOUBLE lifetime_value; REQUIRED INT64 orders; REQUIRED BOOLEAN vip;
                REQUIRED INT32 signup_date (DATE);
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let mut writer =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let chunk = 100_000;
    let mut start = 0;
    while start < rows {
        let batch: Vec<Profile> = (start..(start + chunk).min(rows))
            .map(|i| profile(i, random_keys))
            .collect();
        let mut group = writer.next_row_group().unwrap();
        let mut index = 0;
        while let Some(mut col) = group.next_column().unwrap() {
            let text = |f: &dyn Fn(&Profile) -> &str| -> Vec<ByteArray> {
                batch.iter().map(|p| ByteArray::from(f(p))).collect()
            };
            match index {
                0 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| &p.id), None, None),
                1 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| &p.email), None, None),
                2 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| p.first), None, None),
                3 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| p.last), None, None),
                4 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| p.country), None, None),
                5 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&text(&|p| p.city), None, None),
                6 => col.typed::<DoubleType>().write_batch(
                    &batch.iter().map(|p| p.ltv).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                7 => col.typed::<Int64Type>().write_batch(
                    &batch.iter().map(|p| p.orders).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                8 => col.typed::<BoolType>().write_batch(
                    &batch.iter().map(|p| p.vip).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                _ => col.typed::<Int32Type>().write_batch(
                    &batch.iter().map(|p| p.signup_days).collect::<Vec<_>>(),
                    None,
                    None,
                ),
            }
            .unwrap();
            col.close().unwrap();
            index += 1;
        }
        group.close().unwrap();
        start += chunk;
    }
    writer.close().unwrap();
}

/// Peak resident set size of this process, in MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: u64 = args
        .iter()
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let random_keys = args.iter().any(|a| a == "--random-keys");
    let formats: Vec<Format> = args
        .iter()
        .position(|a| a == "--formats")
        .and_then(|i| args.get(i + 1))
        .map_or("csv,ndjson,parquet", String::as_str)
        .split(',')
        .map(|f| f.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite")).unwrap();
    println!(
        "{rows} profiles, 10 columns, {} keys",
        if random_keys { "random" } else { "sequential" }
    );
    for format in formats {
        let path = dir.path().join(format!("profiles.{format}"));
        let t = Instant::now();
        match format {
            Format::Csv => write_csv(&path, rows, random_keys),
            Format::Ndjson => write_ndjson(&path, rows, random_keys),
            Format::Parquet => write_parquet(&path, rows, random_keys),
        }
        let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        println!(
            "{format}: generated {size:.0} MB in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let rss_before = peak_rss_mib();
        let report = store.import(&path, None, "customer_id").unwrap();
        let secs = report.duration.as_secs_f64();
        println!(
            "{format}: imported {} rows in {secs:.2} s ({:.0} rows/s); peak RSS {rss_before:.0} -> {:.0} MiB",
            report.rows,
            report.rows as f64 / secs,
            peak_rss_mib()
        );
        std::fs::remove_file(&path).unwrap();
    }
    let columns = [
        "email",
        "first_name",
        "last_name",
        "country",
        "lifetime_value",
    ]
    .map(String::from);
    let predicates = [
        "lifetime_value > 500 AND country = 'RO'",
        "vip",
        "orders >= 10 AND signup_date >= '2020-01-01'",
    ]
    .map(String::from);
    let mut bytes = 0usize;
    for _ in 0..2 {
        let stats = store
            .select(&columns, &predicates, |row| -> Result<(), Infallible> {
                bytes += row.key.len() + row.values.len();
                Ok(())
            })
            .unwrap();
        let secs = stats.duration.as_secs_f64();
        println!(
            "select: {} of {rows} rows matched {:?} in {secs:.2} s ({:.0} rows scanned/s, {:.0} rows delivered/s)",
            stats.rows,
            stats.per_predicate,
            rows as f64 / secs,
            stats.rows as f64 / secs
        );
    }
    let t = Instant::now();
    let preview = store.preview(&predicates[0], 10).unwrap();
    println!(
        "preview: {} members, {} sampled in {:.2} s",
        preview.count,
        preview.sample.len(),
        t.elapsed().as_secs_f64()
    );
    let db = std::fs::metadata(store.path()).unwrap().len() as f64 / 1e6;
    println!(
        "store file: {db:.0} MB; peak RSS {:.0} MiB; ({bytes} bytes seen)",
        peak_rss_mib()
    );
}

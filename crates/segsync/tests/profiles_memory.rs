//! A 1,000,000-row CSV imports with flat memory: the import streams the file (twice) and keeps
//! only bounded SQLite page caches, so the process's peak memory grows by far less than the
//! file's size. Alone in its own test binary so that no other test disturbs the measurement.

use segsync::profiles::ProfileStore;
use std::convert::Infallible;
use std::io::{BufWriter, Write};

/// Peak resident set size of this process in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[test]
fn million_row_csv_imports_with_flat_memory() {
    const ROWS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("customers.csv");
    {
        let mut w = BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "customer_id,email,first_name,last_name,country,city,lifetime_value,orders,vip,signup_date").unwrap();
        for i in 0..ROWS {
            writeln!(
                w,
                "C{i:08},user{i}@example.com,Ana,Popescu,{},Cluj-Napoca,{}.{:02},{},{},2024-0{}-1{}",
                ["RO", "FR", "DE"][(i % 3) as usize],
                i % 5000,
                i % 100,
                i % 50,
                i % 7 == 0,
                1 + i % 9,
                i % 10
            )
            .unwrap();
        }
        w.flush().unwrap();
    }
    let file_mib = std::fs::metadata(&file).unwrap().len() as f64 / (1024.0 * 1024.0);
    let store = ProfileStore::open(&dir.path().join("profiles.sqlite")).unwrap();
    let Some(before) = peak_rss_mib() else {
        eprintln!("no /proc/self/status here: memory not measured");
        return;
    };
    let report = store.import(&file, None, "customer_id").unwrap();
    let after = peak_rss_mib().unwrap();
    assert_eq!(report.rows, ROWS);
    assert_eq!(store.row_count().unwrap(), ROWS);
    let growth = after - before;
    eprintln!(
        "file {file_mib:.0} MiB, peak RSS {before:.0} -> {after:.0} MiB (+{growth:.0}), {:.1} s",
        report.duration.as_secs_f64()
    );
    // Holding the file (let alone its parsed rows) would take more than the file's size.
    assert!(file_mib > 75.0, "{file_mib}");
    assert!(
        growth < 64.0,
        "memory grew by {growth:.0} MiB while importing a {file_mib:.0} MiB file"
    );

    // Selecting every row streams too.
    let before = peak_rss_mib().unwrap();
    let mut n = 0u64;
    store
        .select(
            &["email".to_string(), "lifetime_value".to_string()],
            &["1".to_string()],
            |_| -> Result<(), Infallible> {
                n += 1;
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(n, ROWS);
    let growth = peak_rss_mib().unwrap() - before;
    assert!(
        growth < 32.0,
        "memory grew by {growth:.0} MiB while selecting"
    );
}

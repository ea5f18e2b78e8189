//! `segsync segments ...`: segments (SQL predicates over the profiles) and their previews.

use clap::Subcommand;

use super::{op_failure, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::ops::{self, Actor};

#[derive(Subcommand, Debug)]
pub enum SegmentsCmd {
    /// Add a segment; the predicate is checked against the profiles.
    Add {
        name: String,
        /// A SQL boolean expression over the profile columns, e.g. "lifetime_value > 500 AND country = 'RO'".
        #[arg(long = "where")]
        predicate: String,
        /// A PostgreSQL profile source (`profiles source add`) instead of the imported
        /// profiles: the predicate is then PostgreSQL SQL, checked by PostgreSQL.
        #[arg(long)]
        source: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    /// How many profiles a segment holds, and a few of them.
    Preview {
        name: String,
        #[arg(long, default_value_t = 5)]
        sample: usize,
    },
    Remove {
        name: String,
    },
}

pub(super) fn segments(app: &App, cmd: SegmentsCmd) -> Result<i32, Failure> {
    let state = app.state()?;
    match cmd {
        SegmentsCmd::Add {
            name,
            predicate,
            source,
        } => {
            let counted =
                ops::add_segment(app, &Actor::cli(), &name, &predicate, source.as_deref())
                    .map_err(op_failure)?;
            println!("segment \"{name}\" added: {} profiles match", counted.count);
            super::print_warnings(&counted.warnings);
        }
        SegmentsCmd::List => {
            for s in state.segments()? {
                match &s.source {
                    Some(src) => println!("{:<24} {} (source {src})", s.name, s.predicate),
                    None => println!("{:<24} {}", s.name, s.predicate),
                }
            }
        }
        SegmentsCmd::Show { name } => {
            let s = state.segment(&name).map_err(usage)?;
            println!(
                "name:      {}\npredicate: {}\nsource:    {}\ncreated:   {}",
                s.name,
                s.predicate,
                s.source.as_deref().unwrap_or("imported profiles"),
                s.created_at
            );
        }
        SegmentsCmd::Preview { name, sample } => {
            let s = state.segment(&name).map_err(usage)?;
            let p = app
                .profiles_of(s.source.as_deref())?
                .preview(&s.predicate, sample)
                .map_err(usage)?;
            println!("segment \"{name}\": {} profiles", p.count);
            for row in &p.sample {
                println!("  {}", serde_json::to_string(row).unwrap_or_default());
            }
        }
        SegmentsCmd::Remove { name } => {
            ops::remove_segment(app, &Actor::cli(), &name).map_err(op_failure)?;
            println!("segment \"{name}\" removed");
        }
    }
    Ok(EXIT_OK)
}

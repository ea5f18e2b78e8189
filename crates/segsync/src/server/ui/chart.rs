//! The chart of an export's page: records sent per run (created, updated and removed:
//! archived or unsubscribed by the removal policy, stacked), for
//! the last runs, as inline SVG (no script, no external file).

use maud::{html, Markup};

use super::num;
use crate::state::RunRecord;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

const CREATED: &str = "#2563eb";
const UPDATED: &str = "#7dd3fc";
const REMOVED: &str = "#f59e0b";

/// The top of the scale: four equal steps, each a "round" number (1, 2, 2.5 or 5 times a
/// power of ten, and whole), together at or above `max`.
fn scale_top(max: u64) -> u64 {
    let need = max.div_ceil(4).max(1);
    let mut p = 1u64;
    loop {
        let mut steps = vec![p, p.saturating_mul(2)];
        if p >= 10 {
            steps.push(p / 2 * 5);
        }
        steps.push(p.saturating_mul(5));
        if let Some(step) = steps.into_iter().find(|s| *s >= need) {
            return step.saturating_mul(4);
        }
        if p > u64::MAX / 10 {
            return u64::MAX;
        }
        p *= 10;
    }
}

/// Members a run took out of the audience by the export's removal policy.
pub fn removed(r: &RunRecord) -> u64 {
    r.counts.archived + r.counts.unsubscribed
}

/// `runs` oldest first.
pub fn records_per_run(runs: &[&RunRecord]) -> Markup {
    if runs.is_empty() {
        return html! { p class="muted" id="chart-empty" { "No runs yet: the chart shows the records each run sends." } };
    }
    let max = runs
        .iter()
        .map(|r| r.counts.created + r.counts.updated + removed(r))
        .max()
        .unwrap_or(0);
    let top = scale_top(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / (runs.len().max(12) as f64);
    let bar = (slot * 0.62).max(2.0);
    let y = |v: u64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let label_every = if slot < 20.0 { 2 } else { 1 };
    let label = format!(
        "Records sent per run, last {} runs: created, updated and removed",
        runs.len()
    );
    html! {
        div class="chart" {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) id="records-chart" {
                @for i in 0..=4u64 {
                    @let v = top * i / 4;
                    @let gy = y(v);
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(gy) y2=(gy) stroke=(if i == 0 { "#cbd2d9" } else { "#eef1f5" }) stroke-width="1" {}
                    text x=(LEFT - 8.0) y=(gy + 4.0) text-anchor="end" font-size="11" fill="#5f6b7a" { (num(v)) }
                }
                @for (i, r) in runs.iter().enumerate() {
                    @let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
                    @let c = r.counts.created;
                    @let u = r.counts.updated;
                    @let d = removed(r);
                    g class="bar" data-run=(r.id) {
                        title { "Run " (r.number) ": " (num(c)) " created, " (num(u)) " updated, " (num(d)) " removed (" (r.outcome.label()) ")" }
                        rect x=(x) y=(y(c)) width=(bar) height=(y(0) - y(c)) fill=(CREATED) {}
                        rect x=(x) y=(y(c + u)) width=(bar) height=(y(c) - y(c + u)) fill=(UPDATED) {}
                        rect x=(x) y=(y(c + u + d)) width=(bar) height=(y(c + u) - y(c + u + d)) fill=(REMOVED) {}
                        @if c + u + d == 0 {
                            rect x=(x) y=(y(0) - 1.5) width=(bar) height="1.5" fill="#cbd2d9" {}
                        }
                        @if i % label_every == 0 || i + 1 == runs.len() {
                            text x=(x + bar / 2.0) y=(HEIGHT - BOTTOM + 16.0) text-anchor="middle" font-size="10" fill="#5f6b7a" { (r.number) }
                        }
                    }
                }
                text x=(LEFT) y=(HEIGHT - 2.0) font-size="10" fill="#8a94a3" { "run" }
            }
            div class="legend" {
                span { span class="swatch sw-created" {} "created" }
                span { span class="swatch sw-updated" {} "updated" }
                span { span class="swatch sw-removed" {} "removed (archived or unsubscribed)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_has_four_round_steps() {
        assert_eq!(scale_top(0), 4);
        assert_eq!(scale_top(4), 4);
        assert_eq!(scale_top(5), 8);
        assert_eq!(scale_top(7), 8);
        assert_eq!(scale_top(9), 20);
        assert_eq!(scale_top(84), 100);
        assert_eq!(scale_top(120), 200);
        assert_eq!(scale_top(480), 800);
        assert_eq!(scale_top(1_000_000), 1_000_000);
        assert_eq!(scale_top(1_000_001), 2_000_000);
        for max in [1, 3, 17, 99, 101, 999, 12_345, 987_654] {
            let top = scale_top(max);
            assert!(top >= max && top.is_multiple_of(4), "{max} -> {top}");
        }
    }
}

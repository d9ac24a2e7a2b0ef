//! The Numenta Anomaly Benchmark in the project: its scorer ([`score`], written from NAB's published description),
//! its data read from a NAB directory ([`corpus`]; never committed here), and the runs through the product
//! ([`run`]): a rules file's FIRING alerts as detections, through replay and through a live server, and detectors'
//! continuous scores thresholded per row as NAB scores its own. [`report`] prints the tables docs/DETECTION.md
//! shows.

pub mod corpus;
pub mod run;
pub mod score;

use std::{fmt::Write as _, path::Path, time::Instant};

use corpus::Nab;
use score::{PROFILES, Tally};

use crate::BoxError;

/// What to run: the rules file whose FIRING alerts count, whether to stream it live too, and the expressions to
/// score per row.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The NAB directory (`corpus/`, `labels/`).
    pub data: &'a Path,
    /// The rules file; every rule counts.
    pub rules: &'a Path,
    /// Also stream every series through a live server (the `alertstream` binary beside this one).
    pub live: bool,
    /// Expressions scored per row at their best threshold for each profile.
    pub scores: &'a [String],
}

/// Runs `plan` and returns the report, in Markdown.
///
/// # Errors
/// The data or the rules cannot be read, the server cannot start, or a stream fails.
pub async fn report(plan: &Plan<'_>) -> Result<String, BoxError> {
    let nab = Nab::load(plan.data)?;
    let rows: usize = nab.series.iter().map(|s| s.times.len()).sum();
    let mut out = format!(
        "NAB: {} series, {rows} readings, {} windows. Rules: {}.\n\n\
         | detections | standard | reward low FP | reward low FN | TP / FP / FN (standard) | mean TP reward | time |\n\
         |---|---|---|---|---|---|---|\n",
        nab.series.len(),
        nab.corpus.windows(),
        plan.rules.display()
    );
    let started = Instant::now();
    let replayed = run::replay(&nab, plan.rules)?;
    let took = started.elapsed();
    row(&mut out, &nab, "FIRING alerts, replay", &replayed, took);
    if plan.live {
        let started = Instant::now();
        let streamed = run::live(&nab, plan.rules).await?;
        let took = started.elapsed();
        row(&mut out, &nab, "FIRING alerts, live gRPC", &streamed, took);
        if streamed != replayed {
            out.push_str("\nThe live server's detections differ from replay's.\n");
        }
    }
    if !plan.scores.is_empty() {
        out.push_str(
            "\nEach expression's value on every row, thresholded at its best threshold for each profile (every score \
             tried: at least as good as NAB's own optimiser):\n\n| score | standard | reward low FP | reward low FN | thresholds | time |\n\
             |---|---|---|---|---|---|\n",
        );
        for expression in plan.scores {
            let started = Instant::now();
            let scores = run::scores(&nab, expression)?;
            let took = started.elapsed();
            let best: Vec<(f64, f64)> = PROFILES.iter().map(|p| nab.corpus.best_threshold(p, &scores)).collect();
            let _ = writeln!(
                out,
                "| `{expression}` | {:.1} | {:.1} | {:.1} | {:.3} / {:.3} / {:.3} | {:.2} s |",
                best[0].1,
                best[1].1,
                best[2].1,
                best[0].0,
                best[1].0,
                best[2].0,
                took.as_secs_f64()
            );
        }
    }
    out.push_str("\nBy category (the rules file, replay, standard profile):\n\n");
    out.push_str("| category | windows | detected | counted false positives |\n|---|---|---|---|\n");
    let mut categories: Vec<(&str, Tally)> = Vec::new();
    for ((series, file), detected) in nab.series.iter().zip(&nab.corpus.files).zip(&replayed) {
        let category = series.name.split('/').next().unwrap_or_default();
        let tally = file.score(&PROFILES[0], detected);
        match categories.iter_mut().find(|(c, _)| *c == category) {
            Some((_, total)) => *total += tally,
            None => categories.push((category, tally)),
        }
    }
    for (category, tally) in categories {
        let windows = tally.true_positives + tally.false_negatives;
        let _ = writeln!(out, "| {category} | {windows} | {} | {} |", tally.true_positives, tally.false_positives);
    }
    Ok(out)
}

fn row(out: &mut String, nab: &Nab, what: &str, detected: &run::Detections, took: std::time::Duration) {
    let scored: Vec<(f64, Tally)> = PROFILES.iter().map(|p| nab.corpus.score(p, detected)).collect();
    let standard = scored[0].1;
    let _ = writeln!(
        out,
        "| {what} | {:.1} | {:.1} | {:.1} | {} / {} / {} | {:.2} | {:.2} s |",
        scored[0].0,
        scored[1].0,
        scored[2].0,
        standard.true_positives,
        standard.false_positives,
        standard.false_negatives,
        standard.rewards / standard.true_positives.max(1) as f64,
        took.as_secs_f64()
    );
}

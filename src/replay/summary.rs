//! What a replay tells per rule: how often it fired, how long it stayed firing (summed over sensors; an alert still
//! firing at the end counts up to the last reading's time), and how often it fired again after resolving.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use alertstream_engine::{Alert, AlertState, RuleSet};

use crate::clock::Stopwatch;

/// One rule's figures.
#[derive(Debug, Default, Clone)]
struct RuleFigures {
    fired: u64,
    firing: Duration,
    refired: u64,
}

/// A replay's figures, rule by rule, in rule order; events are counted apart.
#[derive(Debug)]
pub struct Summary {
    rules: Vec<Arc<str>>,
    figures: HashMap<Arc<str>, RuleFigures>,
    /// When each sensor's rule began firing; and which sensor-rule pairs have resolved at least once.
    since: HashMap<(String, Arc<str>), SystemTime>,
    resolved: HashSet<(String, Arc<str>)>,
    events: u64,
    readings: u64,
    last: Option<SystemTime>,
    took: Stopwatch,
}

impl Summary {
    pub(super) fn new(rules: &RuleSet) -> Self {
        let names: Vec<Arc<str>> = rules.rules().iter().map(|r| Arc::from(r.name())).collect();
        Self {
            figures: names.iter().map(|n| (Arc::clone(n), RuleFigures::default())).collect(),
            rules: names,
            since: HashMap::new(),
            resolved: HashSet::new(),
            events: 0,
            readings: 0,
            last: None,
            took: Stopwatch::start(),
        }
    }

    pub(super) fn reading(&mut self, time: SystemTime) {
        self.readings += 1;
        self.last = Some(self.last.map_or(time, |last| last.max(time)));
    }

    pub(super) fn alert(&mut self, alert: &Alert) {
        let Some(figures) = self.figures.get_mut(&alert.rule) else {
            self.events += 1;
            return;
        };
        let key = (alert.sensor_id.to_string(), Arc::clone(&alert.rule));
        match alert.state {
            AlertState::Firing => {
                figures.fired += 1;
                if self.resolved.contains(&key) {
                    figures.refired += 1;
                }
                self.since.entry(key).or_insert(alert.time);
            }
            AlertState::Resolved => {
                if let Some(since) = self.since.remove(&key) {
                    figures.firing += alert.time.duration_since(since).unwrap_or_default();
                }
                self.resolved.insert(key);
            }
        }
    }

    /// Readings replayed per second of wall time.
    fn readings_per_second(&self) -> f64 {
        self.readings as f64 / self.took.seconds().max(1e-9)
    }
}

/// A table on stderr: `rule  fired  firing for  fired again`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut firing_now: HashMap<&str, Duration> = HashMap::new();
        if let Some(last) = self.last {
            for ((_, rule), since) in &self.since {
                *firing_now.entry(rule).or_default() += last.duration_since(*since).unwrap_or_default();
            }
        }
        let width = self.rules.iter().map(|r| r.len()).max().unwrap_or(4).max(4);
        writeln!(f, "{:width$}  {:>8}  {:>16}  {:>11}", "rule", "fired", "firing for", "fired again")?;
        for rule in &self.rules {
            let figures = &self.figures[rule];
            let firing = figures.firing + firing_now.get(&**rule).copied().unwrap_or_default();
            let shown = alertstream_engine::format_duration(firing);
            writeln!(f, "{rule:width$}  {:>8}  {shown:>16}  {:>11}", figures.fired, figures.refired)?;
        }
        write!(
            f,
            "{} readings, {} events, in {:.2}s ({:.0} readings/s)",
            self.readings,
            self.events,
            self.took.seconds(),
            self.readings_per_second()
        )
    }
}

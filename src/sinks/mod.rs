//! Sinks: where a stream's alerts go besides the stream itself (a webhook, JSON-lines files, …), configured by the
//! rules file's `[[sink]]` tables and reloaded with it.
//!
//! A stream hands each alert to the live [`SinkSet`] ([`SinkSet::offer`]): per sink, one `try_send` into that sink's
//! bounded queue, never a wait. A full queue drops the alert for that sink, counted in
//! `alertstream_sink_dropped_total{sink, reason="queue_full"}` and logged. Each sink runs on a task of its own
//! ([`runner`]) that takes batches from its queue and delivers them, retrying with backoff and jitter while its
//! counterpart is away. [`Sinks`] owns the tasks: it starts them, swaps them on reload (an unchanged sink keeps its
//! task and queue) and, at shutdown, after the streams have ended, gives them a flush deadline.

mod alertmanager;
mod http;
mod jsonl;
mod nats;
mod runner;
mod stale;
mod webhook;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alertstream_engine::{Alert, AlertState, RESERVED_NAMES, RuleSet};
use alertstream_rules::{SinkKind, SinkSpec};
use metrics::Counter;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::{Clock, timer_deadline},
    state_store::SensorStates,
    telemetry::{Telemetry, label},
};
use stale::StaleTracker;

/// How long the sinks may take to deliver what they hold once the streams have ended, unless
/// `--sink-flush-timeout` says otherwise.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an alert whose stream ended while it fired stays firing at the sinks, unless `--stale-after` says
/// otherwise.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);

/// How the sinks behave, beyond each one's table.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// How long the sinks may take at shutdown, once the streams have ended, to deliver what they hold.
    pub flush_timeout: Duration,
    /// How long an alert whose stream ended while it fired stays firing before it is resolved as stale.
    pub stale_after: Duration,
    /// The server's clock, which `stale_after` is counted on.
    pub clock: Clock,
    /// The sensor-state store: with a shared one, an alert whose sensor another replica has taken over is that
    /// replica's, and not resolved as stale here.
    pub states: SensorStates,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            stale_after: DEFAULT_STALE_AFTER,
            clock: Clock::System,
            states: SensorStates::default(),
        }
    }
}

/// An alert on its way to the sinks, with what its rule adds for them; one copy shared by every sink.
#[derive(Debug)]
pub struct SinkAlert {
    /// The alert, as its stream sent it.
    pub alert: Alert,
    /// Its rule's labels (none for an event).
    pub labels: Arc<BTreeMap<String, String>>,
    /// A RESOLVED that no reading caused: the alert's stream ended while it fired, and no stream fired it again
    /// within `--stale-after`.
    pub stale: bool,
    /// For an alert whose reading has no seq: a number this process gave it, unique and fixed (0 otherwise), so
    /// that a sink can tell it from another alert of the same sensor, rule and time, and a retry keeps it.
    pub serial: u64,
}

/// The next [`SinkAlert::serial`].
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Why a sink gave up on alerts; the `reason` label of `alertstream_sink_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its queue was full: the counterpart was away or slow for longer than the queue holds.
    QueueFull,
    /// The counterpart refused them for good (an HTTP 4xx other than 408 and 429).
    Rejected,
    /// They were still queued or unsent at the flush deadline (shutdown, or the sink removed by a reload).
    FlushDeadline,
}

impl DropReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Rejected => "rejected",
            DropReason::FlushDeadline => "flush_deadline",
        }
    }
}

/// A sink's counts, shared by its queue's senders and its task.
#[derive(Debug)]
struct SinkCounts {
    name: Arc<str>,
    sent: Counter,
    queue_full: Counter,
    rejected: Counter,
    flush_deadline: Counter,
    /// Alerts dropped for a full queue so far: the log says so at 1, 2, 4, 8, … of them, not once per alert.
    queue_full_so_far: AtomicU64,
}

impl SinkCounts {
    fn new(name: &str, telemetry: &Telemetry) -> Self {
        let dropped = |reason: DropReason| {
            telemetry.counter(
                "alertstream_sink_dropped_total",
                vec![label("sink", name.to_owned()), label("reason", reason.as_str())],
            )
        };
        Self {
            name: Arc::from(name),
            sent: telemetry.counter("alertstream_sink_sent_total", vec![label("sink", name.to_owned())]),
            queue_full: dropped(DropReason::QueueFull),
            rejected: dropped(DropReason::Rejected),
            flush_deadline: dropped(DropReason::FlushDeadline),
            queue_full_so_far: AtomicU64::new(0),
        }
    }

    /// Counts and logs `count` alerts dropped for `reason`.
    fn dropped(&self, reason: DropReason, count: u64, why: &str) {
        match reason {
            DropReason::QueueFull => {
                self.queue_full.increment(count);
                let before = self.queue_full_so_far.fetch_add(count, Ordering::Relaxed);
                if (before + count).is_power_of_two() || before == 0 {
                    tracing::warn!(
                        sink = %self.name,
                        dropped = before + count,
                        "Sink queue full: dropping alerts for this sink ({why})."
                    );
                }
            }
            DropReason::Rejected => {
                self.rejected.increment(count);
                tracing::error!(sink = %self.name, count, "Sink refused alerts; dropped: {why}");
            }
            DropReason::FlushDeadline => {
                self.flush_deadline.increment(count);
                tracing::error!(sink = %self.name, count, "Sink could not deliver alerts by its flush deadline: {why}");
            }
        }
    }
}

/// One sink's way in: its queue and what it takes.
#[derive(Debug, Clone)]
struct SinkInput {
    queue: mpsc::Sender<Arc<SinkAlert>>,
    events: bool,
    counts: Arc<SinkCounts>,
}

/// Where one rule's alerts go.
#[derive(Debug)]
struct Route {
    labels: Arc<BTreeMap<String, String>>,
    /// Per sink of the set, whether the rule's alerts go there.
    to: Vec<bool>,
}

/// The sinks live now, as the streams see them: read by every stream, replaced on reload.
#[derive(Debug, Default)]
pub struct SinkSet {
    inputs: Vec<SinkInput>,
    routes: HashMap<Arc<str>, Route>,
    /// Where the alerts of ended streams wait to go stale; `None` while there is no sink.
    stale: Option<StaleTracker>,
}

impl SinkSet {
    /// Whether there is no sink: a stream skips the alert at once.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Hands `alert` to every sink that takes it, without waiting: a sink whose queue is full drops it (counted).
    pub fn offer(&self, alert: &Alert) {
        if alert.state == AlertState::Firing
            && let Some(stale) = &self.stale
        {
            stale.fired(alert);
        }
        self.hand_over(alert, false);
    }

    /// A stream restored `rule` firing for `sensor_id` from a saved state: the sinks already have its FIRING, and
    /// it is not stale (a stream fires it again).
    pub fn resumed(&self, sensor_id: &str, rule: &str) {
        if let Some(stale) = &self.stale {
            stale.firing(sensor_id, &Arc::from(rule));
        }
    }

    /// A stream ended while `alerts` fired (each as the RESOLVED it would have ended with): unless a stream fires
    /// them again, the sinks get those RESOLVED alerts, marked stale, after `--stale-after`.
    pub fn stream_ended(&self, alerts: Vec<Alert>) {
        if let Some(stale) = &self.stale
            && !alerts.is_empty()
        {
            stale.ended(alerts);
        }
    }

    /// Hands a stale RESOLVED to the sinks.
    fn offer_stale(&self, alert: &Alert) {
        self.hand_over(alert, true);
    }

    fn hand_over(&self, alert: &Alert, stale: bool) {
        let event = RESERVED_NAMES.contains(&&*alert.rule);
        let route = self.routes.get(&alert.rule);
        let mut shared: Option<Arc<SinkAlert>> = None;
        for (index, input) in self.inputs.iter().enumerate() {
            let wanted = if event { input.events } else { route.is_none_or(|r| r.to[index]) };
            if !wanted {
                continue;
            }
            // A full queue drops the alert before any copy of it is made: an overloaded sink costs its streams
            // least.
            if input.queue.capacity() == 0 {
                input.counts.dropped(DropReason::QueueFull, 1, "its counterpart is away or slow");
                continue;
            }
            let payload = shared.get_or_insert_with(|| {
                let labels = route.map(|r| Arc::clone(&r.labels)).unwrap_or_default();
                let serial = if alert.reading_seq == 0 { NEXT_SERIAL.fetch_add(1, Ordering::Relaxed) } else { 0 };
                Arc::new(SinkAlert { alert: alert.clone(), labels, stale, serial })
            });
            match input.queue.try_send(Arc::clone(payload)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    input.counts.dropped(DropReason::QueueFull, 1, "its counterpart is away or slow")
                }
                // The sink was removed by a reload and has stopped taking alerts.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// The streams' view of the live sinks.
pub type LiveSinks = watch::Receiver<Arc<SinkSet>>;

/// A running sink: its spec, its way in, and how to stop it.
struct Running {
    spec: SinkSpec,
    input: SinkInput,
    /// Cancelled to flush: the queue takes no more, and the task delivers what it holds, then ends.
    finish: CancellationToken,
    /// Cancelled at the flush deadline: the task counts what it still holds and ends.
    abandon: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The server's sinks: their tasks, and the [`SinkSet`] the streams read. Cheap to clone.
#[derive(Clone)]
pub struct Sinks {
    inner: Arc<Hub>,
}

struct Hub {
    live: watch::Sender<Arc<SinkSet>>,
    running: Mutex<Vec<Running>>,
    telemetry: Telemetry,
    options: SinkOptions,
    /// Started with the first sinks.
    stale: std::sync::OnceLock<StaleTracker>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks").field("count", &self.inner.live.borrow().inputs.len()).finish()
    }
}

impl Default for Sinks {
    fn default() -> Self {
        Self::new(Telemetry::off(), SinkOptions::default())
    }
}

impl Sinks {
    /// No sinks yet; sinks added later count in `telemetry` and behave as `options` say.
    pub fn new(telemetry: Telemetry, options: SinkOptions) -> Self {
        let hub = Hub {
            live: watch::channel(Arc::default()).0,
            running: Mutex::default(),
            telemetry,
            options,
            stale: std::sync::OnceLock::new(),
        };
        Self { inner: Arc::new(hub) }
    }

    /// The live sinks, for a stream.
    pub fn subscribe(&self) -> LiveSinks {
        self.inner.live.subscribe()
    }

    /// Runs the sinks `specs` with the routes of `rules` (must be called within a Tokio runtime): a sink whose spec
    /// is unchanged keeps its task and queue; a new or changed one starts; one no longer configured is flushed
    /// and stopped in the background.
    ///
    /// # Errors
    /// A sink cannot start (its HTTP client cannot be built); nothing changes then.
    pub fn apply(&self, specs: &[SinkSpec], rules: &RuleSet) -> Result<(), String> {
        let hub = &self.inner;
        let mut running = hub.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut kept: Vec<Option<Running>> = running.drain(..).map(Some).collect();
        let mut next = Vec::with_capacity(specs.len());
        let mut started = Vec::new();
        for spec in specs {
            let same = kept.iter_mut().find(|r| r.as_ref().is_some_and(|r| r.spec == *spec)).and_then(Option::take);
            match same {
                Some(same) => next.push(same),
                None => match start(spec, &hub.telemetry) {
                    Ok(new) => {
                        started.push(spec.name.clone());
                        next.push(new);
                    }
                    Err(e) => {
                        // Put everything back as it was: the sinks kept go back to the running ones, and those
                        // started for this call stop again.
                        for sink in next {
                            if started.contains(&sink.spec.name) {
                                sink.finish.cancel();
                            } else {
                                running.push(sink);
                            }
                        }
                        running.extend(kept.into_iter().flatten());
                        return Err(format!("sink `{}`: {e}", spec.name));
                    }
                },
            }
        }
        let stale = (!next.is_empty()).then(|| {
            hub.stale
                .get_or_init(|| {
                    let dropped = hub.telemetry.counter("alertstream_sink_stale_notices_dropped_total", Vec::new());
                    let waiting = hub.telemetry.gauge("alertstream_sink_stale_waiting");
                    let options = &hub.options;
                    let (clock, after) = (options.clock.clone(), options.stale_after);
                    let states = options.states.clone();
                    StaleTracker::start(hub.live.subscribe(), (clock, after), states, (dropped, waiting))
                })
                .clone()
        });
        let set =
            SinkSet { inputs: next.iter().map(|r| r.input.clone()).collect(), routes: routes(rules, &next), stale };
        *running = next;
        drop(running);
        hub.live.send_replace(Arc::new(set));
        for gone in kept.into_iter().flatten() {
            tracing::info!(sink = %gone.spec.name, "Sink removed or changed; flushing it.");
            tokio::spawn(flush(vec![gone], hub.options.flush_timeout));
        }
        for name in started {
            tracing::info!(sink = %name, "Sink started.");
        }
        Ok(())
    }

    /// Once the streams have ended: lets every sink deliver what it holds until the flush deadline, then stops
    /// them, counting what was not delivered.
    pub async fn flush(&self) {
        let running = {
            let mut running = self.inner.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *running)
        };
        self.inner.live.send_replace(Arc::default());
        flush(running, self.inner.options.flush_timeout).await;
    }
}

/// Starts one sink's task.
fn start(spec: &SinkSpec, telemetry: &Telemetry) -> Result<Running, String> {
    let counts = Arc::new(SinkCounts::new(&spec.name, telemetry));
    let (queue, inbox) = mpsc::channel(spec.queue);
    let (finish, abandon) = (CancellationToken::new(), CancellationToken::new());
    let stops = (finish.clone(), abandon.clone());
    let task = match &spec.kind {
        SinkKind::Webhook { url, headers } => {
            let deliver = webhook::Webhook::new(url.expose(), headers)?;
            tokio::spawn(runner::run(deliver, inbox, Arc::clone(&counts), stops))
        }
        SinkKind::Jsonl { dir, max_file_bytes, max_file_age } => {
            let deliver = jsonl::JsonLines::new(dir.clone(), *max_file_bytes, *max_file_age);
            tokio::spawn(runner::run(deliver, inbox, Arc::clone(&counts), stops))
        }
        SinkKind::Alertmanager { url, resend_interval } => {
            let deliver = alertmanager::Alertmanager::new(url.expose(), *resend_interval)?;
            tokio::spawn(runner::run(deliver, inbox, Arc::clone(&counts), stops))
        }
        SinkKind::Nats { url, subject, stream } => {
            let deliver = nats::Nats::new(url.expose(), subject, stream.as_deref());
            tokio::spawn(runner::run(deliver, inbox, Arc::clone(&counts), stops))
        }
    };
    let input = SinkInput { queue, events: spec.events, counts };
    Ok(Running { spec: spec.clone(), input, finish, abandon, task })
}

/// Where each rule's alerts go among `sinks`.
fn routes(rules: &RuleSet, sinks: &[Running]) -> HashMap<Arc<str>, Route> {
    rules
        .rules()
        .iter()
        .map(|rule| {
            let spec = rule.spec();
            let to = sinks.iter().map(|s| spec.sinks.is_empty() || spec.sinks.contains(&s.spec.name)).collect();
            (Arc::from(rule.name()), Route { labels: Arc::new(spec.labels.clone()), to })
        })
        .collect()
}

/// Closes the queues of `sinks` and waits for their tasks to deliver what they hold until `timeout`; then tells the
/// rest to count what they still hold as dropped and stop.
async fn flush(sinks: Vec<Running>, timeout: Duration) {
    let deadline = timer_deadline(timeout);
    for sink in &sinks {
        sink.finish.cancel();
    }
    for sink in sinks {
        let Running { abandon, mut task, spec, .. } = sink;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            abandon.cancel();
            let _ = task.await;
        }
        tracing::debug!(sink = %spec.name, "Sink stopped.");
    }
}

/// A FIRING alert of rule `hot` for sensor `s`, of the reading `seq` stamped `seq` seconds after 1970, with no
/// values, labels or explanation: what the sinks' tests send.
#[cfg(test)]
fn test_alert(seq: u64) -> SinkAlert {
    let alert = Alert {
        sensor_id: "s".into(),
        rule: Arc::from("hot"),
        state: AlertState::Firing,
        severity: alertstream_engine::Severity::Warning,
        message: Arc::from("too hot"),
        reading_seq: seq,
        time: std::time::UNIX_EPOCH + Duration::from_secs(seq),
        values: alertstream_engine::Values::default(),
        explanation: Box::default(),
    };
    SinkAlert { alert, labels: Arc::default(), stale: false, serial: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sinks: &str) -> alertstream_rules::RulesFile {
        let text = format!("[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n{sinks}");
        alertstream_rules::parse("sinks.toml", &text).unwrap()
    }

    fn running(sinks: &Sinks) -> Vec<String> {
        let running = sinks.inner.running.lock().unwrap();
        running.iter().map(|r| r.spec.name.clone()).collect()
    }

    #[tokio::test]
    async fn a_reload_whose_sink_cannot_start_changes_nothing() {
        let sinks = Sinks::default();
        let hook = "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n";
        let first = file(hook);
        sinks.apply(&first.sinks, &first.rules).unwrap();
        assert_eq!(running(&sinks), ["hook"]);
        // A URL the file accepts (it starts with http://) and the HTTP client does not.
        let bad = "[[sink]]\nname = \"bad\"\ntype = \"webhook\"\nurl = \"http://a b/\"\n";
        let second = file(&format!("{hook}\n{bad}"));
        let error = sinks.apply(&second.sinks, &second.rules).unwrap_err();
        assert!(error.starts_with("sink `bad`: bad `url`"), "{error}");
        // The unchanged sink still runs, and the live set still has it alone.
        assert_eq!(running(&sinks), ["hook"]);
        assert_eq!(sinks.subscribe().borrow().inputs.len(), 1);
        sinks.flush().await;
        assert!(running(&sinks).is_empty());
    }
}

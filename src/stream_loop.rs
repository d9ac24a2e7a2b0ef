//! One `Stream` call's loop, as a small state machine that is itself the response stream: `poll_wake` decides what
//! woke the stream ([`Wake`]), [`StreamLoop::handle`] does what it calls for and leaves the alerts it owes in one
//! buffer, and `poll_next` yields them, then asks for the next wake. Nothing is spawned and nothing is buffered
//! beyond the alerts of one wake, so a client that stops reading is pushed back by HTTP/2 flow control.
//!
//! No shared lock per reading: new rules and the server's [`Farewell`]s (shutdown, connection age) are each seen
//! through one atomic load per pass (the version of their `watch` channel); the futures that wake an idle stream for
//! them are made once per change and polled only while the stream has nothing to read. One timer per stream, reset
//! only when the time it waits for changes, wakes it for its next absence deadline and for the client's deadline
//! (`grpc-timeout`). Time comes from the server's [`Clock`]; the clock is read per reading only when a reading has
//! no time, an absence rule is armed, or a deadline or rate limit (`--max-readings-per-second`) needs it.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use alertstream_engine::{
    Alert, CHECKPOINT, INVALID_READING, LATE_READING, Reading, ReadingError, RuleSet, SENSOR_LIMIT, StreamState,
    validate_time,
};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_stream::Stream;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tonic::{Status, Streaming};

use crate::{
    clock::Stopwatch,
    clock::{Alarm, Armed, Clock},
    convert::{reading_from_inbound, timestamp_text},
    farewell::{Farewell, Farewells},
    rate_limit::RateLimit,
    reload::LiveRules,
    sinks::{LiveSinks, SinkSet, Sinks},
    state_store::{Committed, Durable, SensorStates, StreamClaim},
    stream_codec::InboundReading,
    telemetry::{Telemetry, stream::StreamMetrics},
    view::{ViewEvent, ViewHub, send_snapshot},
};

/// With a state store, an open stream looks at the clock for a periodic save once in this many readings.
const SAVE_CHECK_EVERY: u32 = 1_024;
/// How long an ending resuming stream waits, at most, for its last saves' answers before its status.
const LAST_CHECKPOINTS_WAIT: Duration = Duration::from_secs(5);

/// What a stream needs from the server besides its readings.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The live rules; the stream moves to a new snapshot between readings.
    pub rules: LiveRules,
    /// When the server ends the stream: the server's shutdown, or (as the service sets it) its connection's
    /// farewells, which carry both shutdown and the connection's maximum age.
    pub farewells: Farewells,
    /// Where time comes from.
    pub clock: Clock,
    /// A stream tracks at most this many sensors.
    pub max_sensors: usize,
    /// How far behind its sensor's latest a reading may be and still be applied.
    pub lateness: Duration,
    /// How far ahead of the clock a reading's time may be.
    pub max_future: Duration,
    /// Readings a second a stream may send (`--max-readings-per-second`); 0 is no limit.
    pub max_readings_per_second: u32,
    /// Where the stream's counts go.
    pub telemetry: Telemetry,
    /// The live web view: told of readings and alerts only while a browser watches.
    pub view: ViewHub,
    /// Where alerts go besides the stream (`[[sink]]`).
    pub sinks: Sinks,
    /// Where the stream's sensors' states come from and go to (`--state-dir`), when they outlive the stream.
    pub states: SensorStates,
}

/// What one stream's request asks for besides the server's settings.
#[derive(Debug, Default)]
pub struct StreamOptions {
    /// The client's deadline (from `grpc-timeout`), on the server's clock: at it, the stream ends
    /// DEADLINE_EXCEEDED after the alerts it owes.
    pub deadline: Option<SystemTime>,
    /// Whether the client resumes (`alertstream-resume: 1`, with a state store): it is told in `checkpoint` events
    /// up to which reading each sensor's state is durable, and a reading it sends again (a `seq` its sensor has
    /// already applied) is skipped.
    pub resume: bool,
}

/// What woke a stream.
#[derive(Debug)]
pub enum Wake {
    /// The client sent a reading.
    Reading(InboundReading),
    /// The client half-closed: every alert is delivered, then the stream ends OK.
    HalfClosed,
    /// The inbound stream failed (a message over the size limit, one that does not decode).
    InboundError(Status),
    /// New rules were published.
    Reload(Arc<RuleSet>),
    /// An absence deadline, a periodic save or the client's deadline may have come.
    TimerDue,
    /// A save this resuming stream asked to hear about made these sensors' states durable.
    Checkpoint(Durable),
    /// A browser opened the live view and asks every stream for what it holds.
    Snapshot,
    /// The server ends the stream.
    Farewell(Farewell),
}

/// What the stream does after yielding the alerts a wake owes.
#[derive(Debug)]
pub enum Next {
    /// Wait for the next wake.
    Continue,
    /// End the stream: OK, or with this status.
    End(Option<Status>),
}

/// One stream's state between wakes.
pub struct StreamLoop {
    inbound: Streaming<InboundReading>,
    context: StreamContext,
    /// The rule snapshot the stream applies.
    rules: Arc<RuleSet>,
    state: StreamState,
    /// The alerts owed by the last wake, last first: yielded (popped) before the next wake.
    owed: Vec<Alert>,
    /// How the stream ends, once it is to end: after the owed alerts, OK (`None`) or this status.
    ending: Option<Option<Status>>,
    /// Whether the stream has ended.
    ended: bool,
    /// Held for as long as the stream lives, so shutdown can count open streams.
    _open: TaskTrackerToken,
    /// The stream's place under the server's cap on open streams (`--max-streams`), given back as the stream ends,
    /// before its status goes out, so a client that saw the end can open another at once.
    admission: Option<OwnedSemaphorePermit>,
    /// A time the clock has reached (its last reading here): a reading stamped no later than this plus
    /// `max_future` is not from too far ahead, whatever the clock says now, so most readings need no clock read.
    clock_floor: SystemTime,
    /// `clock_floor + max_future`, kept so that a reading costs one comparison (`None` when it cannot be
    /// represented: every time passes).
    future_limit: Option<SystemTime>,
    /// Whether new rules can still come (the publisher may go away, as in tests).
    watching_rules: bool,
    /// Whether a farewell can still come.
    watching_farewells: bool,
    /// Wakes an idle stream when new rules are published.
    rules_changed: Armed,
    /// The live sinks: looked at (one atomic load) only when an alert goes out.
    live_sinks: LiveSinks,
    /// The sinks the stream hands its alerts to.
    sinks: Arc<SinkSet>,
    /// Wakes an idle stream when the server ends it.
    farewell_sent: Armed,
    /// Wakes an idle stream at its next absence deadline or its deadline; made when the stream first has one.
    alarm: Option<Alarm>,
    /// The client's deadline.
    deadline: Option<SystemTime>,
    /// `--max-readings-per-second`, when on.
    rate_limit: Option<RateLimit>,
    /// What the stream counts for the metrics.
    metrics: StreamMetrics,
    /// The live view's snapshot requests.
    snapshot_requests: watch::Receiver<u64>,
    /// Whether snapshot requests can still come.
    watching_snapshots: bool,
    /// Wakes an idle stream when a snapshot is asked for.
    snapshot_asked: Armed,
    /// The number of the latest snapshot request this stream has answered.
    snapshot_served: u64,
    /// What the stream restores and saves its sensors under (`--state-dir`).
    claim: StreamClaim,
    /// Whether the sensors' states have been handed to the store as the stream ended.
    states_saved: bool,
    /// With a store: readings until the next look at the clock for a periodic save, and when that save is due.
    periodic_save: Option<(u32, SystemTime)>,
    /// Whether the client resumes (`alertstream-resume: 1`).
    resume: bool,
    /// A resuming stream's saves whose answer it awaits, oldest first: each becomes its `checkpoint` events.
    committed: VecDeque<Committed>,
    /// When an ending resuming stream stops waiting for those answers.
    checkpoints_until: Option<SystemTime>,
}

impl StreamLoop {
    /// A loop over `inbound`, starting on the current rules; `open` is held until the stream ends or is dropped, and
    /// `admission` until it ends.
    pub fn new(
        inbound: Streaming<InboundReading>,
        mut context: StreamContext,
        options: StreamOptions,
        open: TaskTrackerToken,
        admission: OwnedSemaphorePermit,
    ) -> Self {
        let rules = Arc::clone(&context.rules.borrow_and_update());
        let state = StreamState::new(context.max_sensors, context.lateness);
        let mut live_sinks = context.sinks.subscribe();
        let sinks = Arc::clone(&live_sinks.borrow_and_update());
        Self {
            live_sinks,
            sinks,
            rules_changed: Armed::new(changed(&context.rules)),
            farewell_sent: Armed::new(changed(&context.farewells)),
            alarm: None,
            deadline: options.deadline,
            resume: options.resume,
            committed: VecDeque::new(),
            checkpoints_until: None,
            rate_limit: RateLimit::per_second(context.max_readings_per_second),
            metrics: StreamMetrics::new(&context.telemetry),
            snapshot_requests: context.view.snapshot_requests(),
            watching_snapshots: true,
            snapshot_asked: Armed::new(changed(&context.view.snapshot_requests())),
            // A page that asked before this stream began sees its readings live.
            snapshot_served: *context.view.snapshot_requests().borrow(),
            claim: context.states.claim(),
            states_saved: false,
            periodic_save: context
                .states
                .save_interval()
                .and_then(|every| context.clock.now().checked_add(every))
                .map(|due| (SAVE_CHECK_EVERY, due)),
            inbound,
            rules,
            state,
            // Room for one alert, the usual number per reading: the default growth would hold four (512 bytes) in
            // every stream, idle ones included.
            owed: Vec::with_capacity(1),
            ending: None,
            ended: false,
            _open: open,
            admission: Some(admission),
            clock_floor: SystemTime::UNIX_EPOCH,
            future_limit: SystemTime::UNIX_EPOCH.checked_add(context.max_future),
            watching_rules: true,
            watching_farewells: true,
            context,
        }
    }

    /// How many sensors the stream tracks.
    pub fn sensor_count(&self) -> usize {
        self.state.sensor_count()
    }

    /// Outside signals first (one atomic load each), then the next reading; only a stream with nothing to read
    /// looks at the clock and arms its wake-ups.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        loop {
            if let Poll::Ready(durable) = self.poll_committed(cx) {
                return Poll::Ready(Wake::Checkpoint(durable));
            }
            if self.watching_farewells
                && let changed_or_closed @ (Ok(true) | Err(_)) = self.context.farewells.has_changed()
            {
                // Changed, or closed: a value sent just before the sender went away still counts.
                let closed = changed_or_closed.is_err();
                let farewell = {
                    let value = self.context.farewells.borrow_and_update();
                    if value.has_changed() { *value } else { None }
                };
                self.farewell_sent = Armed::new(changed(&self.context.farewells));
                self.watching_farewells = !closed;
                if let Some(farewell) = farewell {
                    return Poll::Ready(Wake::Farewell(farewell));
                }
            }
            if self.watching_rules
                && let changed_or_closed @ (Ok(true) | Err(_)) = self.context.rules.has_changed()
            {
                let closed = changed_or_closed.is_err();
                let (fresh, rules) = {
                    let value = self.context.rules.borrow_and_update();
                    (value.has_changed(), Arc::clone(&value))
                };
                self.rules_changed = Armed::new(changed(&self.context.rules));
                self.watching_rules = !closed;
                if fresh {
                    return Poll::Ready(Wake::Reload(rules));
                }
            }
            if self.watching_snapshots
                && let changed_or_closed @ (Ok(true) | Err(_)) = self.snapshot_requests.has_changed()
            {
                let closed = changed_or_closed.is_err();
                let fresh = self.snapshot_requests.borrow_and_update().has_changed();
                self.snapshot_asked = Armed::new(changed(&self.snapshot_requests));
                self.watching_snapshots = !closed;
                if fresh {
                    return Poll::Ready(Wake::Snapshot);
                }
            }
            match Pin::new(&mut self.inbound).poll_next(cx) {
                Poll::Ready(Some(Ok(reading))) => return Poll::Ready(Wake::Reading(reading)),
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Wake::InboundError(status)),
                Poll::Ready(None) => return Poll::Ready(Wake::HalfClosed),
                Poll::Pending => {}
            }
            // Nothing to read: wait for whichever comes first.
            let save = self.periodic_save.map(|(_, due)| due);
            let due = [self.state.next_deadline(), self.deadline, save].into_iter().flatten().min();
            if let Some(due) = due {
                // The alarm first: a manual clock's alarm sees every advance after it is made, so one between
                // the look at the clock and the wait is not missed.
                let alarm = self.alarm.get_or_insert_with(|| self.context.clock.alarm());
                if self.context.clock.now() >= due {
                    return Poll::Ready(Wake::TimerDue);
                }
                if alarm.poll_until(&self.context.clock, due, cx).is_ready() {
                    continue;
                }
            }
            let mut woken = false;
            if self.watching_rules && self.rules_changed.poll(cx).is_ready() {
                // Seen through `has_changed` above; a fresh wait is made there.
                self.rules_changed = Armed::new(changed(&self.context.rules));
                woken = true;
            }
            if self.watching_farewells && self.farewell_sent.poll(cx).is_ready() {
                self.farewell_sent = Armed::new(changed(&self.context.farewells));
                woken = true;
            }
            if self.watching_snapshots && self.snapshot_asked.poll(cx).is_ready() {
                self.snapshot_asked = Armed::new(changed(&self.snapshot_requests));
                woken = true;
            }
            if !woken {
                return Poll::Pending;
            }
        }
    }

    /// The next answer of the saves this resuming stream awaits that made some sensor durable; a failed save's
    /// answer (none durable) is passed over.
    fn poll_committed(&mut self, cx: &mut Context<'_>) -> Poll<Durable> {
        while let Some(answer) = self.committed.front_mut() {
            let durable = std::task::ready!(Pin::new(answer).poll(cx));
            self.committed.pop_front();
            if let Ok(durable) = durable
                && !durable.is_empty()
            {
                return Poll::Ready(durable);
            }
        }
        Poll::Pending
    }

    /// Refuses a reading time too far ahead of the clock, reading the clock only when the floor cannot vouch for it
    /// (`received_at`: the clock's time if it was read for this reading).
    fn check_future(&mut self, time: SystemTime, received_at: Option<SystemTime>) -> Result<(), ReadingError> {
        if let Some(now) = received_at {
            self.raise_clock_floor(now);
        }
        if self.future_limit.is_none_or(|limit| time <= limit) {
            return Ok(());
        }
        self.raise_clock_floor(self.context.clock.now());
        validate_time(time, self.clock_floor, self.context.max_future)
    }

    fn raise_clock_floor(&mut self, now: SystemTime) {
        if now > self.clock_floor {
            self.clock_floor = now;
            self.future_limit = now.checked_add(self.context.max_future);
        }
    }

    /// Acts on `wake`, leaving the alerts it owes to be yielded before the next.
    pub fn handle(&mut self, wake: Wake) -> Next {
        match wake {
            Wake::Reading(reading) => self.on_reading(reading),
            Wake::TimerDue => {
                let now = self.context.clock.now();
                if self.deadline.is_some_and(|deadline| now >= deadline) {
                    return self.deadline_exceeded();
                }
                self.rules.check_absence(&mut self.state, now, &mut self.owed);
                self.save_if_due(now);
                Next::Continue
            }
            Wake::Checkpoint(durable) => {
                let now = self.context.clock.now();
                // Only a sensor whose readings carry a seq can be resumed.
                self.owed.extend(
                    durable
                        .iter()
                        .filter(|(_, seq)| *seq > 0)
                        .map(|(sensor_id, seq)| Alert::checkpoint(sensor_id, *seq, now)),
                );
                Next::Continue
            }
            Wake::Reload(rules) => {
                rules.adopt(&self.rules, &mut self.state, self.context.clock.now(), &mut self.owed);
                self.rules = rules;
                tracing::debug!(rules = self.rules.rules().len(), "Stream moved to new rules.");
                Next::Continue
            }
            Wake::Snapshot => {
                self.send_snapshot();
                Next::Continue
            }
            Wake::HalfClosed => {
                tracing::debug!(sensor_count = self.sensor_count(), "Stream half-closed by the client.");
                Next::End(None)
            }
            Wake::InboundError(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "Stream ended by an inbound error.");
                Next::End(Some(crate::service::rescue(status)))
            }
            Wake::Farewell(farewell) => {
                tracing::debug!(sensor_count = self.sensor_count(), ?farewell, "Stream ended by the server.");
                Next::End(Some(farewell.status()))
            }
        }
    }

    /// Applies one reading, or refuses it (invalid, over the rate), or ends the stream if its deadline has passed.
    fn on_reading(&mut self, reading: InboundReading) -> Next {
        // The server's time is needed by a reading without one, by absence rules, a deadline and a rate limit;
        // otherwise the reading's own time stands in for it and the clock is not read.
        let timed = self.metrics.reading(self.state.sensor_count());
        let clock = &self.context.clock;
        let mut received_at = (self.deadline.is_some() || self.rate_limit.is_some()).then(|| clock.now());
        if let (Some(deadline), Some(now)) = (self.deadline, received_at)
            && now >= deadline
        {
            // Too late for the client to want its alerts: not applied.
            return self.deadline_exceeded();
        }
        let reading = reading_from_inbound(reading, || *received_at.get_or_insert_with(|| clock.now()));
        let over_rate = match (self.rate_limit.as_mut(), received_at) {
            (Some(limit), Some(now)) => (!limit.admit(now)).then(|| limit.rate()),
            _ => None,
        };
        let now = match received_at {
            Some(now) => Some(now),
            None if self.rules.watches_absence() => Some(self.context.clock.now()),
            None => None,
        };
        match (reading, over_rate) {
            (Ok(reading), Some(rate)) => self.owed.push(Alert::rate_limited(&reading, rate)),
            (Err(invalid), Some(rate)) => self.owed.push(Alert::rate_limited(&invalid.0, rate)),
            (Err(invalid), None) => self.owed.push(Alert::invalid_reading(&invalid.0, &invalid.1)),
            (Ok(reading), None) => match self.check_future(reading.time, received_at) {
                Ok(()) => {
                    let now = now.unwrap_or(reading.time);
                    if let ending @ Next::End(_) = self.evaluate(reading, now, timed) {
                        return ending;
                    }
                }
                // A reading from too far ahead would blind its sensor: refused like any invalid reading.
                Err(error) => self.owed.push(Alert::invalid_reading(&reading, &error)),
            },
        }
        self.save_now_and_then();
        // A stream that never waits (refused readings included) still fires its absence rules on time.
        if let Some(now) = now
            && self.state.next_deadline().is_some_and(|deadline| deadline <= now)
        {
            self.rules.check_absence(&mut self.state, now, &mut self.owed);
        }
        Next::Continue
    }

    /// Applies a reading to the rules (its evaluation timed when `timed`), and shows it to the live view if a
    /// browser watches and the engine applied it.
    fn evaluate(&mut self, reading: Reading, now: SystemTime, timed: bool) -> Next {
        // Only while a browser watches: the copy the view needs, as the engine takes the reading.
        let shown = self
            .context
            .view
            .watched()
            .then(|| (reading.sensor_id.clone(), reading.values.clone(), reading.time, reading.seq));
        let first_owed = self.owed.len();
        // A sensor new to this stream picks up its saved state first (one read of the store, once per stream).
        // (Only for a reading the engine will apply: an invalid one must not make the stream claim its sensor.)
        let restored = if self.context.states.is_on()
            && self.state.sensor_count() < self.context.max_sensors
            && !self.state.tracks(&reading.sensor_id)
            && alertstream_engine::validate(&reading).is_ok()
        {
            let resume_from = (self.resume && reading.seq > 0).then_some(reading.seq);
            match self.restore(&reading.sensor_id, now, resume_from) {
                Ok(restored) => restored,
                // Started fresh, a resumed sensor would apply the readings sent again to nothing: its client
                // tries again later instead.
                Err(()) if self.resume => {
                    self.context.states.give_up(self.claim, &reading.sensor_id);
                    return Next::End(Some(Status::unavailable(
                        "the sensor's saved state cannot be read now; resume again later",
                    )));
                }
                Err(()) => false,
            }
        } else {
            false
        };
        // A resuming client sends again what its last checkpoint did not cover: what the sensor has applied is
        // skipped (its alerts went out before), so that no window or detector sees a reading twice.
        if self.resume
            && reading.seq > 0
            && let Some(applied) = self.state.last_seq(&reading.sensor_id).filter(|applied| reading.seq <= *applied)
        {
            if restored {
                // The client's first reading after a restore is one even the oldest version kept has: its last
                // checkpoint is older than every version, so alerts of the readings skipped may never have reached
                // it.
                tracing::warn!(
                    sensor_id = reading.sensor_id,
                    from = reading.seq,
                    to = applied,
                    "A resuming client is further behind than the versions kept: alerts of these readings may be lost."
                );
                self.context.telemetry.counter("alertstream_resume_gaps_total", Vec::new()).increment(1);
            }
            self.metrics.resent();
            return Next::Continue;
        }
        let stopwatch = timed.then(Stopwatch::start);
        self.rules.evaluate(&mut self.state, reading, now, &mut self.owed);
        if let Some(stopwatch) = stopwatch {
            self.metrics.evaluation(stopwatch.seconds());
        }
        // Applied unless the engine answered it with an event: invalid, late, or a sensor beyond the limit.
        let refused = |a: &Alert| matches!(&*a.rule, INVALID_READING | LATE_READING | SENSOR_LIMIT);
        if let Some((sensor_id, values, time, seq)) = shown
            && !self.owed[first_owed..].iter().any(refused)
        {
            let time = timestamp_text(time);
            self.context.view.publish(&ViewEvent::Reading { sensor_id: &sensor_id, values: &values, time, seq });
        }
        Next::Continue
    }

    /// Every [`SAVE_CHECK_EVERY`] readings, looks at the clock for a periodic save (an idle stream's timer wakes
    /// it for one too).
    fn save_now_and_then(&mut self) {
        let Some((until_check, _)) = &mut self.periodic_save else { return };
        *until_check -= 1;
        if *until_check == 0 {
            *until_check = SAVE_CHECK_EVERY;
            self.save_if_due(self.context.clock.now());
        }
    }

    /// Saves the sensors' states when `--state-save-interval` has passed since the stream began or last saved; a
    /// resuming stream awaits the answer, for its checkpoints.
    fn save_if_due(&mut self, now: SystemTime) {
        let Some((_, due)) = &mut self.periodic_save else { return };
        if now < *due {
            return;
        }
        match self.context.states.save_interval().and_then(|every| now.checked_add(every)) {
            Some(next) => *due = next,
            None => self.periodic_save = None,
        }
        let committed = self.context.states.save(self.claim, &self.rules, &self.state, false, self.resume);
        self.committed.extend(committed);
    }

    /// Saves the sensors' states and gives them up, once: as the stream ends (a resuming stream then awaits the
    /// answer, and tells its client before the status), or when it is dropped without ending, its client gone. A
    /// resuming stream whose client is gone saves nothing then: the client sends again what its last checkpoint
    /// did not cover, so the sensors' next stream starts from that checkpoint's state.
    fn save_states(&mut self, client_gone: bool) {
        if std::mem::replace(&mut self.states_saved, true) {
            return;
        }
        if self.resume && client_gone {
            self.context.states.release(self.claim, &self.state);
            return;
        }
        let committed = self.context.states.save(self.claim, &self.rules, &self.state, true, self.resume);
        self.committed.extend(committed);
    }

    /// Restores sensor `sensor_id` from the store; the rules it restores firing are no stale alerts for the sinks,
    /// and when another process saved the state (a replica, or this server before a restart), the sinks here may
    /// never have had them: they are announced again (FIRING, at the sensor's last reading).
    /// Whether a state was restored; an error when the store could not be read (the sensor is fresh).
    fn restore(&mut self, sensor_id: &str, now: SystemTime, resume_from: Option<u64>) -> Result<bool, ()> {
        let restored =
            self.context.states.restore(self.claim, &self.rules, &mut self.state, sensor_id, now, resume_from);
        let Some(restored) = restored.map_err(|_| ())? else {
            return Ok(false);
        };
        if self.live_sinks.has_changed().unwrap_or(false) {
            self.sinks = Arc::clone(&self.live_sinks.borrow_and_update());
        }
        if self.sinks.is_empty() {
            return Ok(true);
        }
        if restored.from_elsewhere {
            for alert in self.rules.firing_now(&self.state, sensor_id, now) {
                self.sinks.offer(&alert);
            }
        } else {
            for rule in self.state.firing_rules(sensor_id) {
                if let Some(rule) = self.rules.rules().get(rule) {
                    self.sinks.resumed(sensor_id, rule.name());
                }
            }
        }
        Ok(true)
    }

    /// Tells each page that asked since the last snapshot every sensor this stream tracks and every rule firing for
    /// one.
    fn send_snapshot(&mut self) {
        let (served, sinks) = self.context.view.snapshot_sinks(self.snapshot_served);
        self.snapshot_served = served;
        if sinks.is_empty() {
            return;
        }
        for (sensor_id, latest, seq) in self.state.sensors() {
            send_snapshot(&sinks, &ViewEvent::Sensor { sensor_id, time: latest.map(timestamp_text), seq });
        }
        for (sensor_id, rule) in self.state.firing() {
            if let Some(rule) = self.rules.rules().get(rule) {
                let severity = rule.spec().severity.as_str();
                send_snapshot(&sinks, &ViewEvent::Firing { sensor_id, rule: rule.name(), severity });
            }
        }
    }

    fn deadline_exceeded(&self) -> Next {
        tracing::debug!(sensor_count = self.sensor_count(), "Stream ended by the client's deadline.");
        Next::End(Some(Status::deadline_exceeded("the client's deadline (grpc-timeout) passed")))
    }
}

/// However the stream ends (its status sent, or the client gone): what still fires in it goes to the sinks, which
/// resolve it as stale after `--stale-after` unless a stream fires it again.
impl Drop for StreamLoop {
    fn drop(&mut self) {
        if self.live_sinks.has_changed().unwrap_or(false) {
            self.sinks = Arc::clone(&self.live_sinks.borrow_and_update());
        }
        if !self.sinks.is_empty() {
            self.sinks.stream_ended(self.rules.still_firing(&self.state, self.context.clock.now()));
        }
        self.save_states(true);
    }
}

/// The response stream: the owed alerts, in order, then the next wake; at the end, its status.
impl Stream for StreamLoop {
    type Item = Result<Alert, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(alert) = this.owed.pop() {
                if *alert.rule == *CHECKPOINT {
                    // The client's alone: no alert in metrics, sinks or the view.
                    return Poll::Ready(Some(Ok(alert)));
                }
                this.metrics.alert(&alert);
                if this.live_sinks.has_changed().unwrap_or(false) {
                    this.sinks = Arc::clone(&this.live_sinks.borrow_and_update());
                }
                if !this.sinks.is_empty() {
                    this.sinks.offer(&alert);
                }
                if this.context.view.watched() {
                    this.context.view.publish(&ViewEvent::Alert {
                        sensor_id: &alert.sensor_id,
                        rule: &alert.rule,
                        state: alert.state.as_str(),
                        severity: alert.severity.as_str(),
                        message: &alert.message,
                        time: timestamp_text(alert.time),
                        seq: alert.reading_seq,
                    });
                }
                return Poll::Ready(Some(Ok(alert)));
            }
            if this.ending.is_some() {
                // Saved before the status goes out, so that the sensors' next stream, opened as soon as the client
                // sees the end, finds their states.
                this.save_states(false);
                // A resuming stream's last checkpoints come before its status: its client then knows what is
                // durable.
                if let Poll::Ready(durable) = this.poll_committed(cx) {
                    this.handle(Wake::Checkpoint(durable));
                    this.owed.reverse();
                    continue;
                }
                if !this.committed.is_empty() {
                    // Waited for a while at most: a store that is away does not hold the status back.
                    let now = this.context.clock.now();
                    let until = *this
                        .checkpoints_until
                        .get_or_insert_with(|| now.checked_add(LAST_CHECKPOINTS_WAIT).unwrap_or(now));
                    if now < until {
                        let alarm = this.alarm.get_or_insert_with(|| this.context.clock.alarm());
                        if alarm.poll_until(&this.context.clock, until, cx).is_pending() {
                            return Poll::Pending;
                        }
                        // The clock moved: looked at again.
                        continue;
                    }
                    this.committed.clear();
                }
                let ending = this.ending.take().unwrap_or_default();
                this.ended = true;
                this.admission = None;
                this.metrics.end(this.state.sensor_count());
                return Poll::Ready(ending.map(Err));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let wake = std::task::ready!(this.poll_wake(cx));
            if let Next::End(status) = this.handle(wake) {
                this.ending = Some(status);
            }
            // Owed in order; yielded by popping from the back.
            this.owed.reverse();
        }
    }
}

/// A wait for the next change on `receiver` (or for its sender to go away), as a future of its own.
fn changed<T: Send + Sync + 'static>(receiver: &watch::Receiver<T>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut receiver = receiver.clone();
    Box::pin(async move {
        let _ = receiver.changed().await;
    })
}

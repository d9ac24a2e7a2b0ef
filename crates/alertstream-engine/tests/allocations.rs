//! The per-reading path allocates nothing a reading does not need: once a sensor is known, a reading that yields
//! no alert allocates nothing at all (the slot buffer is reused, rules are compiled, the reading is moved in), and
//! an absence rule adds no allocation to a reading that alerts. Counted per thread by a global allocator, so that
//! the tests of this file may run side by side.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    time::{Duration, SystemTime},
};

use alertstream_engine::{Reading, RuleSet, RuleSpec, StreamState, Values};

/// The system allocator, counting allocations.
struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread. Const-initialised and without a destructor, so on targets
    /// with native thread-locals (Linux among them) reading it never allocates, even inside the allocator.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

/// How many times `f` allocates.
fn allocations_of(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rule(name: &str, condition: &str) -> RuleSpec {
    RuleSpec { name: name.to_owned(), condition: Some(condition.to_owned()), ..RuleSpec::default() }
}

fn reading(seq: u64, temperature: f64) -> Reading {
    Reading {
        sensor_id: "line-1".to_owned(),
        values: Values::from_iter([("temperature".to_owned(), temperature), ("pH".to_owned(), 5.0)]),
        seq,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
    }
}

#[test]
fn a_reading_of_a_known_sensor_that_yields_no_alert_allocates_nothing() {
    let rules = RuleSet::new(vec![
        rule("temp_too_low", "temperature < 10"),
        rule("ph_too_high", "pH > 5.5"),
        rule("rising", "delta(temperature) > 100 or avg(temperature, 10) > 1000"),
    ])
    .unwrap();
    let mut stream = StreamState::new(10, Duration::from_secs(60));
    let mut out = Vec::with_capacity(8);
    // Warm up: the sensor's state and its windows reach their steady size.
    for seq in 1..=20 {
        rules.evaluate(&mut stream, reading(seq, 20.0), SystemTime::UNIX_EPOCH, &mut out);
    }
    assert!(out.is_empty());
    let readings: Vec<Reading> = (21..=1_020).map(|seq| reading(seq, 20.0 + (seq % 7) as f64)).collect();

    let allocations = allocations_of(|| {
        for reading in readings {
            rules.evaluate(&mut stream, reading, SystemTime::UNIX_EPOCH, &mut out);
        }
    });

    assert!(out.is_empty());
    assert_eq!(allocations, 0, "1,000 readings without an alert allocated {allocations} times");
}

#[test]
fn an_absence_rule_adds_no_allocation_to_a_reading_that_alerts() {
    let silent = RuleSpec { name: "silent".into(), absent_for: Some(Duration::from_secs(60)), ..RuleSpec::default() };
    let without = RuleSet::new(vec![rule("temp_too_low", "temperature < 10")]).unwrap();
    let with = RuleSet::new(vec![rule("temp_too_low", "temperature < 10"), silent]).unwrap();
    // Temperature crosses the threshold on every reading: each one yields an alert (FIRING, then RESOLVED).
    let readings: Vec<Reading> = (1..=1_000).map(|seq| reading(seq, if seq % 2 == 1 { 5.0 } else { 15.0 })).collect();
    let mut counts = Vec::new();
    for rules in [&without, &with] {
        let mut stream = StreamState::new(10, Duration::from_secs(60));
        let mut out = Vec::with_capacity(2_000);
        rules.evaluate(&mut stream, reading(0, 20.0), SystemTime::UNIX_EPOCH, &mut out);
        let batch = readings.clone();
        counts.push(allocations_of(|| {
            for reading in batch {
                rules.evaluate(&mut stream, reading, SystemTime::UNIX_EPOCH, &mut out);
            }
        }));
        assert_eq!(out.len(), 1_000, "every reading alerted");
    }
    // The sensor's last values (which absence alerts carry) are updated in place, not copied from each reading.
    assert_eq!(counts[1], counts[0], "allocations for 1,000 alerting readings without and with an absence rule");
}

//! Any text as a rule's condition: it compiles, or it is refused with errors whose spans lie on character
//! boundaries within the text (the rules loader turns them into line:col). A condition that compiles is evaluated
//! on a few readings, windows and all.

#![no_main]

use std::time::{Duration, SystemTime};

use alertstream_engine::{Reading, RuleSet, RuleSetError, RuleSpec, StreamState, Values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let spec = RuleSpec { name: "fuzzed".to_owned(), condition: Some(text.to_owned()), ..RuleSpec::default() };
    match RuleSet::new(vec![spec]) {
        Err(errors) => {
            for error in errors {
                if let RuleSetError::Field { error, .. } = &error {
                    let span = &error.span;
                    assert!(span.start <= span.end && span.end <= text.len(), "{span:?} of {text:?}");
                    assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end), "{span:?}");
                    assert!(!error.message.is_empty());
                }
                let _ = error.to_string();
            }
        }
        Ok(rules) => {
            let mut stream = StreamState::new(4, Duration::from_secs(60));
            let mut out = Vec::new();
            for i in 0..24u32 {
                let value = f64::from(i % 7) * 3.5 - 10.0;
                let values = Values::from_iter(
                    ["a", "b", "x", "temperature", "pH"].map(|name| (name.to_owned(), value + name.len() as f64)),
                );
                let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(i) * 7);
                let reading = Reading { sensor_id: format!("s{}", i % 2), values, seq: u64::from(i), time };
                rules.evaluate(&mut stream, reading, time, &mut out);
            }
        }
    }
});

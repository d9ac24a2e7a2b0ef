//! Any text as a rules file: it loads, or every error is reported as `FILE:LINE:COL: message` with a line and
//! column inside the text.

#![no_main]

use alertstream_rules::RulesError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match alertstream_rules::parse("fuzz.toml", text) {
        Ok(rules) => {
            let summary = alertstream_rules::summary("fuzz.toml", &rules);
            assert!(summary.starts_with("fuzz.toml"), "{summary}");
        }
        Err(RulesError::Invalid { diagnostics, .. }) => {
            assert!(!diagnostics.is_empty());
            let lines = text.split('\n').count();
            for d in &diagnostics {
                assert!(d.line >= 1 && d.line <= lines && d.col >= 1, "{d:?} in {lines} lines");
                assert!(!d.message.is_empty());
            }
        }
        Err(error @ RulesError::Read { .. }) => panic!("parse reads no file: {error}"),
    }
});

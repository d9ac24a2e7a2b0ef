//! The `alertstream` binary's commands: `check` against golden diagnostics, and `serve` refusing a bad rules file.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_alertstream");
const RULES_DIR: &str = "tests/data/rules";

fn golden(path: &Path, extension: &str) -> String {
    fs::read_to_string(path.with_extension(extension)).unwrap_or_default()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn rule_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES_DIR);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_matches_the_golden_output_of_every_rules_file() {
    let files = rule_files();
    assert!(files.len() >= 7, "the golden files are there: {files:?}");
    for path in files {
        let shown = format!("{RULES_DIR}/{}", path.file_name().unwrap().to_str().unwrap());
        let output = run(&["check", &shown], &[]);
        let (stdout, stderr) = (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap());
        assert_eq!(stdout, golden(&path, "stdout"), "stdout of check {shown}");
        assert_eq!(stderr, golden(&path, "stderr"), "stderr of check {shown}");
        let expected_code = if golden(&path, "stderr").is_empty() { 0 } else { 1 };
        assert_eq!(output.status.code(), Some(expected_code), "exit code of check {shown}");
    }
}

#[test]
fn check_reports_an_unreadable_file() {
    let output = run(&["check", "tests/data/rules/missing.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("tests/data/rules/missing.toml: cannot read the rules file:"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_rules_file_with_every_error() {
    let bad = format!("{RULES_DIR}/conditions.toml");
    let output = run(&["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--rules", &bad], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = golden(&Path::new(env!("CARGO_MANIFEST_DIR")).join(&bad), "stderr");
    assert!(stderr.contains(&expected), "stderr has every error:\n{stderr}");
}

#[test]
fn flags_are_also_read_from_the_environment() {
    let bad = format!("{RULES_DIR}/names.toml");
    let output = run(
        &["serve"],
        &[("ALERTSTREAM_RULES", &bad), ("ALERTSTREAM_LISTEN", "127.0.0.1:0"), ("ALERTSTREAM_HTTP_LISTEN", "")],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("tests/data/rules/names.toml:6:8: duplicate rule name `hot`"), "{stderr}");

    let output = run(&["serve"], &[("ALERTSTREAM_SHUTDOWN_GRACE", "soon")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--shutdown-grace") && stderr.contains("`soon` is not a duration"), "{stderr}");
}

#[test]
fn every_example_rule_test_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut ran = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".test.toml") {
            continue;
        }
        let shown = format!("examples/{}", path.file_name().unwrap().to_str().unwrap());
        let output = run(&["test", &shown], &[]);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(0), "{shown}:\n{stdout}");
        assert!(stdout.trim_end().ends_with("passed, 0 failed"), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
        ran += 1;
    }
    assert!(ran >= 1, "examples/*.test.toml exist");
}

#[test]
fn a_failing_rule_test_prints_a_diff_and_exits_1() {
    let file = "tests/data/rule_tests/failing.test.toml";
    let output = run(&["test", file], &[]);
    assert_eq!(output.status.code(), Some(1));
    let expected =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rule_tests/failing.stdout"));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected.unwrap());
}

#[test]
fn a_cap_of_zero_or_beyond_a_semaphore_is_refused_at_startup() {
    for (flag, value) in [("--max-connections", "0"), ("--max-streams", "0"), ("--max-streams", "18446744073709551615")]
    {
        let output = run(&["serve", flag, value, "--listen", "127.0.0.1:0", "--http-listen", ""], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{flag}")) && stderr.contains("between 1 and"),
            "{stderr}"
        );
    }
}

#[test]
fn an_empty_variable_is_named_when_it_is_what_stops_the_server() {
    let output = run(&["serve", "--listen", "127.0.0.1:0", "--http-listen", ""], &[("ALERTSTREAM_RULES", "")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("note: ALERTSTREAM_RULES is set but empty: unset it, or give it a value"), "{stderr}");
}

#[test]
fn every_rules_file_of_the_readmes_sink_section_checks() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split("## Send alerts to").nth(1).unwrap().split("\n## ").next().unwrap();
    let blocks: Vec<&str> = section.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 4, "a snippet per sink");
    for block in blocks {
        let file = alertstream_rules::parse("README.md", block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_eq!(file.sinks.len(), 1, "{block}");
    }
}

#[test]
fn every_rules_example_in_the_rules_reference_checks() {
    let reference = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RULES.md")).unwrap();
    let blocks: Vec<&str> = reference
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .filter(|b| b.contains("[[rule]]"))
        .collect();
    assert!(blocks.len() >= 20, "the examples are there: {}", blocks.len());
    for block in blocks {
        alertstream_rules::parse("docs/RULES.md", block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
}

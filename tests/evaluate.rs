//! `AlertService.Evaluate` and `ListRules` through a real server.

mod common;

use alertstream::pb;
use common::{TestServer, reading};
use tonic::Code;

#[tokio::test]
async fn the_classic_example() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for (temperature, ph, status, rules) in [
        (8.0, 4.0, "temp too low", vec!["temp_too_low"]),
        (8.0, 6.0, "temp too low pH too high", vec!["temp_too_low", "ph_too_high"]),
        (12.0, 5.0, "all good", vec![]),
    ] {
        let evaluation = client
            .evaluate(reading("line-1", 7, &[("temperature", temperature), ("pH", ph)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(evaluation.status, status);
        let fired: Vec<&str> = evaluation.alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(fired, rules);
        for alert in &evaluation.alerts {
            assert_eq!(
                (alert.state, alert.reading_seq, alert.sensor_id.as_str()),
                (pb::AlertState::Firing as i32, 7, "line-1")
            );
        }
    }
}

#[tokio::test]
async fn a_reading_lacking_a_metric_skips_its_rule() {
    let server = TestServer::start().await;
    let evaluation = server.client().await.evaluate(reading("s", 0, &[("pH", 6.0)])).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "pH too high");
    // The answer says which rule it skipped, and why (field 3).
    assert_eq!(
        evaluation.skipped,
        [pb::Skipped { rule: "temp_too_low".into(), reason: "the reading has no `temperature`".into() }]
    );
}

#[tokio::test]
async fn invalid_readings_are_invalid_argument_naming_the_field() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for (sent, field) in [
        (reading("", 0, &[("temperature", 1.0)]), "sensor_id"),
        (reading("s", 0, &[]), "values"),
        (reading("s", 0, &[("pH", f64::NAN)]), "values[\"pH\"]"),
    ] {
        let status = client.evaluate(sent).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{:?} names {field}", status.message());
    }
}

#[tokio::test]
async fn list_rules_shows_each_live_rule_whole() {
    let server = TestServer::with_rules(
        r#"
[[rule]]
name = "hot"
condition = "avg(t, 30s) > 30"
resolve = "t < 28"
severity = "critical"
message = "too hot: {t}"
resolve_message = "cool again: {t}"
labels = { team = "ovens", room = "B2" }
notify = "every"
for = "1.5m"
keep_firing_for = "2 readings"
sensors = ["line-1/*"]

[[rule]]
name = "cold"
condition = "t < 0"

[[rule]]
name = "silent"
absent_for = "1m30s"
"#,
    )
    .await;
    let rules = server.client().await.list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules;
    assert_eq!(
        rules,
        [
            pb::Rule {
                name: "hot".into(),
                condition: "avg(t, 30s) > 30".into(),
                severity: pb::Severity::Critical as i32,
                message: "too hot: {t}".into(),
                notify: "every".into(),
                r#for: "1.5m".into(),
                resolve: "t < 28".into(),
                keep_firing_for: "2 readings".into(),
                absent_for: String::new(),
                sensors: vec!["line-1/*".into()],
                labels: [("team".into(), "ovens".into()), ("room".into(), "B2".into())].into(),
                resolve_message: "cool again: {t}".into(),
                sinks: Vec::new(),
            },
            pb::Rule {
                name: "cold".into(),
                condition: "t < 0".into(),
                severity: pb::Severity::Warning as i32,
                message: "cold".into(),
                resolve_message: "resolved: cold".into(),
                notify: "change".into(),
                ..Default::default()
            },
            pb::Rule {
                name: "silent".into(),
                severity: pb::Severity::Warning as i32,
                message: "silent".into(),
                resolve_message: "resolved: silent".into(),
                notify: "change".into(),
                absent_for: "1m30s".into(),
                ..Default::default()
            },
        ]
    );
}

#[tokio::test]
async fn list_rules_shows_the_default_rules_without_a_rules_file() {
    let server = TestServer::start().await;
    let rules = server.client().await.list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules;
    let shown: Vec<(&str, &str, &str)> =
        rules.iter().map(|r| (r.name.as_str(), r.condition.as_str(), r.message.as_str())).collect();
    assert_eq!(
        shown,
        [("temp_too_low", "temperature < 10", "temp too low"), ("ph_too_high", "pH > 5.5", "pH too high")]
    );
}

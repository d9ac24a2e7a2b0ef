//! Hot reload against the real binary: a file change and SIGHUP reload the rules without dropping a stream; a bad
//! file is rejected with `file:line:col` in the log and the old rules stay live.

mod common;

use std::{path::Path, time::Duration};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use common::{binary::Binary, brief, next_alert, open_stream, reading};

/// Replaces `path` the way editors and Kubernetes do: write a sibling, then rename it over.
fn replace(path: &Path, text: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

async fn rule_names(channel: tonic::transport::Channel) -> Vec<String> {
    let rules = AlertServiceClient::new(channel).list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules;
    rules.into_iter().map(|r| r.name).collect()
}

/// Waits until the server has logged more than `before` reloads. A real process's log: polled, bounded, no span
/// asserted.
async fn wait_for_reload(server: &Binary, before: usize) {
    for _ in 0..400 {
        if server.count_log("Reloaded rules.") > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reload logged");
}

#[tokio::test]
async fn file_changes_and_sighup_reload_without_dropping_streams_and_bad_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n").unwrap();
    let server = Binary::start(&["--rules", path.to_str().unwrap()]);
    let channel = server.channel().await;
    let (tx, mut alerts) = open_stream(channel.clone()).await;
    tx.send(reading("a", 1, &[("t", 35.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 1 hot FIRING");

    // A bad file: rejected, with its errors in the log; the old rules stay live.
    replace(&path, "[[rule]]\nname = \"hot\"\ncondition = \"t >> 30\"\n");
    let rejected = server.wait_for_log("Rejected the rules file").await;
    assert!(
        rejected.contains("rules.toml:3:17: in condition: expected a number, a metric or `(`, found `>`"),
        "{rejected}"
    );
    tx.send(reading("a", 2, &[("t", 20.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 2 hot RESOLVED");
    assert_eq!(rule_names(channel.clone()).await, ["hot"]);

    // A good file: the stream moves to it between readings; `hot` is unchanged, so keeps its state.
    replace(
        &path,
        "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n\n[[rule]]\nname = \"cold\"\ncondition = \"t < 0\"\n",
    );
    server.wait_for_log("Reloaded rules.").await;
    assert_eq!(rule_names(channel.clone()).await, ["hot", "cold"]);
    tx.send(reading("a", 3, &[("t", -1.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 3 cold FIRING");

    // SIGHUP reloads the file as it is now: `cold` is gone, and it was firing, so it resolves first.
    std::fs::write(&path, "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n").unwrap();
    let reloads = server.count_log("Reloaded rules.");
    server.signal("HUP");
    wait_for_reload(&server, reloads).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 3 cold RESOLVED");
    assert_eq!(rule_names(channel.clone()).await, ["hot"]);
    tx.send(reading("a", 4, &[("t", 31.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 4 hot FIRING");

    // A change of words only (severity, messages, labels) keeps `hot` firing: no RESOLVED and second FIRING, which
    // would page twice; its next alert speaks the new words.
    let reloads = server.count_log("Reloaded rules.");
    replace(
        &path,
        "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\nseverity = \"critical\"\nmessage = \"hot: {t}\"\n\
         resolve_message = \"cool again: {t}\"\nlabels = { team = \"ovens\" }\n",
    );
    wait_for_reload(&server, reloads).await;
    tx.send(reading("a", 5, &[("t", 32.0)])).await.unwrap();
    tx.send(reading("a", 6, &[("t", 20.0)])).await.unwrap();
    let resolved = next_alert(&mut alerts).await;
    assert_eq!(brief(&resolved), "a 6 hot RESOLVED");
    assert_eq!((resolved.message.as_str(), resolved.severity), ("cool again: 20", pb::Severity::Critical as i32));
}

#[tokio::test]
async fn sighup_without_a_rules_file_says_there_is_nothing_to_reload() {
    let server = Binary::start(&[]);
    server.signal("HUP");
    server.wait_for_log("nothing to reload").await;
    assert_eq!(rule_names(server.channel().await).await, ["temp_too_low", "ph_too_high"]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_symlink_swap_reloads_the_rules() {
    use std::os::unix::fs::symlink;
    // As a ConfigMap volume: rules.toml -> ..data/rules.toml, ..data -> ..v1; an update writes ..v2, points a new
    // symlink at it and renames that over ..data. No event names rules.toml.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..v1")).unwrap();
    std::fs::write(root.join("..v1/rules.toml"), "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n").unwrap();
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/rules.toml", root.join("rules.toml")).unwrap();
    let server = Binary::start(&["--rules", root.join("rules.toml").to_str().unwrap()]);
    assert_eq!(rule_names(server.channel().await).await, ["hot"]);

    std::fs::create_dir(root.join("..v2")).unwrap();
    std::fs::write(root.join("..v2/rules.toml"), "[[rule]]\nname = \"cold\"\ncondition = \"t < 0\"\n").unwrap();
    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    server.wait_for_log("Reloaded rules.").await;
    assert_eq!(rule_names(server.channel().await).await, ["cold"]);
    // A change elsewhere in the directory that leaves the file as it was reloads nothing: the reloader says so.
    std::fs::write(root.join("unrelated.txt"), "x").unwrap();
    server.wait_for_log("nothing to reload").await;
    assert_eq!(server.count_log("Reloaded rules."), 1);
}

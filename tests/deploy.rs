//! The deployment files under `deploy/` checked where a checker runs here: the Kubernetes manifest parses (PyYAML
//! in the test venv), every flag it passes is one `alertstream serve` takes, its rules load, and its probes and
//! ports name what the server serves. (nginx's file is run for real by `load_balancing.rs`.)

use std::{collections::BTreeSet, path::Path, process::Command};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The manifest's documents as JSON, parsed by PyYAML.
fn manifest() -> Vec<Value> {
    let python = repo().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup-venv.sh (the test command runs it)", python.display());
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(repo().join("deploy/kubernetes/alertstream.yaml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "the manifest does not parse: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The long flags `alertstream serve --help` lists.
fn serve_flags() -> BTreeSet<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_alertstream")).args(["serve", "--help"]).output().unwrap();
    String::from_utf8(help.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|word| word.starts_with("--"))
        .map(|word| word.trim_end_matches(',').to_owned())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

#[test]
fn the_kubernetes_manifest_parses_passes_real_flags_and_loads_its_rules() {
    let documents = manifest();
    let kinds: BTreeSet<&str> = documents.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "Deployment", "Service"]));

    // Every flag the container passes is one the server takes.
    let deployment = of_kind(&documents, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(args[0], "serve");
    let known = serve_flags();
    assert!(known.contains("--max-connection-age"), "the help lists the flags: {known:?}");
    let flag = |arg: &str| arg.split('=').next().unwrap().to_owned();
    for arg in &args[1..] {
        assert!(known.contains(&flag(arg)), "`{arg}` is not a flag of `alertstream serve`");
    }
    let value = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("the manifest passes no {name}"))
    };

    // The rules it mounts from the ConfigMap load, at the path the flag names.
    let rules_path = value("--rules");
    let config_map = of_kind(&documents, "ConfigMap");
    let mounts = container["volumeMounts"].as_array().unwrap();
    let rules_mount = mounts.iter().find(|m| m["name"] == "rules").unwrap()["mountPath"].as_str().unwrap();
    let (dir, file) = rules_path.rsplit_once('/').unwrap();
    assert_eq!(dir, rules_mount);
    let text = config_map["data"][file].as_str().unwrap_or_else(|| panic!("the ConfigMap has no {file}"));
    let loaded = alertstream_rules::parse(file, text).unwrap_or_else(|e| panic!("the ConfigMap's rules: {e}"));
    assert_eq!(loaded.rules.rules().len(), 2);

    // The ports are those the listen flags name, the probes ask the open health route on the HTTP one, and the
    // Service forwards to them by name.
    let ports: Vec<(String, u64)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["containerPort"].as_u64().unwrap()))
        .collect();
    for (name, flag) in [("grpc", "--listen"), ("http", "--http-listen"), ("metrics", "--metrics-listen")] {
        let port: u64 = value(flag).rsplit_once(':').unwrap().1.parse().unwrap();
        assert!(ports.contains(&(name.to_owned(), port)), "{flag} listens on {port}, the `{name}` port: {ports:?}");
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!((get["path"].as_str(), get["port"].as_str()), (Some("/healthz"), Some("http")), "{probe}");
        // TLS is on (--tls-cert), so the probe speaks HTTPS.
        assert_eq!(get["scheme"], "HTTPS", "{probe}");
    }
    let service = of_kind(&documents, "Service");
    for port in service["spec"]["ports"].as_array().unwrap() {
        let target = port["targetPort"].as_str().unwrap();
        assert!(ports.iter().any(|(name, _)| name == target), "the Service targets a port the pod has: {target}");
    }
    assert_eq!(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]);
}

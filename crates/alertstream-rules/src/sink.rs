//! The `[[sink]]` tables of a rules file: where alerts go besides the stream that caused them. Each table becomes a
//! [`SinkSpec`]; every error points at the key or value it is about. A value written `env:NAME` or `file:PATH` is a
//! secret read from there as the file loads ([`Secret`]), never written back out.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use alertstream_engine::parse_duration;
use toml::de::{DeTable, DeValue};

use crate::file::FileParser;

/// A sink's queue bound when the file gives none.
pub const DEFAULT_QUEUE: usize = 10_000;
/// How often Alertmanager hears of a firing alert again when the file gives no `resend_interval`.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// The largest a JSON-lines file grows before the next one starts, when the file gives no `max_file_bytes`.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The longest a JSON-lines file stays open before it is completed, when the file gives no `max_file_age`.
pub const DEFAULT_MAX_FILE_AGE: Duration = Duration::from_secs(60);
/// The subject a NATS sink publishes under (then `.` and the rule) when the file gives no `subject`.
pub const DEFAULT_SUBJECT: &str = "alertstream.alerts";

/// The keys every `[[sink]]` table may have, then those of each type.
const COMMON_KEYS: [&str; 4] = ["name", "type", "queue", "events"];
const TYPES: [(&str, &[&str]); 4] = [
    ("alertmanager", &["url", "resend_interval"]),
    ("nats", &["url", "subject", "stream"]),
    ("jsonl", &["dir", "max_file_bytes", "max_file_age"]),
    ("webhook", &["url", "headers"]),
];

/// A sink as the rules file configures it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    /// Unique among the file's sinks; rules name it in `sinks`, metrics and logs carry it.
    pub name: String,
    /// What it sends to, and how.
    pub kind: SinkKind,
    /// Alerts it holds while its counterpart is slow or away; beyond that, new ones are dropped and counted.
    pub queue: usize,
    /// Whether events (`invalid_reading`, `sensor_limit`, …) go to it too, not only FIRING and RESOLVED.
    pub events: bool,
}

/// The type of a sink, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// Prometheus Alertmanager's v2 API at `url`.
    Alertmanager {
        /// Alertmanager's base URL (`http://host:9093`).
        url: Secret,
        /// How often a firing alert is sent again.
        resend_interval: Duration,
    },
    /// NATS JetStream at `url`.
    Nats {
        /// `nats://host:port`, or a cluster's nodes separated by commas (`nats://a:4222,nats://b:4222`).
        url: Secret,
        /// Published under this subject, then `.` and the rule.
        subject: String,
        /// The JetStream stream to create over the subjects if missing; `None`: one must exist.
        stream: Option<String>,
    },
    /// JSON-lines files in `dir`.
    Jsonl {
        /// Where completed files appear.
        dir: PathBuf,
        /// A file is completed once it holds this many bytes.
        max_file_bytes: u64,
        /// A file is completed once it has been open this long.
        max_file_age: Duration,
    },
    /// An HTTP POST of each batch to `url`.
    Webhook {
        /// Where to POST.
        url: Secret,
        /// Sent with every request (`Authorization`, say).
        headers: Vec<(String, Secret)>,
    },
}

impl SinkKind {
    /// The type's name, as the file writes it.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Alertmanager { .. } => "alertmanager",
            SinkKind::Nats { .. } => "nats",
            SinkKind::Jsonl { .. } => "jsonl",
            SinkKind::Webhook { .. } => "webhook",
        }
    }
}

/// A value that may be secret (a URL with credentials, a header with a token): written in the file as itself, or
/// as `env:NAME` or `file:PATH` and read from there as the file loads. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The most of a `file:PATH` secret that is read: a token or a URL, not a file of any size.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a value written as itself, `env:NAME` or `file:PATH` (the file's content, without its final newline).
fn resolve(written: &str) -> Result<Secret, String> {
    if let Some(name) = written.strip_prefix("env:") {
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Secret(value)),
            Ok(_) => Err(format!("the environment variable `{name}` is empty")),
            Err(_) => Err(format!("the environment variable `{name}` is not set")),
        };
    }
    if let Some(path) = written.strip_prefix("file:") {
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|file| {
            std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_SECRET_BYTES + 1), &mut text)
        });
        return match read {
            Ok(n) if n as u64 > MAX_SECRET_BYTES => Err(format!("`{path}` is over {MAX_SECRET_BYTES} bytes")),
            Ok(_) => Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) => Err(format!("cannot read `{path}`: {e}")),
        };
    }
    Ok(Secret(written.to_owned()))
}

impl FileParser<'_> {
    /// Reads every `[[sink]]` table; a table with errors is left out (its errors recorded).
    pub(crate) fn sinks(&mut self, tables: &[(usize, &DeTable<'_>)]) -> Vec<SinkSpec> {
        // Names first, from every table, good or not: a duplicate is one whatever else is wrong.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for (index, (_, table)) in tables.iter().enumerate() {
            if let Some(name) = table.get("name")
                && let DeValue::String(text) = name.get_ref()
                && names.insert(text.to_string(), index).is_some()
            {
                self.error(name.span().start, format!("duplicate sink name `{text}`"));
                duplicates.push(index);
            }
        }
        let mut sinks = Vec::new();
        for (index, &(start, table)) in tables.iter().enumerate() {
            if let Some(sink) = self.sink(start, table)
                && !duplicates.contains(&index)
            {
                sinks.push(sink);
            }
        }
        sinks
    }

    fn sink(&mut self, start: usize, table: &DeTable<'_>) -> Option<SinkSpec> {
        let name = self.string(table, "name", start, Some("sink"));
        let kind = self.string(table, "type", start, Some("sink"));
        let allowed = kind.as_ref().and_then(|k| TYPES.iter().find(|(t, _)| *t == k.get_ref().as_str()));
        if let (Some(kind), None) = (&kind, allowed) {
            let types: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
            self.error(kind.span().start, format!("unknown sink type `{}`: use {}", kind.get_ref(), types.join(", ")));
        }
        for (key, _) in table {
            let key_name: &str = key.get_ref();
            if COMMON_KEYS.contains(&key_name) {
                continue;
            }
            match allowed {
                Some((type_name, keys)) if !keys.contains(&key_name) => {
                    let known = TYPES.iter().any(|(_, keys)| keys.contains(&key_name));
                    let what = if known { "is not a key of" } else { "is no key of any sink, nor of" };
                    self.error(
                        key.span().start,
                        format!("`{key_name}` {what} a {type_name} sink; it takes {}", keys.join(", ")),
                    );
                }
                None if !TYPES.iter().any(|(_, keys)| keys.contains(&key_name)) => {
                    self.error(key.span().start, format!("unknown key `{key_name}` in sink"));
                }
                _ => {}
            }
        }
        let queue = self.count(table, "queue").unwrap_or(DEFAULT_QUEUE as u64);
        let events = self.boolean(table, "events").unwrap_or(false);
        let (name, (type_name, _)) = (name?, allowed?);
        // Every key is read before any is given up on, so that each error is reported.
        let kind = match *type_name {
            "alertmanager" => {
                let url = self.url(table, start, &["http://", "https://"], false);
                let resend_interval = self.duration(table, "resend_interval").unwrap_or(DEFAULT_RESEND_INTERVAL);
                SinkKind::Alertmanager { url: url?, resend_interval }
            }
            "nats" => {
                // A cluster's nodes may be listed: the client connects to any of them.
                let url = self.url(table, start, &["nats://"], true);
                let subject = self.subject(table);
                let stream = self.string(table, "stream", start, None).map(|s| s.into_inner());
                SinkKind::Nats { url: url?, subject: subject?, stream }
            }
            "jsonl" => {
                let dir = self.string(table, "dir", start, Some("sink"));
                let max_file_bytes = self.count(table, "max_file_bytes").unwrap_or(DEFAULT_MAX_FILE_BYTES);
                let max_file_age = self.duration(table, "max_file_age").unwrap_or(DEFAULT_MAX_FILE_AGE);
                SinkKind::Jsonl { dir: PathBuf::from(dir?.into_inner()), max_file_bytes, max_file_age }
            }
            _ => {
                let url = self.url(table, start, &["http://", "https://"], false);
                let headers = self.headers(table);
                SinkKind::Webhook { url: url?, headers: headers? }
            }
        };
        let queue = usize::try_from(queue).unwrap_or(usize::MAX);
        Some(SinkSpec { name: name.into_inner(), kind, queue, events })
    }

    /// `url`: required, a secret, starting with one of `schemes`; with `several`, a comma-separated list of such URLs
    /// (a cluster's nodes).
    fn url(&mut self, table: &DeTable<'_>, start: usize, schemes: &[&str], several: bool) -> Option<Secret> {
        let written = self.string(table, "url", start, Some("sink"))?;
        let url = self.secret(written.get_ref(), written.span().start)?;
        let starts_well = |one: &str| schemes.iter().any(|s| one.starts_with(s));
        let good = match several {
            true => url.expose().split(',').all(|one| starts_well(one.trim())),
            false => starts_well(url.expose()),
        };
        if !good {
            // The value is not shown: it may be a secret read from elsewhere.
            let what = if several { "each of `url`'s comma-separated URLs" } else { "`url`" };
            self.error(written.span().start, format!("{what} must start with {}", schemes.join(" or ")));
            return None;
        }
        Some(url)
    }

    fn secret(&mut self, written: &str, at: usize) -> Option<Secret> {
        match resolve(written) {
            Ok(secret) => Some(secret),
            Err(message) => {
                self.error(at, message);
                None
            }
        }
    }

    /// `headers`: a table of strings, each value possibly a secret.
    fn headers(&mut self, table: &DeTable<'_>) -> Option<Vec<(String, Secret)>> {
        let Some(value) = table.get("headers") else { return Some(Vec::new()) };
        let DeValue::Table(entries) = value.get_ref() else {
            self.error(
                value.span().start,
                "`headers` must be a table of strings, as { Authorization = \"env:TOKEN\" }",
            );
            return None;
        };
        let mut headers = Vec::new();
        let mut good = true;
        for (name, value) in entries {
            let name_text: &str = name.get_ref();
            let valid_name = !name_text.is_empty()
                && name_text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name {
                self.error(name.span().start, format!("`{name_text}` is not an HTTP header name"));
                good = false;
                continue;
            }
            match value.get_ref() {
                DeValue::String(text) => match self.secret(text, value.span().start) {
                    Some(secret) => headers.push((name_text.to_owned(), secret)),
                    None => good = false,
                },
                other => {
                    self.error(
                        value.span().start,
                        format!("header `{name_text}` must be a string, found {}", other.type_str()),
                    );
                    good = false;
                }
            }
        }
        good.then_some(headers)
    }

    /// `subject`: dot-separated tokens of `[A-Za-z0-9_-]`.
    fn subject(&mut self, table: &DeTable<'_>) -> Option<String> {
        let Some(written) = self.string(table, "subject", 0, None) else { return Some(DEFAULT_SUBJECT.to_owned()) };
        let good = written
            .get_ref()
            .split('.')
            .all(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)));
        if !good {
            self.error(
                written.span().start,
                "`subject` must be tokens of letters, digits, `_` and `-` joined by `.`, as alertstream.alerts",
            );
            return None;
        }
        Some(written.into_inner())
    }

    fn duration(&mut self, table: &DeTable<'_>, key: &str) -> Option<Duration> {
        self.parsed(table, key, |s| match parse_duration(s) {
            Ok(d) if d.is_zero() => Err(format!("`{key}` must be more than 0")),
            Ok(d) => Ok(d),
            Err(e) => Err(format!("bad `{key}`: {e}")),
        })
    }

    /// A whole number of at least 1.
    fn count(&mut self, table: &DeTable<'_>, key: &str) -> Option<u64> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    self.error(value.span().start, format!("`{key}` must be a whole number of at least 1"));
                    None
                }
            },
            other => {
                self.error(value.span().start, format!("`{key}` must be a whole number, found {}", other.type_str()));
                None
            }
        }
    }

    fn boolean(&mut self, table: &DeTable<'_>, key: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(value.span().start, format!("`{key}` must be true or false, found {}", other.type_str()));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RulesError, parse};

    const RULE: &str = "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n";

    fn sinks(text: &str) -> Vec<SinkSpec> {
        parse("r.toml", &format!("{RULE}{text}")).unwrap_or_else(|e| panic!("{e}")).sinks
    }

    fn errors(text: &str) -> Vec<String> {
        match parse("r.toml", text) {
            Err(RulesError::Invalid { diagnostics, .. }) => diagnostics.iter().map(|d| format!("{d}")).collect(),
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn every_sink_key_is_read_with_its_defaults() {
        let read = sinks(
            "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/alerts\"\n\
             headers = { Authorization = \"Bearer x\" }\nqueue = 5\nevents = true\n\n\
             [[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"/tmp/alerts\"\n\n\
             [[sink]]\nname = \"pager\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\nresend_interval = \"30s\"\n\n\
             [[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"ALERTS\"\n",
        );
        assert_eq!(
            read,
            [
                SinkSpec {
                    name: "hook".into(),
                    kind: SinkKind::Webhook {
                        url: Secret("http://127.0.0.1:9/alerts".into()),
                        headers: vec![("Authorization".into(), Secret("Bearer x".into()))],
                    },
                    queue: 5,
                    events: true,
                },
                SinkSpec {
                    name: "lake".into(),
                    kind: SinkKind::Jsonl {
                        dir: "/tmp/alerts".into(),
                        max_file_bytes: DEFAULT_MAX_FILE_BYTES,
                        max_file_age: DEFAULT_MAX_FILE_AGE,
                    },
                    queue: DEFAULT_QUEUE,
                    events: false,
                },
                SinkSpec {
                    name: "pager".into(),
                    kind: SinkKind::Alertmanager {
                        url: Secret("http://127.0.0.1:9093".into()),
                        resend_interval: Duration::from_secs(30),
                    },
                    queue: DEFAULT_QUEUE,
                    events: false,
                },
                SinkSpec {
                    name: "bus".into(),
                    kind: SinkKind::Nats {
                        url: Secret("nats://127.0.0.1:4222".into()),
                        subject: DEFAULT_SUBJECT.into(),
                        stream: Some("ALERTS".into()),
                    },
                    queue: DEFAULT_QUEUE,
                    events: false,
                },
            ]
        );
        assert_eq!(format!("{:?}", read[0].kind).matches("Bearer").count(), 0, "a secret never shows");
    }

    #[test]
    fn secrets_come_from_files_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("alertstream-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        // The test process's own environment: PATH is always set.
        let path = std::env::var("PATH").unwrap();
        let read = sinks(&format!(
            "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n\
             headers = {{ Authorization = \"file:{}\", X-Path = \"env:PATH\" }}\n",
            token.display()
        ));
        let SinkKind::Webhook { headers, .. } = &read[0].kind else { panic!("{read:?}") };
        assert_eq!(headers[0].1.expose(), "s3cret");
        assert_eq!(headers[1].1.expose(), path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sink_errors_point_into_the_file() {
        let text = format!(
            "{RULE}sinks = [\"hook\", \"nope\"]\n\n\
             [[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"ftp://x\"\ndir = \"/tmp\"\n\n\
             [[sink]]\nname = \"hook\"\ntype = \"jsonl\"\ndir = \"/tmp\"\nqueue = 0\n\n\
             [[sink]]\nname = \"x\"\ntype = \"kafka\"\n\n\
             [[sink]]\nname = \"y\"\ntype = \"webhook\"\nurl = \"env:ALERTSTREAM_SURELY_UNSET_4242\"\nheaders = {{ \"a b\" = \"1\" }}\n"
        );
        assert_eq!(
            errors(&text),
            [
                "4:18: unknown sink `nope`: the file's sinks are hook, x, y",
                "9:7: `url` must start with http:// or https://",
                "10:1: `dir` is not a key of a webhook sink; it takes url, headers",
                "13:8: duplicate sink name `hook`",
                "16:9: `queue` must be a whole number of at least 1",
                "20:8: unknown sink type `kafka`: use alertmanager, nats, jsonl, webhook",
                "25:7: the environment variable `ALERTSTREAM_SURELY_UNSET_4242` is not set",
                "26:13: `a b` is not an HTTP header name",
            ]
        );
    }

    #[test]
    fn a_nats_url_may_list_a_clusters_nodes_each_a_nats_url() {
        let read =
            sinks("[[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"nats://10.0.0.1:4222, nats://10.0.0.2:4222\"\n");
        let SinkKind::Nats { url, .. } = &read[0].kind else { panic!("{read:?}") };
        assert_eq!(url.expose(), "nats://10.0.0.1:4222, nats://10.0.0.2:4222");
        let bad = |url: &str| errors(&format!("{RULE}[[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"{url}\"\n"));
        let message = "7:7: each of `url`'s comma-separated URLs must start with nats://";
        assert_eq!(bad("nats://10.0.0.1:4222,http://10.0.0.2:4222"), [message]);
        assert_eq!(bad("nats://10.0.0.1:4222,"), [message], "an empty one too");
        assert_eq!(bad("10.0.0.1:4222"), [message]);
    }

    #[test]
    fn a_file_with_sinks_but_no_rules_has_no_rules() {
        assert_eq!(
            errors("[[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"/tmp\"\n"),
            ["1:1: no rules: a rules file needs at least one [[rule]] table"]
        );
    }
}

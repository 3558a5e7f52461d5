//! What alerting is configured with: the `[alerting]` section of `vigil.toml`, and the rules
//! file it names (rules, receivers, inhibition rules), reloaded on change and on SIGHUP.
//!
//! ```toml
//! [[receivers]]
//! name = "oncall"
//! url = "https://oncall.example.com/hooks/vigil"
//! secret_env = "VIGIL_ONCALL_WEBHOOK_SECRET"   # or secret = "whsec_…"
//! group_by = ["alertname", "agent"]
//!
//! [[rules]]
//! name = "run-p99-over-sla"
//! metric = "run_latency_p99_ms"
//! group_by = ["agent"]
//! window = "5m"
//! op = ">"
//! threshold = 30000
//! for = "5m"
//! receivers = ["oncall"]
//!
//! [[inhibit_rules]]
//! source_matchers = [{ name = "severity", value = "page" }]
//! target_matchers = [{ name = "severity", value = "ticket" }]
//! equal = ["agent"]
//! ```

use std::{collections::BTreeSet, path::Path, sync::Arc};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vigil_schemas::time::ConfigDuration;

use crate::{
    labels::{Labels, Matcher, MatcherSpec, all_match, matchers},
    rule::{Rule, RuleError, RuleSpec, check_name, duration},
};

/// `[alerting]` in `vigil.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSettings {
    pub enabled: bool,
    /// Rules, receivers and inhibition rules (TOML); none when unset.
    pub rules_file: Option<std::path::PathBuf>,
    /// Evaluation interval of rules that name none.
    pub evaluation_interval: ConfigDuration,
    /// How often the rules file is checked for changes.
    pub reload_check_interval: ConfigDuration,
    /// Vigil's address as on-call reaches it: `externalURL` and the alerts' `generatorURL`.
    pub external_url: String,
    /// Evaluations (metric queries) run at once; a slow one holds only its own slot.
    pub max_concurrent_evaluations: usize,
    /// Alerting on many nodes (ClickHouse store): the lease that makes one of them evaluate
    /// and notify at a time. Unset: this node evaluates whenever it runs alerting.
    pub lease: Option<LeaseConfig>,
}

/// `[alerting.lease]`: where the alerting lease is held.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// ZooKeeper (or ClickHouse Keeper): `host:port[,host:port…]`, the servers ClickHouse's own
    /// `<zookeeper>` section lists.
    pub zookeeper: String,
    /// How long a holder that stopped answering keeps the lease: a standby takes over about
    /// this long after the holder's death. At most the evaluation interval, so that it takes
    /// over within two intervals.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: ConfigDuration,
    /// The lease's znode (default `/vigil/<database>/alerting`).
    #[serde(default)]
    pub path: Option<String>,
}

fn default_session_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            enabled: true,
            rules_file: None,
            evaluation_interval: ConfigDuration::from_secs(60),
            reload_check_interval: ConfigDuration::from_secs(5),
            external_url: "http://localhost:4318".into(),
            max_concurrent_evaluations: 4,
            lease: None,
        }
    }
}

/// The rules file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesFile {
    pub rules: Vec<RuleSpec>,
    pub receivers: Vec<ReceiverSpec>,
    pub inhibit_rules: Vec<InhibitSpec>,
}

/// A webhook receiver as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSpec {
    pub name: String,
    pub url: String,
    /// Standard Webhooks signing secret: `whsec_<base64>`, or any other text used as the key.
    #[serde(default)]
    pub secret: Option<String>,
    /// The environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Per request.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// At most this many alerts per notification (0: all); the rest are counted in
    /// `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
    /// Alerts with the same values of these labels go out in one notification.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    #[serde(default = "default_group_wait")]
    pub group_wait: String,
    /// How long a group waits before notifying about changes.
    #[serde(default = "default_group_interval")]
    pub group_interval: String,
    /// How long before an unchanged firing group is notified again.
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: String,
    /// Back-off of the first retry; doubled on each retry (with jitter), up to 1 minute.
    #[serde(default = "default_retry_initial")]
    pub retry_initial: String,
    /// How long one notification is retried before it waits for the group's next turn.
    #[serde(default = "default_retry_for")]
    pub retry_for: String,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_group_by() -> Vec<String> {
    vec!["alertname".into()]
}
fn default_group_wait() -> String {
    "30s".into()
}
fn default_group_interval() -> String {
    "5m".into()
}
fn default_repeat_interval() -> String {
    "4h".into()
}
fn default_retry_initial() -> String {
    "1s".into()
}
fn default_retry_for() -> String {
    "10m".into()
}

/// A checked receiver, its secret resolved.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub url: reqwest::Url,
    pub key: Vec<u8>,
    pub send_resolved: bool,
    pub timeout: std::time::Duration,
    pub max_alerts: usize,
    pub group_by: Vec<String>,
    pub group_wait_ns: i64,
    pub group_interval_ns: i64,
    pub repeat_interval_ns: i64,
    pub retry_initial: std::time::Duration,
    pub retry_for: std::time::Duration,
}

impl Receiver {
    /// The labels that make this receiver's group of an alert (`...` groups by all labels).
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by.iter().any(|l| l == "...") {
            return labels.clone();
        }
        self.group_by
            .iter()
            .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }
}

/// Inhibition as written: while an alert matching `source_matchers` fires, alerts matching
/// `target_matchers` with the same values of the `equal` labels are muted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitSpec {
    pub source_matchers: Vec<MatcherSpec>,
    pub target_matchers: Vec<MatcherSpec>,
    #[serde(default)]
    pub equal: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl InhibitRule {
    /// Whether `target` is muted by one of the `firing` alerts (an alert never mutes itself).
    pub fn inhibits<'a>(&self, target: &Labels, firing: impl Iterator<Item = &'a Labels>) -> bool {
        all_match(&self.target, target)
            && firing.into_iter().any(|source| {
                source != target
                    && all_match(&self.source, source)
                    && self.equal.iter().all(|l| {
                        source.get(l).map_or("", String::as_str)
                            == target.get(l).map_or("", String::as_str)
                    })
            })
    }
}

/// A problem with the rules file: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("receiver {receiver:?}: {field}: {message}")]
    Receiver {
        receiver: String,
        field: &'static str,
        message: String,
    },
    #[error("inhibit_rules[{index}]: {message}")]
    Inhibit { index: usize, message: String },
}

/// The rules file, checked.
#[derive(Debug, Clone, Default)]
pub struct LoadedFile {
    pub rules: Vec<Arc<Rule>>,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
}

impl LoadedFile {
    pub fn receiver_names(&self) -> BTreeSet<String> {
        self.receivers.iter().map(|r| r.name.clone()).collect()
    }
}

/// Reads and checks the rules file; `env` resolves `secret_env`.
pub fn load_file(
    path: &Path,
    default_interval_ns: i64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedFile, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let file: RulesFile = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    check_file(file, default_interval_ns, env)
}

/// Checks a parsed rules file.
pub fn check_file(
    file: RulesFile,
    default_interval_ns: i64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedFile, ConfigError> {
    let receivers = file
        .receivers
        .into_iter()
        .map(|spec| receiver(spec, env))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for r in &receivers {
        if !names.insert(r.name.clone()) {
            return Err(ConfigError::Receiver {
                receiver: r.name.clone(),
                field: "name",
                message: "defined twice".into(),
            });
        }
    }
    let mut rule_names = BTreeSet::new();
    let mut rules = Vec::new();
    for spec in file.rules {
        let rule = Rule::new(spec, default_interval_ns)?;
        check_receivers(&rule, &names)?;
        if !rule_names.insert((rule.project().to_string(), rule.name().to_string())) {
            return Err(RuleError {
                rule: rule.name().into(),
                field: "name".into(),
                message: "defined twice in this project".into(),
            }
            .into());
        }
        rules.push(Arc::new(rule));
    }
    let inhibit_rules = file
        .inhibit_rules
        .into_iter()
        .enumerate()
        .map(|(index, spec)| {
            let fail = |message: String| ConfigError::Inhibit { index, message };
            if spec.target_matchers.is_empty() || spec.source_matchers.is_empty() {
                return Err(fail(
                    "source_matchers and target_matchers must not be empty".into(),
                ));
            }
            Ok(InhibitRule {
                source: matchers(&spec.source_matchers).map_err(fail)?,
                target: matchers(&spec.target_matchers).map_err(fail)?,
                equal: spec.equal,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoadedFile {
        rules,
        receivers,
        inhibit_rules,
    })
}

/// A rule may name only receivers that exist.
pub fn check_receivers(rule: &Rule, receivers: &BTreeSet<String>) -> Result<(), RuleError> {
    match rule.spec.receivers.iter().find(|r| !receivers.contains(*r)) {
        Some(unknown) => Err(RuleError {
            rule: rule.name().into(),
            field: "receivers".into(),
            message: format!(
                "no receiver named {unknown:?} (defined: {})",
                receivers.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }),
        None => Ok(()),
    }
}

fn receiver(
    spec: ReceiverSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Receiver, ConfigError> {
    let fail = |field: &'static str, message: String| ConfigError::Receiver {
        receiver: spec.name.clone(),
        field,
        message,
    };
    check_name(&spec.name).map_err(|m| fail("name", m))?;
    let url = reqwest::Url::parse(&spec.url).map_err(|e| fail("url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("url", "must be http or https".into()));
    }
    let secret = match (&spec.secret, &spec.secret_env) {
        (Some(secret), None) => secret.clone(),
        (None, Some(var)) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            fail(
                "secret_env",
                format!("the environment variable {var} is not set"),
            )
        })?,
        _ => {
            return Err(fail(
                "secret",
                "set exactly one of secret and secret_env: every webhook is signed".into(),
            ));
        }
    };
    let key = signing_key(&secret).map_err(|m| fail("secret", m))?;
    let d = |field: &'static str, text: &str| duration(text).map_err(|m| fail(field, m));
    let timeout_ns = d("timeout", &spec.timeout)?;
    if timeout_ns <= 0 {
        return Err(fail("timeout", "must be above 0".into()));
    }
    let group_interval_ns = d("group_interval", &spec.group_interval)?;
    let repeat_interval_ns = d("repeat_interval", &spec.repeat_interval)?;
    if group_interval_ns <= 0 || repeat_interval_ns <= 0 {
        return Err(fail(
            "group_interval",
            "group_interval and repeat_interval must be above 0".into(),
        ));
    }
    let ns = |n: i64| std::time::Duration::from_nanos(n as u64);
    Ok(Receiver {
        url,
        key,
        send_resolved: spec.send_resolved,
        timeout: ns(timeout_ns),
        max_alerts: spec.max_alerts,
        group_by: spec.group_by,
        group_wait_ns: d("group_wait", &spec.group_wait)?,
        group_interval_ns,
        repeat_interval_ns,
        retry_initial: ns(d("retry_initial", &spec.retry_initial)?.max(1_000_000)),
        retry_for: ns(d("retry_for", &spec.retry_for)?),
        name: spec.name,
    })
}

/// Standard Webhooks secrets are `whsec_` and base64; any other secret is used as it is.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("whsec_ secret is not base64: {e}"))?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 {
        return Err("the signing key must be at least 16 bytes".into());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_rules_file_is_checked_whole() {
        let file: RulesFile = toml::from_str(
            r#"
            [[receivers]]
            name = "oncall"
            url = "http://127.0.0.1:9/hook"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            [[rules]]
            name = "errors"
            metric = "failed_runs"
            window = "5m"
            op = ">"
            threshold = 3
            receivers = ["oncall"]
            [[inhibit_rules]]
            source_matchers = [{ name = "severity", value = "page" }]
            target_matchers = [{ name = "severity", value = "ticket" }]
            equal = ["agent"]
            "#,
        )
        .unwrap();
        let loaded = check_file(file.clone(), 60_000_000_000, &no_env).unwrap();
        assert_eq!(loaded.rules.len(), 1);
        assert_eq!(loaded.receivers[0].group_by, vec!["alertname"]);
        assert_eq!(loaded.receivers[0].key.len(), 24);

        let mut unknown = file.clone();
        unknown.rules[0].receivers = vec!["pager".into()];
        let e = check_file(unknown, 60_000_000_000, &no_env).unwrap_err();
        assert!(
            e.to_string()
                .contains("receivers: no receiver named \"pager\""),
            "{e}"
        );

        let mut unsigned = file.clone();
        unsigned.receivers[0].secret = None;
        unsigned.receivers[0].secret_env = Some("HOOK_SECRET".into());
        let e = check_file(unsigned.clone(), 60_000_000_000, &no_env).unwrap_err();
        assert!(e.to_string().contains("HOOK_SECRET is not set"), "{e}");
        let env = |_: &str| Some("a-long-enough-shared-secret".to_string());
        assert!(check_file(unsigned, 60_000_000_000, &env).is_ok());
    }

    #[test]
    fn inhibition_needs_equal_labels_and_never_mutes_itself() {
        let rule = InhibitRule {
            source: matchers(&[MatcherSpec {
                name: "severity".into(),
                op: crate::labels::MatchOp::Equal,
                value: "page".into(),
            }])
            .unwrap(),
            target: matchers(&[MatcherSpec {
                name: "severity".into(),
                op: crate::labels::MatchOp::Regex,
                value: "page|ticket".into(),
            }])
            .unwrap(),
            equal: vec!["agent".into()],
        };
        let l = |sev: &str, agent: &str| -> Labels {
            [
                ("severity".to_string(), sev.to_string()),
                ("agent".to_string(), agent.to_string()),
            ]
            .into()
        };
        let page_a = l("page", "a");
        assert!(rule.inhibits(&l("ticket", "a"), [&page_a].into_iter()));
        assert!(!rule.inhibits(&l("ticket", "b"), [&page_a].into_iter()));
        assert!(!rule.inhibits(&page_a, [&page_a].into_iter()));
    }
}

//! The notification pipeline's decisions, pure and with the clock passed in: which alerts go to
//! which receiver in which group, when a group is due, and whether it has anything new to say.
//! Alertmanager's semantics:
//!
//! - Each receiver groups alerts by its `group_by` labels (per project). A new group waits
//!   `group_wait` for company, then is looked at every `group_interval`.
//! - Muted alerts (silenced or inhibited) are left out before anything is decided.
//! - The **notification log** records, per group, what was last delivered (firing and resolved
//!   fingerprints, when, a sequence number). A group is notified when it has a firing alert not
//!   delivered yet, when all its firing alerts resolved, when (with `send_resolved`) an alert
//!   resolved that was not reported resolved yet, or when `repeat_interval` passed with alerts
//!   still firing. Otherwise it stays quiet, however often it is looked at and however often
//!   Vigil restarts: the log is durable, the timers are not and need not be.
//! - A notification's `webhook-id` is derived from the group, the sequence number and the alert
//!   sets, so every retry of it, even after a restart, carries the same id.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    config::Receiver,
    labels::{Labels, render},
};

/// An alert as on-call sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub project: String,
    pub rule: String,
    pub fingerprint: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ns: i64,
    /// Set once the alert resolved.
    pub ends_at_ns: Option<i64>,
    /// The rule's receivers; every receiver when empty.
    pub receivers: Vec<String>,
}

impl Alert {
    pub fn is_firing(&self) -> bool {
        self.ends_at_ns.is_none()
    }

    fn routes_to(&self, receiver: &str) -> bool {
        self.receivers.is_empty() || self.receivers.iter().any(|r| r == receiver)
    }
}

/// What the notification log keeps per group: the last delivered notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub firing: BTreeSet<String>,
    pub resolved: BTreeSet<String>,
    pub sent_at_ns: i64,
}

/// Group key → last delivery.
pub type NotificationLog = BTreeMap<String, LogEntry>;

/// One notification to deliver to one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: Labels,
    /// Firing alerts, then (with `send_resolved`) the resolved ones; each sorted by labels.
    pub alerts: Vec<Alert>,
    /// What the log records once this is delivered.
    pub entry: LogEntry,
    /// The `webhook-id`: the same for every retry of this notification.
    pub id: String,
}

impl Notification {
    pub fn is_firing(&self) -> bool {
        self.alerts.iter().any(Alert::is_firing)
    }
}

#[derive(Debug, Clone, Copy)]
struct GroupTimer {
    next_flush_ns: i64,
    in_flight: bool,
}

/// The groups' timers. Lost on restart by design (see the module documentation).
#[derive(Debug, Default)]
pub struct Dispatcher {
    timers: BTreeMap<String, GroupTimer>,
}

impl Dispatcher {
    /// The notifications due at `now`. `muted` says whether an alert is silenced or inhibited.
    /// A group with a notification out is not looked at until [`Dispatcher::finished`].
    pub fn due<'a>(
        &mut self,
        now_ns: i64,
        alerts: impl Iterator<Item = &'a Alert> + Clone,
        receivers: &[Receiver],
        muted: &dyn Fn(&Alert) -> bool,
        log: &NotificationLog,
    ) -> Vec<Notification> {
        let mut groups: BTreeMap<String, (&Receiver, Labels, Vec<&Alert>)> = BTreeMap::new();
        for receiver in receivers {
            for alert in alerts.clone().filter(|a| a.routes_to(&receiver.name)) {
                let group_labels = receiver.group_labels(&alert.labels);
                let key = group_key(&receiver.name, &alert.project, &group_labels);
                groups
                    .entry(key)
                    .or_insert_with(|| (receiver, group_labels, Vec::new()))
                    .2
                    .push(alert);
            }
        }
        self.timers
            .retain(|key, timer| timer.in_flight || groups.contains_key(key));

        let mut due = Vec::new();
        for (key, (receiver, group_labels, members)) in groups {
            let timer = self.timers.entry(key.clone()).or_insert(GroupTimer {
                next_flush_ns: now_ns + receiver.group_wait_ns,
                in_flight: false,
            });
            if timer.in_flight || now_ns < timer.next_flush_ns {
                continue;
            }
            timer.next_flush_ns = now_ns + receiver.group_interval_ns;
            let mut audible: Vec<&Alert> = members.into_iter().filter(|a| !muted(a)).collect();
            audible.sort_by(|a, b| (!a.is_firing(), &a.labels).cmp(&(!b.is_firing(), &b.labels)));
            let firing: BTreeSet<String> = audible
                .iter()
                .filter(|a| a.is_firing())
                .map(|a| a.fingerprint.clone())
                .collect();
            let resolved: BTreeSet<String> = audible
                .iter()
                .filter(|a| !a.is_firing())
                .map(|a| a.fingerprint.clone())
                .collect();
            let previous = log.get(&key);
            if audible.is_empty() || !needs_update(previous, &firing, &resolved, receiver, now_ns) {
                continue;
            }
            let seq = previous.map_or(0, |e| e.seq) + 1;
            let alerts: Vec<Alert> = audible
                .into_iter()
                .filter(|a| a.is_firing() || receiver.send_resolved)
                .cloned()
                .collect();
            let id = notification_id(&key, seq, &firing, &resolved);
            timer.in_flight = true;
            due.push(Notification {
                receiver: receiver.name.clone(),
                group_key: key,
                group_labels,
                alerts,
                entry: LogEntry {
                    seq,
                    firing,
                    resolved,
                    sent_at_ns: now_ns,
                },
                id,
            });
        }
        due
    }

    /// A notification's delivery ended (delivered or given up); its group may be looked at again.
    pub fn finished(&mut self, group_key: &str) {
        if let Some(timer) = self.timers.get_mut(group_key) {
            timer.in_flight = false;
        }
    }
}

/// Whether a group has anything to say that the log says was not said.
fn needs_update(
    previous: Option<&LogEntry>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    receiver: &Receiver,
    now_ns: i64,
) -> bool {
    let Some(previous) = previous else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&previous.firing) {
        return true;
    }
    if firing.is_empty() && !previous.firing.is_empty() {
        return true;
    }
    if receiver.send_resolved && !resolved.is_subset(&previous.resolved) {
        return true;
    }
    !firing.is_empty() && now_ns - previous.sent_at_ns >= receiver.repeat_interval_ns
}

/// `receiver/project:{labels}`.
pub fn group_key(receiver: &str, project: &str, group_labels: &Labels) -> String {
    format!("{receiver}/{project}:{}", render(group_labels))
}

fn notification_id(
    group_key: &str,
    seq: u64,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
) -> String {
    let mut hash = Sha256::new();
    hash.update(group_key.as_bytes());
    hash.update(seq.to_be_bytes());
    for fp in firing {
        hash.update(b"f");
        hash.update(fp.as_bytes());
    }
    for fp in resolved {
        hash.update(b"r");
        hash.update(fp.as_bytes());
    }
    format!("msg_{}", hex::encode(&hash.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RulesFile, check_file};

    const S: i64 = 1_000_000_000;

    fn receiver(extra: &str) -> Receiver {
        let file: RulesFile = toml::from_str(&format!(
            "[[receivers]]\nname = \"oncall\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"0123456789abcdef0123\"\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\nrepeat_interval = \"4h\"\n{extra}"
        ))
        .unwrap();
        check_file(file, 60 * S, &|_| None)
            .unwrap()
            .receivers
            .remove(0)
    }

    fn alert(name: &str, agent: &str, ends: Option<i64>) -> Alert {
        let labels: Labels = [
            ("alertname".to_string(), name.to_string()),
            ("agent".to_string(), agent.to_string()),
        ]
        .into();
        Alert {
            project: "default".into(),
            rule: name.into(),
            fingerprint: crate::labels::fingerprint(&labels),
            labels,
            annotations: BTreeMap::new(),
            starts_at_ns: 0,
            ends_at_ns: ends,
            receivers: vec![],
        }
    }

    /// Drives the dispatcher every 10 s from `from` to `to`, delivering everything at once.
    fn drive(
        d: &mut Dispatcher,
        log: &mut NotificationLog,
        r: &Receiver,
        alerts: &[Alert],
        muted: &dyn Fn(&Alert) -> bool,
        from: i64,
        to: i64,
    ) -> Vec<(i64, Notification)> {
        let mut sent = Vec::new();
        let mut t = from;
        while t <= to {
            for n in d.due(t * S, alerts.iter(), std::slice::from_ref(r), muted, log) {
                log.insert(n.group_key.clone(), n.entry.clone());
                d.finished(&n.group_key);
                sent.push((t, n));
            }
            t += 10;
        }
        sent
    }

    #[test]
    fn one_firing_one_resolved_and_repeats_only_after_the_repeat_interval() {
        let r = receiver("");
        let mut d = Dispatcher::default();
        let mut log = NotificationLog::new();
        let loud = |_: &Alert| false;
        let firing = [alert("Errors", "a", None), alert("Errors", "b", None)];
        let sent = drive(&mut d, &mut log, &r, &firing, &loud, 0, 3600);
        assert_eq!(sent.len(), 1, "one notification for the group");
        assert_eq!(sent[0].0, 30, "after group_wait");
        assert_eq!(sent[0].1.alerts.len(), 2);
        let id = sent[0].1.id.clone();

        // A restart: new timers, same log. Nothing new to say.
        let mut d = Dispatcher::default();
        let sent = drive(&mut d, &mut log, &r, &firing, &loud, 3600, 7200);
        assert!(sent.is_empty(), "{sent:?}");

        // Four hours after the first: repeated, with a new id.
        let sent = drive(&mut d, &mut log, &r, &firing, &loud, 7200, 4 * 3600 + 600);
        assert_eq!(sent.len(), 1);
        assert_ne!(sent[0].1.id, id);

        // One resolves: notified once, with send_resolved.
        let half = [
            alert("Errors", "a", None),
            alert("Errors", "b", Some(5 * 3600 * S)),
        ];
        let sent = drive(&mut d, &mut log, &r, &half, &loud, 5 * 3600, 6 * 3600);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].1.is_firing());
        assert_eq!(sent[0].1.alerts.len(), 2);
        let resolved = [
            alert("Errors", "a", Some(6 * 3600 * S)),
            alert("Errors", "b", Some(5 * 3600 * S)),
        ];
        let sent = drive(&mut d, &mut log, &r, &resolved, &loud, 6 * 3600, 7 * 3600);
        assert_eq!(sent.len(), 1);
        assert!(!sent[0].1.is_firing());
    }

    #[test]
    fn muted_alerts_are_not_sent_until_the_silence_ends() {
        let r = receiver("");
        let mut d = Dispatcher::default();
        let mut log = NotificationLog::new();
        let firing = [alert("Errors", "a", None)];
        let sent = drive(&mut d, &mut log, &r, &firing, &|_| true, 0, 3600);
        assert!(sent.is_empty());
        let sent = drive(&mut d, &mut log, &r, &firing, &|_| false, 3610, 7200);
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn groups_follow_group_by_and_resolved_is_optional() {
        let r = receiver("group_by = [\"alertname\", \"agent\"]\nsend_resolved = false");
        let mut d = Dispatcher::default();
        let mut log = NotificationLog::new();
        let loud = |_: &Alert| false;
        let firing = [alert("Errors", "a", None), alert("Errors", "b", None)];
        assert_eq!(drive(&mut d, &mut log, &r, &firing, &loud, 0, 600).len(), 2);
        // All resolved without send_resolved: the log is cleared by a notification with no
        // alerts, which the engine records without sending.
        let resolved = [alert("Errors", "a", Some(S)), alert("Errors", "b", Some(S))];
        let sent = drive(&mut d, &mut log, &r, &resolved, &loud, 600, 1200);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(_, n)| n.alerts.is_empty()));
    }
}

//! The shell around the pure parts: runs each batch of rules on its interval, feeds the answers
//! to the evaluator, hands what fired or resolved to the dispatcher, delivers its notifications,
//! and keeps everything that must survive a restart on disk (`<data dir>/alerts/`):
//!
//! - `state.json`: every rule's alert instances, resolved alerts not yet reported, and the
//!   notification log. Replaced atomically (temp file, fsync, rename) whenever an evaluation
//!   changed an alert and after every delivered notification, before the next is looked at.
//! - `rules.json`: the rules created through the API.
//! - `silences.json`: silences.
//!
//! One task owns the schedule. Evaluations and deliveries run as their own tasks and report
//! back, so a slow query or a receiver that times out holds up nothing else: a batch still
//! running when its next turn comes skips that turn (counted), and at most
//! `max_concurrent_evaluations` queries run at once.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use vigil_access::{audit::AuditLog, files::write_private_file};
use vigil_eval::kill_switch::KillSwitches;
use vigil_query::{QueryError, TraceStore};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    batch::{Batch, BatchKey, aligned, batches},
    config::{AlertingSettings, ConfigError, LoadedFile, check_receivers, load_file},
    dispatch::{Alert, Dispatcher, Notification, NotificationLog},
    evaluator::{Evaluation, Phase, RuleState, Transition, resolve_all, step},
    kill_switch,
    rule::{Rule, RuleError, RuleSpec},
    silence::{Silence, SilenceError, SilenceSpec, SilenceView, Silences, check as check_silence},
    telemetry::AlertTelemetry,
    views::{AlertCounts, AlertView, RuleHealth, RuleView},
    webhook::{Attempt, attempt, backoff, payload},
};

/// How often the schedule is looked at.
const TICK: Duration = Duration::from_millis(200);
/// How long a resolved alert that could not be reported is kept.
const RESOLVED_RETENTION_NS: i64 = 86_400 * 1_000_000_000;

/// A rule's identity: project and name.
type RuleId = (String, String);

/// Where a rule came from: the rules file (changed by editing it) or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File,
    Api,
}

#[derive(Debug, Clone, Default)]
struct Health {
    last_evaluation_ns: Option<i64>,
    last_duration: Duration,
    last_error: Option<String>,
}

impl Health {
    fn of(at_ns: i64, took: Duration, error: Option<String>) -> Health {
        Health {
            last_evaluation_ns: Some(at_ns),
            last_duration: took,
            last_error: error,
        }
    }
}

/// A resolved alert, kept until each receiver it routes to was told.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resolved {
    alert: Alert,
    reported_to: BTreeSet<String>,
}

/// What is written to `state.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Durable {
    rules: Vec<(RuleId, RuleState)>,
    resolved: Vec<Resolved>,
    log: NotificationLog,
}

struct Core {
    file: LoadedFile,
    file_stamp: Option<SystemTime>,
    api_rules: Vec<Arc<Rule>>,
    batches: Vec<Batch>,
    running: BTreeMap<BatchKey, i64>,
    last_turn: BTreeMap<BatchKey, i64>,
    states: BTreeMap<RuleId, RuleState>,
    health: BTreeMap<RuleId, Health>,
    resolved: BTreeMap<String, Resolved>,
    log: NotificationLog,
    dispatcher: Dispatcher,
    dirty: bool,
}

impl Core {
    fn rules(&self) -> impl Iterator<Item = (&Rule, Source)> + '_ {
        self.file
            .rules
            .iter()
            .map(|r| (r.as_ref(), Source::File))
            .chain(self.api_rules.iter().map(|r| (r.as_ref(), Source::Api)))
    }

    fn find(&self, project: &str, name: &str) -> Option<(&Rule, Source)> {
        self.rules()
            .find(|(r, _)| r.project() == project && r.name() == name)
    }

    fn rebuild_batches(&mut self) {
        self.batches = batches(self.file.rules.iter().chain(&self.api_rules).cloned());
        let live: BTreeSet<RuleId> = self.rules().map(|(r, _)| id(r)).collect();
        let now = now_ns();
        let gone: Vec<RuleId> = self
            .states
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let state = self.states.remove(&key).unwrap_or_default();
            let receivers = Vec::new();
            for transition in resolve_all(state, now) {
                self.record(&key.0, &key.1, &receivers, transition);
            }
            self.health.remove(&key);
            self.dirty = true;
        }
    }

    /// Notes a transition in the alert book.
    fn record(&mut self, project: &str, rule: &str, receivers: &[String], transition: Transition) {
        match transition {
            Transition::Fired(instance) => {
                self.resolved
                    .remove(&crate::labels::fingerprint(&instance.labels));
            }
            Transition::Resolved { alert, at_ns } => {
                let fingerprint = crate::labels::fingerprint(&alert.labels);
                let alert = Alert {
                    project: project.into(),
                    rule: rule.into(),
                    fingerprint: fingerprint.clone(),
                    labels: alert.labels,
                    annotations: alert.annotations,
                    starts_at_ns: alert.fired_at_ns.unwrap_or(alert.active_since_ns),
                    ends_at_ns: Some(at_ns),
                    receivers: receivers.to_vec(),
                };
                self.resolved.insert(
                    fingerprint,
                    Resolved {
                        alert,
                        reported_to: BTreeSet::new(),
                    },
                );
            }
        }
        self.dirty = true;
    }

    /// Every alert on-call may hear about: the firing ones, then the resolved ones not yet
    /// reported (a firing alert wins over a resolved one with the same labels).
    fn alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut firing = BTreeSet::new();
        for (rule, _) in self.rules() {
            let Some(state) = self.states.get(&id(rule)) else {
                continue;
            };
            for (fingerprint, instance) in &state.instances {
                if instance.phase == Phase::Firing {
                    firing.insert(fingerprint.clone());
                    let mut annotations = instance.annotations.clone();
                    kill_switch::annotate(rule, true, &mut annotations);
                    out.push(Alert {
                        project: rule.project().into(),
                        rule: rule.name().into(),
                        fingerprint: fingerprint.clone(),
                        labels: instance.labels.clone(),
                        annotations,
                        starts_at_ns: instance.fired_at_ns.unwrap_or(instance.active_since_ns),
                        ends_at_ns: None,
                        receivers: rule.spec.receivers.clone(),
                    });
                }
            }
        }
        out.extend(
            self.resolved
                .values()
                .filter(|r| !firing.contains(&r.alert.fingerprint))
                .map(|r| r.alert.clone()),
        );
        out
    }

    fn durable(&self) -> Durable {
        Durable {
            rules: self
                .states
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resolved: self.resolved.values().cloned().collect(),
            log: self.log.clone(),
        }
    }
}

fn id(rule: &Rule) -> RuleId {
    (rule.project().to_string(), rule.name().to_string())
}

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{name}: {message}")]
    Setting { name: &'static str, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("alert state in the data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a rule could not be changed through the API.
#[derive(Debug, thiserror::Error)]
pub enum RuleChangeError {
    #[error(transparent)]
    Invalid(#[from] RuleError),
    #[error("rule {0:?} is defined in the rules file; change it there")]
    FromFile(String),
    #[error("saving the rules: {0}")]
    Io(#[from] std::io::Error),
}

enum Event {
    Evaluated {
        batch: Batch,
        at_ns: i64,
        took: Duration,
        result: Result<Vec<(Arc<Rule>, Evaluation)>, QueryError>,
    },
    Delivered {
        notification: Notification,
        delivered: bool,
    },
}

/// Alerting: rules, their alerts, silences, and the notifications they cause.
pub struct AlertEngine {
    settings: AlertingSettings,
    default_interval_ns: i64,
    reload_check: Duration,
    dir: PathBuf,
    store: Arc<dyn TraceStore>,
    kill_switches: Arc<KillSwitches>,
    audit: Arc<AuditLog>,
    core: Mutex<Core>,
    silences: Mutex<Silences>,
    telemetry: Arc<AlertTelemetry>,
    client: reqwest::Client,
    reload_requested: AtomicBool,
    changed: Notify,
}

impl AlertEngine {
    /// Loads the rules file, the API's rules, silences and the state from `<data_dir>/alerts`.
    /// A rules file that does not load is an error here (at start); later reloads keep the
    /// rules that were loaded. Rules that name a kill switch set it in `kill_switches`, and
    /// record each change in `audit`.
    pub fn open(
        settings: AlertingSettings,
        data_dir: &std::path::Path,
        store: Arc<dyn TraceStore>,
        kill_switches: Arc<KillSwitches>,
        audit: Arc<AuditLog>,
    ) -> Result<Arc<AlertEngine>, EngineError> {
        if settings.evaluation_interval.as_nanos() == 0 {
            return Err(EngineError::Setting {
                name: "alerting.evaluation_interval",
                message: "must be more than 0".into(),
            });
        }
        let default_interval_ns = settings.evaluation_interval.as_nanos();
        let reload_check = settings
            .reload_check_interval
            .get()
            .max(Duration::from_nanos(1));
        let dir = data_dir.join("alerts");
        std::fs::create_dir_all(&dir)?;
        let (file, file_stamp) = match &settings.rules_file {
            Some(path) => (
                load_file(path, default_interval_ns, &|v| std::env::var(v).ok())?,
                stamp(path),
            ),
            None => (LoadedFile::default(), None),
        };
        let receiver_names: BTreeSet<String> =
            file.receivers.iter().map(|r| r.name.clone()).collect();
        let mut api_rules = Vec::new();
        for spec in read_json::<Vec<RuleSpec>>(&dir.join("rules.json"))?.unwrap_or_default() {
            match Rule::new(spec, default_interval_ns) {
                Ok(rule) => {
                    if let Err(e) = check_receivers(&rule, &receiver_names) {
                        tracing::warn!(error = %e, "an API rule names a receiver the rules file no longer has");
                    }
                    api_rules.push(Arc::new(rule));
                }
                Err(e) => tracing::error!(error = %e, "a stored API rule no longer loads; skipped"),
            }
        }
        let durable = read_json::<Durable>(&dir.join("state.json"))?.unwrap_or_default();
        let mut core = Core {
            file,
            file_stamp,
            api_rules,
            batches: Vec::new(),
            running: BTreeMap::new(),
            last_turn: BTreeMap::new(),
            states: durable.rules.into_iter().collect(),
            health: BTreeMap::new(),
            resolved: durable
                .resolved
                .into_iter()
                .map(|r| (r.alert.fingerprint.clone(), r))
                .collect(),
            log: durable.log,
            dispatcher: Dispatcher::default(),
            dirty: false,
        };
        core.rebuild_batches();
        let silences = Silences::open(dir.join("silences.json"))?;
        let telemetry = Arc::new(AlertTelemetry::new());
        Ok(Arc::new(AlertEngine {
            settings,
            default_interval_ns,
            reload_check,
            dir,
            store,
            kill_switches,
            audit,
            core: Mutex::new(core),
            silences: Mutex::new(silences),
            telemetry,
            client: reqwest::Client::new(),
            reload_requested: AtomicBool::new(false),
            changed: Notify::new(),
        }))
    }

    pub fn telemetry(&self) -> &AlertTelemetry {
        &self.telemetry
    }

    /// Asks for the rules file to be read again (SIGHUP).
    pub fn request_reload(&self) {
        self.reload_requested.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Runs until `shutdown`; state is saved on the way out.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (events, mut inbox) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(
            self.settings.max_concurrent_evaluations.max(1),
        ));
        let mut last_reload_check = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
                _ = self.changed.notified() => {}
                Some(event) = inbox.recv() => self.handle(event),
            }
            let check_due = last_reload_check.elapsed() >= self.reload_check;
            if check_due {
                last_reload_check = Instant::now();
            }
            if self.reload_requested.swap(false, Ordering::SeqCst)
                || (check_due && self.file_changed())
            {
                let _ = self.reload();
            }
            let now = now_ns();
            self.schedule(now, &events, &permits, &shutdown);
            self.dispatch(now, &events, &shutdown);
            self.save_if_dirty();
        }
        self.save_if_dirty();
    }

    fn file_changed(&self) -> bool {
        let Some(path) = &self.settings.rules_file else {
            return false;
        };
        stamp(path) != self.core.lock().file_stamp
    }

    /// Reads the rules file again; a file that does not load leaves the rules as they were.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.settings.rules_file else {
            return Ok(());
        };
        let stamp = stamp(path);
        match load_file(path, self.default_interval_ns, &|v| std::env::var(v).ok()) {
            Ok(file) => {
                let mut core = self.core.lock();
                core.file = file;
                core.file_stamp = stamp;
                core.rebuild_batches();
                self.telemetry.reloaded(true);
                tracing::info!(path = %path.display(), rules = core.file.rules.len(), "alert rules loaded");
                Ok(())
            }
            Err(e) => {
                self.core.lock().file_stamp = stamp;
                self.telemetry.reloaded(false);
                tracing::error!(error = %e, "the rules file did not load; the rules loaded before stay in force");
                Err(e)
            }
        }
    }

    /// Starts every batch whose turn came.
    fn schedule(
        &self,
        now: i64,
        events: &mpsc::UnboundedSender<Event>,
        permits: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) {
        let mut core = self.core.lock();
        let mut started = Vec::new();
        for batch in &core.batches {
            let turn = aligned(now, batch.key.interval_ns);
            if core.last_turn.get(&batch.key).is_some_and(|t| *t >= turn) {
                continue;
            }
            if core.running.contains_key(&batch.key) {
                self.telemetry.skipped(batch.rules.len() as u64);
                started.push((batch.key.clone(), turn, false));
                continue;
            }
            started.push((batch.key.clone(), turn, true));
            let batch = batch.clone();
            let store = self.store.clone();
            let events = events.clone();
            let permits = permits.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let began = Instant::now();
                let limit = Duration::from_nanos(batch.key.interval_ns as u64);
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tokio::time::timeout(limit, batch.evaluate(store.as_ref(), turn)) => r,
                };
                let result = result.unwrap_or_else(|_| {
                    Err(QueryError::Unavailable(format!(
                        "the evaluation took longer than the rule interval ({limit:?})"
                    )))
                });
                let _ = events.send(Event::Evaluated {
                    batch,
                    at_ns: turn,
                    took: began.elapsed(),
                    result,
                });
            });
        }
        for (key, turn, running) in started {
            core.last_turn.insert(key.clone(), turn);
            if running {
                core.running.insert(key, turn);
            }
        }
    }

    fn handle(&self, event: Event) {
        match event {
            Event::Evaluated {
                batch,
                at_ns,
                took,
                result,
            } => self.evaluated(batch, at_ns, took, result),
            Event::Delivered {
                notification,
                delivered,
            } => {
                let mut core = self.core.lock();
                core.dispatcher.finished(&notification.group_key);
                if delivered {
                    self.delivered(&mut core, &notification);
                    // Written before anything else is looked at: a page that was delivered is
                    // never delivered again because Vigil restarted.
                    self.save(&mut core);
                }
            }
        }
    }

    fn evaluated(
        &self,
        batch: Batch,
        at_ns: i64,
        took: Duration,
        result: Result<Vec<(Arc<Rule>, Evaluation)>, QueryError>,
    ) {
        let mut core = self.core.lock();
        core.running.remove(&batch.key);
        self.telemetry.round_took(took.as_secs_f64());
        self.telemetry
            .evaluated(batch.rules.len() as u64, result.is_err());
        let evaluations = match result {
            Ok(evaluations) => evaluations,
            Err(e) => {
                tracing::warn!(error = %e, rules = batch.rules.len(), "alert rule evaluation failed; alerts keep their state");
                for rule in &batch.rules {
                    core.health
                        .insert(id(rule), Health::of(at_ns, took, Some(e.to_string())));
                }
                return;
            }
        };
        let mut switch_orders = Vec::new();
        for (rule, evaluation) in evaluations {
            let key = id(&rule);
            // The rule may have been changed or removed while its query ran: its next turn
            // evaluates what is there now.
            if !core
                .find(&key.0, &key.1)
                .is_some_and(|(current, _)| current.spec == rule.spec)
            {
                continue;
            }
            let state = core.states.remove(&key).unwrap_or_default();
            let before = state.clone();
            let (next, transitions) = step(&rule, state, &evaluation, at_ns);
            if next != before {
                core.dirty = true;
            }
            let still_firing = next.phases().1 > 0;
            if let Some(wanted) = kill_switch::wanted(&rule, &transitions, still_firing) {
                switch_orders.push((rule.clone(), wanted));
            }
            if !next.instances.is_empty() {
                core.states.insert(key.clone(), next);
            }
            for mut transition in transitions {
                if let Transition::Resolved { alert, .. } = &mut transition {
                    kill_switch::annotate(&rule, false, &mut alert.annotations);
                }
                core.record(&key.0, &key.1, &rule.spec.receivers, transition);
            }
            core.health.insert(key, Health::of(at_ns, took, None));
        }
        let (pending, firing) = core
            .states
            .values()
            .map(RuleState::phases)
            .fold((0, 0), |(p, f), (p1, f1)| (p + p1, f + f1));
        let rules = core.rules().count() as u64;
        self.telemetry.alerts(rules, pending, firing);
        drop(core);
        for (rule, wanted) in switch_orders {
            kill_switch::apply(&self.kill_switches, &self.audit, &rule, wanted, at_ns);
        }
    }

    /// Looks at every group, and sends what is due.
    fn dispatch(
        &self,
        now: i64,
        events: &mpsc::UnboundedSender<Event>,
        shutdown: &CancellationToken,
    ) {
        let mut core = self.core.lock();
        core.resolved
            .retain(|_, r| now - r.alert.ends_at_ns.unwrap_or(now) < RESOLVED_RETENTION_NS);
        let alerts = core.alerts();
        let firing: Vec<&Alert> = alerts.iter().filter(|a| a.is_firing()).collect();
        let due = {
            let silences = self.silences.lock();
            let core: &mut Core = &mut core;
            let inhibit_rules = &core.file.inhibit_rules;
            let muted = |alert: &Alert| {
                silences.mutes(&alert.project, &alert.labels, now)
                    || inhibit_rules.iter().any(|rule| {
                        rule.inhibits(
                            &alert.labels,
                            firing
                                .iter()
                                .filter(|f| f.project == alert.project)
                                .map(|f| &f.labels),
                        )
                    })
            };
            core.dispatcher
                .due(now, alerts.iter(), &core.file.receivers, &muted, &core.log)
        };
        for notification in due {
            let Some(receiver) = core
                .file
                .receivers
                .iter()
                .find(|r| r.name == notification.receiver)
                .cloned()
            else {
                continue;
            };
            if notification.alerts.is_empty() {
                // Resolved, but this receiver does not want to hear it: recorded, not sent.
                core.dispatcher.finished(&notification.group_key);
                self.delivered(&mut core, &notification);
                continue;
            }
            let body = serde_json::to_vec(&payload(
                &notification,
                &receiver,
                &self.settings.external_url,
            ))
            .expect("a JSON value serializes");
            let client = self.client.clone();
            let events = events.clone();
            let shutdown = shutdown.clone();
            let telemetry = self.telemetry.clone();
            tokio::spawn(async move {
                let delivered = deliver(
                    &client,
                    &receiver,
                    &notification,
                    &body,
                    &shutdown,
                    &telemetry,
                )
                .await;
                let _ = events.send(Event::Delivered {
                    notification,
                    delivered,
                });
            });
        }
    }

    /// Records a delivered notification in the log, and forgets resolved alerts every receiver
    /// of theirs was told about.
    fn delivered(&self, core: &mut Core, notification: &Notification) {
        self.telemetry
            .notification(&notification.receiver, "delivered");
        core.log
            .insert(notification.group_key.clone(), notification.entry.clone());
        let receivers: Vec<String> = core.file.receivers.iter().map(|r| r.name.clone()).collect();
        core.resolved.retain(|fingerprint, resolved| {
            if notification.entry.resolved.contains(fingerprint) {
                resolved.reported_to.insert(notification.receiver.clone());
            }
            let routes = |r: &String| {
                resolved.alert.receivers.is_empty() || resolved.alert.receivers.contains(r)
            };
            !receivers
                .iter()
                .filter(|r| routes(r))
                .all(|r| resolved.reported_to.contains(r))
        });
        core.dirty = true;
    }

    fn save_if_dirty(&self) {
        let mut core = self.core.lock();
        if core.dirty {
            self.save(&mut core);
        }
    }

    fn save(&self, core: &mut Core) {
        let bytes = serde_json::to_vec(&core.durable()).expect("the state serializes");
        match write_private_file(&self.dir.join("state.json"), &bytes) {
            Ok(()) => core.dirty = false,
            Err(e) => tracing::error!(error = %e, "saving the alert state failed; retrying"),
        }
    }
}

/// Tries one notification until it is delivered, refused, `retry_for` has passed, or Vigil
/// stops. Every try carries the same `webhook-id`; each is signed with its own timestamp.
async fn deliver(
    client: &reqwest::Client,
    receiver: &crate::config::Receiver,
    notification: &Notification,
    body: &[u8],
    shutdown: &CancellationToken,
    telemetry: &AlertTelemetry,
) -> bool {
    let deadline = Instant::now() + receiver.retry_for;
    let mut tries = 0;
    loop {
        tries += 1;
        let outcome = attempt(client, receiver, &notification.id, body).await;
        telemetry.attempt(&receiver.name, outcome.label());
        let reason = match outcome {
            Attempt::Delivered(_) => return true,
            Attempt::Rejected(status) => {
                tracing::error!(receiver = %receiver.name, status, id = %notification.id, "the receiver refused the notification; not retried");
                telemetry.notification(&receiver.name, "rejected");
                return false;
            }
            Attempt::Retryable(reason) => reason,
        };
        let wait = backoff(receiver.retry_initial, tries, rand::random::<f64>());
        if Instant::now() + wait > deadline {
            tracing::error!(receiver = %receiver.name, tries, id = %notification.id, %reason, "notification not delivered; the group tries again at its next interval");
            telemetry.notification(&receiver.name, "failed");
            return false;
        }
        tracing::warn!(receiver = %receiver.name, tries, id = %notification.id, %reason, retry_in_ms = wait.as_millis() as u64, "webhook failed; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The API's operations. Every one is scoped to the caller's project.
impl AlertEngine {
    /// The project's rules, by name, with where they came from and how their last evaluation went.
    pub fn rules(&self, project: &str) -> Vec<RuleView> {
        let core = self.core.lock();
        let mut rules: Vec<(&Rule, Source)> = core
            .rules()
            .filter(|(r, _)| r.project() == project)
            .collect();
        rules.sort_by_key(|(r, _)| r.name());
        rules
            .into_iter()
            .map(|(r, source)| rule_view(&core, r, source))
            .collect()
    }

    pub fn rule(&self, project: &str, name: &str) -> Option<RuleView> {
        let core = self.core.lock();
        core.find(project, name)
            .map(|(r, source)| rule_view(&core, r, source))
    }

    /// Creates or replaces an API rule; `Ok(true)` when it is new. Its alerts keep their state.
    pub fn put_rule(&self, project: &str, mut spec: RuleSpec) -> Result<bool, RuleChangeError> {
        spec.project = project.to_string();
        let rule = Rule::new(spec, self.default_interval_ns)?;
        let mut core = self.core.lock();
        let receivers: BTreeSet<String> =
            core.file.receivers.iter().map(|r| r.name.clone()).collect();
        check_receivers(&rule, &receivers)?;
        if let Some((_, Source::File)) = core.find(project, rule.name()) {
            return Err(RuleChangeError::FromFile(rule.name().into()));
        }
        let before = core.api_rules.len();
        core.api_rules
            .retain(|r| !(r.project() == project && r.name() == rule.name()));
        let created = core.api_rules.len() == before;
        core.api_rules.push(Arc::new(rule));
        self.save_api_rules(&core)?;
        core.rebuild_batches();
        drop(core);
        self.changed.notify_one();
        Ok(created)
    }

    /// Deletes an API rule; its firing alerts resolve. `Ok(false)` when there was none.
    pub fn delete_rule(&self, project: &str, name: &str) -> Result<bool, RuleChangeError> {
        let mut core = self.core.lock();
        match core.find(project, name) {
            None => return Ok(false),
            Some((_, Source::File)) => return Err(RuleChangeError::FromFile(name.into())),
            Some((_, Source::Api)) => {}
        }
        core.api_rules
            .retain(|r| !(r.project() == project && r.name() == name));
        self.save_api_rules(&core)?;
        core.rebuild_batches();
        drop(core);
        self.changed.notify_one();
        Ok(true)
    }

    fn save_api_rules(&self, core: &Core) -> std::io::Result<()> {
        /// A rule as saved: with its project, which a rule's own serialization leaves out.
        #[derive(serde::Serialize)]
        struct Saved<'a> {
            project: &'a str,
            #[serde(flatten)]
            spec: &'a RuleSpec,
        }
        let specs: Vec<Saved> = core
            .api_rules
            .iter()
            .map(|r| Saved {
                project: &r.spec.project,
                spec: &r.spec,
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&specs).map_err(std::io::Error::other)?;
        write_private_file(&self.dir.join("rules.json"), &bytes)
    }

    /// The project's pending and firing alerts, with the silences muting them.
    pub fn alerts(&self, project: &str) -> Vec<AlertView> {
        let now = now_ns();
        let core = self.core.lock();
        let silences = self.silences.lock();
        let mut out = Vec::new();
        for (rule, _) in core.rules().filter(|(r, _)| r.project() == project) {
            let Some(state) = core.states.get(&id(rule)) else {
                continue;
            };
            for (fingerprint, instance) in &state.instances {
                out.push(AlertView {
                    rule: rule.name().to_string(),
                    fingerprint: fingerprint.clone(),
                    state: instance.phase,
                    labels: instance.labels.clone(),
                    annotations: instance.annotations.clone(),
                    active_since: rfc3339(instance.active_since_ns),
                    fired_at: instance.fired_at_ns.map(rfc3339),
                    value: instance.value,
                    baseline: instance.baseline,
                    silenced_by: silences.muting(project, &instance.labels, now),
                });
            }
        }
        out
    }

    pub fn create_silence(
        &self,
        project: &str,
        key_id: &str,
        spec: SilenceSpec,
    ) -> Result<SilenceView, SilenceError> {
        let now = now_ns();
        let silence = check_silence(spec, project, key_id, now)?;
        let view = silence.view(now);
        self.silences
            .lock()
            .add(silence)
            .map_err(|e| SilenceError {
                field: "silence",
                message: format!("could not be saved: {e}"),
            })?;
        Ok(view)
    }

    pub fn silences(&self, project: &str) -> Vec<SilenceView> {
        let now = now_ns();
        let mut silences = self.silences.lock();
        if let Err(e) = silences.collect_garbage(now) {
            tracing::warn!(error = %e, "dropping expired silences failed");
        }
        silences
            .list(project)
            .into_iter()
            .map(|s| s.view(now))
            .collect()
    }

    pub fn silence(&self, project: &str, id: &str) -> Option<SilenceView> {
        let silences = self.silences.lock();
        silences
            .get(project, id)
            .map(|s: &Silence| s.view(now_ns()))
    }

    /// Expires a silence now; `Ok(false)` when there is none.
    pub fn expire_silence(&self, project: &str, id: &str) -> std::io::Result<bool> {
        let expired = self.silences.lock().expire(project, id, now_ns())?;
        self.changed.notify_one();
        Ok(expired)
    }
}

fn rule_view(core: &Core, rule: &Rule, source: Source) -> RuleView {
    let health = core.health.get(&id(rule)).cloned().unwrap_or_default();
    let (pending, firing) = core.states.get(&id(rule)).map_or((0, 0), RuleState::phases);
    RuleView {
        spec: rule.spec.clone(),
        source,
        health: match (&health.last_evaluation_ns, &health.last_error) {
            (None, _) => RuleHealth::Unknown,
            (Some(_), None) => RuleHealth::Ok,
            (Some(_), Some(_)) => RuleHealth::Error,
        },
        last_evaluation: health.last_evaluation_ns.map(rfc3339),
        last_evaluation_ms: health.last_duration.as_secs_f64() * 1000.0,
        last_error: health.last_error,
        alerts: AlertCounts { pending, firing },
    }
}

fn stamp(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

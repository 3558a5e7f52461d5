//! The shell around the pure parts: runs each batch of rules on its interval, feeds the answers
//! to the evaluator, hands what fired or resolved to the dispatcher, delivers its notifications,
//! and keeps everything that must survive a restart. On the embedded store, on disk
//! (`<data dir>/alerts/`):
//!
//! - `state.json`: every rule's alert instances and last evaluation, resolved alerts not yet
//!   reported, and the notification log. Replaced atomically (temp file, fsync, rename)
//!   whenever an evaluation ran and after every delivered notification, before the next is
//!   looked at.
//! - `rules.json`: the rules created through the API.
//! - `silences.json`: silences.
//!
//! On ClickHouse the same state is in the control table every node shares ([`crate::shared`]),
//! read again by every node when it changes. Then only one node evaluates and notifies: the
//! holder of the alerting lease when one is configured (`alerting.lease`), which reads the state
//! when it takes over, writes it under its lease token, and asks ZooKeeper before each webhook
//! try whether it still holds the lease. Every other node serves the API from what it read.
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
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use vigil_access::{audit::AuditLog, files::write_private_file};
use vigil_control::{
    ControlError, Kind, Record,
    lease::{Lease, Token},
};
use vigil_eval::kill_switch::KillSwitches;
use vigil_query::{QueryError, TraceStore};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    batch::{Batch, BatchKey, aligned, batches},
    config::{AlertingSettings, ConfigError, LoadedFile, Receiver, check_receivers, load_file},
    dispatch::{Alert, Dispatcher, Notification, NotificationLog},
    evaluator::{Evaluation, Phase, RuleState, Transition, resolve_all, step},
    kill_switch,
    rule::{Rule, RuleError, RuleSpec},
    shared::{KINDS, SavedRule, SharedState, newest_state, read_json},
    silence::{Silence, SilenceError, SilenceSpec, SilenceView, Silences, check as check_silence},
    telemetry::AlertTelemetry,
    views::{AlertCounts, AlertView, RuleHealth, RuleView},
    webhook::{Attempt, attempt, backoff, payload},
};

/// How often the schedule is looked at.
const TICK: Duration = Duration::from_millis(200);
/// A condition told when it begins and when it ends, not at every try while it lasts.
#[derive(Default)]
struct Condition(AtomicBool);

impl Condition {
    /// Whether this begins it (it did not hold).
    fn begins(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }

    /// Whether this ends it (it held).
    fn ends(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// How long another node seen writing this node's alert state is remembered.
const OTHER_WRITER_MEMORY_NS: i64 = 300 * 1_000_000_000;
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// What is written to `state.json` (or the shared state).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Durable {
    rules: Vec<(RuleId, RuleState)>,
    resolved: Vec<Resolved>,
    log: NotificationLog,
    #[serde(default)]
    health: Vec<(RuleId, Health)>,
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
            health: self
                .health
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Takes the state another node (or this one, before) wrote.
    fn restore(&mut self, durable: Durable) {
        self.states = durable.rules.into_iter().collect();
        self.resolved = durable
            .resolved
            .into_iter()
            .map(|r| (r.alert.fingerprint.clone(), r))
            .collect();
        self.log = durable.log;
        self.health = durable.health.into_iter().collect();
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
    #[error(transparent)]
    Save(#[from] SaveError),
}

/// Why a change could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("saving to the data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Shared(#[from] ControlError),
}

/// Why a silence could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SilenceChangeError {
    #[error(transparent)]
    Invalid(#[from] SilenceError),
    #[error(transparent)]
    Save(#[from] SaveError),
}

/// Where alerting keeps what must outlive a process.
enum Backing {
    /// `<data dir>/alerts/`: one node's.
    Files,
    /// The control table every node shares.
    Shared(Box<SharedState>),
}

/// What a node shares with the others when the store is ClickHouse.
pub struct Sharing {
    pub table: vigil_control::ControlTable,
    /// The alerting lease this node campaigns for, when alerting runs on many nodes.
    pub lease: Option<Lease>,
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
    backing: Backing,
    lease: Option<Lease>,
    /// The lease token this node evaluates and writes the state under (0 without a lease);
    /// `None` while it does not (another node does, or it has not read the state yet). Always
    /// `Some(0)` on the embedded store.
    writer: Mutex<Option<Token>>,
    /// The shared state could not be read to take over (tried at every tick, told once).
    state_unreadable: Condition,
    /// The state could not be saved (tried at every tick, told once).
    save_failing: Condition,
    /// When another node was last seen writing the state under this node's token.
    other_writer_seen_ns: AtomicI64,
    telemetry: Arc<AlertTelemetry>,
    client: reqwest::Client,
    reload_requested: AtomicBool,
    changed: Notify,
}

impl AlertEngine {
    /// Loads the rules file, and the API's rules, silences and the state from `<data_dir>/alerts`
    /// or, with `sharing`, from the control table (read by [`Self::refresh`]). A rules file that
    /// does not load is an error here (at start); later reloads keep the rules that were
    /// loaded. Rules that name a kill switch set it in `kill_switches`, and record each change
    /// in `audit`.
    pub fn open(
        settings: AlertingSettings,
        data_dir: &std::path::Path,
        store: Arc<dyn TraceStore>,
        kill_switches: Arc<KillSwitches>,
        audit: Arc<AuditLog>,
        sharing: Option<Sharing>,
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
        let (backing, lease) = match sharing {
            None => (Backing::Files, None),
            Some(sharing) => (
                Backing::Shared(Box::new(SharedState::new(sharing.table))),
                sharing.lease,
            ),
        };
        let shared = matches!(backing, Backing::Shared(_));
        let mut core = Core {
            file,
            file_stamp,
            api_rules: Vec::new(),
            batches: Vec::new(),
            running: BTreeMap::new(),
            last_turn: BTreeMap::new(),
            states: BTreeMap::new(),
            health: BTreeMap::new(),
            resolved: BTreeMap::new(),
            log: NotificationLog::default(),
            dispatcher: Dispatcher::default(),
            dirty: false,
        };
        let silences = if shared {
            Silences::in_memory()
        } else {
            core.api_rules = own_rules(&dir, default_interval_ns, &core.file)?;
            core.restore(read_json::<Durable>(&dir.join("state.json"))?.unwrap_or_default());
            Silences::open(dir.join("silences.json"))?
        };
        core.rebuild_batches();
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
            backing,
            lease,
            writer: Mutex::new((!shared).then_some(0)),
            state_unreadable: Condition::default(),
            save_failing: Condition::default(),
            other_writer_seen_ns: AtomicI64::new(i64::MIN / 2),
            telemetry,
            client: reqwest::Client::new(),
            reload_requested: AtomicBool::new(false),
            changed: Notify::new(),
        }))
    }

    /// Whether the state is the control table every node shares.
    pub fn is_shared(&self) -> bool {
        matches!(self.backing, Backing::Shared(_))
    }

    /// Reads what changed in the shared state (nothing to do on the embedded store): rules,
    /// silences, and, on a node that does not evaluate, the alert state. The first read imports
    /// what this node kept in its data directory before.
    pub async fn refresh(&self) -> Result<(), ControlError> {
        let Backing::Shared(shared) = &self.backing else {
            return Ok(());
        };
        shared.import_once(&self.dir).await?;
        for kind in KINDS {
            let Some(records) = shared.changed(kind).await? else {
                continue;
            };
            match kind {
                Kind::AlertRule => {
                    let receivers = self.core.lock().file.receiver_names();
                    let rules = records
                        .iter()
                        .filter_map(|record| {
                            let body = record.body.as_deref()?;
                            let spec = serde_json::from_str(body)
                                .inspect_err(|e| tracing::error!(rule = %record.key, error = %e, "a shared alert rule is unreadable; skipped"))
                                .ok()?;
                            stored_api_rule(spec, self.default_interval_ns, &receivers)
                        })
                        .collect();
                    let mut core = self.core.lock();
                    core.api_rules = rules;
                    core.rebuild_batches();
                }
                Kind::Silence => {
                    let stored: Vec<Silence> = records
                        .iter()
                        .filter_map(|r| serde_json::from_str(r.body.as_deref()?).ok())
                        .collect();
                    self.silences.lock().replace_all(stored, now_ns());
                }
                _ => {
                    let writer = *self.writer.lock();
                    if let Some(token) = writer {
                        self.watch_other_writers(shared, &records, token);
                    } else if let Some((_, body)) = newest_state(records) {
                        match serde_json::from_str::<Durable>(&body) {
                            Ok(durable) => self.core.lock().restore(durable),
                            Err(e) => {
                                tracing::error!(error = %e, "the shared alert state does not load")
                            }
                        }
                    }
                }
            }
        }
        self.changed.notify_one();
        Ok(())
    }

    /// Says so (in the log once per [`OTHER_WRITER_MEMORY_NS`], and in `/metrics` for as long)
    /// when another node writes the state under this node's token: two alerting nodes without
    /// a lease, each paging. Two such nodes overwrite each other's state in turn, so each sees
    /// the other only now and then: what was seen is remembered.
    fn watch_other_writers(&self, shared: &SharedState, records: &[Record], token: Token) {
        let now = now_ns();
        let last_seen = self.other_writer_seen_ns.load(Ordering::SeqCst);
        if let Some(node) = shared.other_writer(records, token) {
            if now - last_seen > OTHER_WRITER_MEMORY_NS {
                tracing::error!(other = %node, token, "another node evaluates the alert rules and pages too: on-call hears each alert from both; run one alerting node or give them [alerting.lease]");
            }
            self.other_writer_seen_ns.store(now, Ordering::SeqCst);
            self.telemetry.other_writer(true);
        } else if now - last_seen > OTHER_WRITER_MEMORY_NS {
            self.telemetry.other_writer(false);
        }
    }

    pub fn telemetry(&self) -> &AlertTelemetry {
        &self.telemetry
    }

    /// The rules file's receiver `name`, as last loaded.
    pub fn receiver(&self, name: &str) -> Option<Receiver> {
        let core = self.core.lock();
        core.file.receivers.iter().find(|r| r.name == name).cloned()
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
            let Some(token) = self.leading().await else {
                continue;
            };
            let now = now_ns();
            self.schedule(now, &events, &permits, &shutdown);
            self.dispatch(now, token, &events, &shutdown);
            self.persist().await;
        }
        self.persist().await;
    }

    /// The token this node evaluates and notifies under now, if it does. On the shared state:
    /// once it holds the lease (or with no lease configured), after it read the newest state.
    /// A node that lost the lease stops at once: its timers go, what it has in flight is
    /// dropped when it comes back, and its deliveries stop at their next try.
    async fn leading(&self) -> Option<Token> {
        let Backing::Shared(shared) = &self.backing else {
            self.telemetry.leading(true);
            return Some(0);
        };
        let held = match &self.lease {
            None => Some(None),
            Some(lease) => lease.token().map(Some),
        };
        let writer = *self.writer.lock();
        match (writer, held) {
            (Some(token), Some(Some(held))) if token == held => return Some(token),
            (Some(token), Some(None)) => return Some(token),
            (Some(token), _) => {
                tracing::warn!(token, "the alerting lease is lost: this node stands by");
                *self.writer.lock() = None;
                self.telemetry.leading(false);
                let mut core = self.core.lock();
                core.dispatcher = Dispatcher::default();
                core.running.clear();
                shared.forget(Kind::AlertState);
            }
            (None, _) => {}
        }
        let held = held?;
        let newest = match shared.newest_state().await {
            Ok(newest) => newest,
            Err(e) => {
                if self.state_unreadable.begins() {
                    tracing::warn!(error = %e, "the alert state could not be read; not evaluating until it is");
                }
                return None;
            }
        };
        self.state_unreadable.ends();
        let (read_token, durable) = match newest {
            None => (0, Durable::default()),
            Some((token, body)) => match serde_json::from_str::<Durable>(&body) {
                Ok(durable) => (token, durable),
                Err(e) => {
                    tracing::error!(token, error = %e, "the shared alert state does not load; starting from none");
                    (token, Durable::default())
                }
            },
        };
        // Without a lease the node goes on under the token it found.
        let token = held.unwrap_or(read_token);
        let mut core = self.core.lock();
        core.restore(durable);
        core.dispatcher = Dispatcher::default();
        core.dirty = true;
        *self.writer.lock() = Some(token);
        self.telemetry.leading(true);
        tracing::info!(
            token,
            took_over_from = read_token,
            "this node evaluates the alert rules and notifies"
        );
        Some(token)
    }

    /// Keeps the state: `state.json`, or the shared state under this node's token.
    async fn persist(&self) {
        let bytes = {
            let mut core = self.core.lock();
            if !core.dirty {
                return;
            }
            core.dirty = false;
            serde_json::to_vec(&core.durable()).expect("the state serializes")
        };
        let saved = match &self.backing {
            Backing::Files => {
                write_private_file(&self.dir.join("state.json"), &bytes).map_err(|e| e.to_string())
            }
            Backing::Shared(shared) => {
                let Some(token) = *self.writer.lock() else {
                    return;
                };
                let body = String::from_utf8(bytes).expect("JSON is UTF-8");
                shared
                    .write_state(token, &body)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match saved {
            Ok(()) => {
                if self.save_failing.ends() {
                    tracing::info!("the alert state is saved again");
                }
            }
            Err(e) => {
                self.core.lock().dirty = true;
                if self.save_failing.begins() {
                    tracing::error!(error = %e, "saving the alert state failed; retrying at every tick");
                }
            }
        }
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
                    // never delivered again because Vigil restarted. (The shared state is
                    // written at the end of the turn: the next holder of the lease resends
                    // only what a holder that died in between delivered, with the same id.)
                    if matches!(self.backing, Backing::Files) {
                        self.save(&mut core);
                    }
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
        if self.writer.lock().is_none() {
            // Started before this node lost the lease: the holder evaluates now.
            return;
        }
        core.dirty = true;
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
        token: Token,
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
            let fence = self.lease.clone().map(|lease| Fence { lease, token });
            tokio::spawn(async move {
                let delivered = deliver(
                    &client,
                    &receiver,
                    &notification,
                    &body,
                    fence.as_ref(),
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

    fn save(&self, core: &mut Core) {
        let bytes = serde_json::to_vec(&core.durable()).expect("the state serializes");
        match write_private_file(&self.dir.join("state.json"), &bytes) {
            Ok(()) => core.dirty = false,
            Err(e) => tracing::error!(error = %e, "saving the alert state failed; retrying"),
        }
    }
}

/// The lease a delivery is made under.
struct Fence {
    lease: Lease,
    token: Token,
}

/// Tries one notification until it is delivered, refused, `retry_for` has passed, Vigil
/// stops, or (with a `fence`) this node no longer holds the lease it was sent under, which is
/// asked of ZooKeeper before every try. Every try carries the same `webhook-id`; each is signed
/// with its own timestamp.
async fn deliver(
    client: &reqwest::Client,
    receiver: &Receiver,
    notification: &Notification,
    body: &[u8],
    fence: Option<&Fence>,
    shutdown: &CancellationToken,
    telemetry: &AlertTelemetry,
) -> bool {
    let deadline = Instant::now() + receiver.retry_for;
    let mut tries = 0;
    loop {
        tries += 1;
        if let Some(fence) = fence
            && !fence.lease.confirm(fence.token).await
        {
            tracing::warn!(receiver = %receiver.name, id = %notification.id, token = fence.token, "not sent: this node no longer holds the alerting lease");
            telemetry.notification(&receiver.name, "fenced");
            return false;
        }
        let token = fence.map(|f| f.token);
        let outcome = attempt(client, receiver, &notification.id, token, body).await;
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
    pub async fn put_rule(
        &self,
        project: &str,
        mut spec: RuleSpec,
    ) -> Result<bool, RuleChangeError> {
        spec.project = project.to_string();
        let rule = Rule::new(spec, self.default_interval_ns)?;
        let created = {
            let core = self.core.lock();
            check_receivers(&rule, &core.file.receiver_names())?;
            match core.find(project, rule.name()) {
                Some((_, Source::File)) => {
                    return Err(RuleChangeError::FromFile(rule.name().into()));
                }
                found => found.is_none(),
            }
        };
        if let Backing::Shared(shared) = &self.backing {
            shared
                .put_rule(project, rule.name(), Some(&rule.spec))
                .await
                .map_err(SaveError::from)?;
        }
        let name = rule.name().to_string();
        self.change_api_rules(|rules| {
            rules.retain(|r| !(r.project() == project && r.name() == name));
            rules.push(Arc::new(rule));
        })?;
        Ok(created)
    }

    /// Deletes an API rule; its firing alerts resolve. `Ok(false)` when there was none.
    pub async fn delete_rule(&self, project: &str, name: &str) -> Result<bool, RuleChangeError> {
        match self.core.lock().find(project, name) {
            None => return Ok(false),
            Some((_, Source::File)) => return Err(RuleChangeError::FromFile(name.into())),
            Some((_, Source::Api)) => {}
        }
        if let Backing::Shared(shared) = &self.backing {
            shared
                .put_rule(project, name, None)
                .await
                .map_err(SaveError::from)?;
        }
        self.change_api_rules(|rules| {
            rules.retain(|r| !(r.project() == project && r.name() == name));
        })?;
        Ok(true)
    }

    /// Changes the API's rules in memory, and in `rules.json` on the embedded store.
    fn change_api_rules(&self, change: impl FnOnce(&mut Vec<Arc<Rule>>)) -> Result<(), SaveError> {
        let mut core = self.core.lock();
        change(&mut core.api_rules);
        if matches!(self.backing, Backing::Files) {
            let specs: Vec<SavedRule> = core
                .api_rules
                .iter()
                .map(|r| SavedRule {
                    project: &r.spec.project,
                    spec: &r.spec,
                })
                .collect();
            let bytes = serde_json::to_vec_pretty(&specs).map_err(std::io::Error::other)?;
            write_private_file(&self.dir.join("rules.json"), &bytes)?;
        }
        core.rebuild_batches();
        drop(core);
        self.changed.notify_one();
        Ok(())
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

    pub async fn create_silence(
        &self,
        project: &str,
        key_id: &str,
        spec: SilenceSpec,
    ) -> Result<SilenceView, SilenceChangeError> {
        let now = now_ns();
        let silence = check_silence(spec, project, key_id, now)?;
        let view = silence.view(now);
        if let Backing::Shared(shared) = &self.backing {
            shared
                .put_silence(&silence)
                .await
                .map_err(SaveError::from)?;
        }
        self.silences.lock().add(silence).map_err(SaveError::from)?;
        self.changed.notify_one();
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
    pub async fn expire_silence(&self, project: &str, id: &str) -> Result<bool, SaveError> {
        let expired = {
            let mut silences = self.silences.lock();
            if !silences.expire(project, id, now_ns())? {
                return Ok(false);
            }
            silences.get(project, id).cloned()
        };
        if let (Backing::Shared(shared), Some(silence)) = (&self.backing, expired) {
            shared.put_silence(&silence).await?;
        }
        self.changed.notify_one();
        Ok(true)
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

/// The API's rules as a node kept them in its data directory (`rules.json`).
fn own_rules(
    dir: &std::path::Path,
    default_interval_ns: i64,
    file: &LoadedFile,
) -> Result<Vec<Arc<Rule>>, EngineError> {
    let receivers = file.receiver_names();
    Ok(read_json::<Vec<RuleSpec>>(&dir.join("rules.json"))?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|spec| stored_api_rule(spec, default_interval_ns, &receivers))
        .collect())
}

/// An API rule as it was kept (a file, the shared table); `None`, said in the log, when it no
/// longer loads. One that names a receiver the rules file lacks loads, with a warning.
fn stored_api_rule(
    spec: RuleSpec,
    default_interval_ns: i64,
    receivers: &BTreeSet<String>,
) -> Option<Arc<Rule>> {
    let name = spec.name.clone();
    match Rule::new(spec, default_interval_ns) {
        Ok(rule) => {
            if let Err(e) = check_receivers(&rule, receivers) {
                tracing::warn!(rule = %name, error = %e, "an API rule names a receiver the rules file does not have");
            }
            Some(Arc::new(rule))
        }
        Err(e) => {
            tracing::error!(rule = %name, error = %e, "a stored API rule no longer loads; skipped");
            None
        }
    }
}

fn stamp(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

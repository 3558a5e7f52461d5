//! `vigil serve`: wires the pieces together and owns their lifecycle. No business logic here.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting requests and let in-flight ones finish; then stop
//! the background tasks, the batcher writing what is durable; then close the WAL (fsync). What did
//! not reach the store is replayed from the WAL on the next start.

use std::{collections::BTreeSet, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use vigil_access::{
    audit::{ALL_PROJECTS, AuditLog, AuditRecord, KEY_CREATE, RETENTION_DELETE, SYSTEM_KEY_ID},
    files::write_private_file,
    keys::{KeyStore, Role},
    throttle::FailedAuth,
};
use vigil_alerts::AlertEngine;
use vigil_api::{ApiTelemetry, Component};
use vigil_collector::{
    assemble::{AssemblerConfig, RunAssembler},
    batcher::{Batcher, BatcherConfig},
    enrich::{Enricher, UserHasher},
    grpc::GrpcIngest,
    pipeline::IngestPipeline,
    retention::{RetentionReport, spawn_retention},
    sink::{ClickHouseSink, Deleter, EmbeddedSink, EmbeddedSinkConfig, SealConfig, Sink},
    telemetry::{IngestTelemetry, WalFigures},
    wal::{Wal, WalConfig},
};
use vigil_eval::kill_switch::KillSwitches;
use vigil_query::{ClickHouseStore, EmbeddedStore, TraceStore};
use vigil_schemas::{
    clickhouse::{ClickHouseConfig, MigrationError, MigrationReport, Migrator},
    prices::PriceCatalog,
};
use vigil_transport::{Certificates, ClientAddr, Incoming, Protocols, TlsConfig};

use crate::{
    config::{Config, StoreKind},
    control,
    experiment_links::LinkingSink,
    process::ProcessFigures,
};

pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap.key";

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let stop_signals = StopSignals::listen();
    // Unusable TLS files stop the start before anything else is opened.
    let grpc_tls = certificates(&config.server.grpc_tls, "server.grpc_tls", Protocols::Grpc)?;
    let http_tls = certificates(&config.server.http_tls, "server.http_tls", Protocols::Http)?;
    let components = config.server.components.clone();
    let runs = |component| components.contains(&component);
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    // Held until the process ends: `vigil wal drain` refuses a directory a server runs on.
    let Some(_serving) = crate::wal_drain::lock_data_dir(&data_dir)? else {
        anyhow::bail!(
            "another vigil serve runs on {} (it holds {})",
            data_dir.display(),
            crate::wal_drain::SERVE_LOCK
        );
    };
    let node = control::node_name(&config);
    let keys = Arc::new(control::open_keys(&config, &node)?);
    let audit = Arc::new(AuditLog::open(data_dir.join("audit"))?);
    let shared_audit = control::share_audit(&config, &node, &audit)?;

    let hasher = match &config.security.user_hash_secret {
        Some(secret) => UserHasher::new(&hex::decode(secret)?),
        None => UserHasher::load_or_create(&data_dir.join("user-hash.key"))
            .context("loading the user-hash key")?,
    };
    let mut catalog = PriceCatalog::builtin()?;
    catalog.apply(&config.pricing.models)?;
    catalog.set_self_hosted(config.pricing.self_hosted);

    let wal = Arc::new(Wal::open(WalConfig {
        segment_bytes: config.wal.segment_bytes,
        max_backlog_bytes: config.wal.max_backlog_bytes,
        fsync: config.wal.fsync,
        ..WalConfig::new(data_dir.join("wal"))
    })?);
    let telemetry = Arc::new(IngestTelemetry::new());
    let assembler = RunAssembler::new(AssemblerConfig {
        orphan_after_ns: config.assembler.orphan_after.as_nanos(),
        max_traces: config.assembler.max_traces,
    });
    let pipeline = Arc::new(IngestPipeline::new(
        config.limits.clone(),
        Enricher::new(hasher, catalog),
        assembler,
        wal.clone(),
        telemetry.clone(),
    ));

    let accepting = CancellationToken::new();
    let background = CancellationToken::new();
    let mut tasks = Vec::new();

    type Stores = (Arc<dyn Sink>, Arc<dyn Deleter>, Arc<dyn TraceStore>);
    let (sink, deleter, store): Stores = match config.store.kind {
        StoreKind::Embedded => {
            let mut sink_config = EmbeddedSinkConfig::default();
            sink_config.compaction.seal_after = config.store.seal_after.get();
            sink_config.compaction.grace = config.store.compaction_grace.get();
            let sink = Arc::new(EmbeddedSink::open(&data_dir, sink_config)?);
            let interval = config.store.compaction_interval.get();
            tasks.push(sink.clone().spawn_compactor(interval, background.clone()));
            (
                sink.clone(),
                sink,
                Arc::new(EmbeddedStore::open(&data_dir)?),
            )
        }
        StoreKind::Clickhouse => {
            let ch = &config.store.clickhouse;
            if ch.migrate_on_start {
                tasks.push(tokio::spawn(migrate_until_done(
                    ch.clone(),
                    background.clone(),
                )));
            }
            let sink = Arc::new(ClickHouseSink::new(ch));
            let sealing = SealConfig {
                seal_after: config.store.seal_after.get(),
                grace: config.store.compaction_grace.get(),
            };
            let interval = config.store.compaction_interval.get();
            if runs(Component::Alerting) {
                tasks.push(
                    sink.clone()
                        .spawn_sealer(sealing, interval, background.clone()),
                );
            }
            (sink.clone(), sink, Arc::new(ClickHouseStore::new(ch)))
        }
    };

    // Shared keys are read once the migrations (started above) created their table.
    let keys_read = if keys.is_shared() {
        control::read_shared_keys(&keys).await?
    } else {
        true
    };
    if keys_read {
        bootstrap_admin_key(&keys, &audit, &data_dir).await?;
    }
    if keys.is_shared() {
        tasks.push(control::spawn_refresh(keys.clone(), background.clone()));
    }
    if let Some(shared_audit) = &shared_audit {
        tasks.push(control::spawn_refresh(
            shared_audit.clone(),
            background.clone(),
        ));
    }

    let evaluation = Arc::new(control::open_evaluation(&config, &node)?);
    if evaluation.is_shared() {
        tasks.push(control::spawn_refresh(
            evaluation.clone(),
            background.clone(),
        ));
    }
    // Runs that name their experiment and item are linked as they are stored.
    let sink: Arc<dyn Sink> = Arc::new(LinkingSink::new(sink, evaluation.clone()));
    let batcher = Batcher::new(
        wal.clone(),
        sink.clone(),
        BatcherConfig {
            max_rows: config.batcher.max_rows,
            max_delay: config.batcher.max_delay.get(),
            max_in_flight: config.batcher.max_in_flight(config.store.kind),
            ..Default::default()
        },
        telemetry.clone(),
    );
    tasks.push(tokio::spawn(batcher.run(background.clone())));
    tasks.push(
        pipeline
            .clone()
            .spawn_orphan_sweeper(Duration::from_secs(10), background.clone()),
    );

    if config.retention.enabled && runs(Component::Alerting) {
        let audit = audit.clone();
        tasks.push(spawn_retention(
            config.retention.clone(),
            deleter.clone(),
            move |report| record_retention(&audit, report),
            background.clone(),
        ));
    }

    // A node without ingest leaves the gRPC port alone.
    let grpc_incoming = if runs(Component::Ingest) {
        Some(listen(&config.server.grpc_listen, "gRPC", grpc_tls).await?)
    } else {
        None
    };
    let http_incoming = listen(&config.server.http_listen, "HTTP", http_tls).await?;
    let grpc_address = match &grpc_incoming {
        Some(incoming) => incoming.local_addr().to_string(),
        None => "-".into(),
    };
    let running: Vec<&str> = components.iter().map(|c| c.as_str()).collect();
    tracing::info!(
        components = running.join(","),
        grpc = grpc_address,
        http = %http_incoming.local_addr(),
        grpc_tls = config.server.grpc_tls.is_some(),
        http_tls = config.server.http_tls.is_some(),
        data_dir = %data_dir.display(),
        "vigil is serving"
    );

    let kill_switches =
        Arc::new(KillSwitches::open(&data_dir).context("opening the kill switches")?);
    if let Some(shared) = control::share_kill_switches(&config, &node, &kill_switches) {
        tasks.push(control::spawn_refresh(shared, background.clone()));
    }
    let runs_alerting = config.alerting.enabled && runs(Component::Alerting);
    let alerts = AlertEngine::open(
        config.alerting.clone(),
        &data_dir,
        store.clone(),
        kill_switches.clone(),
        audit.clone(),
        control::alert_sharing(&config, &node, runs_alerting, &background),
    )
    .context("starting alerting")?;
    if alerts.is_shared() {
        tasks.push(control::spawn_refresh(alerts.clone(), background.clone()));
    }
    if runs_alerting {
        tasks.push(tokio::spawn(alerts.clone().run(background.clone())));
        tasks.push(tokio::spawn(reload_on_sighup(
            alerts.clone(),
            background.clone(),
        )));
    }

    if let Some(receiver) = &config.audit.head_receiver {
        tasks.push(crate::audit_head::spawn_publisher(
            receiver.clone(),
            config.audit.head_interval.get(),
            audit.clone(),
            alerts.clone(),
            node.clone(),
            background.clone(),
        ));
    }

    let failed_auth = Arc::new(FailedAuth::new(config.rate_limits.failed_auth_limit()));
    let grpc_task = grpc_incoming.map(|incoming| {
        let grpc = GrpcIngest::new(pipeline.clone(), keys.clone(), failed_auth.clone());
        tokio::spawn(grpc.serve(incoming, accepting.clone()))
    });
    let rate_limits = Arc::new(vigil_api::RateLimiter::new(
        config.rate_limits.default_limit(),
    ));
    let api_telemetry = Arc::new(ApiTelemetry::default());
    let mut registry = Registry::default();
    pipeline.telemetry().register(&mut registry);
    registry.register_collector(Box::new(WalFigures(wal.clone())));
    alerts.telemetry().register(&mut registry);
    api_telemetry.register(&mut registry);
    rate_limits.register(&mut registry);
    registry.register_collector(Box::new(ProcessFigures));
    let app = vigil_api::app(vigil_api::AppState {
        pipeline: pipeline.clone(),
        store,
        keys,
        alerts: alerts.clone(),
        evaluation,
        kill_switches,
        deleter,
        audit,
        shared_audit,
        rate_limits,
        failed_auth,
        telemetry: api_telemetry,
        registry: Arc::new(registry),
        components: components.clone(),
    });
    let http_shutdown = accepting.clone();
    let http_task = tokio::spawn(async move {
        // With the peer's address: failed authentications are counted per address.
        let app = app.into_make_service_with_connect_info::<ClientAddr>();
        axum::serve(http_incoming, app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });

    stop_signals.wait().await;
    tracing::info!("shutting down: no longer accepting requests");
    accepting.cancel();
    let grace = config.server.shutdown_grace.get();
    let drained = tokio::time::timeout(grace, async {
        if let Some(grpc_task) = grpc_task {
            let _ = grpc_task.await;
        }
        let _ = http_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    background.cancel();
    let flushed = tokio::time::timeout(grace, async {
        for task in tasks {
            let _ = task.await;
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(
            "the store flush did not finish; the rest stays in the WAL for the next start"
        );
    }
    wal.close();
    tracing::info!("stopped");
    Ok(())
}

/// Writes a retention pass that deleted something to the audit log (key `system`).
/// The TLS side of a port configured with `tls` (`section` names it in errors), if any.
fn certificates(
    tls: &Option<TlsConfig>,
    section: &str,
    protocols: Protocols,
) -> anyhow::Result<Option<Arc<Certificates>>> {
    let Some(tls) = tls else { return Ok(None) };
    Ok(Some(Arc::new(Certificates::load(tls, section, protocols)?)))
}

/// Binds `address` for the `name`d port: plain TCP, or TLS with `tls` (which follows its files).
async fn listen(
    address: &str,
    name: &str,
    tls: Option<Arc<Certificates>>,
) -> anyhow::Result<Incoming> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {name} to {address}"))?;
    Ok(Incoming::start(listener, tls)?)
}

fn record_retention(audit: &AuditLog, report: &RetentionReport) {
    let record = AuditRecord {
        // Retention runs over every project.
        project_id: ALL_PROJECTS.into(),
        key_id: SYSTEM_KEY_ID.into(),
        action: RETENTION_DELETE.into(),
        parameters: serde_json::to_value(report).unwrap_or_default(),
        result_count: report.dropped.runs + report.expired.runs,
    };
    if let Err(e) = audit.append(record) {
        tracing::error!(error = %e, "the retention pass could not be written to the audit log");
    }
}

/// `vigil migrate`: applies the pending ClickHouse migrations on every node.
pub async fn migrate(config: &Config) -> anyhow::Result<MigrationReport> {
    if config.store.kind != StoreKind::Clickhouse {
        anyhow::bail!(
            "vigil migrate is for the ClickHouse store: set [store] kind = \"clickhouse\" or pass --clickhouse-url"
        );
    }
    Ok(Migrator::new(&config.store.clickhouse).run().await?)
}

/// `migrate_on_start`: applies the migrations, retrying while ClickHouse cannot be reached.
/// Ingest does not wait: the WAL keeps what arrives, and the batcher's writes succeed once the
/// tables exist.
async fn migrate_until_done(config: ClickHouseConfig, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    loop {
        match Migrator::new(&config).run().await {
            Ok(report) => {
                tracing::info!(report = %report.to_string().trim_end(), "clickhouse schema is current");
                return;
            }
            Err(e @ MigrationError::Checksum { .. }) => {
                tracing::error!(error = %e, "clickhouse schema conflict: run `vigil migrate` to see it; store writes will fail until it is resolved");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "clickhouse migrations failed; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// On first start, with no keys at all (on any node, when they are shared), creates an admin key for project `default`, prints it
/// once and writes it to `<data dir>/bootstrap.key` (mode 0600); the audit log records it as
/// created by `system`.
async fn bootstrap_admin_key(
    keys: &KeyStore,
    audit: &AuditLog,
    data_dir: &Path,
) -> anyhow::Result<()> {
    if !keys.list().await?.is_empty() {
        return Ok(());
    }
    let roles: BTreeSet<Role> = Role::ALL.into_iter().collect();
    let key = keys.create("default", roles, "bootstrap admin key").await?;
    let path = data_dir.join(BOOTSTRAP_KEY_FILE);
    write_private_file(&path, format!("{}\n", key.token).as_bytes())?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "Created the admin key for project \"default\" (shown once; also in {}):",
            path.display()
        );
        println!("  {}", key.token);
    }
    // After the token is saved and shown: a failure here must not lose the only admin key.
    audit
        .append(AuditRecord {
            project_id: key.record.project_id.clone(),
            key_id: SYSTEM_KEY_ID.into(),
            action: KEY_CREATE.into(),
            parameters: serde_json::json!(key.record.public_view()),
            result_count: 1,
        })
        .context("recording the bootstrap admin key in the audit log")?;
    Ok(())
}

/// SIGHUP reloads the alert rules file.
async fn reload_on_sighup(alerts: Arc<AlertEngine>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup.recv() => alerts.request_reload(),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (alerts, shutdown);
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the start of `serve`: a stop asked for while
/// the server is still starting (by a supervisor, or a test right after readiness) is then a
/// graceful one, not the signal's default death.
struct StopSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only"))
                .ok();
            StopSignals { signals }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut interrupt)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! `vigil demo`: sends a synthetic workload (see [`crate::generator`]) to a running Vigil over
//! gRPC, the way instrumented agents would: native and OTLP requests, in batches, paced, retrying
//! the collector's retryable refusals with back-off.
//!
//! Also home of the small gRPC client both this and `vigil bench ingest` use ([`IngestClient`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use vigil_proto::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse, trace_service_client::TraceServiceClient,
};
use vigil_proto::v1::{self, ingest_service_client::IngestServiceClient, rejection::ItemKind};

use crate::generator::{self, GeneratedRun, WorkloadConfig};

/// Where `vigil serve` listens for gRPC by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4317";

/// Attempts per request when the collector answers UNAVAILABLE or RESOURCE_EXHAUSTED.
const MAX_ATTEMPTS: u32 = 8;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one export call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Rejection messages kept in the report.
const MAX_REJECTION_SAMPLES: usize = 20;

/// Which ingest API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IngestProtocol {
    /// `vigil.v1.IngestService/Export`.
    Native,
    /// OTLP `TraceService/Export`.
    Otlp,
    /// Alternate: even batches (or client tasks) native, odd ones OTLP.
    #[default]
    Mixed,
}

impl IngestProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestProtocol::Native => "native",
            IngestProtocol::Otlp => "otlp",
            IngestProtocol::Mixed => "mixed",
        }
    }

    /// The protocol of the `index`-th batch or client task: `Mixed` alternates, starting native.
    pub fn for_index(self, index: usize) -> IngestProtocol {
        match self {
            IngestProtocol::Mixed if index.is_multiple_of(2) => IngestProtocol::Native,
            IngestProtocol::Mixed => IngestProtocol::Otlp,
            other => other,
        }
    }
}

impl fmt::Display for IngestProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IngestProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "native" => Ok(IngestProtocol::Native),
            "otlp" => Ok(IngestProtocol::Otlp),
            "mixed" => Ok(IngestProtocol::Mixed),
            other => Err(format!(
                "unknown protocol {other:?}: expected native, otlp or mixed"
            )),
        }
    }
}

/// A request to one of the two ingest APIs.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Native(v1::ExportRequest),
    Otlp(ExportTraceServiceRequest),
}

/// The collector's answer.
#[derive(Debug, Clone)]
pub(crate) enum Ack {
    Native(v1::ExportResponse),
    Otlp(ExportTraceServiceResponse),
}

impl Ack {
    /// Spans accepted, given how many were sent (OTLP reports only the rejected ones).
    pub(crate) fn accepted_spans(&self, sent: u64) -> u64 {
        match self {
            Ack::Native(r) => u64::from(r.accepted_spans),
            Ack::Otlp(r) => sent.saturating_sub(otlp_rejected(r)),
        }
    }
}

fn otlp_rejected(response: &ExportTraceServiceResponse) -> u64 {
    response
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// Both ingest clients over one connection, with the API key attached to every call.
#[derive(Debug, Clone)]
pub(crate) struct IngestClient {
    native: IngestServiceClient<Channel>,
    otlp: TraceServiceClient<Channel>,
    authorization: Option<MetadataValue<Ascii>>,
}

impl IngestClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:4317`); an empty token sends no key.
    pub(crate) async fn connect(
        endpoint: &str,
        token: &str,
        gzip: bool,
    ) -> anyhow::Result<IngestClient> {
        let authorization = if token.is_empty() {
            None
        } else {
            Some(
                MetadataValue::try_from(format!("Bearer {token}"))
                    .context("the API key contains characters that cannot go into a gRPC header")?,
            )
        };
        let channel = Endpoint::from_shared(endpoint.to_string())
            .with_context(|| format!("{endpoint:?} is not a valid endpoint URL"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {endpoint}: is the collector running?"))?;
        let mut native = IngestServiceClient::new(channel.clone());
        let mut otlp = TraceServiceClient::new(channel);
        if gzip {
            native = native.send_compressed(CompressionEncoding::Gzip);
            otlp = otlp.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(IngestClient {
            native,
            otlp,
            authorization,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    pub(crate) async fn export(&mut self, payload: Payload) -> Result<Ack, Status> {
        match payload {
            Payload::Native(message) => {
                let request = self.request(message);
                self.native
                    .export(request)
                    .await
                    .map(|r| Ack::Native(r.into_inner()))
            }
            Payload::Otlp(message) => {
                let request = self.request(message);
                self.otlp
                    .export(request)
                    .await
                    .map(|r| Ack::Otlp(r.into_inner()))
            }
        }
    }
}

/// The refusals a client should retry (docs/api.md#limits-and-refusals: backlog full, store down).
pub(crate) fn is_retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
}

/// Errors that will not go away by sending more: stop at once.
fn is_fatal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented
    )
}

pub(crate) fn now_ns() -> anyhow::Result<i64> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(since_epoch.as_nanos()).context("the system clock is past 2262")
}

/// What `vigil demo` does.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// gRPC endpoint of the collector.
    pub endpoint: String,
    /// API key with the `ingest` role; empty sends none.
    pub token: String,
    /// Workload seed: the same seed sends the same runs (with timestamps relative to now).
    pub seed: u64,
    /// Runs to send.
    pub runs: usize,
    /// Runs per second; `None` sends as fast as the collector acknowledges.
    pub rate: Option<f64>,
    pub protocol: IngestProtocol,
    /// Runs per request.
    pub batch_runs: usize,
    /// The runs' timestamps are spread over this window…
    pub history: Duration,
    /// …ending at this instant (ns since the epoch); `None`: now. Fixed, the same seed sends
    /// exactly the same runs every time (the store conformance tests send them to two stores).
    pub end_ns: Option<i64>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: String::new(),
            seed: 42,
            runs: 2_000,
            rate: None,
            protocol: IngestProtocol::Mixed,
            batch_runs: 50,
            history: Duration::from_secs(24 * 3600),
            end_ns: None,
        }
    }
}

impl DemoOptions {
    fn validate(&self) -> anyhow::Result<()> {
        if self.batch_runs == 0 {
            bail!("batch_runs is 0: a request needs at least one run");
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("rate is {rate}: it must be a positive number of runs per second");
        }
        Ok(())
    }
}

/// What one protocol carried and what the collector acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProtocolTally {
    /// Export calls acknowledged.
    pub requests: u64,
    pub runs_sent: u64,
    pub spans_sent: u64,
    /// Feedback scores; for OTLP batches they go through the native API (OTLP has no scores).
    pub scores_sent: u64,
    /// Native: as acknowledged. OTLP acknowledges spans only: the runs of requests in which no
    /// span was rejected.
    pub runs_accepted: u64,
    pub spans_accepted: u64,
    pub scores_accepted: u64,
}

/// What `vigil demo` sent and what came back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DemoReport {
    pub endpoint: String,
    pub protocol: IngestProtocol,
    pub seed: u64,
    pub runs_generated: usize,
    pub native: ProtocolTally,
    pub otlp: ProtocolTally,
    /// Items (runs, spans, scores) the collector rejected as invalid.
    pub rejected_items: u64,
    /// The first rejection messages.
    pub rejections: Vec<String>,
    /// Attempts repeated after a retryable refusal.
    pub retries: u64,
    /// Requests given up on (retries exhausted, or refused for good).
    pub failed_requests: u64,
    pub elapsed_secs: f64,
    /// The workload's bad prompt versions (`prompt_id@version`): rolled out halfway through the
    /// window, they fail and loop more; something to find in the dashboards and audit queries.
    pub bad_prompt_versions: Vec<String>,
}

impl DemoReport {
    pub fn runs_sent(&self) -> u64 {
        self.native.runs_sent + self.otlp.runs_sent
    }

    pub fn spans_sent(&self) -> u64 {
        self.native.spans_sent + self.otlp.spans_sent
    }

    pub fn spans_accepted(&self) -> u64 {
        self.native.spans_accepted + self.otlp.spans_accepted
    }

    /// Counts `items` rejected items, described by `message`.
    fn note_rejection(&mut self, items: u64, message: String) {
        self.rejected_items += items;
        if self.rejections.len() < MAX_REJECTION_SAMPLES {
            self.rejections.push(message);
        }
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sent {} of {} runs ({} spans, {} accepted) to {} in {:.1} s (seed {}, {})",
            self.runs_sent(),
            self.runs_generated,
            self.spans_sent(),
            self.spans_accepted(),
            self.endpoint,
            self.elapsed_secs,
            self.seed,
            self.protocol,
        )?;
        for (name, t) in [("native", &self.native), ("otlp", &self.otlp)] {
            if t.requests == 0 && t.runs_sent == 0 {
                continue;
            }
            writeln!(
                f,
                "  {name:<6} {} requests: sent {} runs, {} spans, {} scores; accepted {} runs, {} spans, {} scores",
                t.requests,
                t.runs_sent,
                t.spans_sent,
                t.scores_sent,
                t.runs_accepted,
                t.spans_accepted,
                t.scores_accepted,
            )?;
        }
        write!(
            f,
            "  rejected items: {}, retries: {}, failed requests: {}",
            self.rejected_items, self.retries, self.failed_requests
        )?;
        for message in &self.rejections {
            write!(f, "\n    {message}")?;
        }
        if !self.bad_prompt_versions.is_empty() {
            write!(
                f,
                "\n  bad prompt versions (more failures and loops, second half of the window): {}",
                self.bad_prompt_versions.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Generates the workload of `opts` and sends it to the collector at `opts.endpoint`.
///
/// Fails at once when the collector cannot be reached or refuses the key (UNAUTHENTICATED,
/// PERMISSION_DENIED) or the API (UNIMPLEMENTED); other failures are counted in the report.
pub async fn run_demo(opts: DemoOptions) -> anyhow::Result<DemoReport> {
    opts.validate()?;
    let history_ns = i64::try_from(opts.history.as_nanos()).context("history is too long")?;
    let end = match opts.end_ns {
        Some(end) => end,
        None => now_ns()?,
    };
    let runs = generator::generate(&WorkloadConfig::new(
        opts.seed,
        opts.runs,
        end.saturating_sub(history_ns),
        history_ns,
    ));
    let mut client = IngestClient::connect(&opts.endpoint, &opts.token, false).await?;
    let mut report = DemoReport {
        endpoint: opts.endpoint.clone(),
        protocol: opts.protocol,
        seed: opts.seed,
        runs_generated: runs.len(),
        bad_prompt_versions: generator::bad_prompt_versions()
            .into_iter()
            .map(|(id, version)| format!("{id}@{version}"))
            .collect(),
        ..Default::default()
    };
    let started = Instant::now();
    for (index, batch) in runs.chunks(opts.batch_runs).enumerate() {
        if let Some(rate) = opts.rate {
            let due = started + Duration::from_secs_f64((index * opts.batch_runs) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        match opts.protocol.for_index(index) {
            IngestProtocol::Otlp => send_otlp_batch(&mut client, batch, &mut report).await?,
            _ => send_native_batch(&mut client, batch, &mut report).await?,
        }
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    tracing::info!(
        runs = report.runs_sent(),
        spans = report.spans_sent(),
        rejected = report.rejected_items,
        "demo workload sent"
    );
    Ok(report)
}

async fn send_native_batch(
    client: &mut IngestClient,
    batch: &[GeneratedRun],
    report: &mut DemoReport,
) -> anyhow::Result<()> {
    let request = generator::to_native(batch);
    let (runs, spans, scores) = (
        request.runs.len(),
        request.spans.len(),
        request.scores.len(),
    );
    report.native.runs_sent += runs as u64;
    report.native.spans_sent += spans as u64;
    report.native.scores_sent += scores as u64;
    if let Some(Ack::Native(response)) =
        export_with_retry(client, Payload::Native(request), report).await?
    {
        report.native.requests += 1;
        report.native.runs_accepted += u64::from(response.accepted_runs);
        report.native.spans_accepted += u64::from(response.accepted_spans);
        report.native.scores_accepted += u64::from(response.accepted_scores);
        note_native_rejections(&response, report);
    }
    Ok(())
}

async fn send_otlp_batch(
    client: &mut IngestClient,
    batch: &[GeneratedRun],
    report: &mut DemoReport,
) -> anyhow::Result<()> {
    let request = generator::to_otlp(batch);
    let spans = generator::span_count(batch) as u64;
    report.otlp.runs_sent += batch.len() as u64;
    report.otlp.spans_sent += spans;
    if let Some(Ack::Otlp(response)) =
        export_with_retry(client, Payload::Otlp(request), report).await?
    {
        report.otlp.requests += 1;
        let rejected = otlp_rejected(&response);
        report.otlp.spans_accepted += spans.saturating_sub(rejected);
        if rejected == 0 {
            report.otlp.runs_accepted += batch.len() as u64;
        } else {
            let message = response
                .partial_success
                .as_ref()
                .map(|p| p.error_message.clone())
                .unwrap_or_default();
            report.note_rejection(
                rejected,
                format!("otlp: {rejected} spans rejected: {message}"),
            );
        }
    }

    // OTLP carries no scores: the feedback on these runs goes through the native API.
    let scores = generator::feedback_scores(batch);
    if scores.is_empty() {
        return Ok(());
    }
    report.otlp.scores_sent += scores.len() as u64;
    let request = v1::ExportRequest {
        scores,
        ..Default::default()
    };
    if let Some(Ack::Native(response)) =
        export_with_retry(client, Payload::Native(request), report).await?
    {
        report.otlp.scores_accepted += u64::from(response.accepted_scores);
        note_native_rejections(&response, report);
    }
    Ok(())
}

fn note_native_rejections(response: &v1::ExportResponse, report: &mut DemoReport) {
    for r in &response.rejections {
        let kind = match ItemKind::try_from(r.kind) {
            Ok(ItemKind::Run) => "run",
            Ok(ItemKind::Span) => "span",
            Ok(ItemKind::Score) => "score",
            _ => "item",
        };
        report.note_rejection(
            1,
            format!("native: {kind}[{}] {}: {}", r.index, r.field, r.reason),
        );
    }
}

/// Sends `payload`, retrying retryable refusals with exponential back-off. `None` when the
/// request was given up on (counted in the report).
async fn export_with_retry(
    client: &mut IngestClient,
    payload: Payload,
    report: &mut DemoReport,
) -> anyhow::Result<Option<Ack>> {
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt = 1;
    loop {
        match client.export(payload.clone()).await {
            Ok(ack) => return Ok(Some(ack)),
            Err(status) if is_fatal(&status) => {
                bail!(
                    "the collector refused the export ({:?}): {}",
                    status.code(),
                    status.message()
                );
            }
            Err(status) if is_retryable(&status) && attempt < MAX_ATTEMPTS => {
                tracing::debug!(code = ?status.code(), attempt, backoff_ms = backoff.as_millis() as u64, "export refused; retrying");
                report.retries += 1;
                attempt += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "export failed; giving up on this batch");
                report.failed_requests += 1;
                if report.rejections.len() < MAX_REJECTION_SAMPLES {
                    report.rejections.push(format!(
                        "request failed ({:?}): {}",
                        status.code(),
                        status.message()
                    ));
                }
                return Ok(None);
            }
        }
    }
}

/// Where the CLI finds the API key: `--token` / `VIGIL_TOKEN`, else the bootstrap key file
/// `vigil serve` writes on first start.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// API key (Bearer token) with the `ingest` role.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the key, read when no token is given.
    #[arg(long, default_value = "vigil-data/bootstrap.key")]
    pub token_file: PathBuf,
}

impl KeyArgs {
    /// The token to send; empty when none is given and the file does not exist.
    pub fn resolve(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.trim().to_string());
        }
        match std::fs::read_to_string(&self.token_file) {
            Ok(text) => Ok(text.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.token_file.display())),
        }
    }
}

/// `vigil demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// gRPC endpoint of the collector.
    #[arg(long, env = "VIGIL_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Workload seed; the same seed sends the same runs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Runs to send.
    #[arg(long, default_value_t = 2_000)]
    pub runs: usize,
    /// Runs per second (default: as fast as the collector acknowledges).
    #[arg(long)]
    pub rate: Option<f64>,
    /// native, otlp or mixed (alternating batches).
    #[arg(long, default_value = "mixed")]
    pub protocol: IngestProtocol,
    /// Runs per request.
    #[arg(long, default_value_t = 50)]
    pub batch_runs: usize,
    /// Hours of history the runs' timestamps cover, ending now (or at --end-time).
    #[arg(long, default_value_t = 24.0)]
    pub history_hours: f64,
    /// End of the history window (RFC 3339, e.g. 2026-11-23T12:00:00Z) instead of now: the same
    /// seed and end time send exactly the same runs.
    #[arg(long)]
    pub end_time: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil demo` and prints its report.
#[allow(clippy::print_stdout)]
pub async fn run_cli(args: DemoArgs) -> anyhow::Result<()> {
    let history = Duration::try_from_secs_f64(args.history_hours * 3600.0).with_context(|| {
        format!(
            "--history-hours {} is not a usable duration",
            args.history_hours
        )
    })?;
    let report = run_demo(DemoOptions {
        endpoint: args.endpoint,
        token: args.key.resolve()?,
        seed: args.seed,
        runs: args.runs,
        rate: args.rate,
        protocol: args.protocol,
        batch_runs: args.batch_runs,
        history,
        end_ns: args
            .end_time
            .as_deref()
            .map(|text| {
                vigil_schemas::time::parse_rfc3339(text)
                    .with_context(|| format!("--end-time {text:?} is not an RFC 3339 time"))
            })
            .transpose()?,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_parses_and_alternates() {
        assert_eq!("OTLP".parse::<IngestProtocol>(), Ok(IngestProtocol::Otlp));
        assert_eq!(
            " native ".parse::<IngestProtocol>(),
            Ok(IngestProtocol::Native)
        );
        assert!("grpc".parse::<IngestProtocol>().is_err());
        let mixed: Vec<_> = (0..4).map(|i| IngestProtocol::Mixed.for_index(i)).collect();
        assert_eq!(
            mixed,
            [
                IngestProtocol::Native,
                IngestProtocol::Otlp,
                IngestProtocol::Native,
                IngestProtocol::Otlp
            ]
        );
        assert_eq!(IngestProtocol::Otlp.for_index(0), IngestProtocol::Otlp);
    }

    #[test]
    fn retry_classes() {
        assert!(is_retryable(&Status::unavailable("store down")));
        assert!(is_retryable(&Status::resource_exhausted("backlog full")));
        assert!(!is_retryable(&Status::invalid_argument("bad")));
        assert!(is_fatal(&Status::unauthenticated("no key")));
        assert!(!is_fatal(&Status::unavailable("later")));
    }

    /// A collector that refuses its first `refuse_first` calls with RESOURCE_EXHAUSTED, then
    /// accepts everything but one span per native request and two spans per OTLP request.
    struct FakeCollector {
        calls: std::sync::atomic::AtomicU32,
        refuse_first: u32,
    }

    impl FakeCollector {
        fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
            let key = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if key != Some("Bearer secret") {
                return Err(Status::unauthenticated("missing or invalid API key"));
            }
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if call < self.refuse_first {
                return Err(Status::resource_exhausted("backlog full"));
            }
            Ok(())
        }
    }

    #[tonic::async_trait]
    impl v1::ingest_service_server::IngestService for FakeCollector {
        async fn export(
            &self,
            request: Request<v1::ExportRequest>,
        ) -> Result<tonic::Response<v1::ExportResponse>, Status> {
            self.admit(&request)?;
            let r = request.into_inner();
            let rejections: Vec<v1::Rejection> = (!r.spans.is_empty())
                .then(|| v1::Rejection {
                    kind: ItemKind::Span as i32,
                    index: 0,
                    field: "span.name".into(),
                    reason: "test rejection".into(),
                })
                .into_iter()
                .collect();
            Ok(tonic::Response::new(v1::ExportResponse {
                accepted_runs: r.runs.len() as u32,
                accepted_spans: (r.spans.len() - rejections.len()) as u32,
                accepted_scores: r.scores.len() as u32,
                rejections,
            }))
        }
    }

    #[tonic::async_trait]
    impl vigil_proto::otlp::collector::trace::v1::trace_service_server::TraceService for FakeCollector {
        async fn export(
            &self,
            request: Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
            self.admit(&request)?;
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: Some(
                    vigil_proto::otlp::collector::trace::v1::ExportTracePartialSuccess {
                        rejected_spans: 2,
                        error_message: "two bad spans".into(),
                    },
                ),
            }))
        }
    }

    async fn start_fake_collector(refuse_first: u32) -> String {
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("an address");
        let fake = Arc::new(FakeCollector {
            calls: Default::default(),
            refuse_first,
        });
        let server = tonic::transport::Server::builder()
            .add_service(v1::ingest_service_server::IngestServiceServer::from_arc(fake.clone()))
            .add_service(
                vigil_proto::otlp::collector::trace::v1::trace_service_server::TraceServiceServer::from_arc(
                    fake,
                ),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn demo_retries_refusals_and_counts_what_was_acknowledged() {
        let endpoint = start_fake_collector(2).await;
        let opts = DemoOptions {
            endpoint,
            token: "secret".into(),
            seed: 3,
            runs: 40,
            rate: Some(200.0),
            protocol: IngestProtocol::Mixed,
            batch_runs: 10,
            history: Duration::from_secs(3600),
            end_ns: None,
        };
        let report = run_demo(opts.clone()).await.expect("the demo runs");

        // Expected counts, from the same workload (timestamps shift, the runs do not).
        let runs = generator::generate(&WorkloadConfig::new(3, 40, 0, 3_600_000_000_000));
        let batches: Vec<&[GeneratedRun]> = runs.chunks(10).collect();
        let count = |odd: bool, f: &dyn Fn(&[GeneratedRun]) -> usize| -> u64 {
            batches
                .iter()
                .enumerate()
                .filter(|(i, _)| (i % 2 == 1) == odd)
                .map(|(_, b)| f(b) as u64)
                .sum()
        };
        let spans = |b: &[GeneratedRun]| generator::span_count(b);
        let scores = |b: &[GeneratedRun]| b.iter().filter(|r| r.feedback.is_some()).count();
        assert_eq!(report.retries, 2, "the first two calls were refused");
        assert_eq!(report.failed_requests, 0);
        assert_eq!(report.runs_generated, 40);
        assert_eq!(report.native.requests, 2);
        assert_eq!(report.native.runs_sent, 20);
        assert_eq!(report.native.runs_accepted, 20);
        assert_eq!(report.native.spans_sent, count(false, &spans));
        assert_eq!(report.native.spans_accepted, count(false, &spans) - 2);
        assert_eq!(report.native.scores_sent, count(false, &scores));
        assert_eq!(report.native.scores_accepted, count(false, &scores));
        assert_eq!(report.otlp.requests, 2);
        assert_eq!(report.otlp.runs_sent, 20);
        assert_eq!(
            report.otlp.runs_accepted, 0,
            "every OTLP request had rejections"
        );
        assert_eq!(report.otlp.spans_sent, count(true, &spans));
        assert_eq!(report.otlp.spans_accepted, count(true, &spans) - 4);
        assert_eq!(report.otlp.scores_sent, count(true, &scores));
        assert_eq!(report.otlp.scores_accepted, count(true, &scores));
        // One span per native request and two per OTLP request (plus the scores requests' none).
        assert_eq!(report.rejected_items, 2 + 4);
        assert!(
            report
                .rejections
                .iter()
                .any(|m| m.contains("span[0] span.name: test rejection"))
        );
        assert!(
            report
                .rejections
                .iter()
                .any(|m| m.contains("two bad spans"))
        );
        // Paced: the fourth batch (runs 30..40) is due 30 / 200 s after the start.
        assert!(report.elapsed_secs >= 0.15, "{}", report.elapsed_secs);
        assert!(report.to_string().contains("sent 40 of 40 runs"));

        let refused = run_demo(DemoOptions {
            token: "wrong".into(),
            ..opts
        })
        .await
        .expect_err("a wrong key stops the demo");
        assert!(refused.to_string().contains("Unauthenticated"), "{refused}");
    }

    #[test]
    fn options_are_checked() {
        let mut opts = DemoOptions::default();
        assert!(opts.validate().is_ok());
        opts.batch_runs = 0;
        assert!(opts.validate().is_err());
        opts.batch_runs = 10;
        opts.rate = Some(0.0);
        assert!(opts.validate().is_err());
    }
}

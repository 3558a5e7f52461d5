//! The ingest service both front doors share (gRPC here, HTTP in `vigil-api`):
//! authorize → decode + validate → enrich → assemble runs → WAL (ack) — and nothing else.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vigil_access::keys::{Principal, Role};
use vigil_proto::{
    otlp::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    v1,
};
use vigil_schemas::{
    IngestBatch,
    limits::{FieldError, Limits},
    time::now_ns,
};

use crate::{
    assemble::RunAssembler,
    draft::{ItemKind, Rejected},
    enrich::Enricher,
    error::IngestError,
    native::decode_native,
    otlp::{count_spans, decode_otlp},
    record,
    telemetry::{IngestTelemetry, Protocol, Refusal},
    wal::Wal,
};

/// How many rejections an OTLP `partial_success.error_message` spells out.
const REJECTIONS_IN_MESSAGE: usize = 10;

pub struct IngestPipeline {
    limits: Limits,
    enricher: Enricher,
    assembler: Mutex<RunAssembler>,
    wal: Arc<Wal>,
    telemetry: Arc<IngestTelemetry>,
}

impl IngestPipeline {
    pub fn new(
        limits: Limits,
        enricher: Enricher,
        assembler: RunAssembler,
        wal: Arc<Wal>,
        telemetry: Arc<IngestTelemetry>,
    ) -> IngestPipeline {
        IngestPipeline {
            limits,
            enricher,
            assembler: Mutex::new(assembler),
            wal,
            telemetry,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn enricher(&self) -> &Enricher {
        &self.enricher
    }

    pub fn telemetry(&self) -> &IngestTelemetry {
        &self.telemetry
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// `vigil.v1.IngestService/Export`.
    pub async fn export_native(
        &self,
        principal: &Principal,
        request: v1::ExportRequest,
    ) -> Result<v1::ExportResponse, IngestError> {
        let started = Instant::now();
        authorize(principal)?;
        self.telemetry.request(Protocol::Native);
        let items = request.runs.len() + request.spans.len() + request.scores.len();
        self.check_item_count(items)?;
        let now = now_ns();
        let draft = decode_native(request, &self.limits, now);
        let project = &principal.project_id;
        let runs = draft
            .runs
            .into_iter()
            .map(|d| {
                let mut run = self.enricher.enrich_run(d);
                project.clone_into(&mut run.project_id);
                run
            })
            .collect();
        let spans = draft
            .spans
            .into_iter()
            .map(|mut span| {
                project.clone_into(&mut span.project_id);
                self.enricher.enrich_span(&mut span);
                span
            })
            .collect();
        let scores = draft
            .scores
            .into_iter()
            .map(|mut score| {
                project.clone_into(&mut score.project_id);
                score
            })
            .collect();
        let batch = IngestBatch {
            runs,
            spans,
            scores,
        };
        let accepted = (batch.runs.len(), batch.spans.len(), batch.scores.len());
        self.commit(batch, Some((Protocol::Native, started)))
            .await?;
        self.count_rejections(&draft.rejected);
        Ok(v1::ExportResponse {
            accepted_runs: accepted.0 as u32,
            accepted_spans: accepted.1 as u32,
            accepted_scores: accepted.2 as u32,
            rejections: draft.rejected.iter().map(to_native_rejection).collect(),
        })
    }

    /// OTLP `TraceService/Export`, over gRPC or HTTP.
    pub async fn export_otlp(
        &self,
        principal: &Principal,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let started = Instant::now();
        authorize(principal)?;
        self.telemetry.request(Protocol::Otlp);
        self.check_item_count(count_spans(&request))?;
        let now = now_ns();
        let mut draft = decode_otlp(request, &self.limits, now);
        for span in &mut draft.spans {
            principal.project_id.clone_into(&mut span.row.project_id);
            self.enricher.enrich_span(&mut span.row);
            self.enricher.enrich_context(&mut span.run);
        }
        let (spans, runs) = self.assembler.lock().accept(draft.spans, now);
        self.commit(
            IngestBatch {
                runs,
                spans,
                scores: Vec::new(),
            },
            Some((Protocol::Otlp, started)),
        )
        .await?;
        self.count_rejections(&draft.rejected);
        let partial_success = (!draft.rejected.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: draft.rejected.len() as i64,
            error_message: describe_rejections(&draft.rejected),
        });
        Ok(ExportTraceServiceResponse { partial_success })
    }

    /// Writes runs for traces whose root span is overdue; returns how many.
    pub async fn synthesize_overdue_runs(&self) -> Result<usize, IngestError> {
        let runs = self.assembler.lock().expire(now_ns());
        let n = runs.len();
        if n > 0 {
            self.commit(
                IngestBatch {
                    runs,
                    ..Default::default()
                },
                None,
            )
            .await?;
            self.telemetry.synthesized(n);
        }
        Ok(n)
    }

    /// Runs [`Self::synthesize_overdue_runs`] every `interval` until shutdown.
    pub fn spawn_orphan_sweeper(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                if let Err(e) = self.synthesize_overdue_runs().await {
                    tracing::warn!(error = %e, "could not write synthesized runs; will retry");
                }
            }
        })
    }

    fn check_item_count(&self, items: usize) -> Result<(), IngestError> {
        let limit = self.limits.max_items_per_request;
        if items > limit {
            return Err(IngestError::InvalidRequest(FieldError::new(
                "request",
                format!("{items} items in one request, the limit is {limit}"),
            )));
        }
        Ok(())
    }

    /// Makes the batch durable; returns once it is fsync'd. `request`: the export request it
    /// answers and when that started, to time the acknowledgement.
    async fn commit(
        &self,
        batch: IngestBatch,
        request: Option<(Protocol, Instant)>,
    ) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        let counts = [
            (ItemKind::Run, batch.runs.len()),
            (ItemKind::Span, batch.spans.len()),
            (ItemKind::Score, batch.scores.len()),
        ];
        let (payload, batch) = record::encode_owned(batch);
        // The batch itself rides along, so the batcher need not decode the record again.
        match self.wal.append_with(payload, Some(Arc::new(batch))).await {
            Ok(_) => {
                for (kind, n) in counts {
                    self.telemetry.accepted(kind, n);
                }
                if let Some((protocol, started)) = request {
                    self.telemetry.acknowledged(protocol, started.elapsed());
                }
                Ok(())
            }
            Err(e) => {
                let e = IngestError::from(e);
                self.telemetry.refused(match e {
                    IngestError::Backlog(_) => Refusal::BacklogFull,
                    _ => Refusal::Unavailable,
                });
                Err(e)
            }
        }
    }

    fn count_rejections(&self, rejected: &[Rejected]) {
        for r in rejected {
            self.telemetry.rejected(&r.error.field);
        }
    }
}

fn authorize(principal: &Principal) -> Result<(), IngestError> {
    if principal.has(Role::Ingest) {
        Ok(())
    } else {
        Err(IngestError::PermissionDenied("ingest"))
    }
}

fn to_native_rejection(r: &Rejected) -> v1::Rejection {
    let kind = match r.item {
        ItemKind::Run => v1::rejection::ItemKind::Run,
        ItemKind::Span => v1::rejection::ItemKind::Span,
        ItemKind::Score => v1::rejection::ItemKind::Score,
    };
    v1::Rejection {
        kind: kind as i32,
        index: r.index as u32,
        field: r.error.field.clone(),
        reason: r.error.reason.clone(),
    }
}

/// `spans[3] span.attributes: 10000 attributes, the limit is 512; …`
fn describe_rejections(rejected: &[Rejected]) -> String {
    let mut parts: Vec<String> = rejected
        .iter()
        .take(REJECTIONS_IN_MESSAGE)
        .map(|r| format!("spans[{}] {}", r.index, r.error))
        .collect();
    if rejected.len() > REJECTIONS_IN_MESSAGE {
        parts.push(format!(
            "and {} more",
            rejected.len() - REJECTIONS_IN_MESSAGE
        ));
    }
    parts.join("; ")
}

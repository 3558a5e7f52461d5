//! Sustained native ingest from several concurrent senders, recording exactly what the servers
//! acknowledged. A sender that is refused with a retryable status (the WAL backlog is full, the
//! server is shutting down) retries the same request after a pause, as an SDK does; one whose
//! server is gone stops, or with several servers sends the request to the next one.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tonic::{Code, Request, metadata::MetadataValue};
use vigil_proto::v1::{self, ingest_service_client::IngestServiceClient};

use super::Vigil;

pub const RUNS_PER_REQUEST: u64 = 10;
pub const SPANS_PER_RUN: u64 = 3;
pub const AGENT: &str = "load-test";

/// Trace id → span ids, of everything acknowledged.
pub type Acked = BTreeMap<String, Vec<String>>;

/// How many spans were acknowledged.
pub fn acked_spans(acked: &Acked) -> u64 {
    acked.values().map(|spans| spans.len() as u64).sum()
}

/// Request number `batch`: runs `batch * RUNS_PER_REQUEST ..`, each with a root and two children.
pub fn request(batch: u64, now: i64) -> (v1::ExportRequest, Vec<(String, Vec<String>)>) {
    let mut req = v1::ExportRequest::default();
    let mut ids = Vec::new();
    for r in 0..RUNS_PER_REQUEST {
        let n = batch * RUNS_PER_REQUEST + r;
        let trace_id = format!("{:032x}", n + 1);
        let start = now - 5_000_000_000 + (n as i64 % 1000) * 1_000_000;
        req.runs.push(v1::Run {
            trace_id: trace_id.clone(),
            session_id: format!("s{}", n % 50),
            agent_name: AGENT.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000_000_000,
            outcome: v1::Outcome::Success as i32,
            ..Default::default()
        });
        let mut span_ids = Vec::new();
        for s in 0..SPANS_PER_RUN {
            let span_id = format!("{:016x}", n * 16 + s + 1);
            req.spans.push(v1::Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: if s == 0 {
                    String::new()
                } else {
                    format!("{:016x}", n * 16 + 1)
                },
                kind: v1::SpanKind::Tool as i32,
                name: format!("step-{s}"),
                start_time_unix_nano: start + s as i64,
                end_time_unix_nano: start + 1_000,
                ..Default::default()
            });
            span_ids.push(span_id);
        }
        ids.push((trace_id, span_ids));
    }
    (req, ids)
}

pub struct Load {
    acked: Arc<std::sync::Mutex<Acked>>,
    next_batch: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Retryable refusals seen (RESOURCE_EXHAUSTED, UNAVAILABLE).
    pub refusals: Arc<AtomicU64>,
    senders: Vec<JoinHandle<()>>,
}

impl Load {
    /// Senders to one server; a sender whose server is gone stops.
    pub fn start(vigil: &Vigil, senders: usize) -> Load {
        Load::start_over(&[vigil], senders)
    }

    /// Senders spread over `vigils` (servers behind a load balancer, as a client sees them):
    /// with more than one, a sender whose server is gone sends the same request to the next,
    /// as an SDK retrying through a load balancer does.
    pub fn start_over(vigils: &[&Vigil], senders: usize) -> Load {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let load = Load {
            acked: Default::default(),
            next_batch: Default::default(),
            stop: Default::default(),
            refusals: Default::default(),
            senders: Vec::new(),
        };
        let auth: MetadataValue<_> = format!("Bearer {}", vigils[0].token).parse().unwrap();
        let endpoints: Arc<Vec<String>> = Arc::new(vigils.iter().map(|v| v.grpc()).collect());
        let fail_over = endpoints.len() > 1;
        let senders = (0..senders)
            .map(|sender| {
                let (acked, next_batch, stop, refusals, auth, endpoints) = (
                    load.acked.clone(),
                    load.next_batch.clone(),
                    load.stop.clone(),
                    load.refusals.clone(),
                    auth.clone(),
                    endpoints.clone(),
                );
                tokio::spawn(async move {
                    let mut at = sender % endpoints.len();
                    let mut client = None;
                    while !stop.load(Ordering::Relaxed) {
                        let (req, ids) = request(next_batch.fetch_add(1, Ordering::Relaxed), now);
                        loop {
                            let connected = match client.take() {
                                Some(connected) => Ok(connected),
                                None => IngestServiceClient::connect(endpoints[at].clone()).await,
                            };
                            let answer = match connected {
                                Ok(mut connected) => {
                                    let mut request = Request::new(req.clone());
                                    request.metadata_mut().insert("authorization", auth.clone());
                                    let answer = connected.export(request).await;
                                    client = Some(connected);
                                    answer.map(|_| ())
                                }
                                Err(e) => {
                                    Err(tonic::Status::unavailable(format!("transport: {e}")))
                                }
                            };
                            match answer {
                                Ok(()) => {
                                    acked.lock().unwrap().extend(ids);
                                    break;
                                }
                                Err(status)
                                    if matches!(
                                        status.code(),
                                        Code::ResourceExhausted | Code::Unavailable
                                    ) && !status.message().contains("transport") =>
                                {
                                    refusals.fetch_add(1, Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                                // The server is gone (kill -9): this request's fate is unknown;
                                // it goes to the next server.
                                Err(_) if fail_over && !stop.load(Ordering::Relaxed) => {
                                    client = None;
                                    at = (at + 1) % endpoints.len();
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                Err(_) => return,
                            }
                        }
                    }
                })
            })
            .collect();
        Load { senders, ..load }
    }

    /// Runs acknowledged so far.
    pub fn acked_runs(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Requests handed out so far (acknowledged or not).
    pub fn sent_requests(&self) -> u64 {
        self.next_batch.load(Ordering::Relaxed)
    }

    /// Stops sending (each sender finishes the request it is on) and returns what was acked.
    pub async fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            let _ = sender.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

//! The gRPC front door on :4317: `vigil.v1.IngestService` and OTLP `TraceService`.
//! Handlers authenticate, call the pipeline and map the error — nothing else.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, codec::CompressionEncoding};
use vigil_access::{
    keys::{KeyStore, Principal},
    throttle::FailedAuth,
};
use vigil_proto::{
    otlp::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    v1::{
        self,
        ingest_service_server::{IngestService, IngestServiceServer},
    },
};
use vigil_transport::Incoming;

use crate::{error::IngestError, pipeline::IngestPipeline};

#[derive(Clone)]
pub struct GrpcIngest {
    pipeline: Arc<IngestPipeline>,
    keys: Arc<KeyStore>,
    failed_auth: Arc<FailedAuth>,
}

impl GrpcIngest {
    pub fn new(
        pipeline: Arc<IngestPipeline>,
        keys: Arc<KeyStore>,
        failed_auth: Arc<FailedAuth>,
    ) -> GrpcIngest {
        GrpcIngest {
            pipeline,
            keys,
            failed_auth,
        }
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let address = request.remote_addr().map(|a| a.ip());
        self.failed_auth
            .guard(address, || {
                request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| self.keys.authenticate_header(v))
            })
            .map_err(|refusal| Status::from(IngestError::from(refusal)))
    }

    /// Serves both services on the `incoming` connections (TLS or not) until `shutdown`, then
    /// lets in-flight calls finish.
    pub async fn serve(
        self,
        incoming: Incoming,
        shutdown: CancellationToken,
    ) -> Result<(), tonic::transport::Error> {
        let max = self.pipeline.limits().max_message_bytes;
        let native = IngestServiceServer::new(self.clone())
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
        let otlp = TraceServiceServer::new(self)
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
        tonic::transport::Server::builder()
            .add_service(native)
            .add_service(otlp)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
    }
}

#[tonic::async_trait]
impl IngestService for GrpcIngest {
    async fn export(
        &self,
        request: Request<v1::ExportRequest>,
    ) -> Result<Response<v1::ExportResponse>, Status> {
        let principal = self.authenticate(&request)?;
        let response = self
            .pipeline
            .export_native(&principal, request.into_inner())
            .await?;
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl TraceService for GrpcIngest {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let principal = self.authenticate(&request)?;
        let response = self
            .pipeline
            .export_otlp(&principal, request.into_inner())
            .await?;
        Ok(Response::new(response))
    }
}

//! OTLP/HTTP ingest: `POST /v1/traces` and the Langfuse-compatible
//! `POST /api/public/otel/v1/traces`, protobuf or JSON, optionally gzip-compressed.
//! The response uses the request's encoding, as the OTLP/HTTP specification asks.

use std::io::Read;

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use prost::Message;
use vigil_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;

use crate::{
    AppState,
    auth::IngestCaller,
    body::{body_error, media_type},
    error::ApiError,
};

enum Encoding {
    Protobuf,
    Json,
}

pub async fn export(
    State(state): State<AppState>,
    caller: IngestCaller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let limit = state.pipeline.limits().max_message_bytes;
    let body = body.map_err(|e| body_error(e, limit))?;
    let encoding = match media_type(&headers).as_deref() {
        Some("application/x-protobuf") | Some("application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        other => {
            return Err(ApiError::unsupported_media(format!(
                "content-type {:?} is not supported; send application/x-protobuf or application/json",
                other.unwrap_or("(none)")
            )));
        }
    };
    let body = decompress(&headers, body, limit)?;
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| {
            ApiError::bad_request("body", format!("not a valid OTLP protobuf message: {e}"))
        })?,
        Encoding::Json => {
            serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| {
                ApiError::bad_request("body", format!("not a valid OTLP JSON message: {e}"))
            })?
        }
    };
    let response = state.pipeline.export_otlp(&caller.0, request).await?;
    Ok(match encoding {
        Encoding::Protobuf => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => Json(response).into_response(),
    })
}

/// Undoes `Content-Encoding: gzip`, refusing output past `limit` (a zip bomb stops there).
fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::with_capacity(body.len() * 4);
            let mut decoder = flate2::read::GzDecoder::new(body.as_ref()).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request("body", format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(ApiError::unsupported_media(format!(
            "content-encoding {other:?} is not supported; send gzip or no encoding"
        ))),
    }
}

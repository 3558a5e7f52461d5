//! OTLP/HTTP ingest: `POST /v1/traces` and the Langfuse-compatible
//! `POST /api/public/otel/v1/traces`, protobuf or JSON, optionally gzip-compressed.
//! The response uses the request's encoding, as the OTLP/HTTP specification asks.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use prost::Message;
use serde_json::{Value, json};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{RefOr, schema::Schema},
};
use vigil_collector::{
    gzip::{GunzipError, gunzip},
    otlp_json,
};
use vigil_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use vigil_schemas::openapi::from_json;

use crate::{
    AppState,
    auth::IngestCaller,
    body::{body_error, media_type},
    error::{
        ApiError, BadRequest, PayloadTooLarge, TooManyRequests, Unavailable, UnsupportedMediaType,
    },
};

/// An OTLP/JSON `ExportTraceServiceRequest`: the OpenTelemetry protocol's own message, described
/// here only as far as its outer shape.
pub struct OtlpExportRequest;

impl PartialSchema for OtlpExportRequest {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "type": "object",
            "description": "An OTLP/JSON `ExportTraceServiceRequest`: ids as hexadecimal \
                strings, 64-bit integers as strings or numbers, enums as integers. See \
                https://opentelemetry.io/docs/specs/otlp/#otlphttp.",
            "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
        }))
    }
}

impl ToSchema for OtlpExportRequest {}

/// The answer to an export, as OTLP defines it.
pub struct OtlpExportResponse;

impl PartialSchema for OtlpExportResponse {
    fn schema() -> RefOr<Schema> {
        from_json(json!({
            "type": "object",
            "properties": {
                "partialSuccess": {
                    "description": "Absent or null when every span was accepted.",
                    "type": ["object", "null"],
                    "properties": {
                        "rejectedSpans": {"type": "integer", "format": "int64", "minimum": 0},
                        "errorMessage": {
                            "type": "string",
                            "description": "The first rejections: span index, field and reason.",
                        },
                    },
                },
            },
        }))
    }
}

impl ToSchema for OtlpExportResponse {}

/// An example request: one run of two spans.
fn otlp_example() -> Value {
    let attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                attribute("service.name", "support-bot"),
                attribute("deployment.environment.name", "production"),
            ]},
            "scopeSpans": [{
                "scope": {"name": "example"},
                "spans": [
                    {
                        "traceId": trace_id,
                        "spanId": "b7ad6b7169203331",
                        "name": "invoke_agent support-bot",
                        "kind": 1,
                        "startTimeUnixNano": "1795428000000000000",
                        "endTimeUnixNano": "1795428002500000000",
                        "attributes": [
                            attribute("gen_ai.operation.name", "invoke_agent"),
                            attribute("gen_ai.agent.name", "support-bot"),
                            attribute("session.id", "session-42"),
                        ],
                        "status": {"code": 1},
                    },
                    {
                        "traceId": trace_id,
                        "spanId": "00f067aa0ba902b7",
                        "parentSpanId": "b7ad6b7169203331",
                        "name": "chat gpt-4o",
                        "kind": 3,
                        "startTimeUnixNano": "1795428000100000000",
                        "endTimeUnixNano": "1795428002000000000",
                        "attributes": [
                            attribute("gen_ai.operation.name", "chat"),
                            attribute("gen_ai.request.model", "gpt-4o"),
                            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
                            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "96"}},
                        ],
                    },
                ],
            }],
        }],
    })
}

enum Encoding {
    Protobuf,
    Json,
}

/// OTLP/HTTP trace export
///
/// The OpenTelemetry collector endpoint for OTLP/HTTP; the same handler answers at
/// `/api/public/otel/v1/traces`, where Langfuse SDKs send. The body is an OTLP
/// `ExportTraceServiceRequest`, protobuf or JSON, optionally gzip-compressed; the answer uses the
/// request's encoding. Invalid spans are reported in `partialSuccess` (`rejectedSpans`,
/// `errorMessage`) while the valid ones of the same request are kept. Besides a bearer key, Basic
/// authentication with `base64(<key id>:<secret>)` is accepted, for SDKs that can send nothing
/// else.
#[utoipa::path(
    post,
    path = "/v1/traces",
    tag = "ingest",
    operation_id = "exportTraces",
    security(("bearerAuth" = ["ingest"]), ("basicAuth" = ["ingest"])),
    params((
        "Content-Encoding" = Option<ContentEncoding>,
        Header,
        description = "`gzip` for a compressed body; the decompressed size counts against the \
            body size limit.",
    )),
    request_body(
        description = "OTLP `ExportTraceServiceRequest`, as protobuf (`application/x-protobuf`; \
            `application/protobuf` is accepted too) or as OTLP/JSON.",
        content(
            ("application/x-protobuf"),
            (OtlpExportRequest = "application/json", example = otlp_example),
        ),
    ),
    responses(
        (
            status = 200,
            description = "The request was made durable. Spans that were invalid are counted in \
                `partialSuccess`; the others are kept.",
            content(("application/x-protobuf"), (OtlpExportResponse = "application/json")),
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    ),
)]
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
        Encoding::Json => otlp_json::parse(&body).map_err(|e| {
            ApiError::bad_request("body", format!("not a valid OTLP JSON message: {e}"))
        })?,
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

/// The `Content-Encoding`s an OTLP/HTTP body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(crate) enum ContentEncoding {
    Gzip,
    Identity,
}

impl ContentEncoding {
    /// The request's; no header is `identity`. Anything else, an empty value included, is
    /// refused (415), as the document's enum says.
    fn of(headers: &HeaderMap) -> Result<ContentEncoding, ApiError> {
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("identity") => Ok(ContentEncoding::Identity),
            Some("gzip") => Ok(ContentEncoding::Gzip),
            Some(other) => Err(ApiError::unsupported_media(format!(
                "content-encoding {other:?} is not supported; send gzip or no encoding"
            ))),
        }
    }
}

/// Undoes `Content-Encoding: gzip`, refusing output past `limit` (a zip bomb stops there).
fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    match ContentEncoding::of(headers)? {
        ContentEncoding::Identity => Ok(body),
        ContentEncoding::Gzip => match gunzip(&body, limit) {
            Ok(inflated) => Ok(Bytes::from(inflated)),
            Err(GunzipError::TooLarge(limit)) => Err(ApiError::too_large(limit)),
            Err(e @ GunzipError::Invalid(_)) => Err(ApiError::bad_request("body", e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a long Schemathesis run: an empty `Content-Encoding` was taken for `identity`
    /// though the document names only `gzip` and `identity`.
    #[test]
    fn only_the_documented_encodings_are_taken() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(value));
            ContentEncoding::of(&headers).map_err(|e| e.status.as_u16())
        };
        let none = ContentEncoding::of(&HeaderMap::new()).map_err(|e| e.status.as_u16());
        assert_eq!(none, Ok(ContentEncoding::Identity));
        assert_eq!(with("identity"), Ok(ContentEncoding::Identity));
        assert_eq!(with("GZIP"), Ok(ContentEncoding::Gzip));
        assert_eq!(with(""), Err(415));
        assert_eq!(with("br"), Err(415));
    }
}

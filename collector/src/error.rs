//! The collector's one error type and its single mapping to gRPC codes and HTTP statuses.

use vigil_schemas::limits::FieldError;

use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing or invalid API key")]
    Unauthenticated,
    /// The caller's address failed to authenticate too often.
    #[error("too many failed authentications from this address; retry in {retry_after_secs} s")]
    AuthThrottled { retry_after_secs: u64 },
    #[error("this key lacks the {0} role")]
    PermissionDenied(&'static str),
    /// The whole request is unusable (too many items, undecodable body).
    #[error("{0}")]
    InvalidRequest(FieldError),
    /// The write-ahead log's backlog is full: retry later.
    #[error(transparent)]
    Backlog(WalError),
    /// The collector cannot make data durable right now (disk error, shutting down).
    #[error("the collector cannot accept data right now; retry later")]
    Unavailable(#[source] WalError),
}

/// What a client should do, in protocol-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Unauthenticated,
    PermissionDenied,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
}

impl IngestError {
    pub fn class(&self) -> ErrorClass {
        match self {
            IngestError::Unauthenticated => ErrorClass::Unauthenticated,
            IngestError::PermissionDenied(_) => ErrorClass::PermissionDenied,
            IngestError::InvalidRequest(_) => ErrorClass::InvalidArgument,
            IngestError::Backlog(_) | IngestError::AuthThrottled { .. } => {
                ErrorClass::ResourceExhausted
            }
            IngestError::Unavailable(_) => ErrorClass::Unavailable,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::ResourceExhausted | ErrorClass::Unavailable
        )
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            IngestError::InvalidRequest(e) => Some(&e.field),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying a retryable refusal.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            IngestError::AuthThrottled { retry_after_secs } => Some(*retry_after_secs),
            _ => self.is_retryable().then_some(1),
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.class() {
            ErrorClass::Unauthenticated => 401,
            ErrorClass::PermissionDenied => 403,
            ErrorClass::InvalidArgument => 400,
            ErrorClass::ResourceExhausted => 429,
            ErrorClass::Unavailable => 503,
        }
    }

    /// Machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self.class() {
            ErrorClass::Unauthenticated => "unauthenticated",
            ErrorClass::PermissionDenied => "permission_denied",
            ErrorClass::InvalidArgument => "invalid_argument",
            ErrorClass::ResourceExhausted => "resource_exhausted",
            ErrorClass::Unavailable => "unavailable",
        }
    }
}

impl From<IngestError> for tonic::Status {
    fn from(e: IngestError) -> tonic::Status {
        // Display never includes the source (paths, OS errors): those stay in the logs.
        let message = e.to_string();
        match e.class() {
            ErrorClass::Unauthenticated => tonic::Status::unauthenticated(message),
            ErrorClass::PermissionDenied => tonic::Status::permission_denied(message),
            ErrorClass::InvalidArgument => tonic::Status::invalid_argument(message),
            ErrorClass::ResourceExhausted => tonic::Status::resource_exhausted(message),
            ErrorClass::Unavailable => tonic::Status::unavailable(message),
        }
    }
}

impl From<vigil_access::throttle::AuthRefusal> for IngestError {
    fn from(refusal: vigil_access::throttle::AuthRefusal) -> IngestError {
        match refusal {
            vigil_access::throttle::AuthRefusal::Unauthenticated => IngestError::Unauthenticated,
            vigil_access::throttle::AuthRefusal::TooManyFailures(wait) => {
                IngestError::AuthThrottled {
                    retry_after_secs: wait.secs(),
                }
            }
        }
    }
}

impl From<WalError> for IngestError {
    fn from(e: WalError) -> IngestError {
        match e {
            WalError::BacklogFull { .. } => IngestError::Backlog(e),
            other => {
                tracing::error!(error = %other, "wal append failed");
                IngestError::Unavailable(other)
            }
        }
    }
}

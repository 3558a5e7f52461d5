//! The query service's one error type, and what a caller should make of it.

use std::path::PathBuf;

use datafusion::{arrow::error::ArrowError, error::DataFusionError};

/// What kind of failure an error is, in protocol-neutral terms (the HTTP layer maps these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (a bad cursor, an unknown outcome, a reversed time range): 400.
    InvalidArgument,
    /// The store cannot answer right now; retry later: 503.
    Unavailable,
    /// A bug or damaged data: 500. Details are for the log, not for the client.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{field}: {message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("store directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    /// ClickHouse refused a query or answered something unreadable.
    #[error("clickhouse: {0}")]
    Store(String),
    #[error("stored rows could not be decoded: {0}")]
    Decode(#[from] ArrowError),
}

impl QueryError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> QueryError {
        QueryError::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            QueryError::Unavailable(_) | QueryError::Io { .. } => ErrorKind::Unavailable,
            QueryError::Engine(_) | QueryError::Decode(_) | QueryError::Store(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// The request field at fault, when the request is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            QueryError::InvalidArgument { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

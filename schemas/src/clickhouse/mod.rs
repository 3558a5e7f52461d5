//! The ClickHouse store's contract, shared by its writer (the collector's sink) and its reader
//! (the query service): connection settings, the table design and its versioned migrations, and
//! the RowBinary row types. The design and its reasons are in `schemas/CLICKHOUSE.md`.
//!
//! Everything here runs on ClickHouse 18.16 (Debian's package) as well as on current releases:
//! no `DateTime64`, `Map`, `LowCardinality`, codecs or table `TTL`, and no server-side query
//! parameters. Values reach SQL only through the client's `?` binding, which escapes them.

mod config;
pub mod migrate;
pub mod rows;
pub mod schema;

pub use config::{ClickHouseConfig, ConfigError};
pub use migrate::{MigrationError, MigrationReport, Migrator};

/// A ClickHouse server's `major.minor` version, for features older servers lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// Parses what `SELECT version()` answers, e.g. `18.16.1` or `24.8.4.13`.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion { major, minor })
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Whether a failed request may succeed later: the server is unreachable, slow or overloaded,
/// a shard is away, or it answered with an error page carrying no ClickHouse code (a proxy, a
/// server starting up). A request the server will always refuse (a missing table, a type
/// mismatch) is not transient. The sink and the query service both decide by this.
pub fn is_transient(error: &clickhouse::error::Error) -> bool {
    use clickhouse::error::Error;
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(text) => error_code(text).is_none_or(is_transient_code),
        _ => false,
    }
}

/// Whether a server's error text says a table or a column does not exist (codes 60 and 47): a
/// server not migrated yet.
pub fn is_not_migrated(message: &str) -> bool {
    matches!(error_code(message), Some(60 | 47))
}

/// The ClickHouse error code in a server's error text (`Code: 60, e.displayText() = …`).
pub(crate) fn error_code(message: &str) -> Option<u32> {
    let rest = message.split("Code: ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether a server error code may go away by itself (overload, a restarting replica, a
/// timeout).
fn is_transient_code(code: u32) -> bool {
    const TRANSIENT: &[u32] = &[
        3,   // UNEXPECTED_END_OF_FILE: the connection broke mid-request
        159, // TIMEOUT_EXCEEDED
        164, // READONLY: a replica that lost ZooKeeper
        202, // TOO_MANY_SIMULTANEOUS_QUERIES
        209, // SOCKET_TIMEOUT
        210, // NETWORK_ERROR
        241, // MEMORY_LIMIT_EXCEEDED
        242, // TABLE_IS_READ_ONLY
        252, // TOO_MANY_PARTS
        279, // ALL_CONNECTION_TRIES_FAILED (a shard of a Distributed table is down)
        319, // UNKNOWN_STATUS_OF_INSERT
        425, // SYSTEM_ERROR
    ];
    TRANSIENT.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_and_error_codes() {
        assert_eq!(
            ServerVersion::parse("18.16.1"),
            Some(ServerVersion {
                major: 18,
                minor: 16
            })
        );
        assert!(ServerVersion::parse("24.8.4.13").unwrap() > ServerVersion::parse("20.1").unwrap());
        assert_eq!(ServerVersion::parse("x"), None);
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(error_code("connection refused"), None);
        assert!(is_transient_code(252) && !is_transient_code(60));
        use clickhouse::error::Error;
        assert!(is_transient(&Error::TimedOut));
        assert!(is_transient(&Error::BadResponse("502 Bad Gateway".into())));
        assert!(!is_transient(&Error::BadResponse(
            "Code: 60, e.displayText() = DB::Exception: Table vigil.runs doesn't exist".into()
        )));
    }
}

//! The store's error type and its classification into transient and permanent.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    /// No connection could be had from the pool.
    #[error("no database connection available: {0}")]
    Pool(String),
    /// Connecting to the server failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] diesel::ConnectionError),
    /// The database URL is not usable.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl Error {
    /// Whether trying the same operation again later may succeed: dropped
    /// connections, serialization failures, deadlocks, an exhausted pool.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Connect(_) => true,
            Self::Query(DieselError::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection
                ) || is_transient_sqlstate(info.message())
            }
            Self::Query(DieselError::BrokenTransactionManager) => true,
            Self::Query(_) | Self::InvalidUrl(_) | Self::Migration(_) => false,
        }
    }
}

/// Diesel maps only some SQLSTATEs to kinds; the rest (deadlock, admin shutdown,
/// too many connections) arrive as `Unknown` with the server's message.
fn is_transient_sqlstate(message: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "deadlock detected",
        "terminating connection",
        "the database system is",
        "too many clients",
        "server closed the connection",
        "connection",
    ];
    TRANSIENT.iter().any(|needle| message.contains(needle))
}

//! The stream layer's error type.

/// A failed Redis operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A reply did not have the expected shape.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

impl Error {
    /// Whether the consumer group (or its stream) no longer exists.
    pub fn is_missing_group(&self) -> bool {
        matches!(self, Self::Redis(error) if error.code() == Some("NOGROUP"))
    }

    /// Whether the connection failed rather than the command.
    pub fn is_connection(&self) -> bool {
        match self {
            Self::Redis(error) => {
                error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()
                    || error.is_unrecoverable_error()
            }
            Self::Reply(_) => false,
        }
    }
}

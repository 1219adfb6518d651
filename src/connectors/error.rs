//! Connector failures, typed so that each becomes a stable error code at the failing path.

use std::fmt;

/// What went wrong with an upstream host-state system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorErrorKind {
    /// No answer within the connector's timeout.
    Timeout,
    /// Connection refused, DNS failure, 5xx, or the concurrency limit stayed full.
    Unavailable,
    /// The circuit breaker is open after repeated failures; the upstream is not called.
    CircuitOpen,
    /// The upstream answered something that is not what the mapping expects: not JSON, too
    /// large, an unexpected status, a record without its key.
    BadResponse,
    /// The upstream refused our credentials (after one token refresh).
    AuthFailed,
    /// A national value has no canonical mapping in the connector's tables.
    UnmappedValue,
}

impl ConnectorErrorKind {
    /// The client-facing error code.
    pub fn error_code(self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            Self::Timeout => ErrorCode::ConnectorTimeout,
            Self::Unavailable => ErrorCode::ConnectorUnavailable,
            Self::CircuitOpen => ErrorCode::ConnectorCircuitOpen,
            Self::BadResponse => ErrorCode::ConnectorBadResponse,
            Self::AuthFailed => ErrorCode::ConnectorAuthFailed,
            Self::UnmappedValue => ErrorCode::ConnectorUnmappedValue,
        }
    }

    /// The GraphQL `extensions.code`.
    pub fn code(self) -> &'static str {
        self.error_code().as_str()
    }

    /// Whether an idempotent call may be retried after this failure.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Timeout | Self::Unavailable)
    }
}

/// A connector failure. The message names the connector and what failed, never a secret, a
/// token or a record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    /// Kind.
    pub kind: ConnectorErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl ConnectorError {
    /// A new error.
    pub fn new(kind: ConnectorErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::Timeout, message)
    }

    /// Unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::Unavailable, message)
    }

    /// Bad response.
    pub fn bad_response(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::BadResponse, message)
    }

    /// Authentication failed.
    pub fn auth_failed(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::AuthFailed, message)
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for ConnectorError {}

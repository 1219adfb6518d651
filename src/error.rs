//! The one closed list of error codes CaseGraph gives its clients. Each code decides both the
//! GraphQL `extensions.code` and, for errors that fail a whole HTTP request, its status.

use serde::Serialize;

/// Stable machine-readable error codes (`extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No bearer token, or it could not be verified.
    Unauthenticated,
    /// The principal may not perform this operation.
    Forbidden,
    /// The principal may not read this field (later: field-level sensitivity).
    ForbiddenField,
    /// The request body is not a GraphQL request.
    BadRequest,
    /// The GraphQL document does not parse or validate.
    GraphqlValidationFailed,
    /// The operation, counted over its expanded document (fragments included), is deeper, has
    /// more fields, aliases or root fields, or costs more than allowed.
    OperationTooComplex,
    /// An input is larger than allowed: a list argument with too many items, a string too
    /// long, or variables too large.
    InputTooLarge,
    /// The operation ran longer than the configured wall-clock limit and was cancelled.
    OperationTimeout,
    /// The client did not send its request in time.
    RequestTimeout,
    /// The principal sent more requests than its rate limit allows; retry after `Retry-After`.
    RateLimited,
    /// The gateway is at its concurrency limit and shed this request; retry after
    /// `Retry-After`.
    Overloaded,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// A value is not valid for its field (generic).
    InvalidInput,
    /// A country code is not ISO 3166-1 alpha-3.
    InvalidCountryCode,
    /// A mission code names no mission in the store.
    UnknownMission,
    /// A date lies in the future.
    DateInFuture,
    /// A date range or a date pair is out of order.
    InvalidDateRange,
    /// A required text value is empty.
    EmptyValue,
    /// A pagination cursor was not issued by this server for this query.
    InvalidCursor,
    /// `first` is above the configured maximum.
    PageTooLarge,
    /// The record does not exist.
    NotFound,
    /// The record changed since the client read it (optimistic concurrency).
    VersionConflict,
    /// The record already exists.
    Duplicate,
    /// The case store could not be reached.
    StoreUnavailable,
    /// The identity provider's keys could not be fetched, so no token can be verified now.
    IdentityProviderUnavailable,
    /// A host-state system did not answer in time.
    ConnectorTimeout,
    /// A host-state system could not be reached or failed (5xx, refused, overloaded).
    ConnectorUnavailable,
    /// A host-state system failed repeatedly; it is not called until it recovers.
    ConnectorCircuitOpen,
    /// A host-state system answered something its mapping cannot read.
    ConnectorBadResponse,
    /// A host-state system refused CaseGraph's credentials.
    ConnectorAuthFailed,
    /// A national value has no canonical mapping in the connector's tables.
    ConnectorUnmappedValue,
    /// An unexpected failure; details are in the server log under the request id.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::ForbiddenField => "FORBIDDEN_FIELD",
            Self::BadRequest => "BAD_REQUEST",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::OperationTooComplex => "OPERATION_TOO_COMPLEX",
            Self::InputTooLarge => "INPUT_TOO_LARGE",
            Self::OperationTimeout => "OPERATION_TIMEOUT",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::RateLimited => "RATE_LIMITED",
            Self::Overloaded => "OVERLOADED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::InvalidInput => "INVALID_INPUT",
            Self::InvalidCountryCode => "INVALID_COUNTRY_CODE",
            Self::UnknownMission => "UNKNOWN_MISSION",
            Self::DateInFuture => "DATE_IN_FUTURE",
            Self::InvalidDateRange => "INVALID_DATE_RANGE",
            Self::EmptyValue => "EMPTY_VALUE",
            Self::InvalidCursor => "INVALID_CURSOR",
            Self::PageTooLarge => "PAGE_TOO_LARGE",
            Self::NotFound => "NOT_FOUND",
            Self::VersionConflict => "VERSION_CONFLICT",
            Self::Duplicate => "DUPLICATE",
            Self::StoreUnavailable => "STORE_UNAVAILABLE",
            Self::IdentityProviderUnavailable => "IDENTITY_PROVIDER_UNAVAILABLE",
            Self::ConnectorTimeout => "CONNECTOR_TIMEOUT",
            Self::ConnectorUnavailable => "CONNECTOR_UNAVAILABLE",
            Self::ConnectorCircuitOpen => "CONNECTOR_CIRCUIT_OPEN",
            Self::ConnectorBadResponse => "CONNECTOR_BAD_RESPONSE",
            Self::ConnectorAuthFailed => "CONNECTOR_AUTH_FAILED",
            Self::ConnectorUnmappedValue => "CONNECTOR_UNMAPPED_VALUE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The HTTP status used when this error fails a whole request (authentication, body,
    /// document errors). Field errors inside an executed operation keep HTTP 200.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::ForbiddenField => 403,
            Self::PayloadTooLarge => 413,
            Self::RequestTimeout => 408,
            Self::RateLimited => 429,
            Self::StoreUnavailable | Self::IdentityProviderUnavailable | Self::Overloaded => 503,
            Self::ConnectorTimeout | Self::OperationTimeout => 504,
            Self::ConnectorUnavailable
            | Self::ConnectorCircuitOpen
            | Self::ConnectorBadResponse
            | Self::ConnectorAuthFailed => 502,
            Self::Internal => 500,
            Self::NotFound => 404,
            Self::VersionConflict | Self::Duplicate => 409,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a GraphQL error carrying `extensions.code`.
pub fn gql_error(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    let mut err = async_graphql::Error::new(message);
    err = async_graphql::ErrorExtensions::extend_with(err, |_, ext| ext.set("code", code.as_str()));
    err
}

//! The audit log as auditors read it: `Query.auditLog`. Read only: no mutation touches the log.

use super::guard::{Guarded, Protected};
use super::scalars::DateTime;
use super::types::PageInfo;
use super::{services, store_err};
use crate::access::audit::{AuditDecision, RequestAudit};
use crate::error::{gql_error, ErrorCode};
use crate::store::{AuditFilter, ChainedAuditEntry};
use async_graphql::{Context, InputObject, Result, SimpleObject, ID};
use base64::Engine as _;
use std::time::Duration;

/// Default page size of `auditLog`.
pub(crate) const DEFAULT_AUDIT_PAGE: i32 = 50;

/// How long `auditLog` waits for this replica's audit writer to store what it was handed.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Which audit entries to list; every field set narrows the result.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Token subject of the principal.
    pub subject: Option<String>,
    /// Organisation of the principal (alpha-3 code, UN, UN/<entity>, AU…).
    pub organisation: Option<String>,
    /// Case concerned.
    pub case_id: Option<ID>,
    /// Entries at or after this time.
    pub from: Option<DateTime>,
    /// Entries at or before this time.
    pub to: Option<DateTime>,
    /// Only this decision.
    pub decision: Option<AuditDecision>,
}

impl AuditLogFilter {
    fn parse(self) -> Result<AuditFilter> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from.0 > to.0 {
                return Err(gql_error(
                    ErrorCode::InvalidDateRange,
                    "filter.from is after filter.to",
                ));
            }
        }
        Ok(AuditFilter {
            subject: self.subject,
            organisation: self.organisation,
            case_id: self.case_id.map(|id| id.0),
            from: self.from.map(|t| t.0),
            to: self.to.map(|t| t.0),
            decision: self.decision.map(|d| d.as_str().to_string()),
        })
    }
}

/// One entry of the hash-chained audit log.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// Position in the chain (1, 2, 3, … without gaps).
    pub seq: i64,
    /// When the request ran.
    pub at: DateTime,
    /// Token subject of the principal.
    pub subject: String,
    /// Organisation of the principal.
    pub organisation: String,
    /// GraphQL operation name (`anonymous` when unnamed), or the write operation.
    pub operation: String,
    /// Case concerned, if any.
    pub case_id: Option<ID>,
    /// Field paths read or refused (e.g. `case.victims.0.name`).
    pub fields: Vec<String>,
    /// What happened.
    pub decision: AuditDecision,
    /// Hash of the previous entry (64 zeros before the first).
    pub prev_hash: String,
    /// Hash of this entry (`casegraph audit verify` recomputes it).
    pub hash: String,
}

impl TryFrom<ChainedAuditEntry> for AuditEntry {
    type Error = async_graphql::Error;

    fn try_from(e: ChainedAuditEntry) -> Result<Self> {
        let decision = AuditDecision::parse(&e.decision).ok_or_else(|| {
            tracing::error!(
                seq = e.seq,
                "Audit entry has an unknown decision: run `casegraph audit verify`"
            );
            gql_error(
                ErrorCode::Internal,
                format!(
                    "audit entry {} is unreadable; run `casegraph audit verify`",
                    e.seq
                ),
            )
        })?;
        Ok(Self {
            seq: e.seq,
            at: DateTime(e.at),
            subject: e.subject,
            organisation: e.organisation,
            operation: e.operation,
            case_id: e.case_id.map(ID),
            fields: e.fields,
            decision,
            prev_hash: e.prev_hash,
            hash: e.hash,
        })
    }
}

/// An audit entry and its cursor.
#[derive(SimpleObject)]
pub struct AuditEntryEdge {
    /// Pass as `after` to get the (older) entries following this one.
    pub cursor: String,
    /// The entry.
    pub node: Guarded<AuditEntry>,
}

/// A page of audit entries, newest first.
#[derive(SimpleObject)]
pub struct AuditEntryConnection {
    /// The entries with their cursors.
    pub edges: Vec<Guarded<AuditEntryEdge>>,
    /// Pagination state.
    pub page_info: Guarded<PageInfo>,
}

fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit:{seq}"))
}

fn decode_cursor(raw: &str) -> Result<i64> {
    let invalid = || {
        gql_error(
            ErrorCode::InvalidCursor,
            "`after` is not an audit log cursor",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("audit:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(invalid)
}

/// `Query.auditLog` (the policy admits auditors alone): this replica's writer is flushed so that the page includes everything recorded before the query
/// (other replicas' in-flight entries appear once their writers store them).
pub(crate) async fn audit_log(
    ctx: &Context<'_>,
    filter: Option<AuditLogFilter>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<AuditEntryConnection> {
    let svc = services(ctx);
    let first = first.unwrap_or(DEFAULT_AUDIT_PAGE);
    if first < 0 {
        return Err(gql_error(
            ErrorCode::InvalidInput,
            "first must not be negative",
        ));
    }
    let first = u32::try_from(first).expect("checked non-negative");
    let max = svc.limits.max_page_size;
    if first > max {
        return Err(gql_error(
            ErrorCode::PageTooLarge,
            format!("first must be at most {max}"),
        ));
    }
    let filter = filter.unwrap_or_default().parse()?;
    let before = after.as_deref().map(decode_cursor).transpose()?;
    if tokio::time::timeout(FLUSH_WAIT, svc.audit.flush())
        .await
        .is_err()
    {
        tracing::warn!(
            "The audit writer is behind: the audit log page may miss the latest entries"
        );
    }
    let mut rows = svc
        .store
        .audit_entries(&filter, before, first + 1)
        .await
        .map_err(store_err)?;
    let has_next_page = rows.len() > first as usize;
    rows.truncate(first as usize);
    let edges = rows
        .into_iter()
        .map(|e| {
            Ok(Guarded(AuditEntryEdge {
                cursor: encode_cursor(e.seq),
                node: Guarded(AuditEntry::try_from(e)?),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AuditEntryConnection {
        page_info: Guarded(PageInfo {
            has_next_page,
            has_previous_page: before.is_some(),
            start_cursor: edges.first().map(|e| e.0.cursor.clone()),
            end_cursor: edges.last().map(|e| e.0.cursor.clone()),
        }),
        edges,
    })
}

/// Notes the name of a document's only operation in the request's audit collector, so that
/// the audit log names operations clients did not repeat as `operationName`. Runs on the
/// document async-graphql has already parsed.
pub(crate) struct OperationName;

impl async_graphql::extensions::ExtensionFactory for OperationName {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(OperationName)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for OperationName {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if let async_graphql::parser::types::DocumentOperations::Multiple(ops) = &doc.operations {
            if let (1, Some(name), Some(audit)) = (
                ops.len(),
                ops.keys().next(),
                ctx.data_opt::<std::sync::Arc<RequestAudit>>(),
            ) {
                audit.operation_named(name);
            }
        }
        Ok(doc)
    }
}

impl Protected for AuditEntry {}
impl Protected for AuditEntryEdge {}
impl Protected for AuditEntryConnection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_other_strings() {
        assert_eq!(decode_cursor(&encode_cursor(42)).expect("valid"), 42);
        for bad in [
            "",
            "audit:0",
            "YXVkaXQ6LTE",
            "not base64!",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("case:1"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}

//! The GraphQL API (code-first). `schema.graphql` at the repository root is its golden SDL.
//!
//! This module knows nothing of HTTP: the transport hands it a verified [`Principal`] and a
//! request, and gets a response back.

mod audit;
mod inputs;
mod loaders;
mod mutation;
mod proceedings;
mod query;
mod scalars;
mod types;

pub use loaders::StoreLoader;
pub use mutation::MutationRoot;
pub use query::QueryRoot;

use crate::access::audit::{AuditSink, RequestAudit};
use crate::access::{Access, Decision, Level, OnDenied, Principal, Subject, WriteOperation};
use crate::config::LimitsConfig;
use crate::error::{gql_error, ErrorCode};
use crate::store::{Store, StoreError};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, EmptySubscription, Schema};
use std::sync::Arc;

/// The executable schema.
pub type CaseGraphSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// What every resolver may use.
pub struct Services {
    /// The UN case store.
    pub store: Arc<dyn Store>,
    /// The access gate.
    pub access: Access,
    /// Operation limits.
    pub limits: LimitsConfig,
    /// Host-state connectors.
    pub connectors: crate::connectors::Connectors,
    /// Where audit events go.
    pub audit: AuditSink,
    /// Key of the cursors' MAC.
    pub cursor_key: [u8; 32],
}

/// Options that shape the schema.
#[derive(Clone)]
pub struct SchemaOptions {
    /// The access gate (policy).
    pub access: Access,
    /// Where audit events go.
    pub audit: AuditSink,
    /// Key of the cursors' MAC: cursors are bound to it and to the principal.
    pub cursor_key: [u8; 32],
    /// Answer introspection queries.
    pub introspection: bool,
    /// Limits.
    pub limits: LimitsConfig,
}

/// Builds the schema over a store and the host-state connectors.
pub fn build(
    store: Arc<dyn Store>,
    connectors: crate::connectors::Connectors,
    options: SchemaOptions,
) -> CaseGraphSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .enable_federation()
        .data(Services {
            store,
            access: options.access.clone(),
            limits: options.limits.clone(),
            connectors,
            audit: options.audit.clone(),
            cursor_key: options.cursor_key,
        })
        .limit_depth(options.limits.max_depth)
        .limit_complexity(options.limits.max_complexity)
        .limit_recursive_depth(64)
        .extension(AliasLimit(
            options.limits.max_aliases,
            !options.introspection,
        ))
        .extension(audit::OperationName);
    if !options.introspection {
        // Without introspection, "did you mean" suggestions would leak the schema too.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// Every output field of the schema as `Type.field` (objects and interfaces; introspection
/// types excluded): what the access policy must classify.
pub fn schema_fields() -> std::collections::BTreeSet<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc =
        async_graphql::parser::parse_schema(sdl()).expect("the SDL async-graphql prints parses");
    let mut out = std::collections::BTreeSet::new();
    for def in doc.definitions {
        if let TypeSystemDefinition::Type(t) = def {
            let name = t.node.name.node.to_string();
            let fields = match &t.node.kind {
                TypeKind::Object(o) => &o.fields,
                TypeKind::Interface(i) => &i.fields,
                _ => continue,
            };
            for f in fields {
                out.insert(format!("{name}.{}", f.node.name.node));
            }
        }
    }
    out
}

/// The SDL of the schema, as `casegraph schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl()
}

/// Runs one request for a principal. Every error in the response carries `extensions.code`.
pub async fn execute(
    schema: &CaseGraphSchema,
    request: async_graphql::Request,
    principal: Principal,
) -> async_graphql::Response {
    let services = schema_services(schema);
    let store = Arc::clone(&services.store);
    let connectors = services.connectors.clone();
    let operation = request
        .operation_name
        .clone()
        .unwrap_or_else(|| "anonymous".into());
    let (subject, organisation) = (
        principal.subject.clone(),
        principal.organisation.to_string(),
    );
    let audit = Arc::new(RequestAudit::default());
    let request = request
        .data(principal)
        .data(Arc::clone(&audit))
        .data(DataLoader::new(StoreLoader { store }, tokio::spawn))
        .data(loaders::Prefetched::default())
        .data(DataLoader::new(
            proceedings::ConnectorLoader { connectors },
            tokio::spawn,
        ));
    let mut response = schema.execute(request).await;
    let reject = services.access.policy().enforcement().on_denied_field == OnDenied::Reject;
    let denied: Vec<String> = response
        .errors
        .iter()
        .filter(|e| {
            e.extensions.as_ref().and_then(|x| x.get("code"))
                == Some(&async_graphql::Value::from(
                    ErrorCode::ForbiddenField.as_str(),
                ))
        })
        .map(|e| {
            e.path
                .iter()
                .map(|p| match p {
                    async_graphql::PathSegment::Field(f) => f.clone(),
                    async_graphql::PathSegment::Index(i) => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    if reject && !denied.is_empty() {
        // The whole operation is refused: nothing of what was resolved leaves.
        let mut err = async_graphql::ServerError::new(
            format!(
                "the operation selects {} field(s) this principal may not read: {}",
                denied.len(),
                denied.join(", ")
            ),
            None,
        );
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", ErrorCode::ForbiddenField.as_str());
        err.extensions = Some(ext);
        response = async_graphql::Response::from_errors(vec![err]);
    }
    match Arc::try_unwrap(audit) {
        Ok(audit) => services
            .audit
            .record(audit.into_events(&subject, &organisation, &operation)),
        Err(_) => tracing::error!(
            "A resolver kept the request's audit collector alive: its events are lost"
        ),
    }
    let failed_before_execution = response.data == async_graphql::Value::Null;
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if err.message.contains("nested too deep") || err.message.contains("too complex")
        {
            ErrorCode::OperationTooComplex
        } else if err.path.is_empty() && failed_before_execution {
            ErrorCode::GraphqlValidationFailed
        } else {
            ErrorCode::Internal
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
    response
}

fn schema_services(schema: &CaseGraphSchema) -> &Services {
    // `build` always installs `Services`; SDL-only schemas are never executed.
    schema
        .data::<Services>()
        .expect("the schema was built with Services")
}

/// Refuses operations with more aliases than allowed (alias floods multiply resolver work).
/// Runs on the document async-graphql has already parsed, so nothing is parsed twice.
/// Also refuses `_service` (the federation SDL) when introspection is off: it is the whole
/// schema by another name.
struct AliasLimit(usize, bool);

impl async_graphql::extensions::ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(AliasLimitExtension(self.0, self.1))
    }
}

struct AliasLimitExtension(usize, bool);

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if self.1 && selects_service_sdl(&doc) {
            let mut err =
                async_graphql::ServerError::new("introspection is disabled on this server", None);
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", ErrorCode::GraphqlValidationFailed.as_str());
            err.extensions = Some(ext);
            return Err(err);
        }
        let count = count_aliases(&doc);
        if count > self.0 {
            let mut err = async_graphql::ServerError::new(
                format!(
                    "the operation has {count} aliases; at most {} are allowed",
                    self.0
                ),
                None,
            );
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", ErrorCode::OperationTooComplex.as_str());
            err.extensions = Some(ext);
            return Err(err);
        }
        Ok(doc)
    }
}

fn selects_service_sdl(doc: &async_graphql::parser::types::ExecutableDocument) -> bool {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(
        set: &SelectionSet,
        doc: &async_graphql::parser::types::ExecutableDocument,
        depth: usize,
    ) -> bool {
        depth < 8
            && set.items.iter().any(|item| match &item.node {
                Selection::Field(f) => f.node.name.node == "_service",
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node, doc, depth + 1),
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_some_and(|f| walk(&f.node.selection_set.node, doc, depth + 1)),
            })
    }
    doc.operations
        .iter()
        .any(|(_, op)| walk(&op.node.selection_set.node, doc, 0))
}

fn count_aliases(doc: &async_graphql::parser::types::ExecutableDocument) -> usize {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let ops: usize = doc
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .sum();
    let frags: usize = doc
        .fragments
        .values()
        .map(|f| walk(&f.node.selection_set.node))
        .sum();
    ops + frags
}

pub(crate) fn services<'a>(ctx: &'a Context<'_>) -> &'a Services {
    request_data::<Services>(ctx)
}

/// Data that [`build`] and [`execute`] always install; its absence is a programming error in
/// this module, caught by every integration test.
pub(crate) fn request_data<'a, T: std::any::Any + Send + Sync>(ctx: &'a Context<'_>) -> &'a T {
    ctx.data::<T>().unwrap_or_else(|_| {
        panic!(
            "{} is installed by schema::build/execute",
            std::any::type_name::<T>()
        )
    })
}

pub(crate) fn principal<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Principal> {
    ctx.data_opt::<Principal>()
        .ok_or_else(|| gql_error(ErrorCode::Unauthenticated, "authentication required"))
}

fn path_of(ctx: &Context<'_>) -> String {
    ctx.path_node
        .map(|p| p.to_string_vec().join("."))
        .unwrap_or_default()
}

/// Asks the access gate whether the caller may read `type_name.field` of `subject`.
pub(crate) fn gate(
    ctx: &Context<'_>,
    type_name: &str,
    field: &str,
    subject: Subject<'_>,
) -> async_graphql::Result<()> {
    gate_at(ctx, type_name, field, subject, None)
}

/// For nullable fields: `false` (with one FORBIDDEN_FIELD error at this field's path added to
/// the response) when the caller may not read it, so that the field resolves to null and the
/// rest of its object stays.
pub(crate) fn allow(ctx: &Context<'_>, type_name: &str, field: &str, subject: Subject<'_>) -> bool {
    allow_at(ctx, type_name, field, subject, None)
}

/// [`allow`] with a floor (a source's marking).
pub(crate) fn allow_at(
    ctx: &Context<'_>,
    type_name: &str,
    field: &str,
    subject: Subject<'_>,
    floor: Option<Level>,
) -> bool {
    match gate_at(ctx, type_name, field, subject, floor) {
        Ok(()) => true,
        Err(e) => {
            ctx.add_error(ctx.set_error_path(e.into_server_error(ctx.item.pos)));
            false
        }
    }
}

/// Like [`gate`], with a floor below which the level may not fall (a source's marking).
pub(crate) fn gate_at(
    ctx: &Context<'_>,
    type_name: &str,
    field: &str,
    subject: Subject<'_>,
    floor: Option<Level>,
) -> async_graphql::Result<()> {
    let p = principal(ctx)?;
    let (level, decision) = services(ctx)
        .access
        .authorize_read(p, type_name, field, subject, floor);
    let case_id = match subject {
        Subject::Case(f) | Subject::Victim(f, _, _) => Some(f.id.as_str()),
        _ => None,
    };
    if decision.granted() && level >= Level::CaseParties {
        if let Some(case) = case_id {
            request_data::<Arc<RequestAudit>>(ctx).read(case, path_of(ctx));
        }
    }
    decide(ctx, decision, case_id)
}

/// Like [`gate`], for a level a record rule decided (`what` names the field in messages).
pub(crate) fn gate_level(
    ctx: &Context<'_>,
    what: &str,
    level: Level,
    subject: Subject<'_>,
) -> async_graphql::Result<()> {
    let p = principal(ctx)?;
    let access = &services(ctx).access;
    let case_id = match subject {
        Subject::Case(f) | Subject::Victim(f, _, _) => Some(f.id.as_str()),
        _ => None,
    };
    let decision = if access.may_read_level(p, level, subject) {
        if level >= Level::CaseParties {
            if let Some(case) = case_id {
                request_data::<Arc<RequestAudit>>(ctx).read(case, path_of(ctx));
            }
        }
        Decision::Grant
    } else {
        Decision::Deny {
            code: ErrorCode::ForbiddenField,
            message: format!(
                "{what} is {} here and not readable by this principal",
                level.as_str()
            ),
        }
    };
    decide(ctx, decision, case_id)
}

/// Turns a decision into a result, auditing a refusal.
pub(crate) fn decide(
    ctx: &Context<'_>,
    decision: Decision,
    case: Option<&str>,
) -> async_graphql::Result<()> {
    match decision {
        Decision::Grant => Ok(()),
        Decision::Deny { code, message } => {
            request_data::<Arc<RequestAudit>>(ctx).denied(case, path_of(ctx));
            Err(gql_error(code, message))
        }
    }
}

/// Asks the access gate whether the caller may write; audits the attempt; returns the actor.
pub(crate) fn authorize_write(
    ctx: &Context<'_>,
    op: WriteOperation,
    case: Option<&str>,
) -> async_graphql::Result<String> {
    let p = principal(ctx)?;
    let decision = services(ctx).access.authorize_write(p, op);
    let audit = request_data::<Arc<RequestAudit>>(ctx);
    match decision {
        Decision::Grant => Ok(p.subject.clone()),
        Decision::Deny { code, message } => {
            audit.denied(case, path_of(ctx));
            Err(gql_error(code, message))
        }
    }
}

/// Notes a completed write in the audit trail.
pub(crate) fn audit_write(ctx: &Context<'_>, op: WriteOperation, case: Option<&str>) {
    request_data::<Arc<RequestAudit>>(ctx).write(&format!("{op:?}"), case);
}

/// Maps a store failure to a client error; internal details go to the log, not the client.
pub(crate) fn store_err(e: StoreError) -> async_graphql::Error {
    let code = e.code();
    match code {
        ErrorCode::Internal | ErrorCode::StoreUnavailable => {
            tracing::error!(error = %e, "Store operation failed");
            gql_error(
                code,
                "the case store failed; the server log has details under this request's id",
            )
        }
        _ => gql_error(code, e.to_string()),
    }
}

pub(crate) fn load_err(e: Arc<StoreError>) -> async_graphql::Error {
    tracing::error!(error = %e, "Batched store load failed");
    gql_error(
        e.code(),
        "the case store failed; the server log has details under this request's id",
    )
}

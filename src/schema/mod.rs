//! The GraphQL API (code-first). `schema.graphql` at the repository root is its golden SDL.
//!
//! This module knows nothing of HTTP: the transport hands it a verified [`Principal`] and a
//! request, and gets a response back.

mod audit;
mod cost;
mod guard;
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
use crate::access::{
    Access, OnDenied, Policy, PolicyError, Principal, SchemaShape, SubjectKind, TypeTraits,
    Viewpoint, WriteOperation,
};
use crate::config::LimitsConfig;
use crate::error::{gql_error, ErrorCode};
use crate::store::{Store, StoreError};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, EmptySubscription, Schema};
use guard::RequestAccess;
pub use guard::{Guarded, Protected};
use std::collections::HashMap;
use std::sync::Arc;

/// The executable schema: both roots are guarded like every other object type.
pub type CaseGraphSchema = Schema<Guarded<QueryRoot>, Guarded<MutationRoot>, EmptySubscription>;

/// What every resolver may use.
pub struct Services {
    /// The UN case store.
    pub store: Arc<dyn Store>,
    /// The access layer (policy and plans).
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
    /// The access layer (policy and plans), from [`access_for`].
    pub access: Access,
    /// Where audit events go.
    pub audit: AuditSink,
    /// Key of the cursors' MAC: cursors are bound to it and to the principal.
    pub cursor_key: [u8; 32],
    /// Answer introspection queries (and the federation SDL).
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
    let mut builder = Schema::build(Guarded(QueryRoot), Guarded(MutationRoot), EmptySubscription)
        .enable_federation()
        .data(Services {
            store,
            access: options.access.clone(),
            limits: options.limits.clone(),
            connectors,
            audit: options.audit.clone(),
            cursor_key: options.cursor_key,
        })
        .limit_recursive_depth(64)
        // Depth, fields, aliases, root fields and cost are measured by `cost` over the expanded
        // document in `prepare_request`, before async-graphql parses, checks recursion and
        // validates (each of which expands fragments); so `limit_depth`/`limit_complexity`,
        // which count during validation, are not used.
        .extension(cost::OperationLimits::new(&options.limits))
        .extension(guard::Enforce {
            introspection: options.introspection,
        })
        .extension(audit::OperationName);
    if !options.introspection {
        // Without introspection, "did you mean" suggestions would leak the schema too.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The shape of the schema (types, fields, arguments) the access policy is checked against.
pub fn shape() -> SchemaShape {
    SchemaShape::from_sdl(&sdl()).expect("the SDL async-graphql prints parses")
}

/// What each object type's records are to the policy (see [`TypeTraits`]); types not listed
/// are general data. Case data answers with its case; national records name the fields their
/// source's marking raises.
pub fn type_traits() -> HashMap<String, TypeTraits> {
    const fn case(
        raisable: &'static [&'static str],
        lowerable: &'static [&'static str],
    ) -> TypeTraits {
        TypeTraits {
            kind: SubjectKind::Case,
            raisable,
            lowerable,
        }
    }
    [
        ("Case", case(&[], &[])),
        ("CaseLocation", case(&[], &[])),
        ("Coordinates", case(&[], &[])),
        ("FollowUpAction", case(&[], &[])),
        ("NationalReference", case(&[], &[])),
        ("Submission", case(&[], &[])),
        ("Freshness", case(&[], &[])),
        (
            "NationalProceedings",
            case(proceedings::MARKED_PROCEEDINGS_FIELDS, &[]),
        ),
        ("StageEntry", case(&["stage", "nationalLabel", "date"], &[])),
        ("Court", case(&["name", "type"], &[])),
        (
            "Defendant",
            case(
                &[
                    "name",
                    "status",
                    "nationalStatus",
                    "inAbsentia",
                    "verdict",
                    "sentence",
                ],
                &["name"],
            ),
        ),
        (
            "Victim",
            TypeTraits {
                kind: SubjectKind::Victim,
                raisable: &[],
                lowerable: &[],
            },
        ),
        (
            "CapacityBuildingAssistance",
            TypeTraits {
                kind: SubjectKind::HostState,
                raisable: &[],
                lowerable: &[],
            },
        ),
    ]
    .into_iter()
    .map(|(name, traits)| (name.to_string(), traits))
    .collect()
}

/// The access layer for this schema under `policy` (refuses a policy under which a non-null
/// field could be denied).
pub fn access_for(policy: Policy) -> Result<Access, PolicyError> {
    Access::new(policy, type_traits())
}

/// The SDL of the schema, as `casegraph schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(Guarded(QueryRoot), Guarded(MutationRoot), EmptySubscription)
        .enable_federation()
        .finish()
        .sdl()
}

/// Runs one request for a principal. Every error in the response carries `extensions.code`.
///
/// Dropping the returned future (the transport's wall-clock limit, or a client that went away)
/// cancels the request's work: the data loaders' batches, which run as tasks of their own,
/// are aborted with it, and what the request did until then (writes included) still reaches
/// the audit log.
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
    let audit = Arc::new(RequestAudit::default());
    let mut audit_guard = AuditOnDrop {
        audit: Arc::clone(&audit),
        sink: services.audit.clone(),
        subject: principal.subject.clone(),
        organisation: principal.organisation.to_string(),
        operation,
        armed: true,
    };
    let tasks = RequestTasks::default();
    let _abort_tasks = AbortOnDrop(tasks.clone());
    let enforcement = Arc::new(RequestAccess::new(
        services.access.clone(),
        services.access.viewpoint(principal.clone()),
        Arc::clone(&audit),
    ));
    let request = request
        .data(principal)
        .data(Arc::clone(&audit))
        .data(Arc::clone(&enforcement))
        .data(DataLoader::new(StoreLoader { store }, tasks.spawner()))
        .data(loaders::Prefetched::default())
        .data(DataLoader::new(
            proceedings::ConnectorLoader { connectors },
            tasks.spawner(),
        ));
    let mut response = schema.execute(request).await;
    response.errors.extend(enforcement.take_errors());
    drop(enforcement);
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
    if reject && !denied.is_empty() && response.data != async_graphql::Value::Null {
        // Denials that depend on the record are only known once it is read: the whole
        // operation is refused, and nothing of what was resolved leaves.
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
    // Completed: the guard gives its share of the collector back, and the events go the
    // usual way (every other holder must be gone by now).
    audit_guard.armed = false;
    let subject = std::mem::take(&mut audit_guard.subject);
    let organisation = std::mem::take(&mut audit_guard.organisation);
    let operation = std::mem::take(&mut audit_guard.operation);
    drop(audit_guard);
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

/// The tasks a request's data loaders spawn, so that they end with the request.
#[derive(Clone, Default)]
struct RequestTasks(Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>);

impl RequestTasks {
    /// A data loader spawner that registers each task.
    fn spawner(&self) -> impl Fn(futures::future::BoxFuture<'static, ()>) + Send + Sync + 'static {
        let tasks = self.clone();
        move |work| {
            let handle = tokio::spawn(work).abort_handle();
            let mut tasks = tasks
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        }
    }
}

/// Aborts a request's remaining loader tasks when its execution ends or is dropped.
struct AbortOnDrop(RequestTasks);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let mut tasks = self
            .0
             .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// Hands what a cancelled request did to the audit log: a write that committed before the
/// request was dropped is audited like any other.
struct AuditOnDrop {
    audit: Arc<RequestAudit>,
    sink: AuditSink,
    subject: String,
    organisation: String,
    operation: String,
    armed: bool,
}

impl Drop for AuditOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let events = self
                .audit
                .take_events(&self.subject, &self.organisation, &self.operation);
            if !events.is_empty() {
                tracing::warn!(
                    events = events.len(),
                    "A request was cancelled: auditing what it did until then"
                );
            }
            self.sink.record(events);
        }
    }
}

fn schema_services(schema: &CaseGraphSchema) -> &Services {
    // `build` always installs `Services`; SDL-only schemas are never executed.
    schema
        .data::<Services>()
        .expect("the schema was built with Services")
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

/// The caller's point of view for this request (its visibility, its relationships).
pub(crate) fn viewpoint<'a>(ctx: &'a Context<'_>) -> &'a Viewpoint {
    &guard::request_access(ctx).viewpoint
}

/// Who performs a write (its token subject), for the store's records.
pub(crate) fn actor(ctx: &Context<'_>) -> String {
    viewpoint(ctx).principal.subject.clone()
}

/// Notes a completed write in the audit trail.
pub(crate) fn audit_write(ctx: &Context<'_>, op: WriteOperation, case: Option<&str>) {
    request_data::<Arc<RequestAudit>>(ctx).write(&format!("{op:?}"), case);
}

/// Maps a store failure to a client error; internal details go to the log, not the client.
pub(crate) fn store_err(e: StoreError) -> async_graphql::Error {
    let code = e.code();
    if let (ErrorCode::Duplicate, StoreError::Database(_)) = (code, &e) {
        tracing::info!(error = %e, "A concurrent write took the same unique value");
        return gql_error(
            code,
            "the record already exists: a concurrent write took the same unique value; re-read and retry",
        );
    }
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

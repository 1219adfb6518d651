//! The GraphQL API (code-first). `schema.graphql` at the repository root is its golden SDL.
//!
//! This module knows nothing of HTTP: the transport hands it a verified [`Principal`] and a
//! request, and gets a response back.

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

use crate::access::{Access, Principal, WriteOperation};
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
}

/// Options that shape the schema.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Answer introspection queries.
    pub introspection: bool,
    /// Limits.
    pub limits: LimitsConfig,
}

/// Builds the schema over a store and the host-state connectors.
pub fn build(store: Arc<dyn Store>, connectors: crate::connectors::Connectors, options: SchemaOptions) -> CaseGraphSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .data(Services { store, access: Access::new(), limits: options.limits.clone(), connectors })
        .limit_depth(options.limits.max_depth)
        .limit_complexity(options.limits.max_complexity)
        .limit_recursive_depth(64)
        .extension(AliasLimit(options.limits.max_aliases));
    if !options.introspection {
        // Without introspection, "did you mean" suggestions would leak the schema too.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL of the schema, as `casegraph schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription).finish().sdl()
}

/// Runs one request for a principal. Every error in the response carries `extensions.code`.
pub async fn execute(schema: &CaseGraphSchema, request: async_graphql::Request, principal: Principal) -> async_graphql::Response {
    let services = schema_services(schema);
    let store = Arc::clone(&services.store);
    let connectors = services.connectors.clone();
    let request = request
        .data(principal)
        .data(DataLoader::new(StoreLoader { store }, tokio::spawn))
        .data(loaders::Prefetched::default())
        .data(DataLoader::new(proceedings::ConnectorLoader { connectors }, tokio::spawn));
    let mut response = schema.execute(request).await;
    let failed_before_execution = response.data == async_graphql::Value::Null;
    for err in &mut response.errors {
        let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if err.message.contains("nested too deep") || err.message.contains("too complex") {
            ErrorCode::OperationTooComplex
        } else if err.path.is_empty() && failed_before_execution {
            ErrorCode::GraphqlValidationFailed
        } else {
            ErrorCode::Internal
        };
        err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
    response
}

fn schema_services(schema: &CaseGraphSchema) -> &Services {
    // `build` always installs `Services`; SDL-only schemas are never executed.
    schema.data::<Services>().expect("the schema was built with Services")
}

/// Refuses operations with more aliases than allowed (alias floods multiply resolver work).
/// Runs on the document async-graphql has already parsed, so nothing is parsed twice.
struct AliasLimit(usize);

impl async_graphql::extensions::ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

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
        let count = count_aliases(&doc);
        if count > self.0 {
            let mut err = async_graphql::ServerError::new(
                format!("the operation has {count} aliases; at most {} are allowed", self.0),
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

fn count_aliases(doc: &async_graphql::parser::types::ExecutableDocument) -> usize {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node),
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let ops: usize = doc.operations.iter().map(|(_, op)| walk(&op.node.selection_set.node)).sum();
    let frags: usize = doc.fragments.values().map(|f| walk(&f.node.selection_set.node)).sum();
    ops + frags
}

pub(crate) fn services<'a>(ctx: &'a Context<'_>) -> &'a Services {
    request_data::<Services>(ctx)
}

/// Data that [`build`] and [`execute`] always install; its absence is a programming error in
/// this module, caught by every integration test.
pub(crate) fn request_data<'a, T: std::any::Any + Send + Sync>(ctx: &'a Context<'_>) -> &'a T {
    ctx.data::<T>().unwrap_or_else(|_| panic!("{} is installed by schema::build/execute", std::any::type_name::<T>()))
}

pub(crate) fn principal<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Principal> {
    ctx.data_opt::<Principal>().ok_or_else(|| gql_error(ErrorCode::Unauthenticated, "authentication required"))
}

/// Asks the access gate whether the caller may read `type_name.field`.
pub(crate) fn gate(ctx: &Context<'_>, type_name: &str, field: &str) -> async_graphql::Result<()> {
    let p = principal(ctx)?;
    services(ctx)
        .access
        .authorize_read(p, type_name, field)
        .into_result()
        .map_err(|(code, message)| gql_error(code, message))
}

/// Asks the access gate whether the caller may write; returns the actor to record.
pub(crate) fn authorize_write(ctx: &Context<'_>, op: WriteOperation) -> async_graphql::Result<String> {
    let p = principal(ctx)?;
    services(ctx).access.authorize_write(p, op).into_result().map_err(|(code, message)| gql_error(code, message))?;
    Ok(p.subject.clone())
}

/// Maps a store failure to a client error; internal details go to the log, not the client.
pub(crate) fn store_err(e: StoreError) -> async_graphql::Error {
    let code = e.code();
    match code {
        ErrorCode::Internal | ErrorCode::StoreUnavailable => {
            tracing::error!(error = %e, "Store operation failed");
            gql_error(code, "the case store failed; the server log has details under this request's id")
        }
        _ => gql_error(code, e.to_string()),
    }
}

pub(crate) fn load_err(e: Arc<StoreError>) -> async_graphql::Error {
    tracing::error!(error = %e, "Batched store load failed");
    gql_error(e.code(), "the case store failed; the server log has details under this request's id")
}

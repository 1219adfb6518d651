//! The one enforcement point of the access plan.
//!
//! Every object type of the schema is served wrapped in [`Guarded`]. Its `resolve_field` is the
//! single function through which every field of every object resolves, and it applies the
//! operation's plan before the field's resolver runs: a field the plan grants resolves; one it
//! denies resolves to `null` with one `FORBIDDEN_FIELD` error at its path (the resolver never
//! runs, so nothing is fetched for it); one the plan leaves to the record is decided from the
//! record's [`Protected`] answers (what it belongs to, a level its marking raises). Arguments the
//! principal may not use refuse their field the same way.
//!
//! The [`Enforce`] extension plans each document (cached per document and class of principal),
//! refuses introspection and the federation SDL when they are off, wherever they are nested,
//! refuses a whole operation with `on_denied_field = "reject"`, and fails closed: a field of a
//! type that is not wrapped (a resolver that returned a bare object) resolves to `null` with an
//! error instead of resolving unchecked.

use crate::access::audit::RequestAudit;
use crate::access::{
    Access, FieldDecision, Level, OnDenied, OperationPlan, PlannedField, Policy, Subject, Viewpoint,
};
use crate::error::ErrorCode;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextResolve,
    ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Field};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{resolve_container, ContainerType};
use async_graphql::{
    Context, ContextSelectionSet, ObjectType, OutputType, PathSegment, Positioned, ServerError,
    ServerResult, Value, Variables,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

/// What the enforcement point must know about a record. Every object type implements it; case
/// data answers with its case, and national records with their marking.
pub trait Protected: Send + Sync {
    /// What the record's fields belong to.
    fn subject(&self) -> Subject<'_> {
        Subject::General
    }

    /// The level of `field` on this record, given the policy's `level` for it: a source's
    /// marking may raise it, a record rule lower it (a convicted defendant's name). Only the
    /// fields a type declares in its traits (`raisable`, `lowerable`) may differ.
    fn level(&self, _field: &str, level: Level, _policy: &Policy) -> Level {
        level
    }

    /// For value objects (a location, a court): whether the record holds a value in a field
    /// `readable` lets through. When it does not, the object resolves to `null`, exactly like
    /// an absent one, so that its existence tells nothing about fields the principal may not
    /// read.
    fn present(&self, _readable: &dyn Fn(&str) -> bool) -> bool {
        true
    }
}

/// An object the enforcement point guards. Resolvers return `Guarded<T>`, never a bare `T`.
pub struct Guarded<T>(pub(crate) T);

impl<T> From<T> for Guarded<T> {
    fn from(t: T) -> Self {
        Guarded(t)
    }
}

/// Per-request state of the enforcement point.
pub(crate) struct RequestAccess {
    pub(crate) access: Access,
    pub(crate) viewpoint: Viewpoint,
    pub(crate) audit: Arc<RequestAudit>,
    plan: OnceLock<Arc<OperationPlan>>,
    /// Fields the extension saw start and the enforcement point has not decided yet, by the
    /// address of their path node (unique while the field resolves).
    pending: Mutex<HashSet<usize>>,
    /// Errors raised where no resolver context exists (the extension's own refusals).
    errors: Mutex<Vec<ServerError>>,
}

impl RequestAccess {
    pub(crate) fn new(access: Access, viewpoint: Viewpoint, audit: Arc<RequestAudit>) -> Self {
        Self {
            access,
            viewpoint,
            audit,
            plan: OnceLock::new(),
            pending: Mutex::default(),
            errors: Mutex::default(),
        }
    }

    /// Errors the extension raised outside resolvers, to merge into the response.
    pub(crate) fn take_errors(&self) -> Vec<ServerError> {
        std::mem::take(&mut *lock(&self.errors))
    }

    /// The decision on `field` of `T` for this principal, on `record`, with the level it was
    /// taken at. No side effect.
    fn decide<T: Protected>(
        &self,
        record: &T,
        planned: &PlannedField,
        field: &str,
    ) -> (bool, Level) {
        let policy = self.access.policy();
        let base = policy.field(planned.id).level;
        match planned.decision {
            FieldDecision::Grant => {
                let level = record.level(field, base, policy);
                if level == base {
                    (true, level)
                } else {
                    (self.viewpoint.may_read(level, record.subject()), level)
                }
            }
            FieldDecision::Deny => {
                let level = record.level(field, base, policy);
                // Only a record rule that lowers the level can save a denied field, and only
                // if the principal holds what the field needs (the plan folds that in, so
                // recheck it).
                let holder = policy.holder_ok(
                    planned.id,
                    self.viewpoint.class.roles,
                    self.viewpoint.class.org,
                );
                if level < base && holder {
                    (self.viewpoint.may_read(level, record.subject()), level)
                } else {
                    (false, level)
                }
            }
            FieldDecision::PerRecord => {
                let level = record.level(field, base, policy);
                (self.viewpoint.may_read(level, record.subject()), level)
            }
        }
    }

    /// The plan entry of a field the document does not plan (cannot happen for validated
    /// documents; computed from the class plan so that nothing is ever left undecided).
    fn unplanned(&self, type_name: &str, field: &str) -> Option<PlannedField> {
        let id = self.access.policy().field_id(type_name, field)?;
        let class = self.access.class_plan(self.viewpoint.class);
        Some(PlannedField {
            id,
            decision: class.decision(id),
            denied_arguments: self
                .access
                .policy()
                .field(id)
                .arguments
                .iter()
                .filter(|(_, level)| !class.may_use(*level))
                .map(|(p, _)| p.clone())
                .collect(),
        })
    }

    fn planned(
        &self,
        pos: async_graphql::Pos,
        type_name: &str,
        field: &str,
    ) -> Option<Cow<'_, PlannedField>> {
        self.plan
            .get()
            .and_then(|p| p.fields.get(&pos))
            .filter(|p| {
                let f = self.access.policy().field(p.id);
                f.type_name == type_name && f.field == field
            })
            .map(Cow::Borrowed)
            .or_else(|| self.unplanned(type_name, field).map(Cow::Owned))
    }

    /// Whether `field` of `record` would be readable (for [`Protected::present`]). No side
    /// effect.
    fn readable<T: Protected>(&self, type_name: &str, record: &T, field: &str) -> bool {
        let Some(id) = self.access.policy().field_id(type_name, field) else {
            return false;
        };
        let planned = PlannedField {
            id,
            decision: self.access.class_plan(self.viewpoint.class).decision(id),
            denied_arguments: Vec::new(),
        };
        self.decide(record, &planned, field).0
    }
}

/// The plan's decision before anything is fetched: may `type_name.field` be read on records
/// of `subject`, at the level the policy gives it (a record's own marking is not known yet, and
/// can only raise it)? Decides what a host-state system is asked for (the connector field
/// mask); what is then read is decided again by the enforcement point.
pub(crate) fn may_fetch(
    ctx: &Context<'_>,
    type_name: &str,
    field: &str,
    subject: Subject<'_>,
) -> bool {
    let ra = request_access(ctx);
    let policy = ra.access.policy();
    let Some(id) = policy.field_id(type_name, field) else {
        return false;
    };
    match ra.access.class_plan(ra.viewpoint.class).decision(id) {
        FieldDecision::Grant => true,
        FieldDecision::Deny => false,
        FieldDecision::PerRecord => ra.viewpoint.may_read(policy.field(id).level, subject),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn request_access<'a>(ctx: &'a Context<'_>) -> &'a RequestAccess {
    super::request_data::<Arc<RequestAccess>>(ctx)
}

fn forbidden(message: impl Into<String>) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", ErrorCode::ForbiddenField.as_str());
    err.extensions = Some(ext);
    err
}

fn path_of(ctx: &Context<'_>) -> String {
    ctx.path_node
        .map(|p| p.to_string_vec().join("."))
        .unwrap_or_default()
}

/// The value of the argument at `path` (argument name, then input fields), with variables
/// resolved; `None` when absent or null.
fn argument_value(ctx: &Context<'_>, path: &[String]) -> Option<async_graphql::Value> {
    let (arg, rest) = path.split_first()?;
    let value = ctx.item.node.get_argument(arg)?;
    let variables = &ctx.query_env.variables;
    let defaults = &ctx.query_env.operation.node.variable_definitions;
    let mut value = value
        .node
        .clone()
        .into_const_with(|name| {
            variables
                .get(&name)
                .cloned()
                .or_else(|| {
                    defaults
                        .iter()
                        .find(|d| d.node.name.node == name)
                        .and_then(|d| d.node.default_value().cloned())
                })
                .ok_or(())
        })
        .ok()?;
    for key in rest {
        value = match value {
            async_graphql::Value::Object(mut map) => map.shift_remove(key.as_str())?,
            _ => return None,
        };
    }
    (value != async_graphql::Value::Null).then_some(value)
}

impl<T: OutputType + ContainerType + Protected> OutputType for Guarded<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let ra = ctx
            .data_opt::<Arc<RequestAccess>>()
            .expect("RequestAccess is installed by schema::execute");
        let subject = self.0.subject();
        if let Subject::Case(case) | Subject::Victim(case, _, _) = subject {
            if !ra.viewpoint.sees(case) {
                // Resolvers fetch visible cases only; reaching here is a bug, and the record
                // is withheld rather than served.
                tracing::error!(
                    type_name = %T::type_name(),
                    "A resolver produced case data the principal may not see; withheld"
                );
                let mut err = ServerError::new("internal error: withheld", None);
                let mut ext = async_graphql::ErrorExtensionValues::default();
                ext.set("code", ErrorCode::Internal.as_str());
                err.extensions = Some(ext);
                return Err(err);
            }
        }
        let type_name = T::type_name();
        if !self
            .0
            .present(&|field| ra.readable(&type_name, &self.0, field))
        {
            return Ok(Value::Null);
        }
        resolve_container(ctx, self).await
    }
}

impl<T: OutputType + ContainerType + Protected> ContainerType for Guarded<T> {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let ra = request_access(ctx);
        if let Some(node) = ctx.path_node.as_ref() {
            lock(&ra.pending).remove(&(node as *const _ as usize));
        }
        let type_name = T::type_name();
        let name = ctx.item.node.name.node.as_str();
        let Some(planned) = ra.planned(ctx.item.pos, &type_name, name) else {
            // Every field of the schema has a rule (checked at start): a field without one is
            // refused, never resolved unchecked.
            tracing::error!(field = %format!("{type_name}.{name}"), "A field without a policy rule was asked; refused");
            ctx.add_error(
                ctx.set_error_path(
                    forbidden(format!(
                        "{type_name}.{name} is not readable by this principal"
                    ))
                    .with_pos(ctx.item.pos),
                ),
            );
            return Ok(Some(Value::Null));
        };
        let subject = self.0.subject();
        let case = subject.case_id();
        for path in &planned.denied_arguments {
            if argument_value(ctx, path).is_some() {
                ra.audit.denied(case, path_of(ctx));
                ctx.add_error(
                    ctx.set_error_path(
                        forbidden(format!(
                            "the argument {}.{name}.{} is not usable by this principal",
                            type_name,
                            path.join(".")
                        ))
                        .with_pos(ctx.item.pos),
                    ),
                );
                return Ok(Some(Value::Null));
            }
        }
        let (allowed, level) = ra.decide(&self.0, &planned, name);
        if !allowed {
            ra.audit.denied(case, path_of(ctx));
            let policy = ra.access.policy();
            let error =
                if policy.holder_ok(planned.id, ra.viewpoint.class.roles, ra.viewpoint.class.org) {
                    forbidden(format!(
                        "{type_name}.{name} is not readable by this principal"
                    ))
                } else {
                    // The policy's role rules are public: say what is needed.
                    refusal(
                        ErrorCode::Forbidden,
                        format!(
                            "{type_name}.{name} requires {}",
                            policy.holder_rule(planned.id)
                        ),
                    )
                };
            ctx.add_error(ctx.set_error_path(error.with_pos(ctx.item.pos)));
            return Ok(Some(Value::Null));
        }
        if level >= Level::CaseParties {
            if let Some(case) = case {
                ra.audit.read(case, path_of(ctx));
            }
        }
        let nullable = ra.access.policy().field(planned.id).nullable;
        match self.0.resolve_field(ctx).await {
            Err(e) if nullable => {
                ctx.add_error(e);
                Ok(Some(Value::Null))
            }
            other => other,
        }
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        self.0.find_entity(ctx, params).await
    }
}

impl<T: ObjectType + Protected> ObjectType for Guarded<T> {}

trait WithPos {
    fn with_pos(self, pos: async_graphql::Pos) -> Self;
}

impl WithPos for ServerError {
    fn with_pos(mut self, pos: async_graphql::Pos) -> Self {
        self.locations = vec![pos];
        self
    }
}

/// The document-level half of enforcement (see the module documentation).
pub(crate) struct Enforce {
    pub(crate) introspection: bool,
}

impl ExtensionFactory for Enforce {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EnforceExtension {
            introspection: self.introspection,
        })
    }
}

struct EnforceExtension {
    introspection: bool,
}

fn refusal(code: ErrorCode, message: String) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    err.extensions = Some(ext);
    err
}

/// Fields async-graphql resolves itself on the query root that the policy classifies: the plan
/// decides them here. (`__schema` and `__type` are decided by the introspection setting, for
/// the whole document, in `parse_query`.)
const ROOT_INTERNAL: &[&str] = &["_service", "_entities"];

/// Types async-graphql serves itself that the policy classifies: their fields are general data,
/// decided here by the plan.
const INTERNAL_TYPES: &[&str] = &["_Service"];

fn info_path(info: &ResolveInfo<'_>) -> Vec<PathSegment> {
    path_segments(info.path_node)
}

fn path_segments(node: &async_graphql::QueryPathNode<'_>) -> Vec<PathSegment> {
    node.to_string_vec()
        .into_iter()
        .map(|s| match s.parse::<usize>() {
            Ok(i) => PathSegment::Index(i),
            Err(_) => PathSegment::Field(s),
        })
        .collect()
}

#[async_trait::async_trait]
impl Extension for EnforceExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Aliases, like every other figure of the document, are counted over the expanded
        // document by `schema::cost`, before this runs.
        let doc = next.run(ctx, query, variables).await?;
        let Some(ra) = ctx.data_opt::<Arc<RequestAccess>>() else {
            return Ok(doc);
        };
        let plan = ra.access.operation_plan(query, &doc, ra.viewpoint.class);
        if !self.introspection && plan.introspects {
            // Introspection and the federation SDL are the whole schema: decided on the whole
            // document, wherever they are nested.
            return Err(refusal(
                ErrorCode::GraphqlValidationFailed,
                "introspection is disabled on this server".into(),
            ));
        }
        let _ = ra.plan.set(plan);
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        if let Some(ra) = ctx.data_opt::<Arc<RequestAccess>>() {
            let reject = ra.access.policy().enforcement().on_denied_field == OnDenied::Reject;
            if let (true, Some(plan)) = (reject, ra.plan.get()) {
                let denied: Vec<&str> = plan
                    .denied
                    .iter()
                    .filter(|(op, _)| {
                        op.is_none() || op.as_deref() == operation_name || operation_name.is_none()
                    })
                    .map(|(_, f)| f.as_str())
                    .collect();
                if !denied.is_empty() {
                    ra.audit.denied(None, denied.join(", "));
                    return async_graphql::Response::from_errors(vec![forbidden(format!(
                        "the operation selects {} field(s) this principal may not read: {}",
                        denied.len(),
                        denied.join(", ")
                    ))]);
                }
            }
        }
        next.run(ctx, operation_name).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let Some(ra) = ctx.data_opt::<Arc<RequestAccess>>() else {
            return next.run(ctx, info).await;
        };
        let parent = info.parent_type;
        if parent.starts_with('[') {
            // A list item (async-graphql reports items with the list type as parent): its
            // fields are enforced as they resolve.
            return next.run(ctx, info).await;
        }
        let internal = (parent == "Query" && ROOT_INTERNAL.contains(&info.name))
            || INTERNAL_TYPES.contains(&parent);
        if !internal
            && (info.is_for_introspection
                || parent.starts_with("__")
                || info.name.starts_with("__"))
        {
            // Decided for the whole document in `parse_query`.
            return next.run(ctx, info).await;
        }
        if internal {
            // Arguments of these fields are always given (`representations`): one the class
            // may not use refuses the field.
            let allowed = ra.unplanned(parent, info.name).is_some_and(|p| {
                p.decision == FieldDecision::Grant && p.denied_arguments.is_empty()
            });
            // (A general field is never left to the record: nothing there is per record.)
            if !allowed {
                ra.audit
                    .denied(None, info.path_node.to_string_vec().join("."));
                let mut err = forbidden(format!(
                    "Query.{} is not readable by this principal",
                    info.name
                ));
                err.path = info_path(&info);
                lock(&ra.errors).push(err);
                return Ok(Some(Value::Null));
            }
            return next.run(ctx, info).await;
        }
        let node = info.path_node;
        let name = info.name;
        let key = node as *const _ as usize;
        lock(&ra.pending).insert(key);
        let result = next.run(ctx, info).await;
        if lock(&ra.pending).remove(&key) {
            tracing::error!(
                field = %format!("{parent}.{name}"),
                "A field resolved without the enforcement point (its type is not Guarded); withheld"
            );
            let mut err = forbidden(format!("{parent}.{name} is not readable by this principal"));
            err.path = path_segments(node);
            lock(&ra.errors).push(err);
            return Ok(Some(Value::Null));
        }
        result
    }
}

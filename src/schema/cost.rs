//! Operation limits, measured before async-graphql validates or executes anything.
//!
//! async-graphql's recursion check, its validation rules and its executor all walk a document
//! with every fragment spread replaced by the fragment's selections. A document of a few
//! kilobytes can expand exponentially (`fragment F1 on Query { ...F0 ...F0 }`, forty times
//! over: 2^40 fields from 1.7 KB), so every limit must be counted before any of those walks, on
//! figures computed in time linear in the document. [`OperationLimits`] does it in
//! `prepare_request`, the first hook async-graphql runs, before it parses:
//!
//! 1. the variables: their size, and every list and string in them;
//! 2. a lexical scan of the document: its tokens (a 180 KB list costs the parser tens of
//!    milliseconds) and its bracket nesting (the parser recurses on it);
//! 3. parsing, once: the parsed document is handed on so async-graphql does not parse again,
//!    and a syntax error gets a short message (the parser's own quotes the document);
//! 4. directives: only those the schema declares, where they may appear, never repeated;
//! 5. lists and strings written in the document;
//! 6. the expanded figures of every operation and every fragment — fields (spreads and inline
//!    fragments count too), aliases, depth and root fields — with each fragment measured once
//!    and memoised; then the estimated cost of the operation to execute, where the fields under
//!    a field with `first` count `first` times and those under other lists of objects
//!    `assumed_list_size` times (Apollo Router's demand control, graphql-armor's cost limit).
//!
//! An operation over a limit is refused with `OPERATION_TOO_COMPLEX` and the figure
//! (`extensions.limit`, `extensions.measured`, `extensions.maximum`); an input over a limit
//! with `INPUT_TOO_LARGE`; a bad directive or a document that does not parse with
//! `GRAPHQL_VALIDATION_FAILED`.

use crate::config::LimitsConfig;
use crate::error::ErrorCode;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet,
};
use async_graphql::registry::__DirectiveLocation as Location;
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{Name, Positioned, Request, ServerError, ServerResult, Variables};
use async_graphql_value::{ConstValue, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The page size the cost estimate assumes for a field whose `first` argument is absent: the
/// largest default page of the API (`auditLog`: 50; `cases`: 20).
const DEFAULT_FIRST: u64 = 50;

/// Longest error message derived from a document (a name or a parser message can be as long
/// as the body).
const MAX_MESSAGE_CHARS: usize = 200;

/// The extension measuring every request against [`LimitsConfig`] (module documentation).
pub(crate) struct OperationLimits {
    limits: Arc<LimitsConfig>,
}

impl OperationLimits {
    /// Measures requests against `limits`.
    pub(crate) fn new(limits: &LimitsConfig) -> Self {
        Self {
            limits: Arc::new(limits.clone()),
        }
    }
}

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension {
            limits: Arc::clone(&self.limits),
        })
    }
}

struct LimitsExtension {
    limits: Arc<LimitsConfig>,
}

#[async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let doc = check_request(&self.limits, &ctx.schema_env.registry, &request)?;
        request.set_parsed_query(doc);
        next.run(ctx, request).await
    }
}

/// Checks a request against `limits` and returns its parsed document (steps 1 to 6 of the
/// module documentation).
pub(crate) fn check_request(
    limits: &LimitsConfig,
    registry: &Registry,
    request: &Request,
) -> ServerResult<ExecutableDocument> {
    check_variables(limits, &request.variables)?;
    let max_nesting = lexical_nesting_limit(limits);
    match scan(&request.query, max_nesting, limits.max_tokens) {
        Scan::Fits => {}
        Scan::TooDeep(depth) => {
            return Err(too_complex(
                "nesting",
                depth as u64,
                max_nesting as u64,
                format!("the document nests brackets more than {max_nesting} deep"),
            ))
        }
        Scan::TooLong(tokens) => {
            return Err(too_complex(
                "tokens",
                tokens as u64,
                limits.max_tokens as u64,
                format!(
                    "the document has more than {} tokens; at most {} are allowed",
                    limits.max_tokens, limits.max_tokens
                ),
            ))
        }
    }
    let doc = async_graphql::parser::parse_query(&request.query).map_err(parse_error)?;
    check_directives(registry, &doc)?;
    check_document_values(limits, &doc)?;
    let measured = Measure::new(registry, &doc, limits, &request.variables)?;
    measured.check(request.operation_name.as_deref())?;
    Ok(doc)
}

fn refusal(code: ErrorCode, message: String) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.as_str());
    err.extensions = Some(ext);
    err
}

/// `OPERATION_TOO_COMPLEX` with the figure: which limit, what was measured, the maximum.
fn too_complex(limit: &str, measured: u64, maximum: u64, message: String) -> ServerError {
    let mut err = refusal(ErrorCode::OperationTooComplex, message);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("limit", limit);
    ext.set("measured", measured);
    ext.set("maximum", maximum);
    err
}

fn input_too_large(message: String) -> ServerError {
    refusal(ErrorCode::InputTooLarge, message)
}

fn invalid(message: String) -> ServerError {
    refusal(ErrorCode::GraphqlValidationFailed, message)
}

/// `s` cut to [`MAX_MESSAGE_CHARS`] characters.
fn short(s: &str) -> String {
    let mut chars = s.chars();
    let cut: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        format!("{cut}…")
    } else {
        cut
    }
}

// ---------- 1. variables and 5. values in the document ----------

fn check_variables(limits: &LimitsConfig, variables: &Variables) -> ServerResult<()> {
    if variables.is_empty() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(variables)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if bytes > limits.max_variables_bytes {
        return Err(input_too_large(format!(
            "the variables take {bytes} bytes of JSON; at most {} are accepted",
            limits.max_variables_bytes
        )));
    }
    for (name, value) in variables.iter() {
        check_const(limits, value, &format!("${name}"))?;
    }
    Ok(())
}

fn check_const(limits: &LimitsConfig, value: &ConstValue, at: &str) -> ServerResult<()> {
    match value {
        ConstValue::String(s) => check_string(limits, s, at),
        ConstValue::List(items) => {
            check_list(limits, items.len(), at)?;
            items.iter().try_for_each(|v| check_const(limits, v, at))
        }
        ConstValue::Object(fields) => fields
            .iter()
            .try_for_each(|(k, v)| check_const(limits, v, &format!("{at}.{k}"))),
        _ => Ok(()),
    }
}

fn check_value(limits: &LimitsConfig, value: &Value, at: &str) -> ServerResult<()> {
    match value {
        Value::String(s) => check_string(limits, s, at),
        Value::List(items) => {
            check_list(limits, items.len(), at)?;
            items.iter().try_for_each(|v| check_value(limits, v, at))
        }
        Value::Object(fields) => fields
            .iter()
            .try_for_each(|(k, v)| check_value(limits, v, &format!("{at}.{k}"))),
        _ => Ok(()),
    }
}

fn check_list(limits: &LimitsConfig, len: usize, at: &str) -> ServerResult<()> {
    if len > limits.max_list_items {
        return Err(input_too_large(format!(
            "{} is a list of {len} items; at most {} are accepted",
            short(at),
            limits.max_list_items
        )));
    }
    Ok(())
}

fn check_string(limits: &LimitsConfig, s: &str, at: &str) -> ServerResult<()> {
    // Bytes bound characters from above: most strings are decided without counting.
    if s.len() > limits.max_string_chars {
        let chars = s.chars().count();
        if chars > limits.max_string_chars {
            return Err(input_too_large(format!(
                "{} is a string of {chars} characters; at most {} are accepted",
                short(at),
                limits.max_string_chars
            )));
        }
    }
    Ok(())
}

fn check_document_values(limits: &LimitsConfig, doc: &ExecutableDocument) -> ServerResult<()> {
    fn directives(
        limits: &LimitsConfig,
        list: &[Positioned<Directive>],
        at: &str,
    ) -> ServerResult<()> {
        for d in list {
            for (name, value) in &d.node.arguments {
                let at = format!("{at}@{}({})", d.node.name.node, name.node);
                check_value(limits, &value.node, &at)?;
            }
        }
        Ok(())
    }
    fn selections(limits: &LimitsConfig, set: &SelectionSet) -> ServerResult<()> {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let field = &f.node;
                    for (name, value) in &field.arguments {
                        let at = format!("argument {}.{}", field.name.node, name.node);
                        check_value(limits, &value.node, &at)?;
                    }
                    directives(limits, &field.directives, field.name.node.as_str())?;
                    selections(limits, &field.selection_set.node)?;
                }
                Selection::FragmentSpread(s) => {
                    directives(limits, &s.node.directives, "a fragment spread")?;
                }
                Selection::InlineFragment(i) => {
                    directives(limits, &i.node.directives, "an inline fragment")?;
                    selections(limits, &i.node.selection_set.node)?;
                }
            }
        }
        Ok(())
    }
    for (_, op) in doc.operations.iter() {
        directives(limits, &op.node.directives, "the operation")?;
        for var in &op.node.variable_definitions {
            let at = format!("default of ${}", var.node.name.node);
            if let Some(default) = &var.node.default_value {
                check_const(limits, &default.node, &at)?;
            }
            directives(limits, &var.node.directives, &at)?;
        }
        selections(limits, &op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        directives(limits, &fragment.node.directives, "a fragment")?;
        selections(limits, &fragment.node.selection_set.node)?;
    }
    Ok(())
}

// ---------- 2. lexical nesting and 3. parsing ----------

/// Deepest bracket nesting the lexical scan lets through to the parser: room for
/// `max_depth` selection sets, inline fragments between them and nested input values.
fn lexical_nesting_limit(limits: &LimitsConfig) -> usize {
    4 * limits.max_depth + 32
}

/// What the lexical scan found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Within both limits.
    Fits,
    /// Brackets nest this deep (the first depth over the limit).
    TooDeep(usize),
    /// This many tokens (the first count over the limit).
    TooLong(usize),
}

/// One pass over the bytes, stopping at the first excess: the nesting of `{`, `(` and `[`
/// outside strings and comments, and the tokens (a name, a number, a string, a punctuator;
/// commas, white space and comments are not tokens in GraphQL).
fn scan(query: &str, max_nesting: usize, max_tokens: usize) -> Scan {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut tokens = 0usize;
    let mut i = 0;
    let word =
        |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-' || b == b'+';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        tokens += 1;
        if tokens > max_tokens {
            return Scan::TooLong(tokens);
        }
        match b {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                if depth > max_nesting {
                    return Scan::TooDeep(depth);
                }
                i += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b if word(b) => {
                while i < bytes.len() && word(bytes[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    Scan::Fits
}

#[cfg(test)]
fn nesting_over(query: &str, max: usize) -> Option<usize> {
    match scan(query, max, usize::MAX) {
        Scan::TooDeep(depth) => Some(depth),
        _ => None,
    }
}

fn parse_error(err: async_graphql::parser::Error) -> ServerError {
    use async_graphql::parser::Error;
    let position = err
        .positions()
        .next()
        .map(|p| format!(" at line {}, column {}", p.line, p.column))
        .unwrap_or_default();
    if matches!(err, Error::RecursionLimitExceeded) {
        return refusal(
            ErrorCode::OperationTooComplex,
            "the document nests too deep to parse".into(),
        );
    }
    // pest's message quotes the offending line (the whole document, when it is one line):
    // only its "expected …" summary is kept.
    let what = match &err {
        Error::Syntax { message, .. } => message
            .lines()
            .find_map(|l| l.trim().strip_prefix("= "))
            .map_or_else(|| "syntax error".to_string(), short),
        other => short(&other.to_string()),
    };
    invalid(format!("the document does not parse{position}: {what}"))
}

// ---------- 4. directives ----------

/// Checks the directives of one place of the document.
type DirectiveCheck<'a> = dyn Fn(&[Positioned<Directive>], Location) -> ServerResult<()> + 'a;

fn check_directives(registry: &Registry, doc: &ExecutableDocument) -> ServerResult<()> {
    let check = |list: &[Positioned<Directive>], location: Location| -> ServerResult<()> {
        let mut seen: HashSet<&str> = HashSet::new();
        for d in list {
            let name = d.node.name.node.as_str();
            let Some(declared) = registry.directives.get(name) else {
                return Err(invalid(format!("unknown directive @{}", short(name))).with_pos(d.pos));
            };
            if !declared.locations.contains(&location) {
                return Err(invalid(format!(
                    "directive @{name} may not be used on {}",
                    location_name(location)
                ))
                .with_pos(d.pos));
            }
            if !seen.insert(name) && !declared.is_repeatable {
                return Err(
                    invalid(format!("directive @{name} is used twice in one place"))
                        .with_pos(d.pos),
                );
            }
        }
        Ok(())
    };
    fn walk(set: &SelectionSet, check: &DirectiveCheck<'_>) -> ServerResult<()> {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    check(&f.node.directives, Location::FIELD)?;
                    walk(&f.node.selection_set.node, check)?;
                }
                Selection::FragmentSpread(s) => {
                    check(&s.node.directives, Location::FRAGMENT_SPREAD)?;
                }
                Selection::InlineFragment(i) => {
                    check(&i.node.directives, Location::INLINE_FRAGMENT)?;
                    walk(&i.node.selection_set.node, check)?;
                }
            }
        }
        Ok(())
    }
    for (_, op) in doc.operations.iter() {
        let location = match op.node.ty {
            OperationType::Query => Location::QUERY,
            OperationType::Mutation => Location::MUTATION,
            OperationType::Subscription => Location::SUBSCRIPTION,
        };
        check(&op.node.directives, location)?;
        for var in &op.node.variable_definitions {
            check(&var.node.directives, Location::VARIABLE_DEFINITION)?;
        }
        walk(&op.node.selection_set.node, &check)?;
    }
    for fragment in doc.fragments.values() {
        check(&fragment.node.directives, Location::FRAGMENT_DEFINITION)?;
        walk(&fragment.node.selection_set.node, &check)?;
    }
    Ok(())
}

fn location_name(location: Location) -> &'static str {
    match location {
        Location::QUERY => "a query",
        Location::MUTATION => "a mutation",
        Location::SUBSCRIPTION => "a subscription",
        Location::FIELD => "a field",
        Location::FRAGMENT_DEFINITION => "a fragment definition",
        Location::FRAGMENT_SPREAD => "a fragment spread",
        Location::INLINE_FRAGMENT => "an inline fragment",
        Location::VARIABLE_DEFINITION => "a variable definition",
        _ => "this location",
    }
}

trait WithPos {
    fn with_pos(self, pos: async_graphql::Pos) -> Self;
}

impl WithPos for ServerError {
    fn with_pos(mut self, pos: async_graphql::Pos) -> Self {
        self.locations = vec![pos];
        self
    }
}

// ---------- 6. expanded figures and cost ----------

/// What one definition (an operation or a fragment) amounts to once expanded. Saturating:
/// 2^64 and more reads as `u64::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    /// Fields, fragment spreads and inline fragments: every selection a walk visits.
    pub(crate) fields: u64,
    /// Aliased fields.
    pub(crate) aliases: u64,
    /// Deepest field nesting (a leaf field at the root is 1).
    pub(crate) depth: u64,
    /// Fields at the top of the definition, through fragments.
    pub(crate) root_fields: u64,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.depth = self.depth.max(other.depth);
        self.root_fields = self.root_fields.saturating_add(other.root_fields);
    }
}

/// The expanded figures of a document, each fragment measured once.
pub(crate) struct Measure<'a> {
    registry: &'a Registry,
    doc: &'a ExecutableDocument,
    limits: &'a LimitsConfig,
    variables: &'a Variables,
    /// Fragments in dependency order: every fragment after those it spreads.
    order: Vec<&'a str>,
    fragments: HashMap<&'a str, Figures>,
}

impl<'a> Measure<'a> {
    /// Orders the fragments (refusing a cycle) and measures each once.
    pub(crate) fn new(
        registry: &'a Registry,
        doc: &'a ExecutableDocument,
        limits: &'a LimitsConfig,
        variables: &'a Variables,
    ) -> ServerResult<Self> {
        let order = fragment_order(doc)?;
        let mut measure = Self {
            registry,
            doc,
            limits,
            variables,
            order,
            fragments: HashMap::new(),
        };
        for name in measure.order.clone() {
            let fragment = &doc.fragments[name];
            let figures = measure.figures(&fragment.node.selection_set.node);
            measure.fragments.insert(name, figures);
        }
        Ok(measure)
    }

    /// The figures of a selection set, its fragments' figures looked up (they are measured
    /// before any definition that spreads them).
    fn figures(&self, set: &SelectionSet) -> Figures {
        let mut total = Figures::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let child = self.figures(&f.node.selection_set.node);
                    total.add(Figures {
                        fields: child.fields.saturating_add(1),
                        aliases: child
                            .aliases
                            .saturating_add(u64::from(f.node.alias.is_some())),
                        depth: child.depth.saturating_add(1),
                        root_fields: 1,
                    });
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    let mut spread = self.fragments.get(name).copied().unwrap_or_default();
                    spread.fields = spread.fields.saturating_add(1);
                    total.add(spread);
                }
                Selection::InlineFragment(i) => {
                    let mut inline = self.figures(&i.node.selection_set.node);
                    inline.fields = inline.fields.saturating_add(1);
                    total.add(inline);
                }
            }
        }
        total
    }

    /// The figures of the operation named `name` (or the only one).
    #[cfg(test)]
    pub(crate) fn operation(&self, name: Option<&str>) -> Option<Figures> {
        executed(self.doc, name).map(|op| self.figures(&op.selection_set.node))
    }

    /// Refuses any definition over a limit, then the executed operation's estimated cost.
    fn check(&self, operation_name: Option<&str>) -> ServerResult<()> {
        for (name, op) in self.doc.operations.iter() {
            let what = name.map_or_else(
                || "the operation".to_string(),
                |n| format!("operation {}", short(n.as_str())),
            );
            let figures = self.figures(&op.node.selection_set.node);
            self.check_figures(figures, &what)?;
            let max = self.limits.max_root_fields as u64;
            if figures.root_fields > max {
                return Err(too_complex(
                    "rootFields",
                    figures.root_fields,
                    max,
                    format!(
                        "{what} selects {} root fields; at most {max} are allowed",
                        figures.root_fields
                    ),
                ));
            }
        }
        // Fragments no operation spreads are still walked by validation.
        for name in &self.order {
            self.check_figures(self.fragments[name], &format!("fragment {}", short(name)))?;
        }
        if let Some(cost) = self.cost(operation_name) {
            let max = self.limits.max_complexity as u64;
            if cost > max {
                return Err(too_complex(
                    "cost",
                    cost,
                    max,
                    format!(
                        "the operation's estimated cost is {}; at most {max} is allowed (each field counts 1, times `first` under a field with `first`, times {} under other lists)",
                        at_least(cost),
                        self.limits.assumed_list_size
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_figures(&self, figures: Figures, what: &str) -> ServerResult<()> {
        let limits = [
            ("fields", "fields", figures.fields, self.limits.max_fields),
            (
                "aliases",
                "aliases",
                figures.aliases,
                self.limits.max_aliases,
            ),
            (
                "depth",
                "levels of fields",
                figures.depth,
                self.limits.max_depth,
            ),
        ];
        for (limit, noun, measured, max) in limits {
            let max = max as u64;
            if measured > max {
                let verb = if limit == "depth" { "nests" } else { "has" };
                return Err(too_complex(
                    limit,
                    measured,
                    max,
                    format!(
                        "{what} {verb} {} {noun} once its fragments are expanded; at most {max} are allowed",
                        at_least(measured)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The estimated cost of the operation to execute; `None` when the document does not say
    /// which (async-graphql then refuses it).
    pub(crate) fn cost(&self, operation_name: Option<&str>) -> Option<u64> {
        let op = executed(self.doc, operation_name)?;
        let root = match op.ty {
            OperationType::Query => self.registry.query_type.as_str(),
            OperationType::Mutation => self.registry.mutation_type.as_deref()?,
            OperationType::Subscription => self.registry.subscription_type.as_deref()?,
        };
        let costing = Costing {
            measure: self,
            operation: op,
        };
        let mut fragments: HashMap<(&str, bool), u64> = HashMap::new();
        for name in &self.order {
            let fragment = &self.doc.fragments[*name];
            let on = fragment.node.type_condition.node.on.node.as_str();
            for sliced in [false, true] {
                let cost = costing.cost(&fragment.node.selection_set.node, on, sliced, &fragments);
                fragments.insert((name, sliced), cost);
            }
        }
        Some(costing.cost(&op.selection_set.node, root, false, &fragments))
    }
}

fn at_least(measured: u64) -> String {
    if measured == u64::MAX {
        format!("more than {}", u64::MAX)
    } else {
        measured.to_string()
    }
}

/// The operation async-graphql will execute: the one named, or the only one.
fn executed<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The fragments of `doc` in dependency order (each after the fragments it spreads), found
/// by an iterative depth-first walk: a chain of thousands of fragments cannot exhaust the
/// stack. A cycle is refused (async-graphql's own checks would recurse around it).
fn fragment_order(doc: &ExecutableDocument) -> ServerResult<Vec<&str>> {
    fn spreads<'d>(set: &'d SelectionSet, out: &mut Vec<&'d str>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => spreads(&f.node.selection_set.node, out),
                Selection::FragmentSpread(s) => out.push(s.node.fragment_name.node.as_str()),
                Selection::InlineFragment(i) => spreads(&i.node.selection_set.node, out),
            }
        }
    }
    let edges: HashMap<&str, Vec<&str>> = doc
        .fragments
        .iter()
        .map(|(name, f)| {
            let mut out = Vec::new();
            spreads(&f.node.selection_set.node, &mut out);
            out.retain(|n| doc.fragments.contains_key(*n));
            (name.as_str(), out)
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    let mut order = Vec::with_capacity(edges.len());
    let mut roots: Vec<&str> = edges.keys().copied().collect();
    roots.sort_unstable();
    for root in roots {
        if marks.contains_key(root) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        marks.insert(root, Mark::Open);
        while let Some((name, next)) = stack.last_mut() {
            let children = &edges[*name];
            if let Some(&child) = children.get(*next) {
                *next += 1;
                match marks.get(child) {
                    Some(Mark::Done) => {}
                    Some(Mark::Open) => {
                        return Err(invalid(format!(
                            "fragment {} spreads itself (directly or through others)",
                            short(child)
                        )));
                    }
                    None => {
                        marks.insert(child, Mark::Open);
                        stack.push((child, 0));
                    }
                }
            } else {
                marks.insert(name, Mark::Done);
                order.push(*name);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// The cost estimate of one operation (its variables decide `first`).
struct Costing<'m, 'a> {
    measure: &'m Measure<'a>,
    operation: &'a OperationDefinition,
}

impl Costing<'_, '_> {
    /// The cost of `set` on `type_name`; `sliced` when its parent field had `first`, so its
    /// lists (a connection's `nodes`, `edges`) are that page and count once.
    fn cost(
        &self,
        set: &SelectionSet,
        type_name: &str,
        sliced: bool,
        fragments: &HashMap<(&str, bool), u64>,
    ) -> u64 {
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(f) => self.field(&f.node, type_name, sliced, fragments),
                Selection::FragmentSpread(s) => fragments
                    .get(&(s.node.fragment_name.node.as_str(), sliced))
                    .copied()
                    .unwrap_or(0),
                Selection::InlineFragment(i) => {
                    let on = i
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(type_name, |c| c.node.on.node.as_str());
                    self.cost(&i.node.selection_set.node, on, sliced, fragments)
                }
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn field(
        &self,
        field: &Field,
        parent: &str,
        sliced: bool,
        fragments: &HashMap<(&str, bool), u64>,
    ) -> u64 {
        if field.selection_set.node.items.is_empty() {
            return 1;
        }
        let limits = self.measure.limits;
        let meta = self
            .measure
            .registry
            .types
            .get(parent)
            .and_then(|t| t.field_by_name(field.name.node.as_str()));
        let (type_name, is_list, paginated) = match meta {
            Some(meta) => (
                named_type(&meta.ty),
                meta.ty.contains('['),
                meta.args.contains_key("first"),
            ),
            None => ("", false, field.get_argument("first").is_some()),
        };
        let times = if paginated {
            field
                .get_argument("first")
                .and_then(|v| self.int(&v.node))
                .unwrap_or(DEFAULT_FIRST)
                .clamp(1, u64::from(limits.max_page_size))
        } else if is_list && sliced {
            1
        } else if is_list {
            field
                .get_argument("representations")
                .and_then(|v| self.list_len(&v.node))
                .unwrap_or(limits.assumed_list_size as u64)
        } else {
            1
        };
        let children = self.cost(&field.selection_set.node, type_name, paginated, fragments);
        times.saturating_mul(children).saturating_add(1)
    }

    /// The value of an integer argument: a literal, a variable of the request, or the
    /// variable's default; `None` when absent or not an integer.
    fn int(&self, value: &Value) -> Option<u64> {
        let number = |v: &ConstValue| match v {
            ConstValue::Number(n) => n.as_i64().map(|n| u64::try_from(n).unwrap_or(0)),
            _ => None,
        };
        match value {
            Value::Number(n) => n.as_i64().map(|n| u64::try_from(n).unwrap_or(0)),
            Value::Variable(name) => self.variable(name).and_then(number),
            _ => None,
        }
    }

    fn list_len(&self, value: &Value) -> Option<u64> {
        match value {
            Value::List(items) => Some(items.len() as u64),
            Value::Variable(name) => match self.variable(name)? {
                ConstValue::List(items) => Some(items.len() as u64),
                _ => None,
            },
            _ => None,
        }
    }

    fn variable(&self, name: &Name) -> Option<&ConstValue> {
        self.measure.variables.get(name).or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value())
        })
    }
}

/// `Case` of `[Case!]!`.
fn named_type(ty: &str) -> &str {
    match MetaTypeName::create(ty) {
        MetaTypeName::List(inner) | MetaTypeName::NonNull(inner) => named_type(inner),
        MetaTypeName::Named(name) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig::default()
    }

    /// Runs `f` with the schema's registry (async-graphql lends it to extensions only).
    fn with_registry<R: Send + 'static>(f: impl FnOnce(&Registry) -> R + Send + 'static) -> R {
        type Probe = Arc<std::sync::Mutex<Option<Box<dyn FnOnce(&Registry) + Send>>>>;
        struct ProbeFactory(Probe);
        struct ProbeExtension(Probe);
        impl ExtensionFactory for ProbeFactory {
            fn create(&self) -> Arc<dyn Extension> {
                Arc::new(ProbeExtension(Arc::clone(&self.0)))
            }
        }
        #[async_trait::async_trait]
        impl Extension for ProbeExtension {
            async fn prepare_request(
                &self,
                ctx: &ExtensionContext<'_>,
                request: Request,
                next: NextPrepareRequest<'_>,
            ) -> ServerResult<Request> {
                let probe = self.0.lock().expect("probe lock").take();
                if let Some(probe) = probe {
                    probe(&ctx.schema_env.registry);
                }
                next.run(ctx, request).await
            }
        }
        let out = Arc::new(std::sync::Mutex::new(None));
        let sink = Arc::clone(&out);
        let probe: Probe = Arc::new(std::sync::Mutex::new(Some(Box::new(
            move |r: &Registry| {
                *sink.lock().expect("sink lock") = Some(f(r));
            },
        ))));
        let schema = async_graphql::Schema::build(
            crate::schema::Guarded(crate::schema::QueryRoot),
            crate::schema::Guarded(crate::schema::MutationRoot),
            async_graphql::EmptySubscription,
        )
        .enable_federation()
        .extension(ProbeFactory(probe))
        .finish();
        let _ = futures::executor::block_on(schema.execute("{ __typename }"));
        let result = out.lock().expect("sink lock").take();
        result.expect("the probe ran")
    }

    fn fan_out(levels: usize) -> String {
        let mut q = format!("query {{ ...F{levels} }} fragment F0 on Query {{ __typename }}");
        for i in 1..=levels {
            q.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        q
    }

    fn figures_of(query: &str) -> Figures {
        let query = query.to_string();
        with_registry(move |registry| {
            let doc = async_graphql::parser::parse_query(&query).expect("parses");
            let limits = limits();
            let variables = Variables::default();
            let m = Measure::new(registry, &doc, &limits, &variables).expect("measures");
            m.operation(None).expect("one operation")
        })
    }

    fn checked(query: &str, variables: serde_json::Value) -> ServerResult<ExecutableDocument> {
        let request = Request::new(query).variables(Variables::from_json(variables));
        with_registry(move |registry| check_request(&limits(), registry, &request))
    }

    fn refusal_of(query: &str, variables: serde_json::Value) -> ServerError {
        checked(query, variables).expect_err("refused")
    }

    fn ext<'e>(err: &'e ServerError, key: &str) -> &'e ConstValue {
        err.extensions
            .as_ref()
            .and_then(|e| e.get(key))
            .expect("extension present")
    }

    #[test]
    fn fragment_fan_out_is_counted_expanded_in_linear_time() {
        let f = figures_of(&fan_out(10));
        assert_eq!(f.root_fields, 1024);
        // 1024 fields, 2046 spreads below the top one, and the top spread.
        assert_eq!(f.fields, 1024 + 2046 + 1);

        // That this returns at all shows the pass is linear: 2^39 expansions would take hours.
        let f = figures_of(&fan_out(39));
        assert_eq!(f.root_fields, 1 << 39);
        assert!(f.fields > 1 << 40, "{f:?}");

        let f = figures_of(&fan_out(70));
        assert_eq!(f.fields, u64::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn an_expanded_fan_out_is_refused_with_its_figure() {
        let err = refusal_of(&fan_out(20), serde_json::json!({}));
        assert_eq!(
            ext(&err, "code"),
            &ConstValue::from("OPERATION_TOO_COMPLEX")
        );
        assert_eq!(ext(&err, "limit"), &ConstValue::from("fields"));
        assert_eq!(ext(&err, "maximum"), &ConstValue::from(1000u64));
        assert!(
            err.message.contains("once its fragments are expanded"),
            "{}",
            err.message
        );
    }

    #[test]
    fn depth_and_aliases_count_through_fragments() {
        let f = figures_of(
            "{ a: cases { nodes { ...V } } } fragment V on Case { victims { b: nationality c: harm } }",
        );
        assert_eq!(f.aliases, 3);
        assert_eq!(f.depth, 4);
        assert_eq!(f.root_fields, 1);
    }

    #[test]
    fn a_fragment_cycle_is_refused_without_recursing() {
        let err = refusal_of(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            serde_json::json!({}),
        );
        assert_eq!(
            ext(&err, "code"),
            &ConstValue::from("GRAPHQL_VALIDATION_FAILED")
        );
        assert!(err.message.contains("spreads itself"), "{}", err.message);
    }

    #[test]
    fn a_long_fragment_chain_is_ordered_without_exhausting_the_stack() {
        let mut q = String::from("{ ...F5000 } fragment F0 on Query { __typename }");
        for i in 1..=5000 {
            q.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i - 1));
        }
        let f = figures_of(&q);
        assert_eq!(f.root_fields, 1);
        assert_eq!(f.fields, 5002);
    }

    fn cost_of(query: &str, variables: serde_json::Value) -> u64 {
        let query = query.to_string();
        with_registry(move |registry| {
            let doc = async_graphql::parser::parse_query(&query).expect("parses");
            let limits = limits();
            let variables = Variables::from_json(variables);
            let m = Measure::new(registry, &doc, &limits, &variables).expect("measures");
            m.cost(None).expect("an operation")
        })
    }

    #[test]
    fn cost_multiplies_by_first_from_literals_variables_and_defaults() {
        let q = "{ cases(first: 100) { totalCount nodes { id reference } } }";
        // cases: 1 + 100 × (totalCount 1 + nodes (1 + 2)), the page counted once.
        assert_eq!(cost_of(q, serde_json::json!({})), 1 + 100 * (1 + 3));
        let q = "query($n: Int = 10) { cases(first: $n) { nodes { id } } }";
        assert_eq!(cost_of(q, serde_json::json!({})), 1 + 10 * 2);
        assert_eq!(cost_of(q, serde_json::json!({"n": 3})), 1 + 3 * 2);
        // Above the largest page, the figure is the largest page: the resolver refuses more.
        assert_eq!(cost_of(q, serde_json::json!({"n": 1_000_000})), 1 + 500 * 2);
        let q = "{ cases { nodes { id } } }";
        assert_eq!(cost_of(q, serde_json::json!({})), 1 + DEFAULT_FIRST * 2);
    }

    #[test]
    fn cost_assumes_a_size_for_lists_without_first_and_memoises_fragments() {
        // victims is a list without `first`: 3 assumed.
        let q = "{ cases(first: 10) { nodes { victims { harm nationality } } } }";
        assert_eq!(
            cost_of(q, serde_json::json!({})),
            1 + 10 * (1 + (1 + 3 * 2))
        );
        let q = "{ cases(first: 10) { ...C } } fragment C on CaseConnection { nodes { ...V } } fragment V on Case { victims { harm nationality } }";
        assert_eq!(
            cost_of(q, serde_json::json!({})),
            1 + 10 * (1 + (1 + 3 * 2))
        );
    }

    #[test]
    fn unknown_and_repeated_directives_are_refused() {
        for (query, says) in [
            ("{ __typename @nosuch(x: 1) }", "unknown directive @nosuch"),
            (
                "{ __typename @skip(if: false) @skip(if: false) }",
                "used twice",
            ),
            (
                "query @skip(if: true) { __typename }",
                "may not be used on a query",
            ),
        ] {
            let err = refusal_of(query, serde_json::json!({}));
            assert_eq!(
                ext(&err, "code"),
                &ConstValue::from("GRAPHQL_VALIDATION_FAILED")
            );
            assert!(err.message.contains(says), "{query}: {}", err.message);
        }
        checked("{ __typename @include(if: true) }", serde_json::json!({}))
            .expect("a declared directive passes");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_with_a_short_message() {
        let q = format!("{}{}", "{ a ".repeat(60_000), "}".repeat(60_000));
        let err = refusal_of(&q, serde_json::json!({}));
        assert_eq!(
            ext(&err, "code"),
            &ConstValue::from("OPERATION_TOO_COMPLEX")
        );
        assert!(err.message.len() < 200, "{}", err.message);
        // Brackets inside strings and comments do not count.
        assert_eq!(nesting_over("{ a(s: \"{{{{{{\") # {{{{{{\n }", 2), None);
        assert_eq!(
            nesting_over("{ a(s: \"\"\"{{{{\\\"\"\"{{{\"\"\") }", 2),
            None
        );
        assert_eq!(nesting_over("{{{", 2), Some(3));
    }

    #[test]
    fn a_document_of_too_many_tokens_is_refused_before_parsing() {
        let inline = format!(
            "{{ cases(filter: {{hostStates: [{}]}}) {{ totalCount }} }}",
            vec!["\"MLI\""; 30_000].join(",")
        );
        let err = refusal_of(&inline, serde_json::json!({}));
        assert_eq!(
            ext(&err, "code"),
            &ConstValue::from("OPERATION_TOO_COMPLEX")
        );
        assert_eq!(ext(&err, "limit"), &ConstValue::from("tokens"));
        // Commas, white space and comments are not tokens; names, values and punctuators are.
        assert_eq!(scan("{ a, b # c d e\n }", 80, 4), Scan::Fits);
        assert_eq!(scan("{ a, b c }", 80, 4), Scan::TooLong(5));
        assert_eq!(scan(r#"{ a(s: "x y z") }"#, 80, 8), Scan::Fits);
    }

    #[test]
    fn a_syntax_error_does_not_echo_the_document() {
        // One line of 100,000 characters: the parser's own message would quote all of it.
        let q = format!("{{ {} !", "x".repeat(100_000));
        let err = refusal_of(&q, serde_json::json!({}));
        assert_eq!(
            ext(&err, "code"),
            &ConstValue::from("GRAPHQL_VALIDATION_FAILED")
        );
        assert!(err.message.len() < 400, "{}", err.message.len());
    }

    #[test]
    fn long_lists_and_strings_are_refused_in_variables_and_in_the_document() {
        let many: Vec<&str> = vec!["MLI"; 501];
        let q = "query($h: [String!]) { cases(filter: {hostStates: $h}) { totalCount } }";
        let err = refusal_of(q, serde_json::json!({ "h": many }));
        assert_eq!(ext(&err, "code"), &ConstValue::from("INPUT_TOO_LARGE"));
        assert!(err.message.contains("501 items"), "{}", err.message);

        let inline = format!(
            "{{ cases(filter: {{hostStates: [{}]}}) {{ totalCount }} }}",
            vec!["\"MLI\""; 501].join(",")
        );
        let err = refusal_of(&inline, serde_json::json!({}));
        assert_eq!(ext(&err, "code"), &ConstValue::from("INPUT_TOO_LARGE"));

        let long = "é".repeat(20_001);
        let err = refusal_of(
            "query($r: String) { case(reference: $r) { id } }",
            serde_json::json!({ "r": long }),
        );
        assert!(err.message.contains("20001 characters"), "{}", err.message);

        let big = "x".repeat(70_000);
        let err = refusal_of("{ __typename }", serde_json::json!({ "a": big }));
        assert!(err.message.contains("bytes of JSON"), "{}", err.message);
    }
}

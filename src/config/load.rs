//! The generic loading pipeline shared by every TOML file CaseGraph reads: the gateway
//! configuration and, later, host-state connector files.
//!
//! parse (keeping spans) → walk into JSON, expanding `${env.NAME}` → deserialize, collecting every
//! unknown key and the path of a type error → [`Validate`] → either the typed value or *all* the
//! errors found, each with file, line, column and key.
//!
//! Expanded environment values may be secrets: they are never written into an error message.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value as Json};
use toml_edit::{ImDocument, InlineTable, Item, Table, Value as TomlValue};

/// Semantic checks run after a file deserialized: pure, no I/O, and never stopping at the first
/// problem — every rule reports into `errors` and the loader shows them all at once.
pub trait Validate {
    /// Report every rule this value breaks into `errors`, keyed by dotted path
    /// (`"auth.jwt.jwks_url"`, `"connectors[2].url"`).
    fn validate(&self, errors: &mut Validation);
}

/// The semantic errors collected by [`Validate::validate`]: `(key path, message)` pairs.
///
/// The loader maps each key path to its line in the file; a key absent from the file points at
/// its table's header, or line 1.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Validation {
    prefix: String,
    errors: Vec<(String, String)>,
}

impl Validation {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that the value at `key` (relative to the current scope) breaks a rule. `message`
    /// should say what is expected without repeating the value, which may be a secret.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push((join(&self.prefix, key), message.into()));
    }

    /// Run `f` with keys relative to `prefix`, so a nested struct's `validate` can be reused
    /// wherever it is mounted: `v.scoped("auth.jwt", |v| jwt.validate(v))`.
    pub fn scoped(&mut self, prefix: &str, f: impl FnOnce(&mut Validation)) {
        let inner = join(&self.prefix, prefix);
        let outer = std::mem::replace(&mut self.prefix, inner);
        f(self);
        self.prefix = outer;
    }

    /// True when no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The `(key path, message)` pairs recorded so far.
    pub fn errors(&self) -> &[(String, String)] {
        &self.errors
    }
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if key.starts_with('[') => format!("{prefix}{key}"),
        (false, false) => format!("{prefix}.{key}"),
    }
}

/// One problem in a configuration file, located as precisely as the loader could.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Rendered(self))]
pub struct ConfigError {
    /// The file name as given to the loader (`config/casegraph.toml`).
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file (it could not be read).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted key path (`store.url`, `connectors[0].kind`); empty when no key is concerned.
    pub key: String,
    /// What is wrong. Never contains a value expanded from the environment.
    pub message: String,
    /// The offending source line, shown under the message with a caret.
    pub source_line: Option<String>,
    /// How many characters the caret underlines (at least 1).
    pub width: usize,
}

impl ConfigError {
    /// An error about the file as a whole (it could not be read), without a location.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
            source_line: None,
            width: 1,
        }
    }
}

struct Rendered<'a>(&'a ConfigError);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file)?;
        if e.line > 0 {
            write!(f, ":{}:{}", e.line, e.column)?;
        }
        write!(f, ": ")?;
        if !e.key.is_empty() {
            write!(f, "{}: ", e.key)?;
        }
        write!(f, "{}", e.message)?;
        if let (Some(src), true) = (&e.source_line, e.line > 0) {
            let number = e.line.to_string();
            let pad = " ".repeat(number.len());
            // Tabs are kept so the caret lines up with what a terminal shows.
            let lead: String = src
                .chars()
                .take(e.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{pad} |\n{number} | {src}\n{pad} | {lead}{}",
                "^".repeat(e.width.max(1))
            )?;
        }
        Ok(())
    }
}

/// Every problem found in one file. The loader never stops at the first one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", RenderedAll(self))]
pub struct ConfigErrors {
    /// The file name as given to the loader.
    pub file: String,
    /// The errors, in file order; never empty.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// One error for the whole file.
    pub fn single(error: ConfigError) -> Self {
        Self {
            file: error.file.clone(),
            errors: vec![error],
        }
    }
}

impl ConfigErrors {
    /// The errors, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// How many errors were found.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false for an error returned by the loader; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

struct RenderedAll<'a>(&'a ConfigErrors);

impl fmt::Display for RenderedAll<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0.errors {
            writeln!(f, "{e}\n")?;
        }
        let n = self.0.errors.len();
        write!(
            f,
            "{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            self.0.file
        )
    }
}

/// Load any TOML file into `T`: parse, expand `${env.NAME}` in string values (`$${` is a literal
/// `${`), deserialize (every unknown key is an error) and validate. Returns all errors at once.
///
/// `label` is the file name used in messages.
pub fn load_toml<T: DeserializeOwned + Validate>(
    text: &str,
    label: &str,
) -> Result<T, ConfigErrors> {
    load_toml_with_env(text, label, &|name| std::env::var(name).ok())
}

/// [`load_toml`] with one more rule set that needs context the value does not carry (the
/// access policy is checked against the GraphQL schema): its errors are located in the file
/// like any other.
pub fn load_toml_checked<T: DeserializeOwned + Validate>(
    text: &str,
    label: &str,
    check: &dyn Fn(&T, &mut Validation),
) -> Result<T, ConfigErrors> {
    load_toml_inner(text, label, &|name| std::env::var(name).ok(), check)
}

/// [`load_toml`] with an explicit environment, so tests do not touch the process environment.
pub(crate) fn load_toml_with_env<T: DeserializeOwned + Validate>(
    text: &str,
    label: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigErrors> {
    load_toml_inner(text, label, env, &|_, _| {})
}

fn load_toml_inner<T: DeserializeOwned + Validate>(
    text: &str,
    label: &str,
    env: &dyn Fn(&str) -> Option<String>,
    check: &dyn Fn(&T, &mut Validation),
) -> Result<T, ConfigErrors> {
    let source = Source::new(text, label);

    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim().replace('\n', "; ");
            return Err(ConfigErrors {
                file: label.to_owned(),
                errors: vec![source.error(span, String::new(), format!("syntax error: {message}"))],
            });
        }
    };

    let mut walker = Walker {
        text,
        env,
        spans: HashMap::new(),
        problems: Vec::new(),
        secrets: Vec::new(),
    };
    let json = Json::Object(walker.table(doc.as_table(), ""));
    let Walker {
        spans,
        mut problems,
        secrets,
        ..
    } = walker;

    // serde stops at the first type error. To still report every unknown key and every other
    // type error, the offending value is removed and deserialization retried; validation then
    // runs on what is left, skipping rules about removed values.
    let mut json = json;
    let mut unknown: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut value = None;
    for _ in 0..MAX_TYPE_ERRORS {
        let mut track = serde_path_to_error::Track::new();
        let result: Result<T, serde_json::Error> = {
            let de = serde_path_to_error::Deserializer::new(&json, &mut track);
            serde_ignored::deserialize(de, |path| {
                let key = ignored_path(&path);
                if !unknown.contains(&key) {
                    unknown.push(key);
                }
            })
        };
        match result {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(err) => {
                let path = track.path();
                let key = tracked_path(&path);
                let message = err.to_string();
                // A table missing a field the loader removed itself is not news; drop the table
                // too and go on.
                if !is_consequence_of_removal(&message, &key, &removed) {
                    problems.push(Problem {
                        span: spans.value_span(&key),
                        key: key.clone(),
                        message,
                    });
                }
                if !remove_at(&mut json, &path) {
                    break;
                }
                removed.push(key);
            }
        }
    }
    for key in unknown {
        let leaf = key
            .rsplit(['.', '['])
            .next()
            .unwrap_or(&key)
            .trim_end_matches(']');
        problems.push(Problem {
            span: spans.key_span(&key),
            message: format!("unknown key `{leaf}`"),
            key,
        });
    }

    if let Some(value) = &value {
        let mut validation = Validation::new();
        value.validate(&mut validation);
        check(value, &mut validation);
        for (key, message) in validation.errors {
            // A rule about a removed value (or the table that held it) would only judge the
            // default that replaced it.
            if removed.iter().any(|r| within(&key, r) || within(r, &key)) {
                continue;
            }
            problems.push(Problem {
                span: spans.value_span(&key),
                key,
                message,
            });
        }
    }

    match value {
        Some(value) if problems.is_empty() => Ok(value),
        _ => Err(source.finish(problems, &secrets)),
    }
}

/// Whether `path` is `ancestor` or lies inside it (`auth.jwt.issuer` within `auth.jwt`; every
/// path within the root, "").
fn within(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Most type errors reported for one file (each costs a deserialization pass).
const MAX_TYPE_ERRORS: usize = 50;

/// "missing field `x`" right after the loader itself removed `x` for a type error.
fn is_consequence_of_removal(message: &str, key: &str, removed: &[String]) -> bool {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .is_some_and(|field| removed.contains(&join(key, field)))
}

/// Remove the map entry at `path` so deserialization can go on past it (the field then takes
/// its default). Array elements and enum paths are not removed: that would shift or change
/// meaning, so the loader stops looking for more type errors there.
fn remove_at(json: &mut Json, path: &serde_path_to_error::Path) -> bool {
    let segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = json;
    for segment in parents {
        node = match (segment, node) {
            (serde_path_to_error::Segment::Map { key }, Json::Object(map)) => {
                match map.get_mut(key) {
                    Some(child) => child,
                    None => return false,
                }
            }
            (serde_path_to_error::Segment::Seq { index }, Json::Array(items)) => {
                match items.get_mut(*index) {
                    Some(child) => child,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match (last, node) {
        (serde_path_to_error::Segment::Map { key }, Json::Object(map)) => map.remove(key).is_some(),
        _ => false,
    }
}

/// A problem before it is located: byte span into the file, key path, message.
struct Problem {
    span: Option<Range<usize>>,
    key: String,
    message: String,
}

/// The text of the file, to turn byte spans into line, column and source line.
struct Source<'a> {
    text: &'a str,
    label: &'a str,
}

impl<'a> Source<'a> {
    fn new(text: &'a str, label: &'a str) -> Self {
        Self { text, label }
    }

    fn error(&self, span: Range<usize>, key: String, message: String) -> ConfigError {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_start + line_text.len());
        let width = self.text[start..end].chars().count().max(1);
        ConfigError {
            file: self.label.to_owned(),
            line,
            column,
            key,
            message,
            source_line: Some(line_text.to_owned()),
            width,
        }
    }

    /// Locate every problem, scrub expanded values from the messages, sort by position and drop
    /// follow-on errors for a key whose placeholder could not be expanded.
    fn finish(&self, problems: Vec<Problem>, secrets: &[String]) -> ConfigErrors {
        let mut located: Vec<(usize, ConfigError)> = Vec::new();
        let mut expansion_failed: Vec<String> = Vec::new();
        for p in problems {
            if expansion_failed.contains(&p.key) {
                continue;
            }
            if p.message.starts_with(EXPANSION_MARK) {
                expansion_failed.push(p.key.clone());
            }
            let mut message = p.message.trim_start_matches(EXPANSION_MARK).to_owned();
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                message = message.replace(secret.as_str(), "***");
            }
            let span = p.span.unwrap_or(0..1);
            located.push((span.start, self.error(span, p.key, message)));
        }
        located.sort_by_key(|(start, _)| *start);
        ConfigErrors {
            file: self.label.to_owned(),
            errors: located.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

/// Prefix marking expansion errors internally (stripped before display).
const EXPANSION_MARK: &str = "\u{0}expand:";

/// Where each key path sits in the file: the key itself and its value.
#[derive(Default)]
struct Spans {
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

trait SpanMap {
    fn key_span(&self, path: &str) -> Option<Range<usize>>;
    fn value_span(&self, path: &str) -> Option<Range<usize>>;
}

impl SpanMap for HashMap<String, Spans> {
    /// The key's own span (for "unknown key"), else its value's, else its nearest ancestor's.
    fn key_span(&self, path: &str) -> Option<Range<usize>> {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(s) = self.get(cur) {
                if let Some(span) = s.key.clone().or_else(|| s.value.clone()) {
                    return Some(span);
                }
            }
            p = parent(cur);
        }
        None
    }

    /// The value's span (a table's header), else its key's, else its nearest ancestor's.
    fn value_span(&self, path: &str) -> Option<Range<usize>> {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(s) = self.get(cur) {
                if let Some(span) = s.value.clone().or_else(|| s.key.clone()) {
                    return Some(span);
                }
            }
            p = parent(cur);
        }
        None
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(path.rfind(['.', '[']).map_or("", |i| &path[..i]))
}

/// Walks the parsed document into JSON, recording spans and expanding placeholders.
struct Walker<'e> {
    text: &'e str,
    env: &'e dyn Fn(&str) -> Option<String>,
    spans: HashMap<String, Spans>,
    problems: Vec<Problem>,
    secrets: Vec<String>,
}

impl Walker<'_> {
    fn table(&mut self, table: &Table, path: &str) -> Map<String, Json> {
        let mut out = Map::new();
        for (name, item) in table.iter() {
            let p = join(path, name);
            let key = table.key(name).and_then(|k| k.span());
            self.record(&p, key, item.span());
            if let Some(v) = self.item(item, &p) {
                out.insert(name.to_owned(), v);
            }
        }
        out
    }

    fn inline_table(&mut self, table: &InlineTable, path: &str) -> Map<String, Json> {
        let mut out = Map::new();
        for (name, value) in table.iter() {
            let p = join(path, name);
            let key = table.key(name).and_then(|k| k.span());
            self.record(&p, key, value.span());
            out.insert(name.to_owned(), self.value(value, &p));
        }
        out
    }

    fn item(&mut self, item: &Item, path: &str) -> Option<Json> {
        match item {
            Item::None => None,
            Item::Value(v) => Some(self.value(v, path)),
            Item::Table(t) => Some(Json::Object(self.table(t, path))),
            Item::ArrayOfTables(tables) => Some(Json::Array(
                tables
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let p = format!("{path}[{i}]");
                        self.record(&p, None, t.span());
                        Json::Object(self.table(t, &p))
                    })
                    .collect(),
            )),
        }
    }

    fn value(&mut self, value: &TomlValue, path: &str) -> Json {
        match value {
            TomlValue::String(s) => Json::String(self.expand(s.value(), path, value.span())),
            TomlValue::Integer(i) => Json::from(*i.value()),
            TomlValue::Float(f) => match Number::from_f64(*f.value()) {
                Some(n) => Json::Number(n),
                None => {
                    self.problems.push(Problem {
                        span: value.span(),
                        key: path.to_owned(),
                        message: "nan and inf are not accepted here".into(),
                    });
                    Json::Null
                }
            },
            TomlValue::Boolean(b) => Json::Bool(*b.value()),
            TomlValue::Datetime(d) => Json::String(d.value().to_string()),
            TomlValue::Array(a) => Json::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let p = format!("{path}[{i}]");
                        self.record(&p, None, v.span());
                        self.value(v, &p)
                    })
                    .collect(),
            ),
            TomlValue::InlineTable(t) => Json::Object(self.inline_table(t, path)),
        }
    }

    fn record(&mut self, path: &str, key: Option<Range<usize>>, value: Option<Range<usize>>) {
        let entry = self.spans.entry(path.to_owned()).or_default();
        entry.key = entry.key.clone().or(key);
        entry.value = entry.value.clone().or(value);
    }

    /// Expand every `${env.NAME}` in `raw`; `$${` is a literal `${`. On failure the placeholder is
    /// left as written and an error is recorded, so loading goes on to find other problems.
    fn expand(&mut self, raw: &str, path: &str, span: Option<Range<usize>>) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let here = &rest[pos..];
            if let Some(after) = here.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if here.starts_with("${") {
                let Some(end) = here.find('}') else {
                    self.expansion_error(
                        path,
                        span.clone(),
                        None,
                        "unterminated `${`: write `${env.NAME}`, or `$${` for a literal `${`"
                            .into(),
                    );
                    out.push_str(here);
                    rest = "";
                    break;
                };
                let placeholder = &here[..=end];
                let inner = &here[2..end];
                match inner.strip_prefix("env.") {
                    Some(name) if is_env_name(name) => match (self.env)(name) {
                        Some(value) => {
                            out.push_str(&value);
                            self.secrets.push(value);
                        }
                        None => {
                            self.expansion_error(
                                path,
                                span.clone(),
                                Some(placeholder),
                                format!("environment variable `{name}` is not set"),
                            );
                            out.push_str(placeholder);
                        }
                    },
                    _ => {
                        self.expansion_error(
                            path,
                            span.clone(),
                            Some(placeholder),
                            format!(
                                "unsupported placeholder `{placeholder}`: write `${{env.NAME}}` \
                                 (NAME of letters, digits and `_`), or `$${{` for a literal `${{`"
                            ),
                        );
                        out.push_str(placeholder);
                    }
                }
                rest = &here[end + 1..];
            } else {
                out.push('$');
                rest = &here[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// Record an expansion error, pointing at the placeholder itself when it can be found in the
    /// source (it may not, if the string used escapes).
    fn expansion_error(
        &mut self,
        path: &str,
        span: Option<Range<usize>>,
        placeholder: Option<&str>,
        message: String,
    ) {
        // Narrow the span to the placeholder itself when it appears verbatim in the source.
        let span = span.map(|span| {
            placeholder
                .and_then(|ph| {
                    let raw = self.text.get(span.clone())?;
                    let at = raw.find(ph)?;
                    Some(span.start + at..span.start + at + ph.len())
                })
                .unwrap_or(span)
        });
        self.problems.push(Problem {
            span,
            key: path.to_owned(),
            message: format!("{EXPANSION_MARK}{message}"),
        });
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `serde_ignored`'s path as the loader's dotted key path (`server.foo`, `a[0].b`).
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        serde_ignored::Path::Map { parent, key } => join(&ignored_path(parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// `serde_path_to_error`'s path as the loader's dotted key path.
fn tracked_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => out = join(&out, key),
            serde_path_to_error::Segment::Enum { variant } => out = join(&out, variant),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{load_toml_with_env, ConfigError, ConfigErrors};
    use crate::config::{json_schema, load_default_or, Config, LogFormat, EMBEDDED_DEFAULT};

    const PRODUCTION_EXAMPLE: &str = include_str!("../../config/production.example.toml");

    /// A minimal valid file, to which tests add their mistakes.
    const DEV: &str = "[auth.dev_issuer]\nenabled = true\n";

    fn load_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load_toml_with_env(text, "test.toml", &|name| env.get(name).cloned())
    }

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        load_with(text, &[])
    }

    fn errors(text: &str) -> ConfigErrors {
        match load(text) {
            Ok(config) => panic!("expected errors, got {config:?}"),
            Err(errors) => errors,
        }
    }

    fn find<'a>(errors: &'a ConfigErrors, key: &str) -> &'a ConfigError {
        errors
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no error for `{key}` in:\n{errors}"))
    }

    #[test]
    fn the_embedded_default_loads_as_the_demo_configuration() {
        let config = load(EMBEDDED_DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.server.listen, "127.0.0.1:4000");
        assert!(config.server.graphiql && config.server.introspection);
        assert_eq!(config.store.url, "sqlite://data/casegraph.db");
        assert!(config.store.import_bundled_data_when_empty);
        assert_eq!(config.auth.audience, "casegraph");
        assert!(config.auth.jwt.is_none());
        assert!(config.auth.dev_issuer.enabled);
        assert_eq!(config.auth.dev_issuer.key_file, "data/dev-issuer-key.pem");
        assert_eq!(config.log.format, LogFormat::Text);
    }

    /// A cursor secret, which a PostgreSQL store requires.
    const SECRET: &str = "[access]\ncursor_secret = \"a-cursor-secret-of-forty-bytes-or-so-123\"\n";

    #[test]
    fn the_production_example_loads_with_its_database_url_from_the_environment() {
        let url = "postgres://casegraph:pw@db.internal:5432/casegraph";
        let config = load_with(
            PRODUCTION_EXAMPLE,
            &[
                ("CASEGRAPH_DATABASE_URL", url),
                (
                    "CASEGRAPH_CURSOR_SECRET",
                    "a-cursor-secret-of-forty-bytes-or-so-123",
                ),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.store.url, url);
        assert_eq!(config.server.listen, "0.0.0.0:4000");
        assert!(!config.server.graphiql && !config.server.introspection);
        assert!(!config.auth.dev_issuer.enabled);
        let jwt = config.auth.jwt.expect("the example configures [auth.jwt]");
        assert!(jwt.jwks_url.starts_with("https://"));
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn the_production_example_refuses_to_start_without_its_database_url() {
        let errors = load(PRODUCTION_EXAMPLE).expect_err("CASEGRAPH_DATABASE_URL is unset");
        assert!(
            errors
                .iter()
                .all(|e| e.message.starts_with("environment variable `")),
            "only the unset variables are reported: {errors}"
        );
        assert!(errors
            .iter()
            .any(|e| e.message.contains("CASEGRAPH_DATABASE_URL") && e.key == "store.url"));
    }

    #[test]
    fn three_unknown_keys_in_different_tables_are_all_reported_on_their_lines() {
        let text = "\
[server]
listen = \"127.0.0.1:4000\"
lissen = \"x\"

[store]
url = \"sqlite://x.db\"
pool = 3

[auth.dev_issuer]
enabled = true
keyfile = \"k.pem\"
";
        let errors = errors(text);
        assert_eq!(errors.len(), 3, "{errors}");
        let lines: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (3, "unknown key `lissen`"),
                (7, "unknown key `pool`"),
                (11, "unknown key `keyfile`")
            ]
        );
        assert_eq!(errors.errors[2].key, "auth.dev_issuer.keyfile");
        assert_eq!(errors.errors[2].column, 1);
    }

    #[test]
    fn an_unknown_table_is_reported_at_its_header() {
        let errors = errors(&format!("{DEV}\n[stor]\nurl = \"sqlite://x\"\n"));
        let e = find(&errors, "stor");
        assert_eq!(e.line, 4);
        assert_eq!(e.message, "unknown key `stor`");
    }

    #[test]
    fn a_type_error_names_its_key_path_and_line() {
        let errors = errors(&format!("{DEV}[store]\nmax_connections = \"many\"\n"));
        assert_eq!(errors.len(), 1, "{errors}");
        let e = &errors.errors[0];
        assert_eq!(e.key, "store.max_connections");
        assert_eq!((e.line, e.column), (4, 19));
        assert!(e.message.contains("invalid type: string"), "{}", e.message);
        assert!(e.message.contains("expected u32"), "{}", e.message);
    }

    #[test]
    fn a_missing_required_key_points_at_its_table_header() {
        let text = "[auth]\naudience = \"casegraph\"\n\n[auth.jwt]\nissuer = \"https://idp\"\n";
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{errors}");
        let e = &errors.errors[0];
        assert_eq!((e.key.as_str(), e.line), ("auth.jwt", 4));
        assert!(
            e.message.contains("missing field `jwks_url`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_unset_environment_variable_is_named_with_its_file_line_and_key() {
        let text = format!(
            "{DEV}\n[store]\nurl = \"postgres://u:${{env.CG_TEST_DB_PASSWORD}}@db/x\"\n{SECRET}"
        );
        let errors = errors(&text);
        assert_eq!(
            errors.len(),
            1,
            "follow-on errors for the same key are dropped: {errors}"
        );
        let e = &errors.errors[0];
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_str()),
            ("test.toml", 5, "store.url")
        );
        assert_eq!(
            e.message,
            "environment variable `CG_TEST_DB_PASSWORD` is not set"
        );
        assert_eq!(e.column, 21, "the caret points at the placeholder");
        assert_eq!(e.width, "${env.CG_TEST_DB_PASSWORD}".len());
    }

    #[test]
    fn a_placeholder_other_than_env_is_refused() {
        let errors = errors(&format!("{DEV}[log]\nfilter = \"${{file.x}}\"\n"));
        let e = find(&errors, "log.filter");
        assert!(
            e.message.contains("unsupported placeholder `${file.x}`"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 4);
    }

    #[test]
    fn a_syntax_error_reports_its_line_and_column() {
        let errors = errors("[server]\nlisten = \"127.0.0.1:4000\"\ngraphiql = tru\n");
        assert_eq!(errors.len(), 1);
        let e = &errors.errors[0];
        assert_eq!(e.line, 3, "{errors}");
        assert!(e.column >= 1);
        assert!(e.message.starts_with("syntax error"), "{}", e.message);
    }

    #[test]
    fn double_dollar_brace_is_a_literal_and_several_placeholders_expand_in_one_string() {
        let text = format!(
            "{DEV}[store]\nurl = \"postgres://${{env.CG_U}}:${{env.CG_P}}@db/$${{not.env}}$x\"\n{SECRET}"
        );
        let config = load_with(&text, &[("CG_U", "alice"), ("CG_P", "pw")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.store.url, "postgres://alice:pw@db/${not.env}$x");
    }

    #[test]
    fn validation_collects_every_broken_rule_at_once() {
        let text = "\
[server]
listen = \"localhost\"
body_limit_bytes = 10

[store]
url = \"mysql://db/x\"
max_connections = 0

[auth]
audience = \"\"

[auth.jwt]
issuer = \"https://idp.example.org\"
jwks_url = \"http://idp.example.org/keys\"
algorithms = [\"RS256\", \"HS256\"]
jwks_refresh_secs = 0

[auth.dev_issuer]
token_ttl_minutes = 20000

[limits]
max_depth = 0

[log]
filter = \" \"
";
        let errors = errors(text);
        let expected = [
            ("server.listen", 2),
            ("server.body_limit_bytes", 3),
            ("store.url", 6),
            ("store.max_connections", 7),
            ("auth.audience", 10),
            ("auth.jwt.jwks_url", 14),
            ("auth.jwt.algorithms[1]", 15),
            ("auth.jwt.jwks_refresh_secs", 16),
            ("auth.dev_issuer.token_ttl_minutes", 19),
            ("limits.max_depth", 22),
            ("log.filter", 25),
        ];
        for (key, line) in expected {
            assert_eq!(find(&errors, key).line, line, "{key}");
        }
        assert_eq!(errors.len(), expected.len(), "{errors}");
        assert!(errors.to_string().ends_with("11 errors in test.toml"));
    }

    #[test]
    fn a_gateway_without_any_way_to_authenticate_is_refused() {
        let errors = errors("[auth]\naudience = \"casegraph\"\n");
        let e = find(&errors, "auth");
        assert_eq!(e.line, 1);
        assert!(e.message.starts_with("no way to authenticate callers"));
    }

    #[test]
    fn unknown_keys_and_validation_errors_are_reported_together() {
        let errors = errors("[server]\nlisten = \"nope\"\ncolour = true\n");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["auth", "server.listen", "server.colour"]);
    }

    #[test]
    fn an_environment_value_never_appears_in_error_output() {
        let secret = "s3cr3t-Pa55w0rd-xyz";
        let env = [("CG_SECRET", secret)];
        let cases = [
            // A type error: serde would quote the string it got.
            format!("{DEV}[store]\nmax_connections = \"${{env.CG_SECRET}}\"\n"),
            // An unknown enum variant: serde would quote it too.
            format!("{DEV}[log]\nformat = \"${{env.CG_SECRET}}\"\n"),
            // Validation errors on expanded values.
            format!("{DEV}[server]\nlisten = \"${{env.CG_SECRET}}\"\n[store]\nurl = \"x${{env.CG_SECRET}}\"\n"),
        ];
        for text in cases {
            let errors = load_with(&text, &env).expect_err("each case is invalid");
            let shown = format!("{errors}\n{errors:?}");
            assert!(!shown.contains(secret), "secret leaked:\n{shown}");
            assert!(
                shown.contains("${env.CG_SECRET}"),
                "the source line is shown:\n{shown}"
            );
        }
    }

    #[test]
    fn an_error_displays_file_line_key_source_and_caret() {
        let errors = errors(&format!("{DEV}[store]\nurl = \"mysql://db\"\n"));
        let shown = errors.to_string();
        let expected = "test.toml:4:7: store.url: must start with `sqlite:`, `postgres://` or \
                        `postgresql://`\n  |\n4 | url = \"mysql://db\"\n  |       ^^^^^^^^^^^^\n\n\
                        1 error in test.toml";
        assert_eq!(shown, expected);
    }

    #[test]
    fn an_unreadable_file_is_one_error_naming_the_file() {
        let path = std::path::Path::new("does/not/exist.toml");
        let errors = load_default_or(Some(path)).expect_err("the file does not exist");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors.errors[0].line, 0);
        assert!(errors
            .to_string()
            .starts_with("does/not/exist.toml: cannot read the file"));
    }

    #[test]
    fn json_schema_denies_unknown_keys_and_documents_store_url() {
        let schema = json_schema();
        assert_eq!(
            schema["additionalProperties"],
            serde_json::json!(false),
            "{schema:#}"
        );
        let url = &schema["$defs"]["StoreConfig"]["properties"]["url"];
        let description = url["description"].as_str().unwrap_or_default();
        assert!(description.contains("sqlite://"), "{schema:#}");
        assert_eq!(
            schema["$defs"]["StoreConfig"]["additionalProperties"],
            serde_json::json!(false)
        );
    }

    #[test]
    fn every_type_error_and_unknown_key_is_reported_not_just_the_first() {
        let text = "\
[limits]
max_depth = -1

[nope.deeper]
x = 1

[server]
listen = 1

[auth.jwt]
issuer = \"https://idp.example.org\"
jwks_url = 5
";
        let errors = errors(text);
        let found: Vec<(&str, usize)> = errors.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            found,
            [
                ("limits.max_depth", 2),
                ("nope", 4),
                ("server.listen", 8),
                ("auth.jwt.jwks_url", 12)
            ],
            "{errors}"
        );
        assert!(!errors.to_string().contains("missing field"), "{errors}");
    }
}

//! The semantic rules of the gateway configuration. Messages say what is expected and never echo
//! a value that could be a secret (a database URL holds a password).

use std::net::SocketAddr;

use super::load::{Validate, Validation};
use super::model::{
    AuthConfig, Config, JwtIssuerConfig, LimitsConfig, RateLimit, RateLimitsConfig, ServerConfig,
    SimulatorsConfig, StoreConfig,
};

/// Signature algorithms the gateway can verify.
const SUPPORTED_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];

/// Shortest accepted cursor secret, in bytes.
pub(crate) const MIN_CURSOR_SECRET: usize = 32;

/// Longest accepted dev-token lifetime: one week, in minutes.
const MAX_DEV_TOKEN_TTL_MINUTES: u64 = 7 * 24 * 60;

impl Validate for Config {
    fn validate(&self, v: &mut Validation) {
        v.scoped("server", |v| self.server.validate(v));
        v.scoped("store", |v| self.store.validate(v));
        v.scoped("auth", |v| self.auth.validate(v));
        v.scoped("limits", |v| self.limits.validate(v));
        v.scoped("rate_limits", |v| self.rate_limits.validate(v));
        v.scoped("simulators", |v| self.simulators.validate(v));
        match &self.access.cursor_secret {
            Some(secret)
                if secrecy::ExposeSecret::expose_secret(secret).len() < MIN_CURSOR_SECRET =>
            {
                v.error(
                    "access.cursor_secret",
                    format!("must be at least {MIN_CURSOR_SECRET} bytes long"),
                );
            }
            _ => {}
        }
        if self.log.filter.trim().is_empty() {
            v.error("log.filter", "must not be empty: use e.g. \"info\"");
        }
    }
}

impl Validate for ServerConfig {
    fn validate(&self, v: &mut Validation) {
        if self.listen.parse::<SocketAddr>().is_err() {
            v.error(
                "listen",
                "must be an IP address and a port, like \"127.0.0.1:4000\" or \"[::]:4000\"",
            );
        }
        if self.body_limit_bytes < 1024 {
            v.error("body_limit_bytes", "must be at least 1024");
        }
        in_range(
            v,
            "max_connections",
            self.max_connections as u64,
            1,
            1_000_000,
        );
        in_range(
            v,
            "header_read_timeout_ms",
            self.header_read_timeout_ms,
            100,
            600_000,
        );
        in_range(
            v,
            "body_read_timeout_ms",
            self.body_read_timeout_ms,
            100,
            600_000,
        );
        in_range(v, "max_in_flight", self.max_in_flight as u64, 1, 100_000);
        in_range(v, "max_queued", self.max_queued as u64, 0, 1_000_000);
        in_range(v, "queue_timeout_ms", self.queue_timeout_ms, 1, 600_000);
        in_range(v, "retry_after_secs", self.retry_after_secs, 1, 3_600);
    }
}

/// Reports `key` unless `min <= value <= max`.
fn in_range(v: &mut Validation, key: &str, value: u64, min: u64, max: u64) {
    if !(min..=max).contains(&value) {
        v.error(key, format!("must be between {min} and {max}"));
    }
}

impl Validate for RateLimitsConfig {
    fn validate(&self, v: &mut Validation) {
        v.scoped("default", |v| self.default.validate(v));
        for (role, limit) in &self.roles {
            let key = format!("roles.{role}");
            if crate::access::Role::parse(role).is_none() {
                let known: Vec<&str> = crate::access::Role::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect();
                v.error(
                    &key,
                    format!("is not a role; the roles are {}", known.join(", ")),
                );
            }
            v.scoped(&key, |v| limit.validate(v));
        }
        in_range(v, "max_principals", self.max_principals, 1, 100_000_000);
    }
}

impl Validate for RateLimit {
    fn validate(&self, v: &mut Validation) {
        in_range(
            v,
            "requests_per_minute",
            u64::from(self.requests_per_minute),
            1,
            100_000_000,
        );
        in_range(v, "burst", u64::from(self.burst), 1, 100_000_000);
        in_range(
            v,
            "max_in_flight",
            u64::from(self.max_in_flight),
            1,
            100_000,
        );
    }
}

impl Validate for SimulatorsConfig {
    fn validate(&self, v: &mut Validation) {
        // Checked even when disabled, so that turning them on later cannot reveal a typo.
        let listens = [
            ("mli_rest_listen", &self.mli_rest_listen),
            ("cod_graphql_listen", &self.cod_graphql_listen),
        ];
        for (key, listen) in listens {
            if listen.parse::<SocketAddr>().is_err() {
                v.error(
                    key,
                    "must be an IP address and a port, like \"127.0.0.1:4701\" (port 0 picks a free port)",
                );
            }
        }
        if let (Ok(a), Ok(b)) = (
            self.mli_rest_listen.parse::<SocketAddr>(),
            self.cod_graphql_listen.parse::<SocketAddr>(),
        ) {
            if a == b && a.port() != 0 {
                v.error(
                    "cod_graphql_listen",
                    "must differ from mli_rest_listen: each simulator needs its own port",
                );
            }
        }
        if self.enabled && self.fixtures_dir.trim().is_empty() {
            v.error(
                "fixtures_dir",
                "must not be empty when the simulators are enabled, e.g. \"connectors/fixtures\"",
            );
        }
    }
}

impl Validate for StoreConfig {
    fn validate(&self, v: &mut Validation) {
        let url = self.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            v.error(
                "url",
                "must start with `sqlite:`, `postgres://` or `postgresql://`",
            );
        }
        if !(1..=1000).contains(&self.max_connections) {
            v.error("max_connections", "must be between 1 and 1000");
        }
        in_range(v, "connect_timeout_ms", self.connect_timeout_ms, 10, 60_000);
        in_range(v, "acquire_timeout_ms", self.acquire_timeout_ms, 10, 60_000);
    }
}

impl Validate for AuthConfig {
    fn validate(&self, v: &mut Validation) {
        if self.audience.trim().is_empty() {
            v.error("audience", "must not be empty");
        }
        if let Some(jwt) = &self.jwt {
            v.scoped("jwt", |v| jwt.validate(v));
        }
        if self.jwt.is_none() && !self.dev_issuer.enabled {
            v.error(
                "",
                "no way to authenticate callers: configure [auth.jwt] or enable [auth.dev_issuer]",
            );
        }
        let dev = &self.dev_issuer;
        if dev.enabled && dev.key_file.trim().is_empty() {
            v.error(
                "dev_issuer.key_file",
                "must not be empty when the dev issuer is enabled",
            );
        }
        if !(1..=MAX_DEV_TOKEN_TTL_MINUTES).contains(&dev.token_ttl_minutes) {
            v.error(
                "dev_issuer.token_ttl_minutes",
                format!("must be between 1 and {MAX_DEV_TOKEN_TTL_MINUTES} (one week)"),
            );
        }
    }
}

impl Validate for JwtIssuerConfig {
    fn validate(&self, v: &mut Validation) {
        if self.issuer.trim().is_empty() {
            v.error("issuer", "must not be empty");
        }
        if let Err(why) = check_jwks_url(&self.jwks_url) {
            v.error("jwks_url", why);
        }
        if self.algorithms.is_empty() {
            v.error(
                "algorithms",
                "must name at least one of \"RS256\", \"ES256\"",
            );
        }
        for (i, alg) in self.algorithms.iter().enumerate() {
            if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                v.error(
                    &format!("algorithms[{i}]"),
                    "unsupported algorithm: only \"RS256\" and \"ES256\" are accepted",
                );
            }
        }
        if self.jwks_refresh_secs < 1 {
            v.error("jwks_refresh_secs", "must be at least 1");
        }
        in_range(
            v,
            "jwks_fetch_timeout_ms",
            self.jwks_fetch_timeout_ms,
            100,
            60_000,
        );
    }
}

/// An `https://` URL with a host, or `http://` to a loopback host (a local test identity provider).
fn check_jwks_url(url: &str) -> Result<(), &'static str> {
    const EXPECTED: &str =
        "must be an https:// URL (http:// is accepted only for 127.0.0.1, localhost or [::1])";
    let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(EXPECTED);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => return Err("has an unterminated IPv6 address"),
        }
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err("has no host");
    }
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "[::1]"
    );
    if secure || loopback {
        Ok(())
    } else {
        Err(EXPECTED)
    }
}

impl Validate for LimitsConfig {
    fn validate(&self, v: &mut Validation) {
        let limits = [
            ("max_complexity", self.max_complexity as u64),
            ("max_aliases", self.max_aliases as u64),
            ("max_tokens", self.max_tokens as u64),
            ("max_fields", self.max_fields as u64),
            ("max_root_fields", self.max_root_fields as u64),
            ("assumed_list_size", self.assumed_list_size as u64),
            ("max_page_size", u64::from(self.max_page_size)),
            ("max_list_items", self.max_list_items as u64),
            ("max_string_chars", self.max_string_chars as u64),
            ("max_variables_bytes", self.max_variables_bytes as u64),
        ];
        for (key, value) in limits {
            if value == 0 {
                v.error(key, "must be greater than 0");
            }
        }
        // The async-graphql parser recurses on nesting: keep documents far from its stack.
        in_range(v, "max_depth", self.max_depth as u64, 1, 64);
        in_range(
            v,
            "operation_timeout_ms",
            self.operation_timeout_ms,
            1,
            3_600_000,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check_jwks_url;

    #[test]
    fn overload_and_limit_settings_are_checked_with_file_line_and_key() {
        let text = r#"
[server]
max_in_flight = 0
queue_timeout_ms = 0

[store]
acquire_timeout_ms = 5

[limits]
max_fields = 0
max_depth = 500

[rate_limits]
default = { requests_per_minute = 0, burst = 10 }

[rate_limits.roles]
un-analyst = { requests_per_minute = 60, burst = 0 }
nosuch = { requests_per_minute = 60, burst = 5 }

[auth.dev_issuer]
enabled = true
"#;
        let errors = crate::config::load_str(text, "casegraph.toml").expect_err("refused");
        let found: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
        for (line, key) in [
            (3, "server.max_in_flight"),
            (4, "server.queue_timeout_ms"),
            (7, "store.acquire_timeout_ms"),
            (10, "limits.max_fields"),
            (11, "limits.max_depth"),
            (14, "rate_limits.default.requests_per_minute"),
            (17, "rate_limits.roles.un-analyst.burst"),
            (18, "rate_limits.roles.nosuch"),
        ] {
            assert!(
                found.contains(&(line, key)),
                "no error for {key} at line {line} in {found:?}\n{errors}"
            );
        }
        assert!(errors.to_string().contains("is not a role"), "{errors}");
        let unknown = crate::config::load_str(
            "[limits]\nmax_fields = 10\nno_limits = true\n[auth.dev_issuer]\nenabled = true\n",
            "casegraph.toml",
        )
        .expect_err("no switch turns limits off");
        assert!(
            unknown.to_string().contains("unknown key `no_limits`"),
            "{unknown}"
        );
    }

    #[test]
    fn jwks_url_accepts_https_and_loopback_http_only() {
        assert!(check_jwks_url("https://idp.example.org/keys").is_ok());
        assert!(check_jwks_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_jwks_url("http://localhost/jwks").is_ok());
        assert!(check_jwks_url("http://[::1]:9000/jwks").is_ok());
        assert!(check_jwks_url("http://idp.example.org/keys").is_err());
        assert!(check_jwks_url("http://localhost.evil.org/keys").is_err());
        assert!(check_jwks_url("http://user@evil.org:80/?x=localhost").is_err());
        assert!(check_jwks_url("https:///keys").is_err());
        assert!(check_jwks_url("ftp://idp.example.org/keys").is_err());
    }
}

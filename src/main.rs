//! The `casegraph` command: serve the gateway, import UN datasets, check configuration, mint
//! development tokens, print the schemas (GraphQL, configuration, connector files).

use anyhow::{bail, Context as _, Result};
use casegraph::config::{self, Config, LogFormat};
use casegraph::import::{self, ImportOptions};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// CaseGraph — the GraphQL gateway of the UN database of violence against peacekeepers
/// (Security Council resolution 2589).
#[derive(Parser)]
#[command(name = "casegraph", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default: config/casegraph.toml, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding `server.listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a configuration file and report every error with file, line and key.
    CheckConfig {
        /// Configuration file (default: config/casegraph.toml, else the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Print the JSON Schema of the configuration file (for editor completion).
    ConfigSchema,
    /// Print the JSON Schema of a connector file (for editor completion):
    /// `casegraph connector-schema > connectors/connector.schema.json`.
    ConnectorSchema,
    /// Import a UN Peace and Security Data Hub dataset into the case store.
    Import {
        /// Which dataset.
        #[arg(value_enum)]
        dataset: Dataset,
        /// The CSV file.
        file: PathBuf,
        /// Configuration file naming the store.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Import the valid rows and report the others (default: write nothing if any row is bad).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Host-state connectors: test one against its real upstream.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve the reference implementation of the CaseGraph connector protocol from a JSON file
    /// of canonical records (docs/connector-protocol.md).
    ProtocolReference {
        /// JSON file: an array of canonical records.
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4801")]
        listen: String,
        /// Name of an environment variable holding the bearer token clients must send.
        #[arg(long)]
        token_env: Option<String>,
    },
    /// Print a token signed by the local development issuer (demo only).
    DevToken {
        /// Organisation: a Member State's ISO alpha-3 code (MLI), UN or UN/<entity>, or AU.
        #[arg(long)]
        org: String,
        /// Role(s): un-case-officer, un-analyst, focal-point, member-state-analyst, auditor, admin.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Subject (who the token speaks for).
        #[arg(long, default_value = "demo-user")]
        sub: String,
        /// Mission code(s), for focal points.
        #[arg(long = "mission")]
        missions: Vec<String>,
        /// Configuration file naming the dev issuer's key.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Call the connector's real upstream for one case and show the raw response, the mapped
    /// result, and every missing or unmapped field. Exits non-zero when the mapping fails.
    Test {
        /// Connector id (the file name without .toml, or its `id`).
        id: String,
        /// The key to look up: a UN case reference (MINUSMA-20210113) or a national reference,
        /// depending on the connector's `match_by`.
        #[arg(long)]
        reference: String,
        /// Configuration file naming the connectors folder.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole audit log, recompute every hash and check that seqs have no gaps and each
    /// entry links to the one before. Exits 0 when intact, 1 naming the first broken entry.
    Verify {
        /// Configuration file naming the store.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Dataset {
    /// DPPADPOSS-PKO: the list of missions.
    Missions,
    /// DPPADPOSS-FATALITIES: fatalities; malicious acts become cases.
    Fatalities,
}

fn load_config(path: Option<&PathBuf>) -> Result<(Config, String)> {
    let (mut config, origin) =
        config::load_default_or(path.map(|p| p.as_path())).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Ok(url) = std::env::var("CASEGRAPH_STORE_URL") {
        if !url.trim().is_empty() {
            config.store.url = url;
        }
    }
    Ok((config, origin))
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Redacts the password of a store URL before it is printed.
fn display_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

async fn serve(config: Option<PathBuf>, listen: Option<String>) -> Result<()> {
    let (mut config, origin) = load_config(config.as_ref())?;
    if let Some(l) = listen {
        config.server.listen = l;
    }
    init_tracing(&config);
    tracing::info!(config = %origin, store = %display_url(&config.store.url), "Starting CaseGraph");
    let listen = config.server.listen.clone();
    let dev = config.auth.dev_issuer.enabled;
    let graphiql = config.server.graphiql;
    let json_logs = config.log.format == LogFormat::Json;
    let gateway = casegraph::Gateway::builder(config).build().await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let cases = gateway
        .store()
        .count_cases(&casegraph::store::CaseFilter::all())
        .await?;
    if json_logs {
        // Log collectors read stderr line by line as JSON: no banner there.
        tracing::info!(address = %addr, cases, backend = gateway.store().backend(), "CaseGraph is listening");
        gateway.serve(listener, shutdown_signal()).await?;
        tracing::info!("Stopped");
        return Ok(());
    }
    eprintln!(
        "\nCaseGraph is listening on http://{addr}  ({cases} cases in the {} store)",
        gateway.store().backend()
    );
    if graphiql {
        eprintln!("  GraphiQL:  http://{addr}/");
    }
    if dev {
        eprintln!(
            "\nGet a token (development issuer) in another terminal, then send a first query:\n\n  \
             TOKEN=$(cargo run --release -q -- dev-token --org MLI --role member-state-analyst)\n  \
             curl -s http://{addr}/graphql -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
             -d '{{\"query\":\"{{ cases(first: 3, filter: {{missions: [\\\"MINUSMA\\\"]}}) {{ totalCount nodes {{ reference incidentDate victimCount }} }} }}\"}}'\n"
        );
    }
    gateway.serve(listener, shutdown_signal()).await?;
    tracing::info!("Stopped");
    Ok(())
}

fn check_config(path: Option<PathBuf>) -> Result<ExitCode> {
    let (config, origin) = match load_config(path.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "{origin}: OK (store: {}, dev issuer: {}, JWKS issuer: {})",
        display_url(&config.store.url),
        if config.auth.dev_issuer.enabled {
            "enabled"
        } else {
            "disabled"
        },
        config
            .auth
            .jwt
            .as_ref()
            .map_or("none", |j| j.issuer.as_str())
    );
    if let Some(problem) = casegraph::serving_problem(&config) {
        eprintln!("{origin}: {problem}");
        return Ok(ExitCode::FAILURE);
    }
    let policy_label = if config.access.policy_file.trim().is_empty() {
        "config/policy.toml (embedded)".to_string()
    } else {
        config.access.policy_file.clone()
    };
    match casegraph::load_policy(&config.access).and_then(casegraph::schema::access_for) {
        Ok(access) => println!(
            "{policy_label}: OK (access policy: {} fields and mutations classified)",
            access.policy().fields().len()
        ),
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    let dir = config.connectors.dir.trim();
    if dir.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !std::path::Path::new(dir).is_dir() {
        println!("{dir}: no such folder: no connectors will be loaded");
        return Ok(ExitCode::SUCCESS);
    }
    match casegraph::connectors::load_dir(std::path::Path::new(dir)) {
        Ok(files) => {
            for f in &files {
                println!(
                    "{}: OK (connector {}, kind {}, host states {})",
                    f.path.display(),
                    f.id,
                    f.file.kind.as_str(),
                    f.file.host_states.join(", ")
                );
                if let Some(m) = &f.file.mapping {
                    let stages: Vec<&str> =
                        m.uncovered_stages().iter().map(|s| s.as_str()).collect();
                    if !stages.is_empty() && m.stage.is_some() {
                        println!("  note: no national stage maps to {}", stages.join(", "));
                    }
                    let statuses: Vec<&str> = m
                        .uncovered_defendant_statuses()
                        .iter()
                        .map(|s| s.as_str())
                        .collect();
                    if !statuses.is_empty()
                        && m.defendants.as_ref().is_some_and(|d| d.status.is_some())
                    {
                        println!(
                            "  note: no national defendant status maps to {}",
                            statuses.join(", ")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn run_import(
    dataset: Dataset,
    file: PathBuf,
    config: Option<PathBuf>,
    skip_invalid: bool,
) -> Result<ExitCode> {
    let (config, _) = load_config(config.as_ref())?;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = casegraph::store::connect_with(
        &config.store.url,
        casegraph::store::ConnectOptions::of(&config.store),
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the store at {}",
            display_url(&config.store.url)
        )
    })?;
    let started = std::time::Instant::now();
    let progress = |done: usize, total: usize| {
        if total >= 200 {
            eprint!("\r  writing {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    };
    let opts = ImportOptions {
        skip_invalid,
        progress: Some(&progress),
    };
    eprintln!(
        "Importing {} into the {} store…",
        file.display(),
        store.backend()
    );
    let result = match dataset {
        Dataset::Missions => import::import_missions(store.as_ref(), &bytes, opts).await,
        Dataset::Fatalities => import::import_fatalities(store.as_ref(), &bytes, opts).await,
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &report.warnings {
        eprintln!("  note: {w}");
    }
    for r in &report.rejected {
        eprintln!("  skipped {}:{r}", file.display());
    }
    println!(
        "{}: {} rows read, {} out of scope, {} {} ({} victims); inserted {}, updated {}, unchanged {}; {} rejected; {:.2}s",
        report.dataset,
        report.rows_read,
        report.rows_out_of_scope,
        report.records,
        match dataset {
            Dataset::Missions => "missions",
            Dataset::Fatalities => "cases",
        },
        report.victims,
        report.counts.inserted,
        report.counts.updated,
        report.counts.unchanged,
        report.rejected.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(config: Option<PathBuf>) -> Result<ExitCode> {
    use casegraph::access::audit::{self, Verification};
    let (config, _) = load_config(config.as_ref())?;
    let store = casegraph::store::connect_with(
        &config.store.url,
        casegraph::store::ConnectOptions::of(&config.store),
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the store at {}",
            display_url(&config.store.url)
        )
    })?;
    match audit::verify(store.as_ref()).await {
        Ok(Verification::Intact { entries, last_hash }) => {
            println!("audit log intact: {entries} entries, last hash {last_hash}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Verification::Broken { seq, reason }) => {
            println!("audit log BROKEN at entry seq {seq}: {reason}");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ casegraph::store::StoreError::Corrupt(_)) => {
            println!("audit log BROKEN: an entry is unreadable: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("reading the audit log failed"),
    }
}

fn dev_token(
    org: String,
    roles: Vec<String>,
    sub: String,
    missions: Vec<String>,
    config: Option<PathBuf>,
) -> Result<()> {
    let (config, origin) = load_config(config.as_ref())?;
    let dev = &config.auth.dev_issuer;
    if !dev.enabled {
        bail!("the development issuer is disabled in {origin}: the server would refuse its tokens");
    }
    casegraph::access::Organisation::parse(&org)
        .map_err(|e| anyhow::anyhow!("--org {org}: {e}"))?;
    for r in &roles {
        if casegraph::access::Role::parse(r).is_none() {
            let known: Vec<&str> = casegraph::access::Role::ALL
                .iter()
                .map(|r| r.as_str())
                .collect();
            bail!(
                "--role {r}: unknown role; known roles: {}",
                known.join(", ")
            );
        }
    }
    let issuer = casegraph::auth::DevIssuer::load_or_create(std::path::Path::new(&dev.key_file))?;
    let token = issuer.mint(
        &config.auth.audience,
        &sub,
        &org,
        &roles,
        &missions,
        Duration::from_secs(dev.token_ttl_minutes * 60),
    )?;
    println!("{token}");
    Ok(())
}

async fn connector_test(
    id: String,
    reference: String,
    config: Option<PathBuf>,
) -> Result<ExitCode> {
    use casegraph::connectors;
    let (config, origin) = load_config(config.as_ref())?;
    if config.connectors.dir.trim().is_empty() {
        bail!("{origin} names no connectors folder ([connectors] dir)");
    }
    let files = match connectors::load_dir(std::path::Path::new(&config.connectors.dir)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(loaded) = files.iter().find(|f| f.id == id) else {
        let ids: Vec<&str> = files.iter().map(|f| f.id.as_str()).collect();
        bail!(
            "no connector `{id}` in {}; known: {}",
            config.connectors.dir,
            ids.join(", ")
        );
    };
    // The same SEALED rule as the gateway's, for the "withheld" lines below; the raw answer and
    // the mapped records are still shown in full: this is the state's own data on its own
    // operator's command line, and nothing of it is cached.
    let policy = casegraph::load_policy(&config.access)?;
    let handle = connectors::build(loaded, casegraph::sealing_of(&policy)).await?;
    println!(
        "Connector {} — {} (kind {}, host states {}, matching by {:?})",
        handle.id,
        handle.name,
        handle.kind.as_str(),
        handle.host_states.join(", "),
        handle.match_by
    );
    println!("Looking up {reference} (uncached)…\n");
    let report = match handle.runtime.test(&reference).await {
        Ok(r) => r,
        Err(e) => {
            println!("FAILED: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "Raw response:\n{}\n",
        serde_json::to_string_pretty(&report.raw).unwrap_or_default()
    );
    if report.mapped.is_empty() {
        println!("FAILED: the system returned no record for {reference}");
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = false;
    for (i, (proceedings, mapping)) in report.mapped.iter().enumerate() {
        println!(
            "Mapped record {}:\n{}\n",
            i + 1,
            serde_json::to_string_pretty(proceedings).unwrap_or_default()
        );
        for m in &mapping.missing {
            println!("  missing: {m} — the pointer found nothing in this record");
        }
        for part in &mapping.sealed {
            println!(
                "  sealed: {part} — marked SEALED: the gateway drops it before its cache and shows only that restricted content exists"
            );
        }
        for (field, label) in &mapping.unmapped {
            failed = true;
            println!(
                "  UNMAPPED: {field} `{label}` — add it to the connector's table in [mapping]"
            );
        }
    }
    if failed {
        println!("\nFAILED: some national values have no canonical mapping");
        Ok(ExitCode::FAILURE)
    } else {
        println!("\nOK: every value mapped");
        Ok(ExitCode::SUCCESS)
    }
}

async fn protocol_reference(
    data: PathBuf,
    listen: String,
    token_env: Option<String>,
) -> Result<()> {
    let token = match token_env {
        Some(var) => Some(
            std::env::var(&var)
                .with_context(|| format!("environment variable {var} is not set"))?,
        ),
        None => None,
    };
    let server =
        casegraph::connectors::protocol::reference::ReferenceServer::from_file(&data, token)
            .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "CaseGraph connector protocol reference server on http://{} ({})",
        listener.local_addr()?,
        data.display()
    );
    axum::serve(listener, server.router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, listen } => {
            serve(config, listen).await.map(|()| ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => check_config(config),
        Command::Schema => {
            print!("{}", casegraph::schema::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config::json_schema())
                    .expect("JSON values serialise")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ConnectorSchema => {
            let schema = schemars::schema_for!(casegraph::connectors::ConnectorFile);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("JSON values serialise")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            dataset,
            file,
            config,
            skip_invalid,
        } => run_import(dataset, file, config, skip_invalid).await,
        Command::Connector {
            command:
                ConnectorCommand::Test {
                    id,
                    reference,
                    config,
                },
        } => connector_test(id, reference, config).await,
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit_verify(config).await,
        Command::ProtocolReference {
            data,
            listen,
            token_env,
        } => protocol_reference(data, listen, token_env)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::DevToken {
            org,
            roles,
            sub,
            missions,
            config,
        } => dev_token(org, roles, sub, missions, config).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

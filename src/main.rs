//! `vigil`: the one binary. It parses the command line and the configuration, then hands over to
//! the crates; it owns no business logic.

mod api_client;
mod audit_cmd;
mod audit_head;
mod compare_cmd;
mod config;
mod control;
mod datasets_cmd;
mod eval_cmd;
mod experiment_links;
mod keys_cmd;
mod kill_switch_cmd;
mod metrics_cmd;
mod process;
mod retention_cmd;
mod serve;
mod wal_cmd;
mod wal_drain;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// mimalloc: the ingest path allocates many small strings per span; glibc's allocator spent a
/// third of the collector's CPU on them and fragmented its memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Trace collector and observability backend for LLM agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from; shared by every command that reads it. Global, so that
/// a command with subcommands takes them before or after the subcommand
/// (`vigil keys --data-dir X create` and `vigil keys create --data-dir X`).
#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "VIGIL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory (WAL, embedded store, keys); overrides the config.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// The configuration plus the short form for the ClickHouse store.
#[derive(clap::Args, Clone)]
struct StoreArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Use the ClickHouse store at this HTTP URL (short for `[store] kind = "clickhouse"` with
    /// `[store.clickhouse] url = URL`).
    #[arg(long, env = "VIGIL_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
}

impl StoreArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = self.config.load()?;
        if let Some(url) = &self.clickhouse_url {
            config.store.use_clickhouse_at(url);
            config.validate()?;
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run Vigil: by default everything (ingest, the REST API and web UI, alerting).
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        /// Run only these components (comma-separated: ingest, query, alerting), e.g. many
        /// stateless ingest nodes, a few query nodes, a small alerting group. Overrides
        /// `server.components`.
        #[arg(long, value_delimiter = ',')]
        components: Vec<vigil_api::Component>,
    },
    /// Create or upgrade the ClickHouse tables (every node of a cluster), then exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
        /// Print every migration's SQL for the configured database and cluster instead of
        /// applying anything (no connection is made).
        #[arg(long)]
        print_sql: bool,
    },
    /// Manage API keys.
    Keys {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: keys_cmd::KeysAction,
    },
    /// The audit log: `vigil audit verify` checks its hash chain.
    Audit {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: audit_cmd::AuditAction,
    },
    /// The write-ahead log: `inspect` it, `quarantine` a record the server cannot read, `drain`
    /// a dead node's log into the store.
    Wal {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: wal_cmd::WalAction,
    },
    /// What the retention job would delete now (`--dry-run`).
    Retention(retention_cmd::RetentionArgs),
    /// Send realistic synthetic agent traffic to a running Vigil.
    Demo(vigil_workload::demo::DemoArgs),
    /// Query a running Vigil's metrics (`POST /api/v1/metrics/query`) and print them.
    Metrics(metrics_cmd::MetricsArgs),
    /// Evaluation datasets of a running Vigil: list, create, show, import and export (JSON
    /// Lines), add production runs, delete items.
    Datasets(datasets_cmd::DatasetsArgs),
    /// Evaluation: `vigil eval gate`, the regression gate for CI (exit 0 passed, 1 regression,
    /// 2 usage or server error).
    Eval(eval_cmd::EvalArgs),
    /// Compare two cohorts of production runs (canary and production, release A and B) with
    /// unpaired tests (exit 0 no regression, 1 a metric regressed, 2 an error).
    Compare(compare_cmd::CompareArgs),
    /// Kill switches of a running Vigil: what an agent is told, disable, enable, list.
    KillSwitch(kill_switch_cmd::KillSwitchArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: vigil_workload::bench::BenchCommand,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { store, components } => {
            let mut config = store.load()?;
            if !components.is_empty() {
                config.server.components = components.into_iter().collect();
            }
            init_logging(&config.log.level)?;
            runtime()?.block_on(serve::serve(config))
        }
        Command::Migrate { store, print_sql } => {
            let config = store.load()?;
            init_logging("warn")?;
            let output = if print_sql {
                vigil_schemas::clickhouse::migrate::script(&config.store.clickhouse)
            } else {
                runtime()?.block_on(serve::migrate(&config))?.to_string()
            };
            #[allow(clippy::print_stdout)]
            {
                print!("{output}");
            }
            Ok(())
        }
        Command::Keys { config, action } => {
            runtime()?.block_on(keys_cmd::run(&config.load()?, action))
        }
        Command::Audit { config, action } => audit_cmd::run(&config.load()?, action),
        Command::Wal { config, action } => wal_cmd::run(&config.load()?, action),
        Command::Retention(args) => {
            init_logging("warn")?;
            retention_cmd::run(args)
        }
        Command::Demo(args) => {
            init_logging("warn")?;
            runtime()?.block_on(vigil_workload::demo::run_cli(args))
        }
        Command::Metrics(args) => {
            init_logging("warn")?;
            runtime()?.block_on(metrics_cmd::run_cli(args))
        }
        Command::Datasets(args) => {
            init_logging("warn")?;
            runtime()?.block_on(datasets_cmd::run_cli(args))
        }
        Command::Eval(args) => {
            init_logging("warn")?;
            runtime()?.block_on(eval_cmd::run_cli(args))
        }
        Command::Compare(args) => {
            init_logging("warn")?;
            runtime()?.block_on(compare_cmd::run_cli(args))
        }
        Command::KillSwitch(args) => {
            init_logging("warn")?;
            runtime()?.block_on(kill_switch_cmd::run_cli(args))
        }
        Command::Bench { which } => {
            init_logging("warn")?;
            runtime()?.block_on(vigil_workload::bench::run_cli(which))
        }
    }
}

/// Stack of each runtime worker thread.
const WORKER_STACK_BYTES: usize = 16 * 1024 * 1024;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vigil")
        // DataFusion plans nested metric queries recursively; the default 2 MiB overflows on
        // them in debug builds.
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
        .context("starting the async runtime")
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .with_context(|| format!("log.level = {level:?} is not a valid filter"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use vigil_api::Component;

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--data-dir` and `--config` are taken before and after a subcommand.
    #[test]
    fn shared_options_follow_the_subcommand_too() {
        for args in [
            &[
                "vigil",
                "keys",
                "create",
                "--data-dir",
                "X",
                "--role",
                "read",
            ][..],
            &[
                "vigil",
                "keys",
                "--data-dir",
                "X",
                "create",
                "--role",
                "read",
            ][..],
            &["vigil", "keys", "list", "--data-dir", "X"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let Command::Keys { config, .. } = cli.command else {
                panic!("{args:?}: not the keys command");
            };
            assert_eq!(config.data_dir.as_deref(), Some("X".as_ref()), "{args:?}");
        }
        let cli = Cli::try_parse_from(["vigil", "audit", "verify", "--config", "v.toml"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Audit { config, .. } = cli.command else {
            panic!("not the audit command");
        };
        assert_eq!(config.config.as_deref(), Some("v.toml".as_ref()));
    }

    /// The command lines the deployable units run (deploy/): the systemd unit's `ExecStart`,
    /// the container's `ENTRYPOINT` + `CMD`, each Kubernetes container's `args`.
    #[test]
    fn the_deployable_units_run_command_lines_vigil_takes() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let read = |file: &str| std::fs::read_to_string(deploy.join(file)).unwrap();
        let mut lines: Vec<Vec<String>> = Vec::new();
        let unit = read("systemd/vigil.service");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        lines.push(exec.split_whitespace().map(String::from).collect());
        let image = read("container/Containerfile");
        let json_line = |prefix: &str| -> Vec<String> {
            let line = image
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("{prefix}"));
            serde_json::from_str(line.trim()).unwrap()
        };
        lines.push([json_line("ENTRYPOINT "), json_line("CMD ")].concat());
        for manifest in ["kubernetes/one-node.yaml", "kubernetes/scale-out.yaml"] {
            for args in read(manifest)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("args: "))
            {
                let args: Vec<String> = serde_json::from_str(args).unwrap();
                lines.push([vec!["vigil".to_string()], args].concat());
            }
        }
        assert_eq!(lines.len(), 2 + 1 + 3, "{lines:?}");
        for line in lines {
            let cli = Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert!(matches!(cli.command, Command::Serve { .. }), "{line:?}");
        }
    }

    #[test]
    fn components_are_named_on_the_command_line() {
        let cli = Cli::try_parse_from(["vigil", "serve", "--components", "ingest,alerting"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Serve { components, .. } = cli.command else {
            panic!("not the serve command");
        };
        assert_eq!(components, [Component::Ingest, Component::Alerting]);
        let error = Cli::try_parse_from(["vigil", "serve", "--components", "ingest,ui"])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("\"ui\" is not a component"),
            "{error}"
        );
    }
}

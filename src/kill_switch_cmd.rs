//! `vigil kill-switch`: a client of a running Vigil's kill switch API (docs/api.md#kill-switch).
//! `status` prints what an agent is told, `disable` and `enable` set a switch (an `admin` key),
//! `list` prints every switch of the project.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_client::{ApiArgs, ApiClient, exit_on_error, print};

/// `vigil kill-switch`.
#[derive(clap::Args, Debug, Clone)]
pub struct KillSwitchArgs {
    #[command(subcommand)]
    pub command: KillSwitchCommand,
    /// Print the API's JSON answer instead of a line of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where the API is, and a key (`ingest` or `read` to read; `admin` to change).
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Which switch: an agent, optionally narrowed to a version.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The agent's name.
    pub agent: String,
    /// One agent version only.
    #[arg(long)]
    pub agent_version: Option<String>,
    /// One prompt version only.
    #[arg(long)]
    pub prompt_version: Option<String>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum KillSwitchCommand {
    /// What the agent (running as this version) is told.
    Status(Target),
    /// Stop the agent (or one of its versions).
    Disable {
        #[command(flatten)]
        target: Target,
        /// Why: shown to whoever re-enables it.
        #[arg(long)]
        reason: String,
    },
    /// Let it run again.
    Enable {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Every switch of the project, as last set.
    List,
}

/// Runs `vigil kill-switch`: a failure is printed as `error: …` and ends the process with
/// status 1.
pub async fn run_cli(args: KillSwitchArgs) -> anyhow::Result<()> {
    exit_on_error(run(args)).await
}

#[derive(Deserialize)]
struct Answer {
    state: String,
    reason: Option<String>,
    since: Option<String>,
    source: Option<Value>,
    scope: Option<Value>,
}

async fn run(args: KillSwitchArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.api)?;
    let answer: Value = match &args.command {
        KillSwitchCommand::Status(target) => {
            let mut query = Vec::new();
            for (name, value) in [
                ("agent_version", &target.agent_version),
                ("prompt_version", &target.prompt_version),
            ] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", encode(value)));
                }
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            client
                .get(&format!("{}{query}", path(&target.agent)))
                .await?
        }
        KillSwitchCommand::Disable { target, reason } => {
            set(&client, target, "disabled", Some(reason)).await?
        }
        KillSwitchCommand::Enable { target, reason } => {
            set(&client, target, "enabled", reason.as_ref()).await?
        }
        KillSwitchCommand::List => client.get("/api/v1/kill-switch").await?,
    };
    let output = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&answer)?)
    } else if let KillSwitchCommand::List = args.command {
        list_lines(&answer)
    } else {
        describe(serde_json::from_value(answer)?)
    };
    print(&output)
}

async fn set(
    client: &ApiClient,
    target: &Target,
    state: &str,
    reason: Option<&String>,
) -> anyhow::Result<Value> {
    let body = json!({
        "state": state,
        "reason": reason,
        "agent_version": target.agent_version,
        "prompt_version": target.prompt_version,
    });
    client.put(&path(&target.agent), &body).await
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn path(agent: &str) -> String {
    format!("/api/v1/kill-switch/{}", encode(agent))
}

/// `disabled since <time> by <who> (<scope>): <reason>`, or `enabled` when never set.
fn describe(answer: Answer) -> String {
    let mut line = answer.state;
    if let Some(since) = answer.since {
        line.push_str(&format!(" since {since}"));
    }
    if let Some(source) = answer.source {
        line.push_str(&format!(" by {}", source_text(&source)));
    }
    if let Some(scope) = answer.scope {
        line.push_str(&format!(" ({})", scope_text(&scope)));
    }
    if let Some(reason) = answer.reason {
        line.push_str(&format!(": {reason}"));
    }
    line.push('\n');
    line
}

fn source_text(source: &Value) -> String {
    match (source["key_id"].as_str(), source["rule"].as_str()) {
        (Some(key), _) => format!("key {key}"),
        (_, Some(rule)) => format!("alert rule {rule}"),
        _ => source.to_string(),
    }
}

fn scope_text(scope: &Value) -> String {
    let mut text = format!("agent {}", scope["agent"].as_str().unwrap_or_default());
    for name in ["agent_version", "prompt_version"] {
        if let Some(value) = scope[name].as_str() {
            text.push_str(&format!(", {name} {value}"));
        }
    }
    text
}

/// One line per switch: scope, state, since, source, reason.
fn list_lines(answer: &Value) -> String {
    let mut out = String::new();
    for switch in answer["switches"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            scope_text(&switch["scope"]),
            switch["state"].as_str().unwrap_or_default(),
            switch["since"].as_str().unwrap_or_default(),
            source_text(&switch["source"]),
            switch["reason"].as_str().unwrap_or_default(),
        ));
    }
    out
}

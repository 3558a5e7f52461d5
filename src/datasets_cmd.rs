//! `vigil datasets`: a client of a running Vigil's dataset API (docs/api.md#evaluation). Lists,
//! creates and shows datasets, imports and exports their items as JSON Lines (one item per
//! line, the API's item shape), adds items taken from production runs, deletes items.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use vigil_schemas::time::now_ns;

use crate::{
    api_client::{ApiArgs, ApiClient, exit_on_error, print},
    metrics_cmd::{RangeArgs, parse_filters},
};

/// Items sent per request: the API's limit. A larger import makes one version per request.
const ITEMS_PER_REQUEST: usize = 1000;

/// `vigil datasets`.
#[derive(clap::Args, Debug, Clone)]
pub struct DatasetsArgs {
    #[command(subcommand)]
    pub command: DatasetsCommand,
    /// Where the API is, and a key (`read` to read; `admin` to change).
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DatasetsCommand {
    /// The project's datasets.
    List,
    /// Create an empty dataset.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// A dataset's versions.
    Show { name: String },
    /// Add or change items from a JSON Lines file (`-`: standard input), one item per line:
    /// `{"id"?, "input", "expected_output"?, "metadata"?, "source_trace_id"?}`.
    Import { name: String, file: PathBuf },
    /// Print a version's items as JSON Lines.
    Export {
        name: String,
        /// The version (default: the newest).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Add production runs as items: each run's input, its output as the expected output.
    AddRuns {
        name: String,
        #[arg(required = true)]
        trace_ids: Vec<String>,
    },
    /// Delete an item (a new version without it).
    DeleteItem { name: String, item_id: String },
    /// Add the worst production runs of a period as items (the weekly loop): their input, no
    /// expected output (write what they should have answered), what they answered as metadata.
    AddWorst {
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        range: RangeArgs,
        /// `failure`: failed, then completed with a failed call; `feedback`: the most negative
        /// feedback.
        #[arg(long, value_parser = ["failure", "feedback"])]
        by: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Only runs whose field has this value, e.g. agent=support-bot (repeat).
        #[arg(long = "filter", value_name = "FIELD=VALUE")]
        filters: Vec<String>,
    },
}

/// Runs `vigil datasets`: a failure is printed as `error: …` and ends the process with status 1.
pub async fn run_cli(args: DatasetsArgs) -> anyhow::Result<()> {
    exit_on_error(run(args)).await
}

#[derive(Deserialize)]
struct Dataset {
    name: String,
    description: String,
    created_at: String,
    latest_version: u32,
    items: usize,
}

#[derive(Deserialize)]
struct DatasetList {
    datasets: Vec<Dataset>,
}

#[derive(Deserialize)]
struct Version {
    version: u32,
    created_at: String,
    created_by: String,
    items: usize,
    added: usize,
    updated: usize,
    deleted: usize,
}

#[derive(Deserialize)]
struct DatasetDetail {
    dataset: Dataset,
    versions: Vec<Version>,
}

#[derive(Deserialize)]
struct Change {
    changed: bool,
    version: u32,
    items: usize,
    added: usize,
    updated: usize,
    deleted: usize,
}

#[derive(Deserialize)]
struct Worst {
    #[serde(flatten)]
    change: Change,
    trace_ids: Vec<String>,
}

#[derive(Deserialize)]
struct ItemsPage {
    version: u32,
    items: Vec<Value>,
    next_offset: Option<usize>,
}

async fn run(args: DatasetsArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.api)?;
    let output = match args.command {
        DatasetsCommand::List => {
            let list: DatasetList = client.get("/api/v1/datasets").await?;
            list_table(&list.datasets)
        }
        DatasetsCommand::Create { name, description } => {
            let created: Dataset = client
                .post(
                    "/api/v1/datasets",
                    &json!({"name": name, "description": description}),
                )
                .await?;
            format!("created dataset {} (version 0, no items)\n", created.name)
        }
        DatasetsCommand::Show { name } => {
            let detail: DatasetDetail = client.get(&format!("/api/v1/datasets/{name}")).await?;
            show(&detail)
        }
        DatasetsCommand::Import { name, file } => {
            let items = read_jsonl(&file)?;
            if items.is_empty() {
                bail!("{}: no items; nothing to import", file.display());
            }
            add_items(&client, &name, &items).await?
        }
        DatasetsCommand::Export { name, version } => export(&client, &name, version).await?,
        DatasetsCommand::AddRuns { name, trace_ids } => {
            let items: Vec<Value> = trace_ids
                .iter()
                .map(|id| json!({ "source_trace_id": id }))
                .collect();
            add_items(&client, &name, &items).await?
        }
        DatasetsCommand::AddWorst {
            dataset,
            range,
            by,
            limit,
            filters,
        } => {
            let (from, to) = range.resolve(now_ns())?;
            let body = json!({
                "from": from, "to": to, "by": by, "limit": limit,
                "filters": parse_filters("--filter", &filters)?,
            });
            let added: Worst = client
                .post(&format!("/api/v1/datasets/{dataset}/items/worst"), &body)
                .await?;
            let mut out = change_line(&dataset, &added.change);
            for trace_id in &added.trace_ids {
                out.push_str(&format!("  {trace_id}\n"));
            }
            out
        }
        DatasetsCommand::DeleteItem { name, item_id } => {
            let change: Change = client
                .delete(&format!("/api/v1/datasets/{name}/items/{item_id}"))
                .await?;
            change_line(&name, &change)
        }
    };
    print(&output)
}

/// Sends `items`, [`ITEMS_PER_REQUEST`] at a time; a line per request on what it changed.
async fn add_items(client: &ApiClient, name: &str, items: &[Value]) -> anyhow::Result<String> {
    let mut report = String::new();
    for chunk in items.chunks(ITEMS_PER_REQUEST) {
        let change: Change = client
            .post(
                &format!("/api/v1/datasets/{name}/items"),
                &json!({ "items": chunk }),
            )
            .await?;
        report.push_str(&change_line(name, &change));
    }
    Ok(report)
}

/// Every item of a version, a page at a time, as JSON Lines.
async fn export(client: &ApiClient, name: &str, version: Option<u32>) -> anyhow::Result<String> {
    let mut lines = String::new();
    let mut offset = 0;
    // Pin the version the first page answers, so that a change while paging does not mix two.
    let mut pinned = version;
    loop {
        let mut path = format!("/api/v1/datasets/{name}/items?offset={offset}");
        if let Some(v) = pinned {
            path.push_str(&format!("&version={v}"));
        }
        let page: ItemsPage = client.get(&path).await?;
        pinned = Some(page.version);
        for item in &page.items {
            lines.push_str(&serde_json::to_string(item)?);
            lines.push('\n');
        }
        match page.next_offset {
            Some(next) => offset = next,
            None => return Ok(lines),
        }
    }
}

/// The items of a JSON Lines file; blank lines are skipped, a bad line is named.
fn read_jsonl(file: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    };
    let mut items = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}, line {}: not JSON", file.display(), i + 1))?;
        if !item.is_object() {
            bail!(
                "{}, line {}: an item is a JSON object, e.g. {{\"input\": …}}",
                file.display(),
                i + 1
            );
        }
        items.push(item);
    }
    Ok(items)
}

fn change_line(name: &str, change: &Change) -> String {
    if change.changed {
        format!(
            "dataset {name}: version {} ({} items: {} added, {} updated, {} deleted)\n",
            change.version, change.items, change.added, change.updated, change.deleted
        )
    } else {
        format!(
            "dataset {name}: unchanged (version {}, {} items)\n",
            change.version, change.items
        )
    }
}

/// Left-aligned columns, a header first.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
    out
}

fn list_table(datasets: &[Dataset]) -> String {
    let rows: Vec<Vec<String>> = datasets
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.latest_version.to_string(),
                d.items.to_string(),
                d.created_at.clone(),
                d.description.clone(),
            ]
        })
        .collect();
    table(
        &["name", "version", "items", "created", "description"],
        &rows,
    )
}

fn show(detail: &DatasetDetail) -> String {
    let d = &detail.dataset;
    let mut out = format!(
        "dataset {}: version {}, {} items, created {}\n",
        d.name, d.latest_version, d.items, d.created_at
    );
    if !d.description.is_empty() {
        out.push_str(&format!("{}\n", d.description));
    }
    let rows: Vec<Vec<String>> = detail
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.created_at.clone(),
                v.created_by.clone(),
                v.items.to_string(),
                v.added.to_string(),
                v.updated.to_string(),
                v.deleted.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "version", "created", "by", "items", "added", "updated", "deleted",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let text = table(
            &["name", "items"],
            &[
                vec!["golden".into(), "30".into()],
                vec!["a".into(), "1".into()],
            ],
        );
        assert_eq!(text, "name    items\ngolden  30\na       1\n");
    }

    #[test]
    fn a_bad_jsonl_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.jsonl");
        std::fs::write(&path, "{\"input\": 1}\n\n[1]\n").unwrap();
        let e = read_jsonl(&path).unwrap_err();
        assert!(
            e.to_string().contains("line 3: an item is a JSON object"),
            "{e}"
        );
        std::fs::write(&path, "{\"input\": 1}\nnope\n").unwrap();
        let e = read_jsonl(&path).unwrap_err();
        assert!(e.to_string().contains("line 2: not JSON"), "{e}");
        std::fs::write(&path, "{\"input\": 1}\n\n{\"input\": 2}\n").unwrap();
        assert_eq!(read_jsonl(&path).unwrap().len(), 2);
    }
}

//! `vigil metrics`: asks a running Vigil's `POST /api/v1/metrics/query` (docs/api.md#metrics-query)
//! and prints the answer for a terminal (an aligned table), a script (CSV) or another program
//! (JSON).
//!
//! The shell (HTTP, stdout, exit status) is [`run_cli`]; everything it prints is made by pure
//! functions: [`build_query`], [`table`], [`csv`] (written by the `csv` crate), [`pretty_json`];
//! the HTTP client is [`crate::api_client`].

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, bail};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use vigil_query::metrics::{MetricQuery, ShadowRuns};
use vigil_schemas::time::{now_ns, parse_duration_ns, rfc3339};

use crate::api_client::{ApiArgs, ApiClient, exit_on_error, print};

/// The metrics endpoint, under the base URL.
const QUERY_PATH: &str = "/api/v1/metrics/query";
/// Decimal places a number of at least 1 keeps in the table; a smaller one keeps this many
/// significant digits.
const TABLE_DECIMALS: usize = 6;
/// The column of the time bucket, present with `--step`.
const BUCKET: &str = "bucket";

/// A time range: back from now, or between two times.
#[derive(clap::Args, Debug, Clone)]
pub struct RangeArgs {
    /// Look back this far from now (e.g. 30m, 24h, 7d) instead of --from/--to.
    #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
    pub since: Option<String>,
    /// Start of the range (RFC 3339, e.g. 2026-11-23T00:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, exclusive (RFC 3339); default now.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
}

impl RangeArgs {
    /// `from` and `to` as RFC 3339; `now_ns` ends a `--since` range and an open `--from`.
    pub fn resolve(&self, now_ns: i64) -> anyhow::Result<(String, String)> {
        Ok(match (&self.since, &self.from) {
            (Some(since), _) => {
                let ns = parse_duration_ns(since)
                    .filter(|ns| *ns > 0)
                    .with_context(|| {
                        format!("--since {since:?} is not a duration (e.g. 30m, 24h, 7d)")
                    })?;
                (rfc3339(now_ns.saturating_sub(ns)), rfc3339(now_ns))
            }
            (None, Some(from)) => (
                from.trim().to_string(),
                self.to
                    .as_deref()
                    .map_or_else(|| rfc3339(now_ns), |to| to.trim().to_string()),
            ),
            (None, None) => bail!("give a range: --since (e.g. 24h) or --from [--to]"),
        })
    }
}

/// How the answer is printed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns; numbers rounded, null as `-`.
    #[default]
    Table,
    /// The server's answer, pretty-printed.
    Json,
    /// RFC 4180: a header, then one record per row; null as an empty field.
    Csv,
}

/// `vigil metrics`.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Metric to compute, e.g. runs, completion_rate, run_latency_p99_ms, cost_usd (repeat or
    /// comma-separate; docs/design.md#metric-definitions lists them all).
    #[arg(long = "metric", value_delimiter = ',', required = true)]
    pub metrics: Vec<String>,
    /// Field to group by, e.g. agent, model, environment (repeat or comma-separate).
    #[arg(long = "group-by", value_delimiter = ',')]
    pub group_by: Vec<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Cut the range into time buckets of this length (e.g. 1h, 1d).
    #[arg(long)]
    pub step: Option<String>,
    /// Keep only runs or calls whose field has this value (repeat; values of one field add up).
    #[arg(long = "filter", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// Shadow runs (`vigil.shadow = true`): left out (exclude), counted too (include), or
    /// counted alone (only).
    #[arg(long, default_value_t = ShadowRuns::Exclude, value_name = "exclude|include|only")]
    pub shadow: ShadowRuns,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the API is, and a key with the `read` role.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs `vigil metrics`: a failure is printed as `error: …` and ends the process with status 1.
pub async fn run_cli(args: MetricsArgs) -> anyhow::Result<()> {
    exit_on_error(run(args)).await
}

async fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let query = build_query(&args, now_ns())?;
    let answer = fetch(&ApiClient::new(&args.api)?, &query).await?;
    let output = match args.format {
        OutputFormat::Table => table(&query, &answer),
        OutputFormat::Json => pretty_json(&answer)?,
        OutputFormat::Csv => csv(&query, &answer)?,
    };
    print(&output)
}

/// The request the arguments describe; `now_ns` ends a `--since` range and an open `--from`.
pub fn build_query(args: &MetricsArgs, now_ns: i64) -> anyhow::Result<MetricQuery> {
    let (from, to) = args.range.resolve(now_ns)?;
    let mut metrics: Vec<String> = Vec::new();
    for name in list(&args.metrics) {
        if !metrics.contains(&name) {
            metrics.push(name);
        }
    }
    if metrics.is_empty() {
        bail!("--metric: name at least one metric (e.g. runs)");
    }
    Ok(MetricQuery {
        from,
        to,
        metrics,
        group_by: list(&args.group_by),
        filters: parse_filters("--filter", &args.filters)?,
        step: args
            .step
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        shadow: args.shadow,
    })
}

/// The names of a repeatable, comma-separated option, trimmed, without empty ones.
fn list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `FIELD=VALUE` arguments of `option` as metric filters: a field's values add up; a value
/// is kept as written (it may hold `=` or commas).
pub fn parse_filters(
    option: &str,
    texts: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for text in texts {
        match text.split_once('=') {
            Some((field, value)) if !field.trim().is_empty() => filters
                .entry(field.trim().to_string())
                .or_default()
                .push(value.to_string()),
            _ => bail!("{option} {text:?}: expected FIELD=VALUE, e.g. environment=production"),
        }
    }
    Ok(filters)
}

/// Sends the query; an answer other than 2xx becomes the server's error message.
async fn fetch(client: &ApiClient, query: &MetricQuery) -> anyhow::Result<Answer> {
    client.post(QUERY_PATH, query).await
}

/// `{"rows": [...]}`, each row's keys in the order the server sent them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    pub rows: Vec<Row>,
}

/// One row of the answer: field or metric name → value, in the server's order (serde_json's own
/// map would sort the keys).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<(String, Value)>);

impl Row {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, v)| v)
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    entries.push((key, value));
                }
                Ok(Row(entries))
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

/// A column of the output: a group field and the bucket hold text, the rest are metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    numeric: bool,
}

/// The group fields, the bucket (with a step), the metrics in the order asked, then anything
/// else the server answered (it adds `unpriced_model_calls` to a cost).
fn columns(query: &MetricQuery, answer: &Answer) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let mut add = |name: &str, numeric: bool| {
        if !columns.iter().any(|c| c.name == name) {
            columns.push(Column {
                name: name.to_string(),
                numeric,
            });
        }
    };
    for field in &query.group_by {
        add(field, false);
    }
    if query.step.is_some() {
        add(BUCKET, false);
    }
    for metric in &query.metrics {
        add(metric, true);
    }
    for row in &answer.rows {
        for (key, _) in &row.0 {
            add(key, true);
        }
    }
    columns
}

/// The answer as aligned columns: text left-aligned, numbers right-aligned, null as `-`.
pub fn table(query: &MetricQuery, answer: &Answer) -> String {
    let columns = columns(query, answer);
    let mut cells: Vec<Vec<String>> = vec![columns.iter().map(|c| c.name.clone()).collect()];
    for row in &answer.rows {
        cells.push(
            columns
                .iter()
                .map(|c| table_cell(row.get(&c.name)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &cells {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if columns[i].numeric {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn table_cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(x)) => table_number(x),
            _ => n.to_string(),
        },
        // Control characters would break the alignment (and the terminal).
        Some(Value::String(s)) => s.chars().flat_map(char::escape_debug).collect(),
        Some(other) => other.to_string(),
    }
}

/// A fractional number for the table: at most [`TABLE_DECIMALS`] decimals (below 1: that many
/// significant digits), trailing zeros dropped, never in exponent form.
pub fn table_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs();
    let decimals = if magnitude == 0.0 || magnitude >= 1.0 {
        TABLE_DECIMALS
    } else {
        // Zeros between the point and the first significant digit: 0.05 → 1, 0.5 → 0.
        let zeros = (-magnitude.log10()).ceil().max(1.0) as usize - 1;
        TABLE_DECIMALS + zeros
    };
    let text = format!("{x:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text.as_str()
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// The answer as RFC 4180 CSV (CRLF line ends): numbers at full precision without exponents,
/// null as an empty field.
pub fn csv(query: &MetricQuery, answer: &Answer) -> anyhow::Result<String> {
    let columns = columns(query, answer);
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(columns.iter().map(|c| c.name.as_str()))?;
    for row in &answer.rows {
        writer.write_record(columns.iter().map(|c| csv_value(row.get(&c.name))))?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

fn csv_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // Rust prints the shortest exact decimal and never an exponent.
            (_, _, Some(x)) => x.to_string(),
            _ => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The server's answer, pretty-printed, keys in the server's order.
pub fn pretty_json(answer: &Answer) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(answer)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MetricsArgs,
    }

    fn parse(argv: &[&str]) -> Result<MetricsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("vigil-metrics").chain(argv.iter().copied()))
            .map(|cli| cli.args)
    }

    fn args(argv: &[&str]) -> MetricsArgs {
        parse(argv).unwrap()
    }

    /// 2026-11-24T00:00:00Z.
    const NOW: i64 = 1_795_478_400 * 1_000_000_000;

    fn answer(rows: serde_json::Value) -> Answer {
        serde_json::from_value(json!({ "rows": rows })).unwrap()
    }

    #[test]
    fn since_ends_now_and_lists_split_on_commas() {
        let query = build_query(
            &args(&[
                "--metric",
                "runs, cost_usd",
                "--metric",
                "run_latency_p99_ms",
                "--metric",
                "runs",
                "--group-by",
                "agent,model",
                "--since",
                "24h",
                "--step",
                "1h",
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(rfc3339(NOW), "2026-11-24T00:00:00Z");
        assert_eq!(query.from, "2026-11-23T00:00:00Z");
        assert_eq!(query.to, "2026-11-24T00:00:00Z");
        assert_eq!(query.metrics, ["runs", "cost_usd", "run_latency_p99_ms"]);
        assert_eq!(query.group_by, ["agent", "model"]);
        assert_eq!(query.step.as_deref(), Some("1h"));
        assert!(query.filters.is_empty());
        // What goes on the wire is what the server's own type reads back.
        let wire = serde_json::to_string(&query).unwrap();
        assert_eq!(serde_json::from_str::<MetricQuery>(&wire).unwrap(), query);
        assert!(query.plan().is_ok());
    }

    #[test]
    fn from_without_to_ends_now() {
        let query = build_query(
            &args(&["--metric", "runs", "--from", "2026-11-20T06:00:00Z"]),
            NOW,
        )
        .unwrap();
        assert_eq!(query.from, "2026-11-20T06:00:00Z");
        assert_eq!(query.to, "2026-11-24T00:00:00Z");
        assert_eq!(query.step, None);
        let query = build_query(
            &args(&[
                "--metric",
                "runs",
                "--from",
                "2026-11-20T06:00:00Z",
                "--to",
                "2026-11-21T00:00:00Z",
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(query.to, "2026-11-21T00:00:00Z");
    }

    #[test]
    fn filters_accumulate_per_field() {
        let query = build_query(
            &args(&[
                "--metric",
                "runs",
                "--since",
                "7d",
                "--filter",
                "environment=production",
                "--filter",
                "agent=support-bot",
                "--filter",
                "environment=staging",
                "--filter",
                "prompt_version=a=b,c",
            ]),
            NOW,
        )
        .unwrap();
        let expected: BTreeMap<String, Vec<String>> = [
            ("agent", vec!["support-bot"]),
            ("environment", vec!["production", "staging"]),
            ("prompt_version", vec!["a=b,c"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(query.filters, expected);
        assert_eq!(query.from, "2026-11-17T00:00:00Z");
    }

    #[test]
    fn malformed_arguments_are_refused() {
        for bad in ["environment", "=production", " =x"] {
            let e = build_query(
                &args(&["--metric", "runs", "--since", "1h", "--filter", bad]),
                NOW,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("FIELD=VALUE"), "{bad:?}: {e}");
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
        for since in ["24", "1y", "0h", "h"] {
            let e = build_query(&args(&["--metric", "runs", "--since", since]), NOW)
                .unwrap_err()
                .to_string();
            assert!(e.contains("--since"), "{since:?}: {e}");
        }
        assert!(
            build_query(&args(&["--metric", " , ", "--since", "1h"]), NOW)
                .unwrap_err()
                .to_string()
                .contains("--metric")
        );
        // clap: a range is required, and --since excludes --from/--to.
        assert!(parse(&["--metric", "runs"]).is_err());
        assert!(parse(&["--metric", "runs", "--to", "2026-11-21T00:00:00Z"]).is_err());
        assert!(parse(&["--metric", "runs", "--since", "1h", "--from", "2026-11-20"]).is_err());
        assert!(parse(&["--since", "1h"]).is_err());
        assert!(parse(&["--metric", "runs", "--since", "1h", "--format", "xml"]).is_err());
    }

    #[test]
    fn numbers_for_the_table() {
        let cases = [
            (0.916_666_666_7, "0.916667"),
            (1_234.567_891_234, "1234.567891"),
            (0.000_123_456_789, "0.000123457"),
            (0.05, "0.05"),
            (0.001, "0.001"),
            (1e-7, "0.0000001"),
            (1e21, "1000000000000000000000"),
            (2.0, "2"),
            (0.0, "0"),
            (-0.0, "0"),
            (-1.5, "-1.5"),
            (-0.000_000_4, "-0.0000004"),
            (0.999_999_9, "1"),
            (12.345_000_4, "12.345"),
        ];
        for (x, text) in cases {
            assert_eq!(table_number(x), text, "{x:e}");
        }
        assert_eq!(table_cell(Some(&json!(120))), "120");
        assert_eq!(table_cell(Some(&json!(u64::MAX))), u64::MAX.to_string());
        assert_eq!(table_cell(Some(&json!(-3))), "-3");
        assert_eq!(table_cell(Some(&json!(1.0))), "1");
        assert_eq!(table_cell(Some(&Value::Null)), "-");
        assert_eq!(table_cell(None), "-");
        assert_eq!(table_cell(Some(&json!("a\tb"))), "a\\tb");
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let query = build_query(
            &args(&[
                "--metric",
                "runs,cost_usd",
                "--group-by",
                "agent",
                "--since",
                "1d",
                "--step",
                "6h",
            ]),
            NOW,
        )
        .unwrap();
        // The server's key order differs from the one asked; the extra column goes last.
        let answer = answer(json!([
            {"agent": "support-bot", "bucket": "2026-11-23T00:00:00Z", "cost_usd": 12.5,
             "runs": 120, "unpriced_model_calls": 0},
            {"bucket": "2026-11-23T06:00:00Z", "agent": "rag", "runs": 7, "cost_usd": null,
             "unpriced_model_calls": 3},
        ]));
        let expected = [
            "agent        bucket                runs  cost_usd  unpriced_model_calls",
            "support-bot  2026-11-23T00:00:00Z   120      12.5                     0",
            "rag          2026-11-23T06:00:00Z     7         -                     3",
        ]
        .map(|line| format!("{line}\n"))
        .concat();
        assert_eq!(table(&query, &answer), expected);
        // No rows: the header alone.
        assert_eq!(
            table(&query, &Answer::default()),
            "agent  bucket  runs  cost_usd\n"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let query = build_query(
            &args(&[
                "--metric",
                "completion_rate,runs",
                "--group-by",
                "agent",
                "--since",
                "1h",
            ]),
            NOW,
        )
        .unwrap();
        let answer = answer(json!([
            {"agent": "bot, \"v2\"", "completion_rate": 0.9166666666666666, "runs": 12},
            {"agent": "plain", "completion_rate": null, "runs": 0},
            {"agent": "tiny", "completion_rate": 1e-7, "runs": 1},
        ]));
        assert_eq!(
            csv(&query, &answer).unwrap(),
            "agent,completion_rate,runs\r\n\
             \"bot, \"\"v2\"\"\",0.9166666666666666,12\r\n\
             plain,,0\r\n\
             tiny,0.0000001,1\r\n"
        );
    }

    #[test]
    fn json_keeps_the_servers_key_order() {
        let body = r#"{"rows":[{"model":"gpt","agent":"a","runs":3,"cost_usd":null,"completion_rate":0.5}]}"#;
        let answer: Answer = serde_json::from_str(body).unwrap();
        let keys: Vec<&str> = answer.rows[0].0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["model", "agent", "runs", "cost_usd", "completion_rate"]
        );
        let text = pretty_json(&answer).unwrap();
        assert_eq!(
            text,
            "{\n  \"rows\": [\n    {\n      \"model\": \"gpt\",\n      \"agent\": \"a\",\n      \
             \"runs\": 3,\n      \"cost_usd\": null,\n      \"completion_rate\": 0.5\n    }\n  ]\n}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(body).unwrap()
        );
    }

    fn client(url: &str, token: Option<&str>) -> ApiClient {
        ApiClient::new(&ApiArgs {
            url: url.to_string(),
            token: token.map(str::to_string),
            token_file: "/nonexistent/vigil.key".into(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let query = build_query(&args(&["--metric", "runs", "--since", "1h"]), NOW).unwrap();
        let e = fetch(&client(&url, None), &query).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach {url}/api/v1/metrics/query")),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn a_refusal_becomes_the_servers_message() {
        use axum::{Json, Router, http::StatusCode, routing::post};
        let app = Router::new().route(
            QUERY_PATH,
            post(|Json(query): Json<MetricQuery>| async move {
                let e = json!({"error": {"code": "invalid_argument",
                    "message": format!("unknown metric {:?}", query.metrics[0]),
                    "field": "metrics"}});
                (StatusCode::BAD_REQUEST, Json(e))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let query = build_query(&args(&["--metric", "nope", "--since", "1h"]), NOW).unwrap();
        let e = fetch(&client(&url, Some("token")), &query)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "metrics: unknown metric \"nope\"");
    }
}

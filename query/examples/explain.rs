// Scratch: EXPLAIN ANALYZE of a metric statement over a sealed bench store. Not committed.
use datafusion::{
    common::DFSchema,
    datasource::{
        ViewTable,
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    logical_expr::{EmptyRelation, LogicalPlan},
    prelude::*,
};
use std::sync::Arc;
use vigil_query::metrics::{
    Dialect, MetricQuery, metric_sql,
    percentile::{PERCENTILES, exact_percentile_udaf},
};
use vigil_schemas::layout::Table;

#[tokio::main]
async fn main() {
    let store = std::env::args().nth(1).unwrap();
    let which: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let mut config = SessionConfig::new();
    config.options_mut().execution.parquet.pushdown_filters = std::env::var("PUSH").is_ok();
    let ctx = SessionContext::new_with_config(config);
    for p in PERCENTILES {
        ctx.register_udaf(exact_percentile_udaf(p));
    }
    for table in Table::ALL {
        let mut files = vec![];
        for day in std::fs::read_dir(format!("{store}/{}", table.name())).unwrap() {
            for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if p.to_str().unwrap().contains("sealed-") {
                    files.push(ListingTableUrl::parse(p.to_str().unwrap()).unwrap());
                }
            }
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let cfg = ListingTableConfig::new_with_multi_paths(files)
            .with_listing_options(options)
            .with_schema(table.schema());
        ctx.register_table(
            format!("{}_sealed", table.name()),
            Arc::new(ListingTable::try_new(cfg).unwrap()),
        )
        .unwrap();
        let empty = LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::try_from(table.schema()).unwrap()),
        });
        ctx.register_table(
            format!("{}_fresh", table.name()),
            Arc::new(ViewTable::new(empty, None)),
        )
        .unwrap();
    }
    let q = |m: &str, g: &str| MetricQuery {
        from: "2026-11-22T12:00:00Z".into(),
        to: "2026-11-23T12:00:00Z".into(),
        metrics: vec![m.into()],
        group_by: vec![g.into()],
        filters: Default::default(),
        step: None,
    };
    let query = [
        q("run_latency_p50_ms", "agent"),
        q("cost_usd", "model"),
        q("tool_error_rate", "tool"),
        q("completion_rate", "prompt_version"),
    ][which]
        .clone();
    if std::env::var("STORE").is_ok() {
        use vigil_query::TraceStore;
        let store =
            vigil_query::EmbeddedStore::open(std::path::Path::new(&store).parent().unwrap())
                .unwrap();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let answer = store
                .metrics("default", &query.plan().unwrap())
                .await
                .unwrap();
            println!(
                "store.metrics: {} rows, took {:?}",
                answer.rows.len(),
                started.elapsed()
            );
        }
        return;
    }
    for sql in metric_sql(&query.plan().unwrap(), "default", Dialect::DataFusion) {
        println!("{sql}\n");
        let started = std::time::Instant::now();
        if std::env::var("PARAM").is_ok() {
            let mut text = sql.replace("'default'", "$1");
            let mut params = vec![datafusion::common::ScalarValue::Utf8(Some(
                "default".into(),
            ))];
            if std::env::var("INTS").is_ok() {
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(i) = rest.find("17954") {
                    out.push_str(&rest[..i]);
                    let n: i64 = rest[i..i + 19].parse().unwrap();
                    params.push(datafusion::common::ScalarValue::Int64(Some(n)));
                    out.push_str(&format!("${}", params.len()));
                    rest = &rest[i + 19..];
                }
                out.push_str(rest);
                text = out;
            }
            let df = ctx
                .sql(&text)
                .await
                .unwrap()
                .with_param_values(params)
                .unwrap();
            if std::env::var("SHOW").is_ok() {
                println!(
                    "{}",
                    df.clone()
                        .explain(false, false)
                        .unwrap()
                        .collect()
                        .await
                        .map(
                            |b| datafusion::arrow::util::pretty::pretty_format_batches(&b)
                                .unwrap()
                                .to_string()
                        )
                        .unwrap()
                );
            }
            let _ = df.collect().await.unwrap();
        } else {
            let batches = ctx
                .sql(&format!("EXPLAIN ANALYZE {sql}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            if std::env::var("SHOW").is_ok() {
                println!(
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap()
                );
            }
        }
        println!("took {:?}", started.elapsed());
    }
}

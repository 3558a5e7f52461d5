//! Parquet as the embedded store's tables read it: DataFusion's own format, except that a file
//! is never taken to be sorted.
//!
//! DataFusion 55 takes the `sorting_columns` of a file's *first row group* as the order of the
//! whole file, and then aggregates and merges as if the file were sorted. The store's files
//! record, rightly, that each row group is sorted by key; but a sealed file is laid out by hour
//! then key (`collector/src/sink/embedded/hours.rs`), so the file as a whole is not, and a
//! grouped aggregate that trusted it emitted a group before all of its rows had arrived:
//! `completion_rate` by `prompt_version` over 1,000,000 sealed runs counted 13,942 runs for a
//! version that 13,815 runs used. This format keeps everything else (schema, statistics, the
//! scan), and reports no order.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::{
    arrow::datatypes::SchemaRef,
    catalog::Session,
    common::{GetExt, Result, Statistics},
    datasource::{
        file_format::{
            FileFormat, file_compression_type::FileCompressionType, parquet::ParquetFormat,
        },
        physical_plan::{FileScanConfig, FileSource},
        table_schema::TableSchema,
    },
    object_store::{ObjectMeta, ObjectStore},
    physical_plan::ExecutionPlan,
};

/// [`ParquetFormat`] without the file order ([`FileFormat::infer_ordering`] is left at its
/// default: none).
#[derive(Debug, Default)]
pub(crate) struct UnorderedParquet(ParquetFormat);

#[async_trait]
impl FileFormat for UnorderedParquet {
    fn get_ext(&self) -> String {
        self.0.get_ext()
    }

    fn get_ext_with_compression(&self, compression: &FileCompressionType) -> Result<String> {
        self.0.get_ext_with_compression(compression)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.0.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        self.0.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.0.infer_stats(state, store, table_schema, object).await
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0.create_physical_plan(state, conf).await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.0.file_source(table_schema)
    }
}

impl GetExt for UnorderedParquet {
    fn get_ext(&self) -> String {
        self.0.get_ext()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::{
        arrow::{
            array::{Int64Array, RecordBatch},
            datatypes::{DataType, Field, Schema},
        },
        datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
        parquet::{
            arrow::ArrowWriter,
            file::{metadata::SortingColumn, properties::WriterProperties},
        },
        physical_plan::displayable,
        prelude::SessionContext,
    };

    use super::*;

    /// A file of two row groups, each sorted by `key` and saying so, the second starting below
    /// where the first ended: what a sealed file laid out by hour looks like.
    fn sorted_by_row_group(dir: &std::path::Path) -> SchemaRef {
        let schema = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, false)]));
        let properties = WriterProperties::builder()
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            }]))
            .build();
        let file = std::fs::File::create(dir.join("f.parquet")).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        for keys in [vec![1, 5, 9], vec![2, 3, 4]] {
            let column = Arc::new(Int64Array::from(keys));
            writer
                .write(&RecordBatch::try_new(schema.clone(), vec![column]).unwrap())
                .unwrap();
            writer.flush().unwrap();
        }
        writer.close().unwrap();
        schema
    }

    /// The scan of the directory's files as DataFusion plans it with `format`.
    async fn scan(dir: &std::path::Path, schema: SchemaRef, format: Arc<dyn FileFormat>) -> String {
        let ctx = SessionContext::new();
        let url = ListingTableUrl::parse(dir.to_str().unwrap()).unwrap();
        let config = ListingTableConfig::new(url)
            .with_listing_options(ListingOptions::new(format).with_file_extension(".parquet"))
            .with_schema(schema);
        ctx.register_table("t", Arc::new(ListingTable::try_new(config).unwrap()))
            .unwrap();
        let plan = ctx
            .sql("SELECT key FROM t")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        displayable(plan.as_ref()).indent(true).to_string()
    }

    #[tokio::test]
    async fn a_file_sorted_by_row_group_is_not_taken_for_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let schema = sorted_by_row_group(dir.path());
        // What this format is for: DataFusion's own takes the first row group's order for
        // the file's (if it stops, this format can go).
        let plain = scan(
            dir.path(),
            schema.clone(),
            Arc::new(ParquetFormat::default()),
        )
        .await;
        assert!(plain.contains("output_ordering=[key@0 ASC"), "{plain}");
        let unordered = scan(dir.path(), schema, Arc::new(UnorderedParquet::default())).await;
        assert!(!unordered.contains("output_ordering"), "{unordered}");
    }
}

//! Exact percentiles as docs/design.md#percentiles defines them, for DataFusion: percentile q of n
//! values is the element at 0-based index min(⌊q·n⌋, n−1) of the values sorted ascending,
//! ClickHouse's `quantileExact`. DataFusion's built-ins interpolate (`median`, `percentile_cont`)
//! or approximate (`approx_percentile_cont`), so both stores could not agree to the last digit;
//! [`exact_percentiles_udaf`] gives DataFusion the same rule.

use std::{mem::size_of, sync::Arc};

use datafusion::{
    arrow::{
        array::{ArrayRef, AsArray, Int64Array, ListArray},
        buffer::{OffsetBuffer, ScalarBuffer},
        datatypes::{DataType, Field, FieldRef, Int64Type},
    },
    common::ScalarValue,
    error::Result,
    logical_expr::{
        Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
        function::{AccumulatorArgs, StateFieldsArgs},
        utils::format_state_name,
    },
};

use super::aggregate::Percentile;

pub use vigil_schemas::percentile::exact_percentile;

/// The name of [`exact_percentiles_udaf`] in SQL.
pub const EXACT_PERCENTILES: &str = "exact_percentiles";

/// `exact_percentiles(Int64) -> List(Int64)`: the percentiles of [`Percentile::ALL`], in that order
/// (`exact_percentiles(duration_ns)[3]` is the 99th); NULL elements over no rows. One state
/// for all three: a statement that asks for each writes the same expression, which DataFusion
/// aggregates once, so the values are gathered and sorted once.
pub fn exact_percentiles_udaf() -> AggregateUDF {
    AggregateUDF::from(ExactPercentiles {
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExactPercentiles {
    signature: Signature,
}

/// A list of Int64, the type of the state and of the answer.
fn int64_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

impl AggregateUDFImpl for ExactPercentiles {
    fn name(&self) -> &str {
        EXACT_PERCENTILES
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(int64_list())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Field::new(format_state_name(args.name, "values"), int64_list(), true).into(),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ValuesAccumulator { values: Vec::new() }))
    }
}

/// One Int64 list scalar holding `values`.
fn list_of(values: Vec<Option<i64>>) -> ScalarValue {
    let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0, values.len() as i32]));
    let list = ListArray::new(
        Arc::new(Field::new_list_field(DataType::Int64, true)),
        offsets,
        Arc::new(Int64Array::from(values)),
        None,
    );
    ScalarValue::List(Arc::new(list))
}

/// Keeps every value; a partial aggregate hands them on as one list.
#[derive(Debug)]
struct ValuesAccumulator {
    values: Vec<i64>,
}

impl Accumulator for ValuesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Int64Type>();
        self.values.extend(values.iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.update_batch(&[list])?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = std::mem::take(&mut self.values);
        Ok(vec![list_of(values.into_iter().map(Some).collect())])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.values.sort_unstable();
        Ok(list_of(
            Percentile::ALL
                .iter()
                .map(|p| exact_percentile(&self.values, p.percent()))
                .collect(),
        ))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.values.capacity() * size_of::<i64>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::{
        arrow::{array::Array, datatypes::Schema, record_batch::RecordBatch},
        datasource::MemTable,
        prelude::SessionContext,
    };
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn follows_the_design_definition() {
        let values: Vec<i64> = (0..1000).collect();
        // ClickHouse's quantileExact(0.99) over 0..999 is 990 (docs/design.md#percentiles).
        assert_eq!(exact_percentile(&values, 99), Some(990));
        assert_eq!(exact_percentile(&values, 50), Some(500));
        assert_eq!(exact_percentile(&[7], 99), Some(7));
        assert_eq!(exact_percentile(&[1, 2], 50), Some(2));
        assert_eq!(exact_percentile::<i64>(&[], 50), None);
    }

    /// Runs `exact_percentiles` over `rows` (group, value) in DataFusion, split into several
    /// partitions so that partial states are merged, asking for each percentile as the metric
    /// statements do: each element of the same expression.
    async fn in_datafusion(rows: &[(i64, i64)]) -> Vec<(i64, Vec<Option<i64>>)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let partitions: Vec<Vec<RecordBatch>> = rows
            .chunks(rows.len().div_ceil(3).max(1))
            .map(|chunk| {
                let g: Int64Array = chunk.iter().map(|(g, _)| *g).collect();
                let v: Int64Array = chunk.iter().map(|(_, v)| Some(*v)).collect();
                vec![RecordBatch::try_new(schema.clone(), vec![Arc::new(g), Arc::new(v)]).unwrap()]
            })
            .collect();
        let ctx = SessionContext::new();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, partitions).unwrap()),
        )
        .unwrap();
        ctx.register_udaf(exact_percentiles_udaf());
        let sql = "SELECT g, exact_percentiles(v)[1], exact_percentiles(v)[2], \
                   exact_percentiles(v)[3] FROM t GROUP BY g ORDER BY g";
        let frame = ctx.sql(sql).await.unwrap();
        // One aggregate state for the three.
        let plan = format!("{}", frame.logical_plan().display_indent());
        assert!(plan.contains("aggr=[[exact_percentiles(t.v)]]"), "{plan}");
        let batches = frame.collect().await.unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let g = batch.column(0).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let p = (1..=3)
                    .map(|c| {
                        let column = batch.column(c).as_primitive::<Int64Type>();
                        (!column.is_null(i)).then(|| column.value(i))
                    })
                    .collect();
                out.push((g.value(i), p));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn datafusion_agrees_with_sorting_by_hand(
            rows in proptest::collection::vec((0i64..4, -1_000_000i64..1_000_000), 1..400),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = runtime.block_on(in_datafusion(&rows));
            let mut expected = Vec::new();
            for g in 0..4 {
                let mut values: Vec<i64> = rows.iter().filter(|(k, _)| *k == g).map(|(_, v)| *v).collect();
                if values.is_empty() {
                    continue;
                }
                values.sort_unstable();
                let at = |percent: usize| Some(values[(values.len() * percent / 100).min(values.len() - 1)]);
                expected.push((g, vec![at(50), at(90), at(99)]));
            }
            prop_assert_eq!(got, expected);
        }
    }
}

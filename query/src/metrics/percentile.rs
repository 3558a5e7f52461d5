//! Exact percentiles as docs/design.md#percentiles defines them, for DataFusion: percentile q of n
//! values is the element at 0-based index min(⌊q·n⌋, n−1) of the values sorted ascending,
//! ClickHouse's `quantileExact`. DataFusion's built-ins interpolate (`median`, `percentile_cont`)
//! or approximate (`approx_percentile_cont`), so both stores could not agree to the last digit;
//! [`exact_percentile_udaf`] gives DataFusion the same rule.

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

/// The percentiles the catalog's latency metrics ask for.
pub const PERCENTILES: [u32; 3] = [50, 90, 99];

/// The element at index min(⌊percent·n / 100⌋, n−1) of ascending `sorted`; `None` when empty.
/// The index is computed in integers, so it is exact for every n.
pub fn exact_percentile(sorted: &[i64], percent: u32) -> Option<i64> {
    let n = sorted.len();
    let index = (n as u128 * u128::from(percent) / 100) as usize;
    sorted.get(index.min(n.checked_sub(1)?)).copied()
}

/// `exact_p<percent>(Int64) -> Int64`, e.g. `exact_p99(duration_ns)`; NULL over no rows.
pub fn exact_percentile_udaf(percent: u32) -> AggregateUDF {
    AggregateUDF::from(ExactPercentile {
        name: format!("exact_p{percent}"),
        percent,
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExactPercentile {
    name: String,
    percent: u32,
    signature: Signature,
}

impl AggregateUDFImpl for ExactPercentile {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Field::new_list_field(DataType::Int64, true);
        Ok(vec![
            Field::new(
                format_state_name(args.name, "values"),
                DataType::List(Arc::new(item)),
                true,
            )
            .into(),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ValuesAccumulator {
            percent: self.percent,
            values: Vec::new(),
        }))
    }
}

/// Keeps every value; a partial aggregate hands them on as one list.
#[derive(Debug)]
struct ValuesAccumulator {
    percent: u32,
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
        let offsets = OffsetBuffer::new(ScalarBuffer::from(vec![0, values.len() as i32]));
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            offsets,
            Arc::new(Int64Array::from(values)),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.values.sort_unstable();
        Ok(ScalarValue::Int64(exact_percentile(
            &self.values,
            self.percent,
        )))
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
        assert_eq!(exact_percentile(&[], 50), None);
    }

    /// Runs `exact_p<percent>` over `groups` (group, value) in DataFusion, split into several
    /// partitions so that partial states are merged.
    async fn in_datafusion(rows: &[(i64, i64)], percent: u32) -> Vec<(i64, Option<i64>)> {
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
        ctx.register_udaf(exact_percentile_udaf(percent));
        let sql = format!("SELECT g, exact_p{percent}(v) FROM t GROUP BY g ORDER BY g");
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let g = batch.column(0).as_primitive::<Int64Type>();
            let p = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                out.push((g.value(i), (!p.is_null(i)).then(|| p.value(i))));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn datafusion_agrees_with_sorting_by_hand(
            rows in proptest::collection::vec((0i64..4, -1_000_000i64..1_000_000), 1..400),
            percent in prop::sample::select(vec![50u32, 90, 99]),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = runtime.block_on(in_datafusion(&rows, percent));
            let mut expected = Vec::new();
            for g in 0..4 {
                let mut values: Vec<i64> = rows.iter().filter(|(k, _)| *k == g).map(|(_, v)| *v).collect();
                if values.is_empty() {
                    continue;
                }
                values.sort_unstable();
                let index = (values.len() * percent as usize / 100).min(values.len() - 1);
                expected.push((g, Some(values[index])));
            }
            prop_assert_eq!(got, expected);
        }
    }
}

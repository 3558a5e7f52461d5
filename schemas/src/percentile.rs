//! The exact percentile rule every figure of Vigil uses (docs/design.md#percentiles): percentile q
//! of n values is the element at 0-based index min(⌊q·n⌋, n−1) of the values sorted ascending,
//! ClickHouse's `quantileExact`.

/// The element at index min(⌊percent·n / 100⌋, n−1) of ascending `sorted`; `None` when empty.
/// The index is computed in integers, so it is exact for every n.
pub fn exact_percentile<T: Copy>(sorted: &[T], percent: u32) -> Option<T> {
    let n = sorted.len();
    let index = (n as u128 * u128::from(percent) / 100) as usize;
    sorted.get(index.min(n.checked_sub(1)?)).copied()
}

#[cfg(test)]
mod tests {
    use super::exact_percentile;

    #[test]
    fn the_index_is_floor_of_q_n_capped_at_the_last() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(exact_percentile(&values, 99), Some(991));
        assert_eq!(exact_percentile(&values, 50), Some(501));
        assert_eq!(exact_percentile(&values, 100), Some(1000));
        assert_eq!(exact_percentile(&[7i64], 99), Some(7));
        assert_eq!(exact_percentile::<i64>(&[], 50), None);
    }
}

//! The median of a bench's rounds, shared by the benches that compare medians.

/// The middle value of `values`, or the mean of the two middle ones when they are even.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

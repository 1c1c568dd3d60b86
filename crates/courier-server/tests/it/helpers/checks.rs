//! Checks of what arrived against what was counted.

use std::collections::HashSet;

/// The numbers after `prefix` in `texts` (`"s3:17"` with prefix `"s3:"` is 17), in order.
fn numbers_after(texts: &[String], prefix: &str) -> Vec<usize> {
    texts
        .iter()
        .filter_map(|text| text.strip_prefix(prefix))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Asserts that the texts of one sender, those starting with `prefix` and numbered after it,
/// arrived in strictly increasing order.
pub(crate) fn assert_in_order(texts: &[String], prefix: &str, context: &str) {
    let numbers = numbers_after(texts, prefix);
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "{context}: {prefix} out of order: {numbers:?}"
    );
}

/// Asserts that every text of `counted` is among `delivered`; answers how many distinct texts
/// were delivered.
pub(crate) fn assert_nothing_lost(
    counted: &[String],
    delivered: &[String],
    context: &str,
) -> usize {
    let delivered: HashSet<&String> = delivered.iter().collect();
    let lost: Vec<&String> = counted
        .iter()
        .filter(|text| !delivered.contains(text))
        .collect();
    assert!(
        lost.is_empty(),
        "{context}: {} of {} counted messages lost, e.g. {:?}",
        lost.len(),
        counted.len(),
        &lost[..lost.len().min(5)]
    );
    delivered.len()
}

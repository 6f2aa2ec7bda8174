//! Customers split by how many of several sets hold them: for each set, how many of its
//! customers are in exactly 1, 2, … of the sets. CHANGES counts a customer in j groups 1/j in
//! each (docs/QUERY.md, CHANGES); the groups' customer sets come from the value index.
//!
//! Uses: nothing of the crate.

use roaring::RoaringBitmap;

/// Up to this many sets, inclusion–exclusion over the sets' intersections (cardinalities, a
/// few materialised intersections); beyond, nested "in more than m sets" unions.
const INCLUSION_EXCLUSION_MAX: usize = 4;

/// For each of `sets`, `split[j]` = how many of its members are in exactly j + 1 of the sets
/// (trailing zeros may be left out).
pub(super) fn split_by_membership(sets: &[&RoaringBitmap]) -> Vec<Vec<u64>> {
    if sets.len() <= INCLUSION_EXCLUSION_MAX {
        by_inclusion_exclusion(sets)
    } else {
        by_nested_unions(sets)
    }
}

/// Every subset T of the sets gets |∩T| (one `intersection_len` for pairs; a larger subset
/// intersects its materialised subset without the highest set); the members of set g in
/// exactly m others are then Σ_{S ⊆ others, |S| ≥ m} (−1)^{|S|−m} C(|S|, m) |∩({g} ∪ S)|.
fn by_inclusion_exclusion(sets: &[&RoaringBitmap]) -> Vec<Vec<u64>> {
    let count = sets.len();
    let subsets = 1usize << count;
    let mut size = vec![0u64; subsets];
    let mut materialised: Vec<Option<RoaringBitmap>> = vec![None; subsets];
    for subset in 1..subsets {
        let highest = (usize::BITS - 1 - subset.leading_zeros()) as usize;
        let rest = subset & !(1 << highest);
        let members = subset.count_ones();
        size[subset] = match members {
            1 => sets[highest].len(),
            2 => sets[rest.trailing_zeros() as usize].intersection_len(sets[highest]),
            _ => materialised[rest]
                .as_ref()
                .map_or(0, |set| set.intersection_len(sets[highest])),
        };
        // Only a subset below the highest set is ever extended, and only when not empty.
        if members >= 2 && highest + 1 < count && size[subset] > 0 {
            let set = match members {
                2 => sets[rest.trailing_zeros() as usize] & sets[highest],
                _ => materialised[rest]
                    .as_ref()
                    .map_or_else(RoaringBitmap::new, |set| set & sets[highest]),
            };
            materialised[subset] = Some(set);
        }
    }
    (0..count)
        .map(|own| {
            let others = (subsets - 1) & !(1 << own);
            (0..count)
                .map(|exactly_others| {
                    let mut total: i128 = 0;
                    let mut subset = others;
                    // Every S ⊆ others, the empty set last.
                    loop {
                        let chosen = subset.count_ones() as usize;
                        if chosen >= exactly_others {
                            let sign = if (chosen - exactly_others).is_multiple_of(2) {
                                1
                            } else {
                                -1
                            };
                            let ways = binomial(chosen, exactly_others);
                            total += sign * ways * i128::from(size[subset | 1 << own]);
                        }
                        if subset == 0 {
                            break;
                        }
                        subset = (subset - 1) & others;
                    }
                    u64::try_from(total).unwrap_or(0)
                })
                .collect()
        })
        .collect()
}

/// C(items, chosen) for the few items of a few sets.
fn binomial(items: usize, chosen: usize) -> i128 {
    (0..chosen).fold(1i128, |ways, i| ways * (items - i) as i128 / (i as i128 + 1))
}

/// `at_least[m]`: the members of more than m sets (nested); the members of set g in exactly j
/// sets are |g ∩ at_least[j − 1]| − |g ∩ at_least[j]|.
fn by_nested_unions(sets: &[&RoaringBitmap]) -> Vec<Vec<u64>> {
    let mut at_least: Vec<RoaringBitmap> = Vec::new();
    for customers in sets {
        for more in (0..at_least.len()).rev() {
            let again = &at_least[more] & *customers;
            if more + 1 == at_least.len() {
                at_least.push(again);
            } else {
                at_least[more + 1] |= again;
            }
        }
        match at_least.first_mut() {
            Some(union) => *union |= *customers,
            None => at_least.push((*customers).clone()),
        }
    }
    sets.iter()
        .map(|customers| {
            // in_more[m]: the set's members in more than m sets (in_more[0]: all of them).
            let in_more: Vec<u64> = std::iter::once(customers.len())
                .chain(at_least.iter().skip(1).map(|set| set.intersection_len(customers)))
                .take_while(|&members| members > 0)
                .collect();
            (0..in_more.len())
                .map(|j| in_more[j] - in_more.get(j + 1).copied().unwrap_or(0))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: count each customer's sets.
    fn counted(sets: &[RoaringBitmap]) -> Vec<Vec<u64>> {
        let mut memberships = std::collections::BTreeMap::<u32, usize>::new();
        for set in sets {
            for customer in set {
                *memberships.entry(customer).or_default() += 1;
            }
        }
        sets.iter()
            .map(|set| {
                let mut split = vec![0u64; sets.len()];
                for customer in set {
                    split[memberships[&customer] - 1] += 1;
                }
                split
            })
            .collect()
    }

    fn trimmed(mut split: Vec<u64>) -> Vec<u64> {
        while split.last() == Some(&0) {
            split.pop();
        }
        split
    }

    #[test]
    fn both_methods_equal_counting_each_customer() {
        // A small deterministic generator: sets over a few containers, some empty, dense and
        // sparse, so that both array and bitmap containers meet.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..60 {
            let count = 1 + round % 7;
            let sets: Vec<RoaringBitmap> = (0..count)
                .map(|_| {
                    let density = next() % 100;
                    (0..30_000u32)
                        .map(|i| i * 7)
                        .filter(|_| next() % 100 < density)
                        .collect()
                })
                .collect();
            let refs: Vec<&RoaringBitmap> = sets.iter().collect();
            let want: Vec<Vec<u64>> = counted(&sets).into_iter().map(trimmed).collect();
            let inclusion = if count <= INCLUSION_EXCLUSION_MAX + 2 {
                by_inclusion_exclusion(&refs).into_iter().map(trimmed).collect()
            } else {
                want.clone()
            };
            let nested: Vec<Vec<u64>> = by_nested_unions(&refs).into_iter().map(trimmed).collect();
            assert_eq!(inclusion, want, "inclusion–exclusion, {count} sets");
            assert_eq!(nested, want, "nested unions, {count} sets");
            let chosen: Vec<Vec<u64>> = split_by_membership(&refs).into_iter().map(trimmed).collect();
            assert_eq!(chosen, want);
        }
    }
}

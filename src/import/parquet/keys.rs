//! The column path's view of a batch's keys: dictionary string columns (each distinct value
//! checked and interned once per dictionary, remembered across the batches that share it),
//! integer customer ids (interned once per part), and integer timestamps read by the file's
//! timestamp reader.
//!
//! Uses: `time`; rooms `staged` (of `import`).

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};

use crate::import::staged;
use crate::time::TsReader;

/// A string column read as a dictionary (see [`dictionary_hint`]): per row a key into a small
/// array of distinct values, so that each distinct value is checked and interned once.
#[derive(Clone, Copy)]
pub(super) struct DictStrings<'a> {
    pub(super) keys: &'a arrow_array::PrimitiveArray<Int32Type>,
    pub(super) values: &'a arrow_array::StringArray,
}

impl<'a> DictStrings<'a> {
    /// The key of row `index` (`None`: null); an error when it is outside the dictionary.
    pub(super) fn key(&self, index: usize) -> Result<Option<usize>, String> {
        if self.keys.is_null(index) {
            return Ok(None);
        }
        let k = self.keys.value(index);
        match usize::try_from(k) {
            Ok(k) if k < self.values.len() => Ok((!self.values.is_null(k)).then_some(k)),
            _ => Err(format!("dictionary key {k} is outside the dictionary")),
        }
    }

    /// The string at row `index` (`None`: null).
    pub(super) fn value(&self, index: usize) -> Result<Option<&'a str>, String> {
        Ok(self.key(index)?.map(|k| self.values.value(k)))
    }
}

/// `a` as dictionary-encoded strings, when it is one (Int32 keys, Utf8 values).
pub(super) fn dict_strings(array: &dyn Array) -> Option<DictStrings<'_>> {
    let d = array.as_dictionary_opt::<Int32Type>()?;
    Some(DictStrings {
        keys: d.keys(),
        values: d.values().as_string_opt::<i32>()?,
    })
}

/// What staging learned about one dictionary of string values: whether every value passes its
/// check, and the staged id of each value interned so far. arrow-rs hands a Parquet column
/// chunk's dictionary page to every batch of the row group (16 batches of 65,536 rows share
/// one of 45,000 customer ids in the 10M comparison file), so it is checked once, not per batch.
#[derive(Default)]
pub(super) struct DictMemo {
    /// The dictionary, held so that its buffers stay allocated (an address compared equal is
    /// then the same dictionary, not a new one where a freed one was).
    values: Option<arrow_array::StringArray>,
    /// Whether every value is non-null and passes the check (once checked).
    ok: Option<bool>,
    /// Per value, its staged id once interned.
    ids: Vec<Option<u32>>,
}

impl DictMemo {
    /// Makes this the memo of `values`: kept when it already is, else emptied.
    pub(super) fn load(&mut self, values: &arrow_array::StringArray) {
        let same = self.values.as_ref().is_some_and(|v| {
            v.len() == values.len()
                && std::ptr::eq(v.offsets().as_ptr(), values.offsets().as_ptr())
                && std::ptr::eq(v.values().as_ptr(), values.values().as_ptr())
        });
        if !same {
            self.values = Some(values.clone());
            self.ok = None;
            self.ids.clear();
            self.ids.resize(values.len(), None);
        }
    }

    /// True when no value of the dictionary is null and `ok` accepts each (checked once).
    pub(super) fn all_ok(&mut self, ok: impl Fn(&str) -> bool) -> bool {
        let Some(v) = &self.values else { return false };
        *self
            .ok
            .get_or_insert_with(|| v.null_count() == 0 && v.iter().flatten().all(ok))
    }

    /// Forgets the staged ids (the rows staged so far were handed on as a part, with their
    /// names; the next part interns its own).
    pub(super) fn forget_ids(&mut self) {
        self.ids.iter_mut().for_each(|id| *id = None);
    }

    /// The staged id of value `key`, interned by `intern` the first time.
    pub(super) fn id(&mut self, key: u32, intern: impl FnOnce(&str) -> u32) -> Option<u32> {
        let (Some(v), Some(slot)) = (&self.values, self.ids.get_mut(key as usize)) else {
            return None;
        };
        Some(*slot.get_or_insert_with(|| intern(v.value(key as usize))))
    }
}

/// A dictionary column's keys, every non-null one checked to be inside its dictionary.
#[derive(Clone, Copy)]
pub(super) struct Keys<'a>(pub(super) &'a arrow_array::PrimitiveArray<Int32Type>);

impl Keys<'_> {
    /// Row `index`'s key (`None`: null).
    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<u32> {
        if self.0.is_null(index) {
            return None;
        }
        self.0.values().get(index).map(|&k| k as u32)
    }

    pub(super) fn has_nulls(&self) -> bool {
        self.0.null_count() > 0
    }
}

/// The keys of a dictionary string column when every key is inside the dictionary and `memo`
/// (loaded with this dictionary) finds every value `ok`.
pub(super) fn batch_keys<'a>(
    dicts: DictStrings<'a>,
    memo: &mut DictMemo,
    ok: impl Fn(&str) -> bool,
) -> Option<Keys<'a>> {
    memo.load(dicts.values);
    if !memo.all_ok(ok) {
        return None;
    }
    // A negative key converts to 2^31 or more, past any dictionary (at most i32::MAX values).
    let n = u32::try_from(dicts.values.len()).unwrap_or(u32::MAX);
    let keys = dicts.keys.values().iter();
    let inside = match dicts.keys.nulls() {
        // Without early exit, so that the test runs on vectors.
        None => keys.fold(true, |all, &k| all & ((k as u32) < n)),
        Some(valid) => keys.zip(valid.iter()).all(|(&k, v)| !v || (k as u32) < n),
    };
    inside.then_some(Keys(dicts.keys))
}

/// The [`DictMemo`]s of one file's dictionary columns: customer, event, stage and each
/// property (in `props` order).
#[derive(Default)]
pub(super) struct DictMemos {
    pub(super) customer: DictMemo,
    /// An integer customer column's staged id per value (this part's).
    pub(super) int_customers: std::collections::HashMap<i64, u32, foldhash::fast::RandomState>,
    pub(super) event: DictMemo,
    pub(super) stage: DictMemo,
    pub(super) props: Vec<DictMemo>,
}

impl DictMemos {
    pub(super) fn forget_ids(&mut self) {
        self.customer.forget_ids();
        self.int_customers.clear();
        self.event.forget_ids();
        self.stage.forget_ids();
        self.props.iter_mut().for_each(DictMemo::forget_ids);
    }
}

/// A batch's customer column as the column path reads it: dictionary strings, or integers.
#[derive(Clone, Copy)]
pub(super) enum CustomerCol<'a> {
    Dict(Keys<'a>),
    Ints(&'a arrow_array::PrimitiveArray<Int64Type>),
}

impl<'a> CustomerCol<'a> {
    /// The column, its dictionary loaded into `memos` (`None`: neither form).
    pub(super) fn of(array: &'a dyn Array, memos: &mut DictMemos) -> Option<CustomerCol<'a>> {
        match dict_strings(array) {
            Some(d) => {
                memos.customer.load(d.values);
                Some(CustomerCol::Dict(Keys(d.keys)))
            }
            None => array.as_primitive_opt::<Int64Type>().map(CustomerCol::Ints),
        }
    }

    /// The staged id of row `index`'s customer, interned into `customers` the first time this
    /// part sees it (an integer is written in decimal then).
    pub(super) fn staged_id(
        self,
        index: usize,
        memos: &mut DictMemos,
        customers: &mut staged::Strings,
    ) -> Option<u32> {
        match self {
            CustomerCol::Dict(keys) => {
                let key = keys.get(index)?;
                memos.customer.id(key, |s| customers.intern(s))
            }
            CustomerCol::Ints(ints) => ints.values().get(index).map(|&id| {
                *memos
                    .int_customers
                    .entry(id)
                    .or_insert_with(|| customers.intern(&id.to_string()))
            }),
        }
    }
}

/// Reads a batch's integer timestamps in place with the file's reader; false at the first
/// that does not read (the values are then partly read: the batch goes to the row path).
pub(super) fn read_int_ts(ts: &mut [i64], reader: &mut TsReader) -> bool {
    for t in ts {
        match reader.integer(*t) {
            Ok(us) => *t = us,
            Err(_) => return false,
        }
    }
    true
}

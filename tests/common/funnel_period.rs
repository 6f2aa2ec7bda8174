//! The reference of `FUNNEL … PERIOD p`, from its definition in docs/QUERY.md: one funnel per
//! bucket of the range (the data's range without `FROM … TO`), each the same funnel whose
//! `FROM … TO` is that bucket cut to the range, its rows led by the bucket's label.

use jiff::tz::TimeZone;
use journeydb::{Cell, Table};

use super::reference::{Q, bucket_seq, label, next_in, reference as plain_reference};

/// The instant a local bucket starts (buckets start at local midnight or on the hour, never in
/// the tested zones' gaps or folds).
fn start_of(bucket: jiff::civil::DateTime, tz: &TimeZone) -> i64 {
    bucket
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_microsecond())
        .unwrap_or(i64::MIN)
}

pub fn reference(funnel: &Q, period: &str, evs: &[super::reference::Ev]) -> Table {
    let Q::Funnel { c, .. } = funnel else {
        panic!("FunnelPeriod holds a funnel");
    };
    let tz = TimeZone::get(c.tz).unwrap();
    let data = evs.iter().map(|e| e.ts).min().zip(evs.iter().map(|e| e.ts).max());
    let (lo, hi) = c.range.or(data.map(|(a, b)| (a, b + 1))).unwrap_or((0, 1));
    let mut out: Option<Table> = None;
    for bucket in bucket_seq(lo, hi, period, &tz) {
        let (start, end) = (start_of(bucket, &tz), start_of(next_in(bucket, period, &tz), &tz));
        let mut one = funnel.clone();
        if let Q::Funnel { c, .. } = &mut one {
            c.range = Some((start.max(lo), end.min(hi)));
        }
        let part = plain_reference(&one, evs);
        let table = out.get_or_insert_with(|| {
            let mut columns = vec!["bucket".to_owned()];
            columns.extend(part.columns.iter().cloned());
            let mut t = Table::new(&[]);
            t.columns = columns;
            t
        });
        let name = label(bucket, period, &tz);
        for row in part.rows {
            let mut row = row;
            row.insert(0, Cell::Str(name.clone()));
            table.rows.push(row);
        }
    }
    out.unwrap_or_else(|| Table::new(&["bucket"]))
}

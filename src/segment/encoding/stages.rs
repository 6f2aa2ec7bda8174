//! Stage codes (tag 10): a u8 value per event id when every event keeps one stage in the block,
//! else one byte per row.
//!
//! Uses: `codec`; rooms `encoding`.

use super::{BY_EVENT_IDS, TAG_BY_EVENT};
use crate::codec::{self, DecodeError, Reader};
use crate::segment::encoding::bitpack::{get_u8s, put_u8s};

/// Stage codes of rows whose events are `events`: when every row of an event has the same stage
/// (stages set per event name, the usual case), tag 10 — `count varint`, then `count` pairs
/// `(event id varint, stage u8)` with ids strictly increasing — else [`put_u8s`]. On the 10M
/// comparison data the stage column took 0.23 bytes/event as 4-bit codes; as a map it takes a
/// few bytes per block.
pub fn put_stages(out: &mut Vec<u8>, stages: &[u8], events: &[u32]) {
    match stage_map(stages, events) {
        Some(map) => {
            out.push(TAG_BY_EVENT);
            codec::put_varint(out, map.len() as u64);
            for (e, s) in map {
                codec::put_varint(out, u64::from(e));
                out.push(s);
            }
        }
        None => put_u8s(out, stages),
    }
}

/// The (event id, stage) pairs of `stages` by `events`, when each event has one stage.
pub(in crate::internals::segment) fn stage_map(stages: &[u8], events: &[u32]) -> Option<Vec<(u32, u8)>> {
    let max = events.iter().copied().max()?;
    if max >= BY_EVENT_IDS || events.len() != stages.len() {
        return None;
    }
    const UNSET: u16 = u16::MAX;
    let mut table = vec![UNSET; max as usize + 1];
    for (&e, &s) in events.iter().zip(stages) {
        let slot = &mut table[e as usize];
        if *slot == UNSET {
            *slot = u16::from(s);
        } else if *slot != u16::from(s) {
            return None;
        }
    }
    Some(
        table
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s != UNSET)
            .map(|(e, &s)| (e as u32, s as u8))
            .collect(),
    )
}

/// Decodes [`put_stages`] output of exactly `rows` rows; tag 10 needs the block's event ids
/// (`None`, or a length other than `rows`, is an error for it).
pub fn get_stages(
    reader: &mut Reader<'_>,
    rows: usize,
    events: Option<&[u32]>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if reader.clone().u8()? != TAG_BY_EVENT {
        return get_u8s(reader, rows, out);
    }
    reader.u8()?;
    let events = events
        .filter(|e| e.len() == rows)
        .ok_or_else(|| reader.err("stages by event without the block's event ids"))?;
    let count = reader.varint()?;
    if count > u64::from(BY_EVENT_IDS) {
        return Err(reader.err(format!("{count} events in a stage map")));
    }
    let mut table: Vec<u16> = Vec::new();
    let mut prev: Option<u64> = None;
    for _ in 0..count {
        let e = reader.varint()?;
        if e >= u64::from(BY_EVENT_IDS) || prev.is_some_and(|p| e <= p) {
            return Err(reader.err(format!("event id {e} out of order in a stage map")));
        }
        let s = reader.u8()?;
        table.resize(e as usize, u16::MAX);
        table.push(u16::from(s));
        prev = Some(e);
    }
    out.clear();
    out.reserve(rows);
    for &e in events {
        match table.get(e as usize) {
            Some(&s) if s != u16::MAX => out.push(s as u8),
            _ => return Err(reader.err(format!("event id {e} has no stage in the block's map"))),
        }
    }
    Ok(())
}

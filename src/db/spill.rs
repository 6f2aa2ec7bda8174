//! The external sort of an import whose rows are out of (customer, time) order: the prepared
//! rows are gathered into runs of a bounded number of rows, each run is sorted and spilled to a
//! temporary segment file on a thread of its own while the next run is gathered, and the runs
//! are merged into the import's one segment — memory is bounded by two runs whatever the
//! file's size.
//!
//! Run files are segment files the manifest does not name (ids above every published one): a
//! crash leaves nothing an open does not remove, and they are removed when the import ends,
//! whether it published or failed (docs/FORMAT.md §9a).
//!
//! Uses: `error`, `file`, `limits`, `merge`, `model`, `segment`.

use crate::error::Result;
use crate::file::{self, FileError};
use crate::limits;
use crate::merge::{Merge, Source};
use crate::model::{Columns, PropType};
use crate::segment::{self, ColumnSet, Footer, Segment, SegmentWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The sorted runs of one import, and the run being gathered.
pub(super) struct Runs {
    dir: PathBuf,
    db_id: u32,
    /// The segment id the next run file gets.
    next_id: u64,
    /// Every run file written or being written (removed when the runs are dropped).
    ids: Vec<u64>,
    /// The runs written, in file order: equal (customer, time) keys merge in this order, which
    /// is the order of the rows in the file.
    written: Vec<Arc<Segment>>,
    /// Rows in the runs written (each run's footer records the next range of this count as
    /// its sequence numbers; the merge ranks runs by their place in `written`, not by these).
    rows: u64,
    /// The run being gathered, in file order.
    gathering: Columns,
    run_rows: usize,
    /// The run being spilled on its own thread: its file, and its rows handed back (emptied,
    /// for the next run to reuse their allocations).
    spilling: Option<std::thread::JoinHandle<Result<Spilled>>>,
    /// The allocations of the last run spilled.
    spare: Columns,
}

/// A run written, and its rows (their allocations to reuse).
type Spilled = (Arc<Segment>, Columns);

/// Sorts `rows` (ties keep file order) and writes them as temporary segment `id` holding
/// sequence numbers `seq`: not compressed (its level is not used), not indexed, not synced.
fn write_run(dir: &Path, id: u64, rows: &Columns, seq: (u64, u64), db_id: u32) -> Result<Arc<Segment>> {
    let order = (!rows.is_sorted()).then(|| rows.sort_order());
    let path = segment::seg_path(dir, id);
    let props = rows.props.iter().map(|p| (p.id, p.ty)).collect();
    let mut writer = SegmentWriter::create(&path, props, 1, db_id)?.temporary();
    writer.push_rows(rows, order.as_deref())?;
    let (footer, len) = writer.finish(seq.0, seq.1)?;
    Ok(Arc::new(
        Segment::open_written(dir, id, len, footer)?.reading_once(),
    ))
}

impl Runs {
    /// No runs yet; run files get segment ids from `first_id` on (above the merged segment's).
    pub(super) fn new(dir: &Path, db_id: u32, first_id: u64, run_rows: usize) -> Runs {
        Runs {
            dir: dir.to_path_buf(),
            db_id,
            next_id: first_id,
            ids: Vec::new(),
            written: Vec::new(),
            rows: 0,
            gathering: Columns::default(),
            run_rows: run_rows.max(1),
            spilling: None,
            spare: Columns::default(),
        }
    }

    /// Adds the segment at `path`, already written sorted and finished with `written`, as the
    /// next run (the in-order beginning of a file that streamed until a part came out of
    /// order): renamed to the next run file, so that the merged segment can take its place.
    pub(super) fn add_written(&mut self, path: &Path, written: (Footer, u64)) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.ids.push(id);
        file::rename(path, &segment::seg_path(&self.dir, id))?;
        let (footer, len) = written;
        self.rows += footer.rows;
        self.written.push(Arc::new(
            Segment::open_written(&self.dir, id, len, footer)?.reading_once(),
        ));
        Ok(())
    }

    /// Adds prepared rows (the next rows of the file); spills the run when it is full.
    pub(super) fn add(&mut self, rows: &Columns) -> Result<()> {
        if self.gathering.cid.capacity() == 0 {
            // One allocation for every run: growing it by doubling, or a new one per run,
            // cost more in copies and fresh pages than sorting did.
            let room = self.run_rows.min(limits::IMPORT_ROWS_MAX);
            let _ = self.gathering.cid.try_reserve_exact(room);
            let _ = self.gathering.ts.try_reserve_exact(room);
            let _ = self.gathering.event.try_reserve_exact(room);
            let _ = self.gathering.stage.try_reserve_exact(room);
        }
        let mut at = 0;
        while at < rows.len() {
            let end = rows.len().min(at + (self.run_rows - self.gathering.len()));
            self.gathering.extend_from_range(rows, at..end);
            at = end;
            if self.gathering.len() >= self.run_rows {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Hands the run being gathered to a thread that sorts it and writes it as the next run
    /// file, after the run before it is written (one run is spilled at a time: memory holds
    /// at most that one and the next being gathered, whose columns reuse the allocations of
    /// the run before).
    fn spill(&mut self) -> Result<()> {
        if self.gathering.is_empty() {
            return Ok(());
        }
        self.wait_spilled()?;
        let rows = std::mem::replace(&mut self.gathering, std::mem::take(&mut self.spare));
        let id = self.next_id;
        self.next_id += 1;
        // Listed before the file exists, so that it is removed whatever happens next.
        self.ids.push(id);
        let seq = (self.rows, self.rows + rows.len() as u64);
        self.rows = seq.1;
        let (dir, db_id) = (self.dir.clone(), self.db_id);
        let spill = move || write_run(&dir, id, &rows, seq, db_id).map(|run| (run, rows));
        let path = segment::seg_path(&self.dir, id);
        let handle = std::thread::Builder::new()
            .name("journeydb-run".into())
            .spawn(spill)
            .map_err(|e| FileError::io(&path, e))?;
        self.spilling = Some(handle);
        Ok(())
    }

    /// Waits for the run being spilled, if any, and adds it to the runs written.
    fn wait_spilled(&mut self) -> Result<()> {
        let Some(handle) = self.spilling.take() else {
            return Ok(());
        };
        let (run, mut rows) = handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        self.written.push(run);
        rows.truncate_rows();
        self.spare = rows;
        Ok(())
    }

    /// The run files written or being written.
    pub(super) fn spilled(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Every property of the rows, by id (the merged segment's), once the run being spilled
    /// is written.
    pub(super) fn props(&mut self) -> Result<Vec<(u32, PropType)>> {
        self.wait_spilled()?;
        let mut props: Vec<(u32, PropType)> = self
            .written
            .iter()
            .flat_map(|run| run.footer.props.iter().copied())
            .chain(self.gathering.props.iter().map(|p| (p.id, p.ty)))
            .collect();
        props.sort_unstable_by_key(|p| p.0);
        props.dedup_by_key(|p| p.0);
        Ok(props)
    }

    /// Writes every row into `writer` in whole blocks, sorted by (customer, time) with ties in
    /// file order: straight from memory when they all fit in one run (nothing was spilled),
    /// else the last run is spilled and the runs are merged. Returns the rows written.
    pub(super) fn write_into(&mut self, writer: &mut SegmentWriter) -> Result<u64> {
        if self.written.is_empty() && self.spilling.is_none() {
            let rows = &self.gathering;
            let order = (!rows.is_sorted()).then(|| rows.sort_order());
            writer.push_rows(rows, order.as_deref())?;
            return Ok(rows.len() as u64);
        }
        self.spill()?;
        self.wait_spilled()?;
        // The runs' buffers (two runs' worth of rows) are not needed while they merge.
        self.gathering = Columns::default();
        self.spare = Columns::default();
        let sources = self.written.iter().cloned().map(Source::Segment).collect();
        let mut blocks = MergedBlocks {
            merge: Merge::new(sources, ColumnSet::ALL).stored(),
            rows: 0,
            error: None,
        };
        writer.push_blocks(&mut blocks)?;
        match blocks.error {
            Some(e) => Err(e.into()),
            None => Ok(blocks.rows),
        }
    }
}

impl Drop for Runs {
    /// Removes every run file, after the run being spilled is written (best effort: an open
    /// removes what is left).
    fn drop(&mut self) {
        if let Some(handle) = self.spilling.take() {
            let _ = handle.join();
        }
        self.written.clear();
        for &id in &self.ids {
            let _ = file::remove_if_exists(&segment::seg_path(&self.dir, id));
        }
    }
}

/// The merge's blocks, for [`SegmentWriter::push_blocks`]; stops at the first error, kept.
struct MergedBlocks {
    merge: Merge,
    rows: u64,
    error: Option<FileError>,
}

impl Iterator for MergedBlocks {
    type Item = Columns;

    fn next(&mut self) -> Option<Columns> {
        let mut block = Columns::default();
        match self.merge.next_block(&mut block, limits::BLOCK_ROWS) {
            Ok(true) => {
                self.rows += block.len() as u64;
                Some(block)
            }
            Ok(false) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

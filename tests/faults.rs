//! Fault injection and power loss, through the file layer's `failpoints` hook
//! (`journeydb::internals::file::set_hook`), which sees every file operation journeydb performs.
//!
//! - **Power loss** (`power_loss_images`): a fixed workload (commits with automatic and explicit
//!   flushes, erasures, compactions, a reopen) runs once while a recorder logs every operation.
//!   A file-system model replays the log and, after every operation, builds crash images the
//!   way a power cut could leave the disk: only what was fsynced (files) and directory entries
//!   whose directory was fsynced; everything; a random prefix of the unsynced operations of
//!   each file and directory with the last write torn; the unsynced writes zero-filled (size
//!   persisted, data not); unsynced writes persisted in any order. Each image is written to a
//!   real directory and opened; every acknowledged action must be there, nothing else but the
//!   action in flight (all or nothing), no duplicates, no panics. `JOURNEYDB_POWERLOSS_IMAGES`
//!   sets the number of images (10,000 by default; the soak in docs/DURABILITY.md uses
//!   1,000,000).
//! - **I/O faults** (`io_fault_sweep_*`): the same workload with the n-th operation failing (EIO),
//!   the n-th write torn (part written, then EIO), or the disk full (ENOSPC) from the n-th write
//!   on, for every n. Each failing action returns an error; the database stays usable or refuses
//!   writes cleanly (reads still work); after space returns and after reopening, every
//!   acknowledged action is there.
//! - **Read faults while opening** (`read_fault_sweep`): every read of an open fails in turn; the
//!   open returns an error and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure should abort loudly

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use journeydb::internals::file::{self, Hook, Inject, Op};
use journeydb::{Db, Event, Options, ProfileUpdate, Query, Stage, StoredEvent, Sync, Value};

/// The hook is process-wide: tests in this binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory on tmpfs when there is one (fsync is then cheap).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

// ------------------------------------------------------------------------------------------
// The workload and its oracle.

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Commit(u32),
    /// Batch `b` written by `Db::import` (a bulk import: a segment, no log record).
    Import(u32),
    /// File batch `b` ([`file_batch`]) streamed from a Parquet file by `Db::import_file`, in
    /// parts of 2 rows (a segment, no log record); in time order when true (then sorted
    /// through runs of 4 rows spilled to temporary files and merged).
    ImportFile(u32, bool),
    Flush,
    Compact,
    Forget(String),
    Reopen,
    /// `CREATE COHORT name [STATIC] AS DID visit AT LEAST 2 TIMES` (static when true).
    CreateCohort(&'static str, bool),
    /// `DROP COHORT name`.
    DropCohort(&'static str),
    /// `Db::set_stage(event, stage)`: re-stages the stored events of that name (the workload's
    /// `visit` and `add_to_cart` have no stage of their own).
    SetStage(&'static str, Option<Stage>),
    /// `LINK 'anonymous' TO 'known'`.
    Link(&'static str, &'static str),
    /// `UNLINK 'anonymous'`.
    Unlink(&'static str),
}

/// The definition of every cohort the workload creates.
const COHORT_SET: &str = "DID visit AT LEAST 2 TIMES";

const CUSTOMERS: u32 = 7;

fn workload() -> Vec<Action> {
    let mut out = Vec::new();
    for b in 0..24 {
        out.push(Action::Commit(b));
        if b % 7 == 3 {
            out.push(Action::Flush);
        }
        match b {
            5 => out.push(Action::Import(30)),
            6 => {
                out.push(Action::CreateCohort("loyal", true));
                out.push(Action::CreateCohort("regulars", false));
            }
            8 => out.push(Action::Forget("cust-2".into())),
            9 => out.push(Action::SetStage("visit", Some(Stage::Awareness))),
            15 => out.push(Action::SetStage("visit", Some(Stage::Consideration))),
            21 => {
                out.push(Action::SetStage("add_to_cart", Some(Stage::Consideration)));
                out.push(Action::SetStage("visit", None));
            }
            13 => out.push(Action::DropCohort("regulars")),
            4 => out.push(Action::Link("cust-1", "cust-0")),
            10 => out.push(Action::Link("cust-5", "cust-3")),
            17 => out.push(Action::Unlink("cust-1")),
            11 => out.push(Action::Compact),
            14 => out.push(Action::Reopen),
            16 => out.push(Action::ImportFile(40, false)),
            19 => out.push(Action::ImportFile(41, true)),
            20 => out.push(Action::Import(31)),
            18 => {
                out.push(Action::Forget("cust-4".into()));
                out.push(Action::Compact);
            }
            _ => {}
        }
    }
    out
}

/// Set by the `Sync::Never` power-loss test (tests here run one at a time).
static SYNC_NEVER: AtomicBool = AtomicBool::new(false);

fn opts() -> Options {
    let sync = if SYNC_NEVER.load(Ordering::SeqCst) {
        Sync::Never
    } else {
        Sync::EveryCommit
    };
    Options::default().sync(sync).buffer_events_max(24)
}

/// Batch `b`: 2–4 events; every event carries a unique `id` and a unique string value.
fn batch(b: u32) -> Vec<Event> {
    let n = 2 + b % 3;
    (0..n)
        .map(|i| {
            let id = i64::from(b * 100 + i);
            let name = ["visit", "add_to_cart", "purchase"][((b + i) % 3) as usize];
            let mut e = Event::new(
                format!("cust-{}", (b * 3 + i) % CUSTOMERS),
                1_767_225_600_000_000 + i64::from(b) * 3_600_000_000 + i64::from(i),
                name,
            )
            .with_prop("id", id)
            .with_prop("note", format!("note {b}/{i}"));
            if name == "purchase" {
                e = e
                    .with_stage(Stage::Purchase)
                    .with_prop("amount", f64::from(b) + 0.5);
            }
            e
        })
        .collect()
}

/// The profile write that commit `b` carries beside its events: customer `b % CUSTOMERS`'s
/// plan and seats (later batches write later times, so each write is the latest).
fn profile_write(b: u32) -> ProfileUpdate {
    ProfileUpdate::new(
        format!("cust-{}", b % CUSTOMERS),
        1_767_225_600_000_000 + i64::from(b) * 3_600_000_000,
    )
    .with_prop("plan", format!("plan {b}"))
    .with_prop("seats", i64::from(b))
}

/// Commits batch `b` and its profile write as one batch.
fn commit(d: &Db, b: u32) -> journeydb::Result<()> {
    let mut batch_ = d.batch();
    for e in batch(b) {
        batch_.append(e);
    }
    batch_.set_profile(profile_write(b));
    batch_.commit().map(drop)
}

/// Batch `b` staged from an NDJSON file (reading a file does not go through the hooked file
/// layer: only the database's own files do).
fn staged(b: u32) -> journeydb::import::Staged {
    common::stage(&batch(b))
}

/// File batch `b`: 3 new customers (in the order their ids will be given), 3 events each in
/// time order, carrying ids, notes, stages and amounts as [`batch`]'s do. In customer order,
/// or (`time_order`) in time order, the customers' events interleaved.
fn file_batch(b: u32, time_order: bool) -> Vec<Event> {
    (0..9)
        .map(|i| {
            let mut e = batch(b * 10 + i / 3).swap_remove(0);
            let customer = if time_order { i % 3 } else { i / 3 };
            e.customer = format!("file-{b}-{customer}");
            e.ts_us = 1_767_225_600_000_000 + i64::from(b) * 3_600_000_000 + i64::from(i);
            // Every property on the first rows (one first seen in a later part would not stream).
            e.props.retain(|p| p.0 != "id" && p.0 != "amount");
            e.with_prop("id", i64::from(b * 100 + i))
                .with_prop("amount", f64::from(i) + 0.25)
        })
        .collect()
}

/// Streams file batch `b` into `d` from a Parquet file (written outside the hooked file
/// layer) in parts of 2 rows; in time order through sorted runs of 4 rows.
fn import_file(d: &Db, b: u32, time_order: bool) -> journeydb::Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("batch.parquet");
    common::events_parquet(&path, &file_batch(b, time_order));
    let opts = journeydb::import::ImportOptions {
        part_rows: Some(2),
        run_rows: Some(4),
        ..Default::default()
    };
    let done = d.import_file(&path, &opts, &mut |_, _| {})?;
    assert!(done.streamed, "file batch {b} did not stream");
    assert_eq!(done.runs > 0, time_order, "file batch {b}: {done:?}");
    Ok(())
}

/// One event as a reader sees it: (customer, ts, name, stage, props).
type Row = (String, i64, String, Option<Stage>, Vec<(String, Value)>);

/// What a reader must see: the events by id, and the saved cohorts (a static one with its
/// members' external ids, a dynamic one with `None`).
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    events: BTreeMap<i64, Row>,
    cohorts: BTreeMap<String, Option<BTreeSet<String>>>,
    /// Each customer's latest profile (only customers with one).
    profiles: BTreeMap<String, Vec<(String, Value)>>,
    stage_map: BTreeMap<String, Stage>,
    /// Identity links: anonymous id → known id.
    links: BTreeMap<String, String>,
}

impl State {
    /// The customers of [`COHORT_SET`] now.
    fn repeat_visitors(&self) -> BTreeSet<String> {
        let mut visits: BTreeMap<&str, usize> = BTreeMap::new();
        for row in self.events.values().filter(|row| row.2 == "visit") {
            *visits.entry(&row.0).or_default() += 1;
        }
        visits
            .into_iter()
            .filter(|(_, n)| *n >= 2)
            .map(|(c, _)| c.to_owned())
            .collect()
    }
}

fn apply(state: &mut State, a: &Action) {
    match a {
        Action::Commit(_) | Action::Import(_) | Action::ImportFile(..) => {
            let events = match a {
                Action::ImportFile(b, time_order) => file_batch(*b, *time_order),
                Action::Commit(b) | Action::Import(b) => batch(*b),
                _ => unreachable!(),
            };
            for e in events {
                let Some(Some(Value::I64(id))) = e.props.iter().find(|p| p.0 == "id").map(|p| p.1.clone())
                else {
                    unreachable!()
                };
                let mut props: Vec<(String, Value)> = e
                    .props
                    .iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect();
                props.sort_by(|x, y| x.0.cmp(&y.0));
                let stage = e.stage.or_else(|| state.stage_map.get(&e.name).copied());
                state
                    .events
                    .insert(id, (e.customer.clone(), e.ts_us, e.name.clone(), stage, props));
            }
            if let Action::Commit(b) = a {
                let write = profile_write(*b);
                let props = write
                    .props
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                state.profiles.insert(write.customer, props);
            }
        }
        Action::Forget(c) => {
            assert!(
                !state.links.iter().any(|(a, k)| a == c || k == c),
                "the workload forgets unlinked ids only"
            );
            state.events.retain(|_, v| &v.0 != c);
            state.profiles.remove(c);
            for members in state.cohorts.values_mut().flatten() {
                members.remove(c);
            }
        }
        Action::CreateCohort(name, fixed) => {
            let members = fixed.then(|| state.repeat_visitors());
            state.cohorts.insert((*name).to_owned(), members);
        }
        Action::DropCohort(name) => {
            state.cohorts.remove(*name);
        }
        Action::SetStage(name, stage) => {
            match stage {
                Some(s) => state.stage_map.insert((*name).to_owned(), *s),
                None => state.stage_map.remove(*name),
            };
            for row in state.events.values_mut().filter(|row| row.2 == *name) {
                row.3 = *stage;
            }
        }
        Action::Link(anonymous, known) => {
            state.links.insert((*anonymous).to_owned(), (*known).to_owned());
        }
        Action::Unlink(anonymous) => {
            state.links.remove(*anonymous);
        }
        Action::Flush | Action::Compact | Action::Reopen => {}
    }
}

/// Every state the database may legitimately be in: the acknowledged actions applied in order,
/// and each "maybe" action (failed or in flight) either applied or not.
fn allowed(actions: &[(Action, bool)]) -> Vec<State> {
    let mut states = vec![State::default()];
    for (a, maybe) in actions {
        if *maybe {
            let mut with = states.clone();
            with.iter_mut().for_each(|s| apply(s, a));
            for s in with {
                if !states.contains(&s) {
                    states.push(s);
                }
            }
            assert!(states.len() <= 64, "too many uncertain actions");
        } else {
            states.iter_mut().for_each(|s| apply(s, a));
        }
    }
    states
}

/// Under `Sync::Never`, after a power loss with the first `acked` actions acknowledged: any
/// prefix of the actions that holds everything before the last completed flush, import,
/// erasure or reopen (each fsyncs the log), up to the action in flight.
fn allowed_never(actions: &[Action], acked: usize) -> Vec<State> {
    let durable = actions[..acked]
        .iter()
        .rposition(|a| {
            matches!(
                a,
                Action::Flush
                    | Action::Import(_)
                    | Action::ImportFile(..)
                    | Action::Forget(_)
                    | Action::Reopen
                    | Action::CreateCohort(..)
                    | Action::DropCohort(_)
                    | Action::SetStage(..)
                    | Action::Link(..)
                    | Action::Unlink(_)
            )
        })
        .map_or(0, |i| i + 1);
    let mut states = Vec::new();
    for j in durable..=(acked + 1).min(actions.len()) {
        let prefix: Vec<(Action, bool)> = actions[..j].iter().map(|a| (a.clone(), false)).collect();
        for s in allowed(&prefix) {
            if !states.contains(&s) {
                states.push(s);
            }
        }
    }
    states
}

/// Reads everything the database shows and checks it against the allowed states.
fn check(db: &Db, allowed: &[State], what: &str) {
    let snap = db.snapshot();
    let events: Vec<StoredEvent> = snap
        .events()
        .unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
    let links = snap
        .query("LINKS")
        .unwrap_or_else(|e| panic!("{what}: LINKS failed: {e}"));
    let mut seen = State {
        stage_map: db.stage_map().into_iter().collect(),
        links: (links.rows.iter())
            .map(|row| (row[0].to_string(), row[1].to_string()))
            .collect(),
        ..State::default()
    };
    for cohort in snap.cohorts() {
        assert_eq!(cohort.definition, COHORT_SET, "{what}: cohort {}", cohort.name);
        let members = cohort.members.as_ref().map(|ids| {
            ids.iter()
                .map(|c| snap.customer_name(c).unwrap_or_else(|| format!("vacated id {c}")))
                .collect()
        });
        seen.cohorts.insert(cohort.name.clone(), members);
    }
    for e in &events {
        let id = match e.props.iter().find(|p| p.0 == "id") {
            Some((_, Value::I64(id))) => *id,
            _ => panic!("{what}: an event without an id: {e:?}"),
        };
        let v = (
            e.customer.clone(),
            e.ts_us,
            e.name.clone(),
            e.stage,
            e.props.clone(),
        );
        assert!(
            seen.events.insert(id, v).is_none(),
            "{what}: event {id} appears twice"
        );
    }
    for c in 0..CUSTOMERS {
        let customer = format!("cust-{c}");
        let profile = snap
            .customer_profile(&customer)
            .unwrap_or_else(|e| panic!("{what}: profile read failed: {e}"));
        if !profile.is_empty() {
            seen.profiles.insert(customer, profile);
        }
    }
    if !allowed.contains(&seen) {
        for (k, a) in allowed.iter().enumerate() {
            let differ: Vec<_> = (a.events.iter())
                .filter(|(id, row)| seen.events.get(id).is_some_and(|r| r != *row))
                .map(|(id, row)| (id, &row.2, row.3, seen.events.get(id).map(|r| r.3)))
                .collect();
            eprintln!(
                "allowed {k}: map {:?} (seen {:?}); rows that differ {differ:?}",
                a.stage_map, seen.stage_map
            );
        }
        let ids: BTreeSet<&i64> = seen.events.keys().collect();
        let want: Vec<BTreeSet<&i64>> = allowed.iter().map(|s| s.events.keys().collect()).collect();
        panic!(
            "{what}: the database shows events {ids:?}, cohorts {:?} and profiles {:?}; allowed: {want:?} with {:?} and {:?}",
            seen.cohorts,
            seen.profiles,
            allowed.iter().map(|s| &s.cohorts).collect::<Vec<_>>(),
            allowed.iter().map(|s| &s.profiles).collect::<Vec<_>>()
        );
    }
    assert_eq!(snap.len(), seen.events.len() as u64, "{what}: snapshot length");
    // The bitmap index agrees with the rows.
    for stage in Stage::ALL {
        let got: BTreeSet<String> = snap
            .customers_in_stage(stage)
            .iter()
            .map(|c| snap.customer_name(c).unwrap())
            .collect();
        let want: BTreeSet<String> = seen
            .events
            .values()
            .filter(|v| v.3 == Some(stage))
            .map(|v| v.0.clone())
            .collect();
        assert_eq!(got, want, "{what}: {stage}-stage bitmap");
    }
}

/// Runs the workload on `dir` (created beforehand). `mark` is called after every action with
/// the action's index and whether it returned `Ok`. Returns each action with "maybe" set
/// when it failed while the database was still healthy (its effect is then uncertain).
fn run(dir: &Path, mut mark: impl FnMut(usize, bool)) -> (Option<Db>, Vec<(Action, bool)>) {
    let mut db = Db::open(dir, opts()).ok();
    let mut done = Vec::new();
    for (i, a) in workload().into_iter().enumerate() {
        let Some(d) = db.as_ref() else {
            // The database could not be reopened: nothing more happens.
            mark(i, false);
            continue;
        };
        let healthy = d.write_error().is_none();
        let r = match &a {
            Action::Commit(b) => commit(d, *b),
            Action::Import(b) => d.import(staged(*b)).map(|_| ()),
            Action::ImportFile(b, time_order) => import_file(d, *b, *time_order),
            Action::Flush => d.flush(),
            Action::Compact => d.compact().map(|_| ()),
            Action::Forget(c) => d.forget_customer(c).map(|_| ()),
            Action::CreateCohort(name, fixed) => {
                let kind = if *fixed { " STATIC" } else { "" };
                d.query(&format!("CREATE COHORT {name}{kind} AS {COHORT_SET}"))
                    .map(drop)
                    .map_err(journeydb::Error::from)
            }
            Action::DropCohort(name) => d
                .query(&format!("DROP COHORT {name}"))
                .map(drop)
                .map_err(journeydb::Error::from),
            Action::SetStage(name, stage) => d.set_stage(name, *stage),
            Action::Link(anonymous, known) => d.link(&[(anonymous, known)]).map(drop),
            Action::Unlink(anonymous) => d.unlink(anonymous).map(drop),
            Action::Reopen => {
                db = None;
                match Db::open(dir, opts()) {
                    Ok(x) => {
                        db = Some(x);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        mark(i, r.is_ok());
        let effect = matches!(
            a,
            Action::Commit(_)
                | Action::Import(_)
                | Action::ImportFile(..)
                | Action::Forget(_)
                | Action::CreateCohort(..)
                | Action::DropCohort(_)
                | Action::SetStage(..)
                | Action::Link(..)
                | Action::Unlink(_)
        );
        match r {
            Ok(()) => done.push((a, false)),
            Err(_) if !effect => done.push((a, false)),
            // A failure on a database that already refused writes changed nothing.
            Err(_) if !healthy => {}
            Err(_) => done.push((a, true)),
        }
    }
    (db, done)
}

// ------------------------------------------------------------------------------------------
// Power loss: a model of what a disk holds after a power cut.

#[derive(Clone, Debug)]
enum FileOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, usize),
    Unlink(String),
    Rename(String, String),
}

#[derive(Clone, Debug, Default)]
struct Dir {
    durable: BTreeMap<String, usize>,
    current: BTreeMap<String, usize>,
    pending: Vec<DirOp>,
}

#[derive(Clone, Debug)]
enum Rec {
    Create(PathBuf),
    Write(PathBuf, u64, Vec<u8>),
    SetLen(PathBuf, u64),
    Sync(PathBuf),
    SyncDir(PathBuf),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Only fsynced data and directory entries.
    Strict,
    /// Everything written (a process crash).
    All,
    /// Random prefixes of each file's and directory's unsynced operations, last write torn.
    Prefix,
    /// Unsynced writes keep their size but read back as zeros.
    ZeroFill,
    /// Each unsynced operation persisted or not, independently (writeback in any order):
    /// 4 KiB pages of file writes, and directory entries as any subset.
    Scramble,
}

impl Mode {
    /// The mode of the `j`-th image of a crash point: the three fixed modes first, then every
    /// `scramble_every`-th image scrambled and the others random prefixes.
    fn of_image(j: usize, scramble_every: usize) -> Mode {
        match j {
            0 => Mode::Strict,
            1 => Mode::All,
            2 => Mode::ZeroFill,
            j if j.is_multiple_of(scramble_every) => Mode::Scramble,
            _ => Mode::Prefix,
        }
    }
}

fn split(p: &Path) -> (PathBuf, String) {
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    (parent, name)
}

fn apply_file_op(data: &mut Vec<u8>, op: &FileOp, zero: bool, torn: Option<usize>) {
    match op {
        FileOp::Write(off, bytes) => {
            let off = *off as usize;
            let n = torn.unwrap_or(bytes.len()).min(bytes.len());
            if data.len() < off + n {
                data.resize(off + n, 0);
            }
            if zero {
                data[off..off + n].fill(0);
            } else {
                data[off..off + n].copy_from_slice(&bytes[..n]);
            }
        }
        FileOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n as u64).max(1)) as usize
    }
}

#[derive(Clone, Debug, Default)]
struct Sim {
    inodes: Vec<Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
}

impl Sim {
    /// The durable state of a directory tree as it is on disk now.
    fn load(root: &Path) -> Sim {
        let mut sim = Sim::default();
        fn walk(sim: &mut Sim, root: &Path, rel: &Path) {
            sim.dirs.entry(rel.to_path_buf()).or_default();
            for e in std::fs::read_dir(root.join(rel)).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().unwrap().is_dir() {
                    walk(sim, root, &rel.join(&name));
                } else {
                    let data = std::fs::read(e.path()).unwrap();
                    sim.inodes.push(Inode {
                        synced: data.clone(),
                        data,
                        pending: Vec::new(),
                    });
                    let ino = sim.inodes.len() - 1;
                    let d = sim.dirs.get_mut(rel).unwrap();
                    d.durable.insert(name.clone(), ino);
                    d.current.insert(name, ino);
                }
            }
        }
        walk(&mut sim, root, Path::new(""));
        sim
    }

    fn ino(&self, p: &Path) -> usize {
        let (d, n) = split(p);
        *self.dirs[&d]
            .current
            .get(&n)
            .unwrap_or_else(|| panic!("model: no file {}", p.display()))
    }

    fn apply(&mut self, r: &Rec) {
        match r {
            Rec::Create(p) => {
                let (d, n) = split(p);
                self.inodes.push(Inode::default());
                let ino = self.inodes.len() - 1;
                let dir = self.dirs.get_mut(&d).unwrap();
                assert!(
                    dir.current.insert(n.clone(), ino).is_none(),
                    "model: create over {}",
                    p.display()
                );
                dir.pending.push(DirOp::Link(n, ino));
            }
            Rec::Write(p, off, bytes) => {
                let i = self.ino(p);
                let node = &mut self.inodes[i];
                assert!(
                    *off as usize <= node.data.len(),
                    "model: write past the end of {}",
                    p.display()
                );
                let op = FileOp::Write(*off, bytes.clone());
                apply_file_op(&mut node.data, &op, false, None);
                node.pending.push(op);
            }
            Rec::SetLen(p, len) => {
                let i = self.ino(p);
                let node = &mut self.inodes[i];
                let op = FileOp::SetLen(*len);
                apply_file_op(&mut node.data, &op, false, None);
                node.pending.push(op);
            }
            Rec::Sync(p) => {
                let i = self.ino(p);
                let node = &mut self.inodes[i];
                node.synced = node.data.clone();
                node.pending.clear();
            }
            Rec::SyncDir(d) => {
                let dir = self.dirs.get_mut(d).unwrap();
                dir.durable = dir.current.clone();
                dir.pending.clear();
            }
            Rec::Rename(from, to) => {
                let (d, a) = split(from);
                let (d2, b) = split(to);
                assert_eq!(d, d2, "model: rename across directories");
                let dir = self.dirs.get_mut(&d).unwrap();
                let ino = dir.current.remove(&a).unwrap();
                dir.current.insert(b.clone(), ino);
                dir.pending.push(DirOp::Rename(a, b));
            }
            Rec::Remove(p) => {
                let (d, n) = split(p);
                let dir = self.dirs.get_mut(&d).unwrap();
                if dir.current.remove(&n).is_some() {
                    dir.pending.push(DirOp::Unlink(n));
                }
            }
        }
    }

    /// Number of unsynced operations (a crash point with none has only one image).
    fn unsynced(&self) -> usize {
        self.inodes.iter().map(|i| i.pending.len()).sum::<usize>()
            + self.dirs.values().map(|d| d.pending.len()).sum::<usize>()
    }

    /// Writes a crash image into `out` (which must not exist).
    fn image(&self, mode: Mode, rng: &mut Rng, out: &Path) {
        for (rel, dir) in &self.dirs {
            std::fs::create_dir_all(out.join(rel)).unwrap();
            let mut names = dir.durable.clone();
            // Which unsynced directory operations reached the disk: none, all, a prefix, or
            // (Scramble) any subset — a file system that reorders its metadata writes.
            let persisted: Vec<bool> = match mode {
                Mode::Strict | Mode::ZeroFill => vec![false; dir.pending.len()],
                Mode::All => vec![true; dir.pending.len()],
                Mode::Prefix => {
                    let keep = rng.below(dir.pending.len() + 1);
                    (0..dir.pending.len()).map(|i| i < keep).collect()
                }
                Mode::Scramble => dir.pending.iter().map(|_| rng.next() & 1 == 0).collect(),
            };
            let kept = dir.pending.iter().zip(&persisted).filter(|(_, p)| **p);
            for (op, _) in kept {
                match op {
                    DirOp::Link(n, i) => {
                        names.insert(n.clone(), *i);
                    }
                    DirOp::Unlink(n) => {
                        names.remove(n);
                    }
                    DirOp::Rename(a, b) => {
                        if let Some(i) = names.remove(a) {
                            names.insert(b.clone(), i);
                        }
                    }
                }
            }
            for (name, &i) in &names {
                let node = &self.inodes[i];
                let mut data = node.synced.clone();
                match mode {
                    Mode::Strict => {}
                    Mode::All => data = node.data.clone(),
                    Mode::ZeroFill => node
                        .pending
                        .iter()
                        .for_each(|op| apply_file_op(&mut data, op, true, None)),
                    Mode::Prefix => {
                        let k = rng.below(node.pending.len() + 1);
                        for op in &node.pending[..k] {
                            apply_file_op(&mut data, op, false, None);
                        }
                        if let Some(FileOp::Write(_, bytes)) = node.pending.get(k) {
                            let torn = rng.below(bytes.len());
                            apply_file_op(&mut data, &node.pending[k], false, Some(torn));
                        }
                    }
                    Mode::Scramble => {
                        // Writeback persists 4 KiB pages in any order: each page of each
                        // unsynced write independently.
                        for op in &node.pending {
                            match op {
                                FileOp::Write(off, bytes) => {
                                    let mut at = *off as usize;
                                    let end = at + bytes.len();
                                    while at < end {
                                        let page_end = ((at / 4096) + 1) * 4096;
                                        let stop = page_end.min(end);
                                        if rng.next() & 1 == 0 {
                                            let piece =
                                                bytes[at - *off as usize..stop - *off as usize].to_vec();
                                            apply_file_op(
                                                &mut data,
                                                &FileOp::Write(at as u64, piece),
                                                false,
                                                None,
                                            );
                                        } else if data.len() < stop {
                                            data.resize(stop, 0);
                                        }
                                        at = stop;
                                    }
                                }
                                FileOp::SetLen(_) => apply_file_op(&mut data, op, false, None),
                            }
                        }
                    }
                }
                std::fs::write(out.join(rel).join(name), data).unwrap();
            }
        }
    }
}

/// Records every operation under `root`.
struct Recorder {
    root: PathBuf,
    log: Mutex<Vec<Rec>>,
}

impl Recorder {
    fn rel(&self, p: &Path) -> Option<PathBuf> {
        p.strip_prefix(&self.root).ok().map(Path::to_path_buf)
    }
}

impl Hook for Recorder {
    fn on(&self, op: &Op<'_>) -> Inject {
        let rec = match op {
            Op::Create(p) => self.rel(p).map(Rec::Create),
            Op::Write { path, offset, data } => self.rel(path).map(|p| Rec::Write(p, *offset, data.to_vec())),
            Op::SetLen { path, len } => self.rel(path).map(|p| Rec::SetLen(p, *len)),
            Op::Sync(p) => self.rel(p).map(Rec::Sync),
            Op::SyncDir(p) => self.rel(p).map(Rec::SyncDir),
            Op::Rename { from, to } => self.rel(from).zip(self.rel(to)).map(|(a, b)| Rec::Rename(a, b)),
            Op::Remove(p) => self.rel(p).map(Rec::Remove),
            _ => None,
        };
        if let Some(r) = rec {
            self.log.lock().unwrap().push(r);
        }
        Inject::Proceed
    }
}

fn images_wanted() -> usize {
    std::env::var("JOURNEYDB_POWERLOSS_IMAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn power_loss_images() {
    let _serial = serial();
    SYNC_NEVER.store(false, Ordering::SeqCst);
    power_loss(images_wanted(), false);
}

/// `Sync::Never`: an acknowledged commit is durable only once a later flush, erasure or clean
/// close has fsynced the log; after a power loss the database holds a prefix of the commits
/// that contains at least those.
#[test]
fn power_loss_images_sync_never() {
    let _serial = serial();
    SYNC_NEVER.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(|| power_loss(images_wanted() / 4, true));
    SYNC_NEVER.store(false, Ordering::SeqCst);
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

fn power_loss(want: usize, never: bool) {
    let tmp = scratch();
    let root = tmp.path().join("db");
    drop(Db::create(&root, opts()).unwrap());
    let base = Sim::load(&root);
    let rec = Arc::new(Recorder {
        root: root.clone(),
        log: Mutex::new(Vec::new()),
    });
    file::set_hook(Some(rec.clone()));
    // ops_done[i] = number of operations logged when action i returned.
    let mut ops_done = Vec::new();
    let (db, done) = run(&root, |_, ok| {
        assert!(ok, "the workload must succeed without faults");
        ops_done.push(rec.log.lock().unwrap().len());
    });
    drop(db);
    file::set_hook(None);
    let log = rec.log.lock().unwrap().clone();
    let actions: Vec<Action> = done.into_iter().map(|(a, _)| a).collect();

    // The model must end where the real directory ended.
    let mut sim = base.clone();
    log.iter().for_each(|r| sim.apply(r));
    let end = tmp.path().join("end");
    sim.image(Mode::All, &mut Rng(0), &end);
    for (rel, dir) in &sim.dirs {
        for (name, &i) in &dir.current {
            let real = std::fs::read(root.join(rel).join(name)).unwrap();
            assert_eq!(
                real, sim.inodes[i].data,
                "model disagrees with the disk on {name}"
            );
        }
    }

    // Crash points with unsynced operations get many images; the others have only one.
    let mut probe = base.clone();
    let mut busy = usize::from(probe.unsynced() > 0);
    for r in &log {
        probe.apply(r);
        busy += usize::from(probe.unsynced() > 0);
    }
    let per_point = want.div_ceil(busy.max(1)).max(1);
    let mut rng = Rng(0x5eed);
    let mut sim = base;
    let mut images = 0usize;
    let img = tmp.path().join("img");
    for k in 0..=log.len() {
        if k > 0 {
            sim.apply(&log[k - 1]);
        }
        // Actions acknowledged by now, and the one in flight.
        let acked = ops_done.iter().take_while(|&&n| n <= k).count();
        let mut uncertain: Vec<(Action, bool)> =
            actions[..acked].iter().map(|a| (a.clone(), false)).collect();
        if let Some(a) = actions.get(acked) {
            uncertain.push((a.clone(), true));
        }
        let allowed = if never {
            allowed_never(&actions, acked)
        } else {
            allowed(&uncertain)
        };
        let n = if sim.unsynced() == 0 { 1 } else { per_point };
        for j in 0..n {
            let mode = Mode::of_image(j, 3);
            let _ = std::fs::remove_dir_all(&img);
            sim.image(mode, &mut rng, &img);
            let what = format!(
                "crash after operation {k} of {} ({mode:?}, image {images})",
                log.len()
            );
            let db = Db::open(&img, opts()).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check(&db, &allowed, &what);
            if images.is_multiple_of(16) {
                // Recovery leaves a writable database that keeps what it is given.
                commit(&db, 1000).unwrap_or_else(|e| panic!("{what}: commit after recovery: {e}"));
                drop(db);
                let db = Db::open(&img, opts()).unwrap_or_else(|e| panic!("{what}: second reopen: {e}"));
                let kept = db
                    .snapshot()
                    .events()
                    .unwrap()
                    .iter()
                    .any(|e| e.props.iter().any(|p| p.0 == "id" && p.1 == Value::I64(100_000)));
                assert!(kept, "{what}: the commit after recovery is gone");
            }
            images += 1;
        }
    }
    eprintln!(
        "power loss ({}): {images} crash images over {} operations of {} actions; 0 lost, 0 duplicated",
        if never { "Sync::Never" } else { "Sync::EveryCommit" },
        log.len(),
        actions.len()
    );
    assert!(images >= want, "{images} images, {want} wanted");
}

// ------------------------------------------------------------------------------------------
// Power loss after a crash and a reopen: two sessions, the page cache shared between them.

/// Records every operation like [`Recorder`] and, once `armed`, fails the first fsync of a log
/// file: the commit in flight has written its record to the page cache, and the process is
/// taken to die there (nothing after it runs against this directory).
struct CrashBeforeLogSync {
    rec: Recorder,
    armed: AtomicBool,
}

impl Hook for CrashBeforeLogSync {
    fn on(&self, op: &Op<'_>) -> Inject {
        if let Op::Sync(p) = op
            && self.armed.load(Ordering::SeqCst)
            && p.parent().is_some_and(|d| d.ends_with("wal"))
        {
            self.armed.store(false, Ordering::SeqCst);
            return Inject::Fail(io::Error::other("the process dies here"));
        }
        self.rec.on(op)
    }
}

/// What the second session does after reopening.
#[derive(Clone, Copy, Debug)]
enum SecondSession {
    /// Five acknowledged commits, then a clean close.
    Commits,
    /// A query, then a clean close (the shell's one-shot `-c`).
    QueryOnly,
    /// Commits, a flush (the log rotates), more commits.
    CommitsAndFlush,
}

/// How the second session finds the disk.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// As the first writer's process left it: its unsynced writes in the page cache.
    PageCache,
    /// After a power cut that zero-filled the first writer's unsynced writes: the second
    /// session's open repairs a torn tail (truncates and fsyncs it).
    PowerCut,
}

/// Issue 33 §1: writer 1 dies inside a commit after its log write and before its fsync
/// (`Sync::Never`: after a commit), so its record is only in the page cache; writer 2 opens
/// the same page cache (or the disk after a power cut, repairing the torn tail), works and
/// closes; then the power is cut at every operation of writer 2, with every crash-image mode.
/// Every batch acknowledged by either writer must be there (the in-flight one all or
/// nothing), and the database must open.
#[test]
fn power_loss_after_a_crash_and_reopen() {
    let _serial = serial();
    let mut images = 0;
    for never in [false, true] {
        SYNC_NEVER.store(never, Ordering::SeqCst);
        let variants = [
            SecondSession::Commits,
            SecondSession::QueryOnly,
            SecondSession::CommitsAndFlush,
        ]
        .into_iter()
        .flat_map(|second| [(second, Start::PageCache), (second, Start::PowerCut)]);
        for (second, start) in variants {
            let r = std::panic::catch_unwind(|| crash_reopen_power_loss(second, start));
            SYNC_NEVER.store(false, Ordering::SeqCst);
            file::set_hook(None);
            match r {
                Ok(n) => images += n,
                Err(e) => std::panic::resume_unwind(e),
            }
            SYNC_NEVER.store(never, Ordering::SeqCst);
        }
    }
    SYNC_NEVER.store(false, Ordering::SeqCst);
    eprintln!("power loss after a crash and a reopen: {images} crash images; 0 lost, 0 duplicated");
}

/// One variant of [`power_loss_after_a_crash_and_reopen`]; returns the number of images.
fn crash_reopen_power_loss(second: SecondSession, start: Start) -> usize {
    let never = SYNC_NEVER.load(Ordering::SeqCst);
    let tmp = scratch();
    let first_dir = tmp.path().join("first");
    drop(Db::create(&first_dir, opts()).unwrap());
    let base = Sim::load(&first_dir);
    // Session 1: commits with a flush among them, then the crash.
    let hook = Arc::new(CrashBeforeLogSync {
        rec: Recorder {
            root: first_dir.clone(),
            log: Mutex::new(Vec::new()),
        },
        armed: AtomicBool::new(false),
    });
    file::set_hook(Some(hook.clone()));
    let db = Db::open(&first_dir, opts()).unwrap();
    let mut actions = Vec::new();
    for b in 0..6 {
        commit(&db, b).unwrap();
        actions.push(Action::Commit(b));
        if b == 2 {
            db.flush().unwrap();
            actions.push(Action::Flush);
        }
    }
    hook.armed.store(true, Ordering::SeqCst);
    let crashed = commit(&db, 6);
    assert_eq!(
        crashed.is_err(),
        !never,
        "the crash hook must stop the commit's fsync"
    );
    actions.push(Action::Commit(6));
    let in_flight = actions.len() - 1;
    // The process dies: what it wrote stays in the page cache, nothing more reaches the
    // directory the model follows.
    let first_log = hook.rec.log.lock().unwrap().clone();
    file::set_hook(None);
    drop(db);
    let mut sim = base;
    first_log.iter().for_each(|r| sim.apply(r));

    // Session 2 runs on the page cache as session 1 left it, or on what a power cut left.
    let root = tmp.path().join("db");
    if let Start::PowerCut = start {
        sim.image(Mode::ZeroFill, &mut Rng(0), &root);
        sim = Sim::load(&root);
        if never {
            // Only what the flush made durable survived the cut.
            let flushed = actions
                .iter()
                .rposition(|a| *a == Action::Flush)
                .map_or(0, |i| i + 1);
            actions.truncate(flushed);
        }
    } else {
        sim.image(Mode::All, &mut Rng(0), &root);
    }
    let rec = Arc::new(Recorder {
        root: root.clone(),
        log: Mutex::new(Vec::new()),
    });
    file::set_hook(Some(rec.clone()));
    let mut ops_done = Vec::new();
    let db = Db::open(&root, opts()).unwrap();
    let first_actions = actions.len();
    actions.push(Action::Reopen);
    ops_done.push(rec.log.lock().unwrap().len());
    let second_actions: Vec<Action> = match second {
        SecondSession::Commits => (10..15).map(Action::Commit).collect(),
        SecondSession::QueryOnly => vec![],
        SecondSession::CommitsAndFlush => {
            let mut v: Vec<Action> = (10..13).map(Action::Commit).collect();
            v.push(Action::Flush);
            v.extend((13..15).map(Action::Commit));
            v
        }
    };
    if matches!(second, SecondSession::QueryOnly) {
        db.snapshot().query("TREND count PERIOD month").unwrap();
    }
    for a in second_actions {
        match &a {
            Action::Commit(b) => commit(&db, *b).unwrap(),
            Action::Flush => db.flush().unwrap(),
            _ => unreachable!(),
        }
        actions.push(a);
        ops_done.push(rec.log.lock().unwrap().len());
    }
    drop(db);
    file::set_hook(None);
    let log = rec.log.lock().unwrap().clone();

    let mut rng = Rng(0xc0ffee ^ log.len() as u64);
    let img = tmp.path().join("img");
    let mut images = 0;
    for k in 0..=log.len() {
        if k > 0 {
            sim.apply(&log[k - 1]);
        }
        let acked = first_actions + ops_done.iter().take_while(|&&n| n <= k).count();
        let allowed = if never {
            allowed_never(&actions, acked)
        } else {
            let mut uncertain: Vec<(Action, bool)> = actions[..acked]
                .iter()
                .enumerate()
                .map(|(i, a)| (a.clone(), i == in_flight))
                .collect();
            if let Some(a) = actions.get(acked) {
                uncertain.push((a.clone(), true));
            }
            allowed(&uncertain)
        };
        let n = if sim.unsynced() == 0 { 1 } else { 24 };
        for j in 0..n {
            let mode = Mode::of_image(j, 2);
            let _ = std::fs::remove_dir_all(&img);
            sim.image(mode, &mut rng, &img);
            let what = format!(
                "{second:?} from {start:?}, never={never}: power cut after operation {k} of {} of the second session ({mode:?}, image {images})",
                log.len()
            );
            let db = Db::open(&img, opts()).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check(&db, &allowed, &what);
            images += 1;
        }
    }
    images
}

// ------------------------------------------------------------------------------------------
// I/O faults.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// The n-th mutating operation fails with EIO.
    Fail,
    /// The n-th write writes half its bytes, then fails.
    Torn,
    /// Every write, create or growing truncate from the n-th write on fails with ENOSPC.
    DiskFull,
}

struct Injector {
    fault: Fault,
    at: usize,
    seen: AtomicUsize,
    full: AtomicBool,
    hits: AtomicUsize,
}

fn mutating(op: &Op<'_>) -> bool {
    !matches!(op, Op::Read(_))
}

impl Hook for Injector {
    fn on(&self, op: &Op<'_>) -> Inject {
        let eligible = match self.fault {
            Fault::Fail => mutating(op),
            Fault::Torn | Fault::DiskFull => matches!(op, Op::Write { .. }),
        };
        if eligible && self.seen.fetch_add(1, Ordering::SeqCst) == self.at {
            self.hits.fetch_add(1, Ordering::SeqCst);
            match self.fault {
                Fault::Fail => return Inject::Fail(io::Error::other("injected EIO")),
                Fault::Torn => {
                    let Op::Write { data, .. } = op else {
                        unreachable!()
                    };
                    return Inject::Short(data.len() / 2);
                }
                Fault::DiskFull => self.full.store(true, Ordering::SeqCst),
            }
        }
        if self.full.load(Ordering::SeqCst) {
            let grows = matches!(op, Op::Write { .. } | Op::Create(_) | Op::SetLen { .. });
            if grows {
                self.hits.fetch_add(1, Ordering::SeqCst);
                return Inject::Fail(io::Error::from_raw_os_error(28));
            }
        }
        Inject::Proceed
    }
}

/// Counts the eligible operations of a fault-free run.
fn count_ops(fault: Fault) -> usize {
    let tmp = scratch();
    let dir = tmp.path().join("db");
    drop(Db::create(&dir, opts()).unwrap());
    let inj = Arc::new(Injector {
        fault,
        at: usize::MAX,
        seen: AtomicUsize::new(0),
        full: AtomicBool::new(false),
        hits: AtomicUsize::new(0),
    });
    file::set_hook(Some(inj.clone()));
    let (db, _) = run(&dir, |_, ok| assert!(ok));
    // Not the best-effort fsync of the log when the handle is dropped: no caller sees it.
    let n = inj.seen.load(Ordering::SeqCst);
    drop(db);
    file::set_hook(None);
    n
}

// One test per fault kind: a runner that gives each test its own process (cargo-nextest, as
// `mutants/run` uses) runs them side by side; `cargo test` still runs them one at a time.
#[test]
fn io_fault_sweep_eio() {
    io_fault_sweep(Fault::Fail);
}

#[test]
fn io_fault_sweep_torn() {
    io_fault_sweep(Fault::Torn);
}

#[test]
fn io_fault_sweep_disk_full() {
    io_fault_sweep(Fault::DiskFull);
}

fn io_fault_sweep(fault: Fault) {
    let _serial = serial();
    let mut runs = 0;
    let mut failed_actions = 0;
    {
        let total = count_ops(fault);
        assert!(total > 50, "{fault:?}: only {total} operations");
        for at in 0..total {
            let what = format!("{fault:?} at operation {at} of {total}");
            let tmp = scratch();
            let dir = tmp.path().join("db");
            drop(Db::create(&dir, opts()).unwrap());
            let inj = Arc::new(Injector {
                fault,
                at,
                seen: AtomicUsize::new(0),
                full: AtomicBool::new(false),
                hits: AtomicUsize::new(0),
            });
            file::set_hook(Some(inj.clone()));
            let mut errors = 0;
            let (db, done) = run(&dir, |_, ok| errors += usize::from(!ok));
            // The fault reached journeydb, and surfaced as an error (never a panic, never silence).
            assert!(
                inj.hits.load(Ordering::SeqCst) > 0,
                "{what}: the fault was not hit"
            );
            failed_actions += errors;
            let allowed = allowed(&done);
            if let Some(db) = &db {
                // Reads keep working (poisoned or not) and show a legitimate state.
                check(db, &allowed, &format!("{what}, live handle"));
            }
            // Space returns / the device recovers.
            file::set_hook(None);
            let mut allowed = allowed;
            if let Some(db) = &db
                && db.write_error().is_none()
            {
                // A healthy handle keeps working once the fault is gone.
                commit(db, 1000).unwrap_or_else(|e| panic!("{what}: commit after the fault: {e}"));
                db.flush()
                    .unwrap_or_else(|e| panic!("{what}: flush after the fault: {e}"));
                db.compact()
                    .unwrap_or_else(|e| panic!("{what}: compact after the fault: {e}"));
                allowed.iter_mut().for_each(|s| apply(s, &Action::Commit(1000)));
                check(db, &allowed, &format!("{what}, after the fault"));
            }
            drop(db);
            let db = Db::open(&dir, opts()).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            check(&db, &allowed, &format!("{what}, reopened"));
            commit(&db, 1001).unwrap_or_else(|e| panic!("{what}: commit after reopen: {e}"));
            runs += 1;
        }
    }
    eprintln!("I/O faults ({fault:?}): {runs} runs, {failed_actions} failed actions; 0 lost, 0 duplicated");
}

#[test]
fn read_fault_sweep() {
    let _serial = serial();
    let tmp = scratch();
    let dir = tmp.path().join("db");
    drop(Db::create(&dir, opts()).unwrap());
    let (db, done) = run(&dir, |_, ok| assert!(ok));
    // Leave a log tail to replay as well as segments.
    let db = db.unwrap();
    commit(&db, 500).unwrap();
    drop(db);
    let mut done: Vec<(Action, bool)> = done;
    done.push((Action::Commit(500), false));
    let allowed = allowed(&done);
    struct FailRead {
        at: usize,
        seen: AtomicUsize,
    }
    impl Hook for FailRead {
        fn on(&self, op: &Op<'_>) -> Inject {
            if matches!(op, Op::Read(_)) && self.seen.fetch_add(1, Ordering::SeqCst) == self.at {
                return Inject::Fail(io::Error::other("injected read error"));
            }
            Inject::Proceed
        }
    }
    let mut at = 0;
    loop {
        let hook = Arc::new(FailRead {
            at,
            seen: AtomicUsize::new(0),
        });
        file::set_hook(Some(hook.clone()));
        let r = Db::open(&dir, opts());
        file::set_hook(None);
        if hook.seen.load(Ordering::SeqCst) <= at {
            // Every read of an open has failed once.
            assert!(at > 3, "only {at} reads");
            eprintln!("read faults: each of the {at} reads of an open failed in turn; 0 lost");
            break;
        }
        match r {
            Err(e) => assert!(e.to_string().contains("injected read error"), "read {at}: {e}"),
            Ok(db) => check(&db, &allowed, &format!("read {at} failed but the open succeeded")),
        }
        let db = Db::open(&dir, opts()).unwrap_or_else(|e| panic!("after read fault {at}: {e}"));
        check(&db, &allowed, &format!("after read fault {at}"));
        at += 1;
    }
}

/// The torn-tail rule, by hand: a damaged record followed by intact ones is a torn tail when
/// the later records were written before it was durable (`Sync::Never`: nothing was), and
/// corruption when a later record shows it was already durable (`Sync::EveryCommit`).
#[test]
fn damaged_record_followed_by_intact_ones() {
    let _serial = serial();
    for (sync, torn) in [(Sync::Never, true), (Sync::EveryCommit, false)] {
        let tmp = scratch();
        let dir = tmp.path().join("db");
        let db = Db::create(&dir, Options::default().sync(sync)).unwrap();
        for b in 0..3 {
            commit(&db, b).unwrap();
        }
        drop(db);
        let wal_dir = dir.join("wal");
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&wal_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::metadata(p).unwrap().len() > 16)
            .collect();
        logs.sort();
        let log = logs.pop().unwrap();
        let mut bytes = std::fs::read(&log).unwrap();
        // The first record's payload starts after the 16-byte header and its 8-byte frame header.
        bytes[16 + 8 + 5] ^= 0x40;
        std::fs::write(&log, &bytes).unwrap();
        let r = Db::open(&dir, Options::default().sync(sync));
        if torn {
            let db = r.unwrap();
            assert_eq!(db.snapshot().len(), 0, "{sync:?}: the torn tail is dropped whole");
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("offset 16") && e.contains("shows it was durable"),
                "{sync:?}: {e}"
            );
        }
    }
}

/// Fails every background sync of a segment (`Op::SyncAhead`), counting them.
struct FailSyncAhead {
    hits: AtomicUsize,
}

impl Hook for FailSyncAhead {
    fn on(&self, op: &Op<'_>) -> Inject {
        if matches!(op, Op::SyncAhead(_)) {
            self.hits.fetch_add(1, Ordering::SeqCst);
            return Inject::Fail(io::Error::other("injected EIO in a sync ahead"));
        }
        Inject::Proceed
    }
}

/// A segment large enough to be synced ahead of its final fsync (over 1 MiB: random amounts
/// and timestamps do not compress).
fn large_import() -> Vec<Event> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..160_000u32)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Event::new(
                format!("big-{:05}", i / 40),
                1_767_225_600_000_000 + (x % 10_000_000_000) as i64,
                ["visit", "add_to_cart", "purchase"][(x >> 40) as usize % 3],
            )
            .with_prop("amount", (x >> 11) as f64 / 7.0)
        })
        .collect()
}

/// A failed sync ahead fails the import that wrote the segment even though the final fsync
/// succeeds (after a failed fsync the kernel may have dropped the pages it could not write,
/// and a later fsync need not say so): the error names the segment file, none of the import is
/// visible, before or after reopening, and the same import succeeds once the disk does.
#[test]
fn failed_sync_ahead_fails_the_import() {
    let _serial = serial();
    let tmp = scratch();
    let dir = tmp.path().join("db");
    let events = large_import();
    let db = Db::create(&dir, Options::default()).unwrap();
    let hook = Arc::new(FailSyncAhead {
        hits: AtomicUsize::new(0),
    });
    file::set_hook(Some(hook.clone()));
    let r = db.import(common::stage(&events));
    file::set_hook(None);
    let e = r.expect_err("the import must fail with its sync ahead");
    assert!(
        hook.hits.load(Ordering::SeqCst) > 0,
        "no sync ahead was asked for"
    );
    let text = e.to_string();
    assert!(
        text.contains("seg") && text.contains("injected EIO in a sync ahead"),
        "{text}"
    );
    assert_eq!(db.snapshot().len(), 0);
    drop(db);
    let db = Db::open(&dir, Options::default()).unwrap();
    assert_eq!(db.snapshot().len(), 0);
    let segs = std::fs::read_dir(dir.join("seg")).unwrap().count();
    assert_eq!(segs, 0, "the failed segment was left behind");
    db.import(common::stage(&events)).unwrap();
    assert_eq!(db.snapshot().len(), events.len() as u64);
    drop(db);
    let db = Db::open(&dir, Options::default()).unwrap();
    assert_eq!(db.snapshot().len(), events.len() as u64);
}

/// Records like [`Recorder`]; once armed, holds the first fsync of a log file (already
/// recorded: the model takes it as started) until another commit has written its record.
struct HoldFirstLogSync {
    rec: Recorder,
    armed: AtomicBool,
    /// (the fsync started, the other record was written)
    state: Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Hook for HoldFirstLogSync {
    fn on(&self, op: &Op<'_>) -> Inject {
        let inject = self.rec.on(op);
        let in_wal = |p: &Path| p.parent().is_some_and(|d| d.ends_with("wal"));
        match op {
            Op::Sync(p) if in_wal(p) && self.armed.swap(false, Ordering::SeqCst) => {
                let mut st = self.state.lock().unwrap();
                st.0 = true;
                self.changed.notify_all();
                let deadline = std::time::Duration::from_secs(10);
                let (st, timeout) = self.changed.wait_timeout_while(st, deadline, |s| !s.1).unwrap();
                assert!(!timeout.timed_out() && st.1, "the second commit never wrote");
            }
            Op::Write { path, .. } if in_wal(path) => {
                let mut st = self.state.lock().unwrap();
                if st.0 && !st.1 {
                    st.1 = true;
                    self.changed.notify_all();
                }
            }
            _ => {}
        }
        inject
    }
}

/// Group commit (issue 35): an fsync covers only the records written before it started. A
/// commit whose record is written while another commit's fsync runs must wait for an fsync of
/// its own; then a power cut right after both commits return keeps both.
#[test]
fn a_record_written_during_an_fsync_waits_for_the_next_one() {
    let _serial = serial();
    let tmp = scratch();
    let root = tmp.path().join("db");
    drop(Db::create(&root, Options::default()).unwrap());
    let base = Sim::load(&root);
    let hook = Arc::new(HoldFirstLogSync {
        rec: Recorder {
            root: root.clone(),
            log: Mutex::new(Vec::new()),
        },
        armed: AtomicBool::new(false),
        state: Mutex::new((false, false)),
        changed: std::sync::Condvar::new(),
    });
    file::set_hook(Some(hook.clone()));
    let db = Arc::new(Db::open(&root, Options::default()).unwrap());
    hook.armed.store(true, Ordering::SeqCst);
    let first = {
        let db = db.clone();
        std::thread::spawn(move || commit(&db, 0).map(drop))
    };
    let second = {
        let (db, hook) = (db.clone(), hook.clone());
        std::thread::spawn(move || {
            let st = hook.state.lock().unwrap();
            drop(hook.changed.wait_while(st, |s| !s.0).unwrap());
            commit(&db, 1).map(drop)
        })
    };
    first.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    // Both acknowledged: cut the power now.
    let log = hook.rec.log.lock().unwrap().clone();
    file::set_hook(None);
    let mut sim = base;
    log.iter().for_each(|r| sim.apply(r));
    let img = tmp.path().join("img");
    sim.image(Mode::Strict, &mut Rng(0), &img);
    let reopened = Db::open(&img, Options::default()).unwrap();
    let mut state = State::default();
    apply(&mut state, &Action::Commit(0));
    apply(&mut state, &Action::Commit(1));
    check(&reopened, &[state], "power cut after two overlapping commits");
    drop(db);
}

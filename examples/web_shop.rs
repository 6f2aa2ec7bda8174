//! journeydb embedded in a small web-shop backend: request handlers on several threads record
//! what each shopper does (one batch per request, group commit, so a returned commit is durable),
//! while a reporting thread reads the week's funnel from a snapshot every few hundred
//! milliseconds, as a dashboard would. At the end the shop closes, reopens the database and
//! checks that every acknowledged event is there.
//!
//! `cargo run --example web_shop [DIR]` (the default is a temporary directory; CI builds and runs it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use journeydb::{Db, Event, Options, ProfileUpdate, Query, Stage, Sync};

/// The shop's request handlers.
const HANDLERS: u64 = 4;
/// Shoppers each handler serves.
const SHOPPERS_PER_HANDLER: u64 = 250;

/// One shopper's visit as the handlers see it: a landing page, product views, maybe a cart and
/// a purchase, each a request that commits its event before answering.
fn serve_shopper(db: &Db, handler: u64, shopper: u64, committed: &AtomicU64) -> journeydb::Result<()> {
    let customer = format!("shopper-{handler}-{shopper}");
    let channel = ["web", "mobile", "store"][(shopper % 3) as usize];
    // A cheap deterministic "randomness": how far this shopper gets.
    let depth = (shopper * 7 + handler * 3) % 10;
    let mut requests =
        vec![Event::at_system_time(&customer, SystemTime::now(), "visit").with_prop("channel", channel)];
    for _ in 0..(1 + depth % 3) {
        requests.push(Event::at_system_time(
            &customer,
            SystemTime::now(),
            "view_product",
        ));
    }
    if depth >= 4 {
        requests.push(Event::at_system_time(&customer, SystemTime::now(), "add_to_cart"));
    }
    if depth >= 6 {
        let amount = 20.0 + (shopper % 50) as f64;
        requests.push(
            Event::at_system_time(&customer, SystemTime::now(), "purchase").with_prop("amount", amount),
        );
    }
    for (index, event) in requests.into_iter().enumerate() {
        if index == 0 {
            // Sign-up on the first request: the customer's profile, atomic with the event.
            let mut batch = db.batch();
            batch.set_profile(ProfileUpdate::new(&customer, event.ts_us).with_prop("plan", "free"));
            batch.append(event);
            batch.commit()?;
        } else {
            db.commit(&[event])?;
        }
        committed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The dashboard: the funnel from a consistent snapshot while the handlers write.
fn report(db: &Db) -> journeydb::Result<String> {
    let funnel = db
        .snapshot()
        .query("FUNNEL visit -> add_to_cart -> purchase WITHIN 1d")?;
    let step = |row: usize| {
        funnel
            .records()
            .nth(row)
            .and_then(|record| record.get("customers").and_then(|cell| cell.as_i64()))
            .unwrap_or(0)
    };
    let conversion = funnel
        .records()
        .last()
        .and_then(|record| record.get("conversion_from_first").and_then(|cell| cell.as_f64()))
        .unwrap_or(0.0);
    Ok(format!(
        "visitors {:>5}  carts {:>5}  buyers {:>5}  conversion {:>5.1}%",
        step(0),
        step(1),
        step(2),
        conversion * 100.0
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| scratch.path().join("shop.journeydb"), Into::into);
    let options = Options::default().sync(Sync::Group(Duration::from_millis(2)));
    let db = Arc::new(Db::create(&path, options.clone())?);
    db.set_stages(&[
        ("visit", Some(Stage::Awareness)),
        ("view_product", Some(Stage::Consideration)),
        ("add_to_cart", Some(Stage::Consideration)),
        ("purchase", Some(Stage::Purchase)),
    ])?;
    let committed = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicBool::new(true));
    let reporter = {
        let (db, open) = (Arc::clone(&db), Arc::clone(&open));
        thread::spawn(move || -> journeydb::Result<usize> {
            let mut reports = 0;
            while open.load(Ordering::Acquire) {
                println!("dashboard: {}", report(&db)?);
                reports += 1;
                thread::sleep(Duration::from_millis(200));
            }
            Ok(reports)
        })
    };
    let handlers: Vec<_> = (0..HANDLERS)
        .map(|handler| {
            let (db, committed) = (Arc::clone(&db), Arc::clone(&committed));
            thread::spawn(move || -> journeydb::Result<()> {
                (0..SHOPPERS_PER_HANDLER)
                    .try_for_each(|shopper| serve_shopper(&db, handler, shopper, &committed))
            })
        })
        .collect();
    for handler in handlers {
        handler.join().map_err(|_| "a handler panicked")??;
    }
    open.store(false, Ordering::Release);
    let reports = reporter.join().map_err(|_| "the reporter panicked")??;
    println!("closing:   {}", report(&db)?);
    let acknowledged = committed.load(Ordering::Relaxed);
    drop(db);
    // Every acknowledged event survives a close and reopen.
    let reopened = Db::open(&path, options)?;
    let stored = reopened.stats().events;
    println!(
        "{acknowledged} events acknowledged by {HANDLERS} handlers, {stored} stored after reopening; {reports} dashboard reports"
    );
    if stored != acknowledged {
        return Err(format!("{stored} events stored, {acknowledged} acknowledged").into());
    }
    Ok(())
}

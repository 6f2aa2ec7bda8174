//! The `journeydb` command (minimal for now: `example` and `stats`).

use std::process::ExitCode;

use journeydb::{Db, Event, Options, Query, Stage, Sync};

fn usage() -> ExitCode {
    eprintln!("usage: journeydb example [DB]   (create a database, append events, reopen, print stats;");
    eprintln!("                                 without DB, in a temporary directory removed afterwards)");
    eprintln!("       journeydb stats DB");
    ExitCode::from(2)
}

fn example(path: &str) -> journeydb::Result<()> {
    let t0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z in µs
    let hour: i64 = 3_600_000_000;
    {
        let db = Db::create(
            path,
            Options::default().sync(Sync::Group(std::time::Duration::from_millis(1))),
        )?;
        for c in 0..1000i64 {
            let who = format!("customer-{c}");
            let mut batch = db.batch();
            batch.append(
                Event::new(&who, t0 + c * hour, "visit")
                    .with_stage(Stage::Awareness)
                    .with_prop("channel", "web"),
            );
            if c % 2 == 0 {
                batch.append(
                    Event::new(&who, t0 + c * hour + 60_000_000, "add_to_cart")
                        .with_stage(Stage::Consideration),
                );
            }
            if c % 4 == 0 {
                batch.append(
                    Event::new(&who, t0 + c * hour + 120_000_000, "purchase")
                        .with_stage(Stage::Purchase)
                        .with_prop("amount", 10.0 + (c % 50) as f64),
                );
            }
            batch.commit()?;
        }
        db.flush()?;
    }
    let db = Db::open(path, Options::default())?;
    print_stats(&db);
    let snap = db.snapshot();
    println!("purchasers: {}", snap.customers_in_stage(Stage::Purchase).len());
    println!("customer-4: {:?}", snap.customer_events("customer-4")?);
    for q in [
        "FUNNEL visit -> add_to_cart -> purchase WITHIN 7d TIES STRICT",
        "TREND uniq OF STAGE purchase PERIOD week",
    ] {
        println!("\n> {q}");
        match snap.query(q) {
            Ok(t) => print!("{}", t.to_text()),
            Err(journeydb::QueryError::Parse(e)) => println!("{}", e.render(q)),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}

fn print_stats(db: &Db) {
    let s = db.stats();
    println!("events          {}", s.events);
    println!("customers       {}", s.customers);
    println!("segments        {}", s.segments);
    println!("buffered events {}", s.buffered_events);
    println!("bytes on disk   {}", s.bytes_on_disk);
    println!("bytes/event     {:.2}", s.bytes_per_event);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["example", path] => example(path),
        ["example"] => {
            let dir = std::env::temp_dir().join(format!("journeydb-example-{}", std::process::id()));
            let r = example(&dir.to_string_lossy());
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
        ["stats", path] => Db::open_read_only(path).map(|db| print_stats(&db)),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

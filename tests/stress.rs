//! Mutual exclusion under load, between real processes.
//!
//! `cargo test` runs 4 workers x 200 rounds. A large run:
//! `PIDLOCKFILE_STRESS=16x10000 cargo test --release --test stress -- --nocapture`
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{helper_command, rounds, run, Holding};
use pidlockfile::{LockFile, LockOptions};

helper_process!();

#[test]
fn workers_in_separate_processes_never_overlap_and_lose_no_increment() {
    let (workers, per_worker) = match std::env::var("PIDLOCKFILE_STRESS") {
        Ok(size) => {
            let (w, r) = size
                .split_once('x')
                .expect("PIDLOCKFILE_STRESS=WORKERSxROUNDS");
            (w.parse().unwrap(), r.parse().unwrap())
        }
        Err(_) => (4, 200),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    std::fs::write(dir.path().join("counter"), "0").unwrap();

    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let mut command = helper_command("stress-worker", &path);
            rounds(&mut command, per_worker);
            std::thread::spawn(move || run(command))
        })
        .collect();
    let mut foreign = 0;
    for handle in handles {
        let said = handle.join().unwrap();
        assert!(said.status.success(), "{said:?}");
        let done = said.line("done");
        let (ran, seen) = done.split_once(" foreign ").unwrap();
        assert_eq!(ran.parse::<usize>().unwrap(), per_worker);
        foreign += seen.parse::<usize>().unwrap();
    }
    let counted: usize = std::fs::read_to_string(dir.path().join("counter"))
        .unwrap()
        .parse()
        .unwrap();
    let expected = workers * per_worker;
    let failed = foreign + expected.abs_diff(counted);
    println!(
        "stress: {workers} workers x {per_worker} rounds\n{} passed, {failed} failed",
        expected - failed.min(expected)
    );
    assert_eq!(
        foreign, 0,
        "a worker saw another's pid while holding the lock"
    );
    assert_eq!(counted, expected, "increments were lost");
}

#[test]
fn a_holder_killed_while_holding_frees_the_lock_fifty_times_over() {
    common::watch_if_asked();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    for round in 0..50 {
        let holder = Holding::start("hold", &path);
        let refused = LockFile::lock(&path).unwrap_err();
        assert_eq!(
            refused.holder().unwrap().pid(),
            Some(holder.pid),
            "round {round}"
        );
        holder.kill();
        // Taken within 100 ms, or the wait ends in an error and the test fails.
        let lock = LockOptions::new()
            .wait(Duration::from_millis(100))
            .lock(&path)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        lock.close().unwrap();
    }
}

#[test]
fn workers_never_overlap_while_another_process_deletes_and_replaces_the_lock_file() {
    let (workers, per_worker) = (6, 300);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let replacer = common::Listening::start(helper_command("replacer", &path));
    // A third wait (and so hold descriptors of files that get deleted), a
    // third retry refusals (and so race an open against a replacement), and
    // a third wait in three threads each (which hand the lock to one another
    // at each release, and queue behind one another's tenures).
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let role = [
                "marker-worker",
                "marker-worker-no-wait",
                "marker-worker-threads",
            ][i % 3];
            let mut command = helper_command(role, &path);
            rounds(&mut command, per_worker);
            std::thread::spawn(move || run(command))
        })
        .collect();
    let mut overlaps = 0;
    for handle in handles {
        let said = handle.join().unwrap();
        assert!(said.status.success(), "{said:?}");
        let (ran, seen) = said.line("done").split_once(" overlaps ").unwrap();
        assert_eq!(ran.parse::<usize>().unwrap(), per_worker);
        overlaps += seen.parse::<usize>().unwrap();
    }
    let mut replacer = replacer;
    replacer.hang_up();
    let replaced = replacer
        .said_within(Duration::from_secs(60))
        .expect("the replacer says how often it replaced the file");
    assert!(replacer.finish().success());
    let rounds = workers * per_worker;
    println!(
        "stress with a replacer: {workers} workers x {per_worker} rounds, the lock file {replaced} times\n\
         {} passed, {overlaps} failed",
        rounds - overlaps.min(rounds)
    );
    assert_eq!(overlaps, 0, "two holders at once, counted by the marker");
    let times: usize = replaced.trim_start_matches("replaced ").parse().unwrap();
    assert!(times > 0, "the replacer never got a turn");
}

again_with_waits_that_watch!();

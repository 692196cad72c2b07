//! The one log record a refusal writes, as zc.lockfile words it.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::hostname;
use pidlockfile::{LockFile, LockOptions};

struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let entry = (
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        );
        self.0.lock().unwrap().push(entry);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// The records that mention `needle` (tests run in parallel and share the logger).
fn records_about(needle: &str) -> Vec<(log::Level, String, String)> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, message)| message.contains(needle))
        .cloned()
        .collect()
}

fn display(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_refusal_logs_one_error_naming_the_file_and_the_pid() {
    records_about("");
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockFile::lock(&path).unwrap();
    assert!(
        records_about(&display(&path)).is_empty(),
        "taking a lock logs nothing"
    );

    let _ = LockFile::lock(&path).unwrap_err();
    assert_eq!(
        records_about(&display(&path)),
        vec![(
            log::Level::Error,
            "pidlockfile".to_owned(),
            format!(
                "Error locking file {}; pid={me}; held by this process, pid {me} on host {}",
                display(&path),
                hostname(),
            )
        )]
    );
}

#[test]
fn a_holder_that_wrote_no_pid_is_logged_with_the_kernels_word() {
    records_about("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let _held = LockOptions::new()
        .content_template("{hostname}")
        .lock(&path)
        .unwrap();
    let me = std::process::id();
    let _ = LockFile::lock(&path).unwrap_err();
    let records = records_about(&display(&path));
    assert_eq!(records.len(), 1, "{records:?}");
    let expected = if cfg!(target_os = "linux") {
        format!(
            "pid={me}; held by a process that wrote no holder (kernel says pid {me}; \
             the file says \"{}\")",
            hostname()
        )
    } else {
        format!(
            "pid=UNKNOWN; held, holder unknown (the lock file names no pid; it says \"{}\")",
            hostname()
        )
    };
    assert_eq!(
        records[0].2,
        format!("Error locking file {}; {expected}", display(&path))
    );
}

#[test]
fn a_waiter_logs_one_info_record_however_often_it_retries() {
    records_about("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK");
    let me = std::process::id();
    let _held = LockFile::lock(&path).unwrap();
    let err = LockOptions::new()
        .wait(std::time::Duration::from_millis(300))
        .lock(&path)
        .unwrap_err();
    assert!(matches!(err, pidlockfile::LockError::TimedOut { .. }));

    let held = format!("held by this process, pid {me} on host {}", hostname());
    assert_eq!(
        records_about(&display(&path)),
        vec![
            (
                log::Level::Info,
                "pidlockfile".to_owned(),
                format!(
                    "Blocking waiting for file lock on {}; {held}",
                    display(&path)
                )
            ),
            (
                log::Level::Error,
                "pidlockfile".to_owned(),
                format!("Error locking file {}; pid={me}; {held}", display(&path))
            ),
        ]
    );
}

#[test]
fn a_path_cannot_forge_a_log_line() {
    records_about("");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("LOCK\nINFO all is well");
    let _held = LockFile::lock(&path).unwrap();
    let _ = LockFile::lock(&path).unwrap_err();
    let records = records_about("LOCK\\nINFO all is well");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0].2.contains('\n'), "{records:?}");
}

#[test]
fn the_refusals_record_can_be_set_to_any_level_or_turned_off() {
    records_about("");
    let dir = tempfile::tempdir().unwrap();
    let held_path = dir.path().join("LOCK");
    let _held = LockFile::lock(&held_path).unwrap();
    let path = display(&held_path);

    let _ = LockOptions::new()
        .log_refusal(None)
        .lock(&held_path)
        .unwrap_err();
    assert!(
        records_about(&path).is_empty(),
        "{:?}",
        records_about(&path)
    );

    let _ = LockOptions::new()
        .log_refusal(Some(log::Level::Info))
        .lock(&held_path)
        .unwrap_err();
    let records = records_about(&path);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, log::Level::Info);
    assert!(
        records[0].2.starts_with("Error locking file "),
        "{records:?}"
    );

    let _ = LockFile::lock(&held_path).unwrap_err();
    let records = records_about(&path);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1].0, log::Level::Error, "the default stays ERROR");
}

#[test]
fn a_quiet_refusal_still_logs_the_wait() {
    records_about("");
    let dir = tempfile::tempdir().unwrap();
    let held_path = dir.path().join("LOCK");
    let _held = LockFile::lock(&held_path).unwrap();
    let _ = LockOptions::new()
        .log_refusal(None)
        .wait(std::time::Duration::from_millis(30))
        .lock(&held_path)
        .unwrap_err();
    let records = records_about(&display(&held_path));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, log::Level::Info);
    assert!(
        records[0].2.starts_with("Blocking waiting for file lock"),
        "{records:?}"
    );
}

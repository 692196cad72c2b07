//! Any bytes a lock file may hold: parsing never panics, keeps at most 4 KiB,
//! and what it shows is one line with nothing unescaped that could forge a log line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pidlockfile::Holder;

fuzz_target!(|bytes: &[u8]| {
    let Some(holder) = Holder::parse(bytes) else {
        return;
    };
    // Invalid bytes become U+FFFD (3 bytes each): 4 KiB read is 12 KiB at most.
    assert!(holder.content().len() <= 3 * 4096);
    assert!(!holder.content().contains('\n'));
    if let Some(pid) = holder.pid() {
        assert!((1..=i32::MAX as u32).contains(&pid));
    }
    if let Some(hostname) = holder.hostname() {
        assert!(!hostname.is_empty() && holder.content().contains(hostname));
    }
    let shown = holder.to_string();
    assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    let _ = holder.is_alive();
    let _ = holder.is_stale();
});

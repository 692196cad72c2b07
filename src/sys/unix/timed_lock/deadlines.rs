//! The deadline thread: one per process, it signals each thread blocked in
//! a timed `flock` when its time is up.
//!
//! A waiter only adds itself to a list (under a mutex, no system call) and
//! removes itself when `flock` returns, so that the common wait, which ends
//! when the holder releases, costs nothing for its time limit. The thread
//! sleeps until the earliest limit; a waiter whose limit is earlier than
//! that wakes it. While waits come and go it also wakes every
//! [`HEARTBEAT`] (after [`IDLE`] without a waiter it sleeps until one
//! comes), so that a new waiter, whose limit is rarely sooner, need not wake
//! it at all.
//!
//! At a waiter's limit the thread sends the signal, then sends it again
//! every [`RESEND`] until the waiter has removed itself: a signal that came
//! just before the waiter entered `flock` cannot leave it blocked.
//!
//! A forked child has no deadline thread, and the parent's list may have
//! been locked at the fork by a thread the child does not have: the child
//! starts a list and a thread of its own (the parent's list, a few hundred
//! bytes, is left behind).

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::super::forks;

/// After a waiter's limit, the signal is sent again this often until the
/// waiter has gone.
const RESEND: Duration = Duration::from_millis(1);
/// How often the thread wakes while waits come and go.
const HEARTBEAT: Duration = Duration::from_millis(50);
/// How long without a waiter before the thread sleeps until one comes.
const IDLE: Duration = Duration::from_secs(1);

/// One process's list of waiters and its thread.
struct Deadlines {
    /// The process it belongs to, by its forks.
    forks: u64,
    state: Mutex<State>,
    ring: Condvar,
}

struct State {
    waiters: Vec<Waiter>,
    next_key: u64,
    started: bool,
    /// When the thread will wake by itself; `None` while it sleeps until
    /// woken (or has not been started).
    wakes_at: Option<Instant>,
}

struct Waiter {
    key: u64,
    thread: libc::pthread_t,
    signal: libc::c_int,
    /// When to send the signal (next).
    at: Instant,
    signaled: bool,
}

static CURRENT: AtomicPtr<Deadlines> = AtomicPtr::new(std::ptr::null_mut());

/// This process's list, made at its first wait (and again in a forked
/// child).
fn deadlines() -> &'static Deadlines {
    let forks = forks();
    loop {
        let current = CURRENT.load(Ordering::Acquire);
        // SAFETY: a published list is leaked, never freed.
        if let Some(current) = unsafe { current.as_ref() } {
            if current.forks == forks {
                return current;
            }
        }
        let fresh: &'static Deadlines = Box::leak(Box::new(Deadlines {
            forks,
            state: Mutex::new(State {
                waiters: Vec::new(),
                next_key: 0,
                started: false,
                wakes_at: None,
            }),
            ring: Condvar::new(),
        }));
        let fresh_ptr = fresh as *const Deadlines as *mut Deadlines;
        match CURRENT.compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return fresh,
            // Another thread published one first: ours was never shared.
            // SAFETY: `fresh` came from `Box::leak` just above.
            Err(_) => drop(unsafe { Box::from_raw(fresh_ptr) }),
        }
    }
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A thread's place on the list while it is blocked in `flock`.
pub(super) struct Waiting {
    deadlines: &'static Deadlines,
    key: u64,
}

impl Waiting {
    /// Puts this thread on the list, to be sent `signal` at `until`; `None`
    /// when the deadline thread cannot be started.
    pub(super) fn begin(signal: libc::c_int, until: Instant) -> Option<Waiting> {
        let deadlines = deadlines();
        let mut state = lock(&deadlines.state);
        if !state.started {
            if !start(deadlines) {
                return None;
            }
            state.started = true;
        }
        let key = state.next_key;
        state.next_key += 1;
        state.waiters.push(Waiter {
            key,
            // SAFETY: always safe to call.
            thread: unsafe { libc::pthread_self() },
            signal,
            at: until,
            signaled: false,
        });
        if state.wakes_at.map_or(true, |at| until < at) {
            state.wakes_at = Some(until);
            deadlines.ring.notify_one();
        }
        Some(Waiting { deadlines, key })
    }

    /// Takes this thread off the list; nothing is sent to it afterwards,
    /// and a signal already sent has been delivered when this returns.
    pub(super) fn end(self) {
        let mut state = lock(&self.deadlines.state);
        let at = state.waiters.iter().position(|w| w.key == self.key);
        let signaled = at.is_some_and(|at| state.waiters.swap_remove(at).signaled);
        drop(state);
        std::mem::forget(self);
        if signaled {
            // Sent while this thread was not blocked, it is pending: any
            // system call delivers it on return.
            // SAFETY: always safe to call.
            unsafe { libc::getppid() };
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = lock(&self.deadlines.state);
        state.waiters.retain(|w| w.key != self.key);
    }
}

/// Starts the deadline thread with every signal blocked, so that it never
/// takes a signal meant for the program's threads (the mask is inherited,
/// so it is set around the spawn, not in the new thread).
fn start(deadlines: &'static Deadlines) -> bool {
    // SAFETY: signal sets zeroed and filled in by libc; the mask is
    // restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let spawned = std::thread::Builder::new()
            .name("pidlock-timer".into())
            .stack_size(64 * 1024)
            .spawn(move || keep_time(deadlines));
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned.is_ok()
    }
}

/// The deadline thread.
fn keep_time(deadlines: &'static Deadlines) {
    let mut state = lock(&deadlines.state);
    let mut idle_since = Instant::now();
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for waiter in &mut state.waiters {
            if waiter.at <= now {
                // SAFETY: the thread is alive: it takes itself off the list
                // (under this lock) before it returns from its wait.
                unsafe { libc::pthread_kill(waiter.thread, waiter.signal) };
                waiter.signaled = true;
                waiter.at = now + RESEND;
            }
            next = Some(next.map_or(waiter.at, |next| next.min(waiter.at)));
        }
        if !state.waiters.is_empty() {
            idle_since = now;
        } else if now.duration_since(idle_since) < IDLE {
            next = Some(now + HEARTBEAT);
        }
        state.wakes_at = next;
        state = match next {
            Some(at) => {
                let timeout = at.saturating_duration_since(Instant::now());
                match deadlines.ring.wait_timeout(state, timeout) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                }
            }
            None => deadlines
                .ring
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
    }
}

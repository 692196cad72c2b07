//! The timer thread: while waits are pending, one per process ends each
//! thread's blocked `flock` when its time is up.
//!
//! A waiter only adds itself to a list (under a mutex, no system call) and
//! removes itself when `flock` returns, so that the common wait, which ends
//! when the holder releases, costs nothing for its time limit. The thread
//! sleeps until the earliest limit; a waiter whose limit is earlier than
//! that wakes it. While waits come and go it also wakes every
//! [`HEARTBEAT`], so that a new waiter, whose limit is rarely sooner, need
//! not wake it at all; after [`IDLE`] without a waiter it exits, and the
//! next wait that blocks starts another.
//!
//! At a waiter's limit the thread fires the waiter's own POSIX timer, which
//! sends that thread (and only it) the signal: the kernel set aside the
//! signal's queue entry when the timer was made, so the send cannot fail
//! when the user's queue of pending signals (`RLIMIT_SIGPENDING`) is full,
//! and firing again while it is pending queues nothing more. It fires again
//! every [`RESEND`] until the waiter has gone, so that a signal that came
//! just before the waiter entered `flock` cannot leave it blocked; it first
//! checks that the signal's handler is still the crate's, and if the program
//! has taken it over, sends nothing more.
//!
//! A forked child has no timer thread, and the parent's list may have been
//! locked at the fork by a thread the child does not have: the child starts
//! a list of its own (the parent's, a few hundred bytes, is left behind),
//! and a timer of its own for each thread that waits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::super::forks;
use super::signal;
use crate::per_process::PerProcess;

/// After a waiter's limit, its timer fires again this often until the
/// waiter has gone.
const RESEND: Duration = Duration::from_millis(1);
/// How often the thread wakes while waits come and go.
const HEARTBEAT: Duration = Duration::from_millis(50);
/// How long without a waiter before the thread exits.
const IDLE: Duration = Duration::from_secs(1);

/// A thread's POSIX timer, which sends it the signal when fired: made at its
/// first wait that blocks, deleted when the thread exits (unless the process
/// has forked since: it is the parent's then).
struct Timer {
    id: TimerId,
    forks: u64,
}

#[derive(Clone, Copy)]
struct TimerId(libc::timer_t);

// SAFETY: a timer id is a number the kernel gave; any thread may use it.
unsafe impl Send for TimerId {}

impl TimerId {
    /// Fires after a nanosecond, once; or, with `false`, disarms (waiting
    /// for a firing in progress to finish).
    fn set(self, fire: bool) {
        let value = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: 0,
                tv_nsec: fire.into(),
            },
        };
        // SAFETY: a timer of this process, a valid spec.
        unsafe { libc::timer_settime(self.0, 0, &value, std::ptr::null_mut()) };
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.forks == forks() {
            // SAFETY: this process's timer, deleted once.
            unsafe { libc::timer_delete(self.id.0) };
        }
    }
}

thread_local! {
    static TIMER: RefCell<Option<Timer>> = const { RefCell::new(None) };
}

/// This thread's timer, made (to send `signal`) if it has none yet.
fn this_threads_timer(signal: libc::c_int) -> Option<TimerId> {
    TIMER
        .try_with(|timer| {
            let mut timer = timer.try_borrow_mut().ok()?;
            let forks = forks();
            if timer.as_ref().is_some_and(|t| t.forks != forks) {
                std::mem::forget(timer.take()); // the parent's
            }
            if timer.is_none() {
                // SAFETY: a zeroed sigevent, filled in; `id` receives the timer.
                unsafe {
                    let mut event: libc::sigevent = std::mem::zeroed();
                    event.sigev_notify = libc::SIGEV_THREAD_ID;
                    event.sigev_signo = signal;
                    event.sigev_notify_thread_id = libc::syscall(libc::SYS_gettid) as libc::c_int;
                    let mut id: libc::timer_t = std::ptr::null_mut();
                    if libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut id) != 0 {
                        return None;
                    }
                    *timer = Some(Timer {
                        id: TimerId(id),
                        forks,
                    });
                }
            }
            timer.as_ref().map(|t| t.id)
        })
        .ok()
        .flatten()
}

/// One process's list of waiters and its thread.
struct Deadlines {
    state: Mutex<State>,
    ring: Condvar,
}

struct State {
    waiters: Vec<Waiter>,
    next_key: u64,
    running: bool,
    /// When the thread will wake by itself; `None` while it sleeps until
    /// woken (or is not running).
    wakes_at: Option<Instant>,
}

struct Waiter {
    key: u64,
    timer: TimerId,
    signal: libc::c_int,
    /// When to fire (next); `None` once the signal is no longer the crate's.
    at: Option<Instant>,
    fired: bool,
}

static DEADLINES: PerProcess<Deadlines> = PerProcess::new();

/// Whether the timer thread runs (waits have blocked in this process within
/// the last [`IDLE`]), as the process's [`forks`] plus one when it does, 0
/// when it does not: a forked child, which has no timer thread, reads it as
/// not running.
static RUNNING: AtomicU64 = AtomicU64::new(0);

/// Whether waits block in the kernel here lately: the timer thread runs, so
/// one more wait costs no thread. Two atomic loads.
pub(super) fn running() -> bool {
    RUNNING.load(Ordering::Relaxed) == forks().wrapping_add(1)
}

/// This process's list (a forked child makes its own).
fn deadlines() -> &'static Deadlines {
    DEADLINES.get(|| Deadlines {
        state: Mutex::new(State {
            waiters: Vec::new(),
            next_key: 0,
            running: false,
            wakes_at: None,
        }),
        ring: Condvar::new(),
    })
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
    timer: TimerId,
}

impl Waiting {
    /// Puts this thread on the list, to be sent `signal` at `until`; `None`
    /// when it can have no timer or the timer thread cannot be started.
    pub(super) fn begin(signal: libc::c_int, until: Instant) -> Option<Waiting> {
        let timer = this_threads_timer(signal)?;
        let deadlines = deadlines();
        let mut state = lock(&deadlines.state);
        if !state.running {
            if !start(deadlines) {
                return None;
            }
            state.running = true;
            state.wakes_at = None;
            RUNNING.store(forks().wrapping_add(1), Ordering::Relaxed);
        }
        let key = state.next_key;
        state.next_key += 1;
        state.waiters.push(Waiter {
            key,
            timer,
            signal,
            at: Some(until),
            fired: false,
        });
        if state.wakes_at.map_or(true, |at| until < at) {
            state.wakes_at = Some(until);
            deadlines.ring.notify_one();
        }
        Some(Waiting {
            deadlines,
            key,
            timer,
        })
    }

    /// Takes this thread off the list; nothing is sent to it afterwards,
    /// and a signal already sent has been delivered when this returns.
    pub(super) fn end(self) {
        let mut state = lock(&self.deadlines.state);
        let at = state.waiters.iter().position(|w| w.key == self.key);
        let fired = at.is_some_and(|at| state.waiters.swap_remove(at).fired);
        drop(state);
        let timer = self.timer;
        std::mem::forget(self);
        if fired {
            // A firing in progress finishes first; what it sent is then
            // pending (or, on kernels that drop a disarmed timer's signal,
            // gone), and any system call delivers it on return.
            timer.set(false);
            // SAFETY: always safe to call.
            unsafe { libc::getppid() };
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = lock(&self.deadlines.state);
        state.waiters.retain(|w| w.key != self.key);
        drop(state);
        self.timer.set(false);
    }
}

/// Starts the timer thread with every signal blocked, so that it never
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

/// The timer thread.
fn keep_time(deadlines: &'static Deadlines) {
    let mut state = lock(&deadlines.state);
    let mut idle_since = Instant::now();
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for waiter in &mut state.waiters {
            if waiter.at.is_some_and(|at| at <= now) {
                if signal::still_ours(waiter.signal) {
                    waiter.timer.set(true);
                    waiter.fired = true;
                    waiter.at = Some(now + RESEND);
                } else {
                    // Nothing can end this wait now but the release.
                    waiter.at = None;
                }
            }
            if let Some(at) = waiter.at {
                next = Some(next.map_or(at, |next| next.min(at)));
            }
        }
        if !state.waiters.is_empty() {
            idle_since = now;
            // Waiters it can no longer signal still leave, unannounced.
            next.get_or_insert(now + HEARTBEAT);
        } else if now.duration_since(idle_since) < IDLE {
            next = Some(now + HEARTBEAT);
        } else {
            state.running = false;
            state.wakes_at = None;
            RUNNING.store(0, Ordering::Relaxed);
            return;
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

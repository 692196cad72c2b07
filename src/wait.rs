//! The threads of a process that wait for one file's lock take turns.
//!
//! One of them at a time, the watcher, sleeps until the lock may be free
//! and retries: in the kernel's queue for the lock where it can be
//! ([`sys::timed_lock`]: a blocked `flock` that a signal ends at the limit),
//! else on the file's [`ReleaseWatch`], which every close of the file wakes.
//! The others sleep on a condition variable, each with its own deadline,
//! until the watcher leaves (it gave up, found the path naming another
//! file, or took the lock and released it): with a watch, waiters that each
//! watched and retried would all wake at each release, and all but one go
//! back to sleep; in the kernel's queue, each release that a waiter loses
//! wakes every waiter queued behind it there.
//!
//! A watcher that takes the exclusive lock while others of its process wait
//! keeps its place until it releases the lock ([`Place::keep_while_held`]):
//! while a thread of the process holds the lock, none of its queue waits in
//! the kernel or watches, and at the release the next one is woken and
//! takes the lock at once. So the threads of a process taking turns on a
//! lock cost one wake-up a turn, as a waiter blocked in `flock` does, and
//! not another to send the next thread to the kernel's queue at each
//! acquisition. They queue in the order the system wakes them, and a thread
//! of this process that starts waiting while others wait queues behind them
//! (a turn being handed over goes to a thread that was waiting when it was
//! handed), rather than taking the lock from under the thread woken for it.
//! Waiters for the exclusive lock and for the shared one queue apart; when a
//! waiter for the shared lock takes it, the next one retries at once, since
//! that lock does not keep it out.
//!
//! A thread that begins waiting while no other thread of its process waits
//! and its process holds no exclusive lock through a `LockFile`, and blocks
//! at once ([`Alone`]: its waits
//! lately found the lock held, as those of a process taking turns with
//! other processes do), takes no place in a queue for its first 50 ms: it
//! waits in the kernel's queue, counted among the waiting. A thread of its
//! process that starts waiting meanwhile queues; the first in that queue
//! tries, and waits in the kernel's queue beside it, as a waiter of another
//! process would; after its first 50 ms, a lone waiter that did not take
//! the lock queues too. Threads of one process taking turns on a lock
//! rarely wait alone: in the steady state one of them holds the lock
//! whenever another begins to wait (a thread that begins in the instants
//! around a release, or while another process holds the lock, may, for
//! at most 50 ms).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::per_process::PerProcess;
use crate::sys::{self, FileId, ReleaseWatch};

/// The files this process's threads are waiting for (a handful at most),
/// made afresh in a forked child: the parent's queues are not the child's,
/// and their watches stay the parent's (the instances are shared with it).
static WAITING: PerProcess<Waiting> = PerProcess::new();

struct Waiting {
    queues: Mutex<Vec<Arc<Queue>>>,
    /// How many places are taken (threads waiting, and holders keeping
    /// their place: [`Place::keep_while_held`]), and how many threads wait
    /// [`Alone`], for the lock's fast path and for a waiter that took the
    /// lock to see at once that nobody of its process waits behind it;
    /// places change it only with `queues` locked.
    waiters: AtomicUsize,
}

fn waiting() -> &'static Waiting {
    WAITING.get(|| Waiting {
        queues: Mutex::new(Vec::new()),
        waiters: AtomicUsize::new(0),
    })
}

/// The retry schedule while watching: naps doubling from the first to the
/// longest, which bounds the wait for a holder that unlocks without closing
/// (or for any holder when the file cannot be watched). A waiter in the
/// kernel's queue checks the path every longest nap.
pub(crate) const FIRST_NAP: Duration = Duration::from_millis(1);
pub(crate) const LONGEST_NAP: Duration = Duration::from_millis(50);

/// Whether any thread of this process is waiting for a lock, or holds one
/// with others waiting behind it: a thread that starts waiting then joins
/// the queue before trying, so as not to take the lock ahead of one woken
/// for it (and does not begin blocking alone; a lone waiter is not in a
/// queue, and the first to queue meanwhile tries). One atomic load.
pub(crate) fn others_waiting() -> bool {
    waiting().waiters.load(Ordering::Relaxed) > 0
}

/// A thread that begins its wait with no other thread of its process
/// waiting and no exclusive lock held by its process through a `LockFile`
/// ([`this_process_holds_any`](crate::holder::this_process_holds_any)), and
/// blocks in the kernel's
/// queue at once: for its first [`LONGEST_NAP`] it takes no place in a queue
/// (none to make, join and leave on each turn of a process taking turns
/// with others), only this count, so that a thread of its process that
/// starts waiting meanwhile joins a queue (the first in it then waits in
/// the kernel's queue beside this one, as a waiter of another process
/// would).
pub(crate) struct Alone(&'static Waiting);

/// Until when a waiter sleeps in the kernel's queue from `now`: the
/// `deadline`, or sooner, when the path is due to be checked.
pub(crate) fn kernel_wait_until(now: Instant, deadline: Instant) -> Instant {
    deadline.min(now.checked_add(LONGEST_NAP).unwrap_or(deadline))
}

/// Notes that a lone waiter's sleep in the kernel's queue returned with the
/// lock (`taken`), for tests ([`lone_counts`]).
pub(crate) fn note_lone_take(taken: bool) {
    if taken {
        let _ = LONE.try_with(|n| n.set((n.get().0, n.get().1 + 1)));
    }
}

/// How many waits of this thread began alone, and how many times a lone
/// waiter's sleep in the kernel's queue returned with the lock (before the
/// path's check).
pub(crate) fn lone_counts() -> (usize, usize) {
    LONE.try_with(Cell::get).unwrap_or((0, 0))
}

impl Alone {
    /// Counts this thread among the waiting, until dropped.
    pub(crate) fn new() -> Alone {
        let _ = LONE.try_with(|n| n.set((n.get().0 + 1, n.get().1)));
        let this_process = waiting();
        this_process.waiters.fetch_add(1, Ordering::Relaxed);
        Alone(this_process)
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// See [`lone_counts`].
    static LONE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// How many more waits of this thread expect the lock held (see
    /// [`expect_held`]).
    static EXPECT_HELD: Cell<u8> = const { Cell::new(0) };
    /// The queue this thread made for its last wait, emptied, kept so that
    /// the next queue it makes costs no allocation.
    static SPARE: RefCell<Option<Arc<Queue>>> = const { RefCell::new(None) };
}

/// A wait that finds the lock free in less than this did not block in the
/// kernel (a release wakes a waiter later than this on any machine).
const AT_ONCE: Duration = Duration::from_micros(20);

/// How many waits that find the lock free, after one that found it held,
/// still expect it held: a process taking turns on a lock finds it free now
/// and then (it took its own lock back), and a thread whose lock stays free
/// soon tries first again.
const HELD_EXPECTED_FOR: u8 = 4;

/// Whether this thread's waits have lately found the lock held, so that the
/// next one most likely does too. One thread-local read.
pub(crate) fn expect_held() -> bool {
    EXPECT_HELD.try_with(Cell::get).unwrap_or(0) > 0
}

/// Notes whether this thread's wait found the lock held.
pub(crate) fn note_found_held(held: bool) {
    let _ = EXPECT_HELD.try_with(|expect| {
        expect.set(match held {
            true => HELD_EXPECTED_FOR,
            false => expect.get().saturating_sub(1),
        })
    });
}

/// Whether a wait that began blocking and took the lock after `waited`
/// found it held.
pub(crate) fn blocked_for(waited: Duration) -> bool {
    waited >= AT_ONCE
}

/// When a wait of `limit` from `start` ends (in some centuries, for a limit
/// too large to add).
pub(crate) fn deadline(start: Instant, limit: Duration) -> Instant {
    start
        .checked_add(limit)
        .or_else(|| start.checked_add(Duration::from_secs(u32::MAX.into())))
        .unwrap_or(start)
}

/// The waiters for one file's lock, exclusive or shared.
struct Queue {
    id: FileId,
    shared: bool,
    state: Mutex<State>,
    turn: Condvar,
    /// Made by the first watcher, on the file it waits with.
    watch: OnceLock<ReleaseWatch>,
}

struct State {
    waiting: usize,
    /// A thread watches (or holds the lock: [`Place::keep_while_held`]), or
    /// the watch is handed to a woken thread that has yet to take it
    /// (`handed`): a thread that joins meanwhile queues.
    watched: bool,
    handed: bool,
    /// The watch was handed over at the holder's release: the lock is most
    /// likely free, and the next watcher retries at once.
    released: bool,
    /// The ticket the next thread to join gets; a watch handed over goes to
    /// a thread with a ticket below `eligible_below`, one that was waiting
    /// when it was handed, not one that joined since (the releasing thread
    /// waiting again, say). `eligible` of those are still waiting: when the
    /// last of them leaves without taking it, any thread waiting then may.
    next_ticket: u64,
    eligible_below: u64,
    eligible: usize,
    nap: Duration,
    /// The path names another file now: the file waited for is not worth
    /// sleeping on, every waiter must retry and move on.
    replaced: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a waiter does next.
pub(crate) enum Turn {
    /// Retry the lock: this thread watches.
    Retry,
    /// Sleep on the watch before retrying: this thread has just taken over
    /// watching from another.
    Sleep,
    /// Give up: the deadline passed while another thread watched.
    OutOfTime,
}

/// A thread's place among the waiters for one file, left on drop.
pub(crate) struct Place {
    this_process: &'static Waiting,
    /// Taken out only on drop.
    queue: ManuallyDrop<Arc<Queue>>,
    watcher: bool,
    ticket: u64,
    /// Kept by the lock this thread took ([`Place::keep_while_held`]).
    holding: bool,
    /// The process's [`sys::forks`] when the place was taken: a forked
    /// child's copy (in a lock the child drops) is the parent's, and is
    /// left alone.
    forks: u64,
}

impl Queue {
    /// A queue for file `id`'s exclusive or `shared` lock: this thread's
    /// spare one if it has one, else a new one.
    fn new(id: FileId, shared: bool) -> Arc<Queue> {
        let state = State {
            waiting: 0,
            watched: false,
            handed: false,
            released: false,
            next_ticket: 0,
            eligible_below: 0,
            eligible: 0,
            nap: FIRST_NAP,
            replaced: false,
        };
        let spare = SPARE
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten();
        if let Some(mut queue) = spare {
            if let Some(reused) = Arc::get_mut(&mut queue) {
                reused.id = id;
                reused.shared = shared;
                *reused.state.get_mut().unwrap_or_else(|p| p.into_inner()) = state;
                return queue;
            }
        }
        Arc::new(Queue {
            id,
            shared,
            state: Mutex::new(state),
            turn: Condvar::new(),
            watch: OnceLock::new(),
        })
    }

    /// Makes the watch handed over (`state.handed`) one that the threads
    /// waiting now may take, and wakes one of them; `state` is this queue's,
    /// locked, so that the thread woken is one of those.
    fn hand_to_those_waiting(&self, state: &mut State) {
        state.eligible_below = state.next_ticket;
        state.eligible = state.waiting;
        self.turn.notify_one();
    }

    /// Keeps `queue`, which no waiter uses any more, as this thread's spare,
    /// without its watch (whose inotify instance goes back to the pool).
    fn keep(mut queue: Arc<Queue>) {
        if let Some(unused) = Arc::get_mut(&mut queue) {
            unused.watch = OnceLock::new();
            let _ = SPARE.try_with(|spare| spare.try_borrow_mut().map(|mut s| *s = Some(queue)));
        }
    }
}

impl Place {
    /// Joins the waiters for file `id`'s exclusive or `shared` lock; the
    /// first becomes the watcher.
    pub(crate) fn join(id: FileId, shared: bool) -> Place {
        let this_process = waiting();
        let mut queues = lock(&this_process.queues);
        let queue = match queues
            .iter()
            .find(|queue| queue.id == id && queue.shared == shared)
        {
            Some(queue) => queue.clone(),
            None => {
                let queue = Queue::new(id, shared);
                queues.push(queue.clone());
                queue
            }
        };
        let mut state = lock(&queue.state);
        state.waiting += 1;
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let watcher = !std::mem::replace(&mut state.watched, true);
        drop(state);
        this_process.waiters.fetch_add(1, Ordering::Relaxed);
        drop(queues);
        Place {
            this_process,
            queue: ManuallyDrop::new(queue),
            watcher,
            ticket,
            holding: false,
            forks: sys::forks(),
        }
    }

    /// This thread's wait took the lock. Where other threads of this
    /// process wait behind it for the exclusive lock, the place is kept, to
    /// be dropped once the lock is released: they sleep until then, and the
    /// next one is woken at the release, when it takes the lock at once,
    /// instead of being woken now only to wait in the kernel's queue (or
    /// watch) until the release. `None` (the place is left now) where
    /// nobody waits behind, for the shared lock, which does not keep the
    /// next waiter out, and where this thread took the lock by its last try
    /// behind the watcher, which still watches.
    pub(crate) fn keep_while_held(mut self) -> Option<Place> {
        // Nobody else of this process waits (one atomic load), or nobody
        // waits for this file.
        if !self.watcher
            || self.queue.shared
            || self.this_process.waiters.load(Ordering::Relaxed) <= 1
            || lock(&self.queue.state).waiting <= 1
        {
            return None;
        }
        self.holding = true;
        Some(self)
    }

    /// Whether this thread is the one that watches and retries.
    pub(crate) fn is_watcher(&self) -> bool {
        self.watcher
    }

    /// Sleeps until this thread is the watcher (at once if it is), or until
    /// `deadline` passes behind the watcher, and says what to do next.
    pub(crate) fn watch_turn(&mut self, deadline: Instant) -> Turn {
        if self.watcher {
            return Turn::Retry;
        }
        let mut state = lock(&self.queue.state);
        loop {
            if state.handed && self.ticket < state.eligible_below {
                state.handed = false;
                self.watcher = true;
                let released = std::mem::take(&mut state.released);
                // Whatever was released since the last watcher's last retry
                // is queued on the watch: sleeping on it first saves a retry
                // that would find the lock taken by that watcher. A shared
                // lock that watcher took does not keep this one out, and a
                // watch handed over at the holder's release comes with the
                // lock free.
                return match self.queue.watch.get() {
                    Some(watch)
                        if watch.keeps_events()
                            && !released
                            && !state.replaced
                            && !self.queue.shared =>
                    {
                        Turn::Sleep
                    }
                    _ => Turn::Retry,
                };
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Turn::OutOfTime;
            };
            state = match self.queue.turn.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Tells the others waiting for this file that the path names another
    /// file now, before this thread leaves to wait for that one.
    pub(crate) fn replaced(&self) {
        lock(&self.queue.state).replaced = true;
    }

    /// The watcher's sleep from `now`, until `deadline` at the latest;
    /// `true` when it took the lock meanwhile.
    ///
    /// Where the platform can end a blocked `flock` at a time
    /// ([`sys::timed_lock`]), the watcher sleeps in the kernel's queue for
    /// the lock, waking at least every [`LONGEST_NAP`] to check that the
    /// path still names `file`. Otherwise it sleeps until the file is closed
    /// somewhere, or the next retry on the schedule: the first such call
    /// makes the watch, on `file` (which `path` named), and returns at once,
    /// since a release just before the watch existed would go unnoticed until
    /// the next retry; the watch then serves later watchers.
    pub(crate) fn sleep(
        &self,
        file: &File,
        path: &Path,
        now: Instant,
        deadline: Instant,
    ) -> io::Result<bool> {
        debug_assert!(self.watcher);
        let until = kernel_wait_until(now, deadline);
        if let Some(taken) = sys::timed_lock(file, self.queue.id, self.queue.shared, until) {
            return taken;
        }
        let Some(watch) = self.queue.watch.get() else {
            let _ = self.queue.watch.set(ReleaseWatch::new(file, path));
            return Ok(false);
        };
        let nap = {
            let mut state = lock(&self.queue.state);
            let nap = state.nap;
            state.nap = (nap * 2).min(LONGEST_NAP);
            nap
        };
        let left = deadline.saturating_duration_since(Instant::now());
        watch.wait(nap.min(left));
        Ok(false)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.forks != sys::forks() {
            // A forked child dropping a lock taken before the fork: the
            // queue is the parent's, and its mutex may have been held at the
            // fork by a thread the child does not have.
            return;
        }
        let mut queues = lock(&self.this_process.queues);
        self.this_process.waiters.fetch_sub(1, Ordering::Relaxed);
        let mut state = lock(&self.queue.state);
        state.waiting -= 1;
        let last = state.waiting == 0;
        // The watcher hands the watch to the others. The threads it was
        // handed to take it when they next look, unless they are leaving:
        // when the last of them leaves without it, the wake-up (which may
        // have been meant for it) goes to any thread waiting then.
        let handed_to_me = state.handed && self.ticket < state.eligible_below;
        if self.watcher && !last {
            state.handed = true;
            state.released = self.holding;
            self.queue.hand_to_those_waiting(&mut state);
        } else if handed_to_me && !last {
            state.eligible -= 1;
            if state.eligible == 0 {
                self.queue.hand_to_those_waiting(&mut state);
            }
        }
        drop(state);
        if last {
            queues.retain(|queue| !Arc::ptr_eq(queue, &self.queue));
        }
        drop(queues);
        // SAFETY: taken once, here, and not used after.
        let queue = unsafe { ManuallyDrop::take(&mut self.queue) };
        if last {
            Queue::keep(queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder's place kept while two threads wait behind it, and those
    /// two places, all for one file (`_dir` keeps it).
    fn held_with_two_behind() -> (tempfile::TempDir, FileId, Place, Place, Place) {
        let dir = tempfile::tempdir().unwrap();
        let (_file, id) = sys::open_for_locking(&dir.path().join("LOCK"), None, false).unwrap();
        let holder = Place::join(id, false);
        let first = Place::join(id, false);
        let second = Place::join(id, false);
        let kept = holder.keep_while_held().expect("kept while others wait");
        (dir, id, kept, first, second)
    }

    /// The releaser waiting again, in a thread of its own: whether it was
    /// handed a turn within `limit`, and its place.
    fn waits_again(id: FileId, limit: Duration) -> std::thread::JoinHandle<(bool, Place)> {
        let (joined, has_joined) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut again = Place::join(id, false);
            joined.send(()).unwrap();
            let turn = again.watch_turn(Instant::now() + limit);
            (matches!(turn, Turn::Retry), again)
        });
        has_joined.recv().unwrap();
        thread
    }

    /// A turn handed at a release to the two threads that were waiting goes
    /// to the one that stays when the other leaves (its time ran out), not
    /// to the releaser, which joined after the release.
    #[test]
    #[cfg_attr(miri, ignore = "opens a file")]
    fn a_thread_leaving_leaves_the_turn_to_those_that_were_waiting() {
        let (_dir, id, kept, mut stays, mut leaves) = held_with_two_behind();
        assert!(matches!(leaves.watch_turn(Instant::now()), Turn::OutOfTime));
        drop(kept); // the release
        let releaser = waits_again(id, Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(100));
        drop(leaves);
        std::thread::sleep(Duration::from_millis(100));
        let took = matches!(stays.watch_turn(Instant::now()), Turn::Retry);
        let (releaser_took, _) = releaser.join().unwrap();
        assert!(
            took && !releaser_took,
            "took: {took}, releaser took: {releaser_took}"
        );
    }

    /// A turn handed at a release to threads that all leave without it
    /// (their time ran out) goes to a thread that joined after the release,
    /// at once: it is not lost until that thread's own limit.
    #[test]
    #[cfg_attr(miri, ignore = "opens a file")]
    fn a_turn_that_all_its_threads_leave_goes_to_one_waiting_then() {
        let (_dir, id, kept, mut first, mut second) = held_with_two_behind();
        assert!(matches!(first.watch_turn(Instant::now()), Turn::OutOfTime));
        assert!(matches!(second.watch_turn(Instant::now()), Turn::OutOfTime));
        drop(kept); // the release
        let later = waits_again(id, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        drop(first);
        drop(second);
        let (took, _) = later.join().unwrap();
        assert!(took, "the turn was lost");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
}

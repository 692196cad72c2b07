//! State that a forked child must not share with its parent.
//!
//! A child starts with a copy of its parent's memory but only the thread
//! that forked: a mutex another thread held at the fork stays held in the
//! child for good, and lists of the parent's waiting threads name threads
//! the child does not have. So such state is made afresh in each process,
//! told apart by [`sys::forks`]; the parent's copy is left behind in the
//! child, never touched or dropped (a few hundred bytes).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::sys;

/// A `T` of this process, made at its first use in each process.
pub(crate) struct PerProcess<T: 'static> {
    current: AtomicPtr<Made<T>>,
    _holds: PhantomData<T>,
}

struct Made<T> {
    forks: u64,
    value: T,
}

impl<T> PerProcess<T> {
    pub(crate) const fn new() -> PerProcess<T> {
        PerProcess {
            current: AtomicPtr::new(std::ptr::null_mut()),
            _holds: PhantomData,
        }
    }

    /// This process's `T`, made by `make` if this process has none yet.
    #[inline]
    pub(crate) fn get(&'static self, make: impl Fn() -> T) -> &'static T {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: a published value is leaked, never freed.
        match unsafe { current.as_ref() } {
            Some(made) if made.forks == sys::forks() => &made.value,
            _ => self.make(make),
        }
    }

    #[cold]
    #[inline(never)]
    fn make(&'static self, make: impl Fn() -> T) -> &'static T {
        let forks = sys::forks();
        loop {
            let current = self.current.load(Ordering::Acquire);
            // SAFETY: a published value is leaked, never freed.
            if let Some(made) = unsafe { current.as_ref() } {
                if made.forks == forks {
                    return &made.value;
                }
            }
            let fresh = Box::into_raw(Box::new(Made {
                forks,
                value: make(),
            }));
            match self
                .current
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: published, so never freed.
                Ok(_) => return unsafe { &(*fresh).value },
                // Another thread published one first: ours was never shared.
                // SAFETY: `fresh` came from `Box::into_raw` just above.
                Err(_) => drop(unsafe { Box::from_raw(fresh) }),
            }
        }
    }
}

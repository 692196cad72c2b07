//! Signal sets and masks, for holding a lock through signals.

pub fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is emptied, then filled, by libc.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

pub fn set_mask(how: libc::c_int, set: &libc::sigset_t) {
    // SAFETY: changes this thread's signal mask; the set is valid.
    unsafe { libc::pthread_sigmask(how, set, std::ptr::null_mut()) };
}

//! Where the ledger's scheduled changes read the time: the system clock in service, a clock
//! that tests move by hand (no test sleeps until a schedule is due).

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + 'static {
    /// UTC microseconds since the Unix epoch.
    fn now_us(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        crate::store::sled_log::now_us()
    }
}

/// A clock that stands still until [`ManualClock::set`] moves it.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_us: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_us))
    }

    pub fn set(&self, now_us: i64) {
        self.0.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

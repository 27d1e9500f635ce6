//! A duration histogram with fixed buckets; recording is atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histogram buckets, in seconds (`+Inf` is implied).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// A histogram of durations with fixed buckets; recording is atomic adds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one duration (`Relaxed`: standalone tallies).
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts one duration too short to have read a clock for (first bucket, zero sum).
    pub fn record_immediate(&self) {
        self.buckets[0].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now: cumulative per bucket (as Prometheus wants them),
    /// the count and the sum.
    pub fn read(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            ..HistogramSnapshot::default()
        };
        let mut cumulative = 0;
        for (slot, n) in snapshot.cumulative.iter_mut().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            *slot = cumulative;
        }
        snapshot
    }
}

/// A [`Histogram`] at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Durations at or under each bound of [`DURATION_BUCKETS`].
    pub cumulative: [u64; DURATION_BUCKETS.len()],
    /// Durations recorded.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_micros: u64,
}

impl HistogramSnapshot {
    /// Adds another histogram's counts to these (several servers' as one).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.cumulative.iter_mut().zip(other.cumulative) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_micros += other.sum_micros;
    }

    /// The sum, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }
}

//! glibc's allocator, told to keep large buffers out of its heaps
//! (`malloc_mmap_threshold`, off by default).
//!
//! glibc gives an allocation of 128 KiB or more a mapping of its own, which
//! goes back to the system when freed. But each time such a mapping is
//! freed, glibc raises that threshold to the freed size (up to 32 MiB), so
//! after the first megabyte answer later ones are carved from the threads'
//! heaps instead. Freed there, most of it stays with the process: the heaps
//! of the workers and of the threads that shape large results keep their
//! peaks apart. Under every pool filled at once (`scripts/pools.sh`, release)
//! that retention took the daemon's peak RSS to 251-273 MiB; with the
//! threshold pinned at 128 KiB, 170-173 MiB.
//!
//! The price is paid by other clients: each megabyte value a statement
//! builds is then mapped, faulted in page by page and unmapped (which
//! interrupts the other cores), and a neighbour's p99 beside 10 MB values
//! went from 2.0-2.8x its quiet figure to 3.4-3.8x. So it is an operator's
//! choice (a host that links the library sets its own process's allocator),
//! for a machine where memory is the scarcer of the two.

/// The largest threshold glibc takes on a 64-bit machine (its
/// `DEFAULT_MMAP_THRESHOLD_MAX`).
pub(crate) const MAX_THRESHOLD: usize = 32 * 1024 * 1024;

/// Whether this build's allocator has the threshold (glibc's).
pub(crate) const AVAILABLE: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Pins glibc's threshold for mapping allocations on their own at `bytes`
/// (1 to [`MAX_THRESHOLD`], checked by the settings), so it no longer rises.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn pin_mmap_threshold(bytes: usize) -> Result<(), String> {
    let value = libc::c_int::try_from(bytes).map_err(|_| format!("{bytes} is too large"))?;
    // SAFETY: mallopt sets one parameter of glibc's allocator under the
    // allocator's own lock; it reads and writes no memory of ours, and any
    // thread may call it at any time.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) };
    if set == 1 {
        Ok(())
    } else {
        Err(format!("glibc refused a threshold of {bytes} bytes"))
    }
}

/// Other allocators have no such threshold (the settings refuse it first).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn pin_mmap_threshold(_bytes: usize) -> Result<(), String> {
    Err("only glibc's allocator has this threshold".to_owned())
}

//! Memory given back to the box. glibc's malloc, left alone, raises its mmap threshold
//! each time a large block is freed, so after one 30 MB message or a burst of argon2
//! checks (12 MiB each) later large blocks come from the heap and stay there: RSS
//! never falls. Fixing the threshold keeps every large block mmap'd (returned to the
//! kernel on free), fewer arenas bound fragmentation across worker threads, and a
//! periodic trim hands back what small allocations left free at the heap's top.

use std::time::Duration;

use tokio::sync::watch;

/// Blocks this large or larger are mmap'd and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// malloc arenas, whatever the number of threads (glibc's default is 8 per core).
const ARENAS: i32 = 4;
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Called once, before the runtime starts threads.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Trims the heaps every few seconds until shutdown.
pub async fn trim_periodically(mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = crate::listener::stopped(&mut stop) => return,
            _ = tokio::time::sleep(TRIM_EVERY) => {}
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim is thread-safe and only returns free memory.
            unsafe { libc::malloc_trim(0) }
        })
        .await;
    }
}

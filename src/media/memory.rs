//! The memory a room's streaming threads leave behind, given back.
//!
//! GStreamer starts many streaming threads per room (a jitter buffer, a
//! queue, a mixer each), and glibc gives threads their own malloc arenas,
//! up to eight per core. An arena keeps what its threads freed after they
//! end, so a server that holds lesson after lesson grows through the day
//! while no room is open. Two things keep it flat: the arenas are capped
//! at start, before any thread exists ([`cap_arenas`]), and what is free
//! at the top of each heap goes back to the system when a room closes
//! ([`give_back`]).

/// Arenas allowed when `MALLOC_ARENA_MAX` is not set.
pub const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`], unless the operator set
/// `MALLOC_ARENA_MAX` (glibc reads it itself). Call before any thread
/// starts: an arena made before stays. Does nothing beyond glibc.
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator settings; called before
        // other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Returns the free memory of every arena to the system, off the async
/// threads (it walks the heaps).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn_blocking(|| {
            // SAFETY: malloc_trim is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    }
}

//! The `strata` binary: a thin shell over [`strata::cli`].

fn main() -> std::process::ExitCode {
    keep_freed_memory_for_reuse();
    strata::cli::main()
}

/// glibc hands blocks from 128 KiB up straight back to the kernel when
/// they are freed (and trims its heaps), so the next batch's buffers of
/// the same size are fresh pages again, each zeroed by the kernel on first
/// touch. Reading a table decodes batch after batch of such buffers: kept
/// in the heap instead, they are reused. Blocks of 32 MiB and more (whole
/// columns) are still mapped and unmapped on their own, and the run gives
/// free memory back between its stages (`malloc_trim`).
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists and touches no allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

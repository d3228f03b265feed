//! How the process allocates: mimalloc (each binary declares it its `#[global_allocator]`)
//! gives freed memory back at once, and SQLite allocates through it too. [`set_up`] is called
//! first thing in `main` (the binary's and the benches'), before any other thread exists.

use std::ffi::{c_int, c_void};

use libsqlite3_sys as sqlite;

/// mimalloc's `mi_option_purge_delay` (option 15 of `mi_option_e` in its `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocators up; call first thing in `main`, before any thread or connection.
pub fn set_up() {
    purge_freed_memory_at_once();
    sqlite_allocates_with_mimalloc();
}

/// Freed memory goes back to the system at once rather than 10 ms later (and, in an idle
/// process, never): an idle `serve` settles at 29 MB instead of 47 MB and a 20,000-task run
/// peaks at 54-56 MB, for no measured loss of speed (BENCHMARKS.md).
/// `MIMALLOC_PURGE_DELAY` in the environment still decides when set.
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain store of one option, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// SQLite allocates through mimalloc, without its memory statistics: through glibc's malloc
/// and the statistics' global mutex, its allocations were ~11% of the instructions of a
/// 2,000-task `orchestrator run` (BENCHMARKS.md). If SQLite refuses (it was already
/// initialised), it keeps its own allocator: slower, not wrong.
#[allow(unsafe_code)]
fn sqlite_allocates_with_mimalloc() {
    let methods = sqlite::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: before any SQLite connection or thread exists (SQLite's rule for
    // `sqlite3_config`), which copies `methods` before it returns.
    let configured = unsafe {
        sqlite::sqlite3_config(
            sqlite::SQLITE_CONFIG_MALLOC,
            &methods as *const sqlite::sqlite3_mem_methods,
        ) == sqlite::SQLITE_OK
            && sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MEMSTATUS, 0 as c_int)
                == sqlite::SQLITE_OK
    };
    if !configured {
        eprintln!("warning: SQLite keeps its own allocator (sqlite3_config refused)");
    }
}

// SQLite's allocator methods (`sqlite3_mem_methods`): sizes are never negative, pointers are
// ones these methods returned, and mimalloc aligns to at least the 8 bytes SQLite needs.

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    // SAFETY: any size; null on failure, as SQLite expects.
    unsafe { libmimalloc_sys::mi_malloc(size.max(0) as usize) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_free(block: *mut c_void) {
    // SAFETY: `block` came from sqlite_malloc or sqlite_realloc.
    unsafe { libmimalloc_sys::mi_free(block) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_realloc(block: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: `block` came from these methods.
    unsafe { libmimalloc_sys::mi_realloc(block, size.max(0) as usize) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_size(block: *mut c_void) -> c_int {
    // SAFETY: `block` came from these methods; SQLite's allocations are under 2 GiB.
    unsafe { libmimalloc_sys::mi_usable_size(block) as c_int }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    // SAFETY: a pure function of the size.
    let good = unsafe { libmimalloc_sys::mi_good_size(size.max(0) as usize) };
    c_int::try_from(good).unwrap_or(size)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    sqlite::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

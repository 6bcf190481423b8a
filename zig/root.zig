//! Snakepit's native library, as a Zig API.
//!
//! Zig code imports this file; other languages reach the same functionality through the C ABI in
//! `c_api.zig`, the only file that exports symbols. Each concept lives in its own file.

pub const Status = @import("status.zig").Status;
pub const Error = @import("status.zig").Error;
pub const status_name_bytes_max = @import("status.zig").name_bytes_max;
pub const version = @import("version.zig");
pub const crc32c = @import("crc32c.zig");
pub const os_failure = @import("os_failure.zig");
pub const header = @import("header.zig");
pub const liveness = @import("liveness.zig");
pub const futex = @import("futex.zig");
pub const pid_table = @import("pid_table.zig");
pub const rwlock = @import("rwlock.zig");
pub const limits = @import("limits.zig");
pub const region_name = @import("region_name.zig");
pub const region = @import("region.zig");
pub const refcount = @import("refcount.zig");
pub const reaper = @import("reaper.zig");
pub const dlpack = @import("dlpack.zig");
pub const handle_table = @import("handle_table.zig");
pub const region_handle = @import("region_handle.zig");
pub const words = @import("words.zig");

test {
    // Referencing each file here makes `zig build test` run the tests at the bottom of each.
    _ = @import("status.zig");
    _ = @import("version.zig");
    _ = @import("crc32c.zig");
    _ = @import("os_failure.zig");
    _ = @import("header.zig");
    _ = @import("liveness.zig");
    _ = @import("futex.zig");
    _ = @import("pid_table.zig");
    _ = @import("rwlock.zig");
    _ = @import("rwlock_stress.zig");
    _ = @import("rwlock_test.zig");
    _ = @import("limits.zig");
    _ = @import("region_name.zig");
    _ = @import("region.zig");
    _ = @import("refcount.zig");
    _ = @import("reaper.zig");
    _ = @import("dlpack.zig");
    _ = @import("fuzz.zig");
    _ = @import("handle_table.zig");
    _ = @import("region_handle.zig");
    _ = @import("words.zig");
}

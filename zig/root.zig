//! Snakepit's native library, as a Zig API.
//!
//! Zig code imports this file; other languages reach the same functionality through the C ABI in
//! `c_api.zig`, the only file that exports symbols. Each concept lives in its own file.

pub const Status = @import("status.zig").Status;
pub const status_name_bytes_max = @import("status.zig").name_bytes_max;
pub const version = @import("version.zig");
pub const crc32c = @import("crc32c.zig");

test {
    // Referencing each file here makes `zig build test` run the tests at the bottom of each.
    _ = @import("status.zig");
    _ = @import("version.zig");
    _ = @import("crc32c.zig");
}

//! Versions of the native library.
//!
//! The ABI version changes whenever an export's signature, meaning or ownership rule changes in a
//! way an old caller would get wrong; loaders refuse a library whose ABI version differs from the
//! one they were written for. The library version is informational.

const std = @import("std");
const assert = std.debug.assert;

/// Bumped on every incompatible change to the C ABI in `c_api.zig`.
pub const abi_version: u32 = 1;

/// The release of this library; follows the package version.
pub const library_version: std.SemanticVersion = .{ .major = 0, .minor = 1, .patch = 0 };

comptime {
    assert(abi_version > 0);
    assert(library_version.pre == null);
    assert(library_version.build == null);
}

const testing = std.testing;

test "the ABI version is 1" {
    try testing.expectEqual(@as(u32, 1), abi_version);
}

test "the library version is 0.1.0" {
    const expected: std.SemanticVersion = .{ .major = 0, .minor = 1, .patch = 0 };
    try testing.expectEqual(std.math.Order.eq, library_version.order(expected));
}

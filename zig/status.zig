//! Status codes returned by every exported function: 0 is success, negative values are errors.
//!
//! The numeric values and the names are part of the ABI. TypeScript (`ffi/symbols.ts`) and Python
//! (`snakepit_bridge.native`) mirror them, and `tests/native_symbols.test.ts` checks the mirrors,
//! so a value never changes meaning: new statuses take new numbers.

const std = @import("std");
const assert = std.debug.assert;

pub const Status = enum(i32) {
    ok = 0,
    /// A caller passed a null pointer, an unknown code or a value out of range.
    invalid_argument = -1,
    /// An output buffer was too small; the required size was written where the export says.
    buffer_too_small = -2,

    /// The number that crosses the C ABI.
    pub fn code(status: Status) i32 {
        const value = @intFromEnum(status);
        assert(value <= 0);
        return value;
    }

    /// The stable snake_case name, for rendering messages on the other side of the ABI.
    pub fn name(status: Status) []const u8 {
        const text = @tagName(status);
        assert(text.len > 0);
        assert(text.len <= name_bytes_max);
        return text;
    }

    /// The status for a number received over the ABI, or null when this library version does
    /// not define it.
    pub fn fromCode(value: i32) ?Status {
        const status = std.meta.intToEnum(Status, value) catch return null;
        assert(@intFromEnum(status) == value);
        return status;
    }
};

/// The longest status name, in bytes; a buffer this size always holds any name.
pub const name_bytes_max = 64;

comptime {
    for (std.meta.fields(Status)) |field| {
        assert(field.name.len <= name_bytes_max);
        assert(field.value <= 0);
    }
    assert(@sizeOf(Status) == @sizeOf(i32));
}

const testing = std.testing;

test "status codes keep their ABI values" {
    try testing.expectEqual(@as(i32, 0), Status.ok.code());
    try testing.expectEqual(@as(i32, -1), Status.invalid_argument.code());
    try testing.expectEqual(@as(i32, -2), Status.buffer_too_small.code());
}

test "status names are the stable snake_case tags" {
    try testing.expectEqualStrings("ok", Status.ok.name());
    try testing.expectEqualStrings("invalid_argument", Status.invalid_argument.name());
    try testing.expectEqualStrings("buffer_too_small", Status.buffer_too_small.name());
}

test "fromCode round-trips every status and rejects unknown codes" {
    for (std.enums.values(Status)) |status| {
        try testing.expectEqual(status, Status.fromCode(status.code()).?);
    }
    try testing.expectEqual(@as(?Status, null), Status.fromCode(1));
    try testing.expectEqual(@as(?Status, null), Status.fromCode(-1000));
    try testing.expectEqual(@as(?Status, null), Status.fromCode(std.math.minInt(i32)));
    try testing.expectEqual(@as(?Status, null), Status.fromCode(std.math.maxInt(i32)));
}

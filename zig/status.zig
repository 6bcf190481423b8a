//! Status codes returned by every exported function: 0 is success, negative values are errors.
//!
//! The numeric values and the names are part of the ABI. TypeScript (`ffi/symbols.ts`) and Python
//! (`snakepit_bridge.native`) mirror them, and `tests/native_symbols.test.ts` checks the mirrors,
//! so a value never changes meaning: new statuses take new numbers.
//!
//! Inside the library, fallible functions return `Error!T`, an error set with one member per
//! non-ok status (same names), and `c_api.zig` turns an error into its status with `fromError`.
//! `owner_dead` is the one status that reports success with a warning: the lock *is* held.

const std = @import("std");
const assert = std.debug.assert;

pub const Status = enum(i32) {
    ok = 0,
    /// A caller passed a null pointer, an unknown code or a value out of range.
    invalid_argument = -1,
    /// An output buffer was too small; the required size was written where the export says.
    buffer_too_small = -2,
    /// A system call failed; its errno and the operation travel in the error record.
    os_error = -3,
    /// No shared-memory region has this name (it was never created or is already unlinked).
    not_found = -4,
    /// A region with this name exists already (every random name tried was taken).
    already_exists = -5,
    /// The object is not a Snakepit region: wrong magic, or smaller than a header.
    not_snakepit_region = -6,
    /// The region was written by another layout version of this library.
    layout_mismatch = -7,
    /// The region's generation differs from the one the caller expected (a stale descriptor).
    generation_mismatch = -8,
    /// The header's sizes and offsets contradict each other or the object's size.
    corrupt_header = -9,
    /// The requested payload is larger than `limits.region_payload_bytes_max`.
    region_too_large = -10,
    /// Mapping the region would exceed `limits.process_mapped_bytes_max`.
    process_bytes_exhausted = -11,
    /// This process already has `limits.process_regions_max` regions open.
    process_regions_exhausted = -12,
    /// `/dev/shm` has too little free space for the region (enlarge it, see docs/native.md).
    shm_full = -13,
    /// The handle does not name an open region of this process.
    invalid_handle = -14,
    /// The handle is being closed; a wait on it was ended.
    handle_closed = -15,
    /// This process released a region more often than it retained it.
    over_release = -16,
    /// The region's holder table has no free slot for another process.
    holder_table_full = -17,
    /// The region's reference count already reached zero; it is (being) unlinked.
    region_released = -18,
    /// The reference count would pass `limits.references_max`.
    reference_overflow = -19,
    /// A try-lock found the lock held in a conflicting mode.
    would_block = -20,
    /// A timed lock did not get the lock before its deadline.
    timed_out = -21,
    /// The lock is now held, but its previous holder died holding it: data may be inconsistent.
    owner_dead = -22,
    /// An unlock by a process that does not hold the lock in that mode.
    not_locked = -23,
    /// The lock's reader table has no free slot for another process.
    reader_table_full = -24,
    /// A wait was cancelled by `snakepit_lock_cancel`.
    cancelled = -25,
    /// A descriptor's bytes are malformed: magic, version, length, reserved bytes or a field.
    descriptor_malformed = -26,
    /// The descriptor's dtype (code, bits, lanes) is not one this library supports.
    unsupported_dtype = -27,
    /// The descriptor's device is not the CPU (shared memory lives in host memory).
    unsupported_device = -28,
    /// Some element the shape and strides reach lies outside the region's payload.
    descriptor_out_of_bounds = -29,
    /// The byte offset is not a multiple of the element's alignment.
    descriptor_misaligned = -30,
    /// The shape, strides or offsets overflow 64-bit arithmetic.
    descriptor_overflow = -31,
    /// The descriptor names another region than the one it was checked against.
    descriptor_region_mismatch = -32,
    /// A region or instance name does not follow `/snakepit-<instance>-<32 hex digits>`.
    invalid_name = -33,

    /// The number that crosses the C ABI.
    pub fn code(status: Status) i32 {
        const value = @intFromEnum(status);
        assert(value <= 0);
        assert(value >= lowest_code);
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

    /// The status that reports `err`, a member of `Error` (same name).
    pub fn fromError(err: Error) Status {
        inline for (std.meta.fields(Status)) |field| {
            if (comptime !std.mem.eql(u8, field.name, "ok")) {
                comptime assert(field.value < 0);
                if (err == @field(Error, field.name)) return @enumFromInt(field.value);
            }
        }
        unreachable; // Error has exactly the non-ok statuses (see the comptime block below)
    }
};

/// One error per non-ok status, with the status's name, for `try` inside the library.
pub const Error = error_set: {
    const fields = std.meta.fields(Status);
    var errors: [fields.len - 1]std.builtin.Type.Error = undefined;
    var count = 0;
    for (fields) |field| {
        if (std.mem.eql(u8, field.name, "ok")) continue;
        errors[count] = .{ .name = field.name };
        count += 1;
    }
    break :error_set @Type(.{ .error_set = &errors });
};

/// The longest status name, in bytes; a buffer this size always holds any name.
pub const name_bytes_max = 64;

/// The most negative status code defined.
const lowest_code = -33;

comptime {
    for (std.meta.fields(Status)) |field| {
        assert(field.name.len <= name_bytes_max);
        assert(field.value <= 0);
        assert(field.value >= lowest_code);
    }
    assert(@sizeOf(Status) == @sizeOf(i32));
    assert(std.meta.fields(Status).len == 1 - lowest_code);
}

const testing = std.testing;

test "status codes keep their ABI values" {
    try testing.expectEqual(@as(i32, 0), Status.ok.code());
    try testing.expectEqual(@as(i32, -1), Status.invalid_argument.code());
    try testing.expectEqual(@as(i32, -2), Status.buffer_too_small.code());
    try testing.expectEqual(@as(i32, -22), Status.owner_dead.code());
    try testing.expectEqual(@as(i32, -33), Status.invalid_name.code());
}

test "status names are the stable snake_case tags" {
    try testing.expectEqualStrings("ok", Status.ok.name());
    try testing.expectEqualStrings("invalid_argument", Status.invalid_argument.name());
    try testing.expectEqualStrings("buffer_too_small", Status.buffer_too_small.name());
    try testing.expectEqualStrings("shm_full", Status.shm_full.name());
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

test "fromError maps every error to the status of the same name" {
    for (std.enums.values(Status)) |status| {
        if (status == .ok) continue;
        try testing.expectEqual(status, Status.fromError(errorNamed(status)));
    }
    try testing.expectEqual(Status.owner_dead, Status.fromError(error.owner_dead));
    try testing.expectEqual(Status.not_found, Status.fromError(error.not_found));
}

fn errorNamed(status: Status) Error {
    inline for (@typeInfo(Error).error_set.?) |member| {
        if (std.mem.eql(u8, member.name, status.name())) return @field(Error, member.name);
    }
    unreachable;
}

//! Limits on shared memory, and the check that `/dev/shm` has room before a region is created.
//!
//! tmpfs allocates pages when they are first touched, not when the object is truncated, so a
//! region larger than the free space is created without complaint and its writer is killed by
//! SIGBUS later. Checking `statvfs("/dev/shm")` first turns that into `shm_full` with a message
//! saying how to enlarge /dev/shm. The check is best effort (another process may fill /dev/shm
//! between check and use); `create` with the reserve flag allocates every page up front instead.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const Failure = @import("os_failure.zig").Failure;
const header_file = @import("header.zig");

/// The largest payload of one region: 64 GiB.
pub const region_payload_bytes_max: u64 = 64 << 30;
/// The most bytes one process may have mapped across all its regions: 256 GiB.
pub const process_mapped_bytes_max: u64 = 256 << 30;
/// The most regions one process may have open at once (the size of its handle table).
pub const process_regions_max: u32 = 1024;
/// The most references a region can count (retains across all processes).
pub const references_max: u32 = 1 << 30;
/// Where POSIX shared-memory objects live on Linux.
pub const shm_directory = "/dev/shm";

comptime {
    assert(region_payload_bytes_max <= process_mapped_bytes_max);
    assert(process_regions_max > 0);
    assert(std.math.isPowerOfTwo(process_regions_max));
    assert(region_payload_bytes_max + header_file.payload_offset_default < 1 << 63);
}

/// The limits one check applies; `default` holds the constants above, tests pass smaller ones.
pub const Limits = struct {
    region_payload_bytes_max: u64 = region_payload_bytes_max,
    process_mapped_bytes_max: u64 = process_mapped_bytes_max,
    process_regions_max: u32 = process_regions_max,
};

/// What this process has open now.
pub const Usage = struct {
    regions: u32,
    mapped_bytes: u64,
};

/// Checks that a process using `usage` may map one more region of `payload_bytes`.
pub fn checkMapping(limits: Limits, usage: Usage, payload_bytes: u64) Error!void {
    assert(usage.regions <= limits.process_regions_max);
    assert(usage.mapped_bytes <= limits.process_mapped_bytes_max);
    if (payload_bytes == 0) return error.invalid_argument;
    if (payload_bytes > limits.region_payload_bytes_max) return error.region_too_large;
    if (usage.regions >= limits.process_regions_max) return error.process_regions_exhausted;
    const total = payload_bytes + header_file.payload_offset_default;
    const mapped_after = std.math.add(u64, usage.mapped_bytes, total) catch {
        return error.process_bytes_exhausted;
    };
    if (mapped_after > limits.process_mapped_bytes_max) return error.process_bytes_exhausted;
}

/// glibc's `struct statvfs` on 64-bit Linux, with room to spare at the end.
const Statvfs = extern struct {
    block_bytes: c_ulong,
    fragment_bytes: c_ulong,
    blocks: u64,
    blocks_free: u64,
    blocks_available: u64,
    files: u64,
    files_free: u64,
    files_available: u64,
    filesystem_id: c_ulong,
    flags: c_ulong,
    name_bytes_max: c_ulong,
    spare: [16]c_int,
};

extern "c" fn statvfs(path: [*:0]const u8, buffer: *Statvfs) c_int;

/// Bytes an unprivileged process can still allocate in `/dev/shm`.
pub fn shmAvailableBytes(failure: *Failure) Error!u64 {
    var stats: Statvfs = undefined;
    comptime assert(@sizeOf(Statvfs) >= 112); // glibc's struct statvfs on 64-bit Linux
    if (statvfs(shm_directory, &stats) != 0) {
        failure.setFromErrno(.statvfs);
        return error.os_error;
    }
    assert(stats.blocks_available <= stats.blocks);
    const available = std.math.mul(u64, stats.blocks_available, stats.fragment_bytes) catch {
        return std.math.maxInt(u64);
    };
    return available;
}

/// Fails with `shm_full` (recording statvfs with errno 0) unless `/dev/shm` has `total_bytes`.
pub fn checkShmRoom(total_bytes: u64, failure: *Failure) Error!void {
    assert(total_bytes > header_file.payload_offset_default);
    const available = try shmAvailableBytes(failure);
    if (available < total_bytes) {
        failure.set(.statvfs, 0);
        return error.shm_full;
    }
}

const testing = std.testing;

test "a mapping within every limit passes" {
    try checkMapping(.{}, .{ .regions = 0, .mapped_bytes = 0 }, 1);
    try checkMapping(.{}, .{ .regions = 1023, .mapped_bytes = 0 }, region_payload_bytes_max);
}

test "each limit fails with its own status" {
    const small: Limits = .{
        .region_payload_bytes_max = 1 << 20,
        .process_mapped_bytes_max = 3 << 20,
        .process_regions_max = 2,
    };
    const empty: Usage = .{ .regions = 0, .mapped_bytes = 0 };
    try testing.expectError(error.invalid_argument, checkMapping(small, empty, 0));
    try testing.expectError(error.region_too_large, checkMapping(small, empty, (1 << 20) + 1));
    const full: Usage = .{ .regions = 2, .mapped_bytes = 0 };
    try testing.expectError(error.process_regions_exhausted, checkMapping(small, full, 1));
    const heavy: Usage = .{ .regions = 1, .mapped_bytes = 2 << 20 };
    try testing.expectError(error.process_bytes_exhausted, checkMapping(small, heavy, 1 << 20));
    try checkMapping(small, heavy, (1 << 20) - header_file.payload_offset_default);
}

test "/dev/shm reports its free space, and a region larger than that is shm_full" {
    var failure: Failure = .{};
    const available = try shmAvailableBytes(&failure);
    try testing.expect(available > 0);
    try testing.expectError(error.shm_full, checkShmRoom(available +| (1 << 30), &failure));
    try testing.expectEqual(@as(u32, 7), failure.record().op);
    try testing.expectEqual(@as(u32, 0), failure.record().errno);
}

//! The fixed header at the start of every shared-memory region.
//!
//! Every process that maps a region reads and writes this header: identity fields written once
//! by the creator (published by storing `magic` last, with release ordering), then the lock and
//! reference-count words, each on its own 64-byte cache line, then the holder and reader tables.
//! The payload starts at `payload_offset` (4096: page aligned, so 256-byte aligned as promised).
//!
//! The layout is pinned by the comptime asserts below; `snakepit_header_layout` reports the
//! offsets so the TypeScript and Python mirrors can be tested against them.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;

/// "SNAKEPIT" as bytes in memory (little-endian u64).
pub const magic_value: u64 = 0x5449_5045_4B41_4E53;
/// Bumped whenever a field moves or changes meaning; regions of another version are refused.
pub const layout_version_current: u32 = 1;
/// Distinct processes recorded as holding references (the reaper's view of who uses a region).
pub const holder_slots_max = 64;
/// Distinct processes that can hold the shared lock at once.
pub const reader_slots_max = 64;
/// The payload's alignment guarantee.
pub const payload_alignment = 256;
/// Where the payload starts: one page after the region's start.
pub const payload_offset_default = 4096;
/// The largest pid Linux hands out is below 2^22 (PID_MAX_LIMIT), so a pid fits 22 bits.
pub const pid_max = (1 << 22) - 1;

/// Header flag: a lock holder died holding the lock at least once (sticky, informational).
pub const flag_owner_died: u32 = 1 << 0;
pub const flags_known: u32 = flag_owner_died;

pub const Header = extern struct {
    magic: u64,
    layout_version: u32,
    header_bytes: u32,
    generation: u64,
    total_bytes: u64,
    payload_offset: u64,
    payload_bytes: u64,
    creator_pid: u32,
    flags: u32,
    creation_time_ns: u64,
    reserved_identity: [8]u64,
    lock_state: u32,
    lock_drain_sequence: u32,
    lock_owner_deaths: u32,
    reserved_lock: [13]u32,
    reference_count: u32,
    reserved_reference: [15]u32,
    /// Slot = pid << 32 | references held by that pid; 0 = free.
    holders: [holder_slots_max]u64,
    /// Slot = pid << 32 | shared locks held by that pid; 0 = free.
    readers: [reader_slots_max]u64,
};

/// The fields a mirror must agree on, in the order `snakepit_header_layout` reports them.
pub const layout_fields = [_][]const u8{
    "magic",             "layout_version",   "header_bytes",  "generation",
    "total_bytes",       "payload_offset",   "payload_bytes", "creator_pid",
    "flags",             "creation_time_ns", "lock_state",    "lock_drain_sequence",
    "lock_owner_deaths", "reference_count",  "holders",       "readers",
};

comptime {
    assert(@sizeOf(Header) == 1280);
    assert(@offsetOf(Header, "magic") == 0);
    assert(@offsetOf(Header, "layout_version") == 8);
    assert(@offsetOf(Header, "header_bytes") == 12);
    assert(@offsetOf(Header, "generation") == 16);
    assert(@offsetOf(Header, "total_bytes") == 24);
    assert(@offsetOf(Header, "payload_offset") == 32);
    assert(@offsetOf(Header, "payload_bytes") == 40);
    assert(@offsetOf(Header, "creator_pid") == 48);
    assert(@offsetOf(Header, "flags") == 52);
    assert(@offsetOf(Header, "creation_time_ns") == 56);
    assert(@offsetOf(Header, "lock_state") == 128);
    assert(@offsetOf(Header, "lock_drain_sequence") == 132);
    assert(@offsetOf(Header, "lock_owner_deaths") == 136);
    assert(@offsetOf(Header, "reference_count") == 192);
    assert(@offsetOf(Header, "holders") == 256);
    assert(@offsetOf(Header, "readers") == 768);
    assert(@sizeOf(Header) <= payload_offset_default);
    assert(payload_offset_default % payload_alignment == 0);
    assert(std.math.isPowerOfTwo(payload_alignment));
}

/// The fields of a new header, as the creator chooses them.
pub const Identity = struct {
    generation: u64,
    payload_bytes: u64,
    creator_pid: u32,
    creation_time_ns: u64,
};

/// Writes a fresh header with the creator as sole holder (one reference), then publishes it by
/// storing the magic last. `header` points into a zeroed, newly truncated object.
pub fn initialize(header: *Header, identity: Identity) void {
    assert(identity.creator_pid != 0);
    assert(identity.creator_pid <= pid_max);
    assert(identity.payload_bytes > 0);
    assert(identity.generation != 0);
    header.* = std.mem.zeroes(Header);
    header.layout_version = layout_version_current;
    header.header_bytes = @sizeOf(Header);
    header.generation = identity.generation;
    header.payload_offset = payload_offset_default;
    header.payload_bytes = identity.payload_bytes;
    header.total_bytes = payload_offset_default + identity.payload_bytes;
    header.creator_pid = identity.creator_pid;
    header.creation_time_ns = identity.creation_time_ns;
    header.reference_count = 1;
    header.holders[0] = @as(u64, identity.creator_pid) << 32 | 1;
    @atomicStore(u64, &header.magic, magic_value, .release);
}

/// Where the payload lies, as a checked header says.
pub const PayloadBounds = struct { offset: u64, bytes: u64 };

/// Checks that `header`, found at the start of an object of `object_bytes` bytes, is a complete
/// Snakepit header of this layout whose sizes and offsets agree, and returns the payload's
/// bounds. Never trusts a field before checking it: the header may be garbage, half written, or
/// written by someone hostile, and may change while it is read, so every field is read once
/// into a local and only the locals are checked and returned.
pub fn check(header: *const Header, object_bytes: u64) Error!PayloadBounds {
    if (object_bytes < @sizeOf(Header)) return error.not_snakepit_region;
    if (@atomicLoad(u64, &header.magic, .acquire) != magic_value) return error.not_snakepit_region;
    const layout_version = @atomicLoad(u32, &header.layout_version, .monotonic);
    const header_bytes = @atomicLoad(u32, &header.header_bytes, .monotonic);
    const total_bytes = @atomicLoad(u64, &header.total_bytes, .monotonic);
    const payload_offset = @atomicLoad(u64, &header.payload_offset, .monotonic);
    const payload_bytes = @atomicLoad(u64, &header.payload_bytes, .monotonic);
    const creator_pid = @atomicLoad(u32, &header.creator_pid, .monotonic);
    const flags = @atomicLoad(u32, &header.flags, .monotonic);
    const generation = @atomicLoad(u64, &header.generation, .monotonic);
    if (layout_version != layout_version_current) return error.layout_mismatch;
    if (header_bytes != @sizeOf(Header)) return error.corrupt_header;
    if (total_bytes != object_bytes) return error.corrupt_header;
    if (payload_offset < @sizeOf(Header)) return error.corrupt_header;
    if (payload_offset % payload_alignment != 0) return error.corrupt_header;
    if (payload_offset >= total_bytes) return error.corrupt_header;
    if (payload_bytes != total_bytes - payload_offset) return error.corrupt_header;
    if (creator_pid == 0 or creator_pid > pid_max) return error.corrupt_header;
    if (flags & ~flags_known != 0) return error.corrupt_header;
    if (generation == 0) return error.corrupt_header;
    assert(payload_bytes > 0);
    assert(payload_offset + payload_bytes == object_bytes);
    assert(payload_offset % payload_alignment == 0);
    return .{ .offset = payload_offset, .bytes = payload_bytes };
}

/// The pid recorded in a holder or reader slot.
pub fn slotPid(slot: u64) u32 {
    const pid: u32 = @intCast(slot >> 32);
    assert(slot == 0 or slot >> 32 == pid);
    return pid;
}

/// The count recorded in a holder or reader slot.
pub fn slotCount(slot: u64) u32 {
    const count: u32 = @truncate(slot);
    assert(count <= slot);
    return count;
}

/// A slot recording `count` for `pid`, or 0 (free) when the count is zero.
pub fn slotValue(pid: u32, count: u32) u64 {
    assert(pid != 0);
    assert(pid <= pid_max);
    if (count == 0) return 0;
    return @as(u64, pid) << 32 | count;
}

const testing = std.testing;

fn testHeader(payload_bytes: u64) Header {
    var header: Header = undefined;
    initialize(&header, .{
        .generation = 1,
        .payload_bytes = payload_bytes,
        .creator_pid = 42,
        .creation_time_ns = 7,
    });
    return header;
}

test "a fresh header passes its check and records the creator as the sole holder" {
    const header = testHeader(1000);
    const bounds = try check(&header, payload_offset_default + 1000);
    try testing.expectEqual(PayloadBounds{ .offset = payload_offset_default, .bytes = 1000 }, bounds);
    try testing.expectEqual(@as(u32, 1), header.reference_count);
    try testing.expectEqual(@as(u32, 42), slotPid(header.holders[0]));
    try testing.expectEqual(@as(u32, 1), slotCount(header.holders[0]));
    try testing.expectEqual(@as(u64, 0), header.holders[1]);
    try testing.expectEqual(@as(u64, 0), header.payload_offset % payload_alignment);
}

test "check refuses foreign, other-version and inconsistent headers" {
    var header = testHeader(1000);
    const size: u64 = payload_offset_default + 1000;
    try testing.expectError(error.not_snakepit_region, check(&header, 100));
    try testing.expectError(error.not_snakepit_region, check(&header, @sizeOf(Header) - 1));
    try testing.expectError(error.corrupt_header, check(&header, size + 1));
    header.layout_version = 2;
    try testing.expectError(error.layout_mismatch, check(&header, size));
    header = testHeader(1000);
    header.payload_offset = 4000;
    try testing.expectError(error.corrupt_header, check(&header, size));
    header = testHeader(1000);
    header.payload_bytes += 1;
    try testing.expectError(error.corrupt_header, check(&header, size));
    header = testHeader(1000);
    header.flags = 1 << 9;
    try testing.expectError(error.corrupt_header, check(&header, size));
    header = testHeader(1000);
    header.magic = 0;
    try testing.expectError(error.not_snakepit_region, check(&header, size));
}

test "slot values pack a pid and a count, and a zero count frees the slot" {
    try testing.expectEqual(@as(u64, 0), slotValue(5, 0));
    const slot = slotValue(pid_max, std.math.maxInt(u32));
    try testing.expectEqual(@as(u32, pid_max), slotPid(slot));
    try testing.expectEqual(@as(u32, std.math.maxInt(u32)), slotCount(slot));
}

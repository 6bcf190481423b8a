//! Named POSIX shared-memory regions: create, open, map, unmap and unlink.
//!
//! A region is `shm_open(name, O_CREAT | O_EXCL, 0600)`, truncated to header + payload and mapped
//! shared; its header (header.zig) is initialised before the magic is published, so a process that
//! opens a region either sees a complete header or refuses it. Every failure after `shm_open`
//! undoes what was done (unmap, close, unlink), so a failed create leaves nothing behind.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const Error = @import("status.zig").Error;
const Failure = @import("os_failure.zig").Failure;
const header_file = @import("header.zig");
const Header = header_file.Header;
const region_name = @import("region_name.zig");
const limits = @import("limits.zig");

/// Create flag: allocate every page of the region now (`fallocate`), so that running out of
/// /dev/shm is `shm_full` at creation rather than SIGBUS at first touch. Costs a zero-fill.
pub const create_flag_reserve: u32 = 1 << 0;
pub const create_flags_known: u32 = create_flag_reserve;
/// Random names tried before giving up with `already_exists` (a collision of 128 random bits
/// means a broken random source, not bad luck).
pub const name_attempts_max = 4;

const page_alignment = std.heap.page_size_min;

/// A mapped region: the whole object, its open descriptor, its name, and where its payload lies.
/// The payload's bounds are checked once, when the region is mapped, and kept here: the header
/// lives in memory other processes can write, so it is never trusted for bounds again.
pub const Mapping = struct {
    memory: []align(page_alignment) u8,
    descriptor: c_int,
    name: region_name.Name,
    payload_offset: usize,
    payload_bytes: usize,

    pub fn header(mapping: *const Mapping) *Header {
        assert(mapping.memory.len >= header_file.payload_offset_default);
        assert(mapping.descriptor >= 0);
        return @ptrCast(mapping.memory.ptr);
    }

    pub fn payload(mapping: *const Mapping) []u8 {
        assert(mapping.payload_offset >= @sizeOf(Header));
        assert(mapping.payload_offset + mapping.payload_bytes == mapping.memory.len);
        return mapping.memory[mapping.payload_offset..];
    }
};

pub const CreateOptions = struct {
    instance: []const u8,
    payload_bytes: u64,
    flags: u32 = 0,
    pid: u32,
};

/// Creates, sizes and maps a new region whose only holder is `options.pid` (one reference).
pub fn create(options: CreateOptions, failure: *Failure) Error!Mapping {
    try region_name.checkInstance(options.instance);
    if (options.flags & ~create_flags_known != 0) return error.invalid_argument;
    if (options.payload_bytes == 0) return error.invalid_argument;
    if (options.payload_bytes > limits.region_payload_bytes_max) return error.region_too_large;
    const total_bytes = header_file.payload_offset_default + options.payload_bytes;
    try limits.checkShmRoom(total_bytes, failure);
    for (0..name_attempts_max) |_| {
        var random: [region_name.random_bytes]u8 = undefined;
        try fillRandom(&random, failure);
        const name = try region_name.format(options.instance, random);
        const flags: std.c.O = .{ .ACCMODE = .RDWR, .CREAT = true, .EXCL = true, .CLOEXEC = true };
        const descriptor = std.c.shm_open(name.z(), @bitCast(flags), 0o600);
        if (descriptor < 0) {
            if (std.posix.errno(@as(c_int, -1)) == .EXIST) continue;
            failure.setFromErrno(.shm_open);
            return error.os_error;
        }
        errdefer _ = std.c.shm_unlink(name.z());
        errdefer _ = std.c.close(descriptor);
        try sizeObject(descriptor, total_bytes, options.flags, failure);
        const memory = try map(descriptor, total_bytes, failure);
        const mapping: Mapping = .{
            .memory = memory,
            .descriptor = descriptor,
            .name = name,
            .payload_offset = header_file.payload_offset_default,
            .payload_bytes = @intCast(options.payload_bytes),
        };
        header_file.initialize(mapping.header(), .{
            .generation = 1,
            .payload_bytes = options.payload_bytes,
            .creator_pid = options.pid,
            .creation_time_ns = realtimeNs(),
        });
        assert(mapping.payload().len == options.payload_bytes);
        return mapping;
    }
    return error.already_exists;
}

/// Opens and maps an existing region by name, refusing anything that is not a complete region of
/// this layout. Does not retain it.
pub fn open(name_text: []const u8, failure: *Failure) Error!Mapping {
    const name = try region_name.parse(name_text);
    const flags: std.c.O = .{ .ACCMODE = .RDWR, .CLOEXEC = true };
    const descriptor = std.c.shm_open(name.z(), @bitCast(flags), 0);
    if (descriptor < 0) {
        failure.setFromErrno(.shm_open);
        return if (failure.errno == @intFromEnum(std.posix.E.NOENT)) error.not_found else error.os_error;
    }
    errdefer _ = std.c.close(descriptor);
    var stat: std.c.Stat = undefined;
    if (std.c.fstat(descriptor, &stat) != 0) {
        failure.setFromErrno(.fstat);
        return error.os_error;
    }
    const object_bytes: u64 = @intCast(@max(stat.size, 0));
    if (object_bytes < header_file.payload_offset_default) return error.not_snakepit_region;
    if (object_bytes - header_file.payload_offset_default > limits.region_payload_bytes_max) {
        return error.region_too_large;
    }
    const memory = try map(descriptor, object_bytes, failure);
    errdefer std.posix.munmap(memory);
    const bounds = try header_file.check(@ptrCast(memory.ptr), object_bytes);
    const mapping: Mapping = .{
        .memory = memory,
        .descriptor = descriptor,
        .name = name,
        .payload_offset = @intCast(bounds.offset),
        .payload_bytes = @intCast(bounds.bytes),
    };
    assert(mapping.payload().len == bounds.bytes);
    assert(mapping.payload().len > 0);
    return mapping;
}

/// Unmaps the region and closes its descriptor; the mapping must not be used afterwards.
pub fn unmap(mapping: *Mapping) void {
    assert(mapping.descriptor >= 0);
    assert(mapping.memory.len > 0);
    std.posix.munmap(mapping.memory);
    _ = std.c.close(mapping.descriptor);
    mapping.descriptor = -1;
    mapping.memory = mapping.memory[0..0];
}

/// Removes the region's name; processes that mapped it keep their mappings.
pub fn unlink(name: *const region_name.Name, failure: *Failure) Error!void {
    assert(name.len > 0);
    if (std.c.shm_unlink(name.z()) == 0) return;
    failure.setFromErrno(.shm_unlink);
    if (failure.errno == @intFromEnum(std.posix.E.NOENT)) return error.not_found;
    return error.os_error;
}

fn sizeObject(descriptor: c_int, total_bytes: u64, flags: u32, failure: *Failure) Error!void {
    assert(total_bytes > header_file.payload_offset_default);
    assert(total_bytes <= std.math.maxInt(i64));
    if (std.c.ftruncate(descriptor, @intCast(total_bytes)) != 0) {
        failure.setFromErrno(.ftruncate);
        return error.os_error;
    }
    if (flags & create_flag_reserve == 0) return;
    if (std.c.fallocate(descriptor, 0, 0, @intCast(total_bytes)) != 0) {
        failure.setFromErrno(.fallocate);
        const no_space = failure.errno == @intFromEnum(std.posix.E.NOSPC);
        return if (no_space) error.shm_full else error.os_error;
    }
}

fn map(descriptor: c_int, total_bytes: u64, failure: *Failure) Error![]align(page_alignment) u8 {
    assert(descriptor >= 0);
    assert(total_bytes >= header_file.payload_offset_default);
    const length: usize = @intCast(total_bytes);
    const protection = std.c.PROT.READ | std.c.PROT.WRITE;
    const address = std.c.mmap(null, length, protection, .{ .TYPE = .SHARED }, descriptor, 0);
    if (address == std.c.MAP_FAILED) {
        failure.setFromErrno(.mmap);
        return error.os_error;
    }
    const base: [*]align(page_alignment) u8 = @ptrCast(@alignCast(address));
    return base[0..length];
}

fn fillRandom(buffer: []u8, failure: *Failure) Error!void {
    assert(buffer.len == region_name.random_bytes);
    const result = linux.getrandom(buffer.ptr, buffer.len, 0);
    const errno = linux.E.init(result);
    if (errno != .SUCCESS or result != buffer.len) {
        failure.set(.getrandom, @intFromEnum(errno));
        return error.os_error;
    }
}

fn realtimeNs() u64 {
    var now: linux.timespec = undefined;
    const result = linux.clock_gettime(.REALTIME, &now);
    assert(result == 0);
    assert(now.sec >= 0);
    return @as(u64, @intCast(now.sec)) * std.time.ns_per_s + @as(u64, @intCast(now.nsec));
}

const testing = std.testing;

fn selfPid() u32 {
    return @intCast(std.c.getpid());
}

test "a created region opens in place, shares its bytes and unlinks" {
    var failure: Failure = .{};
    var created = try create(.{ .instance = "zig_test", .payload_bytes = 10_000, .pid = selfPid() }, &failure);
    defer unmap(&created);
    try testing.expectEqual(@as(usize, 10_000), created.payload().len);
    try testing.expectEqual(@as(usize, 0), @intFromPtr(created.payload().ptr) % header_file.payload_alignment);
    created.payload()[9_999] = 0xAB;
    var opened = try open(created.name.slice(), &failure);
    try testing.expectEqual(@as(u8, 0xAB), opened.payload()[9_999]);
    try testing.expectEqual(selfPid(), opened.header().creator_pid);
    unmap(&opened);
    try unlink(&created.name, &failure);
    try testing.expectError(error.not_found, open(created.name.slice(), &failure));
    try testing.expectEqual(@as(u32, 2), failure.errno);
    try testing.expectError(error.not_found, unlink(&created.name, &failure));
}

test "create refuses bad instances, flags, sizes, and regions larger than /dev/shm" {
    var failure: Failure = .{};
    const pid = selfPid();
    try testing.expectError(error.invalid_name, create(.{ .instance = "a-b", .payload_bytes = 1, .pid = pid }, &failure));
    try testing.expectError(error.invalid_argument, create(.{ .instance = "a", .payload_bytes = 1, .flags = 4, .pid = pid }, &failure));
    try testing.expectError(error.invalid_argument, create(.{ .instance = "a", .payload_bytes = 0, .pid = pid }, &failure));
    try testing.expectError(error.region_too_large, create(.{ .instance = "a", .payload_bytes = limits.region_payload_bytes_max + 1, .pid = pid }, &failure));
    const available = try limits.shmAvailableBytes(&failure);
    if (available + (1 << 20) <= limits.region_payload_bytes_max) {
        try testing.expectError(error.shm_full, create(.{ .instance = "a", .payload_bytes = available + (1 << 20), .pid = pid }, &failure));
    }
}

test "open refuses objects that are not complete Snakepit regions" {
    var failure: Failure = .{};
    const name = try region_name.format("zig_test", [_]u8{0x11} ** region_name.random_bytes);
    const descriptor = std.c.shm_open(name.z(), @bitCast(std.c.O{ .ACCMODE = .RDWR, .CREAT = true, .EXCL = true }), 0o600);
    try testing.expect(descriptor >= 0);
    defer _ = std.c.close(descriptor);
    defer _ = std.c.shm_unlink(name.z());
    try testing.expectError(error.not_snakepit_region, open(name.slice(), &failure));
    try testing.expect(std.c.ftruncate(descriptor, 8192) == 0);
    try testing.expectError(error.not_snakepit_region, open(name.slice(), &failure));
    try testing.expectError(error.invalid_name, open("/snakepit-x", &failure));
}

//! The reaper: unlinks regions whose every holder is dead.
//!
//! It scans `/dev/shm` for `snakepit-*` objects (at most `directory_entries_max` entries per
//! run) and, for each:
//! - a complete region with at least one live holder is spared, whatever its instance: a live
//!   process of another instance is never touched; for the caller's own instance, the slots of
//!   dead holders are pruned and their references dropped (unlinking it if none remain);
//! - a complete region whose holders are all dead (or that has none) is unlinked;
//! - an incomplete object (no magic yet: creation in progress or a creator that crashed) is
//!   unlinked only once it is older than the grace period;
//! - anything else (another layout version, a corrupt header, a name that is not ours) is left
//!   alone and counted as foreign: the reaper never deletes what it cannot understand.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const Failure = @import("os_failure.zig").Failure;
const header_file = @import("header.zig");
const region_name = @import("region_name.zig");
const pid_table = @import("pid_table.zig");
const refcount = @import("refcount.zig");
const limits = @import("limits.zig");

/// Directory entries examined per run; a run that stops early says so in `truncated`.
pub const directory_entries_max = 1 << 16;

/// What one run did, reported to the caller as six `u32` words in this order.
pub const Report = extern struct {
    scanned: u32 = 0,
    reaped: u32 = 0,
    spared_live: u32 = 0,
    skipped_young: u32 = 0,
    skipped_foreign: u32 = 0,
    truncated: u32 = 0,
};
pub const report_words = @sizeOf(Report) / @sizeOf(u32);

comptime {
    assert(report_words == 6);
    assert(@offsetOf(Report, "truncated") == 20);
}

/// glibc's `struct dirent` on 64-bit Linux (std.c's declaration has 32-bit fields).
const Dirent = extern struct {
    inode: u64,
    offset: i64,
    record_bytes: u16,
    kind: u8,
    name: [256]u8,
};
const Directory = opaque {};
extern "c" fn opendir(path: [*:0]const u8) ?*Directory;
extern "c" fn readdir(directory: *Directory) ?*const Dirent;
extern "c" fn closedir(directory: *Directory) c_int;

pub const Options = struct {
    /// Only regions of this instance are examined; empty means every instance.
    instance: []const u8 = "",
    /// Incomplete objects younger than this are left alone.
    grace_ns: u64,
};

/// Runs the reaper once over `/dev/shm`.
pub fn reap(options: Options, failure: *Failure) Error!Report {
    if (options.instance.len > 0) try region_name.checkInstance(options.instance);
    const directory = opendir(limits.shm_directory) orelse {
        failure.setFromErrno(.opendir);
        return error.os_error;
    };
    defer _ = closedir(directory);
    var report: Report = .{};
    for (0..directory_entries_max) |_| {
        const entry = readdir(directory) orelse return report;
        const file_name = std.mem.sliceTo(&entry.name, 0);
        if (!std.mem.startsWith(u8, file_name, region_name.prefix[1..])) continue;
        // With an instance, only that instance's well-formed names count as scanned.
        const name = nameOf(file_name) orelse {
            if (options.instance.len == 0) {
                report.scanned += 1;
                report.skipped_foreign += 1;
            }
            continue;
        };
        if (options.instance.len > 0) {
            if (!std.mem.eql(u8, region_name.instanceOf(name.slice()), options.instance)) continue;
        }
        report.scanned += 1;
        examine(&name, options, &report);
    }
    report.truncated = 1;
    assert(report.scanned <= directory_entries_max);
    return report;
}

/// The region name for a /dev/shm entry, or null when it is not a well-formed one.
fn nameOf(file_name: []const u8) ?region_name.Name {
    var buffer: [region_name.name_bytes_max + 1]u8 = undefined;
    if (file_name.len + 1 > region_name.name_bytes_max) return null;
    assert(file_name.len < buffer.len);
    buffer[0] = '/';
    @memcpy(buffer[1 .. file_name.len + 1], file_name);
    const name = region_name.parse(buffer[0 .. file_name.len + 1]) catch return null;
    assert(name.len == file_name.len + 1);
    return name;
}

const Verdict = enum { reap, spare, young, foreign, gone };

fn examine(name: *const region_name.Name, options: Options, report: *Report) void {
    assert(name.len > 0);
    assert(report.scanned > 0);
    const verdict = judge(name, options);
    switch (verdict) {
        .reap => {
            // Someone else may have unlinked it meanwhile; either way it is gone.
            _ = std.c.shm_unlink(name.z());
            report.reaped += 1;
        },
        .spare => report.spared_live += 1,
        .young => report.skipped_young += 1,
        .foreign => report.skipped_foreign += 1,
        .gone => report.scanned -= 1,
    }
    assert(report.reaped + report.spared_live + report.skipped_young + report.skipped_foreign <= report.scanned);
}

fn judge(name: *const region_name.Name, options: Options) Verdict {
    assert(name.len > region_name.prefix.len);
    assert(options.instance.len <= region_name.instance_bytes_max);
    const descriptor = std.c.shm_open(name.z(), @bitCast(std.c.O{ .ACCMODE = .RDWR, .CLOEXEC = true }), 0);
    if (descriptor < 0) return if (std.posix.errno(@as(c_int, -1)) == .NOENT) .gone else .foreign;
    defer _ = std.c.close(descriptor);
    var stat: std.c.Stat = undefined;
    if (std.c.fstat(descriptor, &stat) != 0) return .foreign;
    const object_bytes: u64 = @intCast(@max(stat.size, 0));
    if (object_bytes < header_file.payload_offset_default) return incomplete(stat, options);
    const header_bytes = header_file.payload_offset_default;
    const protection = std.c.PROT.READ | std.c.PROT.WRITE;
    const address = std.c.mmap(null, header_bytes, protection, .{ .TYPE = .SHARED }, descriptor, 0);
    if (address == std.c.MAP_FAILED) return .foreign;
    const memory: [*]align(std.heap.page_size_min) u8 = @ptrCast(@alignCast(address));
    defer std.posix.munmap(memory[0..header_bytes]);
    const header: *header_file.Header = @ptrCast(memory);
    // Our creator truncates then publishes the magic last: zero means not yet (or never) done;
    // any other wrong magic is somebody else's object.
    if (@atomicLoad(u64, &header.magic, .acquire) == 0) return incomplete(stat, options);
    _ = header_file.check(header, object_bytes) catch return .foreign;
    if (pid_table.liveCount(&header.holders) == 0) return .reap;
    const own_instance = options.instance.len > 0;
    assert(!own_instance or std.mem.eql(u8, region_name.instanceOf(name.slice()), options.instance));
    if (own_instance and refcount.pruneDeadHolders(header) == .last) return .reap;
    return .spare;
}

/// An object without a complete header: reap it once it is older than the grace period.
fn incomplete(stat: std.c.Stat, options: Options) Verdict {
    const modified = stat.mtime();
    const modified_ns: u64 = @as(u64, @intCast(@max(modified.sec, 0))) * std.time.ns_per_s +
        @as(u64, @intCast(@max(modified.nsec, 0)));
    const now: u64 = @intCast(@max(std.time.nanoTimestamp(), 0));
    const age_ns = if (now > modified_ns) now - modified_ns else 0;
    assert(age_ns <= now);
    assert(now >= modified_ns or age_ns == 0);
    return if (age_ns >= options.grace_ns) .reap else .young;
}

const testing = std.testing;
const region = @import("region.zig");

test "the reaper unlinks a region whose holders are dead and spares one with a live holder" {
    var failure: Failure = .{};
    const self: u32 = @intCast(std.c.getpid());
    const dead = pid_table.deadPidForTests();
    var live = try region.create(.{ .instance = "zig_reap", .payload_bytes = 100, .pid = self }, &failure);
    defer region.unmap(&live);
    var orphan = try region.create(.{ .instance = "zig_reap", .payload_bytes = 100, .pid = self }, &failure);
    defer region.unmap(&orphan);
    orphan.header().holders[0] = header_file.slotValue(dead, 1);
    const report = try reap(.{ .instance = "zig_reap", .grace_ns = std.time.ns_per_s }, &failure);
    try testing.expectEqual(Report{ .scanned = 2, .reaped = 1, .spared_live = 1 }, report);
    try testing.expectError(error.not_found, region.unlink(&orphan.name, &failure));
    try region.unlink(&live.name, &failure);
}

test "the reaper prunes dead holders of its own instance and leaves incomplete objects in grace" {
    var failure: Failure = .{};
    const self: u32 = @intCast(std.c.getpid());
    const dead = pid_table.deadPidForTests();
    var shared = try region.create(.{ .instance = "zig_prune", .payload_bytes = 100, .pid = self }, &failure);
    defer region.unmap(&shared);
    shared.header().holders[1] = header_file.slotValue(dead, 3);
    shared.header().reference_count = 4;
    const young = try region_name.format("zig_prune", [_]u8{0x22} ** region_name.random_bytes);
    const descriptor = std.c.shm_open(young.z(), @bitCast(std.c.O{ .ACCMODE = .RDWR, .CREAT = true, .EXCL = true }), 0o600);
    try testing.expect(descriptor >= 0);
    _ = std.c.close(descriptor);
    var report = try reap(.{ .instance = "zig_prune", .grace_ns = std.time.ns_per_min }, &failure);
    try testing.expectEqual(Report{ .scanned = 2, .spared_live = 1, .skipped_young = 1 }, report);
    try testing.expectEqual(@as(u32, 1), shared.header().reference_count);
    report = try reap(.{ .instance = "zig_prune", .grace_ns = 0 }, &failure);
    try testing.expectEqual(Report{ .scanned = 2, .reaped = 1, .spared_live = 1 }, report);
    try region.unlink(&shared.name, &failure);
    try testing.expectError(error.invalid_name, reap(.{ .instance = "bad-name", .grace_ns = 0 }, &failure));
}

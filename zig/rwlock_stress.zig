//! Stress test of the RW lock (rwlock.zig) with threads: readers never see a torn write, and
//! readers that keep the lock busy cannot starve a writer. The cross-process versions live in
//! tests/native_cross_process.test.ts and python/tests/test_native_region.py.

const std = @import("std");
const rwlock = @import("rwlock.zig");
const header_file = @import("header.zig");
const futex = @import("futex.zig");
const Header = header_file.Header;
const Waiter = rwlock.Waiter;
const acquireShared = rwlock.acquireShared;
const releaseShared = rwlock.releaseShared;
const acquireExclusive = rwlock.acquireExclusive;
const releaseExclusive = rwlock.releaseExclusive;
const waiters_bit = rwlock.waiters_bit;

const testing = std.testing;
const testHeader = @import("rwlock_test.zig").testHeader;
const selfPid = @import("rwlock_test.zig").selfPid;

const StressContext = struct {
    header: *Header,
    data: *[64]u64,
    stop: *u32,
    torn_reads: *u32,
    writes: *u32,

    fn reader(context: StressContext) void {
        var waiter: Waiter = .{ .pid = selfPid() };
        const rounds_max = 1_000_000;
        for (0..rounds_max) |_| {
            if (@atomicLoad(u32, context.stop, .seq_cst) != 0) return;
            waiter.deadline_ns = futex.deadlineAfter(std.time.ns_per_s);
            _ = acquireShared(context.header, &waiter) catch continue;
            const first = @atomicLoad(u64, &context.data[0], .monotonic);
            for (context.data) |*word| {
                if (@atomicLoad(u64, word, .monotonic) != first) {
                    _ = @atomicRmw(u32, context.torn_reads, .Add, 1, .seq_cst);
                }
            }
            releaseShared(context.header, &waiter) catch unreachable;
        }
    }

    fn writer(context: StressContext) void {
        var waiter: Waiter = .{ .pid = selfPid() };
        const writes_max = 200;
        for (1..writes_max + 1) |round| {
            waiter.deadline_ns = futex.deadlineAfter(std.time.ns_per_s);
            _ = acquireExclusive(context.header, &waiter) catch return;
            for (context.data) |*word| @atomicStore(u64, word, round, .monotonic);
            releaseExclusive(context.header, &waiter) catch unreachable;
            _ = @atomicRmw(u32, context.writes, .Add, 1, .seq_cst);
        }
    }
};

test "readers never see a torn write and busy readers cannot starve the writer" {
    var header = testHeader();
    var data = std.mem.zeroes([64]u64);
    var stop: u32 = 0;
    var torn_reads: u32 = 0;
    var writes: u32 = 0;
    const context: StressContext = .{
        .header = &header,
        .data = &data,
        .stop = &stop,
        .torn_reads = &torn_reads,
        .writes = &writes,
    };
    const readers_count = 3;
    var readers: [readers_count]std.Thread = undefined;
    for (&readers) |*thread| thread.* = try std.Thread.spawn(.{}, StressContext.reader, .{context});
    const writer = try std.Thread.spawn(.{}, StressContext.writer, .{context});
    writer.join();
    @atomicStore(u32, &stop, 1, .seq_cst);
    for (readers) |thread| thread.join();
    try testing.expectEqual(@as(u32, 200), writes);
    try testing.expectEqual(@as(u32, 0), torn_reads);
    try testing.expectEqual(@as(u32, 0), header.lock_state & ~waiters_bit);
}

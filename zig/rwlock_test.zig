//! Unit tests of the RW lock (rwlock.zig): shared and exclusive exclusion, timed waits,
//! cancellation, and recovery from holders that died. The threaded stress test is
//! rwlock_stress.zig.

const std = @import("std");
const header_file = @import("header.zig");
const Header = header_file.Header;
const futex = @import("futex.zig");
const pid_table = @import("pid_table.zig");
const rwlock = @import("rwlock.zig");
const Acquired = rwlock.Acquired;
const Waiter = rwlock.Waiter;
const abandonIntent = rwlock.abandonIntent;
const acquireExclusive = rwlock.acquireExclusive;
const acquireShared = rwlock.acquireShared;
const cancel_closing = rwlock.cancel_closing;
const cancel_requested = rwlock.cancel_requested;
const drained_bit = rwlock.drained_bit;
const exclusive_bit = rwlock.exclusive_bit;
const releaseExclusive = rwlock.releaseExclusive;
const releaseShared = rwlock.releaseShared;
const waiters_bit = rwlock.waiters_bit;

const testing = std.testing;

/// A fresh region header for lock tests (shared with rwlock_stress.zig).
pub fn testHeader() Header {
    var header: Header = undefined;
    header_file.initialize(&header, .{
        .generation = 1,
        .payload_bytes = 64,
        .creator_pid = 1,
        .creation_time_ns = 0,
    });
    return header;
}

/// This process's pid, as a lock waiter records it.
pub fn selfPid() u32 {
    return @intCast(std.c.getpid());
}

test "shared locks coexist and keep a writer out until the last one leaves" {
    var header = testHeader();
    var reader: Waiter = .{ .pid = selfPid() };
    var writer: Waiter = .{ .pid = selfPid() };
    try testing.expectEqual(Acquired.clean, try acquireShared(&header, &reader));
    try testing.expectEqual(Acquired.clean, try acquireShared(&header, &reader));
    try testing.expectError(error.would_block, acquireExclusive(&header, &writer));
    try testing.expectEqual(@as(u32, 0), header.lock_state);
    try releaseShared(&header, &reader);
    try testing.expectError(error.would_block, acquireExclusive(&header, &writer));
    try releaseShared(&header, &reader);
    try testing.expectEqual(Acquired.clean, try acquireExclusive(&header, &writer));
    try testing.expectEqual(exclusive_bit | drained_bit | selfPid(), header.lock_state);
    try releaseExclusive(&header, &writer);
    try testing.expectEqual(@as(u32, 0), header.lock_state);
}

test "an exclusive lock keeps readers and writers out, and a timed wait times out" {
    var header = testHeader();
    var writer: Waiter = .{ .pid = selfPid() };
    _ = try acquireExclusive(&header, &writer);
    var other: Waiter = .{ .pid = selfPid() };
    try testing.expectError(error.would_block, acquireShared(&header, &other));
    try testing.expectError(error.would_block, acquireExclusive(&header, &other));
    const start = futex.nowNs();
    other.deadline_ns = futex.deadlineAfter(20 * std.time.ns_per_ms);
    try testing.expectError(error.timed_out, acquireShared(&header, &other));
    try testing.expect(futex.nowNs() - start >= 20 * std.time.ns_per_ms);
    try testing.expect(!pid_table.anyInUse(&header.readers));
    try releaseExclusive(&header, &writer);
}

test "unlocking a lock this process does not hold is not_locked" {
    var header = testHeader();
    var waiter: Waiter = .{ .pid = selfPid() };
    try testing.expectError(error.not_locked, releaseShared(&header, &waiter));
    try testing.expectError(error.not_locked, releaseExclusive(&header, &waiter));
    _ = try acquireShared(&header, &waiter);
    try testing.expectError(error.not_locked, releaseExclusive(&header, &waiter));
    try releaseShared(&header, &waiter);
    header.lock_state = exclusive_bit | drained_bit | 12345;
    try testing.expectError(error.not_locked, releaseExclusive(&header, &waiter));
}

test "a dead exclusive owner's lock is recovered with owner_died by a writer or a reader" {
    const dead = pid_table.deadPidForTests();
    var header = testHeader();
    var waiter: Waiter = .{ .pid = selfPid() };
    header.lock_state = exclusive_bit | drained_bit | dead;
    try testing.expectEqual(Acquired.owner_died, try acquireExclusive(&header, &waiter));
    try testing.expectEqual(@as(u32, 1), header.lock_owner_deaths);
    try testing.expect(header.flags & header_file.flag_owner_died != 0);
    try releaseExclusive(&header, &waiter);
    header.lock_state = exclusive_bit | drained_bit | waiters_bit | dead;
    waiter.liveness_due_ns = 0;
    try testing.expectEqual(Acquired.owner_died, try acquireShared(&header, &waiter));
    try testing.expectEqual(@as(u32, 2), header.lock_owner_deaths);
    try releaseShared(&header, &waiter);
}

test "a writer that died before its readers drained never held the lock: cleared silently" {
    const dead = pid_table.deadPidForTests();
    var header = testHeader();
    var waiter: Waiter = .{ .pid = selfPid() };
    header.lock_state = exclusive_bit | dead;
    try testing.expectEqual(Acquired.clean, try acquireShared(&header, &waiter));
    try testing.expectEqual(@as(u32, 0), header.lock_owner_deaths);
    try releaseShared(&header, &waiter);
}

test "a dead reader's shared lock is recovered by a writer with owner_died" {
    const dead = pid_table.deadPidForTests();
    var header = testHeader();
    header.readers[7] = header_file.slotValue(dead, 2);
    var writer: Waiter = .{ .pid = selfPid() };
    try testing.expectEqual(Acquired.owner_died, try acquireExclusive(&header, &writer));
    try testing.expectEqual(@as(u64, 0), header.readers[7]);
    try releaseExclusive(&header, &writer);
}

test "a kept claim stops new readers and resumes once the old readers leave" {
    var header = testHeader();
    const self = selfPid();
    var reader: Waiter = .{ .pid = self };
    var writer: Waiter = .{ .pid = self, .keep_intent = true };
    _ = try acquireShared(&header, &reader);
    try testing.expectError(error.would_block, acquireExclusive(&header, &writer));
    try testing.expect(writer.intent_pending);
    var late_reader: Waiter = .{ .pid = self };
    try testing.expectError(error.would_block, acquireShared(&header, &late_reader));
    try releaseShared(&header, &reader);
    try testing.expectEqual(Acquired.clean, try acquireExclusive(&header, &writer));
    try testing.expect(!writer.intent_pending);
    try releaseExclusive(&header, &writer);
    writer.keep_intent = true;
    _ = try acquireShared(&header, &reader);
    try testing.expectError(error.would_block, acquireExclusive(&header, &writer));
    abandonIntent(&header, &writer);
    try testing.expectEqual(@as(u32, 0), header.lock_state);
    try releaseShared(&header, &reader);
}

test "a cancelled wait ends with cancelled, a closing handle's with handle_closed" {
    var header = testHeader();
    var writer: Waiter = .{ .pid = selfPid() };
    _ = try acquireExclusive(&header, &writer);
    var cancel: u32 = cancel_requested;
    var waiter: Waiter = .{ .pid = selfPid(), .cancel = &cancel, .deadline_ns = futex.deadlineAfter(std.time.ns_per_s) };
    try testing.expectError(error.cancelled, acquireShared(&header, &waiter));
    cancel = cancel_closing;
    try testing.expectError(error.handle_closed, acquireExclusive(&header, &waiter));
    try releaseExclusive(&header, &writer);
}

//! Cross-process reference counts: an atomic count in the header plus a holder table.
//!
//! `reference_count` decides when the region dies: the release that brings it to zero tells its
//! caller to unlink the region. The holder table (pid << 32 | references held by that pid) says
//! who holds those references, so a release by a process that holds none is `over_release`, and
//! the reaper can find regions whose every holder is dead.
//!
//! Ordering, chosen so that a crash between the two steps over-counts (the region lives until
//! the reaper finds its holders dead) and never under-counts (which would unlink it early):
//! retain increments the count first, then the holder slot; release decrements the holder slot
//! first, then the count.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const header_file = @import("header.zig");
const Header = header_file.Header;
const pid_table = @import("pid_table.zig");
const references_max = @import("limits.zig").references_max;

/// Rounds of a CAS loop on the count; every process mapping the region may contend.
const cas_rounds_max = 1 << 20;

/// Adds one reference held by `pid`. Fails with `region_released` once the count reached zero
/// (its last holder released it; the name is gone or going).
pub fn retain(header: *Header, pid: u32, hint: *u32) Error!void {
    assert(pid != 0);
    assert(pid <= header_file.pid_max);
    try incrementCount(header);
    const attempts_max = 2; // the second after freeing the slots of dead holders
    for (0..attempts_max) |attempt| {
        if (pid_table.increment(&header.holders, pid, hint)) |slot| {
            assert(slot < header_file.holder_slots_max);
            return;
        } else |err| switch (err) {
            error.count_overflow => break,
            error.table_full => if (attempt == 0 and pruneDeadHolders(header) == .alive) {
                continue;
            } else break,
        }
    }
    // Undo our count; if that was the last reference, the reaper unlinks the region (no holders).
    _ = decrementCount(header, 1);
    return error.holder_table_full;
}

/// Removes one reference held by `pid`. Returns true when this was the last reference: the
/// caller must unlink the region.
pub fn release(header: *Header, pid: u32, hint: u32) Error!bool {
    assert(pid != 0);
    assert(pid <= header_file.pid_max);
    if (!pid_table.decrement(&header.holders, pid, hint)) return error.over_release;
    return decrementCount(header, 1) == .last;
}

pub const Liveness = enum { alive, last };

/// Frees the holder slots of dead processes and drops the references they held. `.last` means
/// that left no reference: the caller must unlink the region.
pub fn pruneDeadHolders(header: *Header) Liveness {
    const dead_references = pid_table.clearDead(&header.holders);
    assert(dead_references <= @as(u64, pid_table.slots_max) * std.math.maxInt(u32));
    if (dead_references == 0) {
        return if (@atomicLoad(u32, &header.reference_count, .seq_cst) == 0) .last else .alive;
    }
    return decrementCount(header, dead_references);
}

/// The references counted now (as stored: other processes write it too).
pub fn count(header: *const Header) u32 {
    comptime assert(references_max < std.math.maxInt(u32));
    return @atomicLoad(u32, &header.reference_count, .seq_cst);
}

fn incrementCount(header: *Header) Error!void {
    var value = @atomicLoad(u32, &header.reference_count, .seq_cst);
    for (0..cas_rounds_max) |_| {
        if (value == 0) return error.region_released;
        if (value >= references_max) return error.reference_overflow;
        assert(value + 1 <= references_max);
        value = @cmpxchgWeak(u32, &header.reference_count, value, value + 1, .seq_cst, .seq_cst) orelse {
            return;
        };
    }
    return error.reference_overflow;
}

/// Subtracts `amount` (clamped at zero: a count corrupted low must not wrap to four billion).
fn decrementCount(header: *Header, amount: u64) Liveness {
    assert(amount > 0);
    var value = @atomicLoad(u32, &header.reference_count, .seq_cst);
    for (0..cas_rounds_max) |_| {
        const next: u32 = if (amount >= value) 0 else value - @as(u32, @intCast(amount));
        if (value == 0) return .last;
        value = @cmpxchgWeak(u32, &header.reference_count, value, next, .seq_cst, .seq_cst) orelse {
            return if (next == 0) .last else .alive;
        };
    }
    return .alive;
}

const testing = std.testing;

fn testHeader(creator: u32) Header {
    var header: Header = undefined;
    header_file.initialize(&header, .{
        .generation = 1,
        .payload_bytes = 64,
        .creator_pid = creator,
        .creation_time_ns = 0,
    });
    return header;
}

test "retains and releases balance, and the last release says unlink" {
    const self: u32 = @intCast(std.c.getpid());
    var header = testHeader(self);
    var hint: u32 = 0;
    try retain(&header, self, &hint);
    try retain(&header, self, &hint);
    try testing.expectEqual(@as(u32, 3), count(&header));
    try testing.expectEqual(@as(u32, 3), pid_table.countOf(&header.holders, self));
    try testing.expect(!try release(&header, self, hint));
    try testing.expect(!try release(&header, self, hint));
    try testing.expect(try release(&header, self, hint));
    try testing.expectEqual(@as(u32, 0), count(&header));
}

test "releasing more often than retaining is over_release, and a released region stays dead" {
    const self: u32 = @intCast(std.c.getpid());
    var header = testHeader(self);
    const other = if (self == 1) 2 else self - 1;
    try testing.expectError(error.over_release, release(&header, other, 0));
    try testing.expect(try release(&header, self, 0));
    try testing.expectError(error.over_release, release(&header, self, 0));
    var hint: u32 = 0;
    try testing.expectError(error.region_released, retain(&header, self, &hint));
    try testing.expectEqual(@as(u32, 0), count(&header));
    try testing.expect(!pid_table.anyInUse(&header.holders));
}

test "dead holders' references are dropped when the table is full or pruned" {
    const self: u32 = @intCast(std.c.getpid());
    const dead = pid_table.deadPidForTests();
    var header = testHeader(dead);
    header.holders[0] = header_file.slotValue(dead, 4);
    header.reference_count = 4;
    var hint: u32 = 0;
    try retain(&header, self, &hint);
    try testing.expectEqual(@as(u32, 5), count(&header));
    try testing.expectEqual(Liveness.alive, pruneDeadHolders(&header));
    try testing.expectEqual(@as(u32, 1), count(&header));
    try testing.expect(try release(&header, self, hint));
    for (&header.holders) |*slot| slot.* = header_file.slotValue(dead, 1);
    header.reference_count = pid_table.slots_max;
    try retain(&header, self, &hint);
    try testing.expectEqual(@as(u32, 1), count(&header));
}

test "a full table of live holders refuses another process and leaves the count as it was" {
    const self: u32 = @intCast(std.c.getpid());
    var header = testHeader(self);
    for (&header.holders) |*slot| slot.* = header_file.slotValue(self, 1);
    header.reference_count = pid_table.slots_max;
    var hint: u32 = 0;
    const other = if (self == 1) 2 else self - 1;
    try testing.expectError(error.holder_table_full, retain(&header, other, &hint));
    try testing.expectEqual(@as(u32, pid_table.slots_max), count(&header));
}

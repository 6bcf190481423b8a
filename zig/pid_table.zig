//! A bounded table of per-process counters in shared memory: slot = pid << 32 | count.
//!
//! The region header holds two: `holders` (references each process holds, for the reaper) and
//! `readers` (shared locks each process holds, for owner-death recovery). A process only ever
//! changes its own slot (with a CAS, as its threads may race), except that anyone may free the
//! slot of a dead process, with a CAS on the exact value seen so two recoverers cannot both win.

const std = @import("std");
const assert = std.debug.assert;
const header_file = @import("header.zig");
const liveness = @import("liveness.zig");

pub const slots_max = header_file.holder_slots_max;
pub const Table = [slots_max]u64;

comptime {
    assert(header_file.holder_slots_max == header_file.reader_slots_max);
    assert(@sizeOf(Table) == slots_max * 8);
}

/// Rounds of a CAS loop on one slot; only threads of the slot's own process contend there.
const cas_rounds_max = 1 << 16;

pub const IncrementError = error{ table_full, count_overflow };

/// Adds one to `pid`'s slot, claiming a free slot when `pid` has none. Returns the slot's index
/// and sets `hint` to it. A full table is the caller's to resolve (see `clearDead`): what a dead
/// process's count means differs between the holder and the reader table.
pub fn increment(table: *Table, pid: u32, hint: *u32) IncrementError!u32 {
    assert(pid != 0);
    assert(pid <= header_file.pid_max);
    const first = hint.* % slots_max;
    if (try incrementIfOwn(&table[first], pid)) return first;
    // Reclaiming the slot this process used last skips a scan on every uncontended lock. If the
    // process also has a slot elsewhere (another thread's), its count is split over two slots,
    // which every reader of the table handles: counts are per slot, lookups take any match.
    const claimed = header_file.slotValue(pid, 1);
    if (@cmpxchgStrong(u64, &table[first], 0, claimed, .seq_cst, .seq_cst) == null) return first;
    for (table, 0..) |*slot, index| {
        if (try incrementIfOwn(slot, pid)) {
            hint.* = @intCast(index);
            return @intCast(index);
        }
    }
    for (table, 0..) |*slot, index| {
        if (@cmpxchgStrong(u64, slot, 0, claimed, .seq_cst, .seq_cst) == null) {
            hint.* = @intCast(index);
            return @intCast(index);
        }
    }
    assert(hint.* < slots_max);
    return error.table_full;
}

/// Adds one to `slot` if it belongs to `pid`; false if it does not. (The table lives in shared
/// memory: a slot naming `pid` with a zero count is damage, and is treated as not ours.)
fn incrementIfOwn(slot: *u64, pid: u32) IncrementError!bool {
    assert(pid != 0);
    var value = @atomicLoad(u64, slot, .seq_cst);
    for (0..cas_rounds_max) |_| {
        if (value == 0 or header_file.slotPid(value) != pid) return false;
        const count = header_file.slotCount(value);
        if (count == 0) return false;
        if (count == std.math.maxInt(u32)) return error.count_overflow;
        const next = header_file.slotValue(pid, count + 1);
        assert(next == value + 1);
        value = @cmpxchgWeak(u64, slot, value, next, .seq_cst, .seq_cst) orelse return true;
    }
    return false;
}

/// Takes one off `pid`'s slot, freeing it at zero; false if `pid` has no slot.
pub fn decrement(table: *Table, pid: u32, hint: u32) bool {
    assert(pid != 0);
    assert(pid <= header_file.pid_max);
    const first = hint % slots_max;
    for (0..slots_max) |offset| {
        const slot = &table[(first + offset) % slots_max];
        var value = @atomicLoad(u64, slot, .seq_cst);
        for (0..cas_rounds_max) |_| {
            if (value == 0 or header_file.slotPid(value) != pid) break;
            const count = header_file.slotCount(value);
            if (count == 0) break; // damage: a pid without a count holds nothing
            const next = header_file.slotValue(pid, count - 1);
            assert(next == 0 or next == value - 1);
            value = @cmpxchgWeak(u64, slot, value, next, .seq_cst, .seq_cst) orelse return true;
        }
    }
    return false;
}

/// The count `pid` holds, over every slot it has (0 when it has none).
pub fn countOf(table: *const Table, pid: u32) u32 {
    assert(pid != 0);
    var total: u64 = 0;
    for (table) |*slot| {
        const value = @atomicLoad(u64, slot, .seq_cst);
        if (value != 0 and header_file.slotPid(value) == pid) total += header_file.slotCount(value);
    }
    assert(total <= @as(u64, slots_max) * std.math.maxInt(u32));
    return @intCast(@min(total, std.math.maxInt(u32)));
}

/// Whether any slot is in use.
pub fn anyInUse(table: *const Table) bool {
    comptime assert(slots_max > 0);
    for (table) |*slot| {
        if (@atomicLoad(u64, slot, .seq_cst) != 0) return true;
    }
    assert(table.len == slots_max);
    return false;
}

/// The number of slots whose process is alive.
pub fn liveCount(table: *const Table) u32 {
    var live: u32 = 0;
    for (table) |*slot| {
        const value = @atomicLoad(u64, slot, .seq_cst);
        if (value != 0 and liveness.isAlive(header_file.slotPid(value))) live += 1;
    }
    assert(live <= slots_max);
    return live;
}

/// Frees the slots of dead processes; returns the sum of the counts they held.
pub fn clearDead(table: *Table) u64 {
    var cleared: u64 = 0;
    for (table) |*slot| {
        const value = @atomicLoad(u64, slot, .seq_cst);
        if (value == 0 or liveness.isAlive(header_file.slotPid(value))) continue;
        if (@cmpxchgStrong(u64, slot, value, 0, .seq_cst, .seq_cst) == null) {
            cleared += header_file.slotCount(value);
        }
    }
    assert(cleared <= @as(u64, slots_max) * std.math.maxInt(u32));
    return cleared;
}

const testing = std.testing;

/// A pid that surely belongs to no process: a child that has exited and been reaped.
pub fn deadPidForTests() u32 {
    const child = std.c.fork();
    assert(child >= 0);
    if (child == 0) std.c._exit(0);
    var status: c_int = 0;
    _ = std.c.waitpid(child, &status, 0);
    return @intCast(child);
}

test "increment claims one slot per process and counts repeated increments" {
    var table = std.mem.zeroes(Table);
    var hint: u32 = 0;
    try testing.expectEqual(@as(u32, 0), try increment(&table, 7, &hint));
    try testing.expectEqual(@as(u32, 0), try increment(&table, 7, &hint));
    try testing.expectEqual(@as(u32, 1), try increment(&table, 8, &hint));
    try testing.expectEqual(@as(u32, 2), countOf(&table, 7));
    try testing.expectEqual(@as(u32, 1), countOf(&table, 8));
    try testing.expect(decrement(&table, 7, 0));
    try testing.expect(decrement(&table, 7, 5));
    try testing.expect(!decrement(&table, 7, 0));
    try testing.expectEqual(@as(u64, 0), table[0]);
    try testing.expect(anyInUse(&table));
}

test "a full table refuses a new process until dead processes' slots are freed" {
    var table = std.mem.zeroes(Table);
    const dead = deadPidForTests();
    const self: u32 = @intCast(std.c.getpid());
    for (&table) |*slot| slot.* = header_file.slotValue(dead, 3);
    table[5] = header_file.slotValue(self, 1);
    var hint: u32 = 0;
    const other = if (self == 1) 2 else self - 1;
    try testing.expectError(error.table_full, increment(&table, other, &hint));
    try testing.expectEqual(@as(u64, 3 * (slots_max - 1)), clearDead(&table));
    _ = try increment(&table, other, &hint);
    try testing.expectEqual(@as(u32, 1), countOf(&table, other));
    try testing.expectEqual(@as(u32, 1), countOf(&table, self));
}

test "clearDead frees only dead processes' slots and sums their counts" {
    var table = std.mem.zeroes(Table);
    const self: u32 = @intCast(std.c.getpid());
    const dead = deadPidForTests();
    table[3] = header_file.slotValue(dead, 5);
    table[9] = header_file.slotValue(self, 2);
    try testing.expectEqual(@as(u32, 1), liveCount(&table));
    try testing.expectEqual(@as(u64, 5), clearDead(&table));
    try testing.expectEqual(@as(u64, 0), table[3]);
    try testing.expectEqual(@as(u32, 2), countOf(&table, self));
    try testing.expectEqual(@as(u64, 0), clearDead(&table));
}

test "a count at its maximum refuses another increment" {
    var table = std.mem.zeroes(Table);
    table[0] = header_file.slotValue(9, std.math.maxInt(u32));
    var hint: u32 = 0;
    try testing.expectError(error.count_overflow, increment(&table, 9, &hint));
}

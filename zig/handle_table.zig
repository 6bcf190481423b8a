//! The regions this process has open, addressed by `u32` handles.
//!
//! A handle is `generation << 10 | index` into a fixed table of `limits.process_regions_max`
//! entries; a closed entry's generation moves on, so a stale handle is `invalid_handle`, never
//! another region. Every call on a handle pins its entry for the call's duration; `close` marks
//! the entry closing (new calls fail, waits on it end with `handle_closed`) and the last unpin
//! finalizes it: releases the locks and references the handle holds, then unmaps. So a Deno
//! nonblocking wait or a Python thread still inside a call never touches unmapped memory.
//!
//! Handles belong to the process that opened them: after `fork` the child's copies are
//! `invalid_handle` (its pid differs from the one the locks and references were recorded under).

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const Failure = @import("os_failure.zig").Failure;
const limits = @import("limits.zig");
const region = @import("region.zig");
const rwlock = @import("rwlock.zig");
const refcount = @import("refcount.zig");
const futex = @import("futex.zig");

pub const entries_max = limits.process_regions_max;
const index_bits = std.math.log2_int(u32, entries_max);
const generation_mask: u32 = std.math.maxInt(u32) >> index_bits;

const pins_mask: u64 = (1 << 24) - 1;
const closing_bit: u64 = 1 << 24;
const live_bit: u64 = 1 << 25;
const reserved_bit: u64 = 1 << 26;
const generation_shift = 32;

comptime {
    assert(index_bits == 10);
    assert(std.math.isPowerOfTwo(entries_max));
    assert(pins_mask & closing_bit == 0);
}

/// One open region and what this handle holds in it.
pub const Entry = struct {
    /// generation << 32 | reserved | live | closing | pins.
    state: u64 = 0,
    mapping: region.Mapping = undefined,
    owner_pid: u32 = 0,
    /// Nonzero ends waits on this handle (rwlock.cancel_requested or rwlock.cancel_closing).
    cancel: u32 = 0,
    waits_in_flight: u32 = 0,
    /// Guards the fields below.
    mutex: std.Thread.Mutex = .{},
    references_held: u32 = 0,
    shared_held: u32 = 0,
    exclusive_held: bool = false,
    holder_hint: u32 = 0,
    waiter: rwlock.Waiter = .{ .pid = 1 },
};

var entries = [_]Entry{.{}} ** entries_max;
var table_mutex: std.Thread.Mutex = .{};
var usage: limits.Usage = .{ .regions = 0, .mapped_bytes = 0 };
var cached_pid: u32 = 0;
var atfork_once = std.once(registerAtfork);

fn registerAtfork() void {
    const result = std.c.pthread_atfork(null, null, forgetPid);
    // pthread_atfork fails only for lack of memory; the pid check in `pin` then still catches a
    // forked child, one getpid later.
    assert(result == 0 or result == @intFromEnum(std.posix.E.NOMEM));
}

fn forgetPid() callconv(.c) void {
    @atomicStore(u32, &cached_pid, 0, .seq_cst);
    assert(@atomicLoad(u32, &cached_pid, .seq_cst) == 0);
}

/// This process's pid (cached; a forked child recomputes it).
pub fn processPid() u32 {
    const cached = @atomicLoad(u32, &cached_pid, .monotonic);
    if (cached != 0) return cached;
    atfork_once.call();
    const pid: u32 = @intCast(std.c.getpid());
    assert(pid != 0);
    @atomicStore(u32, &cached_pid, pid, .monotonic);
    return pid;
}

/// What this process has open now.
pub fn currentUsage() limits.Usage {
    table_mutex.lock();
    defer table_mutex.unlock();
    assert(usage.regions <= entries_max);
    assert(usage.regions > 0 or usage.mapped_bytes == 0);
    return usage;
}

fn generationOf(state: u64) u32 {
    const generation: u32 = @intCast(state >> generation_shift);
    assert(generation <= generation_mask);
    return generation;
}

/// Claims a free entry for a region of `payload_bytes` (`total_bytes` mapped), within the
/// process limits.
pub fn reserve(payload_bytes: u64, total_bytes: u64) Error!u32 {
    assert(total_bytes > payload_bytes);
    table_mutex.lock();
    defer table_mutex.unlock();
    try limits.checkMapping(.{}, usage, payload_bytes);
    if (usage.mapped_bytes + total_bytes > limits.process_mapped_bytes_max) {
        return error.process_bytes_exhausted;
    }
    for (&entries, 0..) |*entry, index| {
        const state = @atomicLoad(u64, &entry.state, .seq_cst);
        if (state & (live_bit | reserved_bit) != 0) continue;
        @atomicStore(u64, &entry.state, state | reserved_bit, .seq_cst);
        usage.regions += 1;
        usage.mapped_bytes += total_bytes;
        return @intCast(index);
    }
    unreachable; // checkMapping counted a free entry
}

/// Returns a reservation that was not published.
pub fn unreserve(index: u32, total_bytes: u64) void {
    table_mutex.lock();
    defer table_mutex.unlock();
    const entry = &entries[index];
    const state = @atomicLoad(u64, &entry.state, .seq_cst);
    assert(state & reserved_bit != 0);
    assert(state & live_bit == 0);
    @atomicStore(u64, &entry.state, state & ~reserved_bit, .seq_cst);
    usage.regions -= 1;
    usage.mapped_bytes -= total_bytes;
}

/// Makes a reserved entry live with `mapping`, holding `references` references; returns its handle.
pub fn publish(index: u32, mapping: region.Mapping, references: u32) u32 {
    const entry = &entries[index];
    const state = @atomicLoad(u64, &entry.state, .seq_cst);
    assert(state & reserved_bit != 0);
    assert(state & live_bit == 0);
    const generation = (generationOf(state) +% 1) & generation_mask;
    const next_generation = if (generation == 0) 1 else generation;
    const pid = processPid();
    entry.mapping = mapping;
    entry.owner_pid = pid;
    entry.cancel = 0;
    entry.waits_in_flight = 0;
    entry.references_held = references;
    entry.shared_held = 0;
    entry.exclusive_held = false;
    entry.holder_hint = 0;
    entry.waiter = .{ .pid = pid };
    @atomicStore(u64, &entry.state, @as(u64, next_generation) << generation_shift | live_bit, .seq_cst);
    return next_generation << index_bits | index;
}

/// Pins the entry `handle` names for the duration of one call; `unpin` it afterwards.
pub fn pin(handle: u32) Error!*Entry {
    const index = handle & (entries_max - 1);
    const generation = handle >> index_bits;
    if (generation == 0) return error.invalid_handle;
    assert(index < entries_max);
    assert(generation <= generation_mask);
    const entry = &entries[index];
    var state = @atomicLoad(u64, &entry.state, .seq_cst);
    const rounds_max = 1 << 16;
    for (0..rounds_max) |_| {
        if (state & live_bit == 0 or generationOf(state) != generation) return error.invalid_handle;
        if (state & closing_bit != 0) return error.handle_closed;
        if (state & pins_mask == pins_mask) return error.invalid_handle;
        state = @cmpxchgWeak(u64, &entry.state, state, state + 1, .seq_cst, .seq_cst) orelse {
            if (entry.owner_pid != processPid()) {
                _ = unpin(entry);
                return error.invalid_handle;
            }
            return entry;
        };
    }
    return error.invalid_handle;
}

/// Ends one call's pin; the last unpin of a closing entry finalizes it. Returns whether this
/// unpin unlinked the region.
pub fn unpin(entry: *Entry) bool {
    const previous = @atomicRmw(u64, &entry.state, .Sub, 1, .seq_cst);
    assert(previous & pins_mask > 0);
    assert(previous & live_bit != 0);
    if (previous & pins_mask != 1 or previous & closing_bit == 0) return false;
    return finalize(entry);
}

/// Starts closing `handle`: new calls fail and waits on it end. Returns whether the region was
/// unlinked now (false when another call still holds a pin and will finalize it).
pub fn close(handle: u32) Error!bool {
    const entry = try pin(handle);
    const previous = @atomicRmw(u64, &entry.state, .Or, closing_bit, .seq_cst);
    assert(previous & live_bit != 0);
    assert(previous & pins_mask > 0);
    if (previous & closing_bit != 0) {
        _ = unpin(entry);
        return error.handle_closed;
    }
    @atomicStore(u32, &entry.cancel, rwlock.cancel_closing, .seq_cst);
    const header = entry.mapping.header();
    futex.wakeAll(&header.lock_state);
    futex.wakeAll(&header.lock_drain_sequence);
    return unpin(entry);
}

/// Releases everything the handle holds, unmaps, and frees the entry. Runs exactly once, with no
/// pin left. Unlink failures are left to the reaper: the caller has nothing better to do.
fn finalize(entry: *Entry) bool {
    assert(@atomicLoad(u64, &entry.state, .seq_cst) & closing_bit != 0);
    assert(@atomicLoad(u64, &entry.state, .seq_cst) & pins_mask == 0);
    const header = entry.mapping.header();
    var waiter = entry.waiter;
    rwlock.abandonIntent(header, &waiter);
    if (entry.exclusive_held) rwlock.releaseExclusive(header, &waiter) catch {};
    for (0..entry.shared_held) |_| rwlock.releaseShared(header, &waiter) catch {};
    var last = false;
    for (0..entry.references_held) |_| {
        if (refcount.release(header, entry.owner_pid, entry.holder_hint) catch false) last = true;
    }
    var unlinked = false;
    if (last) {
        var failure: Failure = .{};
        region.unlink(&entry.mapping.name, &failure) catch {};
        unlinked = true;
    }
    const total_bytes = entry.mapping.memory.len;
    region.unmap(&entry.mapping);
    table_mutex.lock();
    defer table_mutex.unlock();
    usage.regions -= 1;
    usage.mapped_bytes -= total_bytes;
    const state = @atomicLoad(u64, &entry.state, .seq_cst);
    assert(state & pins_mask == 0);
    @atomicStore(u64, &entry.state, @as(u64, generationOf(state)) << generation_shift, .seq_cst);
    return unlinked;
}

const testing = std.testing;

fn createForTests(payload_bytes: u64) !u32 {
    var failure: Failure = .{};
    const total_bytes = payload_bytes + @import("header.zig").payload_offset_default;
    const index = try reserve(payload_bytes, total_bytes);
    const mapping = try region.create(.{ .instance = "zig_handles", .payload_bytes = payload_bytes, .pid = processPid() }, &failure);
    return publish(index, mapping, 1);
}

test "a handle pins, closes once, and is stale afterwards" {
    const before = currentUsage();
    const handle = try createForTests(4096);
    try testing.expectEqual(before.regions + 1, currentUsage().regions);
    try testing.expectEqual(before.mapped_bytes + 8192, currentUsage().mapped_bytes);
    const entry = try pin(handle);
    try testing.expect(!unpin(entry));
    try testing.expect(try close(handle));
    try testing.expectError(error.invalid_handle, close(handle));
    try testing.expectError(error.invalid_handle, pin(handle));
    try testing.expectError(error.invalid_handle, pin(0));
    try testing.expectError(error.invalid_handle, pin(handle +% (1 << index_bits)));
    try testing.expectEqual(before.regions, currentUsage().regions);
    try testing.expectEqual(before.mapped_bytes, currentUsage().mapped_bytes);
}

test "close while a call is inside defers finalizing to that call's unpin" {
    const handle = try createForTests(100);
    const entry = try pin(handle);
    const name = entry.mapping.name;
    try testing.expect(!try close(handle));
    try testing.expectError(error.handle_closed, pin(handle));
    try testing.expectError(error.handle_closed, close(handle));
    try testing.expectEqual(rwlock.cancel_closing, entry.cancel);
    var failure: Failure = .{};
    var still_there = try region.open(name.slice(), &failure);
    region.unmap(&still_there);
    try testing.expect(unpin(entry));
    try testing.expectError(error.not_found, region.open(name.slice(), &failure));
}

test "the table refuses a region past the process's region count" {
    var reserved: [entries_max]u32 = undefined;
    var count: usize = 0;
    const total_bytes = 2 * @import("header.zig").payload_offset_default;
    while (count < entries_max) : (count += 1) {
        reserved[count] = reserve(4096, total_bytes) catch break;
    }
    try testing.expect(count > 0);
    try testing.expectError(error.process_regions_exhausted, reserve(4096, total_bytes));
    for (reserved[0..count]) |index| unreserve(index, total_bytes);
}

//! Futex words in a region's payload: the doorbells of a shared-memory ring (the "fast lane").
//!
//! A consumer waits for a u32 word to move off the value it last saw; a producer stores a new
//! value and wakes the consumer only when the consumer said it is asleep, through an optional
//! "parked" flag word beside it. A producer whose consumer is awake (spinning or busy) so pays
//! one atomic store and one atomic swap, and no system call.
//!
//! Why no wake is lost: the waiter stores parked = 1 and then re-reads the word; the publisher
//! stores the word and then swaps parked to 0, all seq_cst. In every interleaving either the
//! waiter's re-read sees the new word, or the publisher's swap sees the 1 and wakes. The futex
//! wait itself also refuses to sleep once the word moved. The waiter re-arms the flag before each
//! sleep slice, so a publish that stored an unchanged value cannot leave it asleep past a slice.
//! The flag belongs to one waiter: two waiters sharing a flag may each clear the other's.
//!
//! Offsets are byte offsets into the payload, 4-byte aligned and inside it; anything else is
//! `invalid_argument`. Every call pins its handle (handle_table.zig), so closing the handle
//! meanwhile is safe, and a wait then ends with `handle_closed` within one sleep slice.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const handle_table = @import("handle_table.zig");
const futex = @import("futex.zig");
const rwlock = @import("rwlock.zig");

/// The parked offset that means "no parked flag".
pub const no_parked_flag: u64 = std.math.maxInt(u64);
/// The timeout that waits without a deadline.
pub const wait_forever: u64 = std.math.maxInt(u64);
/// The longest spin a wait accepts: past a second, sleeping is cheaper for everyone.
pub const spin_ns_max: u64 = std.time.ns_per_s;
/// Spin rounds between two reads of the monotonic clock (a read costs more than a round).
const spin_clock_stride = 64;
/// Longest futex sleep between re-checks of the handle (closing) and the parked flag: long, so
/// an idle waiter (a parked fast-lane reader) wakes only a few times a second.
pub const sleep_slice_ns_max: u64 = 900 * std.time.ns_per_ms;

comptime {
    assert(std.math.isPowerOfTwo(spin_clock_stride));
    assert(spin_ns_max < no_parked_flag / 2);
}

/// What a wait saw last, and whether it gave up at its deadline.
pub const Waited = struct { value: u32, timed_out: bool };

const Words = struct { word: *u32, parked: ?*u32 };

fn wordAt(payload: []u8, offset: u64) Error!*u32 {
    if (offset % @sizeOf(u32) != 0) return error.invalid_argument;
    if (offset > payload.len or payload.len - offset < @sizeOf(u32)) return error.invalid_argument;
    const address = @intFromPtr(payload.ptr) + offset;
    // The payload starts page-aligned plus a 256-aligned offset, so aligned offsets stay aligned.
    assert(@intFromPtr(payload.ptr) % @alignOf(u32) == 0);
    assert(address % @alignOf(u32) == 0);
    return @ptrFromInt(address);
}

fn resolve(entry: *handle_table.Entry, word_offset: u64, parked_offset: u64) Error!Words {
    const payload = entry.mapping.payload();
    assert(payload.len > 0);
    const word = try wordAt(payload, word_offset);
    if (parked_offset == no_parked_flag) return .{ .word = word, .parked = null };
    // A flag on the word itself would make every park look like a publish.
    if (parked_offset == word_offset) return error.invalid_argument;
    const parked = try wordAt(payload, parked_offset);
    assert(parked != word);
    return .{ .word = word, .parked = parked };
}

/// Waits until the word at `word_offset` differs from `expected`: first spinning for up to
/// `spin_ns` (at most `spin_ns_max`), then, unless `timeout_ns` is 0, sleeping on the futex for
/// up to `timeout_ns` more (`wait_forever`: no deadline) with the parked flag raised. The flag is
/// 0 again whenever this returns.
pub fn wait(
    handle: u32,
    word_offset: u64,
    expected: u32,
    parked_offset: u64,
    spin_ns: u64,
    timeout_ns: u64,
) Error!Waited {
    if (spin_ns > spin_ns_max) return error.invalid_argument;
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const words = try resolve(entry, word_offset, parked_offset);
    const first = @atomicLoad(u32, words.word, .seq_cst);
    if (first != expected) return .{ .value = first, .timed_out = false };
    if (spin(words.word, expected, spin_ns)) |value| return .{ .value = value, .timed_out = false };
    if (timeout_ns == 0) {
        // Nobody needs to wake a wait that will not sleep, so the flag stays down.
        const value = @atomicLoad(u32, words.word, .seq_cst);
        return .{ .value = value, .timed_out = value == expected };
    }
    // Declared after the unpin's defer, so it runs first, while the region is still mapped.
    defer if (words.parked) |parked| @atomicStore(u32, parked, 0, .seq_cst);
    return sleep(entry, words, expected, futex.deadlineAfter(timeout_ns));
}

/// The word's new value if it moved off `expected` within `spin_ns`, else null.
fn spin(word: *const u32, expected: u32, spin_ns: u64) ?u32 {
    if (spin_ns == 0) return null;
    assert(spin_ns <= spin_ns_max);
    const deadline_ns = futex.nowNs() + spin_ns;
    var round: u64 = 0;
    while (true) : (round += 1) {
        const value = @atomicLoad(u32, word, .seq_cst);
        if (value != expected) return value;
        std.atomic.spinLoopHint();
        if (round % spin_clock_stride == spin_clock_stride - 1 and futex.nowNs() >= deadline_ns) {
            return null;
        }
    }
}

/// Sleeps in futex slices of at most `futex.wait_slice_ns_max` until the word moves, the
/// deadline passes or the handle closes. Without a deadline the loop is bounded only by those.
fn sleep(entry: *handle_table.Entry, words: Words, expected: u32, deadline_ns: u64) Error!Waited {
    assert(deadline_ns > 0);
    while (true) {
        if (words.parked) |parked| @atomicStore(u32, parked, 1, .seq_cst);
        if (@atomicLoad(u32, &entry.cancel, .seq_cst) == rwlock.cancel_closing) {
            return error.handle_closed;
        }
        const value = @atomicLoad(u32, words.word, .seq_cst);
        if (value != expected) return .{ .value = value, .timed_out = false };
        const remaining_ns = futex.remainingNs(deadline_ns);
        if (remaining_ns == 0) return .{ .value = value, .timed_out = true };
        futex.waitSliced(words.word, expected, remaining_ns, sleep_slice_ns_max);
    }
}

/// Stores `value` into the word (seq_cst). With a parked flag, swaps it to 0 and, when it was
/// raised, wakes every waiter on the word; returns whether it was raised.
pub fn publish(handle: u32, word_offset: u64, value: u32, parked_offset: u64) Error!bool {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const words = try resolve(entry, word_offset, parked_offset);
    @atomicStore(u32, words.word, value, .seq_cst);
    const parked = words.parked orelse return false;
    const was_parked = @atomicRmw(u32, parked, .Xchg, 0, .seq_cst);
    if (was_parked == 0) return false;
    futex.wakeAll(words.word);
    assert(words.parked != null);
    return true;
}

/// Wakes every waiter on the word, whatever its value.
pub fn wake(handle: u32, word_offset: u64) Error!void {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const word = try wordAt(entry.mapping.payload(), word_offset);
    assert(@intFromPtr(word) % @alignOf(u32) == 0);
    futex.wakeAll(word);
}

const testing = std.testing;
const Failure = @import("os_failure.zig").Failure;
const region_handle = @import("region_handle.zig");

const payload_bytes_for_tests = 64;
const word_offset_for_tests = 8;
const parked_offset_for_tests = 12;

fn createForTests() !u32 {
    var failure: Failure = .{};
    return region_handle.create("zig_words", payload_bytes_for_tests, 0, &failure);
}

fn wordForTests(handle: u32, offset: u64) !*u32 {
    const payload = try region_handle.payload(handle);
    return @ptrFromInt(payload.address + offset);
}

/// Spins (bounded) until the parked flag is raised: the waiter is then in its sleep phase.
fn awaitParked(parked: *const u32) bool {
    const rounds_max = 5000;
    for (0..rounds_max) |_| {
        if (@atomicLoad(u32, parked, .seq_cst) != 0) return true;
        std.time.sleep(std.time.ns_per_ms);
    }
    return false;
}

test "a wait returns at once with the word's value when it already differs" {
    const handle = try createForTests();
    defer _ = handle_table.close(handle) catch unreachable;
    (try wordForTests(handle, word_offset_for_tests)).* = 7;
    const start = futex.nowNs();
    const waited = try wait(handle, word_offset_for_tests, 6, parked_offset_for_tests, 0, wait_forever);
    try testing.expectEqual(Waited{ .value = 7, .timed_out = false }, waited);
    try testing.expect(futex.nowNs() - start < 100 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u32, 0), (try wordForTests(handle, parked_offset_for_tests)).*);
}

test "a wait on an unchanged word times out with the current value and the flag down" {
    const handle = try createForTests();
    defer _ = handle_table.close(handle) catch unreachable;
    (try wordForTests(handle, word_offset_for_tests)).* = 3;
    const start = futex.nowNs();
    const timeout_ns = 20 * std.time.ns_per_ms;
    const waited = try wait(handle, word_offset_for_tests, 3, parked_offset_for_tests, 0, timeout_ns);
    try testing.expectEqual(Waited{ .value = 3, .timed_out = true }, waited);
    try testing.expect(futex.nowNs() - start >= timeout_ns);
    try testing.expectEqual(@as(u32, 0), (try wordForTests(handle, parked_offset_for_tests)).*);
}

test "a spin-only wait (timeout 0) times out after its spin without raising the flag" {
    const handle = try createForTests();
    defer _ = handle_table.close(handle) catch unreachable;
    const spin_ns = 2 * std.time.ns_per_ms;
    const start = futex.nowNs();
    const waited = try wait(handle, word_offset_for_tests, 0, parked_offset_for_tests, spin_ns, 0);
    const elapsed_ns = futex.nowNs() - start;
    try testing.expectEqual(Waited{ .value = 0, .timed_out = true }, waited);
    try testing.expect(elapsed_ns >= spin_ns);
    // Scheduling noise on a loaded machine can exceed a 10 ms sleep slice, so a tight bound
    // would be flaky; this one still catches a wait that slept towards some deadline.
    try testing.expect(elapsed_ns < spin_ns + 500 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u32, 0), (try wordForTests(handle, parked_offset_for_tests)).*);
    const no_spin = try wait(handle, word_offset_for_tests, 0, no_parked_flag, 0, 0);
    try testing.expectEqual(Waited{ .value = 0, .timed_out = true }, no_spin);
}

const Publisher = struct {
    fn run(handle: u32, parked: *const u32, was_parked: *bool) void {
        if (!awaitParked(parked)) return;
        was_parked.* = publish(handle, word_offset_for_tests, 42, parked_offset_for_tests) catch false;
    }

    fn close(handle: u32, parked: *const u32) void {
        if (!awaitParked(parked)) return;
        _ = handle_table.close(handle) catch unreachable;
    }
};

test "a publish from another thread wakes a parked waiter and reports it was parked" {
    const handle = try createForTests();
    defer _ = handle_table.close(handle) catch unreachable;
    const parked = try wordForTests(handle, parked_offset_for_tests);
    var was_parked = false;
    const thread = try std.Thread.spawn(.{}, Publisher.run, .{ handle, parked, &was_parked });
    const waited = wait(handle, word_offset_for_tests, 0, parked_offset_for_tests, 1000, 10 * std.time.ns_per_s);
    thread.join();
    try testing.expectEqual(Waited{ .value = 42, .timed_out = false }, try waited);
    try testing.expect(was_parked);
    try testing.expectEqual(@as(u32, 0), @atomicLoad(u32, parked, .seq_cst));
    try testing.expect(!try publish(handle, word_offset_for_tests, 43, parked_offset_for_tests));
    try testing.expectEqual(@as(u32, 43), (try wordForTests(handle, word_offset_for_tests)).*);
    try testing.expect(!try publish(handle, word_offset_for_tests, 44, no_parked_flag));
    try wake(handle, word_offset_for_tests);
}

test "closing the handle ends a wait on it with handle_closed" {
    const handle = try createForTests();
    const parked = try wordForTests(handle, parked_offset_for_tests);
    const thread = try std.Thread.spawn(.{}, Publisher.close, .{ handle, parked });
    const waited = wait(handle, word_offset_for_tests, 0, parked_offset_for_tests, 0, wait_forever);
    thread.join();
    try testing.expectError(error.handle_closed, waited);
    try testing.expectError(error.invalid_handle, wait(handle, word_offset_for_tests, 0, no_parked_flag, 0, 0));
}

test "misaligned, out-of-bounds and overlapping offsets, and a long spin, are invalid_argument" {
    const handle = try createForTests();
    defer _ = handle_table.close(handle) catch unreachable;
    const bad_offsets = [_]u64{ 2, payload_bytes_for_tests - 2, payload_bytes_for_tests, std.math.maxInt(u64) - 3, 1 << 40 };
    for (bad_offsets) |offset| {
        try testing.expectError(error.invalid_argument, wait(handle, offset, 0, no_parked_flag, 0, 0));
        try testing.expectError(error.invalid_argument, wait(handle, 0, 1, offset, 0, 0));
        try testing.expectError(error.invalid_argument, publish(handle, offset, 1, no_parked_flag));
        try testing.expectError(error.invalid_argument, publish(handle, 0, 1, offset));
        try testing.expectError(error.invalid_argument, wake(handle, offset));
    }
    try testing.expectError(error.invalid_argument, publish(handle, 4, 1, 4));
    try testing.expectError(error.invalid_argument, wait(handle, 4, 0, 4, 0, 0));
    try testing.expectError(error.invalid_argument, wait(handle, 0, 0, no_parked_flag, spin_ns_max + 1, 0));
    try testing.expectEqual(@as(u32, 0), (try wordForTests(handle, 0)).*);
    const last = payload_bytes_for_tests - 4;
    try testing.expect(!try publish(handle, last, 9, 0));
    try testing.expectEqual(Waited{ .value = 9, .timed_out = false }, try wait(handle, last, 0, 0, 0, 0));
    try testing.expectError(error.invalid_handle, publish(0, 0, 1, no_parked_flag));
}

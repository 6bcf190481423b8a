//! Process-shared futex wait and wake, and the monotonic clock the waits are measured against.
//!
//! `std.Thread.Futex` uses private futexes (one process); words in shared memory need the shared
//! form, which the kernel keys by the physical page, so every process mapping the region meets on
//! the same word.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;

/// The longest single sleep, so that a sleeper re-checks its conditions (owner liveness,
/// cancellation, deadline) at least this often.
pub const wait_slice_ns_max: u64 = 10 * std.time.ns_per_ms;

/// Sleeps while `word.* == expected`, for at most `timeout_ns` (clamped to `wait_slice_ns_max`).
/// Returns on a wake, a timeout, a signal or a changed value alike: callers re-check their
/// condition in a loop, so the reason does not matter.
pub fn wait(word: *const u32, expected: u32, timeout_ns: u64) void {
    waitSliced(word, expected, timeout_ns, wait_slice_ns_max);
}

/// As `wait`, with a longer slice for waiters that need to re-check their conditions less
/// often (an idle fast-lane reader wakes this rarely, so an idle pool burns no CPU).
pub fn waitSliced(word: *const u32, expected: u32, timeout_ns: u64, slice_max_ns: u64) void {
    assert(slice_max_ns > 0 and slice_max_ns < std.time.ns_per_s);
    const slice_ns: u64 = @min(timeout_ns, slice_max_ns);
    assert(slice_ns <= slice_max_ns);
    if (slice_ns == 0) return;
    const timeout: linux.timespec = .{
        .sec = @intCast(slice_ns / std.time.ns_per_s),
        .nsec = @intCast(slice_ns % std.time.ns_per_s),
    };
    assert(timeout.sec == 0);
    const signed_word: *const i32 = @ptrCast(word);
    _ = linux.futex_wait(signed_word, linux.FUTEX.WAIT, @bitCast(expected), &timeout);
}

/// Wakes every process and thread sleeping on `word`.
pub fn wakeAll(word: *const u32) void {
    const signed_word: *const i32 = @ptrCast(word);
    const waiters_max = std.math.maxInt(i32);
    comptime assert(waiters_max > 0);
    _ = linux.futex_wake(signed_word, linux.FUTEX.WAKE, waiters_max);
}

/// Nanoseconds on the monotonic clock.
pub fn nowNs() u64 {
    var now: linux.timespec = undefined;
    const result = linux.clock_gettime(.MONOTONIC, &now);
    assert(result == 0);
    assert(now.sec >= 0);
    return @as(u64, @intCast(now.sec)) * std.time.ns_per_s + @as(u64, @intCast(now.nsec));
}

/// The absolute deadline `timeout_ns` from now; `maxInt(u64)` (wait forever) stays that.
pub fn deadlineAfter(timeout_ns: u64) u64 {
    const deadline = std.math.add(u64, nowNs(), timeout_ns) catch std.math.maxInt(u64);
    assert(deadline >= timeout_ns or deadline == std.math.maxInt(u64));
    return deadline;
}

/// Nanoseconds left until `deadline`, 0 once it passed.
pub fn remainingNs(deadline: u64) u64 {
    const now = nowNs();
    const remaining = if (deadline > now) deadline - now else 0;
    assert(remaining <= deadline);
    return remaining;
}

const testing = std.testing;

test "wait returns at once when the word differs, and after the timeout otherwise" {
    var word: u32 = 5;
    const start = nowNs();
    wait(&word, 6, std.time.ns_per_s);
    try testing.expect(nowNs() - start < 500 * std.time.ns_per_ms);
    wait(&word, 5, std.time.ns_per_ms);
    try testing.expect(nowNs() - start >= std.time.ns_per_ms);
}

test "a wake ends a wait on the same word from another thread" {
    var word: u32 = 0;
    const Waker = struct {
        fn run(target: *u32) void {
            std.time.sleep(2 * std.time.ns_per_ms);
            @atomicStore(u32, target, 1, .seq_cst);
            wakeAll(target);
        }
    };
    const thread = try std.Thread.spawn(.{}, Waker.run, .{&word});
    defer thread.join();
    const rounds_max = 1000;
    var rounds: u32 = 0;
    while (@atomicLoad(u32, &word, .seq_cst) == 0 and rounds < rounds_max) : (rounds += 1) {
        wait(&word, 0, wait_slice_ns_max);
    }
    try testing.expectEqual(@as(u32, 1), @atomicLoad(u32, &word, .seq_cst));
}

test "deadlines saturate instead of overflowing" {
    try testing.expectEqual(@as(u64, std.math.maxInt(u64)), deadlineAfter(std.math.maxInt(u64)));
    try testing.expectEqual(@as(u64, 0), remainingNs(0));
    try testing.expect(remainingNs(deadlineAfter(std.time.ns_per_s)) > 0);
}

//! The record of a failed system call: which operation failed and the errno it set.
//!
//! Exports that touch the operating system take an optional out-pointer to an `ErrorRecord`
//! (two `u32` words: errno, then operation code) and fill it when they return `os_error` (and,
//! with errno 0, for `shm_full` and `not_found` so the caller can name the step). An out-pointer
//! rather than a thread-local "last error" because Deno runs nonblocking calls on other threads,
//! where a thread-local would be lost; the record travels with the call that failed.
//!
//! The operation codes and names are part of the ABI; `ffi/symbols.ts` and
//! `snakepit_bridge.native` mirror them and `tests/native_symbols.test.ts` checks the mirrors.

const std = @import("std");
const assert = std.debug.assert;

/// The system operation that failed. Values never change meaning.
pub const Op = enum(u32) {
    none = 0,
    shm_open = 1,
    ftruncate = 2,
    fstat = 3,
    mmap = 4,
    munmap = 5,
    shm_unlink = 6,
    statvfs = 7,
    getrandom = 8,
    fallocate = 9,
    opendir = 10,
    close = 11,
    fcntl = 12,
};

/// What the caller's out-pointer receives: errno (positive, or 0) and the operation's code.
pub const ErrorRecord = extern struct {
    errno: u32,
    op: u32,
};

/// The words an `ErrorRecord` occupies in the caller's buffer.
pub const error_record_words = 2;

comptime {
    assert(@sizeOf(ErrorRecord) == error_record_words * @sizeOf(u32));
    assert(@offsetOf(ErrorRecord, "errno") == 0);
    assert(@offsetOf(ErrorRecord, "op") == 4);
}

/// Where a failing function writes the details of its failure. `none` until something fails.
pub const Failure = struct {
    errno: u32 = 0,
    op: Op = .none,

    /// Records that `op` failed with the current thread's errno.
    pub fn setFromErrno(failure: *Failure, op: Op) void {
        assert(op != .none);
        const value: c_int = std.c._errno().*;
        assert(value >= 0);
        failure.* = .{ .errno = @intCast(value), .op = op };
    }

    /// Records that `op` failed with `errno` (0 when no errno applies, e.g. too little space).
    pub fn set(failure: *Failure, op: Op, errno: u32) void {
        assert(op != .none);
        assert(errno < 4096);
        failure.* = .{ .errno = errno, .op = op };
    }

    /// The record for the caller's out-pointer.
    pub fn record(failure: Failure) ErrorRecord {
        assert(failure.errno < 4096);
        assert(failure.op != .none or failure.errno == 0);
        return .{ .errno = failure.errno, .op = @intFromEnum(failure.op) };
    }
};

const testing = std.testing;

test "operation codes keep their ABI values" {
    try testing.expectEqual(@as(u32, 0), @intFromEnum(Op.none));
    try testing.expectEqual(@as(u32, 1), @intFromEnum(Op.shm_open));
    try testing.expectEqual(@as(u32, 7), @intFromEnum(Op.statvfs));
    try testing.expectEqual(@as(u32, 11), @intFromEnum(Op.close));
}

test "a failure records the operation and errno" {
    var failure: Failure = .{};
    try testing.expectEqual(ErrorRecord{ .errno = 0, .op = 0 }, failure.record());
    failure.set(.statvfs, 28);
    try testing.expectEqual(ErrorRecord{ .errno = 28, .op = 7 }, failure.record());
    std.c._errno().* = 2;
    failure.setFromErrno(.shm_open);
    try testing.expectEqual(ErrorRecord{ .errno = 2, .op = 1 }, failure.record());
}

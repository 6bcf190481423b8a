//! Whether a process is alive, for recovering locks and references of processes that died.
//!
//! `kill(pid, 0)` says whether a pid exists; a zombie (dead, not yet reaped by its parent) still
//! exists, so a pid that exists is also checked in `/proc/<pid>/stat` for the states Z and X.
//! Whenever the answer is uncertain the process counts as alive: wrongly declaring a live holder
//! dead would break its lock, wrongly declaring a dead one alive only delays recovery.
//!
//! Limits: pids are compared, not process identities, so a pid reused by an unrelated process
//! keeps a dead holder's records alive until that process ends too; all processes sharing a region
//! must live in one pid namespace (one container), as they share its /dev/shm anyway.

const std = @import("std");
const assert = std.debug.assert;
const pid_max = @import("header.zig").pid_max;

/// Bytes read from `/proc/<pid>/stat`: enough for "pid (comm) S" with the longest comm (16
/// bytes, but a comm may hold ") " so the last ')' is searched).
const stat_bytes_max = 128;

/// Whether `pid` names a live, non-zombie process. `pid` 0 and pids past `pid_max` are not.
pub fn isAlive(pid: u32) bool {
    if (pid == 0 or pid > pid_max) return false;
    const pid_signed: std.c.pid_t = @intCast(pid);
    assert(pid_signed > 0);
    if (std.c.kill(pid_signed, 0) != 0) {
        // EPERM: it exists but belongs to someone else; only ESRCH proves it is gone.
        return std.posix.errno(@as(c_int, -1)) != .SRCH;
    }
    return !isZombie(pid);
}

/// Whether `/proc/<pid>/stat` reports the process as a zombie (Z) or dead (X).
fn isZombie(pid: u32) bool {
    assert(pid != 0);
    var path_buffer: [32]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buffer, "/proc/{d}/stat", .{pid}) catch unreachable;
    const descriptor = std.c.open(path.ptr, .{ .ACCMODE = .RDONLY, .CLOEXEC = true });
    if (descriptor < 0) return std.posix.errno(@as(c_int, -1)) == .NOENT;
    defer _ = std.c.close(descriptor);
    var stat: [stat_bytes_max]u8 = undefined;
    const read_bytes = std.c.read(descriptor, &stat, stat.len);
    if (read_bytes <= 0) return false;
    const text = stat[0..@intCast(read_bytes)];
    assert(text.len <= stat_bytes_max);
    const comm_end = std.mem.lastIndexOfScalar(u8, text, ')') orelse return false;
    if (comm_end + 2 >= text.len) return false;
    const state = text[comm_end + 2];
    return state == 'Z' or state == 'X';
}

const testing = std.testing;

test "this process is alive" {
    const pid: u32 = @intCast(std.c.getpid());
    try testing.expect(isAlive(pid));
    try testing.expect(!isZombie(pid));
}

test "pid 0 and pids past the limit are not alive" {
    try testing.expect(!isAlive(0));
    try testing.expect(!isAlive(pid_max + 1));
    try testing.expect(!isAlive(std.math.maxInt(u32)));
}

test "a child that exited is dead as a zombie and after it is reaped" {
    const child = std.c.fork();
    try testing.expect(child >= 0);
    if (child == 0) std.c._exit(0);
    const pid: u32 = @intCast(child);
    const deadline_rounds_max = 2000;
    var rounds: u32 = 0;
    while (isAlive(pid) and rounds < deadline_rounds_max) : (rounds += 1) {
        std.time.sleep(std.time.ns_per_ms);
    }
    try testing.expect(!isAlive(pid));
    var status: c_int = 0;
    _ = std.c.waitpid(child, &status, 0);
    try testing.expect(!isAlive(pid));
}

//! `zig build bench`: the native core's costs measured from Zig, with no FFI in the way.
//!
//! Prints one JSON object (`--json`, for bench/native_core.ts) or a table: uncontended lock
//! acquire+release (Zig API and C ABI), region create+map+unmap+unlink (1 MiB, 1 GiB when
//! /dev/shm has room), and memcpy bandwidth as the physical reference.

const std = @import("std");
const snakepit = @import("snakepit");

const lock_rounds = 2_000_000;
const memcpy_bytes = 256 << 20;
const memcpy_rounds = 8;

const Result = struct { name: []const u8, value: f64, unit: []const u8 };
const results_max = 16;

fn nowNs() u64 {
    return snakepit.futex.nowNs();
}

fn lockZig(header: *snakepit.header.Header, mode: snakepit.rwlock.Mode) f64 {
    var waiter: snakepit.rwlock.Waiter = .{ .pid = snakepit.handle_table.processPid() };
    const start = nowNs();
    for (0..lock_rounds) |_| {
        switch (mode) {
            .exclusive => {
                _ = snakepit.rwlock.acquireExclusive(header, &waiter) catch unreachable;
                snakepit.rwlock.releaseExclusive(header, &waiter) catch unreachable;
            },
            .shared => {
                _ = snakepit.rwlock.acquireShared(header, &waiter) catch unreachable;
                snakepit.rwlock.releaseShared(header, &waiter) catch unreachable;
            },
        }
    }
    return @as(f64, @floatFromInt(nowNs() - start)) / lock_rounds;
}

fn lockAbi(handle: u32, mode: snakepit.rwlock.Mode) f64 {
    const start = nowNs();
    for (0..lock_rounds) |_| {
        _ = snakepit.region_handle.lock(handle, mode, 0, 0) catch unreachable;
        snakepit.region_handle.unlock(handle, mode) catch unreachable;
    }
    return @as(f64, @floatFromInt(nowNs() - start)) / lock_rounds;
}

/// Mean µs of create + map + unmap + unlink for a payload of `bytes`, or null if it won't fit.
fn regionCycle(bytes: u64, rounds: u32) ?f64 {
    var failure: snakepit.os_failure.Failure = .{};
    const available = snakepit.limits.shmAvailableBytes(&failure) catch return null;
    if (available < bytes + (64 << 20)) return null;
    const start = nowNs();
    for (0..rounds) |_| {
        const handle = snakepit.region_handle.create("bench", bytes, 0, &failure) catch return null;
        _ = snakepit.handle_table.close(handle) catch unreachable;
    }
    return @as(f64, @floatFromInt(nowNs() - start)) / @as(f64, @floatFromInt(rounds)) / 1000;
}

fn memcpyBandwidth(allocator: std.mem.Allocator) !f64 {
    const source = try allocator.alloc(u8, memcpy_bytes);
    defer allocator.free(source);
    const destination = try allocator.alloc(u8, memcpy_bytes);
    defer allocator.free(destination);
    @memset(source, 0x5A);
    @memset(destination, 0);
    var best_ns: u64 = std.math.maxInt(u64);
    for (0..memcpy_rounds) |_| {
        const start = nowNs();
        @memcpy(destination, source);
        std.mem.doNotOptimizeAway(destination.ptr);
        best_ns = @min(best_ns, nowNs() - start);
    }
    return @as(f64, memcpy_bytes) / @as(f64, @floatFromInt(best_ns));
}

pub fn main() !void {
    var arguments = std.process.args();
    _ = arguments.skip();
    const json = if (arguments.next()) |argument| std.mem.eql(u8, argument, "--json") else false;
    var results: [results_max]Result = undefined;
    var count: usize = 0;
    var failure: snakepit.os_failure.Failure = .{};
    const handle = try snakepit.region_handle.create("bench", 4096, 0, &failure);
    defer _ = snakepit.handle_table.close(handle) catch {};
    const payload = try snakepit.region_handle.payload(handle);
    const header: *snakepit.header.Header = @ptrFromInt(payload.address - snakepit.header.payload_offset_default);
    results[count] = .{ .name = "lock_exclusive_zig_ns", .value = lockZig(header, .exclusive), .unit = "ns" };
    count += 1;
    results[count] = .{ .name = "lock_shared_zig_ns", .value = lockZig(header, .shared), .unit = "ns" };
    count += 1;
    results[count] = .{ .name = "lock_exclusive_abi_ns", .value = lockAbi(handle, .exclusive), .unit = "ns" };
    count += 1;
    results[count] = .{ .name = "lock_shared_abi_ns", .value = lockAbi(handle, .shared), .unit = "ns" };
    count += 1;
    results[count] = .{ .name = "region_cycle_1mib_us", .value = regionCycle(1 << 20, 200) orelse -1, .unit = "us" };
    count += 1;
    results[count] = .{ .name = "region_cycle_1gib_us", .value = regionCycle(1 << 30, 5) orelse -1, .unit = "us" };
    count += 1;
    results[count] = .{ .name = "memcpy_gb_per_s", .value = try memcpyBandwidth(std.heap.page_allocator), .unit = "GB/s" };
    count += 1;
    const stdout = std.io.getStdOut().writer();
    if (json) {
        try stdout.writeAll("{");
        for (results[0..count], 0..) |result, index| {
            try stdout.print("{s}\"{s}\":{d:.3}", .{ if (index == 0) "" else ",", result.name, result.value });
        }
        try stdout.writeAll("}\n");
        return;
    }
    for (results[0..count]) |result| try stdout.print("{s:<28} {d:>12.2} {s}\n", .{ result.name, result.value, result.unit });
}

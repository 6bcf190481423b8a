//! Operations on open regions, by handle: what the C ABI exports, minus the pointer checks.
//!
//! Each operation pins its handle for its duration (handle_table.zig), so it never runs on an
//! unmapped region; the per-handle bookkeeping (references and locks this handle holds, so that
//! `close` can give them back) is kept under the entry's mutex.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const Failure = @import("os_failure.zig").Failure;
const header_file = @import("header.zig");
const region = @import("region.zig");
const handle_table = @import("handle_table.zig");
const refcount = @import("refcount.zig");
const rwlock = @import("rwlock.zig");
const futex = @import("futex.zig");
const dlpack = @import("dlpack.zig");
const pid_table = @import("pid_table.zig");

/// Open flag: retain the region (the handle then holds one reference, given back by close).
pub const open_flag_retain: u32 = 1 << 0;
pub const open_flags_known: u32 = open_flag_retain;
/// Lock flag: on `would_block` or `timed_out`, keep an exclusive claim for the next call (used by
/// try-lock pollers so that arriving readers cannot starve them). `snakepit_lock_cancel` or
/// `close` withdraws it.
pub const lock_flag_keep_intent: u32 = 1 << 0;
pub const lock_flags_known: u32 = lock_flag_keep_intent;
/// fcntl's F_DUPFD_CLOEXEC on Linux (std's F lacks it).
const duplicate_close_on_exec: c_int = 1030;

/// Creates a region; the new handle holds the creator's one reference.
pub fn create(instance: []const u8, payload_bytes: u64, flags: u32, failure: *Failure) Error!u32 {
    if (payload_bytes == 0) return error.invalid_argument;
    if (payload_bytes > @import("limits.zig").region_payload_bytes_max) return error.region_too_large;
    const total_bytes = payload_bytes + header_file.payload_offset_default;
    const index = try handle_table.reserve(payload_bytes, total_bytes);
    errdefer handle_table.unreserve(index, total_bytes);
    const pid = handle_table.processPid();
    const mapping = try region.create(.{
        .instance = instance,
        .payload_bytes = payload_bytes,
        .flags = flags,
        .pid = pid,
    }, failure);
    assert(mapping.memory.len == total_bytes);
    return handle_table.publish(index, mapping, 1);
}

/// Opens and maps a region by name, checking its generation unless `expected_generation` is 0.
pub fn open(region_name_text: []const u8, expected_generation: u64, flags: u32, failure: *Failure) Error!u32 {
    if (flags & ~open_flags_known != 0) return error.invalid_argument;
    var mapping = try region.open(region_name_text, failure);
    errdefer region.unmap(&mapping);
    assert(mapping.payload().len > 0);
    assert(mapping.name.len > 0);
    const header = mapping.header();
    const generation = @atomicLoad(u64, &header.generation, .seq_cst);
    if (expected_generation != 0 and generation != expected_generation) return error.generation_mismatch;
    const total_bytes: u64 = mapping.memory.len;
    const index = try handle_table.reserve(mapping.payload().len, total_bytes);
    errdefer handle_table.unreserve(index, total_bytes);
    var references: u32 = 0;
    if (flags & open_flag_retain != 0) {
        var hint: u32 = 0;
        try refcount.retain(header, handle_table.processPid(), &hint);
        references = 1;
    }
    return handle_table.publish(index, mapping, references);
}

/// Adds a reference held by this handle.
pub fn retain(handle: u32) Error!void {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    entry.mutex.lock();
    defer entry.mutex.unlock();
    try refcount.retain(entry.mapping.header(), entry.owner_pid, &entry.holder_hint);
    entry.references_held += 1;
    assert(entry.references_held > 0);
}

/// Gives back a reference this handle holds; returns true when it was the region's last
/// reference and the region was unlinked.
pub fn release(handle: u32, failure: *Failure) Error!bool {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    entry.mutex.lock();
    defer entry.mutex.unlock();
    if (entry.references_held == 0) return error.over_release;
    assert(entry.owner_pid == handle_table.processPid());
    const last = try refcount.release(entry.mapping.header(), entry.owner_pid, entry.holder_hint);
    entry.references_held -= 1;
    assert(entry.references_held < std.math.maxInt(u32));
    if (!last) return false;
    region.unlink(&entry.mapping.name, failure) catch |err| switch (err) {
        error.not_found => {}, // the reaper got there first; the region is gone either way
        else => return err,
    };
    return true;
}

/// Takes the lock in `mode`, waiting up to `timeout_ns` (0: try once; maxInt(u64): forever).
pub fn lock(handle: u32, mode: rwlock.Mode, timeout_ns: u64, flags: u32) Error!rwlock.Acquired {
    if (flags & ~lock_flags_known != 0) return error.invalid_argument;
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    entry.mutex.lock();
    var waiter = entry.waiter;
    entry.mutex.unlock();
    waiter.deadline_ns = if (timeout_ns == 0) 0 else futex.deadlineAfter(timeout_ns);
    waiter.cancel = &entry.cancel;
    waiter.keep_intent = flags & lock_flag_keep_intent != 0;
    assert(waiter.pid == entry.owner_pid);
    assert(timeout_ns == 0 or waiter.deadline_ns != 0);
    // Only a call that may sleep counts as a wait that cancel can end; a try-lock never sleeps.
    const waits = timeout_ns != 0;
    if (waits) _ = @atomicRmw(u32, &entry.waits_in_flight, .Add, 1, .seq_cst);
    defer if (waits and @atomicRmw(u32, &entry.waits_in_flight, .Sub, 1, .seq_cst) == 1) {
        // The last wait to end consumes a cancellation; a closing handle stays closing.
        _ = @cmpxchgStrong(u32, &entry.cancel, rwlock.cancel_requested, 0, .seq_cst, .seq_cst);
    };
    const header = entry.mapping.header();
    const result = switch (mode) {
        .shared => rwlock.acquireShared(header, &waiter),
        .exclusive => rwlock.acquireExclusive(header, &waiter),
    };
    entry.mutex.lock();
    defer entry.mutex.unlock();
    entry.waiter.intent_pending = waiter.intent_pending;
    entry.waiter.liveness_due_ns = waiter.liveness_due_ns;
    entry.waiter.reader_slot_hint = waiter.reader_slot_hint;
    const acquired = try result;
    switch (mode) {
        .shared => entry.shared_held += 1,
        .exclusive => entry.exclusive_held = true,
    }
    return acquired;
}

/// Releases a lock this handle holds in `mode`.
pub fn unlock(handle: u32, mode: rwlock.Mode) Error!void {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    entry.mutex.lock();
    defer entry.mutex.unlock();
    const header = entry.mapping.header();
    assert(entry.waiter.pid == entry.owner_pid);
    assert(entry.shared_held <= std.math.maxInt(u32));
    switch (mode) {
        .shared => {
            if (entry.shared_held == 0) return error.not_locked;
            try rwlock.releaseShared(header, &entry.waiter);
            entry.shared_held -= 1;
        },
        .exclusive => {
            if (!entry.exclusive_held) return error.not_locked;
            try rwlock.releaseExclusive(header, &entry.waiter);
            entry.exclusive_held = false;
        },
    }
}

/// Ends the waits in progress on this handle with `cancelled`, and withdraws a kept claim.
pub fn cancel(handle: u32) Error!void {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const header = entry.mapping.header();
    assert(entry.owner_pid == handle_table.processPid());
    assert(@atomicLoad(u32, &entry.cancel, .seq_cst) != rwlock.cancel_closing);
    if (@atomicLoad(u32, &entry.waits_in_flight, .seq_cst) > 0) {
        _ = @cmpxchgStrong(u32, &entry.cancel, 0, rwlock.cancel_requested, .seq_cst, .seq_cst);
        futex.wakeAll(&header.lock_state);
        futex.wakeAll(&header.lock_drain_sequence);
    }
    entry.mutex.lock();
    defer entry.mutex.unlock();
    rwlock.abandonIntent(header, &entry.waiter);
}

/// The words `snakepit_region_info` reports, in order.
pub const info_fields = [_][]const u8{
    "generation",  "total_bytes",     "payload_offset",   "payload_bytes",
    "creator_pid", "flags",           "creation_time_ns", "reference_count",
    "holders",     "references_held", "lock_state",       "lock_owner_deaths",
    "shared_held", "exclusive_held",
};

/// Fills `words` (one per `info_fields` entry) with the region's state and this handle's.
pub fn info(handle: u32, words: *[info_fields.len]u64) Error!void {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    entry.mutex.lock();
    defer entry.mutex.unlock();
    const header = entry.mapping.header();
    var holders: u64 = 0;
    for (&header.holders) |*slot| holders += @intFromBool(@atomicLoad(u64, slot, .seq_cst) != 0);
    words.* = .{
        @atomicLoad(u64, &header.generation, .seq_cst), header.total_bytes,
        header.payload_offset,                          header.payload_bytes,
        header.creator_pid,                             @atomicLoad(u32, &header.flags, .seq_cst),
        header.creation_time_ns,                        refcount.count(header),
        holders,                                        entry.references_held,
        @atomicLoad(u32, &header.lock_state, .seq_cst), @atomicLoad(u32, &header.lock_owner_deaths, .seq_cst),
        entry.shared_held,                              @intFromBool(entry.exclusive_held),
    };
    assert(holders <= pid_table.slots_max);
}

/// The payload's address in this process and its size; valid until the handle is closed.
pub fn payload(handle: u32) Error!struct { address: u64, bytes: u64 } {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const bytes = entry.mapping.payload();
    assert(@intFromPtr(bytes.ptr) % header_file.payload_alignment == 0);
    return .{ .address = @intFromPtr(bytes.ptr), .bytes = bytes.len };
}

/// Copies the region's name into `buffer`; returns its length (even when it does not fit).
pub fn name(handle: u32, buffer: []u8) Error!usize {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const text = entry.mapping.name.slice();
    assert(text.len > 0);
    assert(text.len <= @import("region_name.zig").name_bytes_max);
    if (text.len <= buffer.len) @memcpy(buffer[0..text.len], text);
    return text.len;
}

/// A new descriptor for the region's shared-memory object (close-on-exec), owned by the caller.
pub fn duplicateDescriptor(handle: u32, failure: *Failure) Error!i32 {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const duplicate = std.c.fcntl(entry.mapping.descriptor, duplicate_close_on_exec, @as(c_int, 0));
    if (duplicate < 0) {
        failure.setFromErrno(.fcntl);
        return error.os_error;
    }
    assert(duplicate != entry.mapping.descriptor);
    return duplicate;
}

/// Adds one to the region's generation (descriptors of the old generation become stale).
pub fn bumpGeneration(handle: u32) Error!u64 {
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    assert(entry.owner_pid == handle_table.processPid());
    assert(entry.mapping.payload().len > 0);
    const previous = @atomicRmw(u64, &entry.mapping.header().generation, .Add, 1, .seq_cst);
    // Wrapping past 2^64 generations cannot happen in practice; +% keeps a damaged value harmless.
    return previous +% 1;
}

/// Checks that `bytes` describe a tensor inside this region (its name and generation).
pub fn checkDescriptor(handle: u32, bytes: []const u8) Error!dlpack.Extent {
    const descriptor = try dlpack.parse(bytes);
    const entry = try handle_table.pin(handle);
    defer _ = handle_table.unpin(entry);
    const mapping = &entry.mapping;
    assert(mapping.payload().len > 0);
    assert(descriptor.region_name.len > 0);
    if (!std.mem.eql(u8, descriptor.region_name.slice(), mapping.name.slice())) {
        return error.descriptor_region_mismatch;
    }
    const generation = @atomicLoad(u64, &mapping.header().generation, .seq_cst);
    if (descriptor.region_generation != generation) return error.generation_mismatch;
    return dlpack.checkBounds(&descriptor, mapping.payload().len);
}

const testing = std.testing;

fn regionExists(handle: u32) !bool {
    var buffer: [64]u8 = undefined;
    const length = try name(handle, &buffer);
    var failure: Failure = .{};
    var mapping = region.open(buffer[0..length], &failure) catch |err| switch (err) {
        error.not_found => return false,
        else => return err,
    };
    region.unmap(&mapping);
    return true;
}

test "references: create holds one, retain and release balance, close gives back the rest" {
    var failure: Failure = .{};
    const handle = try create("zig_refs", 1000, 0, &failure);
    try retain(handle);
    try retain(handle);
    try testing.expect(!try release(handle, &failure));
    var words: [info_fields.len]u64 = undefined;
    try info(handle, &words);
    try testing.expectEqual(@as(u64, 2), words[7]);
    try testing.expectEqual(@as(u64, 2), words[9]);
    try testing.expect(try regionExists(handle));
    try testing.expect(try handle_table.close(handle));
}

test "an opened, retained handle keeps the region alive after its creator released" {
    var failure: Failure = .{};
    const creator = try create("zig_refs", 1000, 0, &failure);
    var buffer: [64]u8 = undefined;
    const length = try name(creator, &buffer);
    const reader = try open(buffer[0..length], 1, open_flag_retain, &failure);
    try testing.expectError(error.generation_mismatch, open(buffer[0..length], 2, 0, &failure));
    try testing.expectError(error.invalid_argument, open(buffer[0..length], 0, 8, &failure));
    try testing.expect(!try release(creator, &failure));
    try testing.expectError(error.over_release, release(creator, &failure));
    try testing.expect(try regionExists(reader));
    try testing.expect(!try handle_table.close(creator));
    try testing.expect(try release(reader, &failure));
    try testing.expect(!try regionExists(reader));
    try testing.expect(!try handle_table.close(reader));
}

test "close gives back the locks a handle holds" {
    var failure: Failure = .{};
    const first = try create("zig_locks", 1000, 0, &failure);
    var buffer: [64]u8 = undefined;
    const second = try open(buffer[0..try name(first, &buffer)], 0, open_flag_retain, &failure);
    try testing.expectEqual(rwlock.Acquired.clean, try lock(first, .exclusive, 0, 0));
    try testing.expectError(error.would_block, lock(second, .shared, 0, 0));
    try testing.expectError(error.not_locked, unlock(second, .shared));
    try testing.expect(!try handle_table.close(first));
    try testing.expectEqual(rwlock.Acquired.clean, try lock(second, .shared, 0, 0));
    try unlock(second, .shared);
    try testing.expect(try handle_table.close(second));
}

const Closer = struct {
    /// Waits (bounded) until a lock call on `handle` is waiting: cancel needs a wait in progress,
    /// and a close before the wait began would make the wait fail with invalid_handle instead.
    fn awaitWaiter(handle: u32) void {
        const rounds_max = 5000;
        for (0..rounds_max) |_| {
            const entry = handle_table.pin(handle) catch unreachable;
            const waiting = @atomicLoad(u32, &entry.waits_in_flight, .seq_cst) > 0;
            _ = handle_table.unpin(entry);
            if (waiting) return;
            std.time.sleep(std.time.ns_per_ms);
        }
    }

    fn close(handle: u32) void {
        awaitWaiter(handle);
        _ = handle_table.close(handle) catch unreachable;
    }

    fn cancelWaits(handle: u32) void {
        awaitWaiter(handle);
        cancel(handle) catch unreachable;
    }
};

test "closing a handle ends a wait on it with handle_closed, cancel one with cancelled" {
    var failure: Failure = .{};
    const holder = try create("zig_locks", 1000, 0, &failure);
    var buffer: [64]u8 = undefined;
    const waiter = try open(buffer[0..try name(holder, &buffer)], 0, open_flag_retain, &failure);
    _ = try lock(holder, .exclusive, 0, 0);
    const closer = try std.Thread.spawn(.{}, Closer.close, .{waiter});
    try testing.expectError(error.handle_closed, lock(waiter, .shared, std.time.ns_per_s * 5, 0));
    closer.join();
    const canceller = try open(buffer[0..try name(holder, &buffer)], 0, 0, &failure);
    const cancelling = try std.Thread.spawn(.{}, Closer.cancelWaits, .{canceller});
    try testing.expectError(error.cancelled, lock(canceller, .exclusive, std.time.ns_per_s * 5, 0));
    cancelling.join();
    try testing.expectError(error.would_block, lock(canceller, .exclusive, 0, 0));
    _ = try handle_table.close(canceller);
    try unlock(holder, .exclusive);
    try testing.expect(try handle_table.close(holder));
}

test "a descriptor is checked against the region's name, generation and payload" {
    var failure: Failure = .{};
    const handle = try create("zig_desc", 64, 0, &failure);
    defer _ = handle_table.close(handle) catch unreachable;
    var descriptor = dlpack.exampleForTests(1, &.{16});
    var buffer: [64]u8 = undefined;
    descriptor.region_name = try @import("region_name.zig").parse(buffer[0..try name(handle, &buffer)]);
    const extent = try checkDescriptor(handle, &dlpack.serialize(&descriptor));
    try testing.expectEqual(dlpack.Extent{ .first_byte = 0, .end_byte = 64 }, extent);
    descriptor.shape[0] = 17;
    try testing.expectError(error.descriptor_out_of_bounds, checkDescriptor(handle, &dlpack.serialize(&descriptor)));
    descriptor.shape[0] = 16;
    try testing.expectEqual(@as(u64, 2), try bumpGeneration(handle));
    try testing.expectError(error.generation_mismatch, checkDescriptor(handle, &dlpack.serialize(&descriptor)));
    descriptor.region_generation = 2;
    descriptor.region_name = try @import("region_name.zig").parse("/snakepit-zig_desc-00000000000000000000000000000000");
    try testing.expectError(error.descriptor_region_mismatch, checkDescriptor(handle, &dlpack.serialize(&descriptor)));
}

//! The C ABI of the native library: the only file that exports symbols.
//!
//! Rules every export follows (STYLE.md, "The FFI boundary"):
//! - fixed-width integers only; memory is a pointer plus a `u32` length; no structs by value,
//!   no C strings, no `usize`;
//! - the result is an `i32` status (`Status`: 0 ok, negative errors); values come back through
//!   out-pointers the caller owns;
//! - bad input from a caller (null pointer, unknown code, short buffer) is an error status, never
//!   an assertion failure or a crash;
//! - the library keeps no pointer past the call and never calls back into the caller.
//!
//! `ffi/symbols.ts` and `snakepit_bridge.native` mirror this list; `tests/native_symbols.test.ts`
//! parses this file to check that they do.

const std = @import("std");
const assert = std.debug.assert;
const snakepit = @import("root.zig");
const Status = snakepit.Status;

/// Writes the ABI version (1 for this library) to `out_version`.
///
/// Ownership: the caller owns `out_version`; it is written only when the status is ok and is not
/// kept after the call.
/// Returns: ok; invalid_argument when `out_version` is null.
export fn snakepit_abi_version(out_version: ?*u32) i32 {
    const version_pointer = out_version orelse return Status.invalid_argument.code();
    comptime assert(snakepit.version.abi_version > 0);
    version_pointer.* = snakepit.version.abi_version;
    return Status.ok.code();
}

/// Writes the library's semantic version (major, minor, patch) to the three out-pointers.
///
/// Ownership: the caller owns all three out-pointers; they are written only when the status is
/// ok and are not kept after the call.
/// Returns: ok; invalid_argument when any out-pointer is null (nothing is written then).
export fn snakepit_library_version(
    out_major: ?*u32,
    out_minor: ?*u32,
    out_patch: ?*u32,
) i32 {
    const major_pointer = out_major orelse return Status.invalid_argument.code();
    const minor_pointer = out_minor orelse return Status.invalid_argument.code();
    const patch_pointer = out_patch orelse return Status.invalid_argument.code();
    const library_version = snakepit.version.library_version;
    // The version fields are usize in std; these make the narrowing below provably lossless.
    comptime assert(library_version.major <= std.math.maxInt(u32));
    comptime assert(library_version.minor <= std.math.maxInt(u32));
    comptime assert(library_version.patch <= std.math.maxInt(u32));
    major_pointer.* = @intCast(library_version.major);
    minor_pointer.* = @intCast(library_version.minor);
    patch_pointer.* = @intCast(library_version.patch);
    return Status.ok.code();
}

/// Computes the CRC-32C (Castagnoli) of `data[0..data_bytes]` and writes it to `out_crc`.
///
/// Ownership: the caller owns `data` and `out_crc`. `data` is only read, and only during the
/// call; it may be null when `data_bytes` is 0. `out_crc` is written only when the status is ok.
/// Returns: ok; invalid_argument when `out_crc` is null, or `data` is null and `data_bytes > 0`.
export fn snakepit_crc32c(data: ?[*]const u8, data_bytes: u32, out_crc: ?*u32) i32 {
    const crc_pointer = out_crc orelse return Status.invalid_argument.code();
    const bytes: []const u8 = if (data) |pointer|
        pointer[0..data_bytes]
    else if (data_bytes == 0)
        &.{}
    else
        return Status.invalid_argument.code();
    assert(bytes.len == data_bytes);
    assert(data != null or bytes.len == 0);
    crc_pointer.* = snakepit.crc32c.checksum(bytes);
    return Status.ok.code();
}

/// Writes the stable name of `status` (for example "invalid_argument") as UTF-8 bytes, without a
/// terminator, to `out_name[0..name_capacity_bytes]` and its length in bytes to `out_name_bytes`.
///
/// Ownership: the caller owns `out_name` and `out_name_bytes`; nothing is kept after the call.
/// A buffer of 64 bytes holds every name.
/// Returns: ok; buffer_too_small when the name does not fit (`out_name_bytes` then holds the
/// required length and `out_name` is untouched); invalid_argument when `status` is not a code
/// this library defines or `out_name_bytes` is null, or `out_name` is null while the name fits.
export fn snakepit_status_name(
    status: i32,
    out_name: ?[*]u8,
    name_capacity_bytes: u32,
    out_name_bytes: ?*u32,
) i32 {
    const length_pointer = out_name_bytes orelse return Status.invalid_argument.code();
    const known_status = Status.fromCode(status) orelse return Status.invalid_argument.code();
    const name = known_status.name();
    comptime assert(snakepit.status_name_bytes_max <= std.math.maxInt(u32));
    assert(name.len <= snakepit.status_name_bytes_max);
    length_pointer.* = @intCast(name.len);
    if (name.len > name_capacity_bytes) return Status.buffer_too_small.code();
    assert(name.len <= name_capacity_bytes);
    const name_pointer = out_name orelse return Status.invalid_argument.code();
    @memcpy(name_pointer[0..name.len], name);
    return Status.ok.code();
}

// ---------------------------------------------------------------------------------------------
// Shared memory. Conventions for everything below:
// - `out_error`, where present, may be null; when not null it receives two u32 words, errno then
//   the operation code (os_failure.zig), whenever the status is os_error, not_found or shm_full
//   (errno 0 where no errno applies), and {0, 0} otherwise.
// - handles are u32 values from snakepit_region_create / snakepit_region_open, owned by the
//   caller until snakepit_region_close; a closed or foreign handle is invalid_handle.
// - sizes past 4 GiB travel as u64 values or through u64 out-pointers.

const Failure = snakepit.os_failure.Failure;
const ErrorRecord = snakepit.os_failure.ErrorRecord;

fn bytesOrNull(pointer: ?[*]const u8, length: u32) ?[]const u8 {
    const bytes: []const u8 = if (pointer) |valid| valid[0..length] else if (length == 0) &.{} else return null;
    assert(bytes.len == length);
    assert(pointer != null or bytes.len == 0);
    return bytes;
}

fn report(out_error: ?*[2]u32, failure: Failure) void {
    const record = failure.record();
    comptime assert(@sizeOf(ErrorRecord) == 2 * @sizeOf(u32));
    assert(record.op != 0 or record.errno == 0);
    if (out_error) |words| words.* = .{ record.errno, record.op };
}

fn statusOf(err: snakepit.Error) i32 {
    const status = Status.fromError(err);
    assert(status != .ok);
    return status.code();
}

/// Writes the library's limits and constants as u64 words, in this order: region payload bytes
/// max, process mapped bytes max, process regions max, references max, holder slots, reader
/// slots, ndim max, payload offset, payload alignment, liveness check interval (ns), wait slice
/// (ns), instance name bytes max, region name bytes max, descriptor bytes, header bytes.
///
/// Ownership: the caller owns `out_words[0..capacity_words]` and `out_count`; nothing is kept.
/// Returns: ok; buffer_too_small (with `out_count` set) when the words do not fit;
/// invalid_argument for null pointers.
export fn snakepit_limits(out_words: ?[*]u64, capacity_words: u32, out_count: ?*u32) i32 {
    const limits = snakepit.limits;
    const words = [_]u64{
        limits.region_payload_bytes_max,     limits.process_mapped_bytes_max,
        limits.process_regions_max,          limits.references_max,
        snakepit.header.holder_slots_max,    snakepit.header.reader_slots_max,
        snakepit.dlpack.ndim_max,            snakepit.header.payload_offset_default,
        snakepit.header.payload_alignment,   snakepit.rwlock.liveness_check_interval_ns,
        snakepit.futex.wait_slice_ns_max,    snakepit.region_name.instance_bytes_max,
        snakepit.region_name.name_bytes_max, snakepit.dlpack.encoded_bytes,
        @sizeOf(snakepit.header.Header),
    };
    comptime assert(words.len == 15);
    comptime assert(words[0] <= words[1]);
    return writeWords(u64, &words, out_words, capacity_words, out_count);
}

fn writeWords(comptime T: type, words: []const T, out_words: ?[*]T, capacity: u32, out_count: ?*u32) i32 {
    const count_pointer = out_count orelse return Status.invalid_argument.code();
    assert(words.len <= std.math.maxInt(u32));
    count_pointer.* = @intCast(words.len);
    if (words.len > capacity) return Status.buffer_too_small.code();
    const destination = out_words orelse return Status.invalid_argument.code();
    @memcpy(destination[0..words.len], words);
    return Status.ok.code();
}

fn layoutWords(comptime T: type, comptime fields: []const []const u8) [fields.len * 2]u32 {
    var words: [fields.len * 2]u32 = undefined;
    inline for (fields, 0..) |field, index| {
        words[index * 2] = @offsetOf(T, field);
        words[index * 2 + 1] = @sizeOf(@FieldType(T, field));
        assert(words[index * 2] + words[index * 2 + 1] <= @sizeOf(T));
    }
    assert(words.len % 2 == 0);
    return words;
}

/// Writes the region header's layout: for each field of `header.layout_fields`, in order, its
/// byte offset then its size (u32 words). For the TypeScript and Python mirrors' tests.
///
/// Ownership and returns: as snakepit_limits.
export fn snakepit_header_layout(out_words: ?[*]u32, capacity_words: u32, out_count: ?*u32) i32 {
    const words = comptime layoutWords(snakepit.header.Header, &snakepit.header.layout_fields);
    comptime assert(words[0] == 0);
    comptime assert(words.len == 2 * snakepit.header.layout_fields.len);
    return writeWords(u32, &words, out_words, capacity_words, out_count);
}

/// Writes the encoded descriptor's layout: for each field of `dlpack.layout_fields`, in order,
/// its byte offset then its size (u32 words).
///
/// Ownership and returns: as snakepit_limits.
export fn snakepit_descriptor_layout(out_words: ?[*]u32, capacity_words: u32, out_count: ?*u32) i32 {
    const words = comptime layoutWords(snakepit.dlpack.Encoded, &snakepit.dlpack.layout_fields);
    comptime assert(words[0] == 0);
    comptime assert(words.len == 2 * snakepit.dlpack.layout_fields.len);
    return writeWords(u32, &words, out_words, capacity_words, out_count);
}

/// Writes the bytes an unprivileged process can still allocate in /dev/shm to `out_bytes`.
///
/// Ownership: the caller owns `out_bytes` and `out_error`; nothing is kept.
/// Returns: ok; os_error (statvfs) with errno; invalid_argument when `out_bytes` is null.
export fn snakepit_shm_available(out_bytes: ?*u64, out_error: ?*[2]u32) i32 {
    const bytes_pointer = out_bytes orelse return Status.invalid_argument.code();
    var failure: Failure = .{};
    defer report(out_error, failure);
    bytes_pointer.* = snakepit.limits.shmAvailableBytes(&failure) catch |err| return statusOf(err);
    assert(failure.op == .none);
    return Status.ok.code();
}

/// Writes how many regions this process has open and how many bytes they map.
///
/// Ownership: the caller owns both out-pointers; nothing is kept.
/// Returns: ok; invalid_argument when an out-pointer is null.
export fn snakepit_process_usage(out_regions: ?*u32, out_mapped_bytes: ?*u64) i32 {
    const regions_pointer = out_regions orelse return Status.invalid_argument.code();
    const bytes_pointer = out_mapped_bytes orelse return Status.invalid_argument.code();
    const usage = snakepit.handle_table.currentUsage();
    assert(usage.regions <= snakepit.limits.process_regions_max);
    regions_pointer.* = usage.regions;
    bytes_pointer.* = usage.mapped_bytes;
    return Status.ok.code();
}

/// Creates a region `/snakepit-<instance>-<128 random bits>` (mode 0600) with a payload of
/// `payload_bytes`, maps it, and writes its handle to `out_handle`. The handle holds one
/// reference (the creator's). `flags`: bit 0 reserves every page now (fallocate).
///
/// Ownership: `instance[0..instance_bytes]` is read during the call only. The caller owns the
/// handle and must pass it to snakepit_region_close, which gives the reference back.
/// Returns: ok; invalid_name; invalid_argument (null pointers, payload 0, unknown flags);
/// region_too_large; process_regions_exhausted; process_bytes_exhausted; shm_full (statvfs or
/// fallocate found too little room in /dev/shm); already_exists; os_error with errno.
export fn snakepit_region_create(
    instance: ?[*]const u8,
    instance_bytes: u32,
    payload_bytes: u64,
    flags: u32,
    out_handle: ?*u32,
    out_error: ?*[2]u32,
) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const handle_pointer = out_handle orelse return Status.invalid_argument.code();
    const instance_text = bytesOrNull(instance, instance_bytes) orelse return Status.invalid_argument.code();
    const region_handle = snakepit.region_handle;
    handle_pointer.* = region_handle.create(instance_text, payload_bytes, flags, &failure) catch |err| {
        return statusOf(err);
    };
    assert(handle_pointer.* != 0);
    return Status.ok.code();
}

/// Opens and maps the region `name` (as snakepit_region_name reports it) and writes its handle
/// to `out_handle`. `expected_generation` 0 accepts any generation. `flags`: bit 0 retains the
/// region (the handle then holds one reference).
///
/// Ownership: `name[0..name_bytes]` is read during the call only; the handle is the caller's
/// until snakepit_region_close.
/// Returns: ok; invalid_name; not_found; not_snakepit_region; layout_mismatch; corrupt_header;
/// generation_mismatch; region_released (retain after the last release); holder_table_full;
/// region_too_large; process_regions_exhausted; process_bytes_exhausted; os_error; invalid_argument.
export fn snakepit_region_open(
    name: ?[*]const u8,
    name_bytes: u32,
    expected_generation: u64,
    flags: u32,
    out_handle: ?*u32,
    out_error: ?*[2]u32,
) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const handle_pointer = out_handle orelse return Status.invalid_argument.code();
    const name_text = bytesOrNull(name, name_bytes) orelse return Status.invalid_argument.code();
    const region_handle = snakepit.region_handle;
    handle_pointer.* = region_handle.open(name_text, expected_generation, flags, &failure) catch |err| {
        return statusOf(err);
    };
    assert(handle_pointer.* != 0);
    return Status.ok.code();
}

/// Closes a handle: waits on it end with handle_closed, then (at once, or when the last call
/// still inside the library on this handle returns) the locks and references it holds are given
/// back, the region is unlinked if that was its last reference, and it is unmapped.
/// `out_unlinked` (may be null) receives 1 when this call unlinked the region.
///
/// Ownership: afterwards the handle is invalid and every address from snakepit_region_payload is
/// unmapped; the caller must have dropped its views first.
/// Returns: ok; invalid_handle; handle_closed (already closing).
export fn snakepit_region_close(handle: u32, out_unlinked: ?*u32) i32 {
    const unlinked = snakepit.handle_table.close(handle) catch |err| return statusOf(err);
    assert(handle != 0);
    assert(@intFromBool(unlinked) <= 1);
    if (out_unlinked) |pointer| pointer.* = @intFromBool(unlinked);
    return Status.ok.code();
}

/// Removes the name of the region `name` (mappings stay valid; later opens fail with not_found).
///
/// Ownership: `name[0..name_bytes]` is read during the call only.
/// Returns: ok; invalid_name; not_found; os_error; invalid_argument.
export fn snakepit_region_unlink(name: ?[*]const u8, name_bytes: u32, out_error: ?*[2]u32) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const name_text = bytesOrNull(name, name_bytes) orelse return Status.invalid_argument.code();
    const parsed = snakepit.region_name.parse(name_text) catch |err| return statusOf(err);
    assert(parsed.len == name_text.len);
    snakepit.region.unlink(&parsed, &failure) catch |err| return statusOf(err);
    assert(failure.op == .none);
    return Status.ok.code();
}

/// Writes the payload's address in this process and its size in bytes.
///
/// Ownership: the memory belongs to the library; the address is valid until the handle is
/// closed, and the caller must not touch it afterwards.
/// Returns: ok; invalid_handle; handle_closed; invalid_argument.
export fn snakepit_region_payload(handle: u32, out_address: ?*u64, out_bytes: ?*u64) i32 {
    const address_pointer = out_address orelse return Status.invalid_argument.code();
    const bytes_pointer = out_bytes orelse return Status.invalid_argument.code();
    const payload = snakepit.region_handle.payload(handle) catch |err| return statusOf(err);
    assert(payload.bytes > 0);
    address_pointer.* = payload.address;
    bytes_pointer.* = payload.bytes;
    return Status.ok.code();
}

/// Writes the region's state as u64 words in the order of `region_handle.info_fields`.
///
/// Ownership and returns: as snakepit_limits, plus invalid_handle and handle_closed.
export fn snakepit_region_info(handle: u32, out_words: ?[*]u64, capacity_words: u32, out_count: ?*u32) i32 {
    var words: [snakepit.region_handle.info_fields.len]u64 = undefined;
    comptime assert(words.len == 14);
    snakepit.region_handle.info(handle, &words) catch |err| return statusOf(err);
    assert(words[3] > 0); // payload_bytes, from the handle's checked mapping
    return writeWords(u64, &words, out_words, capacity_words, out_count);
}

/// Writes the region's name (UTF-8, no terminator) and its length; 64 bytes always suffice.
///
/// Ownership: the caller owns both buffers; nothing is kept.
/// Returns: ok; buffer_too_small (length written); invalid_handle; invalid_argument.
export fn snakepit_region_name(handle: u32, out_name: ?[*]u8, name_capacity_bytes: u32, out_name_bytes: ?*u32) i32 {
    const length_pointer = out_name_bytes orelse return Status.invalid_argument.code();
    var buffer: [snakepit.region_name.name_bytes_max]u8 = undefined;
    const length = snakepit.region_handle.name(handle, &buffer) catch |err| return statusOf(err);
    assert(length <= buffer.len);
    length_pointer.* = @intCast(length);
    if (length > name_capacity_bytes) return Status.buffer_too_small.code();
    const destination = out_name orelse return Status.invalid_argument.code();
    @memcpy(destination[0..length], buffer[0..length]);
    return Status.ok.code();
}

/// Writes a new file descriptor (close-on-exec) for the region's shared-memory object, for
/// callers that map it themselves (Python's mmap, which tracks the views it hands out).
///
/// Ownership: the caller owns the descriptor and must close it.
/// Returns: ok; os_error (fcntl) with errno; invalid_handle; invalid_argument.
export fn snakepit_region_duplicate_fd(handle: u32, out_fd: ?*i32, out_error: ?*[2]u32) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const fd_pointer = out_fd orelse return Status.invalid_argument.code();
    fd_pointer.* = snakepit.region_handle.duplicateDescriptor(handle, &failure) catch |err| {
        return statusOf(err);
    };
    assert(fd_pointer.* >= 0);
    assert(failure.op == .none);
    return Status.ok.code();
}

/// Adds a reference, held by this handle (and recorded under this process's pid).
///
/// Returns: ok; region_released; holder_table_full; reference_overflow; invalid_handle.
export fn snakepit_region_retain(handle: u32) i32 {
    snakepit.region_handle.retain(handle) catch |err| return statusOf(err);
    assert(handle != 0);
    return Status.ok.code();
}

/// Gives back a reference this handle holds. The last reference unlinks the region;
/// `out_unlinked` (may be null) receives 1 then.
///
/// Returns: ok; over_release (this handle holds none); invalid_handle; os_error (unlink).
export fn snakepit_region_release(handle: u32, out_unlinked: ?*u32, out_error: ?*[2]u32) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const unlinked = snakepit.region_handle.release(handle, &failure) catch |err| return statusOf(err);
    assert(handle != 0);
    assert(failure.op == .none);
    if (out_unlinked) |pointer| pointer.* = @intFromBool(unlinked);
    return Status.ok.code();
}

/// Adds one to the region's generation and writes the new one: descriptors naming the old
/// generation are refused from now on.
///
/// Returns: ok; invalid_handle; invalid_argument.
export fn snakepit_region_bump_generation(handle: u32, out_generation: ?*u64) i32 {
    const generation_pointer = out_generation orelse return Status.invalid_argument.code();
    generation_pointer.* = snakepit.region_handle.bumpGeneration(handle) catch |err| return statusOf(err);
    assert(handle != 0);
    return Status.ok.code();
}

/// Waits until the u32 at payload byte `word_offset` differs from `expected`: spins for up to
/// `spin_ns` (at most 1 s), then, unless `timeout_ns` is 0, raises the parked flag at payload
/// byte `parked_offset` (0xFFFF_FFFF_FFFF_FFFF: none) and sleeps on a process-shared futex for
/// up to `timeout_ns` more (0xFFFF_FFFF_FFFF_FFFF: no deadline). The flag is 0 again whenever
/// this returns. Offsets must be 4-byte aligned with `offset + 4 <= payload_bytes`, and the flag
/// must not be the word. Blocks the calling thread: Deno binds a nonblocking twin; ctypes
/// releases the GIL.
///
/// Ownership: `out_value` (may be null) is the caller's; it receives the word's last value on ok
/// and on timed_out. The library keeps no pointer past the call; the region stays mapped while
/// the call runs, even if the handle is closed meanwhile.
/// Returns: ok (the word changed); timed_out; handle_closed (closed during the wait);
/// invalid_handle; invalid_argument (offsets, spin_ns).
export fn snakepit_region_wait_word(
    handle: u32,
    word_offset: u64,
    expected: u32,
    parked_offset: u64,
    spin_ns: u64,
    timeout_ns: u64,
    out_value: ?*u32,
) i32 {
    const words = snakepit.words;
    comptime assert(words.no_parked_flag == std.math.maxInt(u64));
    comptime assert(words.wait_forever == std.math.maxInt(u64));
    const waited = words.wait(handle, word_offset, expected, parked_offset, spin_ns, timeout_ns) catch |err| {
        return statusOf(err);
    };
    if (out_value) |pointer| pointer.* = waited.value;
    if (waited.timed_out) return Status.timed_out.code();
    return Status.ok.code();
}

/// Stores `value` into the u32 at payload byte `word_offset` (seq_cst). With a parked flag at
/// `parked_offset` (0xFFFF_FFFF_FFFF_FFFF: none), swaps the flag to 0 and, when it was raised,
/// wakes every waiter on the word. Offsets as snakepit_region_wait_word. Never blocks.
///
/// Ownership: `out_was_parked` (may be null) is the caller's; on ok it receives 1 when the flag
/// was raised (and the waiters were woken), else 0.
/// Returns: ok; invalid_handle; handle_closed; invalid_argument (offsets).
export fn snakepit_region_publish_word(
    handle: u32,
    word_offset: u64,
    value: u32,
    parked_offset: u64,
    out_was_parked: ?*u32,
) i32 {
    const was_parked = snakepit.words.publish(handle, word_offset, value, parked_offset) catch |err| {
        return statusOf(err);
    };
    assert(@intFromBool(was_parked) <= 1);
    if (out_was_parked) |pointer| pointer.* = @intFromBool(was_parked);
    return Status.ok.code();
}

/// Wakes every waiter on the u32 at payload byte `word_offset`, whatever its value.
///
/// Returns: ok; invalid_handle; handle_closed; invalid_argument (offset).
export fn snakepit_region_wake_word(handle: u32, word_offset: u64) i32 {
    snakepit.words.wake(handle, word_offset) catch |err| return statusOf(err);
    assert(handle != 0);
    return Status.ok.code();
}

/// Takes the region's lock: `mode` 0 shared, 1 exclusive. `timeout_ns` 0 tries once without
/// waiting; 0xFFFF_FFFF_FFFF_FFFF waits without a deadline; a waiter re-checks every 10 ms
/// whether the holders it waits for are alive. `flags`: bit 0 keeps an exclusive claim on
/// would_block / timed_out (for try-lock polling). Blocks the calling thread: bind it as a
/// nonblocking symbol (Deno) or call it with timeout 0 and poll (Bun).
///
/// Returns: ok; owner_dead (the lock IS held; a holder died holding it, data may be
/// inconsistent); would_block; timed_out; cancelled; handle_closed; reader_table_full;
/// invalid_handle; invalid_argument (mode or flags).
export fn snakepit_lock_acquire(handle: u32, mode: u32, timeout_ns: u64, flags: u32) i32 {
    const lock_mode = std.meta.intToEnum(snakepit.rwlock.Mode, mode) catch return Status.invalid_argument.code();
    comptime assert(@intFromEnum(snakepit.rwlock.Mode.shared) == 0);
    comptime assert(@intFromEnum(snakepit.rwlock.Mode.exclusive) == 1);
    const acquired = snakepit.region_handle.lock(handle, lock_mode, timeout_ns, flags) catch |err| {
        return statusOf(err);
    };
    return switch (acquired) {
        .clean => Status.ok.code(),
        .owner_died => Status.owner_dead.code(),
    };
}

/// Releases the lock this handle holds in `mode` (0 shared, 1 exclusive).
///
/// Returns: ok; not_locked; invalid_handle; invalid_argument.
export fn snakepit_lock_release(handle: u32, mode: u32) i32 {
    const lock_mode = std.meta.intToEnum(snakepit.rwlock.Mode, mode) catch return Status.invalid_argument.code();
    assert(@intFromEnum(lock_mode) == mode);
    snakepit.region_handle.unlock(handle, lock_mode) catch |err| return statusOf(err);
    assert(handle != 0);
    return Status.ok.code();
}

/// Ends the waits in progress on this handle with cancelled, and withdraws a kept exclusive
/// claim. Without a wait in progress it only withdraws the claim.
///
/// Returns: ok; invalid_handle; handle_closed.
export fn snakepit_lock_cancel(handle: u32) i32 {
    snakepit.region_handle.cancel(handle) catch |err| return statusOf(err);
    assert(handle != 0);
    return Status.ok.code();
}

/// Scans /dev/shm once and unlinks regions whose every holder is dead (see reaper.zig). With an
/// instance (1..20 bytes) only that instance's regions are examined, and their dead holders'
/// references are dropped; with none (instance_bytes 0) every instance's. Incomplete objects
/// younger than `grace_ms` are left alone. `out_report` receives six u32 words: scanned, reaped,
/// spared_live, skipped_young, skipped_foreign, truncated.
///
/// Ownership: `instance` is read during the call only; the caller owns `out_report`.
/// Returns: ok; invalid_name; os_error (opendir); invalid_argument.
export fn snakepit_reap(
    instance: ?[*]const u8,
    instance_bytes: u32,
    grace_ms: u32,
    out_report: ?*[6]u32,
    out_error: ?*[2]u32,
) i32 {
    var failure: Failure = .{};
    defer report(out_error, failure);
    const report_pointer = out_report orelse return Status.invalid_argument.code();
    const instance_text = bytesOrNull(instance, instance_bytes) orelse return Status.invalid_argument.code();
    const options: snakepit.reaper.Options = .{
        .instance = instance_text,
        .grace_ns = @as(u64, grace_ms) * std.time.ns_per_ms,
    };
    const result = snakepit.reaper.reap(options, &failure) catch |err| return statusOf(err);
    comptime assert(snakepit.reaper.report_words == 6);
    report_pointer.* = @bitCast(result);
    return Status.ok.code();
}

fn writeExtent(out_extent: ?*[2]u64, extent: snakepit.dlpack.Extent) void {
    assert(extent.first_byte <= extent.end_byte);
    if (out_extent) |pointer| pointer.* = .{ extent.first_byte, extent.end_byte };
}

/// Parses a descriptor and proves it fits a payload of `payload_bytes` bytes. `out_extent` (may
/// be null) receives the payload bytes its elements cover: first, end (exclusive).
///
/// Ownership: `bytes` is read during the call only.
/// Returns: ok; descriptor_malformed; unsupported_dtype; unsupported_device;
/// descriptor_overflow; descriptor_misaligned; descriptor_out_of_bounds; invalid_argument.
export fn snakepit_descriptor_validate(bytes: ?[*]const u8, bytes_length: u32, payload_bytes: u64, out_extent: ?*[2]u64) i32 {
    const input = bytesOrNull(bytes, bytes_length) orelse return Status.invalid_argument.code();
    const descriptor = snakepit.dlpack.parse(input) catch |err| return statusOf(err);
    const extent = snakepit.dlpack.checkBounds(&descriptor, payload_bytes) catch |err| return statusOf(err);
    assert(extent.end_byte <= payload_bytes);
    assert(descriptor.ndim <= snakepit.dlpack.ndim_max);
    writeExtent(out_extent, extent);
    return Status.ok.code();
}

/// As snakepit_descriptor_validate, against an open region: the descriptor must name this
/// region and its current generation, and fit its payload.
///
/// Returns: as snakepit_descriptor_validate, plus descriptor_region_mismatch,
/// generation_mismatch, invalid_handle.
export fn snakepit_descriptor_check(handle: u32, bytes: ?[*]const u8, bytes_length: u32, out_extent: ?*[2]u64) i32 {
    const input = bytesOrNull(bytes, bytes_length) orelse return Status.invalid_argument.code();
    const extent = snakepit.region_handle.checkDescriptor(handle, input) catch |err| return statusOf(err);
    assert(handle != 0);
    assert(input.len == snakepit.dlpack.encoded_bytes);
    writeExtent(out_extent, extent);
    return Status.ok.code();
}

/// Parses a descriptor and writes its canonical encoding (256 bytes) back: what the library
/// reads is exactly what it would write.
///
/// Ownership: `bytes` is read during the call only; the caller owns `out_bytes`.
/// Returns: ok; the parse errors of snakepit_descriptor_validate; buffer_too_small;
/// invalid_argument.
export fn snakepit_descriptor_normalize(
    bytes: ?[*]const u8,
    bytes_length: u32,
    out_bytes: ?[*]u8,
    capacity_bytes: u32,
    out_length: ?*u32,
) i32 {
    const length_pointer = out_length orelse return Status.invalid_argument.code();
    const input = bytesOrNull(bytes, bytes_length) orelse return Status.invalid_argument.code();
    const descriptor = snakepit.dlpack.parse(input) catch |err| return statusOf(err);
    const encoded = snakepit.dlpack.serialize(&descriptor);
    comptime assert(encoded.len == snakepit.dlpack.encoded_bytes);
    assert(input.len == encoded.len);
    length_pointer.* = encoded.len;
    if (encoded.len > capacity_bytes) return Status.buffer_too_small.code();
    const destination = out_bytes orelse return Status.invalid_argument.code();
    @memcpy(destination[0..encoded.len], &encoded);
    return Status.ok.code();
}

const testing = std.testing;
const ok = Status.ok.code();
const invalid_argument = Status.invalid_argument.code();
const buffer_too_small = Status.buffer_too_small.code();

test {
    _ = snakepit;
}

test "snakepit_abi_version writes 1 and rejects a null out-pointer" {
    var version: u32 = 0;
    try testing.expectEqual(ok, snakepit_abi_version(&version));
    try testing.expectEqual(@as(u32, 1), version);
    try testing.expectEqual(invalid_argument, snakepit_abi_version(null));
}

test "snakepit_library_version writes 0.1.0 and rejects null out-pointers" {
    var major: u32 = 99;
    var minor: u32 = 99;
    var patch: u32 = 99;
    try testing.expectEqual(ok, snakepit_library_version(&major, &minor, &patch));
    try testing.expectEqual([3]u32{ 0, 1, 0 }, [3]u32{ major, minor, patch });
    try testing.expectEqual(invalid_argument, snakepit_library_version(null, &minor, &patch));
    try testing.expectEqual(invalid_argument, snakepit_library_version(&major, null, &patch));
    try testing.expectEqual(invalid_argument, snakepit_library_version(&major, &minor, null));
}

test "snakepit_crc32c computes the check value and accepts empty input" {
    var crc: u32 = 0;
    const check = "123456789";
    try testing.expectEqual(ok, snakepit_crc32c(check.ptr, check.len, &crc));
    try testing.expectEqual(@as(u32, 0xE3069283), crc);
    crc = 1;
    try testing.expectEqual(ok, snakepit_crc32c(null, 0, &crc));
    try testing.expectEqual(@as(u32, 0), crc);
    crc = 1;
    try testing.expectEqual(ok, snakepit_crc32c(check.ptr, 0, &crc));
    try testing.expectEqual(@as(u32, 0), crc);
}

test "snakepit_crc32c rejects null data with a length and a null out-pointer" {
    var crc: u32 = 7;
    try testing.expectEqual(invalid_argument, snakepit_crc32c(null, 1, &crc));
    try testing.expectEqual(@as(u32, 7), crc);
    try testing.expectEqual(invalid_argument, snakepit_crc32c("a", 1, null));
}

test "snakepit_status_name writes every status's name" {
    var buffer: [snakepit.status_name_bytes_max]u8 = undefined;
    for (std.enums.values(Status)) |status| {
        var length: u32 = 0;
        const result = snakepit_status_name(status.code(), &buffer, buffer.len, &length);
        try testing.expectEqual(ok, result);
        try testing.expectEqualStrings(status.name(), buffer[0..length]);
    }
}

test "snakepit_status_name reports the required length when the buffer is too small" {
    var buffer = [_]u8{'x'} ** 4;
    var length: u32 = 0;
    const status = snakepit_status_name(invalid_argument, &buffer, buffer.len, &length);
    try testing.expectEqual(buffer_too_small, status);
    try testing.expectEqual(@as(u32, "invalid_argument".len), length);
    try testing.expectEqualStrings("xxxx", &buffer);
    try testing.expectEqual(buffer_too_small, snakepit_status_name(ok, null, 0, &length));
    try testing.expectEqual(@as(u32, 2), length);
}

test "snakepit_status_name rejects unknown codes and null pointers" {
    var buffer: [snakepit.status_name_bytes_max]u8 = undefined;
    var length: u32 = 0;
    const capacity = buffer.len;
    for ([_]i32{ 1, -999, std.math.minInt(i32) }) |unknown| {
        const result = snakepit_status_name(unknown, &buffer, capacity, &length);
        try testing.expectEqual(invalid_argument, result);
    }
    try testing.expectEqual(invalid_argument, snakepit_status_name(ok, &buffer, capacity, null));
    try testing.expectEqual(invalid_argument, snakepit_status_name(ok, null, capacity, &length));
}

test "snakepit_limits and the layouts report their words, or the count they need" {
    var words: [32]u64 = undefined;
    var count: u32 = 0;
    try testing.expectEqual(buffer_too_small, snakepit_limits(&words, 3, &count));
    try testing.expectEqual(@as(u32, 15), count);
    try testing.expectEqual(ok, snakepit_limits(&words, words.len, &count));
    try testing.expectEqual(@as(u64, 64 << 30), words[0]);
    try testing.expectEqual(@as(u64, 1280), words[14]);
    try testing.expectEqual(invalid_argument, snakepit_limits(&words, words.len, null));
    var layout: [64]u32 = undefined;
    try testing.expectEqual(ok, snakepit_header_layout(&layout, layout.len, &count));
    try testing.expectEqual(@as(u32, 2 * snakepit.header.layout_fields.len), count);
    try testing.expectEqualSlices(u32, &.{ 0, 8, 8, 4 }, layout[0..4]);
    try testing.expectEqualSlices(u32, &.{ 768, 512 }, layout[count - 2 .. count]);
    try testing.expectEqual(ok, snakepit_descriptor_layout(&layout, layout.len, &count));
    try testing.expectEqualSlices(u32, &.{ 192, 64 }, layout[count - 2 .. count]);
}

test "a region's life through the ABI: create, open, retain, release, close" {
    const instance = "zig_abi";
    var handle: u32 = 0;
    var record = [2]u32{ 99, 99 };
    try testing.expectEqual(ok, snakepit_region_create(instance, instance.len, 4096, 0, &handle, &record));
    try testing.expectEqual([2]u32{ 0, 0 }, record);
    var name: [64]u8 = undefined;
    var name_bytes: u32 = 0;
    try testing.expectEqual(ok, snakepit_region_name(handle, &name, name.len, &name_bytes));
    var other: u32 = 0;
    try testing.expectEqual(ok, snakepit_region_open(&name, name_bytes, 1, 1, &other, null));
    var address: u64 = 0;
    var bytes: u64 = 0;
    try testing.expectEqual(ok, snakepit_region_payload(other, &address, &bytes));
    try testing.expectEqual(@as(u64, 4096), bytes);
    try testing.expectEqual(ok, snakepit_region_retain(other));
    var unlinked: u32 = 9;
    try testing.expectEqual(ok, snakepit_region_release(handle, &unlinked, null));
    try testing.expectEqual(@as(u32, 0), unlinked);
    try testing.expectEqual(Status.over_release.code(), snakepit_region_release(handle, null, null));
    try testing.expectEqual(ok, snakepit_region_close(handle, &unlinked));
    try testing.expectEqual(Status.invalid_handle.code(), snakepit_region_retain(handle));
    try testing.expectEqual(ok, snakepit_region_close(other, &unlinked));
    try testing.expectEqual(@as(u32, 1), unlinked);
    try testing.expectEqual(Status.not_found.code(), snakepit_region_open(&name, name_bytes, 0, 0, &other, &record));
    try testing.expectEqual([2]u32{ 2, 1 }, record);
}

test "bad input through the ABI is an error status, never a crash" {
    var handle: u32 = 0;
    var record = [2]u32{ 0, 0 };
    try testing.expectEqual(invalid_argument, snakepit_region_create(null, 3, 1, 0, &handle, &record));
    try testing.expectEqual(invalid_argument, snakepit_region_create("a", 1, 1, 0, null, &record));
    try testing.expectEqual(Status.invalid_name.code(), snakepit_region_create("a-b", 3, 1, 0, &handle, &record));
    try testing.expectEqual(Status.region_too_large.code(), snakepit_region_create("a", 1, 1 << 40, 0, &handle, null));
    try testing.expectEqual(Status.invalid_name.code(), snakepit_region_open("/etc/passwd", 11, 0, 0, &handle, null));
    try testing.expectEqual(Status.invalid_handle.code(), snakepit_lock_acquire(12345, 0, 0, 0));
    try testing.expectEqual(invalid_argument, snakepit_lock_acquire(12345, 2, 0, 0));
    try testing.expectEqual(invalid_argument, snakepit_lock_release(12345, 7));
    try testing.expectEqual(Status.invalid_handle.code(), snakepit_region_close(0, null));
    try testing.expectEqual(invalid_argument, snakepit_reap("x", 1, 0, null, null));
    try testing.expectEqual(invalid_argument, snakepit_descriptor_validate(null, 256, 0, null));
    var short = [_]u8{0} ** 10;
    try testing.expectEqual(Status.descriptor_malformed.code(), snakepit_descriptor_validate(&short, short.len, 0, null));
}

test "locks through the ABI: shared, exclusive, owner_dead as a status, cancel" {
    const instance = "zig_abi_lock";
    var first: u32 = 0;
    try testing.expectEqual(ok, snakepit_region_create(instance, instance.len, 64, 0, &first, null));
    defer _ = snakepit_region_close(first, null);
    try testing.expectEqual(ok, snakepit_lock_acquire(first, 1, 0, 0));
    try testing.expectEqual(Status.not_locked.code(), snakepit_lock_release(first, 0));
    try testing.expectEqual(ok, snakepit_lock_release(first, 1));
    var address: u64 = 0;
    var bytes: u64 = 0;
    try testing.expectEqual(ok, snakepit_region_payload(first, &address, &bytes));
    const header: *snakepit.header.Header = @ptrFromInt(address - snakepit.header.payload_offset_default);
    const dead = snakepit.pid_table.deadPidForTests();
    const rwlock = snakepit.rwlock;
    header.lock_state = rwlock.exclusive_bit | rwlock.drained_bit | dead;
    try testing.expectEqual(Status.owner_dead.code(), snakepit_lock_acquire(first, 0, std.time.ns_per_s, 0));
    try testing.expectEqual(ok, snakepit_lock_release(first, 0));
    try testing.expectEqual(ok, snakepit_lock_cancel(first));
}

test "words through the ABI: publish, wait, timed_out as a status, bad offsets" {
    const instance = "zig_abi_words";
    var handle: u32 = 0;
    try testing.expectEqual(ok, snakepit_region_create(instance, instance.len, 64, 0, &handle, null));
    defer _ = snakepit_region_close(handle, null);
    const no_flag = std.math.maxInt(u64);
    var was_parked: u32 = 9;
    try testing.expectEqual(ok, snakepit_region_publish_word(handle, 0, 5, 4, &was_parked));
    try testing.expectEqual(@as(u32, 0), was_parked);
    var value: u32 = 0;
    try testing.expectEqual(ok, snakepit_region_wait_word(handle, 0, 4, 4, 0, 0, &value));
    try testing.expectEqual(@as(u32, 5), value);
    value = 0;
    try testing.expectEqual(Status.timed_out.code(), snakepit_region_wait_word(handle, 0, 5, 4, 0, 1000, &value));
    try testing.expectEqual(@as(u32, 5), value);
    try testing.expectEqual(Status.timed_out.code(), snakepit_region_wait_word(handle, 0, 5, no_flag, 0, 0, null));
    try testing.expectEqual(invalid_argument, snakepit_region_wait_word(handle, 1, 5, no_flag, 0, 0, &value));
    try testing.expectEqual(invalid_argument, snakepit_region_publish_word(handle, 64, 5, no_flag, null));
    try testing.expectEqual(invalid_argument, snakepit_region_wake_word(handle, 62));
    try testing.expectEqual(ok, snakepit_region_wake_word(handle, 60));
    try testing.expectEqual(Status.invalid_handle.code(), snakepit_region_wake_word(12345, 0));
}

test "a descriptor normalizes to itself and validates against a payload size" {
    var descriptor = snakepit.dlpack.exampleForTests(2, &.{ 2, 3 });
    descriptor.byte_offset = 8;
    const bytes = snakepit.dlpack.serialize(&descriptor);
    var extent: [2]u64 = undefined;
    try testing.expectEqual(ok, snakepit_descriptor_validate(&bytes, bytes.len, 32, &extent));
    try testing.expectEqual([2]u64{ 8, 32 }, extent);
    try testing.expectEqual(Status.descriptor_out_of_bounds.code(), snakepit_descriptor_validate(&bytes, bytes.len, 31, null));
    var normalized: [256]u8 = undefined;
    var length: u32 = 0;
    try testing.expectEqual(ok, snakepit_descriptor_normalize(&bytes, bytes.len, &normalized, normalized.len, &length));
    try testing.expectEqualSlices(u8, &bytes, normalized[0..length]);
    try testing.expectEqual(buffer_too_small, snakepit_descriptor_normalize(&bytes, bytes.len, &normalized, 10, &length));
}

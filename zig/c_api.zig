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

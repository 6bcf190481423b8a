//! Tensor descriptors: the DLPack 1.x field set, pointing into a shared-memory region, as 256
//! little-endian bytes that travel inside gRPC messages and are read the same in every language.
//!
//! `parse` accepts only the canonical encoding (every reserved byte and unused entry zero), so
//! `serialize(parse(bytes)) == bytes`. `checkBounds` proves, with overflow-checked arithmetic,
//! that every element the shape and strides reach lies inside the payload, and that the byte
//! offset is aligned for the dtype. Bad bytes are an error, never a crash: the fuzz tests in
//! fuzz.zig hold this over hundreds of thousands of random and mutated descriptors.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const region_name = @import("region_name.zig");

pub const magic_value: u32 = 0x4C44_5053; // "SPDL" as bytes
pub const format_version_current: u16 = 1;
pub const dlpack_major_version: u32 = 1;
pub const dlpack_minor_version: u32 = 1;
/// The most dimensions a descriptor carries.
pub const ndim_max = 8;
pub const region_name_field_bytes = 64;
/// DLPack's kDLCPU: the only device shared memory lives on.
pub const device_cpu: i32 = 1;
/// DLPack 1.x flag bits.
pub const flag_read_only: u64 = 1 << 0;
pub const flag_is_copied: u64 = 1 << 1;
pub const flags_known: u64 = flag_read_only | flag_is_copied;

/// DLPack's DLDataTypeCode values this library supports (kDLOpaqueHandle, 3, is not).
pub const DtypeCode = enum(u8) { int = 0, uint = 1, float = 2, bfloat = 4, complex = 5, bool = 6 };

/// The encoded layout; fields are read and written at these offsets, little-endian.
pub const Encoded = extern struct {
    magic: u32,
    format_version: u16,
    encoded_bytes: u16,
    dlpack_major: u32,
    dlpack_minor: u32,
    device_type: i32,
    device_id: i32,
    dtype_code: u8,
    dtype_bits: u8,
    dtype_lanes: u16,
    ndim: u32,
    flags: u64,
    byte_offset: u64,
    region_generation: u64,
    strides_present: u8,
    region_name_bytes: u8,
    reserved: [6]u8,
    shape: [ndim_max]i64,
    strides: [ndim_max]i64,
    region_name: [region_name_field_bytes]u8,
};
pub const encoded_bytes = @sizeOf(Encoded);

/// The fields `snakepit_descriptor_layout` reports, in order, for the mirrors' tests.
pub const layout_fields = [_][]const u8{
    "magic",             "format_version", "encoded_bytes", "dlpack_major",      "dlpack_minor",
    "device_type",       "device_id",      "dtype_code",    "dtype_bits",        "dtype_lanes",
    "ndim",              "flags",          "byte_offset",   "region_generation", "strides_present",
    "region_name_bytes", "reserved",       "shape",         "strides",           "region_name",
};

comptime {
    assert(encoded_bytes == 256);
    assert(@offsetOf(Encoded, "flags") == 32);
    assert(@offsetOf(Encoded, "strides_present") == 56);
    assert(@offsetOf(Encoded, "shape") == 64);
    assert(@offsetOf(Encoded, "strides") == 128);
    assert(@offsetOf(Encoded, "region_name") == 192);
    assert(region_name.name_bytes_max < region_name_field_bytes);
}

pub const Dtype = struct { code: u8, bits: u8, lanes: u16 };

pub const Descriptor = struct {
    dtype: Dtype,
    ndim: u32,
    shape: [ndim_max]i64 = [_]i64{0} ** ndim_max,
    /// In elements; null means C-contiguous.
    strides: ?[ndim_max]i64 = null,
    byte_offset: u64 = 0,
    flags: u64 = 0,
    region_generation: u64,
    region_name: region_name.Name,
    /// DLPack minor versions are backward compatible: any is accepted and kept as received.
    dlpack_minor: u32 = dlpack_minor_version,
};

/// The bytes a descriptor's elements cover, relative to the payload: [first_byte, end_byte).
pub const Extent = struct { first_byte: u64, end_byte: u64 };

/// Bytes per element and the alignment the dtype needs, or unsupported_dtype.
pub fn elementLayout(dtype: Dtype) Error!struct { bytes: u64, alignment: u64 } {
    if (dtype.lanes != 1) return error.unsupported_dtype;
    const code = std.meta.intToEnum(DtypeCode, dtype.code) catch return error.unsupported_dtype;
    const supported = switch (code) {
        .int, .uint => dtype.bits == 8 or dtype.bits == 16 or dtype.bits == 32 or dtype.bits == 64,
        .float => dtype.bits == 16 or dtype.bits == 32 or dtype.bits == 64,
        .bfloat => dtype.bits == 16,
        .complex => dtype.bits == 64 or dtype.bits == 128,
        .bool => dtype.bits == 8,
    };
    if (!supported) return error.unsupported_dtype;
    const bytes: u64 = dtype.bits / 8;
    const alignment = if (code == .complex) bytes / 2 else bytes;
    assert(bytes > 0);
    assert(bytes <= 16);
    assert(std.math.isPowerOfTwo(alignment));
    return .{ .bytes = bytes, .alignment = alignment };
}

fn field(comptime name: []const u8) usize {
    const offset = @offsetOf(Encoded, name);
    comptime assert(offset < encoded_bytes);
    return offset;
}

fn read(comptime T: type, bytes: *const [encoded_bytes]u8, offset: usize) T {
    assert(offset + @sizeOf(T) <= encoded_bytes);
    return std.mem.readInt(T, bytes[offset..][0..@sizeOf(T)], .little);
}

fn write(comptime T: type, bytes: *[encoded_bytes]u8, offset: usize, value: T) void {
    assert(offset + @sizeOf(T) <= encoded_bytes);
    std.mem.writeInt(T, bytes[offset..][0..@sizeOf(T)], value, .little);
}

/// Parses the canonical encoding; anything else is an error status.
pub fn parse(input: []const u8) Error!Descriptor {
    if (input.len != encoded_bytes) return error.descriptor_malformed;
    const bytes = input[0..encoded_bytes];
    if (read(u32, bytes, field("magic")) != magic_value) return error.descriptor_malformed;
    if (read(u16, bytes, field("format_version")) != format_version_current) return error.descriptor_malformed;
    if (read(u16, bytes, field("encoded_bytes")) != encoded_bytes) return error.descriptor_malformed;
    if (read(u32, bytes, field("dlpack_major")) != dlpack_major_version) return error.descriptor_malformed;
    if (read(i32, bytes, field("device_type")) != device_cpu) return error.unsupported_device;
    if (read(i32, bytes, field("device_id")) != 0) return error.unsupported_device;
    const dtype: Dtype = .{
        .code = bytes[field("dtype_code")],
        .bits = bytes[field("dtype_bits")],
        .lanes = read(u16, bytes, field("dtype_lanes")),
    };
    _ = try elementLayout(dtype);
    const ndim = read(u32, bytes, field("ndim"));
    if (ndim > ndim_max) return error.descriptor_malformed;
    const flags = read(u64, bytes, field("flags"));
    if (flags & ~flags_known != 0) return error.descriptor_malformed;
    for (bytes[field("reserved")..][0..6]) |byte| if (byte != 0) return error.descriptor_malformed;
    const strides_present = bytes[field("strides_present")];
    if (strides_present > 1) return error.descriptor_malformed;
    var descriptor: Descriptor = .{
        .dtype = dtype,
        .ndim = ndim,
        .byte_offset = read(u64, bytes, field("byte_offset")),
        .flags = flags,
        .region_generation = read(u64, bytes, field("region_generation")),
        .region_name = try parseName(bytes),
        .dlpack_minor = read(u32, bytes, field("dlpack_minor")),
    };
    if (descriptor.region_generation == 0) return error.descriptor_malformed;
    var strides: [ndim_max]i64 = undefined;
    for (0..ndim_max) |dimension| {
        const extent = read(i64, bytes, field("shape") + dimension * 8);
        const stride = read(i64, bytes, field("strides") + dimension * 8);
        const used = dimension < ndim;
        if (extent < 0 or (!used and extent != 0)) return error.descriptor_malformed;
        if ((!used or strides_present == 0) and stride != 0) return error.descriptor_malformed;
        descriptor.shape[dimension] = extent;
        strides[dimension] = stride;
    }
    if (strides_present == 1) descriptor.strides = strides;
    assert(descriptor.ndim <= ndim_max);
    return descriptor;
}

fn parseName(bytes: *const [encoded_bytes]u8) Error!region_name.Name {
    const length = bytes[field("region_name_bytes")];
    if (length == 0 or length > region_name.name_bytes_max) return error.descriptor_malformed;
    assert(length < region_name_field_bytes);
    const name_field = bytes[field("region_name")..][0..region_name_field_bytes];
    assert(name_field.len == region_name_field_bytes);
    for (name_field[length..]) |byte| if (byte != 0) return error.descriptor_malformed;
    return region_name.parse(name_field[0..length]) catch error.descriptor_malformed;
}

/// The canonical encoding of `descriptor` (which must be valid: see `parse`).
pub fn serialize(descriptor: *const Descriptor) [encoded_bytes]u8 {
    assert(descriptor.ndim <= ndim_max);
    assert(descriptor.region_name.len > 0);
    var bytes = [_]u8{0} ** encoded_bytes;
    write(u32, &bytes, field("magic"), magic_value);
    write(u16, &bytes, field("format_version"), format_version_current);
    write(u16, &bytes, field("encoded_bytes"), encoded_bytes);
    write(u32, &bytes, field("dlpack_major"), dlpack_major_version);
    write(u32, &bytes, field("dlpack_minor"), descriptor.dlpack_minor);
    write(i32, &bytes, field("device_type"), device_cpu);
    bytes[field("dtype_code")] = descriptor.dtype.code;
    bytes[field("dtype_bits")] = descriptor.dtype.bits;
    write(u16, &bytes, field("dtype_lanes"), descriptor.dtype.lanes);
    write(u32, &bytes, field("ndim"), descriptor.ndim);
    write(u64, &bytes, field("flags"), descriptor.flags);
    write(u64, &bytes, field("byte_offset"), descriptor.byte_offset);
    write(u64, &bytes, field("region_generation"), descriptor.region_generation);
    bytes[field("strides_present")] = @intFromBool(descriptor.strides != null);
    bytes[field("region_name_bytes")] = descriptor.region_name.len;
    for (0..descriptor.ndim) |dimension| {
        write(i64, &bytes, field("shape") + dimension * 8, descriptor.shape[dimension]);
        if (descriptor.strides) |strides| {
            write(i64, &bytes, field("strides") + dimension * 8, strides[dimension]);
        }
    }
    @memcpy(bytes[field("region_name")..][0..descriptor.region_name.len], descriptor.region_name.slice());
    return bytes;
}

/// C-contiguous strides (in elements) for `shape`, overflow-checked.
fn contiguousStrides(descriptor: *const Descriptor) Error![ndim_max]i64 {
    var strides = [_]i64{0} ** ndim_max;
    var stride: i64 = 1;
    var dimension = descriptor.ndim;
    while (dimension > 0) {
        dimension -= 1;
        strides[dimension] = stride;
        const extent = @max(descriptor.shape[dimension], 1);
        stride = std.math.mul(i64, stride, extent) catch return error.descriptor_overflow;
    }
    assert(descriptor.ndim == 0 or strides[descriptor.ndim - 1] == 1);
    return strides;
}

/// Proves that every element `descriptor` reaches lies within `payload_bytes`, and returns the
/// bytes they cover. Errors: descriptor_overflow, descriptor_misaligned, descriptor_out_of_bounds.
pub fn checkBounds(descriptor: *const Descriptor, payload_bytes: u64) Error!Extent {
    const element = try elementLayout(descriptor.dtype);
    assert(descriptor.ndim <= ndim_max);
    const strides = descriptor.strides orelse try contiguousStrides(descriptor);
    if (descriptor.byte_offset > std.math.maxInt(i64)) return error.descriptor_overflow;
    const offset: i64 = @intCast(descriptor.byte_offset);
    if (descriptor.byte_offset % element.alignment != 0) return error.descriptor_misaligned;
    var empty = false;
    for (descriptor.shape[0..descriptor.ndim]) |extent| empty = empty or extent == 0;
    if (empty) {
        if (descriptor.byte_offset > payload_bytes) return error.descriptor_out_of_bounds;
        return .{ .first_byte = descriptor.byte_offset, .end_byte = descriptor.byte_offset };
    }
    var lowest: i64 = 0; // element offsets relative to byte_offset, at the extremes
    var highest: i64 = 0;
    for (0..descriptor.ndim) |dimension| {
        const span = std.math.mul(i64, descriptor.shape[dimension] - 1, strides[dimension]) catch {
            return error.descriptor_overflow;
        };
        if (span < 0) {
            lowest = std.math.add(i64, lowest, span) catch return error.descriptor_overflow;
        } else {
            highest = std.math.add(i64, highest, span) catch return error.descriptor_overflow;
        }
    }
    const element_bytes: i64 = @intCast(element.bytes);
    const lowest_bytes = std.math.mul(i64, lowest, element_bytes) catch return error.descriptor_overflow;
    const past_highest = std.math.add(i64, highest, 1) catch return error.descriptor_overflow;
    const end_bytes = std.math.mul(i64, past_highest, element_bytes) catch return error.descriptor_overflow;
    const first = std.math.add(i64, offset, lowest_bytes) catch return error.descriptor_overflow;
    const end = std.math.add(i64, offset, end_bytes) catch return error.descriptor_overflow;
    if (first < 0) return error.descriptor_out_of_bounds;
    if (@as(u64, @intCast(end)) > payload_bytes) return error.descriptor_out_of_bounds;
    assert(first < end);
    return .{ .first_byte = @intCast(first), .end_byte = @intCast(end) };
}

const testing = std.testing;

pub fn exampleForTests(ndim: u32, shape: []const i64) Descriptor {
    assert(shape.len == ndim);
    var descriptor: Descriptor = .{
        .dtype = .{ .code = @intFromEnum(DtypeCode.float), .bits = 32, .lanes = 1 },
        .ndim = ndim,
        .region_generation = 1,
        .region_name = region_name.parse("/snakepit-t-0123456789abcdef0123456789abcdef") catch unreachable,
    };
    @memcpy(descriptor.shape[0..ndim], shape);
    return descriptor;
}

test "serialize and parse round-trip, and parse accepts only the canonical bytes" {
    var descriptor = exampleForTests(2, &.{ 3, 4 });
    descriptor.strides = [_]i64{ 1, 3 } ++ [_]i64{0} ** 6;
    descriptor.flags = flag_read_only;
    descriptor.byte_offset = 8;
    const bytes = serialize(&descriptor);
    const parsed = try parse(&bytes);
    try testing.expectEqualSlices(u8, &bytes, &serialize(&parsed));
    try testing.expectEqual(@as(i64, 3), parsed.strides.?[1]);
    var altered = bytes;
    altered[field("reserved")] = 1;
    try testing.expectError(error.descriptor_malformed, parse(&altered));
    altered = bytes;
    altered[field("shape") + 2 * 8] = 1; // a third dimension beyond ndim
    try testing.expectError(error.descriptor_malformed, parse(&altered));
    try testing.expectError(error.descriptor_malformed, parse(bytes[0..255]));
}

test "every supported dtype has its size and alignment, and others are unsupported" {
    const Case = struct { code: DtypeCode, bits: u8, bytes: u64, alignment: u64 };
    const cases = [_]Case{
        .{ .code = .int, .bits = 8, .bytes = 1, .alignment = 1 },
        .{ .code = .uint, .bits = 64, .bytes = 8, .alignment = 8 },
        .{ .code = .float, .bits = 16, .bytes = 2, .alignment = 2 },
        .{ .code = .bfloat, .bits = 16, .bytes = 2, .alignment = 2 },
        .{ .code = .bool, .bits = 8, .bytes = 1, .alignment = 1 },
        .{ .code = .complex, .bits = 128, .bytes = 16, .alignment = 8 },
    };
    for (cases) |case| {
        const layout = try elementLayout(.{ .code = @intFromEnum(case.code), .bits = case.bits, .lanes = 1 });
        try testing.expectEqual(case.bytes, layout.bytes);
        try testing.expectEqual(case.alignment, layout.alignment);
    }
    const unsupported = [_]Dtype{
        .{ .code = 2, .bits = 8, .lanes = 1 },  .{ .code = 4, .bits = 32, .lanes = 1 },
        .{ .code = 3, .bits = 64, .lanes = 1 }, .{ .code = 2, .bits = 32, .lanes = 4 },
        .{ .code = 6, .bits = 1, .lanes = 1 },  .{ .code = 9, .bits = 8, .lanes = 1 },
    };
    for (unsupported) |dtype| try testing.expectError(error.unsupported_dtype, elementLayout(dtype));
}

test "bounds: contiguous, strided, negative strides, empty and scalar tensors" {
    var descriptor = exampleForTests(2, &.{ 3, 4 });
    try testing.expectEqual(Extent{ .first_byte = 0, .end_byte = 48 }, try checkBounds(&descriptor, 48));
    try testing.expectError(error.descriptor_out_of_bounds, checkBounds(&descriptor, 47));
    descriptor.byte_offset = 2;
    try testing.expectError(error.descriptor_misaligned, checkBounds(&descriptor, 1000));
    descriptor.byte_offset = 40;
    descriptor.strides = [_]i64{ -4, 1 } ++ [_]i64{0} ** 6;
    try testing.expectEqual(Extent{ .first_byte = 8, .end_byte = 56 }, try checkBounds(&descriptor, 56));
    descriptor.byte_offset = 28;
    try testing.expectError(error.descriptor_out_of_bounds, checkBounds(&descriptor, 1000));
    var empty = exampleForTests(3, &.{ 5, 0, 7 });
    empty.byte_offset = 100;
    try testing.expectEqual(Extent{ .first_byte = 100, .end_byte = 100 }, try checkBounds(&empty, 100));
    try testing.expectError(error.descriptor_out_of_bounds, checkBounds(&empty, 99));
    const scalar = exampleForTests(0, &.{});
    try testing.expectEqual(Extent{ .first_byte = 0, .end_byte = 4 }, try checkBounds(&scalar, 4));
}

test "bounds arithmetic that would overflow 64 bits is descriptor_overflow" {
    const big = std.math.maxInt(i64);
    var descriptor = exampleForTests(2, &.{ big, 3 });
    try testing.expectError(error.descriptor_overflow, checkBounds(&descriptor, std.math.maxInt(u64)));
    descriptor = exampleForTests(1, &.{2});
    descriptor.strides = [_]i64{big} ++ [_]i64{0} ** 7;
    try testing.expectError(error.descriptor_overflow, checkBounds(&descriptor, std.math.maxInt(u64)));
    descriptor.strides = null;
    descriptor.byte_offset = 1 << 63;
    try testing.expectError(error.descriptor_overflow, checkBounds(&descriptor, std.math.maxInt(u64)));
}

test "descriptors for other devices, versions or flags are refused" {
    const descriptor = exampleForTests(1, &.{4});
    var bytes = serialize(&descriptor);
    write(i32, &bytes, field("device_type"), 2);
    try testing.expectError(error.unsupported_device, parse(&bytes));
    bytes = serialize(&descriptor);
    write(u32, &bytes, field("dlpack_major"), 0);
    try testing.expectError(error.descriptor_malformed, parse(&bytes));
    bytes = serialize(&descriptor);
    write(u64, &bytes, field("flags"), 1 << 2);
    try testing.expectError(error.descriptor_malformed, parse(&bytes));
    bytes = serialize(&descriptor);
    bytes[field("region_name") + 1] = 'X';
    try testing.expectError(error.descriptor_malformed, parse(&bytes));
}

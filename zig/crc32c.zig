//! CRC-32C (Castagnoli, as used by iSCSI, ext4 and SCTP), used to check fast-lane ring slots.
//!
//! Parameters: polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final XOR
//! 0xFFFFFFFF, reflected input and output. Check value: "123456789" -> 0xE3069283.

const std = @import("std");
const assert = std.debug.assert;

/// The incremental hasher: `init()`, `update(bytes)`, `final()`.
pub const Crc32c = std.hash.crc.Crc32Iscsi;

/// The CRC-32C of `bytes` in one call.
pub fn checksum(bytes: []const u8) u32 {
    const result = Crc32c.hash(bytes);
    // The empty input has CRC 0 by the algorithm's definition; anything else is a broken table.
    assert(bytes.len != 0 or result == 0);
    return result;
}

const testing = std.testing;

/// A bit-at-a-time CRC-32C, written from the definition, to check the table-driven one against.
fn checksumReference(bytes: []const u8) u32 {
    const polynomial_reflected: u32 = 0x82F63B78;
    const bits_per_byte = 8;
    var crc: u32 = 0xFFFFFFFF;
    for (bytes) |byte| {
        crc ^= byte;
        for (0..bits_per_byte) |_| {
            const low_bit_mask = @as(u32, 0) -% (crc & 1);
            crc = (crc >> 1) ^ (polynomial_reflected & low_bit_mask);
        }
    }
    return crc ^ 0xFFFFFFFF;
}

test "checksum matches the published check value" {
    try testing.expectEqual(@as(u32, 0xE3069283), checksum("123456789"));
    try testing.expectEqual(@as(u32, 0xE3069283), checksumReference("123456789"));
}

test "checksum of the empty input is zero" {
    try testing.expectEqual(@as(u32, 0), checksum(""));
}

test "checksum matches RFC 3720 test vectors" {
    const zeros = [_]u8{0x00} ** 32;
    const ones = [_]u8{0xFF} ** 32;
    var ascending: [32]u8 = undefined;
    for (&ascending, 0..) |*byte, index| byte.* = @intCast(index);
    try testing.expectEqual(@as(u32, 0x8A9136AA), checksum(&zeros));
    try testing.expectEqual(@as(u32, 0x62A8AB43), checksum(&ones));
    try testing.expectEqual(@as(u32, 0x46DD794E), checksum(&ascending));
}

test "checksum matches the bitwise reference on random inputs of many lengths" {
    var prng = std.Random.DefaultPrng.init(0x5eed_c3c3);
    const random = prng.random();
    var buffer: [4096]u8 = undefined;
    const rounds_max = 200;
    for (0..rounds_max) |_| {
        const length = random.uintAtMost(usize, buffer.len);
        random.bytes(buffer[0..length]);
        try testing.expectEqual(checksumReference(buffer[0..length]), checksum(buffer[0..length]));
    }
}

test "incremental updates equal the one-shot checksum at every split point" {
    const data = "The quick brown fox jumps over the lazy dog";
    for (0..data.len + 1) |split| {
        var hasher = Crc32c.init();
        hasher.update(data[0..split]);
        hasher.update(data[split..]);
        try testing.expectEqual(checksum(data), hasher.final());
    }
}

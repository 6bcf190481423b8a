//! Names of shared-memory regions: `/snakepit-<instance>-<32 lowercase hex digits>`.
//!
//! The instance (1 to 20 of `[A-Za-z0-9_]`) lets the reaper and people tell whose region it is;
//! the 128 random bits make names unguessable and collisions negligible.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;

pub const prefix = "/snakepit-";
/// The longest instance name, so that every region name fits `name_bytes_max`.
pub const instance_bytes_max = 20;
pub const random_bytes = 16;
pub const random_hex_digits = random_bytes * 2;
/// The longest region name: 10 + 20 + 1 + 32 = 63 bytes.
pub const name_bytes_max = prefix.len + instance_bytes_max + 1 + random_hex_digits;

comptime {
    assert(name_bytes_max == 63);
    assert(random_bytes * 8 == 128);
}

/// A region name in a fixed buffer, NUL-terminated for `shm_open`.
pub const Name = struct {
    bytes: [name_bytes_max + 1]u8 = [_]u8{0} ** (name_bytes_max + 1),
    len: u8 = 0,

    pub fn slice(name: *const Name) []const u8 {
        assert(name.len <= name_bytes_max);
        assert(name.bytes[name.len] == 0);
        return name.bytes[0..name.len];
    }

    pub fn z(name: *const Name) [*:0]const u8 {
        assert(name.len > 0);
        return name.bytes[0..name.len :0];
    }
};

/// Checks an instance name: 1 to `instance_bytes_max` bytes of `[A-Za-z0-9_]`.
pub fn checkInstance(instance: []const u8) Error!void {
    if (instance.len == 0 or instance.len > instance_bytes_max) return error.invalid_name;
    for (instance) |byte| {
        if (!std.ascii.isAlphanumeric(byte) and byte != '_') return error.invalid_name;
    }
    assert(instance.len <= instance_bytes_max);
}

/// The name for `instance` and `random`.
pub fn format(instance: []const u8, random: [random_bytes]u8) Error!Name {
    try checkInstance(instance);
    var name: Name = .{};
    const hex = std.fmt.bytesToHex(random, .lower);
    const text = std.fmt.bufPrint(&name.bytes, "{s}{s}-{s}", .{ prefix, instance, &hex }) catch {
        unreachable; // the buffer holds the longest name by construction
    };
    name.len = @intCast(text.len);
    assert(name.bytes[name.len] == 0);
    assert(isValid(text));
    return name;
}

/// Checks a full region name and returns it as a `Name`.
pub fn parse(text: []const u8) Error!Name {
    if (!isValid(text)) return error.invalid_name;
    assert(text.len <= name_bytes_max);
    var name: Name = .{};
    @memcpy(name.bytes[0..text.len], text);
    name.len = @intCast(text.len);
    assert(name.bytes[name.len] == 0);
    return name;
}

/// The instance part of a valid region name.
pub fn instanceOf(text: []const u8) []const u8 {
    assert(text.len > prefix.len + 1 + random_hex_digits);
    const instance = text[prefix.len .. text.len - 1 - random_hex_digits];
    assert(instance.len > 0);
    return instance;
}

/// Whether `text` is a well-formed region name.
fn isValid(text: []const u8) bool {
    if (text.len <= prefix.len + 1 + random_hex_digits or text.len > name_bytes_max) return false;
    if (!std.mem.startsWith(u8, text, prefix)) return false;
    const random_start = text.len - random_hex_digits;
    assert(random_start > prefix.len);
    if (text[random_start - 1] != '-') return false;
    checkInstance(text[prefix.len .. random_start - 1]) catch return false;
    for (text[random_start..]) |byte| {
        const lower_hex = std.ascii.isDigit(byte) or (byte >= 'a' and byte <= 'f');
        if (!lower_hex) return false;
    }
    return true;
}

const testing = std.testing;

test "format builds a name that parses back, with the instance recoverable" {
    const random = [_]u8{ 0xde, 0xad, 0xbe, 0xef } ++ [_]u8{0} ** 12;
    const name = try format("pool_1", random);
    try testing.expectEqualStrings("/snakepit-pool_1-deadbeef000000000000000000000000", name.slice());
    const parsed = try parse(name.slice());
    try testing.expectEqualStrings(name.slice(), parsed.slice());
    try testing.expectEqualStrings("pool_1", instanceOf(parsed.slice()));
}

test "instance names outside [A-Za-z0-9_]{1,20} are invalid_name" {
    const random = [_]u8{0} ** random_bytes;
    for ([_][]const u8{ "", "a-b", "a/b", "é", "a b", "x" ** 21 }) |instance| {
        try testing.expectError(error.invalid_name, format(instance, random));
    }
    _ = try format("x" ** 20, random);
}

test "malformed region names are invalid_name" {
    const good = "/snakepit-a-0123456789abcdef0123456789abcdef";
    _ = try parse(good);
    const bad = [_][]const u8{
        "",                                            "/snakepit-",
        "snakepit-a-0123456789abcdef0123456789abcdef", "/snakepit-a-0123456789ABCDEF0123456789abcdef",
        "/snakepit--0123456789abcdef0123456789abcdef", "/snakepit-a_0123456789abcdef0123456789abcdef",
        "/snakepit-a-0123456789abcdef0123456789abcde", "/snakepit-a/b-0123456789abcdef0123456789abcdef",
        "/other-a-0123456789abcdef0123456789abcdef",
    };
    for (bad) |text| try testing.expectError(error.invalid_name, parse(text));
}

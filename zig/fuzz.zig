//! Randomized tests of descriptor validation and header parsing, with fixed seeds.
//!
//! Properties: no input crashes or trips a safety check (tests build in ReleaseSafe); every bad
//! input is an error; and an independent oracle in 128-bit saturating arithmetic agrees with
//! every verdict: an accepted descriptor's elements all lie inside the payload (enumerated one by
//! one for small tensors), and a rejected one is misaligned, out of bounds or overflows 64 bits.
//!
//! `zig build test` runs `ci_cases` per property; `zig build fuzz -Dcases=N -Dseed=S` runs the
//! same properties for as long as asked (fuzz_main.zig).

const std = @import("std");
const assert = std.debug.assert;
const dlpack = @import("dlpack.zig");
const header_file = @import("header.zig");

/// Cases per property in CI: 3 properties, 300,000 cases in all.
pub const ci_cases = 100_000;
/// Elements enumerated one by one when a tensor is at most this large.
const enumerate_elements_max = 256;

pub const Stats = struct { cases: u64 = 0, accepted: u64 = 0, rejected: u64 = 0 };

const i64_max: i128 = std.math.maxInt(i64);
const i64_min: i128 = std.math.minInt(i64);

fn fitsI64(value: i128) bool {
    const fits = value >= i64_min and value <= i64_max;
    assert(fits == (std.math.cast(i64, value) != null));
    return fits;
}

fn pick(random: std.Random, comptime T: type) T {
    const edges = [_]i128{ 0, 1, 2, -1, 3, 7, 255, 4096, 1 << 31, 1 << 32, 1 << 62, i64_max, i64_max - 1, i64_min, 1 << 40 };
    const roll = random.uintLessThan(u8, 100);
    const value: i128 = if (roll < 70)
        random.intRangeAtMost(i64, -3, 8)
    else if (roll < 90)
        edges[random.uintLessThan(usize, edges.len)]
    else
        random.int(i64);
    assert(value >= i64_min);
    assert(value <= i64_max);
    return @truncate(value);
}

/// A random descriptor's bytes: usually well-formed, sometimes with edge or random values.
fn randomDescriptorBytes(random: std.Random) [dlpack.encoded_bytes]u8 {
    const dtypes = [_]dlpack.Dtype{
        .{ .code = 0, .bits = 8, .lanes = 1 },  .{ .code = 1, .bits = 16, .lanes = 1 },
        .{ .code = 0, .bits = 32, .lanes = 1 }, .{ .code = 1, .bits = 64, .lanes = 1 },
        .{ .code = 2, .bits = 16, .lanes = 1 }, .{ .code = 2, .bits = 32, .lanes = 1 },
        .{ .code = 2, .bits = 64, .lanes = 1 }, .{ .code = 4, .bits = 16, .lanes = 1 },
        .{ .code = 5, .bits = 64, .lanes = 1 }, .{ .code = 5, .bits = 128, .lanes = 1 },
        .{ .code = 6, .bits = 8, .lanes = 1 },
    };
    var descriptor = dlpack.exampleForTests(0, &.{});
    descriptor.dtype = if (random.uintLessThan(u8, 10) == 0)
        .{ .code = random.int(u8), .bits = random.int(u8), .lanes = random.int(u16) }
    else
        dtypes[random.uintLessThan(usize, dtypes.len)];
    descriptor.ndim = random.uintAtMost(u32, dlpack.ndim_max);
    for (descriptor.shape[0..descriptor.ndim]) |*extent| extent.* = @max(pick(random, i64), 0);
    if (random.boolean()) {
        var strides = [_]i64{0} ** dlpack.ndim_max;
        for (strides[0..descriptor.ndim]) |*stride| stride.* = pick(random, i64);
        descriptor.strides = strides;
    }
    descriptor.byte_offset = if (random.boolean()) random.uintLessThan(u64, 64) * 2 else @bitCast(pick(random, i64));
    descriptor.flags = random.uintAtMost(u64, 3);
    descriptor.region_generation = random.uintAtMost(u64, 3) + 1;
    assert(descriptor.ndim <= dlpack.ndim_max);
    assert(descriptor.region_generation >= 1);
    var bytes = dlpack.serialize(&descriptor);
    // Sometimes break the encoding itself, anywhere.
    const flips = if (random.uintLessThan(u8, 4) == 0) random.uintAtMost(u8, 4) else 0;
    for (0..flips) |_| bytes[random.uintLessThan(usize, bytes.len)] ^= @as(u8, 1) << random.int(u3);
    return bytes;
}

const Oracle = struct { fits: bool, first: i128, end: i128, aligned: bool, empty: bool };

/// The verdict computed independently in 128-bit saturating arithmetic.
fn oracle(descriptor: *const dlpack.Descriptor, element_bytes: u64, alignment: u64) Oracle {
    assert(element_bytes > 0);
    assert(element_bytes <= 16);
    assert(std.math.isPowerOfTwo(alignment));
    var strides: [dlpack.ndim_max]i128 = undefined;
    var fits = true;
    if (descriptor.strides) |given| {
        for (0..dlpack.ndim_max) |dimension| strides[dimension] = given[dimension];
    } else {
        var running: i128 = 1;
        var dimension = descriptor.ndim;
        while (dimension > 0) {
            dimension -= 1;
            strides[dimension] = running;
            running = running *| @max(descriptor.shape[dimension], 1);
            fits = fits and fitsI64(running);
        }
    }
    var lowest: i128 = 0;
    var highest: i128 = 0;
    var empty = false;
    for (0..descriptor.ndim) |dimension| {
        const extent: i128 = descriptor.shape[dimension];
        empty = empty or extent == 0;
        const span = (extent - 1) *| strides[dimension];
        fits = fits and fitsI64(span);
        if (span < 0) lowest +|= span else highest +|= span;
        fits = fits and fitsI64(lowest) and fitsI64(highest);
    }
    const offset: i128 = descriptor.byte_offset;
    const size: i128 = element_bytes;
    const first = offset +| (lowest *| size);
    const end = offset +| ((highest +| 1) *| size);
    fits = fits and fitsI64(offset) and fitsI64(lowest *| size) and fitsI64((highest +| 1) *| size);
    fits = fits and fitsI64(first) and fitsI64(end);
    return .{ .fits = fits, .first = first, .end = end, .aligned = descriptor.byte_offset % alignment == 0, .empty = empty };
}

/// Checks, one element at a time, that a small tensor's elements lie in [first, end).
fn enumerateElements(descriptor: *const dlpack.Descriptor, element_bytes: u64, extent: dlpack.Extent) void {
    var count: i128 = 1;
    for (descriptor.shape[0..descriptor.ndim]) |value| count *|= value;
    if (count == 0 or count > enumerate_elements_max) return;
    const strides = descriptor.strides;
    for (0..@intCast(count)) |flat| {
        var remaining: i128 = @intCast(flat);
        var element: i128 = 0;
        var running: i128 = 1;
        var dimension = descriptor.ndim;
        while (dimension > 0) {
            dimension -= 1;
            const index = @mod(remaining, descriptor.shape[dimension]);
            remaining = @divTrunc(remaining, descriptor.shape[dimension]);
            const stride: i128 = if (strides) |given| given[dimension] else running;
            element += index * stride;
            running *= descriptor.shape[dimension];
        }
        const byte = @as(i128, descriptor.byte_offset) + element * element_bytes;
        assert(byte >= extent.first_byte);
        assert(byte + element_bytes <= extent.end_byte);
    }
}

/// Random descriptors against random payload sizes; returns how many were accepted.
pub fn fuzzDescriptors(seed: u64, cases: u64) Stats {
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    var stats: Stats = .{};
    for (0..cases) |_| {
        stats.cases += 1;
        const bytes = randomDescriptorBytes(random);
        const payload_bytes: u64 = if (random.boolean()) random.uintAtMost(u64, 4096) else @bitCast(pick(random, i64));
        const descriptor = dlpack.parse(&bytes) catch {
            stats.rejected += 1;
            continue;
        };
        assert(std.mem.eql(u8, &bytes, &dlpack.serialize(&descriptor)));
        const element = dlpack.elementLayout(descriptor.dtype) catch unreachable;
        const expected = oracle(&descriptor, element.bytes, element.alignment);
        if (dlpack.checkBounds(&descriptor, payload_bytes)) |extent| {
            stats.accepted += 1;
            assert(expected.aligned);
            assert(extent.end_byte <= payload_bytes);
            if (!expected.empty) {
                assert(expected.fits);
                assert(expected.first == extent.first_byte);
                assert(expected.end == extent.end_byte);
                enumerateElements(&descriptor, element.bytes, extent);
            }
        } else |err| {
            stats.rejected += 1;
            const in_bounds = expected.first >= 0 and expected.end <= payload_bytes;
            switch (err) {
                error.descriptor_misaligned => assert(!expected.aligned),
                error.descriptor_overflow => assert(!expected.fits or !fitsI64(descriptor.byte_offset)),
                error.descriptor_out_of_bounds => assert(expected.empty or !in_bounds),
                else => unreachable,
            }
        }
    }
    return stats;
}

/// Random headers (valid ones with random damage) against random object sizes.
pub fn fuzzHeaders(seed: u64, cases: u64) Stats {
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    var stats: Stats = .{};
    for (0..cases) |_| {
        stats.cases += 1;
        var header: header_file.Header = undefined;
        const payload_bytes = 1 + random.uintLessThan(u64, 1 << 20);
        header_file.initialize(&header, .{ .generation = 1, .payload_bytes = payload_bytes, .creator_pid = 1 + random.uintLessThan(u32, header_file.pid_max), .creation_time_ns = random.int(u64) });
        const bytes: *[@sizeOf(header_file.Header)]u8 = @ptrCast(&header);
        const identity_bytes = 128;
        const damage = random.uintAtMost(u8, 3);
        for (0..damage) |_| bytes[random.uintLessThan(usize, identity_bytes)] = random.int(u8);
        if (random.uintLessThan(u8, 8) == 0) header.payload_offset = @bitCast(pick(random, i64));
        if (random.uintLessThan(u8, 8) == 0) header.total_bytes = @bitCast(pick(random, i64));
        const object_bytes = if (random.boolean()) header_file.payload_offset_default + payload_bytes else @as(u64, @bitCast(pick(random, i64)));
        if (header_file.check(&header, object_bytes)) |bounds| {
            stats.accepted += 1;
            assert(header.magic == header_file.magic_value);
            assert(bounds.offset % header_file.payload_alignment == 0);
            assert(bounds.offset >= @sizeOf(header_file.Header));
            assert(bounds.offset + bounds.bytes == object_bytes);
            assert(bounds.offset == header.payload_offset);
        } else |_| {
            stats.rejected += 1;
        }
        for (header.holders[0..4]) |slot| _ = header_file.slotCount(slot) +% header_file.slotPid(slot);
    }
    return stats;
}

/// Random bytes, not derived from a valid descriptor: all must be rejected without a crash.
pub fn fuzzNoise(seed: u64, cases: u64) Stats {
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    var stats: Stats = .{};
    var bytes: [dlpack.encoded_bytes + 8]u8 = undefined;
    for (0..cases) |_| {
        stats.cases += 1;
        random.bytes(&bytes);
        // Half keep a valid magic and version so that parsing gets past the first checks.
        if (random.boolean()) std.mem.writeInt(u64, bytes[0..8], 0x0100_0100_4C44_5053, .little);
        const length = dlpack.encoded_bytes - 8 + random.uintAtMost(usize, 16);
        if (dlpack.parse(bytes[0..length])) |_| stats.accepted += 1 else |_| stats.rejected += 1;
        assert(stats.accepted + stats.rejected == stats.cases);
    }
    assert(stats.cases == cases);
    return stats;
}

const testing = std.testing;

test "fuzz: descriptor validation agrees with the 128-bit oracle on 100,000 random descriptors" {
    const stats = fuzzDescriptors(0x5EED_0001, ci_cases);
    try testing.expectEqual(@as(u64, ci_cases), stats.cases);
    try testing.expect(stats.accepted > ci_cases / 20);
    try testing.expect(stats.rejected > ci_cases / 20);
}

test "fuzz: header checks survive 100,000 damaged headers" {
    const stats = fuzzHeaders(0x5EED_0002, ci_cases);
    try testing.expectEqual(@as(u64, ci_cases), stats.cases);
    try testing.expect(stats.accepted > 0);
    try testing.expect(stats.rejected > ci_cases / 10);
}

test "fuzz: random bytes are never a descriptor" {
    const stats = fuzzNoise(0x5EED_0003, ci_cases);
    try testing.expectEqual(@as(u64, ci_cases), stats.rejected);
}

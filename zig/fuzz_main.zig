//! `zig build fuzz -Dcases=N -Dseed=S`: the randomized properties of fuzz.zig for as long as
//! asked. Any violated property panics (the build is ReleaseSafe), with the seed to replay.

const std = @import("std");
const fuzz = @import("fuzz.zig");
const options = @import("fuzz_options");

pub fn main() void {
    const seed: u64 = options.seed;
    const cases: u64 = options.cases;
    std.debug.print("fuzzing with seed 0x{x}, {d} cases per property\n", .{ seed, cases });
    const descriptors = fuzz.fuzzDescriptors(seed, cases);
    std.debug.print("descriptors: {d} accepted, {d} rejected\n", .{ descriptors.accepted, descriptors.rejected });
    const headers = fuzz.fuzzHeaders(seed +% 1, cases);
    std.debug.print("headers:     {d} accepted, {d} rejected\n", .{ headers.accepted, headers.rejected });
    const noise = fuzz.fuzzNoise(seed +% 2, cases);
    std.debug.print("noise:       {d} accepted, {d} rejected\n", .{ noise.accepted, noise.rejected });
}

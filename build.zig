//! Builds the native library (`zig-out/lib/libsnakepit.so`) and runs the Zig unit tests.
//!
//!   zig build                    the shared library, ReleaseSafe unless -Doptimize says otherwise
//!   zig build test --summary all the unit tests of every file under zig/ (fuzz: 100,000 cases
//!                                per property with fixed seeds)
//!   zig build fuzz -Dcases=N -Dseed=S   the same randomized properties, as long as asked
//!   zig build bench [-- --json]  the native core's costs (locks, regions, memcpy) from Zig

const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    // ReleaseSafe by default: the library runs inside other people's processes, so it keeps its
    // safety checks while still being fast enough for the fast lane.
    const optimize = b.option(
        std.builtin.OptimizeMode,
        "optimize",
        "Prioritize performance, safety, or binary size (default: ReleaseSafe)",
    ) orelse .ReleaseSafe;

    const library_module = b.createModule(.{
        .root_source_file = b.path("zig/c_api.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const library = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "snakepit",
        .root_module = library_module,
    });
    b.installArtifact(library);

    // The test root is c_api.zig: its tests cover the exports, and it pulls in root.zig, whose
    // test block pulls in every concept file, so one binary runs the tests of every file.
    const unit_tests = b.addTest(.{ .root_module = library_module });
    const run_unit_tests = b.addRunArtifact(unit_tests);
    const test_step = b.step("test", "Run the unit tests of every file under zig/");
    test_step.dependOn(&run_unit_tests.step);

    // The Zig API (root.zig) for the fuzz and bench executables.
    const zig_api = b.createModule(.{
        .root_source_file = b.path("zig/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });

    const fuzz_options = b.addOptions();
    fuzz_options.addOption(u64, "cases", b.option(u64, "cases", "Fuzz cases per property (default 1,000,000)") orelse 1_000_000);
    fuzz_options.addOption(u64, "seed", b.option(u64, "seed", "Fuzz seed (default 0x5EED)") orelse 0x5EED);
    const fuzz_module = b.createModule(.{
        .root_source_file = b.path("zig/fuzz_main.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    fuzz_module.addOptions("fuzz_options", fuzz_options);
    const fuzz_exe = b.addExecutable(.{ .name = "snakepit-fuzz", .root_module = fuzz_module });
    const fuzz_step = b.step("fuzz", "Run the randomized descriptor and header properties (-Dcases, -Dseed)");
    fuzz_step.dependOn(&b.addRunArtifact(fuzz_exe).step);

    const bench_module = b.createModule(.{
        .root_source_file = b.path("zig/bench_main.zig"),
        .target = target,
        .optimize = if (optimize == .Debug) .ReleaseFast else optimize,
        .link_libc = true,
    });
    bench_module.addImport("snakepit", zig_api);
    const bench_exe = b.addExecutable(.{ .name = "snakepit-bench", .root_module = bench_module });
    const run_bench = b.addRunArtifact(bench_exe);
    if (b.args) |arguments| run_bench.addArgs(arguments);
    const bench_step = b.step("bench", "Measure locks, regions and memcpy from Zig (-- --json for JSON)");
    bench_step.dependOn(&run_bench.step);
}

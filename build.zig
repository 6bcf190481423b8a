//! Builds the native library (`zig-out/lib/libsnakepit.so`) and runs the Zig unit tests.
//!
//!   zig build                    the shared library, ReleaseSafe unless -Doptimize says otherwise
//!   zig build test --summary all the unit tests of every file under zig/

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
}

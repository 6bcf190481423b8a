//! A process-shared reader/writer lock in the region header, built on futexes.
//!
//! Words: `lock_state` (u32) and `lock_drain_sequence` (u32) in the header, and the reader table
//! `readers[reader_slots_max]` (pid << 32 | shared locks held by that pid).
//!
//! `lock_state` bits: 0..21 the exclusive owner's pid, 22 EXCLUSIVE (a writer owns or is claiming
//! the lock), 23 DRAINED (the readers have left: the writer holds it), 31 WAITERS (someone sleeps
//! on the word). The owner's pid lives in the same word as the bit that grants the lock, so one
//! compare-and-swap both takes the lock and records who took it: no crash can leave a lock that
//! is held by nobody we can name.
//!
//! Protocol (a read indicator per process, with writer preference):
//! - a reader first counts itself in its own reader slot, then reads `lock_state`; if a writer is
//!   present (EXCLUSIVE, drained or not) it uncounts itself and waits. New readers therefore stop
//!   as soon as a writer arrives: readers cannot starve a writer.
//! - a writer claims EXCLUSIVE|pid with a CAS, then waits until every reader slot is empty
//!   (readers leaving bump `lock_drain_sequence` and wake it), then sets DRAINED.
//!   Both sides use sequentially consistent operations, so either the reader sees the writer or
//!   the writer sees the reader (the Dekker pattern).
//! - owner death: a waiter checks the liveness of the exclusive owner, and a draining writer that
//!   of the readers it waits for, at once on contention and then every
//!   `liveness_check_interval_ns` (sleeps never exceed `futex.wait_slice_ns_max`). A dead owner's
//!   claim is taken over (or cleared) with a CAS on the exact state seen, and a dead reader's slot
//!   is cleared with a CAS, so two recoverers cannot both win. Whoever recovers a lock that a
//!   dead process held is told `owner_dead`; a writer that died before its readers drained never
//!   held the lock, and its claim is cleared silently.
//!
//! The lock is owned by a process, not a thread; it is not reentrant.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const header_file = @import("header.zig");
const Header = header_file.Header;
const futex = @import("futex.zig");
const liveness = @import("liveness.zig");
const pid_table = @import("pid_table.zig");

pub const pid_mask: u32 = header_file.pid_max;
pub const exclusive_bit: u32 = 1 << 22;
pub const drained_bit: u32 = 1 << 23;
pub const waiters_bit: u32 = 1 << 31;

/// How often a waiter re-checks whether the processes it waits for are alive. Together with
/// `futex.wait_slice_ns_max` this bounds how long a dead holder's lock stays lost.
pub const liveness_check_interval_ns: u64 = 10 * std.time.ns_per_ms;
/// Rounds of any wait loop; the deadline ends a wait long before in practice.
pub const wait_rounds_max: u32 = std.math.maxInt(u32);

comptime {
    assert(pid_mask & exclusive_bit == 0);
    assert(pid_mask & drained_bit == 0);
    assert(pid_mask & waiters_bit == 0);
    assert(liveness_check_interval_ns >= futex.wait_slice_ns_max);
}

pub const Mode = enum(u32) { shared = 0, exclusive = 1 };

/// How an acquisition went: `owner_died` means a holder died holding the lock and this caller
/// recovered it; the lock is held either way.
pub const Acquired = enum { clean, owner_died };

/// One caller's wait: who waits, until when, and state kept between calls by the caller's handle.
pub const Waiter = struct {
    pid: u32,
    /// Absolute monotonic deadline; 0 means try once without sleeping.
    deadline_ns: u64 = 0,
    /// Nonzero ends a wait with `cancelled` (1) or `handle_closed` (2).
    cancel: ?*const u32 = null,
    /// Exclusive: on `would_block` or `timed_out`, keep the claim so a later call resumes it
    /// (try-lock polling keeps its place ahead of new readers).
    keep_intent: bool = false,
    /// Set while this waiter's claim on EXCLUSIVE is kept between calls.
    intent_pending: bool = false,
    /// When the next liveness check is due (monotonic ns); 0 means at the first contention.
    liveness_due_ns: u64 = 0,
    /// Hint: the reader slot this process used last.
    reader_slot_hint: u32 = 0,
    /// Set when this waiter freed the records of a dead holder during this acquisition.
    recovered: bool = false,

    fn livenessDue(waiter: *Waiter) bool {
        const now = futex.nowNs();
        if (now < waiter.liveness_due_ns) return false;
        waiter.liveness_due_ns = now + liveness_check_interval_ns;
        assert(waiter.liveness_due_ns > now);
        return true;
    }
};

pub const cancel_requested: u32 = 1;
pub const cancel_closing: u32 = 2;

fn loadState(header: *Header) u32 {
    comptime assert(@alignOf(Header) >= @alignOf(u32));
    return @atomicLoad(u32, &header.lock_state, .seq_cst);
}

fn casState(header: *Header, expected: u32, new: u32) bool {
    assert(expected != new);
    assert(new & reserved_bits == 0);
    return @cmpxchgStrong(u32, &header.lock_state, expected, new, .seq_cst, .seq_cst) == null;
}

/// The bits of `lock_state` this layout leaves unused.
const reserved_bits: u32 = ~(pid_mask | exclusive_bit | drained_bit | waiters_bit);

fn noteOwnerDeath(header: *Header, waiter: *Waiter) void {
    assert(waiter.pid != 0);
    waiter.recovered = true;
    _ = @atomicRmw(u32, &header.lock_owner_deaths, .Add, 1, .seq_cst);
    _ = @atomicRmw(u32, &header.flags, .Or, header_file.flag_owner_died, .seq_cst);
}

/// Fails with the waiter's cancellation, if it has one.
fn checkCancel(waiter: *const Waiter) Error!void {
    const cancel = waiter.cancel orelse return;
    const value = @atomicLoad(u32, cancel, .seq_cst);
    if (value == cancel_closing) return error.handle_closed;
    if (value != 0) return error.cancelled;
    assert(value == 0);
}

/// Sleeps on `lock_state` while it still reads `state`, or fails if the waiter may not sleep.
fn waitOnState(header: *Header, state: u32, waiter: *const Waiter) Error!void {
    assert(state & exclusive_bit != 0);
    if (waiter.deadline_ns == 0) return error.would_block;
    try checkCancel(waiter);
    const remaining = futex.remainingNs(waiter.deadline_ns);
    if (remaining == 0) return error.timed_out;
    const sleeping_state = state | waiters_bit;
    assert(sleeping_state & exclusive_bit != 0);
    if (state != sleeping_state and !casState(header, state, sleeping_state)) return;
    futex.wait(&header.lock_state, sleeping_state, remaining);
}

/// Tells a writer that is waiting for readers to leave that one left.
fn wakeDrainer(header: *Header) void {
    const state = loadState(header);
    if (state & exclusive_bit == 0 or state & drained_bit != 0) return;
    assert(state & pid_mask != 0 or state & exclusive_bit != 0);
    _ = @atomicRmw(u32, &header.lock_drain_sequence, .Add, 1, .seq_cst);
    futex.wakeAll(&header.lock_drain_sequence);
}

/// Counts this process into its reader slot, freeing dead readers' slots if the table is full.
fn enterReader(header: *Header, waiter: *Waiter) Error!void {
    assert(waiter.pid != 0);
    const attempts_max = 2; // the second after freeing the slots of dead readers
    for (0..attempts_max) |attempt| {
        if (pid_table.increment(&header.readers, waiter.pid, &waiter.reader_slot_hint)) |slot| {
            assert(slot < header_file.reader_slots_max);
            assert(waiter.reader_slot_hint == slot);
            return;
        } else |err| switch (err) {
            error.count_overflow => return error.reference_overflow,
            error.table_full => if (attempt == 0 and clearDeadReaders(header, waiter)) {
                assert(waiter.recovered);
            } else return error.reader_table_full,
        }
    }
    return error.reader_table_full;
}

/// Frees the reader slots of dead processes, recording the death; true if it freed any.
fn clearDeadReaders(header: *Header, waiter: *Waiter) bool {
    const cleared = pid_table.clearDead(&header.readers);
    if (cleared == 0) return false;
    assert(cleared > 0);
    noteOwnerDeath(header, waiter);
    return true;
}

/// Takes the shared lock, waiting (as `waiter` allows) while a writer owns or claims it.
pub fn acquireShared(header: *Header, waiter: *Waiter) Error!Acquired {
    assert(waiter.pid != 0);
    assert(waiter.pid <= pid_mask);
    waiter.recovered = false;
    for (0..wait_rounds_max) |_| {
        try enterReader(header, waiter);
        const state = loadState(header);
        if (state & exclusive_bit == 0) return if (waiter.recovered) .owner_died else .clean;
        // A writer owns or claims the lock: step back out, and wake it if it waits for us.
        _ = pid_table.decrement(&header.readers, waiter.pid, waiter.reader_slot_hint);
        wakeDrainer(header);
        if (waiter.livenessDue() and !liveness.isAlive(state & pid_mask)) {
            if (casState(header, state, 0)) {
                if (state & waiters_bit != 0) futex.wakeAll(&header.lock_state);
                if (state & drained_bit != 0) noteOwnerDeath(header, waiter);
            }
            continue;
        }
        try waitOnState(header, state, waiter);
    }
    return error.timed_out;
}

/// Releases one shared lock this process holds.
pub fn releaseShared(header: *Header, waiter: *Waiter) Error!void {
    assert(waiter.pid != 0);
    assert(waiter.pid <= pid_mask);
    if (!pid_table.decrement(&header.readers, waiter.pid, waiter.reader_slot_hint)) {
        return error.not_locked;
    }
    wakeDrainer(header);
}

/// Phase one of an exclusive acquisition: own EXCLUSIVE|pid (claimed, not yet drained).
fn claimExclusive(header: *Header, waiter: *Waiter) Error!void {
    const claim = exclusive_bit | waiter.pid;
    assert(claim & pid_mask == waiter.pid);
    assert(claim & drained_bit == 0);
    for (0..wait_rounds_max) |_| {
        const state = loadState(header);
        if (state & exclusive_bit == 0) {
            if (casState(header, state, (state & waiters_bit) | claim)) return;
            continue;
        }
        const owner = state & pid_mask;
        if (waiter.intent_pending and owner == waiter.pid and state & drained_bit == 0) return;
        if (waiter.livenessDue() and !liveness.isAlive(owner)) {
            if (casState(header, state, (state & waiters_bit) | claim)) {
                if (state & drained_bit != 0) noteOwnerDeath(header, waiter);
                return;
            }
            continue;
        }
        try waitOnState(header, state, waiter);
    }
    return error.timed_out;
}

/// Phase two: wait until no reader slot is in use, freeing dead readers' slots, then set DRAINED.
/// Fails with corrupt_header if the claim stopped naming this process meanwhile (only a process
/// that wrongly judged it dead, e.g. from another pid namespace, could take it).
fn drainReaders(header: *Header, waiter: *Waiter) Error!void {
    assert(waiter.intent_pending);
    const claim = exclusive_bit | waiter.pid;
    for (0..wait_rounds_max) |_| {
        const sequence = @atomicLoad(u32, &header.lock_drain_sequence, .seq_cst);
        if (!pid_table.anyInUse(&header.readers)) {
            const state = loadState(header);
            if (state & ~waiters_bit != claim) return error.corrupt_header;
            if (casState(header, state, state | drained_bit)) return;
            continue; // a sleeper set WAITERS meanwhile
        }
        if (waiter.livenessDue() and clearDeadReaders(header, waiter)) continue;
        if (waiter.deadline_ns == 0) return error.would_block;
        try checkCancel(waiter);
        const remaining = futex.remainingNs(waiter.deadline_ns);
        if (remaining == 0) return error.timed_out;
        futex.wait(&header.lock_drain_sequence, sequence, remaining);
    }
    return error.timed_out;
}

/// Takes the exclusive lock: claims it (new readers stop), then waits for readers to leave.
pub fn acquireExclusive(header: *Header, waiter: *Waiter) Error!Acquired {
    assert(waiter.pid != 0);
    assert(waiter.pid <= pid_mask);
    waiter.recovered = false;
    try claimExclusive(header, waiter);
    waiter.intent_pending = true;
    drainReaders(header, waiter) catch |err| {
        const keep = waiter.keep_intent and (err == error.would_block or err == error.timed_out);
        if (!keep) abandonIntent(header, waiter);
        assert(waiter.intent_pending == keep);
        return err;
    };
    waiter.intent_pending = false;
    return if (waiter.recovered) .owner_died else .clean;
}

/// Withdraws a claim on EXCLUSIVE that this waiter kept (`keep_intent`), waking those it held up.
pub fn abandonIntent(header: *Header, waiter: *Waiter) void {
    if (!waiter.intent_pending) return;
    waiter.intent_pending = false;
    const claim = exclusive_bit | waiter.pid;
    assert(claim & pid_mask == waiter.pid);
    assert(claim & drained_bit == 0);
    const rounds_max = 64; // only sleepers setting WAITERS race with us here
    for (0..rounds_max) |_| {
        const state = loadState(header);
        if (state & ~waiters_bit != claim) return; // not (or no longer) ours, or already drained
        if (!casState(header, state, 0)) continue;
        if (state & waiters_bit != 0) futex.wakeAll(&header.lock_state);
        return;
    }
}

/// Releases the exclusive lock this process holds.
pub fn releaseExclusive(header: *Header, waiter: *const Waiter) Error!void {
    assert(waiter.pid != 0);
    assert(waiter.pid <= pid_mask);
    const held = exclusive_bit | drained_bit | waiter.pid;
    const rounds_max = 64; // only sleepers setting WAITERS race with the owner
    for (0..rounds_max) |_| {
        const state = loadState(header);
        if (state & ~waiters_bit != held) return error.not_locked;
        if (!casState(header, state, 0)) continue;
        if (state & waiters_bit != 0) futex.wakeAll(&header.lock_state);
        return;
    }
    return error.not_locked;
}

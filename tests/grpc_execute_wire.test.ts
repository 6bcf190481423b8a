// The hand-written Execute codec of the gRPC transport reads and writes exactly what
// proto-loader's generic codec does: requests decode to the same message, result replies to the
// same outcome, and every reply it does not know field by field goes to the generic decoder.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { serviceClients } from "../src/bridge/_proto.ts";
import { decodeExecuteReply, encodeExecuteRequest } from "../src/bridge/_execute_wire.ts";
import type { WireOutcome, WireRequest } from "../src/bridge/transport.ts";

// deno-lint-ignore no-explicit-any
const execute = (serviceClients().Worker as any).service.Execute;

function request(overrides: Partial<WireRequest> = {}): WireRequest {
  return {
    requestId: "pool-1-42",
    tool: "noop",
    args: new Uint8Array([0x81, 0xa1, 0x78, 0x01]),
    encoding: 1,
    sessionId: "",
    deadlineUnixMs: 0,
    queueDeadlineUnixMs: 0,
    correlationId: "7f1c1c52-3a9d-4c8e-9a4e-6a0f1b2c3d4e",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ...overrides,
  };
}

/** The request as proto-loader's server side reads it, with proto3 defaults for absent fields. */
function decodedRequest(wire: WireRequest): Record<string, unknown> {
  return execute.requestDeserialize(encodeExecuteRequest(wire));
}

function genericOutcome(reply: Record<string, unknown>): WireOutcome {
  const bytes = execute.responseSerialize(reply);
  return decodeExecuteReply(
    bytes,
    execute.responseDeserialize,
    (decoded: unknown) => ({ ok: false, error: decoded }),
  );
}

describe("the Execute request encoder", () => {
  test("writes every field the generic decoder reads back", () => {
    const wire = request({ sessionId: "session-é", deadlineUnixMs: 1_795_449_287_075 });
    const decoded = decodedRequest(wire);
    assert.equal(decoded.request_id, wire.requestId);
    assert.equal(decoded.tool, wire.tool);
    assert.equal(decoded.session_id, "session-é");
    assert.equal(decoded.deadline_unix_ms, 1_795_449_287_075);
    const args = decoded.args as { encoding: number; data: Uint8Array; regions: unknown[] };
    assert.equal(args.encoding, 1);
    assert.deepEqual([...args.data], [...wire.args]);
    assert.deepEqual(args.regions, []);
    assert.deepEqual(decoded.metadata, {
      correlation_id: wire.correlationId,
      traceparent: wire.traceparent,
      tracestate: "",
    });
  });

  test("matches the generic encoder's message for the same request", () => {
    const wire = request({ deadlineUnixMs: 2 ** 41 + 7 });
    const generic = execute.requestDeserialize(execute.requestSerialize({
      request_id: wire.requestId,
      tool: wire.tool,
      args: { encoding: wire.encoding, data: wire.args, regions: [] },
      session_id: wire.sessionId,
      deadline_unix_ms: wire.deadlineUnixMs,
      metadata: {
        correlation_id: wire.correlationId,
        traceparent: wire.traceparent,
        tracestate: "",
      },
    }));
    assert.deepEqual(decodedRequest(wire), generic);
  });

  test("leaves out empty strings, a zero deadline and empty metadata, which read as defaults", () => {
    const wire = request({
      requestId: "",
      sessionId: "",
      correlationId: "",
      traceparent: "",
      args: new Uint8Array(0),
    });
    const decoded = decodedRequest(wire);
    assert.equal(decoded.request_id, "");
    assert.equal(decoded.deadline_unix_ms, 0);
    assert.equal(decoded.metadata, null);
    assert.equal((decoded.args as { data: Uint8Array }).data.length, 0);
  });

  test("carries arguments larger than one varint byte of length", () => {
    const big = new Uint8Array(70_000).map((_, index) => index % 251);
    const decoded = decodedRequest(request({ args: big }));
    assert.deepEqual(Buffer.from((decoded.args as { data: Uint8Array }).data), Buffer.from(big));
  });
});

describe("the Execute reply decoder", () => {
  test("reads a result reply as the outcome the generic decoder gives", () => {
    const reply = {
      request_id: "pool-1-42",
      result: { encoding: 1, data: new Uint8Array([0x92, 0x01, 0x02]) },
      timing: { decode_ns: 1_500, execute_ns: 2 ** 40 + 3, encode_ns: 0 },
    };
    const outcome = genericOutcome(reply);
    assert.equal(outcome.ok, true);
    if (!outcome.ok) return;
    assert.deepEqual([...outcome.data], [0x92, 0x01, 0x02]);
    assert.equal(outcome.encoding, 1);
    assert.deepEqual(outcome.timing, { decodeNs: 1_500, executeNs: 2 ** 40 + 3, encodeNs: 0 });
  });

  test("reads a reply without timing as zero times", () => {
    const outcome = genericOutcome({ result: { encoding: 2, data: new Uint8Array([0x6e]) } });
    assert.deepEqual(outcome.ok && outcome.timing, { decodeNs: 0, executeNs: 0, encodeNs: 0 });
  });

  test("hands an error reply to the generic decoder", () => {
    const outcome = genericOutcome({
      request_id: "r",
      error: { kind: "python", message: "boom" },
      timing: { execute_ns: 5 },
    });
    assert.equal(outcome.ok, false);
    const generic = (outcome as { error: { outcome: string; error: { message: string } } }).error;
    assert.equal(generic.outcome, "error");
    assert.equal(generic.error.message, "boom");
  });

  test("hands a result that names shared-memory regions to the generic decoder", () => {
    const region = {
      name: "snakepit-x-1",
      generation: 3,
      descriptor: new Uint8Array([1]),
      token: new Uint8Array([2]),
    };
    const outcome = genericOutcome({
      result: { encoding: 1, data: new Uint8Array([0xc0]), regions: [region] },
    });
    assert.equal(outcome.ok, false);
    const generic = (outcome as { error: { result: { regions: { name: string }[] } } }).error;
    assert.equal(generic.result.regions[0]!.name, "snakepit-x-1");
  });

  test("rejects a truncated reply instead of reading past it", () => {
    const bytes = execute.responseSerialize({ result: { encoding: 1, data: new Uint8Array(10) } });
    assert.throws(() =>
      decodeExecuteReply(
        bytes.subarray(0, bytes.length - 3),
        execute.responseDeserialize,
        () => ({ ok: false, error: null }),
      )
    );
  });
});

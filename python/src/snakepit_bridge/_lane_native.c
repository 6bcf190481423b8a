/*
 * The fast lane's lean loop, in C: runs a batch of plain calls straight off the request ring.
 *
 * lane_server.py hands a batch of request frames to `LaneLoop.serve` when it could run them
 * inline on the reader thread anyway (one call at a time, nothing on the pool threads). For each
 * call frame in order, while the call is a plain sync tool (no `ctx`, not a
 * stream) with no arguments or plain msgpack arguments, far from its deadlines, the loop counts
 * it started, runs the tool with the call's ids bound for logging, encodes a plain result, and
 * publishes the result frame in place: what lane_lean.py does, without a Python frame per step.
 * It stops at the first frame it does not take, and lane_server.py runs the rest of the batch
 * the Python way (which also reports every bad frame). A batch holding anything but call frames
 * (a cancel, a credit, a spill, a stream) is left to Python whole, so that control frames are
 * still seen before any call of their batch starts.
 *
 * What the tool raises, a result the plain packer refuses (tensors, tables, numpy scalars), and a
 * reply that does not fit the response ring go back to Python callbacks, which report or send
 * them exactly as lane_lean.py does.
 *
 * The layout constants are lane.py's; lane_native.py checks them against `LAYOUT` at load. The
 * GIL is held throughout (the tool itself may release it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the lane's words and frames are little-endian, as is every host it runs on"
#endif

#define HEADER_BYTES 512
#define SLOT_HEADER_BYTES 16
#define OFF_REQ_TAIL 128
#define OFF_REQ_STARTED 132
#define OFF_RESP_HEAD 192
#define OFF_HOST_PARKED 196
#define OFF_RESP_TAIL 256
#define CALL_MARKER 0x01
#define RESULT_MARKER 0x02
#define CALL_HEADER_BYTES 36
#define RESULT_HEADER_BYTES 32
#define STREAM_FLAG 0x01
/* A call this close to its queue deadline is left to Python, which counts it started with the
 * care the deadline needs (lane_server.py's STARTED_FENCE_MARGIN_MS). */
#define QUEUE_DEADLINE_MARGIN_MS 50.0
#define TOOL_NAME_CACHE_BYTES 128
#define SLOT_COUNT_MAX 4096

/* What a call frame's header says; offsets relative to the frame's first byte. */
typedef struct {
    uint8_t encoding;
    uint8_t flags;
    double deadline_ms;
    double queue_deadline_ms;
    const uint8_t *id;
    uint16_t id_length;
    const uint8_t *tool;
    uint16_t tool_length;
    const uint8_t *session;
    uint16_t session_length;
    const uint8_t *correlation;
    uint16_t correlation_length;
    const uint8_t *traceparent;
    uint16_t traceparent_length;
    const uint8_t *args;
    uint32_t args_length;
} CallFrame;

typedef struct {
    PyObject_HEAD
    PyObject *view;        /* the lane payload's memoryview (a buffer taken per batch) */
    uint32_t epoch;
    uint32_t slot_bytes;
    uint32_t slot_count;
    long msgpack_encoding;
    int doorbell_fd;
    PyObject *tools;       /* {name: (function, bind, accepts_no_arguments)} */
    PyObject *servicer;    /* its `lane_call` names the running call (Ping, Cancel) */
    PyObject *call_var;    /* log_records' ContextVar of (correlation id, traceparent) */
    PyObject *writer;      /* the ResponseWriter: its lock, head, tail and spills */
    PyObject *writer_lock;
    PyObject *unpack;      /* bytes -> value; raises on ext types */
    PyObject *pack;        /* value -> bytes; raises for anything needing a default */
    PyObject *encode_full; /* (request id, result) -> bytes: codec's full result encoder */
    PyObject *send_error;  /* (request id, exception) -> None: sends the error frame */
    PyObject *cancelled;   /* ids cancelled before their frame was read (the reader's dict) */
    PyObject *nil;         /* b"\xc0": msgpack's None */
    PyObject *empty_tuple;
    unsigned long long calls; /* calls this loop ran (Python reads it as `calls`) */
    char cached_name[TOOL_NAME_CACHE_BYTES];
    Py_ssize_t cached_length;
    PyObject *cached_entry;
} LaneLoop;

static PyObject *str_lane_call, *str_acquire, *str_release, *str_head, *str_tail, *str_spills;

static inline uint32_t load_u32(const uint8_t *at) {
    uint32_t value;
    memcpy(&value, at, 4);
    return value;
}

static inline uint16_t load_u16(const uint8_t *at) {
    uint16_t value;
    memcpy(&value, at, 2);
    return value;
}

static inline double load_f64(const uint8_t *at) {
    double value;
    memcpy(&value, at, 8);
    return value;
}

static inline void store_u32(uint8_t *at, uint32_t value) { memcpy(at, &value, 4); }

static inline uint32_t *word_at(uint8_t *base, size_t offset) {
    return (uint32_t *)(void *)(base + offset);
}

static int64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static double unix_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6;
}

/* The frame in request slot `index`, when its header is that frame's (sequence and epoch) and
 * it is a call frame whose lengths add up; NULL otherwise (Python then reports what is wrong). */
static const uint8_t *call_slot(const LaneLoop *self, uint8_t *base, uint32_t index,
                                CallFrame *call) {
    const uint8_t *slot =
        base + HEADER_BYTES + (size_t)(index & (self->slot_count - 1)) * self->slot_bytes;
    uint32_t length = load_u32(slot + 8);
    if (load_u32(slot) != index || load_u32(slot + 4) != self->epoch) return NULL;
    if (length < CALL_HEADER_BYTES || length > self->slot_bytes - SLOT_HEADER_BYTES) return NULL;
    const uint8_t *frame = slot + SLOT_HEADER_BYTES;
    if (frame[0] != CALL_MARKER) return NULL;
    call->flags = frame[1];
    call->encoding = frame[2];
    call->deadline_ms = load_f64(frame + 4);
    call->queue_deadline_ms = load_f64(frame + 12);
    call->id_length = load_u16(frame + 20);
    call->tool_length = load_u16(frame + 22);
    call->session_length = load_u16(frame + 24);
    call->correlation_length = load_u16(frame + 26);
    call->traceparent_length = load_u16(frame + 28);
    call->args_length = load_u32(frame + 32);
    uint64_t total = (uint64_t)CALL_HEADER_BYTES + call->id_length + call->tool_length +
                     call->session_length + call->correlation_length + call->traceparent_length +
                     call->args_length;
    if (total != length) return NULL;
    call->id = frame + CALL_HEADER_BYTES;
    call->tool = call->id + call->id_length;
    call->session = call->tool + call->tool_length;
    call->correlation = call->session + call->session_length;
    call->traceparent = call->correlation + call->correlation_length;
    call->args = call->traceparent + call->traceparent_length;
    return frame;
}

/* The tool entry for the frame's tool name (borrowed), or NULL: not a lean tool (or a name that
 * is not UTF-8, which Python reports). The last name looked up is cached: a hot loop calls one
 * tool. */
static PyObject *lean_tool(LaneLoop *self, const CallFrame *call) {
    if (self->cached_entry != NULL && call->tool_length == self->cached_length &&
        memcmp(call->tool, self->cached_name, call->tool_length) == 0) {
        return self->cached_entry;
    }
    PyObject *name = PyUnicode_DecodeUTF8((const char *)call->tool, call->tool_length, NULL);
    if (name == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->tools, name);
    Py_DECREF(name);
    if (entry == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (call->tool_length <= TOOL_NAME_CACHE_BYTES) {
        Py_INCREF(entry);
        Py_XSETREF(self->cached_entry, entry);
        memcpy(self->cached_name, call->tool, call->tool_length);
        self->cached_length = call->tool_length;
    }
    return entry;
}

/* The call's keyword arguments when they are a plain msgpack map with str keys that the tool's
 * signature accepts; NULL (no error set) when Python must take the call. */
static PyObject *plain_arguments(LaneLoop *self, const CallFrame *call, PyObject *bind) {
    PyObject *data = PyBytes_FromStringAndSize((const char *)call->args, call->args_length);
    if (data == NULL) goto refused;
    PyObject *arguments = PyObject_CallOneArg(self->unpack, data);
    Py_DECREF(data);
    if (arguments == NULL) goto refused;
    if (!PyDict_CheckExact(arguments)) goto refused_with;
    PyObject *key, *value;
    Py_ssize_t position = 0;
    while (PyDict_Next(arguments, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) goto refused_with;
    }
    PyObject *bound = PyObject_CallOneArg(bind, arguments);
    if (bound == NULL) goto refused_with;
    Py_DECREF(bound);
    return arguments;
refused_with:
    Py_DECREF(arguments);
refused:
    PyErr_Clear();
    return NULL;
}

/* The call's (correlation id, traceparent), as log_records.bind_call binds them; NULL (no error
 * set) when a text field is not UTF-8, which Python reports as a protocol error. */
static PyObject *log_ids(const CallFrame *call) {
    if (call->session_length > 0) {
        // The lean path does not use the session, but a frame Python refuses is refused here too.
        PyObject *session =
            PyUnicode_DecodeUTF8((const char *)call->session, call->session_length, NULL);
        if (session == NULL) {
            PyErr_Clear();
            return NULL;
        }
        Py_DECREF(session);
    }
    PyObject *ids = Py_BuildValue("(s#s#)", (const char *)call->correlation,
                                  (Py_ssize_t)call->correlation_length,
                                  (const char *)call->traceparent,
                                  (Py_ssize_t)call->traceparent_length);
    if (ids == NULL) PyErr_Clear();
    return ids;
}

/* Undoes the binding of the call's log ids (log_records.unbind_call); never fails. */
static void unbind_log_ids(LaneLoop *self, PyObject *token) {
    if (token == NULL) return;
    if (PyContextVar_Reset(self->call_var, token) != 0) {
        PyErr_Clear();
        PyObject *cleared = PyContextVar_Set(self->call_var, Py_None);
        if (cleared == NULL) PyErr_Clear();
        Py_XDECREF(cleared);
    }
    Py_DECREF(token);
}

/* The raised exception, normalized and carrying its traceback (for the error payload). */
static PyObject *take_exception(void) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (value == NULL) {
        Py_INCREF(Py_None);
        value = Py_None;
    }
    return value;
}

/* Sends an error frame for `exception` (lane_lean.py's); 0, or -1 with an exception set. */
static int send_error(LaneLoop *self, PyObject *request_id, PyObject *exception) {
    PyObject *sent = PyObject_CallFunctionObjArgs(self->send_error, request_id, exception, NULL);
    Py_DECREF(exception);
    if (sent == NULL) return -1;
    Py_DECREF(sent);
    return 0;
}

static long writer_word(PyObject *writer, PyObject *name, int *failed) {
    PyObject *value = PyObject_GetAttr(writer, name);
    if (value == NULL) {
        *failed = 1;
        return 0;
    }
    unsigned long word = PyLong_AsUnsignedLong(value);
    Py_DECREF(value);
    if (word == (unsigned long)-1 && PyErr_Occurred()) *failed = 1;
    return (long)(word & 0xFFFFFFFFUL);
}

/* Writes the result frame straight into the next response slot and publishes it, under the
 * writer's lock; 1 done, 0 not possible here (full ring, spills to close, too big: the writer's
 * `send_result` takes it), -1 with an exception set. */
static int publish_in_place(LaneLoop *self, uint8_t *base, const CallFrame *call,
                            const char *data, Py_ssize_t data_length, const double timing[3]) {
    uint64_t length = (uint64_t)RESULT_HEADER_BYTES + call->id_length + (uint64_t)data_length;
    if (length > self->slot_bytes - SLOT_HEADER_BYTES) return 0;
    PyObject *locked = PyObject_CallMethodNoArgs(self->writer_lock, str_acquire);
    if (locked == NULL) return -1;
    Py_DECREF(locked);
    int failed = 0, done = 0;
    uint32_t head = (uint32_t)writer_word(self->writer, str_head, &failed);
    uint32_t tail = (uint32_t)writer_word(self->writer, str_tail, &failed);
    int spills = failed ? 0 : 1;
    if (!failed) {
        PyObject *waiting = PyObject_GetAttr(self->writer, str_spills);
        spills = waiting == NULL ? -1 : PyObject_IsTrue(waiting);
        Py_XDECREF(waiting);
        if (spills < 0) failed = 1;
    }
    if (!failed && !spills && head - tail >= self->slot_count) {
        // The tail last read is a lower bound: look again only when it says the ring is full.
        tail = __atomic_load_n(word_at(base, OFF_RESP_TAIL), __ATOMIC_SEQ_CST);
        PyObject *value = PyLong_FromUnsignedLong(tail);
        if (value == NULL || PyObject_SetAttr(self->writer, str_tail, value) != 0) failed = 1;
        Py_XDECREF(value);
    }
    uint32_t was_parked = 0;
    if (!failed && !spills && head - tail < self->slot_count) {
        uint8_t *slot = base + HEADER_BYTES +
                        (size_t)(self->slot_count + (head & (self->slot_count - 1))) *
                            self->slot_bytes;
        uint8_t *frame = slot + SLOT_HEADER_BYTES;
        memcpy(frame + RESULT_HEADER_BYTES, call->id, call->id_length);
        memcpy(frame + RESULT_HEADER_BYTES + call->id_length, data, (size_t)data_length);
        frame[0] = RESULT_MARKER;
        frame[1] = call->encoding;
        memcpy(frame + 2, &call->id_length, 2);
        store_u32(frame + 4, (uint32_t)data_length);
        memcpy(frame + 8, timing, 24);
        store_u32(slot, head);
        store_u32(slot + 4, self->epoch);
        store_u32(slot + 8, (uint32_t)length);
        store_u32(slot + 12, 0);
        head += 1;
        PyObject *value = PyLong_FromUnsignedLong(head);
        if (value == NULL || PyObject_SetAttr(self->writer, str_head, value) != 0) {
            failed = 1;
        } else {
            __atomic_store_n(word_at(base, OFF_RESP_HEAD), head, __ATOMIC_SEQ_CST);
            was_parked = __atomic_exchange_n(word_at(base, OFF_HOST_PARKED), 0, __ATOMIC_SEQ_CST);
            done = 1;
        }
        Py_XDECREF(value);
    }
    PyObject *released = PyObject_CallMethodNoArgs(self->writer_lock, str_release);
    if (released == NULL) return -1;
    Py_DECREF(released);
    if (failed) return -1;
    if (was_parked) {
        // The host parked: wake a futex waiter (as the native publish does) and ring the
        // doorbell. A host that is gone cannot be rung; its death stops this worker anyway.
        syscall(SYS_futex, word_at(base, OFF_RESP_HEAD), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        ssize_t written = write(self->doorbell_fd, "\n", 1);
        (void)written;
    }
    return done;
}

/* Encodes the result and publishes its frame; 0, or -1 with an exception set. */
static int reply(LaneLoop *self, uint8_t *base, const CallFrame *call, PyObject *request_id,
                 PyObject *result, int64_t started_ns, int64_t decoded_ns, int64_t executed_ns) {
    PyObject *data;
    if (result == Py_None) {
        Py_INCREF(self->nil);
        data = self->nil;
    } else {
        data = PyObject_CallOneArg(self->pack, result);
        if (data == NULL) {
            // Not plain (tensors, tables, numpy scalars) or not encodable: the full encoder
            // decides, and what it raises is the call's error.
            PyErr_Clear();
            data = PyObject_CallFunctionObjArgs(self->encode_full, request_id, result, NULL);
            if (data == NULL) return send_error(self, request_id, take_exception());
        }
    }
    if (!PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "the lane's result encoder returned a non-bytes value");
        return -1;
    }
    double timing[3] = {(double)(decoded_ns - started_ns), (double)(executed_ns - decoded_ns),
                        (double)(monotonic_ns() - executed_ns)};
    int done = publish_in_place(self, base, call, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                                timing);
    if (done == 0) {
        PyObject *sent = PyObject_CallMethod(self->writer, "send_result", "OOiLLL", request_id,
                                             data, (int)call->encoding, (long long)timing[0],
                                             (long long)timing[1], (long long)timing[2]);
        done = sent == NULL ? -1 : 1;
        Py_XDECREF(sent);
    }
    Py_DECREF(data);
    return done < 0 ? -1 : 0;
}

/* Runs the call of request frame `index` when the lean loop can: 1 done, 0 left to Python
 * (nothing happened), -1 with an exception set. */
static int run_call(LaneLoop *self, uint8_t *base, uint32_t index) {
    CallFrame call;
    if (call_slot(self, base, index, &call) == NULL) return 0;
    if ((call.flags & STREAM_FLAG) || call.encoding != self->msgpack_encoding) return 0;
    PyObject *entry = lean_tool(self, &call);
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3) return 0;
    // Deadlines are written so that any odd value (negative, NaN) is left to Python too.
    double now_ms = unix_ms();
    if (call.deadline_ms != 0 && !(call.deadline_ms > now_ms)) return 0;
    if (call.queue_deadline_ms != 0 &&
        !(call.queue_deadline_ms - now_ms >= QUEUE_DEADLINE_MARGIN_MS)) {
        return 0;
    }
    int64_t started_ns = monotonic_ns();
    PyObject *arguments = NULL;
    int no_arguments = call.args_length == 0 || (call.args_length == 1 && call.args[0] == 0x80);
    if (no_arguments) {
        if (PyTuple_GET_ITEM(entry, 2) != Py_True) return 0;
    } else {
        arguments = plain_arguments(self, &call, PyTuple_GET_ITEM(entry, 1));
        if (arguments == NULL) return 0;
    }
    PyObject *request_id = PyUnicode_DecodeUTF8((const char *)call.id, call.id_length, NULL);
    PyObject *ids = request_id == NULL ? NULL : log_ids(&call);
    // A call cancelled before it was read never runs: Python drops it (and forgets the id).
    int cancelled = ids == NULL || PyDict_GET_SIZE(self->cancelled) == 0
                        ? 0
                        : PyDict_Contains(self->cancelled, request_id);
    if (ids == NULL || cancelled != 0) {
        PyErr_Clear();
        Py_XDECREF(ids);
        Py_XDECREF(request_id);
        Py_XDECREF(arguments);
        return 0;
    }
    int64_t decoded_ns = monotonic_ns();
    // Counted started before it runs: the host re-queues the calls a dead worker never started.
    __atomic_store_n(word_at(base, OFF_REQ_STARTED), index + 1, __ATOMIC_SEQ_CST);
    int status = -1;
    PyObject *token = NULL, *result = NULL, *exception = NULL;
    if (PyObject_SetAttr(self->servicer, str_lane_call, request_id) != 0) goto done;
    token = PyContextVar_Set(self->call_var, ids); // log_records.bind_call
    if (token == NULL) goto done;
    PyObject *function = PyTuple_GET_ITEM(entry, 0);
    result = arguments == NULL ? PyObject_CallNoArgs(function)
                               : PyObject_Call(function, self->empty_tuple, arguments);
    int64_t executed_ns = monotonic_ns();
    if (result == NULL) exception = take_exception();
    unbind_log_ids(self, token);
    token = NULL;
    Py_CLEAR(arguments); // Argument values must not outlive the call while encoding.
    if (PyObject_SetAttr(self->servicer, str_lane_call, Py_None) != 0) goto done;
    if (exception != NULL) {
        status = send_error(self, request_id, exception);
        exception = NULL;
    } else {
        status = reply(self, base, &call, request_id, result, started_ns, decoded_ns, executed_ns);
    }
done:
    Py_DECREF(ids);
    Py_XDECREF(exception);
    Py_XDECREF(result);
    Py_XDECREF(arguments);
    unbind_log_ids(self, token);
    Py_DECREF(request_id);
    return status < 0 ? -1 : 1;
}

/* Whether every frame in [consumed, head) is a call frame that is not a stream: a batch with
 * anything else goes to Python whole, so control frames are handled before its calls start. */
static int calls_only(const LaneLoop *self, uint8_t *base, uint32_t consumed, uint32_t head) {
    CallFrame call;
    for (uint32_t index = consumed; index != head; index++) {
        if (call_slot(self, base, index, &call) == NULL || (call.flags & STREAM_FLAG)) return 0;
    }
    return 1;
}

PyDoc_STRVAR(serve_doc,
             "serve(consumed, head) -> (consumed, served)\n\n"
             "Runs the lean calls at the start of request frames [consumed, head), publishes "
             "the request tail past them, and returns the first frame left to Python and how "
             "many calls ran.");

static PyObject *LaneLoop_serve(LaneLoop *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "serve(consumed, head) takes two arguments");
        return NULL;
    }
    unsigned long consumed_arg = PyLong_AsUnsignedLong(args[0]);
    unsigned long head_arg = PyLong_AsUnsignedLong(args[1]);
    if (PyErr_Occurred()) return NULL;
    uint32_t consumed = (uint32_t)consumed_arg, head = (uint32_t)head_arg;
    Py_buffer buffer;
    if (PyObject_GetBuffer(self->view, &buffer, PyBUF_WRITABLE) != 0) return NULL;
    uint8_t *base = buffer.buf;
    uint64_t needed = HEADER_BYTES + 2ULL * self->slot_bytes * self->slot_count;
    unsigned long served = 0;
    int failed = 0;
    if ((uint64_t)buffer.len < needed) {
        PyErr_Format(PyExc_ValueError, "the lane's view holds %zd bytes, its layout needs %llu",
                     buffer.len, (unsigned long long)needed);
        failed = 1;
    } else if (head - consumed <= self->slot_count && calls_only(self, base, consumed, head)) {
        uint32_t start = consumed;
        while (consumed != head) {
            int status = run_call(self, base, consumed);
            if (status == 0) break;
            if (status < 0) {
                failed = 1;
                break;
            }
            consumed += 1;
            served += 1;
            self->calls += 1;
        }
        if (consumed != start) {
            __atomic_store_n(word_at(base, OFF_REQ_TAIL), consumed, __ATOMIC_SEQ_CST);
        }
    }
    PyBuffer_Release(&buffer);
    if (failed) return NULL;
    return Py_BuildValue("(kk)", (unsigned long)consumed, served);
}

static int LaneLoop_init(LaneLoop *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"view",   "epoch",  "slot_bytes", "slot_count", "msgpack_encoding",
                               "doorbell_fd", "tools", "servicer", "call_var", "writer",
                               "unpack", "pack", "encode_full", "send_error", "cancelled",
                               NULL};
    PyObject *view, *tools, *servicer, *call_var, *writer, *unpack, *pack, *encode_full,
        *send_error_callback, *cancelled;
    unsigned long epoch, slot_bytes, slot_count;
    long msgpack_encoding;
    int doorbell_fd;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OkkkliO!OO!OOOOOO!", keywords, &view,
                                     &epoch, &slot_bytes, &slot_count, &msgpack_encoding,
                                     &doorbell_fd, &PyDict_Type, &tools, &servicer,
                                     &PyContextVar_Type, &call_var, &writer, &unpack, &pack,
                                     &encode_full, &send_error_callback, &PyDict_Type,
                                     &cancelled)) {
        return -1;
    }
    if (slot_count == 0 || slot_count > SLOT_COUNT_MAX || (slot_count & (slot_count - 1)) != 0 ||
        slot_bytes <= SLOT_HEADER_BYTES + CALL_HEADER_BYTES || slot_bytes % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "a lane of %lu slots of %lu bytes is not a valid layout",
                     slot_count, slot_bytes);
        return -1;
    }
    PyObject *lock = PyObject_GetAttrString(writer, "_lock");
    if (lock == NULL) return -1;
    self->epoch = (uint32_t)epoch;
    self->slot_bytes = (uint32_t)slot_bytes;
    self->slot_count = (uint32_t)slot_count;
    self->msgpack_encoding = msgpack_encoding;
    self->doorbell_fd = doorbell_fd;
    Py_XSETREF(self->writer_lock, lock);
    Py_XSETREF(self->view, Py_NewRef(view));
    Py_XSETREF(self->tools, Py_NewRef(tools));
    Py_XSETREF(self->servicer, Py_NewRef(servicer));
    Py_XSETREF(self->call_var, Py_NewRef(call_var));
    Py_XSETREF(self->writer, Py_NewRef(writer));
    Py_XSETREF(self->unpack, Py_NewRef(unpack));
    Py_XSETREF(self->pack, Py_NewRef(pack));
    Py_XSETREF(self->encode_full, Py_NewRef(encode_full));
    Py_XSETREF(self->send_error, Py_NewRef(send_error_callback));
    Py_XSETREF(self->cancelled, Py_NewRef(cancelled));
    Py_XSETREF(self->nil, PyBytes_FromStringAndSize("\xc0", 1));
    Py_XSETREF(self->empty_tuple, PyTuple_New(0));
    Py_CLEAR(self->cached_entry);
    self->cached_length = 0;
    return self->nil == NULL || self->empty_tuple == NULL ? -1 : 0;
}

static int LaneLoop_traverse(LaneLoop *self, visitproc visit, void *arg) {
    Py_VISIT(self->view);
    Py_VISIT(self->tools);
    Py_VISIT(self->servicer);
    Py_VISIT(self->call_var);
    Py_VISIT(self->writer);
    Py_VISIT(self->writer_lock);
    Py_VISIT(self->unpack);
    Py_VISIT(self->pack);
    Py_VISIT(self->encode_full);
    Py_VISIT(self->send_error);
    Py_VISIT(self->cancelled);
    Py_VISIT(self->cached_entry);
    return 0;
}

static int LaneLoop_clear(LaneLoop *self) {
    Py_CLEAR(self->view);
    Py_CLEAR(self->tools);
    Py_CLEAR(self->servicer);
    Py_CLEAR(self->call_var);
    Py_CLEAR(self->writer);
    Py_CLEAR(self->writer_lock);
    Py_CLEAR(self->unpack);
    Py_CLEAR(self->pack);
    Py_CLEAR(self->encode_full);
    Py_CLEAR(self->send_error);
    Py_CLEAR(self->cancelled);
    Py_CLEAR(self->nil);
    Py_CLEAR(self->empty_tuple);
    Py_CLEAR(self->cached_entry);
    return 0;
}

static void LaneLoop_dealloc(LaneLoop *self) {
    PyObject_GC_UnTrack(self);
    LaneLoop_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef LaneLoop_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))LaneLoop_serve, METH_FASTCALL, serve_doc},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef LaneLoop_members[] = {
    {"calls", T_ULONGLONG, offsetof(LaneLoop, calls), READONLY, "Calls this loop ran."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LaneLoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snakepit_bridge._lane_native.LaneLoop",
    .tp_doc = PyDoc_STR("The fast lane's lean loop over one lane (see lane_native.py)."),
    .tp_basicsize = sizeof(LaneLoop),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LaneLoop_init,
    .tp_dealloc = (destructor)LaneLoop_dealloc,
    .tp_traverse = (traverseproc)LaneLoop_traverse,
    .tp_clear = (inquiry)LaneLoop_clear,
    .tp_methods = LaneLoop_methods,
    .tp_members = LaneLoop_members,
};

static struct PyModuleDef lane_native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "snakepit_bridge._lane_native",
    .m_doc = "The fast lane's lean loop in C (see lane_native.py).",
    .m_size = -1,
};

static int intern(PyObject **target, const char *text) {
    *target = PyUnicode_InternFromString(text);
    return *target == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__lane_native(void) {
    if (intern(&str_lane_call, "lane_call") || intern(&str_acquire, "acquire") ||
        intern(&str_release, "release") || intern(&str_head, "_head") ||
        intern(&str_tail, "_tail") || intern(&str_spills, "_spills")) {
        return NULL;
    }
    if (PyType_Ready(&LaneLoopType) < 0) return NULL;
    PyObject *module = PyModule_Create(&lane_native_module);
    if (module == NULL) return NULL;
    PyObject *layout = Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d}", "HEADER_BYTES", HEADER_BYTES,
        "SLOT_HEADER_BYTES", SLOT_HEADER_BYTES, "OFF_REQ_TAIL", OFF_REQ_TAIL, "OFF_REQ_STARTED",
        OFF_REQ_STARTED, "OFF_RESP_HEAD", OFF_RESP_HEAD, "OFF_HOST_PARKED", OFF_HOST_PARKED,
        "OFF_RESP_TAIL", OFF_RESP_TAIL, "CALL_MARKER", CALL_MARKER, "RESULT_MARKER",
        RESULT_MARKER, "CALL_HEADER_BYTES", CALL_HEADER_BYTES, "RESULT_HEADER_BYTES",
        RESULT_HEADER_BYTES, "QUEUE_DEADLINE_MARGIN_MS", QUEUE_DEADLINE_MARGIN_MS);
    Py_INCREF(&LaneLoopType);
    if (layout == NULL || PyModule_AddObject(module, "LAYOUT", layout) != 0 ||
        PyModule_AddObject(module, "LaneLoop", (PyObject *)&LaneLoopType) != 0) {
        Py_XDECREF(layout);
        Py_DECREF(&LaneLoopType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

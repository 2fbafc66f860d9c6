/* tracer._handoffs: the per-hand-off hot paths of the generator and greenlet models, in C.
 *
 * Each hook mirrors the inline fast path of its Python twin in tracer/models/ (the same
 * per-lane tables, read in place) and hands anything unusual -- a new lane, a different call
 * site, throw, close, an exception -- to that Python twin, so both record the same events.
 *
 * GeneratorHooks.on_resume / on_yield are sys.monitoring callbacks (3.12+). On 3.11,
 * GeneratorHooks.install_eval follows generator frames from the frame evaluation hook (PEP 523)
 * and plays them to a C trace function that replaces the Python sys.settrace pair;
 * install_trace installs that trace function itself, where another tool holds the hook.
 * SwitchTrace is a greenlet.settrace callback.
 *
 * Events go straight into the recorder's C columns through the capsule
 * tracer._speedups._recorder_api; a value handed over becomes one of the recorder's value rows.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030C0000
/* 3.11 has no PyFrame_GetVar: a driver's fast locals are read from its interpreter frame. */
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_code.h"
#include <opcode.h>
#include <pthread.h>
#endif

/* generators and `async def` coroutines (a program may drive those by hand, with send()) */
#define CO_FOLLOWED_FLAGS (0x20 | 0x80)
#define CODE_BLOCKED 4
#define REPR_LIMIT 40

/* Must match LoopscopeRecorderAPI version 2 in tracer/_speedups.c. */
typedef struct {
    int version;
    PyTypeObject *recorder_type;
    int (*append)(PyObject *core, int32_t lane, int8_t code, int32_t other, int32_t detail,
                  int32_t source);
    int (*handoff)(PyObject *core, int32_t origin, int32_t target, int32_t switch_detail,
                   int8_t origin_state, int32_t origin_detail, int32_t target_source);
    void (*set_current)(PyObject *core, int32_t lane);
    int32_t (*get_current)(PyObject *core);
    int (*value_row)(PyObject *core, int32_t base, PyObject *text, int32_t *out);
    int (*value_row_utf8)(PyObject *core, int32_t base, const char *text, Py_ssize_t size,
                          int32_t *out);
} LoopscopeRecorderAPI;

static LoopscopeRecorderAPI *recorder_api;

static PyObject *str_yield;
static PyObject *str_switch;
static PyObject *str_throw;
static PyObject *str_call;
static PyObject *str_return;
static PyObject *str_exception;
static PyObject *str_dead;
static PyObject *repr_limit;

/* Value reads (tracer.models.generator_model.ValueRead kinds) */
#define READ_CONSTANT 0
#define READ_LOCAL 1
#define READ_CELL 2

/* -- shared helpers ------------------------------------------------------------------------ */

static int
as_int32(PyObject *value, int32_t *out)
{
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) return -1;
    if (number < INT32_MIN || number > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "lane or table index out of the int32 range");
        return -1;
    }
    *out = (int32_t)number;
    return 0;
}

static int
check_recorder(PyObject *recorder)
{
    if (!PyObject_TypeCheck(recorder, recorder_api->recorder_type)) {
        PyErr_SetString(PyExc_TypeError, "the recorder is not a tracer._speedups.RecorderCore");
        return -1;
    }
    return 0;
}

static inline Py_ssize_t
lane_in(PyObject *lanes, PyObject *key)
{
    PyObject *lane = PyDict_GetItemWithError(lanes, key);
    if (lane == NULL) return PyErr_Occurred() ? -2 : -1;
    return PyLong_AsSsize_t(lane);
}

/* -- GeneratorHooks ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *recorder;        /* a RecorderCore */
    int32_t yield_detail;      /* tracer.yield_detail: the base of a yielded value's row */
    PyThreadState *thread;     /* the thread followed (sys.monitoring reports them all) */
    PyObject *lanes;           /* tracer.lanes: frame -> lane */
    PyObject *sites;           /* tracer.sites, tracer.sent_values, ...: lists by lane */
    PyObject *sent_values;
    PyObject *yielded_values;
    PyObject *resume_sources;
    PyObject *resume_source;   /* tracer.resume_source */
    PyObject *short_repr;
    PyObject *missing;         /* the sentinel for "no value to read" */
    PyObject *resume_fallback; /* 3.12+: the Python PY_RESUME / PY_YIELD callbacks */
    PyObject *yield_fallback;
    PyObject *call_fallback;   /* 3.11: the Python global and local trace functions */
    PyObject *local_fallback;
    PyObject *errors;          /* 3.11: the Python trace's frame -> pending exception */
} GeneratorHooks;

static int
is_stable_repr(PyObject *value)
{
    return PyUnicode_CheckExact(value) || PyLong_CheckExact(value) || PyFloat_CheckExact(value)
        || PyBool_Check(value) || PyBytes_CheckExact(value) || PyComplex_CheckExact(value)
        || value == Py_None;
}

/* Writes `number` in decimal, as repr() does, ending just before `end`; returns its start.
 * (snprintf costs more than the rest of a hand-off.) */
static char *
decimal(long long number, char *end)
{
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number
                                              : (unsigned long long)number;
    char *at = end;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0) *--at = '-';
    return at;
}

/* The detail of a hand-off of `value` by `via` (whose plain detail is `base`): a new value
 * row, remembered in cache[lane] for values whose repr cannot change (as
 * GeneratorTracer.value_detail). `check_via`: a cached value counts only if it was handed
 * over the same way. */
static int
value_detail(GeneratorHooks *self, PyObject *value, PyObject *via, int32_t base,
             PyObject *cache, Py_ssize_t lane, int check_via, int32_t *out)
{
    PyObject *cached = PyList_GET_ITEM(cache, lane);
    if (cached != Py_None && PyTuple_GET_ITEM(cached, 0) == value
        && (!check_via || PyTuple_GET_ITEM(cached, 1) == via)) {
        return as_int32(PyTuple_GET_ITEM(cached, 2), out);
    }
    int stable = is_stable_repr(value);
    int failed;
    int overflow = 0;
    long long number = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow)
                                                : 0;
    if (PyLong_CheckExact(value) && !overflow && !(number == -1 && PyErr_Occurred())) {
        /* the common case, an int: its repr written straight into the row, no str made */
        char digits[24];
        char *start = decimal(number, digits + sizeof digits);
        failed = recorder_api->value_row_utf8(self->recorder, base, start,
                                              digits + sizeof digits - start, out);
    }
    else {
        if (PyErr_Occurred()) return -1;
        PyObject *text = stable ? PyObject_Repr(value) : NULL;
        if (text != NULL && PyUnicode_GET_LENGTH(text) > REPR_LIMIT) Py_CLEAR(text);
        if (text == NULL) {
            PyErr_Clear();  /* an int too long to print: short_repr says so */
            text = PyObject_CallFunctionObjArgs(self->short_repr, value, repr_limit, NULL);
            if (text == NULL) return -1;
        }
        failed = recorder_api->value_row(self->recorder, base, text, out);
        Py_DECREF(text);
    }
    if (failed) return -1;
    if (stable) {
        PyObject *index = PyLong_FromLong(*out);
        if (index == NULL) return -1;
        cached = PyList_GET_ITEM(cache, lane);  /* short_repr ran Python code: look again */
#ifndef Py_GIL_DISABLED
        if (cached != Py_None && Py_REFCNT(cached) == 1) {
            /* Only this table holds the old entry: refill it instead of making a new one.
               Safe because entries only ever hold a stable value (an atomic object), a via
               str and an int: dropping them runs no code, and a tuple caches no hash. */
            PyObject *old_value = PyTuple_GET_ITEM(cached, 0);
            PyObject *old_via = PyTuple_GET_ITEM(cached, 1);
            PyObject *old_index = PyTuple_GET_ITEM(cached, 2);
            PyTuple_SET_ITEM(cached, 0, Py_NewRef(value));
            PyTuple_SET_ITEM(cached, 1, Py_NewRef(via));
            PyTuple_SET_ITEM(cached, 2, index);
            Py_DECREF(old_value);
            Py_DECREF(old_via);
            Py_DECREF(old_index);
        }
        else
#endif
        {
            PyObject *entry = PyTuple_Pack(3, value, via, index);
            Py_DECREF(index);
            if (entry == NULL) return -1;
            PyList_SetItem(cache, lane, entry);  /* steals entry, drops the old one */
        }
    }
    return 0;
}

/* The value a site's ValueRead reads from the driver frame: a new reference, the `missing`
 * sentinel (new reference) when it is unbound, NULL on error. */
static PyObject *
read_value(GeneratorHooks *self, PyObject *read, PyFrameObject *driver)
{
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(read, 0));
    PyObject *operand = PyTuple_GET_ITEM(read, 1);
    if (kind == READ_CONSTANT) return Py_NewRef(operand);
    if (kind == READ_LOCAL || kind == READ_CELL) {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *value = PyFrame_GetVar(driver, operand);
        if (value == NULL && PyErr_ExceptionMatches(PyExc_NameError)) {
            PyErr_Clear();
            return Py_NewRef(self->missing);
        }
        return value;
#else
        Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(read, 2));
        _PyInterpreterFrame *frame = driver->f_frame;
        if (slot < 0 || slot >= frame->f_code->co_nlocalsplus) {
            return PyObject_CallOneArg(read, (PyObject *)driver);
        }
        PyObject *value = frame->localsplus[slot];
        if (value != NULL && kind == READ_CELL) {
            if (!PyCell_Check(value)) return PyObject_CallOneArg(read, (PyObject *)driver);
            value = PyCell_GET(value);
        }
        return Py_NewRef(value == NULL ? self->missing : value);
#endif
    }
    return PyObject_CallOneArg(read, (PyObject *)driver);  /* globals and names: in Python */
}

/* 1: recorded the resume of `lane` (frame `frame`, resumed at `offset`) from its usual call
 * site; 0: not the usual site, the Python path must handle it; -1: error. */
static int
fast_resume(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset)
{
    PyFrameObject *driver = PyFrame_GetBack(frame);
    PyObject *site = PyList_GET_ITEM(self->sites, lane);
    if (driver == NULL || (PyObject *)driver != PyTuple_GET_ITEM(site, 0)
        || PyFrame_GetLasti(driver) != PyLong_AsLong(PyTuple_GET_ITEM(site, 1))) {
        Py_XDECREF(driver);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(site);  /* the value's repr may run code that replaces it */
    int32_t detail;
    int failed = 0;
    PyObject *read = PyTuple_GET_ITEM(site, 3);
    if (read == Py_None) {
        failed = as_int32(PyTuple_GET_ITEM(site, 4), &detail);
    }
    else {
        PyObject *value = read_value(self, read, driver);
        if (value == NULL) failed = -1;
        else if (value == self->missing) failed = as_int32(PyTuple_GET_ITEM(site, 4), &detail);
        else {
            int32_t base;
            failed = as_int32(PyTuple_GET_ITEM(site, 4), &base);
            if (!failed) {
                failed = value_detail(self, value, PyTuple_GET_ITEM(site, 5), base,
                                      self->sent_values, lane, 1, &detail);
            }
        }
        Py_XDECREF(value);
    }
    Py_DECREF(driver);
    int32_t source, driver_lane, driver_blocked;
    if (!failed) {
        PyObject *sources = PyList_GET_ITEM(self->resume_sources, lane);
        PyObject *known = PyDict_GetItemWithError(sources, offset);
        if (known != NULL) failed = as_int32(known, &source);
        else if (PyErr_Occurred()) failed = -1;
        else {
            PyObject *lane_number = PyLong_FromSsize_t(lane);
            PyObject *found = lane_number == NULL ? NULL
                : PyObject_CallFunctionObjArgs(self->resume_source, lane_number, frame, NULL);
            Py_XDECREF(lane_number);
            failed = found == NULL ? -1 : as_int32(found, &source);
            Py_XDECREF(found);
        }
    }
    if (!failed) {
        failed = as_int32(PyTuple_GET_ITEM(site, 2), &driver_lane) < 0
            || as_int32(PyTuple_GET_ITEM(site, 6), &driver_blocked) < 0;
    }
    Py_DECREF(site);
    if (failed) return -1;
    if (recorder_api->handoff(self->recorder, driver_lane, (int32_t)lane, detail, CODE_BLOCKED,
                              driver_blocked, source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, (int32_t)lane);
    return 1;
}

/* Records `lane` yielding `value` back to its driver. */
static int
fast_yield(GeneratorHooks *self, Py_ssize_t lane, PyObject *value)
{
    int32_t detail, driver, driver_blocked, driver_source;
    if (value_detail(self, value, str_yield, self->yield_detail, self->yielded_values, lane, 0,
                     &detail) < 0) {
        return -1;
    }
    PyObject *site = PyList_GET_ITEM(self->sites, lane);
    if (as_int32(PyTuple_GET_ITEM(site, 2), &driver) < 0
        || as_int32(PyTuple_GET_ITEM(site, 7), &driver_blocked) < 0
        || as_int32(PyTuple_GET_ITEM(site, 8), &driver_source) < 0) {
        return -1;
    }
    if (recorder_api->handoff(self->recorder, (int32_t)lane, driver, detail, CODE_BLOCKED,
                              driver_blocked, driver_source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, driver);
    return 0;
}

/* on_resume(code, offset): the PY_RESUME callback */
static PyObject *
hooks_on_resume(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "on_resume(code, offset)");
        return NULL;
    }
    if (PyThreadState_Get() != self->thread) Py_RETURN_NONE;
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame != NULL) {
        Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
        if (lane == -2) return NULL;
        if (lane >= 0) {
            int done = fast_resume(self, frame, lane, args[1]);
            if (done < 0) return NULL;
            if (done) Py_RETURN_NONE;
        }
    }
    return PyObject_Vectorcall(self->resume_fallback, args, nargs, NULL);
}

/* on_yield(code, offset, value): the PY_YIELD callback */
static PyObject *
hooks_on_yield(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "on_yield(code, offset, value)");
        return NULL;
    }
    if (PyThreadState_Get() != self->thread) Py_RETURN_NONE;
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame != NULL) {
        Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
        if (lane == -2) return NULL;
        if (lane >= 0) {
            if (fast_yield(self, lane, args[2]) < 0) return NULL;
            Py_RETURN_NONE;
        }
    }
    return PyObject_Vectorcall(self->yield_fallback, args, nargs, NULL);
}

#if PY_VERSION_HEX < 0x030C0000

/* errors.pop(frame, None) */
static int
PyDict_Pop_compat(PyObject *dict, PyObject *key)
{
    if (PyDict_DelItem(dict, key) == 0) return 0;
    if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
    PyErr_Clear();
    return 0;
}

/* The 'call' of a generator frame. 1: followed -- its resume recorded, or the Python trace
 * chose to follow it (then *local is the local trace function it returned, a new reference);
 * 0: not followed; -1: error. */
static int
play_call(GeneratorHooks *self, PyFrameObject *frame, PyObject **local)
{
    *local = NULL;
    Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
    if (lane == -2) return -1;
    if (lane >= 0) {
        if (PyDict_GET_SIZE(self->errors)
            && PyDict_Pop_compat(self->errors, (PyObject *)frame) < 0) {
            return -1;
        }
        PyObject *offset = PyLong_FromLong(PyFrame_GetLasti(frame));
        if (offset == NULL) return -1;
        int done = fast_resume(self, frame, lane, offset);
        Py_DECREF(offset);
        if (done) return done;
    }
    else if (!(frame->f_frame->f_code->co_flags & CO_FOLLOWED_FLAGS)) {
        return 0;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(self->call_fallback, (PyObject *)frame,
                                                    str_call, Py_None, NULL);
    if (result == NULL) return -1;
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    *local = result;
    return 1;
}

/* The 'return' (`arg` the value, NULL when an exception leaves) or 'exception' event of a
 * followed frame. */
static int
play_leave(GeneratorHooks *self, PyFrameObject *frame, int what, PyObject *arg)
{
    if (what == PyTrace_RETURN && arg != NULL && PyDict_GET_SIZE(self->errors) == 0) {
        /* the unspecialised instruction the frame is leaving at */
        PyObject *raw = PyCode_GetCode(frame->f_frame->f_code);
        if (raw == NULL) return -1;
        int lasti = PyFrame_GetLasti(frame);
        int opcode = lasti >= 0 && lasti < PyBytes_GET_SIZE(raw)
            ? (unsigned char)PyBytes_AS_STRING(raw)[lasti] : -1;
        Py_DECREF(raw);
        if (opcode == YIELD_VALUE) {
            Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
            if (lane == -2) return -1;
            if (lane < 0) return 0;
            return fast_yield(self, lane, arg);
        }
    }
    PyObject *result = PyObject_CallFunctionObjArgs(
        self->local_fallback, (PyObject *)frame,
        what == PyTrace_RETURN ? str_return : str_exception, arg == NULL ? Py_None : arg, NULL);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* The 3.11 trace function: the 'call' of a generator resume, the 'return' of its yield.
 * f_trace marks the frames followed (it holds the local trace function); line events are
 * switched off everywhere, as nothing here uses them. */
static int
generator_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    GeneratorHooks *self = (GeneratorHooks *)obj;
    if (what == PyTrace_CALL) {
        frame->f_trace_lines = 0;
        PyObject *local;
        int followed = play_call(self, frame, &local);
        if (followed == 1 && (local != NULL || frame->f_trace == NULL)) {
            /* (a frame the evaluation hook followed before falling back here has no mark) */
            Py_XSETREF(frame->f_trace, local != NULL ? local : Py_NewRef(self->local_fallback));
        }
        return followed < 0 ? -1 : 0;
    }
    if (frame->f_trace == NULL || (what != PyTrace_RETURN && what != PyTrace_EXCEPTION)) {
        return 0;
    }
    return play_leave(self, frame, what, arg);
}

/* -- 3.11: the frame evaluation hook (PEP 523) ----------------------------------------------
 *
 * Any trace function puts 3.11 in its tracing mode, where every instruction of the program runs
 * unspecialised: a send() costs 4x before anything is recorded. So with the C hooks built,
 * 3.11 follows generator frames from the interpreter's frame evaluation hook instead. Around
 * each evaluation of a generator frame it plays the events sys.settrace would have delivered
 * (call before; return, or exception then return, after) to play_call / play_leave, as the
 * trace function does, so both record the same trace. Like sys.settrace it follows only the
 * thread that installed it, and nothing the hooks' own code runs (inside "tracing", so the
 * program's own trace and profile functions do not see it either); it leaves f_trace and line
 * events to the program.
 *
 * The price: with any evaluation hook, 3.11 no longer inlines Python-to-Python calls, so each
 * call uses C stack again (and costs about 1.5x). A program that recurses deeper than the C
 * stack allows would crash; so the hook watches each thread's stack, and when one runs low it
 * hands over to the trace function above for the rest of the run (which inlines again). */

static GeneratorHooks *eval_hooks;     /* the hooks whose generator_eval is installed */
static PyThreadState *eval_thread;     /* the thread they follow */
static int eval_busy;                  /* inside the hooks' own code: follow nothing */
static int eval_handed_over;           /* the stack ran low: the trace function took over */

#if defined(__linux__) && defined(__GLIBC__)
#define HAVE_STACK_BOUNDS 1
#else
#define HAVE_STACK_BOUNDS 0  /* no pthread_getattr_np: the trace function is used instead */
#endif

#define STACK_MARGIN (256 * 1024)
static __thread char *stack_floor;     /* below this the thread's C stack is running low */

static int
stack_is_low(void)
{
#if HAVE_STACK_BOUNDS
    char here;
    if (stack_floor == NULL) {
        pthread_attr_t attributes;
        void *lowest;
        size_t size;
        stack_floor = (char *)1;  /* unknown: never low */
        if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
            if (pthread_attr_getstack(&attributes, &lowest, &size) == 0) {
                size_t margin = size / 4 < STACK_MARGIN ? size / 4 : STACK_MARGIN;
                stack_floor = (char *)lowest + margin;
            }
            pthread_attr_destroy(&attributes);
        }
    }
    return &here < stack_floor;
#else
    return 0;
#endif
}

/* A pending call: the followed thread installs the trace function (another thread's stack ran
 * low, and a trace function can only be installed from its own thread). */
static int
trace_from_pending(void *unused)
{
    if (eval_hooks != NULL && eval_handed_over && PyThreadState_Get() == eval_thread) {
        PyEval_SetTrace(generator_trace, (PyObject *)eval_hooks);
    }
    return 0;
}

static void
hand_over_to_trace(PyThreadState *tstate)
{
    _PyInterpreterState_SetEvalFrameFunc(tstate->interp, _PyEval_EvalFrameDefault);
    eval_handed_over = 1;
    if (tstate == eval_thread) {
        PyEval_SetTrace(generator_trace, (PyObject *)eval_hooks);
    }
    else {
        /* pending calls run in the main thread, which is the one followed in a run's child */
        (void)Py_AddPendingCall(trace_from_pending, NULL);
    }
}

/* The frame object of a generator's frame (borrowed), made through gi_frame if need be;
 * NULL with no error set if there is none. */
static PyFrameObject *
generator_frame_object(_PyInterpreterFrame *iframe)
{
    if (iframe->frame_obj != NULL) return iframe->frame_obj;
    PyObject *generator = (PyObject *)_PyFrame_GetGenerator(iframe);
    const char *attribute = (iframe->f_code->co_flags & 0x80) ? "cr_frame" : "gi_frame";
    PyObject *frame = PyObject_GetAttrString(generator, attribute);
    if (frame == NULL) return NULL;
    Py_DECREF(frame);  /* the generator's frame keeps it */
    return iframe->frame_obj;
}

/* The opcode (unspecialised) at `instruction`; -1 outside the code, -2 on error. */
static int
opcode_at(PyCodeObject *code, _Py_CODEUNIT *instruction)
{
    PyObject *raw = PyCode_GetCode(code);
    if (raw == NULL) return -2;
    Py_ssize_t index = instruction - _PyCode_CODE(code);
    int opcode = index >= 0 && index * 2 < PyBytes_GET_SIZE(raw)
        ? (unsigned char)PyBytes_AS_STRING(raw)[index * 2] : -1;
    Py_DECREF(raw);
    return opcode;
}

/* Before the frame runs: its 'call' event, with the frame as sys.settrace shows it then
 * (f_back the driver, f_lasti the RESUME about to run, a specialised driver's call at its
 * CALL). 1: followed; 0: not; -1: error. */
static int
eval_resume(GeneratorHooks *self, PyThreadState *tstate, _PyInterpreterFrame *iframe,
            int throwflag, PyFrameObject **frame_out)
{
    iframe->previous = tstate->cframe->current_frame;  /* what the evaluation will set */
    PyFrameObject *frame = generator_frame_object(iframe);
    *frame_out = frame;
    if (frame == NULL) return PyErr_Occurred() ? -1 : 0;
    _Py_CODEUNIT *saved = iframe->prev_instr;
    if (!throwflag) {
        /* a resume runs the RESUME after its yield (after RETURN_GENERATOR, POP_TOP at the
           start); a throw raises at the yield itself, as the trace's call event shows */
        _Py_CODEUNIT *next = saved + 1;
        for (int i = 0; i < 3; i++, next++) {
            int opcode = opcode_at(iframe->f_code, next);
            if (opcode == -2) return -1;
            if (opcode == RESUME) {
                iframe->prev_instr = next;
                break;
            }
        }
    }
    /* A specialised call of a C function (send, next, throw, close) runs in its PRECALL and
       skips the CALL after it; the trace, on unspecialised code, sees the CALL. */
    _PyInterpreterFrame *driver = iframe->previous;
    _Py_CODEUNIT *driver_saved = driver != NULL ? driver->prev_instr : NULL;
    if (driver != NULL && !_PyFrame_IsIncomplete(driver)) {
        int opcode = opcode_at(driver->f_code, driver_saved);
        if (opcode == -2) {
            iframe->prev_instr = saved;
            return -1;
        }
        _Py_CODEUNIT *call = driver_saved + 1 + INLINE_CACHE_ENTRIES_PRECALL;
        if (opcode == PRECALL && opcode_at(driver->f_code, call) == CALL) {
            driver->prev_instr = call;
        }
    }
    PyObject *local;
    int followed = play_call(self, frame, &local);
    Py_XDECREF(local);
    iframe->prev_instr = saved;
    if (driver != NULL) driver->prev_instr = driver_saved;
    return followed;
}

static void replace_error(PyObject *type, PyObject *value, PyObject *traceback);

/* After the frame ran: a yield or return as the trace's 'return' event, or an exception
 * leaving as its 'exception' then 'return'. Returns `result`; or NULL, with the error that
 * recording raised (it replaces the program's exception, which becomes its __context__, as a
 * trace function's error would; the generator is finished then). */
static PyObject *
eval_left(GeneratorHooks *self, PyFrameObject *frame, PyObject *result)
{
    if (result != NULL) {
        if (play_leave(self, frame, PyTrace_RETURN, result) == 0) return result;
        Py_DECREF(result);
        return NULL;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
    PyObject *info = PyTuple_Pack(3, type ? type : Py_None, value ? value : Py_None,
                                  traceback ? traceback : Py_None);
    int failed = info == NULL
        || play_leave(self, frame, PyTrace_EXCEPTION, info) < 0
        || play_leave(self, frame, PyTrace_RETURN, NULL) < 0;
    Py_XDECREF(info);
    if (!failed) {
        PyErr_Restore(type, value, traceback);
        return NULL;
    }
    replace_error(type, value, traceback);
    return NULL;
}

/* The error now set replaces the exception (type, value, traceback), which becomes its
 * __context__. Steals the three references. */
static void
replace_error(PyObject *type, PyObject *value, PyObject *traceback)
{
    PyObject *new_type, *new_value, *new_traceback;
    PyErr_Fetch(&new_type, &new_value, &new_traceback);
    PyErr_NormalizeException(&new_type, &new_value, &new_traceback);
    if (new_value != NULL && value != NULL && new_value != value) {
        PyException_SetContext(new_value, Py_NewRef(value));
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    PyErr_Restore(new_type, new_value, new_traceback);
}

static PyObject *
generator_eval(PyThreadState *tstate, _PyInterpreterFrame *iframe, int throwflag)
{
    GeneratorHooks *self = eval_hooks;
    if (self == NULL) return _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    if (stack_is_low()) {
        hand_over_to_trace(tstate);
        return _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    }
    if (eval_busy || tstate != eval_thread || iframe->owner != FRAME_OWNED_BY_GENERATOR
        || !(iframe->f_code->co_flags & CO_FOLLOWED_FLAGS)) {
        return _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    }
    Py_INCREF(self);
    PyFrameObject *frame = NULL;
    /* a throw arrives with its exception set: kept aside while the hooks run, as a trace
       function's call does */
    PyObject *type = NULL, *value = NULL, *traceback = NULL;
    if (throwflag) PyErr_Fetch(&type, &value, &traceback);
    eval_busy = 1;
    PyThreadState_EnterTracing(tstate);
    int followed = eval_resume(self, tstate, iframe, throwflag, &frame);
    PyThreadState_LeaveTracing(tstate);
    eval_busy = 0;
    if (throwflag) {
        if (followed < 0) replace_error(type, value, traceback);
        else PyErr_Restore(type, value, traceback);
    }
    /* A resume that could not be recorded raises its error inside the generator, as a trace
       function's error would (the frame must run to be left in order). */
    PyObject *result = _PyEval_EvalFrameDefault(tstate, iframe, followed < 0 ? 1 : throwflag);
    if (followed == 1 && eval_hooks == self) {
        Py_INCREF(frame);
        eval_busy = 1;
        PyThreadState_EnterTracing(tstate);
        result = eval_left(self, frame, result);
        PyThreadState_LeaveTracing(tstate);
        eval_busy = 0;
        Py_DECREF(frame);
    }
    Py_DECREF(self);
    return result;
}

/* Keeps install_*(call_fallback, local_fallback, errors)'s arguments: the Python trace
 * functions and their pending-exception table. */
static int
keep_fallbacks(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs,
               const char *name)
{
    if (nargs != 3 || !PyDict_CheckExact(args[2])) {
        PyErr_Format(PyExc_TypeError, "%s(call_fallback, local_fallback, errors)", name);
        return -1;
    }
    Py_XSETREF(self->call_fallback, Py_NewRef(args[0]));
    Py_XSETREF(self->local_fallback, Py_NewRef(args[1]));
    Py_XSETREF(self->errors, Py_NewRef(args[2]));
    return 0;
}

#endif

/* install_trace(call_fallback, local_fallback, errors): on 3.11, installs the C trace */
static PyObject *
hooks_install_trace(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
#if PY_VERSION_HEX < 0x030C0000
    if (keep_fallbacks(self, args, nargs, "install_trace") < 0) return NULL;
    PyEval_SetTrace(generator_trace, (PyObject *)self);
    Py_RETURN_NONE;
#else
    PyErr_SetString(PyExc_RuntimeError, "install_trace is for Python 3.11; use sys.monitoring");
    return NULL;
#endif
}

/* install_eval(call_fallback, local_fallback, errors): on 3.11, installs generator_eval */
static PyObject *
hooks_install_eval(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
#if PY_VERSION_HEX < 0x030C0000
    if (!HAVE_STACK_BOUNDS) {
        PyErr_SetString(PyExc_RuntimeError, "no way to watch the C stack on this platform");
        return NULL;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (_PyInterpreterState_GetEvalFrameFunc(interp) != _PyEval_EvalFrameDefault
        || (eval_hooks != NULL && eval_hooks != self)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "frames are already evaluated by another hook (PEP 523)");
        return NULL;
    }
    if (keep_fallbacks(self, args, nargs, "install_eval") < 0) return NULL;
    Py_XSETREF(eval_hooks, (GeneratorHooks *)Py_NewRef(self));
    eval_thread = PyThreadState_Get();
    eval_busy = 0;
    eval_handed_over = 0;
    _PyInterpreterState_SetEvalFrameFunc(interp, generator_eval);
    Py_RETURN_NONE;
#else
    PyErr_SetString(PyExc_RuntimeError, "install_eval is for Python 3.11; use sys.monitoring");
    return NULL;
#endif
}

/* uninstall_eval() -> whether the trace function had taken over (sys.settrace to restore) */
static PyObject *
hooks_uninstall_eval(GeneratorHooks *self, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX < 0x030C0000
    if (eval_hooks == self) {
        PyInterpreterState *interp = PyInterpreterState_Get();
        if (_PyInterpreterState_GetEvalFrameFunc(interp) == generator_eval) {
            _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
        }
        int handed_over = eval_handed_over;
        eval_thread = NULL;
        eval_handed_over = 0;
        Py_CLEAR(eval_hooks);
        return PyBool_FromLong(handed_over);
    }
#endif
    Py_RETURN_FALSE;
}

static int
hooks_init(GeneratorHooks *self, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *recorder, *resume_fallback, *yield_fallback, *short_repr, *missing;
    if (!PyArg_ParseTuple(args, "OOOOOO:GeneratorHooks", &tracer, &recorder, &resume_fallback,
                          &yield_fallback, &short_repr, &missing)) {
        return -1;
    }
    if (check_recorder(recorder) < 0) return -1;
    self->thread = PyThreadState_Get();
    Py_XSETREF(self->recorder, Py_NewRef(recorder));
    Py_XSETREF(self->resume_fallback, Py_NewRef(resume_fallback));
    Py_XSETREF(self->yield_fallback, Py_NewRef(yield_fallback));
    Py_XSETREF(self->short_repr, Py_NewRef(short_repr));
    Py_XSETREF(self->missing, Py_NewRef(missing));
    PyObject *yield_detail = PyObject_GetAttrString(tracer, "yield_detail");
    if (yield_detail == NULL) return -1;
    int bad = as_int32(yield_detail, &self->yield_detail);
    Py_DECREF(yield_detail);
    if (bad) return -1;
#define TABLE(field, name, check)                                                   \
    do {                                                                            \
        Py_CLEAR(self->field);                                                      \
        self->field = PyObject_GetAttrString(tracer, name);                         \
        if (self->field == NULL) return -1;                                         \
        if (!check(self->field)) {                                                  \
            PyErr_SetString(PyExc_TypeError, "tracer." name " has the wrong type"); \
            return -1;                                                              \
        }                                                                           \
    } while (0)
    TABLE(lanes, "lanes", PyDict_CheckExact);
    TABLE(sites, "sites", PyList_CheckExact);
    TABLE(sent_values, "sent_values", PyList_CheckExact);
    TABLE(yielded_values, "yielded_values", PyList_CheckExact);
    TABLE(resume_sources, "resume_sources", PyList_CheckExact);
    TABLE(resume_source, "resume_source", PyCallable_Check);
#undef TABLE
    return 0;
}

static int
hooks_traverse(GeneratorHooks *self, visitproc visit, void *arg)
{
    Py_VISIT(self->recorder);
    Py_VISIT(self->lanes);
    Py_VISIT(self->sites);
    Py_VISIT(self->sent_values);
    Py_VISIT(self->yielded_values);
    Py_VISIT(self->resume_sources);
    Py_VISIT(self->resume_source);
    Py_VISIT(self->short_repr);
    Py_VISIT(self->missing);
    Py_VISIT(self->resume_fallback);
    Py_VISIT(self->yield_fallback);
    Py_VISIT(self->call_fallback);
    Py_VISIT(self->local_fallback);
    Py_VISIT(self->errors);
    return 0;
}

static int
hooks_clear(GeneratorHooks *self)
{
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->lanes);
    Py_CLEAR(self->sites);
    Py_CLEAR(self->sent_values);
    Py_CLEAR(self->yielded_values);
    Py_CLEAR(self->resume_sources);
    Py_CLEAR(self->resume_source);
    Py_CLEAR(self->short_repr);
    Py_CLEAR(self->missing);
    Py_CLEAR(self->resume_fallback);
    Py_CLEAR(self->yield_fallback);
    Py_CLEAR(self->call_fallback);
    Py_CLEAR(self->local_fallback);
    Py_CLEAR(self->errors);
    return 0;
}

static void
hooks_dealloc(GeneratorHooks *self)
{
    PyObject_GC_UnTrack(self);
    hooks_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef hooks_methods[] = {
    {"on_resume", (PyCFunction)(void (*)(void))hooks_on_resume, METH_FASTCALL,
     "on_resume(code, offset): the sys.monitoring PY_RESUME callback."},
    {"on_yield", (PyCFunction)(void (*)(void))hooks_on_yield, METH_FASTCALL,
     "on_yield(code, offset, value): the sys.monitoring PY_YIELD callback."},
    {"install_trace", (PyCFunction)(void (*)(void))hooks_install_trace, METH_FASTCALL,
     "install_trace(call_fallback, local_fallback, errors): the C trace function (3.11)."},
    {"install_eval", (PyCFunction)(void (*)(void))hooks_install_eval, METH_FASTCALL,
     "install_eval(call_fallback, local_fallback, errors): the frame evaluation hook (3.11)."},
    {"uninstall_eval", (PyCFunction)hooks_uninstall_eval, METH_NOARGS,
     "uninstall_eval(): removes the frame evaluation hook this installed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GeneratorHooksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._handoffs.GeneratorHooks",
    .tp_doc = "GeneratorHooks(tracer, recorder, resume_fallback, yield_fallback, short_repr, "
              "missing): generator hand-offs recorded in C.",
    .tp_basicsize = sizeof(GeneratorHooks),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hooks_init,
    .tp_traverse = (traverseproc)hooks_traverse,
    .tp_clear = (inquiry)hooks_clear,
    .tp_dealloc = (destructor)hooks_dealloc,
    .tp_methods = hooks_methods,
};

/* -- SwitchTrace ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *recorder;    /* a RecorderCore */
    PyObject *lanes;       /* tracer.lanes: greenlet -> lane */
    PyObject *arrivals;    /* tracer._arrivals: list by lane */
    PyObject *arrival_of;  /* tracer.arrival */
    PyObject *fallback;    /* the Python switch trace, for everything but a plain switch */
    /* greenlet.greenlet's own `dead` getter, called directly on exact greenlets (a subclass,
       such as gevent's Greenlet, may define its own `dead`) */
    PyTypeObject *greenlet_type;
    getter dead_getter;
    void *dead_closure;
} SwitchTrace;

/* 1: recorded a plain switch between two known live greenlets; 0: not one; -1: error */
static int
plain_switch(SwitchTrace *self, PyObject *origin, PyObject *target)
{
    Py_ssize_t origin_lane = lane_in(self->lanes, origin);
    if (origin_lane < 0) return origin_lane == -2 ? -1 : 0;
    Py_ssize_t target_lane = lane_in(self->lanes, target);
    if (target_lane < 0) return target_lane == -2 ? -1 : 0;
    PyObject *dead = self->dead_getter != NULL && Py_IS_TYPE(origin, self->greenlet_type)
        ? self->dead_getter(origin, self->dead_closure) : PyObject_GetAttr(origin, str_dead);
    if (dead == NULL) return -1;
    int is_dead = PyObject_IsTrue(dead);
    Py_DECREF(dead);
    if (is_dead) return is_dead < 0 ? -1 : 0;
    /* the frame that called switch() in the target, where it resumes now */
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) return 0;
    PyObject *arrival = PyList_GET_ITEM(self->arrivals, target_lane);
    Py_INCREF(arrival);
    if ((PyObject *)frame != PyTuple_GET_ITEM(arrival, 0)
        || PyFrame_GetLasti(frame) != PyLong_AsLong(PyTuple_GET_ITEM(arrival, 1))) {
        PyObject *lane_number = PyLong_FromSsize_t(target_lane);
        Py_SETREF(arrival, lane_number == NULL ? NULL
                  : PyObject_CallFunctionObjArgs(self->arrival_of, lane_number, frame, NULL));
        Py_XDECREF(lane_number);
        if (arrival == NULL) return -1;
    }
    int32_t source, switch_detail, blocked_detail;
    int failed = as_int32(PyTuple_GET_ITEM(arrival, 2), &source) < 0
        || as_int32(PyTuple_GET_ITEM(arrival, 3), &switch_detail) < 0
        || as_int32(PyTuple_GET_ITEM(arrival, 4), &blocked_detail) < 0;
    Py_DECREF(arrival);
    if (failed) return -1;
    if (recorder_api->handoff(self->recorder, (int32_t)origin_lane, (int32_t)target_lane,
                              switch_detail, CODE_BLOCKED, blocked_detail, source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, (int32_t)target_lane);
    return 1;
}

static int
is_event(PyObject *event, PyObject *name)
{
    return event == name || (PyUnicode_Check(event) && PyUnicode_Compare(event, name) == 0);
}

/* trace(event, (origin, target)), as greenlet.settrace calls it */
static PyObject *
switch_trace_call(SwitchTrace *self, PyObject *args, PyObject *kwargs)
{
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs)) || PyTuple_GET_SIZE(args) != 2) {
        PyErr_SetString(PyExc_TypeError, "trace(event, args) takes two positional arguments");
        return NULL;
    }
    PyObject *event = PyTuple_GET_ITEM(args, 0);
    PyObject *pair = PyTuple_GET_ITEM(args, 1);
    int is_switch = is_event(event, str_switch);
    if (!is_switch && !is_event(event, str_throw)) Py_RETURN_NONE;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "trace(event, (origin, target))");
        return NULL;
    }
    PyObject *origin = PyTuple_GET_ITEM(pair, 0);
    PyObject *target = PyTuple_GET_ITEM(pair, 1);
    if (is_switch) {
        int done = plain_switch(self, origin, target);
        if (done < 0) return NULL;
        if (done) Py_RETURN_NONE;
    }
    return PyObject_CallFunctionObjArgs(self->fallback, event, pair, NULL);
}

static int
switch_trace_init(SwitchTrace *self, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *recorder, *fallback;
    if (!PyArg_ParseTuple(args, "OOO:SwitchTrace", &tracer, &recorder, &fallback)) return -1;
    if (check_recorder(recorder) < 0) return -1;
    Py_XSETREF(self->recorder, Py_NewRef(recorder));
    Py_XSETREF(self->fallback, Py_NewRef(fallback));
#define FIELD(field, name, check)                                                   \
    do {                                                                            \
        Py_CLEAR(self->field);                                                      \
        self->field = PyObject_GetAttrString(tracer, name);                         \
        if (self->field == NULL) return -1;                                         \
        if (!check(self->field)) {                                                  \
            PyErr_SetString(PyExc_TypeError, "tracer." name " has the wrong type"); \
            return -1;                                                              \
        }                                                                           \
    } while (0)
    FIELD(lanes, "lanes", PyDict_CheckExact);
    FIELD(arrivals, "_arrivals", PyList_CheckExact);
    FIELD(arrival_of, "arrival", PyCallable_Check);
#undef FIELD
    self->dead_getter = NULL;
    Py_CLEAR(self->greenlet_type);
    PyObject *module = PyImport_ImportModule("greenlet");
    PyObject *type = module == NULL ? NULL : PyObject_GetAttrString(module, "greenlet");
    Py_XDECREF(module);
    PyObject *descriptor = type != NULL && PyType_Check(type)
        ? PyDict_GetItemWithError(((PyTypeObject *)type)->tp_dict, str_dead) : NULL;
    if (descriptor != NULL && Py_IS_TYPE(descriptor, &PyGetSetDescr_Type)) {
        PyGetSetDef *getset = ((PyGetSetDescrObject *)descriptor)->d_getset;
        self->dead_getter = getset->get;
        self->dead_closure = getset->closure;
        self->greenlet_type = (PyTypeObject *)Py_NewRef(type);
    }
    Py_XDECREF(type);
    if (PyErr_Occurred()) return -1;
    return 0;
}

static int
switch_trace_traverse(SwitchTrace *self, visitproc visit, void *arg)
{
    Py_VISIT(self->recorder);
    Py_VISIT(self->lanes);
    Py_VISIT(self->arrivals);
    Py_VISIT(self->arrival_of);
    Py_VISIT(self->fallback);
    Py_VISIT(self->greenlet_type);
    return 0;
}

static int
switch_trace_clear(SwitchTrace *self)
{
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->lanes);
    Py_CLEAR(self->arrivals);
    Py_CLEAR(self->arrival_of);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->greenlet_type);
    return 0;
}

static void
switch_trace_dealloc(SwitchTrace *self)
{
    PyObject_GC_UnTrack(self);
    switch_trace_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SwitchTraceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._handoffs.SwitchTrace",
    .tp_doc = "SwitchTrace(tracer, recorder, fallback): a greenlet.settrace callback recording "
              "plain switches in C and passing the rest to fallback(event, args).",
    .tp_basicsize = sizeof(SwitchTrace),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)switch_trace_init,
    .tp_call = (ternaryfunc)switch_trace_call,
    .tp_traverse = (traverseproc)switch_trace_traverse,
    .tp_clear = (inquiry)switch_trace_clear,
    .tp_dealloc = (destructor)switch_trace_dealloc,
};

/* -- the module ------------------------------------------------------------------------------ */

/* eval_hook_installed(): whether generator_eval evaluates this interpreter's frames */
static PyObject *
eval_hook_installed(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX < 0x030C0000
    return PyBool_FromLong(
        _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get()) == generator_eval);
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef module_methods[] = {
    {"eval_hook_installed", eval_hook_installed, METH_NOARGS,
     "Whether the generator hooks evaluate this interpreter's frames (3.11)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef handoffs_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "loopscope.tracer._handoffs",
    .m_doc = "C hot paths of generator and greenlet hand-off tracing.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__handoffs(void)
{
    /* PyCapsule_Import only imports the package and then looks attributes up, so the
       extension module must be imported first (a pure-Python run never imports it). */
    PyObject *speedups = PyImport_ImportModule("loopscope.tracer._speedups");
    if (speedups == NULL) return NULL;
    Py_DECREF(speedups);
    recorder_api = PyCapsule_Import("loopscope.tracer._speedups._recorder_api", 0);
    if (recorder_api == NULL) return NULL;
    if (recorder_api->version < 2) {
        PyErr_SetString(PyExc_ImportError, "loopscope.tracer._speedups is too old for tracer._handoffs");
        return NULL;
    }
    if (intern(&str_yield, "yield") < 0 || intern(&str_switch, "switch") < 0
        || intern(&str_throw, "throw") < 0 || intern(&str_call, "call") < 0
        || intern(&str_return, "return") < 0 || intern(&str_exception, "exception") < 0
        || intern(&str_dead, "dead") < 0) {
        return NULL;
    }
    repr_limit = PyLong_FromLong(REPR_LIMIT);
    if (repr_limit == NULL) return NULL;
    if (PyType_Ready(&GeneratorHooksType) < 0 || PyType_Ready(&SwitchTraceType) < 0) return NULL;
    PyObject *module = PyModule_Create(&handoffs_module);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "GeneratorHooks", (PyObject *)&GeneratorHooksType) < 0
        || PyModule_AddObjectRef(module, "SwitchTrace", (PyObject *)&SwitchTraceType) < 0
        || PyModule_AddIntConstant(module, "REPR_LIMIT", REPR_LIMIT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* What the files of the tracer._handoffs extension share (the contract with tracer/ and
 * tracer._speedups is loopscope.h).
 *
 *   _handoffs.c          the module: interned names, the recorder's C API, initialisation
 *   _generator_hooks.c   GeneratorHooks: the generator model's hand-offs (3.12+ callbacks)
 *   _generator_eval.c    3.11 only: the C trace function and the frame evaluation hook
 *   _switch_trace.c      SwitchTrace: the greenlet model's switch callback
 */

#ifndef LOOPSCOPE_HANDOFFS_H
#define LOOPSCOPE_HANDOFFS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>

#include "loopscope.h"

#if PY_VERSION_HEX < 0x030C0000
/* 3.11 has no PyFrame_GetVar: a driver's fast locals are read from its interpreter frame. */
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
/* The public headers defined it before Py_BUILD_CORE; pycore_gc.h's definition replaces it. */
#undef _PyGC_FINALIZED
#include "internal/pycore_frame.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_code.h"
#include <opcode.h>
#include <pthread.h>
#endif

extern LoopscopeRecorderAPI *recorder_api;  /* set by PyInit__handoffs */

extern PyObject *str_yield;
extern PyObject *str_send_opname;  /* "SEND" */
extern PyObject *str_send;
extern PyObject *str_next;
extern PyObject *str_last_caller;  /* attribute names: "_last_caller", "_lane_count" */
extern PyObject *str_lane_count;
extern PyObject *str_switch;
extern PyObject *str_throw;
extern PyObject *str_call;
extern PyObject *str_return;
extern PyObject *str_exception;
extern PyObject *str_dead;
extern PyObject *repr_limit;

/* -- shared helpers ------------------------------------------------------------------------ */

static inline int
check_recorder(PyObject *recorder)
{
    if (!PyObject_TypeCheck(recorder, recorder_api->recorder_type)) {
        PyErr_SetString(PyExc_TypeError, "the recorder is not a tracer._speedups.RecorderCore");
        return -1;
    }
    return 0;
}

static inline int is_exact_dict(PyObject *object) { return PyDict_CheckExact(object); }
static inline int is_exact_list(PyObject *object) { return PyList_CheckExact(object); }
static inline int is_exact_set(PyObject *object) { return PySet_CheckExact(object); }

/* Sets *slot to tracer.<name> (a new reference) when `check` accepts it, else -1 with a
 * TypeError naming it: the tables a hook reads in place are taken once, at its creation. */
static inline int
take_table(PyObject **slot, PyObject *tracer, const char *name, int (*check)(PyObject *))
{
    Py_CLEAR(*slot);
    *slot = PyObject_GetAttrString(tracer, name);
    if (*slot == NULL) return -1;
    if (!check(*slot)) {
        PyErr_Format(PyExc_TypeError, "tracer.%s has the wrong type", name);
        return -1;
    }
    return 0;
}

/* -- the types' garbage-collection slots ---------------------------------------------------- */

/* tp_dealloc of this extension's types: untracked, cleared by their tp_clear, freed. */
static inline void
gc_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    (void)Py_TYPE(self)->tp_clear(self);
    Py_TYPE(self)->tp_free(self);
}

/* The slots this extension's types share: tracer._handoffs.`Type`, objects the collector
 * tracks, made empty by PyType_GenericNew and filled by `prefix`_init (GC_FIELD_FUNCTIONS
 * makes the rest). */
#define HANDOFFS_TYPE_SLOTS(Type, prefix)                                                  \
    PyVarObject_HEAD_INIT(NULL, 0)                                                         \
    .tp_name = "loopscope.tracer._handoffs." #Type,                                        \
    .tp_basicsize = sizeof(Type),                                                          \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                                   \
    .tp_new = PyType_GenericNew,                                                           \
    .tp_init = (initproc)prefix##_init,                                                    \
    .tp_traverse = (traverseproc)prefix##_traverse,                                        \
    .tp_clear = (inquiry)prefix##_clear,                                                   \
    .tp_dealloc = gc_dealloc

/* dict.pop(key, None) for a dict whose values need no look: 1 when the key was there, 0 when
 * not, -1 on error. */
static inline int
dict_discard(PyObject *dict, PyObject *key)
{
    if (PyDict_DelItem(dict, key) == 0) return 1;
    if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
    PyErr_Clear();
    return 0;
}

/* An exact int of at most two 30-bit digits, read in place from its digits: 1 with *out set,
 * else 0 (then the caller asks PyLong_AsLong and friends). The hooks read ints on every
 * hand-off -- lanes, table fields, a value row's detail (VALUE_ROW and up: two digits), the
 * value handed over -- and the calls and error checks of the C API cost more than the rest
 * of a field's use. */
static inline Py_ALWAYS_INLINE int
int_in_place(PyObject *value, int64_t *out)
{
#if PYLONG_BITS_IN_DIGIT == 30
    if (!PyLong_CheckExact(value)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    uintptr_t tag = ((PyLongObject *)value)->long_value.lv_tag;
    uintptr_t size = tag >> _PyLong_NON_SIZE_BITS;
    int negative = (tag & _PyLong_SIGN_MASK) == 2;
    const digit *digits = ((PyLongObject *)value)->long_value.ob_digit;
#else
    Py_ssize_t signed_size = Py_SIZE(value);
    int negative = signed_size < 0;
    size_t size = (size_t)(negative ? -signed_size : signed_size);
    const digit *digits = ((PyLongObject *)value)->ob_digit;
#endif
    int64_t number;
    if (size == 0) number = 0;
    else if (size == 1) number = digits[0];
    else if (size == 2) number = (int64_t)digits[0] | ((int64_t)digits[1] << PyLong_SHIFT);
    else return 0;
    *out = negative ? -number : number;
    return 1;
#else
    (void)value;
    (void)out;
    return 0;
#endif
}

/* An int field, as as_int32 reads it (the same errors), read in place when it can be. */
static inline Py_ALWAYS_INLINE int
field_int32(PyObject *value, int32_t *out)
{
    int64_t number;
    if (int_in_place(value, &number) && number >= INT32_MIN && number <= INT32_MAX) {
        *out = (int32_t)number;
        return 0;
    }
    return as_int32(value, out);
}

static inline Py_ssize_t
lane_in(PyObject *lanes, PyObject *key)
{
    PyObject *lane = PyDict_GetItemWithError(lanes, key);
    if (lane == NULL) return PyErr_Occurred() ? -2 : -1;
    int64_t number;
    if (int_in_place(lane, &number)) return (Py_ssize_t)number;
    return PyLong_AsSsize_t(lane);
}

/* -- GeneratorHooks (_generator_hooks.c) --------------------------------------------------- */

#define SOURCE_MEMO 4

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
    PyObject *delegates;       /* tracer.delegates, tracer.delegators: lists of lanes by lane */
    PyObject *delegators;
    PyObject *pending;         /* tracer.pending: PENDING_FIELDS ints, changed in place */
    PyObject *resume_source;   /* tracer.resume_source */
    PyObject *short_repr;
    PyObject *missing;         /* the sentinel for "no value to read" */
    PyObject *resume_fallback; /* 3.12+: the Python PY_RESUME / PY_YIELD callbacks */
    PyObject *yield_fallback;
    PyObject *call_fallback;   /* 3.11: the Python global and local trace functions */
    PyObject *local_fallback;
    PyObject *errors;          /* 3.11: the Python trace's frame -> pending exception */
    PyObject *calls;           /* tracer.calls: coroutines running as calls (frame -> True) */
    PyObject *started_codes;   /* tracer.started_codes: id(code) -> where its body starts */
    PyObject *start_fallback;  /* 3.12+: the Python PY_START / PY_RETURN callbacks */
    PyObject *return_fallback;
    int send_opcode;           /* opcode.opmap["SEND"]: `yield from` / `await` */
    int for_iter_opcode;       /* opcode.opmap["FOR_ITER"]: a for loop */
    int resume_opcode;         /* opcode.opmap["RESUME"] */
    PyObject *disable;         /* 3.12+: sys.monitoring.DISABLE (else NULL) */
    /* what a lane's start and end take (fast_lane_start, fast_lane_end) */
    PyObject *tracer;          /* for tracer._last_caller and tracer.main_lane */
    PyObject *closing;         /* tracer._closing: lanes being closed */
    PyObject *no_site;         /* generator_model._NO_SITE; its first field matches nothing */
    PyObject *name_counts;     /* tracer.handoff_lanes: unique names, */
    PyObject *names;           /* lane names, */
    PyObject *blocked_details; /* BLOCKED details by lane, */
    PyObject *via_details;     /* switch details by via, */
    PyObject *sources_at;      /* (id(code), offset) -> source index */
    int32_t blocked_base;      /* the base of a BLOCKED detail's value row */
    /* the last few (code, offset) -> source answers of sources_at (driver_source) */
    struct { void *code; int lasti; int32_t source; } source_memo[SOURCE_MEMO];
    int source_memo_next;
    /* the last yield's answer of passes_up_from_elsewhere's look at the code (a strong
       reference, so the address cannot be reused by another code while remembered) */
    PyObject *yield_code;
    int yield_offset;
    int yield_before_resume;   /* 1: the next instruction is a RESUME after a delegation */
    int32_t spawn_base;        /* a generator lane's SPAWN row base, once known (else -1) */
    int32_t end_detail;        /* the END detail of a generator returning None, once known */
    /* lane_of's memo: the last frame found in `lanes` (borrowed: the dict holds it for as
       long as its version is unchanged), its lane, and the dict's version then */
    PyObject *memo_frame;
    uint64_t memo_version;
    Py_ssize_t memo_lane;
    /* resume_source's memo: the last table (borrowed, held by tracer.resume_sources while
       the memo is used: see resume_source), its version, the offset looked up, its answer */
    PyObject *source_table;
    uint64_t source_table_version;
    int64_t source_offset;
    int32_t source_answer;
} GeneratorHooks;

/* Whether lane_of can tell that tracer.lanes has not changed: a dict's version (PEP 509)
 * changes with every insertion, replacement and deletion up to 3.13; 3.14 dropped it. */
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define HAVE_LANE_MEMO 1
static inline uint64_t
dict_version(PyObject *dict)
{
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return ((PyDictObject *)dict)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#else
#define HAVE_LANE_MEMO 0
#endif

/* The lane of `frame` in tracer.lanes (-1: not a lane; -2: an error), as lane_in finds it.
 * A hand-off's resume and its yield back come from one frame, so the answer for the last
 * frame found is kept while the dict stays unchanged: one dict look-up a send, not two. */
static inline Py_ssize_t
lane_of(GeneratorHooks *self, PyFrameObject *frame)
{
#if HAVE_LANE_MEMO
    PyObject *lanes = self->lanes;
    if ((PyObject *)frame == self->memo_frame && PyDict_CheckExact(lanes)
        && dict_version(lanes) == self->memo_version) {
        return self->memo_lane;
    }
    Py_ssize_t lane = lane_in(lanes, (PyObject *)frame);
    if (lane >= 0 && PyDict_CheckExact(lanes)) {
        self->memo_frame = (PyObject *)frame;
        self->memo_version = dict_version(lanes);
        self->memo_lane = lane;
    }
    return lane;
#else
    return lane_in(self->lanes, (PyObject *)frame);
#endif
}

/* The objects a GeneratorHooks holds, for its traverse and clear. */
#define GENERATOR_HOOKS_OBJECTS(X)                                                        \
    X(recorder) X(lanes) X(sites) X(sent_values) X(yielded_values) X(resume_sources)      \
    X(delegates) X(delegators) X(pending) X(resume_source) X(short_repr) X(missing)       \
    X(resume_fallback) X(yield_fallback) X(call_fallback) X(local_fallback) X(errors)    \
    X(calls) X(started_codes) X(start_fallback) X(return_fallback) X(tracer) X(closing)      \
    X(no_site) X(name_counts) X(names) X(blocked_details) X(via_details) X(sources_at)      \
    X(disable) X(yield_code)

extern PyTypeObject GeneratorHooksType;

/* The hand-off fast paths (1: recorded; 0: the Python twin decides; -1: an error). */
int fast_resume(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset);
int fast_yield(GeneratorHooks *self, Py_ssize_t lane, PyObject *value);
/* A followed frame starting (a coroutine as a call in its awaiter, a generator as a new lane)
 * or returning (a call, a lane ending): 1 recorded; 0 the Python twin decides; -1 an error. */
int fast_start(GeneratorHooks *self, PyFrameObject *frame);
int fast_return(GeneratorHooks *self, PyFrameObject *frame, PyObject *value);

#if PY_VERSION_HEX < 0x030C0000
/* -- 3.11 (_generator_eval.c); each returns -1 with an exception set on failure ------------ */

int generator_install_trace(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs);
int generator_install_eval(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs);
/* Removes these hooks' evaluation hook if it is installed: 1 when the trace function had
 * taken over from it (sys.settrace to restore), else 0. */
int generator_uninstall_eval(GeneratorHooks *self);
int generator_eval_installed(void);
#endif

/* -- SwitchTrace (_switch_trace.c) --------------------------------------------------------- */

extern PyTypeObject SwitchTraceType;

#endif /* LOOPSCOPE_HANDOFFS_H */

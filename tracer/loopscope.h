/* The contract between tracer/ and its C extensions (tracer/_speedups.c, tracer/_handoffs.c).
 *
 * Every number here has a Python twin, named beside it, and tests/tracer/test_c_contract.py
 * reads this file and checks each one against that twin: change one side and the test says
 * which line of the other to change.
 */

#ifndef LOOPSCOPE_H
#define LOOPSCOPE_H

#include <Python.h>
#include <stdint.h>

/* -- the event vocabulary: tracer/events.py ------------------------------------------------- */

#define NO_LANE (-1)            /* events.NO_LANE */
#define CODE_RUNNING 0          /* events.Code.RUNNING ... */
#define CODE_READY 1
#define CODE_IO_WAIT 2
#define CODE_SLEEPING 3
#define CODE_BLOCKED 4
#define CODE_POLL 5
#define CODE_DISPATCH 6
#define CODE_SPAWN 16
#define CODE_WAKE 17
#define CODE_SWITCH 18
#define CODE_END 19
#define CODE_ANNOTATE 20
#define CODE_OUTPUT 21
#define CODE_MARK 22            /* ... events.Code.MARK */

/* -- value rows: tracer/values.py ---------------------------------------------------------- */

#define VALUE_ROW (1 << 30)     /* values.VALUE_ROW: the first value row's detail index */
#define MAX_VALUE_ROWS (INT32_MAX - VALUE_ROW)

/* -- the generator model: tracer/models/generator_model.py, _plain_loads.py ----------------- */

#define CO_GENERATOR_FLAG 0x20  /* generator_model.CO_GENERATOR */
#define CO_COROUTINE_FLAG 0x80  /* generator_model.CO_COROUTINE */
/* generator_model.FOLLOWED_FLAGS: generators, and `async def` coroutines a program may drive
   by hand with send() (a trampoline) */
#define CO_FOLLOWED_FLAGS (CO_GENERATOR_FLAG | CO_COROUTINE_FLAG)
#define REPR_LIMIT 40           /* generator_model.REPR_LIMIT */
#define READ_CONSTANT 0         /* _plain_loads.READ_CONSTANT: how a ValueRead reads its value */
#define READ_LOCAL 1            /* _plain_loads.READ_LOCAL */
#define READ_CELL 2             /* _plain_loads.READ_CELL */

/* generator_model.SITE_FIELDS: how a generator lane was last resumed (tracer.sites[lane]) */
#define SITE_DRIVER_FRAME 0
#define SITE_DRIVER_OFFSET 1
#define SITE_DRIVER_LANE 2
#define SITE_VALUE_READ 3
#define SITE_SWITCH_DETAIL 4
#define SITE_VIA 5
#define SITE_DRIVER_BLOCKED 6
#define SITE_LANE_BLOCKED 7
#define SITE_DRIVER_SOURCE 8
#define SITE_DRIVER_CODE 9
#define SITE_DRIVER_CALLER 10
#define SITE_FIELDS 11

/* generator_model.VALUE_READ_FIELDS: how a site reads the value its driver hands over (a
   ValueRead, sites[lane][SITE_VALUE_READ]) */
#define VALUE_READ_KIND 0
#define VALUE_READ_OPERAND 1
#define VALUE_READ_SLOT 2
#define VALUE_READ_FIELDS 3

/* generator_model.CACHED_FIELDS: the last value handed to or by a lane (tracer.sent_values,
   tracer.yielded_values) */
#define CACHED_VALUE 0
#define CACHED_VIA 1
#define CACHED_DETAIL 2
#define CACHED_FIELDS 3

/* generator_model.LANE_CODE_FIELDS: what a generator's code tells about its lanes
   (tracer.started_codes[id(code)]) */
#define LANE_CODE_START 0
#define LANE_CODE_SOURCE 1
#define LANE_CODE_RESUME_SOURCES 2
#define LANE_CODE_PASSING_YIELDS 3
#define LANE_CODE_PASSING_RESUMES 4
#define LANE_CODE_KEPT_RESUMES 5
#define LANE_CODE_FIELDS 6

/* generator_model.PENDING_FIELDS: a hand-off passing down a delegation chain (tracer.pending) */
#define PENDING_EXPECTED_LANE 0
#define PENDING_DRIVER_LANE 1
#define PENDING_OUTER_LANE 2
#define PENDING_SWITCH_DETAIL 3
#define PENDING_DRIVER_BLOCKED 4
#define PENDING_OUTER_SOURCE 5
#define PENDING_FIELDS 6

/* -- the greenlet model: tracer/models/_greenlets.py -------------------------------------- */

/* _greenlets.ARRIVAL_FIELDS: how the last plain switch to a lane arrived (tracer._arrivals) */
#define ARRIVAL_FRAME 0
#define ARRIVAL_OFFSET 1
#define ARRIVAL_SOURCE 2
#define ARRIVAL_SWITCH_DETAIL 3
#define ARRIVAL_BLOCKED_DETAIL 4
#define ARRIVAL_FIELDS 5

/* -- the asyncio model: tracer/models/_asyncio_tracer.py ------------------------------------ */

#define STREAM_WRITE (-2)       /* _asyncio_tracer._STREAM_WRITE: a wait verdict */

/* _asyncio_tracer.CAUSE_FIELDS: what is running the callback in progress (tracer.cause) */
#define CAUSE_WAKER 0
#define CAUSE_DETAIL 1
#define CAUSE_DEADLINE_NS 2
#define CAUSE_FIELDS 3

/* _asyncio_tracer.WAITERS_FIELDS: the lanes suspended on a future (tracer.waiting[id]); the
   lanes follow the fields, one item each */
#define WAITERS_FUTURE 0
#define WAITERS_FIELDS 1
/* _asyncio_tracer.SWEEP_WAITING_AT: the waiting table's first sweep of dead futures */
#define SWEEP_WAITING_AT 1024

/* _asyncio_tracer.SLEEP_FIELDS: asyncio.sleep's future, its SLEEPING detail and its timer's
 * deadline (tracer.sleeps) */
#define SLEEP_FUTURE 0
#define SLEEP_DETAIL 1
#define SLEEP_DEADLINE_NS 2
#define SLEEP_FIELDS 3

/* _asyncio_tracer.VERDICT_FIELDS: how a wait in a function is judged (tracer._verdicts_*) */
#define VERDICT_CODE 0
#define VERDICT_VERDICT 1
#define VERDICT_FIELDS 2

/* _asyncio_waits' sides of a function in a blocked wait's await chain (tracer._wait_calls,
 * rows as VERDICT_FIELDS): the program's, a library's not named yet, a library's passed over
 * (`__aenter__`); else the BLOCKED detail that names it */
#define PROGRAM_SIDE (-1)
#define LIBRARY_SIDE (-2)
#define PASSED_OVER (-3)

/* _asyncio_tracer.OWNER_FIELDS: a stream's IO_WAIT detail (tracer._owner_details) */
#define OWNER_STREAM 0
#define OWNER_DETAIL 1
#define OWNER_FIELDS 2

/* _asyncio_tracer.LINES_OF_FIELDS: a code object's line -> source index (tracer._code_lines) */
#define LINES_OF_CODE 0
#define LINES_OF_LINES 1
#define LINES_OF_FIELDS 2

/* -- the recorder's C API ------------------------------------------------------------------- */

/* The capsule tracer._speedups exports and tracer._handoffs imports: C entry points into
 * RecorderCore, so another extension records an event or a hand-off without a method call.
 * Additive only: a new entry point goes at the end with a new version number. */
#define RECORDER_API_CAPSULE "loopscope.tracer._speedups._recorder_api"
#define RECORDER_API_VERSION 3

typedef struct {
    int version;
    PyTypeObject *recorder_type;
    int (*append)(PyObject *core, int32_t lane, int8_t code, int32_t other, int32_t detail,
                  int32_t source);
    int (*handoff)(PyObject *core, int32_t origin, int32_t target, int32_t switch_detail,
                   int8_t origin_state, int32_t origin_detail, int32_t target_source);
    void (*set_current)(PyObject *core, int32_t lane);
    int32_t (*get_current)(PyObject *core);
    /* version 2 */
    int (*value_row)(PyObject *core, int32_t base, PyObject *text, int32_t *out);
    int (*value_row_utf8)(PyObject *core, int32_t base, const char *text, Py_ssize_t size,
                          int32_t *out);
    /* version 3: Recorder.spawn with the lane's detail a value row on `base` (*named: the
       name it got, a new reference) */
    int (*spawn)(PyObject *core, PyObject *name, int32_t base, int32_t parent, int32_t source,
                 int32_t *lane, PyObject **named);
} LoopscopeRecorderAPI;

/* -- helpers both extensions use ---------------------------------------------------------- */

/* *slot = the interned str `text`; -1 with an exception when it cannot be made. */
static inline int
intern_text(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

/* -- garbage collection of a type's object fields ------------------------------------------ */

/* `prefix`_traverse and `prefix`_clear (tp_traverse, tp_clear) for a `Type` whose object fields
 * the X-macro OBJECTS lists (OBJECTS(X) expands to X(field) for each): both walk the one list,
 * so a field cannot be visited and then forgotten when clearing, or the other way round. */
#define GC_VISIT_FIELD(field) Py_VISIT(self->field);
#define GC_CLEAR_FIELD(field) Py_CLEAR(self->field);

#define GC_FIELD_FUNCTIONS(prefix, Type, OBJECTS)                                          \
    static int                                                                            \
    prefix##_traverse(Type *self, visitproc visit, void *arg)                             \
    {                                                                                     \
        OBJECTS(GC_VISIT_FIELD)                                                           \
        return 0;                                                                         \
    }                                                                                     \
    static int                                                                            \
    prefix##_clear(Type *self)                                                            \
    {                                                                                     \
        OBJECTS(GC_CLEAR_FIELD)                                                           \
        return 0;                                                                         \
    }

/* -- making an extension module (run once, at import) ------------------------------------ */

/* A name a module interns at import, and the global that holds it. */
typedef struct {
    PyObject **slot;
    const char *text;
} InternedName;

/* Interns each of `names` (ended by {NULL, NULL}); -1 with an exception when one fails. */
static inline int
intern_names(const InternedName *names)
{
    for (const InternedName *name = names; name->slot != NULL; name++) {
        if (intern_text(name->slot, name->text) < 0) return -1;
    }
    return 0;
}

/* A type a module exports, under its Python name. */
typedef struct {
    const char *name;
    PyTypeObject *type;
} ExportedType;

/* An int constant a module exports, under its Python name. */
typedef struct {
    const char *name;
    long value;
} ExportedInt;

/* The PyModuleDef of an extension module: single-phase initialisation, its state in C
 * globals (m_size -1), `methods` its functions. */
#define EXTENSION_MODULE(NAME, DOC, METHODS)                                                   \
    {PyModuleDef_HEAD_INIT, .m_name = NAME, .m_doc = DOC, .m_size = -1, .m_methods = METHODS}

/* The module `definition` makes, with each of `types` (ended by {NULL, NULL}) readied and
 * added to it, and each of `constants` (ended by {NULL, 0}): a new reference, or NULL with
 * an exception. */
static inline PyObject *
create_module(struct PyModuleDef *definition, const ExportedType *types,
              const ExportedInt *constants)
{
    for (const ExportedType *exported = types; exported->name != NULL; exported++) {
        if (PyType_Ready(exported->type) < 0) return NULL;
    }
    PyObject *module = PyModule_Create(definition);
    if (module == NULL) return NULL;
    for (const ExportedType *exported = types; exported->name != NULL; exported++) {
        if (PyModule_AddObjectRef(module, exported->name, (PyObject *)exported->type) < 0) {
            goto failed;
        }
    }
    for (const ExportedInt *constant = constants; constant->name != NULL; constant++) {
        if (PyModule_AddIntConstant(module, constant->name, constant->value) < 0) goto failed;
    }
    return module;
failed:
    Py_DECREF(module);
    return NULL;
}

/* A Python int from `low` to `high` as *out: -1 with an OverflowError saying `overflow` when
 * it is outside. Always inlined: the readers below run on every event, and must cost no call
 * more than when each had the check written out. */
static inline Py_ALWAYS_INLINE int
as_bounded(PyObject *value, long low, long high, const char *overflow, long *out)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* the common case, a small exact int, read in place (no call, no error check) */
    if (PyLong_CheckExact(value) && PyUnstable_Long_IsCompact((PyLongObject *)value)) {
        Py_ssize_t compact = PyUnstable_Long_CompactValue((PyLongObject *)value);
        if (compact >= low && compact <= high) {
            *out = (long)compact;
            return 0;
        }
    }
#endif
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) return -1;
    if (number < low || number > high) {
        PyErr_SetString(PyExc_OverflowError, overflow);
        return -1;
    }
    *out = number;
    return 0;
}

/* A Python int as an event field (a lane, a code's table index, a detail): -1 with an
 * OverflowError when it does not fit in 32 bits. */
static inline int
as_int32(PyObject *value, int32_t *out)
{
    long number;
    if (as_bounded(value, INT32_MIN, INT32_MAX, "event field out of the int32 range",
                   &number) < 0) {
        return -1;
    }
    *out = (int32_t)number;
    return 0;
}

/* A Python int as an event code: -1 with an OverflowError when it does not fit in 8 bits. */
static inline int
as_code(PyObject *value, int8_t *out)
{
    long number;
    if (as_bounded(value, INT8_MIN, INT8_MAX, "event code out of the int8 range", &number) < 0) {
        return -1;
    }
    *out = (int8_t)number;
    return 0;
}

/* `row` when it is a tuple of at least `fields` items (a table's row), else NULL with an
 * error. */
static inline PyObject *
checked_row(PyObject *row, Py_ssize_t fields, const char *name)
{
    if (row == NULL || !PyTuple_Check(row) || PyTuple_GET_SIZE(row) < fields) {
        if (row != NULL) {
            PyErr_Format(PyExc_TypeError, "a row of %s is not a tuple of %zd fields", name,
                         fields);
        }
        return NULL;
    }
    return row;
}

/* Row `index` of a per-lane table of tuples (tracer.sites, tracer._arrivals), borrowed; NULL
 * with an error when the table has no such row or the row is not a tuple of `fields` items. */
static inline PyObject *
table_row(PyObject *table, Py_ssize_t index, Py_ssize_t fields, const char *name)
{
    if (!PyList_Check(table) || index < 0 || index >= PyList_GET_SIZE(table)) {
        PyErr_Format(PyExc_IndexError, "%s has no row for lane %zd", name, index);
        return NULL;
    }
    return checked_row(PyList_GET_ITEM(table, index), fields, name);
}

#endif /* LOOPSCOPE_H */

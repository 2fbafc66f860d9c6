/* GeneratorHooks: the generator model's hand-off hot paths (tracer.models.generator_model).
 *
 * on_resume / on_yield are sys.monitoring callbacks (3.12+). Each mirrors the inline fast path
 * of its Python twin (the same per-lane tables, read in place) and hands anything unusual -- a
 * new lane, a different call site, throw, close, an exception -- to that twin, so both record
 * the same events. A value handed over becomes one of the recorder's value rows. On 3.11 the
 * same fast paths are driven from _generator_eval.c.
 */

#include "_handoffs.h"

/* -- GeneratorHooks ------------------------------------------------------------------------ */

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

/* Row `lane` of a value cache (tracer.sent_values, tracer.yielded_values), borrowed: None or
 * a CachedValue; NULL with an error for anything else. */
static PyObject *
cached_value(PyObject *cache, Py_ssize_t lane)
{
    if (lane < 0 || lane >= PyList_GET_SIZE(cache)) {
        PyErr_Format(PyExc_IndexError, "a value cache has no row for lane %zd", lane);
        return NULL;
    }
    PyObject *cached = PyList_GET_ITEM(cache, lane);
    if (cached == Py_None) return cached;
    return checked_row(cached, CACHED_FIELDS, "a value cache");
}

/* The detail of a hand-off of `value` by `via` (whose plain detail is `base`): a new value
 * row, remembered in cache[lane] for values whose repr cannot change (as
 * GeneratorTracer.value_detail). `check_via`: a cached value counts only if it was handed
 * over the same way. */
static int
value_detail(GeneratorHooks *self, PyObject *value, PyObject *via, int32_t base,
             PyObject *cache, Py_ssize_t lane, int check_via, int32_t *out)
{
    PyObject *cached = cached_value(cache, lane);
    if (cached == NULL) return -1;
    if (cached != Py_None && PyTuple_GET_ITEM(cached, CACHED_VALUE) == value
        && (!check_via || PyTuple_GET_ITEM(cached, CACHED_VIA) == via)) {
        return as_int32(PyTuple_GET_ITEM(cached, CACHED_DETAIL), out);
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
        cached = cached_value(cache, lane);  /* short_repr ran Python code: look again */
        if (cached == NULL) {
            Py_DECREF(index);
            return -1;
        }
#ifndef Py_GIL_DISABLED
        if (cached != Py_None && PyTuple_CheckExact(cached) && Py_REFCNT(cached) == 1) {
            /* Only this table holds the old entry: refill it instead of making a new one.
               Safe because entries only ever hold a stable value (an atomic object), a via
               str and an int: dropping them runs no code, and a tuple caches no hash. */
            PyObject *old_value = PyTuple_GET_ITEM(cached, CACHED_VALUE);
            PyObject *old_via = PyTuple_GET_ITEM(cached, CACHED_VIA);
            PyObject *old_index = PyTuple_GET_ITEM(cached, CACHED_DETAIL);
            PyTuple_SET_ITEM(cached, CACHED_VALUE, Py_NewRef(value));
            PyTuple_SET_ITEM(cached, CACHED_VIA, Py_NewRef(via));
            PyTuple_SET_ITEM(cached, CACHED_DETAIL, index);
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
    if (checked_row(read, VALUE_READ_FIELDS, "a site's ValueRead") == NULL) return NULL;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(read, VALUE_READ_KIND));
    if (kind == -1 && PyErr_Occurred()) return NULL;
    PyObject *operand = PyTuple_GET_ITEM(read, VALUE_READ_OPERAND);
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
        Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(read, VALUE_READ_SLOT));
        if (slot == -1 && PyErr_Occurred()) return NULL;
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

/* Item `lane` of a per-lane list of lanes (tracer.delegates, tracer.delegators). */
static int
lane_item(PyObject *table, Py_ssize_t lane, const char *name, int32_t *out)
{
    if (lane < 0 || lane >= PyList_GET_SIZE(table)) {
        PyErr_Format(PyExc_IndexError, "%s has no row for lane %zd", name, lane);
        return -1;
    }
    return as_int32(PyList_GET_ITEM(table, lane), out);
}

/* tracer.pending, borrowed, when it is a list of PENDING_FIELDS items; else NULL with an
 * error. */
static PyObject *
pending_row(GeneratorHooks *self)
{
    if (PyList_GET_SIZE(self->pending) == PENDING_FIELDS) return self->pending;
    PyErr_Format(PyExc_TypeError, "tracer.pending is not a list of %d fields", PENDING_FIELDS);
    return NULL;
}

/* Field `field` of tracer.pending. */
static int
pending_field(GeneratorHooks *self, Py_ssize_t field, int32_t *out)
{
    PyObject *pending = pending_row(self);
    return pending == NULL ? -1 : as_int32(PyList_GET_ITEM(pending, field), out);
}

static int
set_pending_field(GeneratorHooks *self, Py_ssize_t field, int32_t value)
{
    PyObject *pending = pending_row(self);
    PyObject *number = pending == NULL ? NULL : PyLong_FromLong(value);
    if (number == NULL) return -1;
    PyList_SetItem(pending, field, number);  /* steals number */
    return 0;
}

/* The switch detail of a resume from `site` (whose driver frame is `driver`): its plain
 * detail, or a value row for the value its ValueRead reads. */
static int
resume_detail(GeneratorHooks *self, PyObject *site, PyFrameObject *driver, Py_ssize_t lane,
              int32_t *detail)
{
    PyObject *read = PyTuple_GET_ITEM(site, SITE_VALUE_READ);
    if (read == Py_None) return as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), detail);
    PyObject *value = read_value(self, read, driver);
    if (value == NULL) return -1;
    int failed;
    if (value == self->missing) {
        failed = as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), detail);
    }
    else {
        int32_t base;
        failed = as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), &base);
        if (!failed) {
            failed = value_detail(self, value, PyTuple_GET_ITEM(site, SITE_VIA), base,
                                  self->sent_values, lane, 1, detail);
        }
    }
    Py_DECREF(value);
    return failed;
}

/* The source index where `lane`'s frame resumes, at `offset` (cached per code and offset:
 * the lane's row of tracer.resume_sources is its code's table, or None before it has one). */
static int
resume_source(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset,
              int32_t *source)
{
    PyObject *sources = lane < PyList_GET_SIZE(self->resume_sources)
        ? PyList_GET_ITEM(self->resume_sources, lane) : NULL;
    if (sources == NULL || (sources != Py_None && !PyDict_CheckExact(sources))) {
        PyErr_Format(PyExc_IndexError, "tracer.resume_sources has no table for lane %zd", lane);
        return -1;
    }
    PyObject *known = sources == Py_None ? NULL : PyDict_GetItemWithError(sources, offset);
    if (known != NULL) return as_int32(known, source);
    if (PyErr_Occurred()) return -1;
    PyObject *lane_number = PyLong_FromSsize_t(lane);
    PyObject *found = lane_number == NULL ? NULL
        : PyObject_CallFunctionObjArgs(self->resume_source, lane_number, frame, NULL);
    Py_XDECREF(lane_number);
    int failed = found == NULL ? -1 : as_int32(found, source);
    Py_XDECREF(found);
    return failed;
}

/* 1: recorded the resume of `lane` (frame `frame`, resumed at `offset`) from its usual call
 * site, or noted it as one step of a hand-off passing down a delegation chain; 0: not the
 * usual site, the Python path must handle it; -1: error. The twin of hot_paths' resume in
 * generator_model.py. */
int
fast_resume(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset)
{
    PyObject *site = table_row(self->sites, lane, SITE_FIELDS, "tracer.sites");
    if (site == NULL) return -1;
    PyFrameObject *driver = PyFrame_GetBack(frame);
    int same_site = driver != NULL
        && (PyObject *)driver == PyTuple_GET_ITEM(site, SITE_DRIVER_FRAME);
    if (driver != NULL && !same_site) {
        /* a plain function called afresh per hand-off: the same code, called from the same
           frame (see Site in generator_model.py) */
        PyCodeObject *code = PyFrame_GetCode(driver);
        if ((PyObject *)code == PyTuple_GET_ITEM(site, SITE_DRIVER_CODE)) {
            PyFrameObject *caller = PyFrame_GetBack(driver);
            same_site = caller != NULL
                && (PyObject *)caller == PyTuple_GET_ITEM(site, SITE_DRIVER_CALLER);
            Py_XDECREF(caller);
        }
        Py_DECREF(code);
    }
    if (!same_site
        || PyFrame_GetLasti(driver)
           != PyLong_AsLong(PyTuple_GET_ITEM(site, SITE_DRIVER_OFFSET))) {
        Py_XDECREF(driver);
        return PyErr_Occurred() ? -1 : 0;
    }
    int32_t expected, delegate, detail = 0, source;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0) {
        Py_DECREF(driver);
        return -1;
    }
    if (expected != NO_LANE && expected != lane) {
        Py_DECREF(driver);
        return 0;  /* not the lane the pending hand-off goes to: the Python path records it */
    }
    Py_INCREF(site);  /* the value's repr may run code that replaces it */
    int failed = expected == NO_LANE ? resume_detail(self, site, driver, lane, &detail) : 0;
    Py_DECREF(driver);
    if (!failed) failed = resume_source(self, frame, lane, offset, &source);
    if (!failed) failed = lane_item(self->delegates, lane, "tracer.delegates", &delegate);
    int32_t origin = NO_LANE, origin_blocked = 0;
    if (!failed && expected == NO_LANE) {
        failed = as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &origin) < 0
            || as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_BLOCKED), &origin_blocked) < 0;
        if (!failed && delegate != NO_LANE) {
            /* the lane passes the resume on to its delegate: record it where it ends */
            failed = set_pending_field(self, PENDING_DRIVER_LANE, origin) < 0
                || set_pending_field(self, PENDING_OUTER_LANE, (int32_t)lane) < 0
                || set_pending_field(self, PENDING_SWITCH_DETAIL, detail) < 0
                || set_pending_field(self, PENDING_DRIVER_BLOCKED, origin_blocked) < 0
                || set_pending_field(self, PENDING_OUTER_SOURCE, source) < 0
                || set_pending_field(self, PENDING_EXPECTED_LANE, delegate) < 0;
            Py_DECREF(site);
            return failed ? -1 : 1;
        }
    }
    Py_DECREF(site);
    if (failed) return -1;
    if (expected != NO_LANE) {
        if (delegate != NO_LANE) {
            return set_pending_field(self, PENDING_EXPECTED_LANE, delegate) < 0 ? -1 : 1;
        }
        if (pending_field(self, PENDING_DRIVER_LANE, &origin) < 0
            || pending_field(self, PENDING_SWITCH_DETAIL, &detail) < 0
            || pending_field(self, PENDING_DRIVER_BLOCKED, &origin_blocked) < 0
            || set_pending_field(self, PENDING_EXPECTED_LANE, NO_LANE) < 0) {
            return -1;
        }
    }
    if (recorder_api->handoff(self->recorder, origin, (int32_t)lane, detail, CODE_BLOCKED,
                              origin_blocked, source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, (int32_t)lane);
    return 1;
}

/* 1: recorded `lane` yielding `value` back to whoever drives its delegation chain (or passing
 * its delegate's value up, recorded already); 0: a hand-off is pending, the Python path must
 * handle it; -1: error. The twin of hot_paths' yield_ in generator_model.py. */
int
fast_yield(GeneratorHooks *self, Py_ssize_t lane, PyObject *value)
{
    int32_t expected, delegate;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0) return -1;
    if (expected != NO_LANE) return 0;
    if (lane_item(self->delegates, lane, "tracer.delegates", &delegate) < 0) return -1;
    if (delegate != NO_LANE) return 1;
    int32_t detail, driver, driver_blocked, driver_source;
    if (value_detail(self, value, str_yield, self->yield_detail, self->yielded_values, lane, 0,
                     &detail) < 0) {
        return -1;
    }
    int32_t outer = (int32_t)lane, delegator;
    Py_ssize_t steps = PyList_GET_SIZE(self->delegators);
    for (;;) {
        if (lane_item(self->delegators, outer, "tracer.delegators", &delegator) < 0) return -1;
        if (delegator == NO_LANE) break;
        if (--steps < 0) {
            PyErr_SetString(PyExc_RuntimeError, "tracer.delegators has a cycle");
            return -1;
        }
        outer = delegator;
    }
    PyObject *site = table_row(self->sites, outer, SITE_FIELDS, "tracer.sites");
    if (site == NULL
        || as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &driver) < 0
        || as_int32(PyTuple_GET_ITEM(site, SITE_LANE_BLOCKED), &driver_blocked) < 0
        || as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_SOURCE), &driver_source) < 0) {
        return -1;
    }
    if (recorder_api->handoff(self->recorder, (int32_t)lane, driver, detail, CODE_BLOCKED,
                              driver_blocked, driver_source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, driver);
    return 1;
}

/* The unspecialised opcode of the instruction `frame` is at; -1 when unknown, -2 on error. */
static int
current_opcode(PyFrameObject *frame)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
    PyObject *raw = PyCode_GetCode(code);  /* cached by the code object */
    Py_DECREF(code);
    if (raw == NULL) return -2;
    int lasti = PyFrame_GetLasti(frame);
    int opcode = lasti >= 0 && lasti < PyBytes_GET_SIZE(raw)
        ? (unsigned char)PyBytes_AS_STRING(raw)[lasti] : -1;
    Py_DECREF(raw);
    return opcode;
}

/* Where the body of `code` starts, when a backend has seen this followed program code start
 * (tracer.started_codes): 1 with *start set; 0 when not; -1 on error. */
static int
started_code(GeneratorHooks *self, PyCodeObject *code, long *start)
{
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(self->started_codes, key);
    Py_DECREF(key);
    if (found == NULL) return PyErr_Occurred() ? -1 : 0;
    *start = PyLong_AsLong(found);
    return *start == -1 && PyErr_Occurred() ? -1 : 1;
}

/* 1: `frame`, a coroutine starting, is awaited (`await`, `yield from`: a SEND) by a lane or by
 * a coroutine running as a call, so it runs as a call in its awaiter too (tracer.calls); 0:
 * not so, the Python path decides; -1: error. The twin of the call check in
 * GeneratorTracer.resumed. */
int
fast_call_start(GeneratorHooks *self, PyFrameObject *frame)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
    long start = 0;
    int known = (code->co_flags & CO_COROUTINE_FLAG) ? started_code(self, code, &start) : 0;
    Py_DECREF(code);
    if (known <= 0) return known;
    if (PyFrame_GetLasti(frame) > start) return 0;  /* begun before the tracer: Python says */
    Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
    if (lane != -1) return lane == -2 ? -1 : 0;
    PyFrameObject *caller = PyFrame_GetBack(frame);
    if (caller == NULL) return 0;
    lane = lane_in(self->lanes, (PyObject *)caller);
    int awaited = lane >= 0 ? 1
        : lane == -2 ? -1 : PyDict_Contains(self->calls, (PyObject *)caller);
    if (awaited > 0) {
        int opcode = current_opcode(caller);
        awaited = opcode == -2 ? -1 : opcode == self->send_opcode;
    }
    Py_DECREF(caller);
    if (awaited <= 0) return awaited;
    return PyDict_SetItem(self->calls, (PyObject *)frame, Py_True) < 0 ? -1 : 1;
}

/* 1: `frame`, a coroutine running as a call, returns (nothing to record); 0: it is not one. */
int
fast_call_return(GeneratorHooks *self, PyFrameObject *frame)
{
    return PyDict_GET_SIZE(self->calls) ? dict_discard(self->calls, (PyObject *)frame) : 0;
}

/* The sys.monitoring events GeneratorHooks takes, and their callbacks' signatures. */
enum { ON_START, ON_RESUME, ON_YIELD, ON_RETURN };
static const char *const callback_signatures[] = {
    "on_start(code, offset)", "on_resume(code, offset)", "on_yield(code, offset, value)",
    "on_return(code, offset, value)",
};

/* PY_START or PY_RETURN: 1 when a coroutine running as a call starts or returns (or the code
 * is a known one, on a thread not followed); 0 for the Python twin; -1 on error. */
static int
call_event(GeneratorHooks *self, PyObject *code, int returning)
{
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "a sys.monitoring callback's code is not a code object");
        return -1;
    }
    long start;
    int known = returning && !PyDict_GET_SIZE(self->calls) ? 0
        : started_code(self, (PyCodeObject *)code, &start);
    if (known <= 0) return known;
    if (PyThreadState_Get() != self->thread) return 1;  /* as the twin does */
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) return 0;
    return returning ? fast_call_return(self, frame) : fast_call_start(self, frame);
}

/* PY_RESUME or PY_YIELD: 1 when a known lane's hand-off is recorded (or on a thread not
 * followed); 0 for the Python twin; -1 on error. */
static int
handoff_event(GeneratorHooks *self, PyObject *const *args, int yielding)
{
    if (PyThreadState_Get() != self->thread) return 1;
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) return 0;
    Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
    if (lane < 0) return lane == -2 ? -1 : 0;
    return yielding ? fast_yield(self, lane, args[2]) : fast_resume(self, frame, lane, args[1]);
}

/* A sys.monitoring callback: the fast paths in C, the Python twin for anything else. */
static PyObject *
monitoring_callback(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs, int event)
{
    if (nargs != 2 + (event == ON_YIELD || event == ON_RETURN)) {
        PyErr_SetString(PyExc_TypeError, callback_signatures[event]);
        return NULL;
    }
    PyObject *fallback = event == ON_START ? self->start_fallback
        : event == ON_RESUME ? self->resume_fallback
        : event == ON_YIELD ? self->yield_fallback : self->return_fallback;
    if (fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "GeneratorHooks was made without start_fallback "
                        "and return_fallback");
        return NULL;
    }
    int done = event == ON_START || event == ON_RETURN
        ? call_event(self, args[0], event == ON_RETURN)
        : handoff_event(self, args, event == ON_YIELD);
    if (done < 0) return NULL;
    if (done) Py_RETURN_NONE;
    return PyObject_Vectorcall(fallback, args, nargs, NULL);
}

/* hooks_on_start(code, offset) and the others: the callbacks registered */
#define MONITORING_CALLBACK(name, event)                                                  \
    static PyObject *                                                                     \
    name(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)                   \
    {                                                                                     \
        return monitoring_callback(self, args, nargs, event);                             \
    }
MONITORING_CALLBACK(hooks_on_start, ON_START)
MONITORING_CALLBACK(hooks_on_resume, ON_RESUME)
MONITORING_CALLBACK(hooks_on_yield, ON_YIELD)
MONITORING_CALLBACK(hooks_on_return, ON_RETURN)
#undef MONITORING_CALLBACK

/* install_trace(call_fallback, local_fallback, errors): on 3.11, installs the C trace */
static PyObject *
hooks_install_trace(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
#if PY_VERSION_HEX < 0x030C0000
    if (generator_install_trace(self, args, nargs) < 0) return NULL;
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
    if (generator_install_eval(self, args, nargs) < 0) return NULL;
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
    return PyBool_FromLong(generator_uninstall_eval(self));
#else
    Py_RETURN_FALSE;
#endif
}

static int
hooks_init(GeneratorHooks *self, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *recorder, *resume_fallback, *yield_fallback, *short_repr, *missing;
    PyObject *start_fallback = NULL, *return_fallback = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOO|OO:GeneratorHooks", &tracer, &recorder,
                          &resume_fallback, &yield_fallback, &short_repr, &missing,
                          &start_fallback, &return_fallback)) {
        return -1;
    }
    if (check_recorder(recorder) < 0) return -1;
    self->thread = PyThreadState_Get();
    Py_XSETREF(self->recorder, Py_NewRef(recorder));
    Py_XSETREF(self->resume_fallback, Py_NewRef(resume_fallback));
    Py_XSETREF(self->yield_fallback, Py_NewRef(yield_fallback));
    Py_XSETREF(self->short_repr, Py_NewRef(short_repr));
    Py_XSETREF(self->missing, Py_NewRef(missing));
    Py_XSETREF(self->start_fallback, Py_XNewRef(start_fallback));
    Py_XSETREF(self->return_fallback, Py_XNewRef(return_fallback));
    PyObject *opcodes = PyImport_ImportModule("opcode");
    PyObject *opmap = opcodes == NULL ? NULL : PyObject_GetAttrString(opcodes, "opmap");
    Py_XDECREF(opcodes);
    PyObject *send = opmap == NULL ? NULL : PyObject_GetItem(opmap, str_send);
    Py_XDECREF(opmap);
    self->send_opcode = send == NULL ? -1 : (int)PyLong_AsLong(send);
    Py_XDECREF(send);
    if (PyErr_Occurred()) return -1;
    PyObject *yield_detail = PyObject_GetAttrString(tracer, "yield_detail");
    if (yield_detail == NULL) return -1;
    int bad = as_int32(yield_detail, &self->yield_detail);
    Py_DECREF(yield_detail);
    if (bad) return -1;
    if (take_table(&self->lanes, tracer, "lanes", is_exact_dict) < 0
        || take_table(&self->sites, tracer, "sites", is_exact_list) < 0
        || take_table(&self->sent_values, tracer, "sent_values", is_exact_list) < 0
        || take_table(&self->yielded_values, tracer, "yielded_values", is_exact_list) < 0
        || take_table(&self->resume_sources, tracer, "resume_sources", is_exact_list) < 0
        || take_table(&self->delegates, tracer, "delegates", is_exact_list) < 0
        || take_table(&self->delegators, tracer, "delegators", is_exact_list) < 0
        || take_table(&self->pending, tracer, "pending", is_exact_list) < 0
        || take_table(&self->calls, tracer, "calls", is_exact_dict) < 0
        || take_table(&self->started_codes, tracer, "started_codes", is_exact_dict) < 0
        || take_table(&self->resume_source, tracer, "resume_source", PyCallable_Check) < 0) {
        return -1;
    }
    return 0;
}

static int
hooks_traverse(GeneratorHooks *self, visitproc visit, void *arg)
{
#define VISIT_FIELD(field) Py_VISIT(self->field);
    GENERATOR_HOOKS_OBJECTS(VISIT_FIELD)
#undef VISIT_FIELD
    return 0;
}

static int
hooks_clear(GeneratorHooks *self)
{
#define CLEAR_FIELD(field) Py_CLEAR(self->field);
    GENERATOR_HOOKS_OBJECTS(CLEAR_FIELD)
#undef CLEAR_FIELD
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
    {"on_start", (PyCFunction)(void (*)(void))hooks_on_start, METH_FASTCALL,
     "on_start(code, offset): the sys.monitoring PY_START callback."},
    {"on_return", (PyCFunction)(void (*)(void))hooks_on_return, METH_FASTCALL,
     "on_return(code, offset, value): the sys.monitoring PY_RETURN callback."},
    {"install_trace", (PyCFunction)(void (*)(void))hooks_install_trace, METH_FASTCALL,
     "install_trace(call_fallback, local_fallback, errors): the C trace function (3.11)."},
    {"install_eval", (PyCFunction)(void (*)(void))hooks_install_eval, METH_FASTCALL,
     "install_eval(call_fallback, local_fallback, errors): the frame evaluation hook (3.11)."},
    {"uninstall_eval", (PyCFunction)hooks_uninstall_eval, METH_NOARGS,
     "uninstall_eval(): removes the frame evaluation hook this installed."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject GeneratorHooksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._handoffs.GeneratorHooks",
    .tp_doc = "GeneratorHooks(tracer, recorder, resume_fallback, yield_fallback, short_repr, "
              "missing[, start_fallback, return_fallback]): generator hand-offs recorded in C.",
    .tp_basicsize = sizeof(GeneratorHooks),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hooks_init,
    .tp_traverse = (traverseproc)hooks_traverse,
    .tp_clear = (inquiry)hooks_clear,
    .tp_dealloc = (destructor)hooks_dealloc,
    .tp_methods = hooks_methods,
};

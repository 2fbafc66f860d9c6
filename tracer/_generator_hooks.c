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
    Py_INCREF(site);  /* the value's repr may run code that replaces it */
    int32_t detail;
    int failed = 0;
    PyObject *read = PyTuple_GET_ITEM(site, SITE_VALUE_READ);
    if (read == Py_None) {
        failed = as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), &detail);
    }
    else {
        PyObject *value = read_value(self, read, driver);
        if (value == NULL) failed = -1;
        else if (value == self->missing) {
            failed = as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), &detail);
        }
        else {
            int32_t base;
            failed = as_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), &base);
            if (!failed) {
                failed = value_detail(self, value, PyTuple_GET_ITEM(site, SITE_VIA), base,
                                      self->sent_values, lane, 1, &detail);
            }
        }
        Py_XDECREF(value);
    }
    Py_DECREF(driver);
    int32_t source, driver_lane, driver_blocked;
    if (!failed) {
        PyObject *sources = lane < PyList_GET_SIZE(self->resume_sources)
            ? PyList_GET_ITEM(self->resume_sources, lane) : NULL;
        PyObject *known = sources != NULL && PyDict_CheckExact(sources)
            ? PyDict_GetItemWithError(sources, offset) : NULL;
        if (sources == NULL || !PyDict_CheckExact(sources)) {
            PyErr_Format(PyExc_IndexError, "tracer.resume_sources has no table for lane %zd",
                         lane);
            failed = -1;
        }
        else if (known != NULL) failed = as_int32(known, &source);
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
        failed = as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &driver_lane) < 0
            || as_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_BLOCKED), &driver_blocked) < 0;
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
int
fast_yield(GeneratorHooks *self, Py_ssize_t lane, PyObject *value)
{
    int32_t detail, driver, driver_blocked, driver_source;
    if (value_detail(self, value, str_yield, self->yield_detail, self->yielded_values, lane, 0,
                     &detail) < 0) {
        return -1;
    }
    PyObject *site = table_row(self->sites, lane, SITE_FIELDS, "tracer.sites");
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

PyTypeObject GeneratorHooksType = {
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

/* GeneratorHooks: the generator model's hot paths (tracer.models.generator_model).
 *
 * on_start / on_resume / on_yield / on_return are sys.monitoring callbacks (3.12+). Each
 * mirrors a path of its Python twin (the same per-lane tables, read in place): a hand-off from
 * the usual call site, a yield, a lane started by a lane's `yield from` or for loop, a lane
 * returning, a coroutine running as a call in its awaiter. Anything unusual -- a different
 * call site, a value sent to a new lane, throw, close, an exception, a fact not learnt yet --
 * goes to that twin, so both record the same events. A value handed over becomes one of the
 * recorder's value rows. On 3.11 the same fast paths are driven from _generator_eval.c.
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

/* "00" to "99": decimal writes two digits per division. */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes `number` in decimal, as repr() does, ending just before `end`; returns its start.
 * (snprintf costs more than the rest of a hand-off; so did a division per digit.) */
static char *
decimal(long long number, char *end)
{
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number
                                              : (unsigned long long)number;
    char *at = end;
    while (magnitude >= 100) {
        const char *pair = digit_pairs + 2 * (magnitude % 100);
        magnitude /= 100;
        *--at = pair[1];
        *--at = pair[0];
    }
    if (magnitude >= 10) {
        *--at = digit_pairs[2 * magnitude + 1];
        *--at = digit_pairs[2 * magnitude];
    }
    else {
        *--at = (char)('0' + magnitude);
    }
    if (number < 0) *--at = '-';
    return at;
}

/* 1: `number`, the detail of a cached value whose entry only the cache holds, now reads
 * `detail` instead, rewritten in place (both are value rows' details, ints of two digits);
 * 0: not so, a new int is needed. A new int per value handed over was the largest
 * allocation of a hand-off; no one else holds this one (its count is 1, and an int that
 * large is never shared or cached by the interpreter), so no one can see it change. */
static int
rewrite_detail(PyObject *number, int32_t detail)
{
#if PYLONG_BITS_IN_DIGIT == 30 && !defined(Py_GIL_DISABLED)
    if (detail < VALUE_ROW || !PyLong_CheckExact(number) || Py_REFCNT(number) != 1) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (((PyLongObject *)number)->long_value.lv_tag != (2 << _PyLong_NON_SIZE_BITS)) return 0;
    digit *digits = ((PyLongObject *)number)->long_value.ob_digit;
#else
    if (Py_SIZE(number) != 2) return 0;  /* (3.11: the digit count, positive) */
    digit *digits = ((PyLongObject *)number)->ob_digit;
#endif
    digits[0] = (digit)((uint32_t)detail & PyLong_MASK);
    digits[1] = (digit)((uint32_t)detail >> PyLong_SHIFT);
    return 1;
#else
    (void)number;
    (void)detail;
    return 0;
#endif
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
        return field_int32(PyTuple_GET_ITEM(cached, CACHED_DETAIL), out);
    }
    int stable = is_stable_repr(value);
    int failed;
    int overflow = 0;
    int64_t in_place;
    long long number = 0;
    if (int_in_place(value, &in_place)) number = in_place;
    else if (PyLong_CheckExact(value)) number = PyLong_AsLongLongAndOverflow(value, &overflow);
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
    if (!stable) return 0;
    cached = cached_value(cache, lane);  /* short_repr ran Python code: look again */
    if (cached == NULL) return -1;
#ifndef Py_GIL_DISABLED
    if (cached != Py_None && PyTuple_CheckExact(cached) && Py_REFCNT(cached) == 1) {
        /* Only this table holds the old entry: refill it instead of making a new one.
           Safe because entries only ever hold a stable value (an atomic object), a via
           str and an int: dropping them runs no code, and a tuple caches no hash. */
        PyObject *old_value = PyTuple_GET_ITEM(cached, CACHED_VALUE);
        PyObject *old_via = PyTuple_GET_ITEM(cached, CACHED_VIA);
        PyObject *old_index = PyTuple_GET_ITEM(cached, CACHED_DETAIL);
        PyObject *index = rewrite_detail(old_index, *out) ? Py_NewRef(old_index)
                                                           : PyLong_FromLong(*out);
        if (index == NULL) return -1;
        PyTuple_SET_ITEM(cached, CACHED_VALUE, Py_NewRef(value));
        PyTuple_SET_ITEM(cached, CACHED_VIA, Py_NewRef(via));
        PyTuple_SET_ITEM(cached, CACHED_DETAIL, index);
        Py_DECREF(old_value);
        Py_DECREF(old_via);
        Py_DECREF(old_index);
        return 0;
    }
#endif
    PyObject *index = PyLong_FromLong(*out);
    PyObject *entry = index == NULL ? NULL : PyTuple_Pack(3, value, via, index);
    Py_XDECREF(index);
    if (entry == NULL) return -1;
    PyList_SetItem(cache, lane, entry);  /* steals entry, drops the old one */
    return 0;
}

/* The value a site's ValueRead reads from the driver frame: a new reference, the `missing`
 * sentinel (new reference) when it is unbound, NULL on error. */
static PyObject *
read_value(GeneratorHooks *self, PyObject *read, PyFrameObject *driver)
{
    if (checked_row(read, VALUE_READ_FIELDS, "a site's ValueRead") == NULL) return NULL;
    int32_t kind;
    if (field_int32(PyTuple_GET_ITEM(read, VALUE_READ_KIND), &kind) < 0) return NULL;
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
        int32_t slot;
        if (field_int32(PyTuple_GET_ITEM(read, VALUE_READ_SLOT), &slot) < 0) return NULL;
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

static int
no_lane_row(const char *name, Py_ssize_t lane)
{
    PyErr_Format(PyExc_IndexError, "%s has no row for lane %zd", name, lane);
    return -1;
}

/* Item `lane` of a per-lane list of lanes (tracer.delegates, tracer.delegators). Inlined: a
 * hand-off reads three to five of these, and the call cost more than the read. */
static inline Py_ALWAYS_INLINE int
lane_item(PyObject *table, Py_ssize_t lane, const char *name, int32_t *out)
{
    if (lane < 0 || lane >= PyList_GET_SIZE(table)) return no_lane_row(name, lane);
    return field_int32(PyList_GET_ITEM(table, lane), out);
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
    return pending == NULL ? -1 : field_int32(PyList_GET_ITEM(pending, field), out);
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
    if (read == Py_None) return field_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), detail);
    PyObject *value = read_value(self, read, driver);
    if (value == NULL) return -1;
    int failed;
    if (value == self->missing) {
        failed = field_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), detail);
    }
    else {
        int32_t base;
        failed = field_int32(PyTuple_GET_ITEM(site, SITE_SWITCH_DETAIL), &base);
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
#if HAVE_LANE_MEMO
    int64_t at = 0;
    int memo = sources != Py_None && int_in_place(offset, &at);
    /* (the table is alive, held by its lane's row: were it another table at the address of
       one gone, its version would differ, as every dict's version is new) */
    if (memo && sources == self->source_table && at == self->source_offset
        && dict_version(sources) == self->source_table_version) {
        *source = self->source_answer;
        return 0;
    }
#endif
    PyObject *known = sources == Py_None ? NULL : PyDict_GetItemWithError(sources, offset);
    if (known != NULL) {
        if (field_int32(known, source) < 0) return -1;
#if HAVE_LANE_MEMO
        if (memo) {
            self->source_table = sources;
            self->source_table_version = dict_version(sources);
            self->source_offset = at;
            self->source_answer = *source;
        }
#endif
        return 0;
    }
    if (PyErr_Occurred()) return -1;
    PyObject *lane_number = PyLong_FromSsize_t(lane);
    PyObject *found = lane_number == NULL ? NULL
        : PyObject_CallFunctionObjArgs(self->resume_source, lane_number, frame, NULL);
    Py_XDECREF(lane_number);
    int failed = found == NULL ? -1 : field_int32(found, source);
    Py_XDECREF(found);
    return failed;
}

/* Whether `driver` (NULL for none) is the driver frame `site` was last resumed from, at the
 * same instruction: 1 yes, 0 no, -1 error. */
static int
site_matches(PyObject *site, PyFrameObject *driver)
{
    if (driver == NULL) return 0;
    int same_site = (PyObject *)driver == PyTuple_GET_ITEM(site, SITE_DRIVER_FRAME);
    if (!same_site) {
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
    if (!same_site) return 0;
    int32_t offset;
    if (field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_OFFSET), &offset) < 0) return -1;
    return PyFrame_GetLasti(driver) == offset;
}

/* `lane`, a delegate in a chain of `yield from` / `await`, resumes through its delegators:
 * the hand-off goes from the outermost lane's driver to it. On 3.12+ the delegators' own
 * resumes are switched off where they only pass a send on down (LaneCode.passing_resumes),
 * so this walks up the frames, each its delegator's, to the outermost lane (or to the lane
 * a pending hand-off expects) and records the hand-off as those resumes would have. 1:
 * recorded; 0: the Python path decides (GeneratorTracer._pass_down); -1: error. */
static int
chain_resume(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset,
             int32_t expected)
{
    /* (as the lane's own resume would: a lane whose site changed goes to the Python path,
       and so does one passing the send on further down, whose own resume came) */
    int32_t own_delegate;
    if (lane_item(self->delegates, lane, "tracer.delegates", &own_delegate) < 0) return -1;
    if (own_delegate != NO_LANE) return 0;
    PyObject *own_site = table_row(self->sites, lane, SITE_FIELDS, "tracer.sites");
    if (own_site == NULL) return -1;
    PyFrameObject *delegator_frame = PyFrame_GetBack(frame);
    int own = site_matches(own_site, delegator_frame);
    Py_XDECREF(delegator_frame);
    if (own <= 0) return own;
    PyFrameObject *at = (PyFrameObject *)Py_NewRef(frame);
    int32_t outer = (int32_t)lane, delegator, origin, detail = 0, origin_blocked, source;
    Py_ssize_t steps = PyList_GET_SIZE(self->delegators);
    int result = 0;
    for (;;) {
        if (lane_item(self->delegators, outer, "tracer.delegators", &delegator) < 0) goto done;
        if (delegator == NO_LANE) break;
        if (--steps < 0) {
            PyErr_SetString(PyExc_RuntimeError, "tracer.delegators has a cycle");
            goto done;
        }
        PyFrameObject *above = PyFrame_GetBack(at);
        if (above == NULL) goto done;
        Py_DECREF(at);
        at = above;
        Py_ssize_t above_lane = lane_in(self->lanes, (PyObject *)above);
        if (above_lane != delegator) goto done;  /* (-2: an error, reported below) */
        outer = delegator;
        if (outer == expected) break;
    }
    if (outer == (int32_t)lane) goto done;
    if (expected != NO_LANE) {
        if (outer != expected
            || pending_field(self, PENDING_DRIVER_LANE, &origin) < 0
            || pending_field(self, PENDING_SWITCH_DETAIL, &detail) < 0
            || pending_field(self, PENDING_DRIVER_BLOCKED, &origin_blocked) < 0) {
            goto done;
        }
    }
    else {
        PyObject *site = table_row(self->sites, outer, SITE_FIELDS, "tracer.sites");
        if (site == NULL) goto done;
        PyFrameObject *driver = PyFrame_GetBack(at);
        int matches = site_matches(site, driver);
        if (matches <= 0) {
            Py_XDECREF(driver);
            goto done;
        }
        Py_INCREF(site);  /* the value's repr may run code that replaces it */
        int failed = resume_detail(self, site, driver, outer, &detail) < 0
            || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &origin) < 0
            || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_BLOCKED), &origin_blocked) < 0;
        Py_DECREF(site);
        Py_DECREF(driver);
        if (failed) goto done;
    }
    if (resume_source(self, frame, lane, offset, &source) < 0
        || (expected != NO_LANE && set_pending_field(self, PENDING_EXPECTED_LANE, NO_LANE) < 0)
        || recorder_api->handoff(self->recorder, origin, (int32_t)lane, detail, CODE_BLOCKED,
                                 origin_blocked, source) < 0) {
        goto done;
    }
    recorder_api->set_current(self->recorder, (int32_t)lane);
    result = 1;
done:
    Py_DECREF(at);
    return PyErr_Occurred() ? -1 : result;
}

/* 1: recorded the resume of `lane` (frame `frame`, resumed at `offset`) from its usual call
 * site, or noted it as one step of a hand-off passing down a delegation chain; 0: not the
 * usual site, the Python path must handle it; -1: error. The twin of hot_paths' resume in
 * generator_model.py. */
int
fast_resume(GeneratorHooks *self, PyFrameObject *frame, Py_ssize_t lane, PyObject *offset)
{
    int32_t expected, delegate, detail = 0, source = 0, delegator;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0
        || lane_item(self->delegators, lane, "tracer.delegators", &delegator) < 0) {
        return -1;
    }
    if (self->disable != NULL && delegator != NO_LANE && expected != lane) {
        /* (3.12+, where delegators' resumes may be switched off: passes_send_down) */
        return chain_resume(self, frame, lane, offset, expected);
    }
    PyObject *site = table_row(self->sites, lane, SITE_FIELDS, "tracer.sites");
    if (site == NULL) return -1;
    PyFrameObject *driver = PyFrame_GetBack(frame);
    int matches = site_matches(site, driver);
    if (matches <= 0) {
        Py_XDECREF(driver);
        return matches;
    }
    if (expected != NO_LANE && expected != lane) {
        Py_DECREF(driver);
        return 0;  /* not the lane the pending hand-off goes to: the Python path records it */
    }
    Py_INCREF(site);  /* the value's repr may run code that replaces it */
    int failed = expected == NO_LANE ? resume_detail(self, site, driver, lane, &detail) : 0;
    Py_DECREF(driver);
    if (!failed) failed = lane_item(self->delegates, lane, "tracer.delegates", &delegate);
    /* (a resume passing on down a chain records nothing here: no source needed) */
    if (!failed && (expected == NO_LANE || delegate == NO_LANE)) {
        failed = resume_source(self, frame, lane, offset, &source);
    }
    int32_t origin = NO_LANE, origin_blocked = 0;
    if (!failed && expected == NO_LANE) {
        failed = field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &origin) < 0
            || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_BLOCKED), &origin_blocked) < 0;
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
static int yield_from_lane(GeneratorHooks *self, Py_ssize_t lane, int32_t delegate,
                           PyObject *value);

int
fast_yield(GeneratorHooks *self, Py_ssize_t lane, PyObject *value)
{
    int32_t delegate;
    if (lane_item(self->delegates, lane, "tracer.delegates", &delegate) < 0) return -1;
    return yield_from_lane(self, lane, delegate, value);
}

/* fast_yield for a lane whose delegate, `delegate`, is read already. */
static int
yield_from_lane(GeneratorHooks *self, Py_ssize_t lane, int32_t delegate, PyObject *value)
{
    int32_t expected;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0) return -1;
    if (expected != NO_LANE) return 0;
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
        || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &driver) < 0
        || field_int32(PyTuple_GET_ITEM(site, SITE_LANE_BLOCKED), &driver_blocked) < 0
        || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_SOURCE), &driver_source) < 0) {
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

/* The LaneCode of `code` (borrowed) when a backend has seen this followed program code start
 * (tracer.started_codes); NULL when not, with an error set on failure. */
static PyObject *
started_code(GeneratorHooks *self, PyCodeObject *code)
{
    PyObject *key = PyLong_FromVoidPtr(code);
    if (key == NULL) return NULL;
    PyObject *facts = PyDict_GetItemWithError(self->started_codes, key);
    Py_DECREF(key);
    return facts == NULL ? NULL : checked_row(facts, LANE_CODE_FIELDS, "a LaneCode");
}

/* 1: `frame`, a coroutine starting, is awaited (`await`, `yield from`: a SEND) by `caller`, a
 * lane or a coroutine running as a call, so it runs as a call in its awaiter too
 * (tracer.calls); 0: not so; -1: error. The twin of the call check in GeneratorTracer.resumed. */
static int
call_start(GeneratorHooks *self, PyFrameObject *frame, PyFrameObject *caller)
{
    Py_ssize_t lane = lane_in(self->lanes, (PyObject *)caller);
    int awaited = lane >= 0 ? 1
        : lane == -2 ? -1 : PyDict_Contains(self->calls, (PyObject *)caller);
    if (awaited > 0) {
        int opcode = current_opcode(caller);
        awaited = opcode == -2 ? -1 : opcode == self->send_opcode;
    }
    if (awaited <= 0) return awaited;
    return PyDict_SetItem(self->calls, (PyObject *)frame, Py_True) < 0 ? -1 : 1;
}

/* table[index] = value, for the per-lane lists of ints (tracer.delegates, ...). */
static int
set_lane_item(PyObject *table, Py_ssize_t index, long value)
{
    PyObject *number = PyLong_FromLong(value);
    if (number == NULL) return -1;
    return PyList_SetItem(table, index, number);  /* steals number; checks the index */
}

/* dict[key] = value, an int. */
static int
set_dict_int(PyObject *dict, PyObject *key, long value)
{
    PyObject *number = PyLong_FromLong(value);
    if (number == NULL) return -1;
    int failed = PyDict_SetItem(dict, key, number);
    Py_DECREF(number);
    return failed;
}

/* The int a dict holds under `key` (or, when `key` is NULL, under the int `int_key`): 1 with
 * *out set; 0 when absent; -1 on error. */
static int
known_int(PyObject *dict, PyObject *key, long int_key, int32_t *out)
{
    PyObject *number = key == NULL ? PyLong_FromLong(int_key) : Py_NewRef(key);
    if (number == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(dict, number);
    Py_DECREF(number);
    if (found == NULL) return PyErr_Occurred() ? -1 : 0;
    return field_int32(found, out) < 0 ? -1 : 1;
}

/* `delegator` is suspended in `yield from` of `lane`, a new lane (GeneratorTracer._delegate). */
static int
delegate_to_new_lane(GeneratorHooks *self, int32_t delegator, int32_t lane)
{
    int32_t old, old_delegator;
    if (lane_item(self->delegates, delegator, "tracer.delegates", &old) < 0) return -1;
    if (old != NO_LANE && old != lane) {
        if (lane_item(self->delegators, old, "tracer.delegators", &old_delegator) < 0) return -1;
        if (old_delegator == delegator && set_lane_item(self->delegators, old, NO_LANE) < 0) {
            return -1;
        }
    }
    return set_lane_item(self->delegates, delegator, lane) < 0
        || set_lane_item(self->delegators, lane, delegator) < 0 ? -1 : 0;
}

/* The source index of the line `frame` is at, as HandoffLanes.source_at has it: 1 with *out
 * set; 0 when not known yet; -1 on error. The last few answers are kept here: a new lane's
 * driver is one of a few `yield from` / for loop sites, most of the time. (A code's id stays
 * its own while HandoffLanes.codes holds it, and an answer never changes.) */
static int
driver_source(GeneratorHooks *self, PyFrameObject *frame, int32_t *out)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
    int lasti = PyFrame_GetLasti(frame);
    for (int i = 0; i < SOURCE_MEMO; i++) {
        if (self->source_memo[i].code == (void *)code && self->source_memo[i].lasti == lasti) {
            Py_DECREF(code);
            *out = self->source_memo[i].source;
            return 1;
        }
    }
    PyObject *key = Py_BuildValue("(Ni)", PyLong_FromVoidPtr(code), lasti);
    if (key == NULL) {
        Py_DECREF(code);
        return -1;
    }
    int found = known_int(self->sources_at, key, 0, out);
    Py_DECREF(key);
    if (found > 0) {
        int slot = self->source_memo_next;
        self->source_memo_next = (slot + 1) % SOURCE_MEMO;
        self->source_memo[slot].code = (void *)code;
        self->source_memo[slot].lasti = lasti;
        self->source_memo[slot].source = *out;
    }
    Py_DECREF(code);
    return found;
}

/* What a new lane's start needs that is known already (lane_start_facts). */
typedef struct {
    int32_t driver, switch_detail, lane_blocked, driver_source, source, first_source, lane;
    PyObject *via;  /* borrowed: an interned name */
    int delegating;
} LaneStart;

/* 1: everything a new lane's start needs is known; 0: something is not, or the driver is not
 * a lane running `yield from` (SEND) or a for loop (FOR_ITER), as GeneratorTracer._driver_of
 * and _site_of would find it: the Python path decides (and learns what was missing); -1:
 * error. Nothing is changed yet. */
static int
lane_start_facts(GeneratorHooks *self, PyFrameObject *frame, PyObject *facts,
                 PyFrameObject *driver_frame, LaneStart *start)
{
    PyObject *last_caller = PyObject_GetAttr(self->tracer, str_last_caller);
    if (last_caller == NULL) return -1;
    Py_DECREF(last_caller);
    if (last_caller == (PyObject *)driver_frame) return 0;
    Py_ssize_t driver = lane_in(self->lanes, (PyObject *)driver_frame);
    if (driver < 0) return driver == -2 ? -1 : 0;
    start->driver = (int32_t)driver;
    int opcode = current_opcode(driver_frame);
    if (opcode == -2) return -1;
    start->delegating = opcode == self->send_opcode;
    if (!start->delegating && opcode != self->for_iter_opcode) return 0;
    start->via = start->delegating ? str_send : str_next;
    int found = known_int(self->via_details, start->via, 0, &start->switch_detail);
    if (found <= 0) return found;
    found = known_int(self->blocked_details, NULL, driver, &start->lane_blocked);
    if (found <= 0) return found;
    found = driver_source(self, driver_frame, &start->driver_source);
    if (found <= 0) return found;
    found = known_int(PyTuple_GET_ITEM(facts, LANE_CODE_RESUME_SOURCES), NULL,
                      PyFrame_GetLasti(frame), &start->source);
    if (found <= 0) return found;
    if (field_int32(PyTuple_GET_ITEM(facts, LANE_CODE_SOURCE), &start->first_source) < 0) {
        return -1;
    }
    /* the per-lane tables must have the new lane's row already (HandoffLanes.spawn grows
       them, a chunk at a time) */
    PyObject *count = PyObject_GetAttr(self->recorder, str_lane_count);
    if (count == NULL || field_int32(count, &start->lane) < 0) {
        Py_XDECREF(count);
        return -1;
    }
    Py_DECREF(count);
    PyObject *tables[] = {self->sites, self->sent_values, self->yielded_values,
                          self->resume_sources, self->delegates, self->delegators};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        if (start->lane >= PyList_GET_SIZE(tables[i])) return 0;
    }
    if (self->spawn_base < 0) {
        /* interned where Recorder.spawn would intern it: now, before the lane's own rows */
        PyObject *base = PyObject_CallMethod(self->recorder, "spawn_base", "s", "generator");
        int failed = base == NULL || field_int32(base, &self->spawn_base) < 0;
        Py_XDECREF(base);
        if (failed) {
            self->spawn_base = -1;
            return -1;
        }
    }
    return 1;
}

/* HandoffLanes.unique_name: `base` the first time, then "base-2", ... (a new reference). */
static PyObject *
unique_name(GeneratorHooks *self, PyObject *base)
{
    int32_t count;
    int found = known_int(self->name_counts, base, 0, &count);
    if (found < 0) return NULL;
    count = found ? count + 1 : 1;
    if (set_dict_int(self->name_counts, base, count) < 0) return NULL;
    if (count == 1) return Py_NewRef(base);
    /* "base-N", written by hand (PyUnicode_FromFormat parses its format every time) */
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(base, &size);
    if (text == NULL || size > 200) {
        PyErr_Clear();
        return PyUnicode_FromFormat("%U-%d", base, (int)count);
    }
    char buffer[232];
    memcpy(buffer, text, (size_t)size);
    buffer[size] = '-';
    char digits[24];
    char *start = decimal(count, digits + sizeof digits);
    Py_ssize_t length = digits + sizeof digits - start;
    memcpy(buffer + size + 1, start, (size_t)length);
    return PyUnicode_DecodeUTF8(buffer, size + 1 + length, NULL);
}

/* 1: `frame`, a generator starting, is a new lane and its start is recorded; 0: the Python
 * path decides; -1: error. The twin of GeneratorTracer.resumed and _resumed for a generator a
 * lane starts with `yield from` or a for loop. */
static int
lane_start(GeneratorHooks *self, PyFrameObject *frame, PyCodeObject *code, PyObject *facts,
           PyFrameObject *driver_frame)
{
    int32_t expected;
    if (PyDict_GET_SIZE(self->calls) || (code->co_flags & CO_COROUTINE_FLAG)) return 0;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0) return -1;
    if (expected != NO_LANE) return 0;
    LaneStart start;
    int ready = lane_start_facts(self, frame, facts, driver_frame, &start);
    if (ready <= 0) return ready;
    PyObject *name = unique_name(self, code->co_name);
    if (name == NULL) return -1;
    int32_t lane, lane_blocked;
    PyObject *spawned_name = NULL;
    int failed = recorder_api->spawn(self->recorder, name, self->spawn_base, start.driver,
                                     start.first_source, &lane, &spawned_name) < 0;
    Py_XDECREF(spawned_name);
    if (!failed && lane != start.lane) {
        PyErr_SetString(PyExc_RuntimeError, "a lane was spawned while starting another");
        failed = 1;
    }
    PyObject *lane_number = failed ? NULL : PyLong_FromLong(lane);
    failed = lane_number == NULL
        || PyDict_SetItem(self->names, lane_number, name) < 0
        || PyDict_SetItem(self->lanes, (PyObject *)frame, lane_number) < 0
        || PyList_SetItem(self->resume_sources, lane,
                          Py_NewRef(PyTuple_GET_ITEM(facts, LANE_CODE_RESUME_SOURCES))) < 0
        || recorder_api->value_row(self->recorder, self->blocked_base, name, &lane_blocked) < 0
        || set_dict_int(self->blocked_details, lane_number, lane_blocked) < 0;
    Py_XDECREF(lane_number);
    Py_DECREF(name);
    if (failed) return -1;
    PyObject *nothing = PyTuple_GET_ITEM(self->no_site, SITE_DRIVER_FRAME);
    /* (built by hand: Py_BuildValue parses its format on every new lane) */
    PyObject *site = PyTuple_New(SITE_FIELDS);
    if (site == NULL) return -1;
    PyTuple_SET_ITEM(site, SITE_DRIVER_FRAME, Py_NewRef(driver_frame));
    PyTuple_SET_ITEM(site, SITE_VALUE_READ, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(site, SITE_VIA, Py_NewRef(start.via));
    PyTuple_SET_ITEM(site, SITE_DRIVER_CODE, Py_NewRef(nothing));
    PyTuple_SET_ITEM(site, SITE_DRIVER_CALLER, Py_NewRef(nothing));
    const struct { Py_ssize_t field; long value; } numbers[] = {
        {SITE_DRIVER_OFFSET, PyFrame_GetLasti(driver_frame)}, {SITE_DRIVER_LANE, start.driver},
        {SITE_SWITCH_DETAIL, start.switch_detail}, {SITE_DRIVER_BLOCKED, lane_blocked},
        {SITE_LANE_BLOCKED, start.lane_blocked}, {SITE_DRIVER_SOURCE, start.driver_source},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        PyObject *number = PyLong_FromLong(numbers[i].value);
        if (number == NULL) {
            Py_DECREF(site);
            return -1;
        }
        PyTuple_SET_ITEM(site, numbers[i].field, number);
    }
    if (PyList_SetItem(self->sites, lane, site) < 0) return -1;
    if (start.delegating && delegate_to_new_lane(self, start.driver, lane) < 0) return -1;
    if (recorder_api->handoff(self->recorder, start.driver, lane, start.switch_detail,
                              CODE_BLOCKED, lane_blocked, start.source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, lane);
    return 1;
}

/* fast_start for a frame of `code`, whose LaneCode `facts` (borrowed) is already found. */
static int
start_with_facts(GeneratorHooks *self, PyFrameObject *frame, PyCodeObject *code,
                 PyObject *facts)
{
    long start = PyLong_AsLong(PyTuple_GET_ITEM(facts, LANE_CODE_START));
    Py_ssize_t lane = PyErr_Occurred() ? -1 : lane_in(self->lanes, (PyObject *)frame);
    int done = 0;
    /* (a frame past its start began before the tracer: the Python path says so) */
    if (!PyErr_Occurred() && lane == -1 && PyFrame_GetLasti(frame) <= start) {
        PyFrameObject *caller = PyFrame_GetBack(frame);
        if (caller != NULL) {
            Py_INCREF(facts);
            done = (code->co_flags & CO_COROUTINE_FLAG) ? call_start(self, frame, caller)
                : lane_start(self, frame, code, facts, caller);
            Py_DECREF(facts);
            Py_DECREF(caller);
        }
    }
    return PyErr_Occurred() ? -1 : done;
}

int
fast_start(GeneratorHooks *self, PyFrameObject *frame)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
    PyObject *facts = started_code(self, code);
    int done = facts == NULL ? (PyErr_Occurred() ? -1 : 0)
        : start_with_facts(self, frame, code, facts);
    Py_DECREF(code);
    return done;
}

/* 1: `frame`, a generator lane, returned None and its end is recorded; 0: the Python path
 * decides; -1: error. The twin of GeneratorTracer.finished and _end for a lane whose driver
 * is known, with nothing pending and nothing being closed. */
static int
lane_end(GeneratorHooks *self, PyFrameObject *frame, PyObject *value)
{
    int32_t expected, driver, driver_source, delegator, delegate, other;
    if (value != Py_None || PySet_GET_SIZE(self->closing)) return 0;
    if (pending_field(self, PENDING_EXPECTED_LANE, &expected) < 0) return -1;
    if (expected != NO_LANE) return 0;
    Py_ssize_t lane = lane_in(self->lanes, (PyObject *)frame);
    if (lane < 0) return lane == -2 ? -1 : 0;
    PyObject *site = table_row(self->sites, lane, SITE_FIELDS, "tracer.sites");
    if (site == NULL
        || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_LANE), &driver) < 0
        || field_int32(PyTuple_GET_ITEM(site, SITE_DRIVER_SOURCE), &driver_source) < 0) {
        return -1;
    }
    if (driver == NO_LANE) return 0;
    if (self->end_detail < 0) {
        /* Recorder.end's ("result", short_repr(None)), interned where it would intern it */
        PyObject *detail = PyObject_CallMethod(self->recorder, "detail", "((ss))", "result",
                                               "None");
        int failed = detail == NULL || field_int32(detail, &self->end_detail) < 0;
        Py_XDECREF(detail);
        if (failed) {
            self->end_detail = -1;
            return -1;
        }
    }
    /* the lane is over: drop what it holds on to, and its place in delegation chains */
    if (PyDict_DelItem(self->lanes, (PyObject *)frame) < 0
        || PyList_SetItem(self->sites, lane, Py_NewRef(self->no_site)) < 0
        || PyList_SetItem(self->sent_values, lane, Py_NewRef(Py_None)) < 0
        || PyList_SetItem(self->yielded_values, lane, Py_NewRef(Py_None)) < 0
        || lane_item(self->delegators, lane, "tracer.delegators", &delegator) < 0) {
        return -1;
    }
    if (delegator != NO_LANE
        && (lane_item(self->delegates, delegator, "tracer.delegates", &other) < 0
            || (other == lane && set_lane_item(self->delegates, delegator, NO_LANE) < 0)
            || set_lane_item(self->delegators, lane, NO_LANE) < 0)) {
        return -1;
    }
    if (lane_item(self->delegates, lane, "tracer.delegates", &delegate) < 0) return -1;
    if (delegate != NO_LANE
        && (set_lane_item(self->delegators, delegate, NO_LANE) < 0
            || set_lane_item(self->delegates, lane, NO_LANE) < 0)) {
        return -1;
    }
    if (recorder_api->append(self->recorder, (int32_t)lane, CODE_END, NO_LANE,
                             self->end_detail, 0) < 0
        || recorder_api->append(self->recorder, driver, CODE_RUNNING, NO_LANE, 0,
                                driver_source) < 0) {
        return -1;
    }
    recorder_api->set_current(self->recorder, driver);
    return 1;
}

int
fast_return(GeneratorHooks *self, PyFrameObject *frame, PyObject *value)
{
    if (PyDict_GET_SIZE(self->calls)) {
        int done = dict_discard(self->calls, (PyObject *)frame);
        if (done) return done;  /* a coroutine that ran as a call returns: nothing to record */
    }
    return lane_end(self, frame, value);
}

/* The sys.monitoring events GeneratorHooks takes, and their callbacks' signatures. */
enum { ON_START, ON_RESUME, ON_YIELD, ON_RETURN };
static const char *const callback_signatures[] = {
    "on_start(code, offset)", "on_resume(code, offset)", "on_yield(code, offset, value)",
    "on_return(code, offset, value)",
};

/* PY_START or PY_RETURN: 1 when recorded here (or, for a code the backend knows, on a thread
 * not followed); 0 for the Python twin; -1 on error. */
static int
start_or_return_event(GeneratorHooks *self, PyObject *const *args, int returning)
{
    if (!PyCode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "a sys.monitoring callback's code is not a code object");
        return -1;
    }
    PyCodeObject *code = (PyCodeObject *)args[0];
    PyObject *facts = started_code(self, code);
    if (facts == NULL) return PyErr_Occurred() ? -1 : 0;
    if (PyThreadState_Get() != self->thread) return 1;  /* as the twin does */
    PyFrameObject *frame = PyEval_GetFrame();  /* the frame of `code`, starting or returning */
    if (frame == NULL) return 0;
    return returning ? fast_return(self, frame, args[2])
        : start_with_facts(self, frame, code, facts);
}

/* LaneCode field `field` of `facts`, a set or dict as the field must be (borrowed); NULL with
 * an error otherwise. */
static PyObject *
lane_code_table(PyObject *facts, Py_ssize_t field)
{
    PyObject *table = PyTuple_GET_ITEM(facts, field);
    if (field == LANE_CODE_PASSING_YIELDS ? PyDict_CheckExact(table) : PyAnySet_Check(table)) {
        return table;
    }
    PyErr_Format(PyExc_TypeError, "a LaneCode's field %zd is not a %s", field,
                 field == LANE_CODE_PASSING_YIELDS ? "dict" : "set");
    return NULL;
}

/* 1: `lane` (whose delegate is `delegate`) resumes at `offset` of `code` only to pass its driver's send on down its
 * `yield from` / `await` to a delegate lane, at a location not kept (LaneCode): nothing to
 * record (the delegate's resume records the hand-off, chain_resume) and the location's
 * PY_RESUME can be switched off; 0: not so; -1: error. The twin of on_resume's check in
 * MonitoringBackend. */
static int
passes_send_down(GeneratorHooks *self, PyObject *code, int32_t delegate, PyObject *offset)
{
    if (self->disable == NULL || delegate == NO_LANE) return 0;
    PyObject *facts = started_code(self, (PyCodeObject *)code);
    if (facts == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *passing = lane_code_table(facts, LANE_CODE_PASSING_RESUMES);
    int found = passing == NULL ? -1 : PySet_Contains(passing, offset);
    if (found <= 0) return found;
    PyObject *kept = lane_code_table(facts, LANE_CODE_KEPT_RESUMES);
    found = kept == NULL ? -1 : PySet_Contains(kept, offset);
    return found < 0 ? -1 : !found;
}

/* 1: `lane` (whose delegate is `delegate`) yields at `offset` of `code` from a `yield from` / `await` whose delegate is not a
 * lane (a list, a library generator), and the RESUME after it is not kept yet: the Python
 * twin keeps it (its resumes must be reported again); 0: not so; -1: error. */
static int
passes_up_from_elsewhere(GeneratorHooks *self, PyObject *code, int32_t delegate,
                         PyObject *offset)
{
    if (self->disable == NULL || delegate != NO_LANE) return 0;
    /* the cheap look first: is the next instruction a RESUME after a yield from or await?
       (the answer for the last yield's place is kept: a lane yields from one place, mostly) */
    int32_t at;
    if (field_int32(offset, &at) < 0) return -1;
    if (code != self->yield_code || at != self->yield_offset) {
        PyObject *raw = PyCode_GetCode((PyCodeObject *)code);  /* cached by the code object */
        if (raw == NULL) return -1;
        self->yield_before_resume = at >= 0 && at + 3 < PyBytes_GET_SIZE(raw)
            && (unsigned char)PyBytes_AS_STRING(raw)[at + 2] == self->resume_opcode
            && ((unsigned char)PyBytes_AS_STRING(raw)[at + 3] & 3) >= 2;
        Py_DECREF(raw);
        Py_XSETREF(self->yield_code, Py_NewRef(code));
        self->yield_offset = at;
    }
    if (!self->yield_before_resume) return 0;
    PyObject *facts = started_code(self, (PyCodeObject *)code);
    if (facts == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *yields = lane_code_table(facts, LANE_CODE_PASSING_YIELDS);
    PyObject *kept = yields == NULL ? NULL : lane_code_table(facts, LANE_CODE_KEPT_RESUMES);
    if (kept == NULL) return -1;
    PyObject *resumes_at = PyDict_GetItemWithError(yields, offset);
    if (resumes_at == NULL) return PyErr_Occurred() ? -1 : 0;
    int found = PySet_Contains(kept, resumes_at);
    return found < 0 ? -1 : !found;
}

/* PY_RESUME or PY_YIELD: 1 when a known lane's hand-off is recorded (or on a thread not
 * followed); 2 when a resume passes a send on down to a delegate lane (DISABLE); 0 for the
 * Python twin; -1 on error. */
static int handoff_in_frame(GeneratorHooks *self, PyObject *const *args, int yielding,
                            PyFrameObject *frame);

static int
handoff_event(GeneratorHooks *self, PyObject *const *args, int yielding)
{
    PyThreadState *thread = PyThreadState_Get();
    if (thread != self->thread) return 1;
    /* (from the thread state in hand: PyEval_GetFrame would look the thread up again) */
    PyFrameObject *frame = PyThreadState_GetFrame(thread);
    if (frame == NULL) return 0;
    int done = handoff_in_frame(self, args, yielding, frame);
    Py_DECREF(frame);
    return done;
}

/* handoff_event in `frame`, the frame of the callback's code. */
static int
handoff_in_frame(GeneratorHooks *self, PyObject *const *args, int yielding,
                 PyFrameObject *frame)
{
    Py_ssize_t lane = lane_of(self, frame);
    if (lane < 0) return lane == -2 ? -1 : 0;
    if (!PyCode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "a sys.monitoring callback's code is not a code object");
        return -1;
    }
    int32_t delegate;
    if (lane_item(self->delegates, lane, "tracer.delegates", &delegate) < 0) return -1;
    if (yielding) {
        int elsewhere = passes_up_from_elsewhere(self, args[0], delegate, args[1]);
        if (elsewhere) return elsewhere < 0 ? -1 : 0;
        return yield_from_lane(self, lane, delegate, args[2]);
    }
    int passing = passes_send_down(self, args[0], delegate, args[1]);
    if (passing) return passing < 0 ? -1 : 2;
    return fast_resume(self, frame, lane, args[1]);
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
        ? start_or_return_event(self, args, event == ON_RETURN)
        : handoff_event(self, args, event == ON_YIELD);
    if (done < 0) return NULL;
    if (done == 2) return Py_NewRef(self->disable);
    if (done) Py_RETURN_NONE;
    return PyObject_Vectorcall(fallback, args, nargs, NULL);
}

/* install_trace(call_fallback, local_fallback, errors): on 3.11, installs the C trace
 * function (`eval` 0); install_eval(...): the frame evaluation hook, generator_eval (1). */
static PyObject *
install_on_311(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs, int eval)
{
#if PY_VERSION_HEX < 0x030C0000
    if ((eval ? generator_install_eval : generator_install_trace)(self, args, nargs) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
#else
    PyErr_Format(PyExc_RuntimeError, "%s is for Python 3.11; use sys.monitoring",
                 eval ? "install_eval" : "install_trace");
    return NULL;
#endif
}

/* The fast-call methods, each `function` with its `kind`: hooks_on_start(code, offset) and
 * the other callbacks registered, install_trace and install_eval. */
#define KIND_METHOD(name, function, kind)                                                 \
    static PyObject *                                                                     \
    name(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)                   \
    {                                                                                     \
        return function(self, args, nargs, kind);                                         \
    }
KIND_METHOD(hooks_on_start, monitoring_callback, ON_START)
KIND_METHOD(hooks_on_resume, monitoring_callback, ON_RESUME)
KIND_METHOD(hooks_on_yield, monitoring_callback, ON_YIELD)
KIND_METHOD(hooks_on_return, monitoring_callback, ON_RETURN)
KIND_METHOD(hooks_install_trace, install_on_311, 0)
KIND_METHOD(hooks_install_eval, install_on_311, 1)
#undef KIND_METHOD

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
is_site_row(PyObject *row)
{
    return PyTuple_CheckExact(row) && PyTuple_GET_SIZE(row) == SITE_FIELDS;
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
    PyObject *send = opmap == NULL ? NULL : PyObject_GetItem(opmap, str_send_opname);
    PyObject *for_iter = opmap == NULL ? NULL : PyMapping_GetItemString(opmap, "FOR_ITER");
    PyObject *resume = opmap == NULL ? NULL : PyMapping_GetItemString(opmap, "RESUME");
    Py_XDECREF(opmap);
    self->send_opcode = send == NULL ? -1 : (int)PyLong_AsLong(send);
    self->for_iter_opcode = for_iter == NULL ? -1 : (int)PyLong_AsLong(for_iter);
    self->resume_opcode = resume == NULL ? -1 : (int)PyLong_AsLong(resume);
    Py_XDECREF(send);
    Py_XDECREF(for_iter);
    Py_XDECREF(resume);
    if (PyErr_Occurred()) return -1;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *monitoring = PySys_GetObject("monitoring");  /* borrowed */
    Py_XSETREF(self->disable, monitoring == NULL ? NULL
               : PyObject_GetAttrString(monitoring, "DISABLE"));
    if (self->disable == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "no sys.monitoring");
        return -1;
    }
#endif
    self->spawn_base = self->end_detail = -1;
    Py_XSETREF(self->tracer, Py_NewRef(tracer));
    PyObject *lanes = PyObject_GetAttrString(tracer, "handoff_lanes");
    if (lanes == NULL) return -1;
    PyObject *blocked_base = PyObject_GetAttrString(lanes, "_blocked_base");
    int bad = blocked_base == NULL || field_int32(blocked_base, &self->blocked_base) < 0
        || take_table(&self->name_counts, lanes, "_name_counts", is_exact_dict) < 0
        || take_table(&self->names, lanes, "names", is_exact_dict) < 0
        || take_table(&self->blocked_details, lanes, "_blocked_details", is_exact_dict) < 0
        || take_table(&self->via_details, lanes, "_via_details", is_exact_dict) < 0
        || take_table(&self->sources_at, lanes, "_sources_at", is_exact_dict) < 0;
    Py_XDECREF(blocked_base);
    Py_DECREF(lanes);
    if (bad) return -1;
    PyObject *yield_detail = PyObject_GetAttrString(tracer, "yield_detail");
    if (yield_detail == NULL) return -1;
    bad = field_int32(yield_detail, &self->yield_detail);
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
        || take_table(&self->closing, tracer, "_closing", is_exact_set) < 0
        || take_table(&self->no_site, tracer, "no_site", is_site_row) < 0
        || take_table(&self->resume_source, tracer, "resume_source", PyCallable_Check) < 0) {
        return -1;
    }
    return 0;
}

GC_FIELD_FUNCTIONS(hooks, GeneratorHooks, GENERATOR_HOOKS_OBJECTS)

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
    HANDOFFS_TYPE_SLOTS(GeneratorHooks, hooks),
    .tp_doc = "GeneratorHooks(tracer, recorder, resume_fallback, yield_fallback, short_repr, "
              "missing[, start_fallback, return_fallback]): generator hand-offs recorded in C.",
    .tp_methods = hooks_methods,
};

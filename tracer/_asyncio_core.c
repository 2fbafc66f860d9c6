/* The asyncio model's hot paths. LoopTracerCore is the base of the asyncio LoopTracer: the
 * fields the proxy reads on every step. CoroutineProxyCore is the base of the asyncio
 * TracedCoroutine: am_send (which the C Task calls through PyIter_Send) and send() record the
 * step's RUNNING and, for a bare yield, its READY without entering Python; everything else
 * goes to the Python tracer. CausedCallback runs a callback with the cause of its wake-ups.
 * LoopHooksCore is the base of the traced loop: its create_task and call_soon. The
 * await-chain readers serve the proxy and tracer.models._asyncio_waits.
 */

#include "_speedups.h"

/* The names only this file's C calls by (_speedups.c interns those the module shares),
 * interned when the first loop tracer is made: nothing here runs before one exists. */
static PyObject *str_get_coro, *str_get_name, *str_qualname, *str_task_spawn_base, *str_eager;
static PyObject *str_empty;  /* a proxy's name until create_task or its lane names it */
/* a timer's details' keys (LoopTracer.timer_scheduled, _timer_cause), the recorder's origin */
static PyObject *str_cause, *str_timer, *str_deadline_ns, *str_delay_s, *str_origin;
static PyObject *str_int_key;
static PyObject *builtin_round;

static int
intern_own_names(void)
{
    if (str_eager != NULL) return 0;
    str_get_coro = PyUnicode_InternFromString("get_coro");
    str_get_name = PyUnicode_InternFromString("get_name");
    str_qualname = PyUnicode_InternFromString("__qualname__");
    str_task_spawn_base = PyUnicode_InternFromString("_task_spawn_base");
    str_cause = PyUnicode_InternFromString("cause");
    str_timer = PyUnicode_InternFromString("timer");
    str_deadline_ns = PyUnicode_InternFromString("deadline_ns");
    str_delay_s = PyUnicode_InternFromString("delay_s");
    str_int_key = PyUnicode_InternFromString("int_key");
    str_origin = PyUnicode_InternFromString("origin");
    str_empty = PyUnicode_InternFromString("");
    PyObject *builtins = PyImport_ImportModule("builtins");
    if (builtins != NULL) {
        builtin_round = PyObject_GetAttrString(builtins, "round");
        Py_DECREF(builtins);
    }
    str_eager = str_get_coro && str_get_name && str_qualname && str_task_spawn_base
        && str_cause && str_timer && str_deadline_ns && str_delay_s && str_origin && str_int_key
        && str_empty
        && builtin_round ? PyUnicode_InternFromString("eager") : NULL;
    return str_eager == NULL ? -1 : 0;
}

/* getattr(obj, name) or NULL without an error when it has no such attribute */
static int
PyObject_GetOptionalAttrString_compat(PyObject *obj, const char *name, PyObject **result)
{
    *result = PyObject_GetAttrString(obj, name);
    if (*result != NULL) return 1;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
}

/* A traced task's coroutine (CoroutineProxyCore, below); the tracer reads a task's lane. */
typedef struct {
    PyObject_HEAD
    PyObject *coro;            /* the program's coroutine */
    LoopTracerCore *tracer;
    PyObject *lines;           /* line -> source index, shared per code object */
    PyObject *name;
    int lane;
    int last_offset;           /* the instruction offset of the previous resume, its source */
    int last_source;
    int first_step_ticket;     /* the tracer's first_step_ticket when this proxy is to tell its
                                * first step's offset and source (0: not) */
} ProxyCore;

static int tracer_failed(LoopTracerCore *self);
static PyObject *caused_callback_new(PyTypeObject *type, LoopTracerCore *tracer,
                                     PyObject *callback, PyObject *cause);

/* -- garbage collection, from each type's member table ------------------------------------ */

/* Every object a type of this file holds is one of its T_OBJECT members, so its GC functions
 * walk its member table: an object field cannot be added and forgotten in one of them. */

static int
visit_members(PyObject *self, const PyMemberDef *members, visitproc visit, void *arg)
{
    for (const PyMemberDef *member = members; member->name != NULL; member++) {
        if (member->type != T_OBJECT) continue;
        PyObject **slot = (PyObject **)((char *)self + member->offset);
        Py_VISIT(*slot);
    }
    return 0;
}

static int
clear_members(PyObject *self, const PyMemberDef *members)
{
    for (const PyMemberDef *member = members; member->name != NULL; member++) {
        if (member->type != T_OBJECT) continue;
        PyObject **slot = (PyObject **)((char *)self + member->offset);
        Py_CLEAR(*slot);
    }
    return 0;
}

static void
dealloc_members(PyObject *self, const PyMemberDef *members)
{
    PyObject_GC_UnTrack(self);
    clear_members(self, members);
    Py_TYPE(self)->tp_free(self);
}

/* -- the tracer's per-task objects, off the program's collector schedule ------------------ */

/* A proxy per task, a CausedCallback per timer: untraced, the program makes neither, so each
 * one's allocation is taken back off the young generation's count as soon as it is made and
 * given back just before it is freed (tracer/_gc_schedule.c). They stay tracked: a cycle
 * through one is collected as before; only when the collections come is the program's own. */

/* A new object of `type` (one of those types or a subclass), not counted */
static PyObject *
own_object_alloc(PyTypeObject *type)
{
    PyObject *made = type->tp_alloc(type, 0);
    if (made != NULL) gc_schedule_uncount();
    return made;
}

/* their tp_new: PyType_GenericNew's, not counted */
static PyObject *
own_object_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return own_object_alloc(type);
}

static void
own_object_dealloc(PyObject *self, const PyMemberDef *members)
{
    PyObject_GC_UnTrack(self);
    clear_members(self, members);
    gc_schedule_recount();  /* the free below takes it off again */
    Py_TYPE(self)->tp_free(self);
}

/* PREFIX_traverse, PREFIX_clear and PREFIX_dealloc over the member table MEMBERS; GC_SLOTS
 * puts them in a type object */
#define GC_FROM_MEMBERS(PREFIX, MEMBERS) GC_FROM_MEMBERS_FREED_BY(PREFIX, MEMBERS, dealloc_members)

/* The same, the object freed by DEALLOC(self, MEMBERS): own_object_dealloc for the per-task
 * types kept off the program's collector schedule (the proxy, CausedCallback) */
#define GC_FROM_MEMBERS_FREED_BY(PREFIX, MEMBERS, DEALLOC)                                   \
    static int PREFIX##_traverse(PyObject *self, visitproc visit, void *arg)                 \
    {                                                                                        \
        return visit_members(self, MEMBERS, visit, arg);                                     \
    }                                                                                        \
    static int PREFIX##_clear(PyObject *self) { return clear_members(self, MEMBERS); }       \
    static void PREFIX##_dealloc(PyObject *self) { DEALLOC(self, MEMBERS); }

#define GC_SLOTS(PREFIX)                                                                     \
    .tp_dealloc = PREFIX##_dealloc, .tp_traverse = PREFIX##_traverse, .tp_clear = PREFIX##_clear

/* The slots every type of this file has: a GC type with FLAGS, its GC functions and
 * members from the member table PREFIX_members */
#define GC_TYPE(NAME, STRUCT, PREFIX, FLAGS, DOC)                                            \
    PyVarObject_HEAD_INIT(NULL, 0)                                                           \
    .tp_name = "loopscope.tracer._speedups." NAME,                                           \
    .tp_basicsize = sizeof(STRUCT),                                                          \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | (FLAGS),                           \
    .tp_doc = DOC,                                                                           \
    GC_SLOTS(PREFIX),                                                                        \
    .tp_members = PREFIX##_members

/* A base type Python code subclasses, its objects made by PyType_GenericNew */
#define CORE_TYPE(NAME, STRUCT, PREFIX, DOC)                                                 \
    GC_TYPE(NAME, STRUCT, PREFIX, Py_TPFLAGS_BASETYPE, DOC), .tp_new = PyType_GenericNew

/* A callable type, called through the function its objects keep in their `vectorcall` */
#define CALLABLE_TYPE(NAME, STRUCT, PREFIX, DOC)                                             \
    GC_TYPE(NAME, STRUCT, PREFIX, Py_TPFLAGS_HAVE_VECTORCALL, DOC),                          \
    .tp_call = PyVectorcall_Call, .tp_vectorcall_offset = offsetof(STRUCT, vectorcall)

/* -- LoopTracerCore ---------------------------------------------------------------------- */




static int
tracer_init(LoopTracerCore *self, PyObject *args, PyObject *kwargs)
{
    PyObject *recorder;
    if (!PyArg_ParseTuple(args, "O!:LoopTracerCore", &RecorderCoreType, &recorder)) return -1;
    if (intern_own_names() < 0) return -1;
    Py_INCREF(recorder);
    Py_XSETREF(self->recorder, (RecorderCore *)recorder);
    self->detached = 0;
    self->done_lane = NO_LANE;
    self->sweep_waiting_at = SWEEP_WAITING_AT;
    return 0;
}

/* tracer.cause: what the callback in progress stands for, (waker, detail, deadline_ns) */
static PyObject *
tracer_get_cause(LoopTracerCore *self, void *closure)
{
    if (self->done_lane != NO_LANE) {
        return Py_BuildValue("(iii)", self->done_lane, self->cause_task, 0);  /* CAUSE_FIELDS */
    }
    return Py_NewRef(self->cause != NULL ? self->cause : Py_None);
}

static int
tracer_set_cause(LoopTracerCore *self, PyObject *value, void *closure)
{
    self->done_lane = NO_LANE;
    Py_XSETREF(self->cause, Py_XNewRef(value));
    return 0;
}

static PyGetSetDef tracer_getset[] = {
    {"cause", (getter)tracer_get_cause, (setter)tracer_set_cause, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef tracer_members[] = {
    {"recorder", T_OBJECT, offsetof(LoopTracerCore, recorder), READONLY, NULL},
    {"detached", T_BOOL, offsetof(LoopTracerCore, detached), 0, NULL},
    {"ready_self", T_INT, offsetof(LoopTracerCore, ready_self), 0, NULL},
    {"waiting", T_OBJECT, offsetof(LoopTracerCore, waiting), 0, NULL},
    {"_sweep_waiting_at", T_PYSSIZET, offsetof(LoopTracerCore, sweep_waiting_at), 0, NULL},
    {"sleeps", T_OBJECT, offsetof(LoopTracerCore, sleeps), 0, NULL},
    {"io_futures", T_OBJECT, offsetof(LoopTracerCore, io_futures), 0, NULL},
    {"_verdicts_top", T_OBJECT, offsetof(LoopTracerCore, verdicts_top), 0, NULL},
    {"_verdicts_inner", T_OBJECT, offsetof(LoopTracerCore, verdicts_inner), 0, NULL},
    {"_wait_calls", T_OBJECT, offsetof(LoopTracerCore, wait_calls), 0, NULL},
    {"_owner_details", T_OBJECT, offsetof(LoopTracerCore, owner_details), 0, NULL},
    {"_plain_future", T_OBJECT, offsetof(LoopTracerCore, plain_future), 0, NULL},
    {"_cause", T_OBJECT, offsetof(LoopTracerCore, cause), READONLY, NULL},
    {"_done_callbacks", T_OBJECT, offsetof(LoopTracerCore, done_callbacks), READONLY, NULL},
    {"loop_lane", T_INT, offsetof(LoopTracerCore, loop_lane), 0, NULL},
    {"cause_future", T_INT, offsetof(LoopTracerCore, cause_future), 0, NULL},
    {"cause_callback", T_INT, offsetof(LoopTracerCore, cause_callback), 0, NULL},
    {"_poll_timeout", T_OBJECT, offsetof(LoopTracerCore, poll_timeout), 0, NULL},
    {"_poll_detail", T_INT, offsetof(LoopTracerCore, poll_detail), 0, NULL},
    {"_nothing_ready", T_INT, offsetof(LoopTracerCore, nothing_ready), 0, NULL},
    {"_plain_task", T_OBJECT, offsetof(LoopTracerCore, plain_task), 0, NULL},
    {"_code_lines", T_OBJECT, offsetof(LoopTracerCore, code_lines), 0, NULL},
    {"cause_task", T_INT, offsetof(LoopTracerCore, cause_task), 0, NULL},
    {"end_none", T_INT, offsetof(LoopTracerCore, end_none), 0, NULL},
    {"ready_spawn", T_INT, offsetof(LoopTracerCore, ready_spawn), 0, NULL},
    {"_spawn_bases", T_OBJECT, offsetof(LoopTracerCore, spawn_bases), 0, NULL},
    {"_named_by_request", T_OBJECT, offsetof(LoopTracerCore, named_by_request), 0, NULL},
    {"_gathering_future", T_OBJECT, offsetof(LoopTracerCore, gathering_future), 0, NULL},
    {"on_gather", T_INT, offsetof(LoopTracerCore, on_gather), 0, NULL},
    {"_timer_fires", T_OBJECT, offsetof(LoopTracerCore, timer_fires), 0, NULL},
    {"sleeping", T_OBJECT, offsetof(LoopTracerCore, sleeping), 0, NULL},
    {"_last_delay", T_OBJECT, offsetof(LoopTracerCore, last_delay), READONLY, NULL},
    {"_last_delay_shown", T_OBJECT, offsetof(LoopTracerCore, last_delay_shown), READONLY, NULL},
    {"_last_code_lines", T_OBJECT, offsetof(LoopTracerCore, last_code_lines), READONLY, NULL},
    {"_first_step_code", T_OBJECT, offsetof(LoopTracerCore, first_step_code), READONLY, NULL},
    {"_stem_qualname", T_OBJECT, offsetof(LoopTracerCore, stem_qualname), READONLY, NULL},
    {"_stem_bases", T_OBJECT, offsetof(LoopTracerCore, stem_bases), READONLY, NULL},
    {"_stem_requests", T_OBJECT, offsetof(LoopTracerCore, stem_requests), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

GC_FROM_MEMBERS(tracer, tracer_members)


/* WAKE and READY on each lane waiting for a future completed now, by whoever is completing
 * it: `finished` when the future is a traced task that ended, else the running step, else
 * the callback in progress (LoopTracer._wake). `waiters` is `future`'s checked WAITERS row. */
/* A detail (key, value, "deadline_ns", deadline) as a value row (tracer.values): the interned
 * base (key, value, "int_key", "deadline_ns") plus the deadline in decimal, its index in
 * *index. A sleep's detail and its timer's wake cause hold a deadline no other event has, so
 * they are rows of a few shared bases instead of a new detail each (LoopTracer._deadline_row). */
static int
deadline_row(RecorderCore *recorder, PyObject *key, PyObject *value, PyObject *deadline,
             int32_t *index)
{
    PyObject *base_detail = PyTuple_Pack(4, key, value, str_int_key, str_deadline_ns);
    int32_t base;
    int failed = base_detail == NULL || recorder_detail(recorder, base_detail, &base) < 0;
    Py_XDECREF(base_detail);
    if (failed) return -1;
    long long ns = PyLong_AsLongLong(deadline);
    if (ns == -1 && PyErr_Occurred()) {  /* not an int64: as str() writes it */
        PyErr_Clear();
        PyObject *text = PyObject_Str(deadline);
        failed = text == NULL || recorder_api.value_row((PyObject *)recorder, base, text,
                                                        index) < 0;
        Py_XDECREF(text);
        return failed ? -1 : 0;
    }
    char text[24];
    int size = snprintf(text, sizeof text, "%lld", ns);
    return recorder_api.value_row_utf8((PyObject *)recorder, base, text, size, index);
}

/* The wake cause of a timer due at `deadline` (LoopTracer._timer_cause): interned, or a
 * value row for a sleep's own timer, which wakes its sleeper once */
static int
timer_cause(RecorderCore *recorder, PyObject *deadline, int unique, int32_t *cause)
{
    if (unique) return deadline_row(recorder, str_cause, str_timer, deadline, cause);
    PyObject *detail = PyTuple_Pack(4, str_cause, str_timer, str_deadline_ns, deadline);
    int failed = detail == NULL || recorder_detail(recorder, detail, cause) < 0;
    Py_XDECREF(detail);
    return failed ? -1 : 0;
}

/* The deadline of the sleep `future` ends, forgotten now (tracer.sleeping), in *deadline (a
 * new reference); NULL when it is not asyncio.sleep's future. */
static int
take_sleep(LoopTracerCore *self, PyObject *future, PyObject **deadline)
{
    *deadline = NULL;
    PyObject *sleeping = self->sleeping;
    if (sleeping == NULL || !PyDict_Check(sleeping) || !PyDict_GET_SIZE(sleeping)) return 0;
    PyObject *key = PyLong_FromVoidPtr(future);
    if (key == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(sleeping, key);  /* borrowed */
    int failed = found == NULL && PyErr_Occurred() != NULL;
    if (found != NULL) {
        *deadline = Py_NewRef(found);
        failed = PyDict_DelItem(sleeping, key) < 0;
        if (failed) Py_CLEAR(*deadline);
    }
    Py_DECREF(key);
    return failed ? -1 : 0;
}

/* Who wakes the lanes waiting for a future completed now, and why: `finished` when the
 * future is a traced task that ended, else the running step, else the callback in progress,
 * else the sleep's own timer (`slept`, its deadline) when it ran out (LoopTracer._wake). */
static int
tracer_wake_cause(LoopTracerCore *self, int current, int32_t finished, PyObject *slept,
                  int is_cancelled, int32_t *waker, int32_t *cause)
{
    if (finished != NO_LANE) {
        *waker = finished;
        *cause = self->cause_task;
    }
    else if (current != self->loop_lane && current != NO_LANE) {  /* a step completed it */
        *waker = current;
        *cause = self->cause_future;
    }
    else if (self->done_lane != NO_LANE) {  /* a finished task's done callback */
        *waker = self->done_lane;
        *cause = self->cause_task;
    }
    else if (self->cause != NULL && self->cause != Py_None) {
        PyObject *running = checked_row(self->cause, CAUSE_FIELDS, "the asyncio cause");
        if (running == NULL
            || as_int32(PyTuple_GET_ITEM(running, CAUSE_WAKER), waker) < 0
            || as_int32(PyTuple_GET_ITEM(running, CAUSE_DETAIL), cause) < 0) {
            return -1;
        }
        /* a timer: its detail is interned only now that it wakes someone */
        if (*cause < 0 && timer_cause(self->recorder,
                                      PyTuple_GET_ITEM(running, CAUSE_DEADLINE_NS), 0, cause) < 0) {
            return -1;
        }
    }
    else if (slept != NULL && !is_cancelled) {  /* asyncio.sleep's own timer ran out */
        *waker = self->loop_lane;
        return timer_cause(self->recorder, slept, 1, cause);
    }
    else {
        *waker = self->loop_lane;
        *cause = self->cause_callback;
    }
    return 0;
}

static int
tracer_wake(LoopTracerCore *self, PyObject *future, PyObject *waiters, int32_t finished)
{
    RecorderCore *recorder = self->recorder;
    int current = recorder->current;
    int32_t waker, cause;
    PyObject *slept;  /* the deadline of the sleep that ends, if it is asyncio.sleep's */
    if (take_sleep(self, future, &slept) < 0) return -1;
    /* a cancelled future (task.cancel(), a timeout) wakes its waiters with a cancellation */
    PyObject *cancelled = PyObject_CallMethodNoArgs(future, str_cancelled);
    int is_cancelled = cancelled == NULL ? -1 : PyObject_IsTrue(cancelled);
    Py_XDECREF(cancelled);
    if (is_cancelled < 0) {
        Py_XDECREF(slept);
        return -1;
    }
    int found = tracer_wake_cause(self, current, finished, slept, is_cancelled, &waker, &cause);
    Py_XDECREF(slept);
    if (found < 0) return -1;
    if (is_cancelled) {
        PyObject *index = PyLong_FromLong(cause);
        if (index == NULL) return -1;
        PyObject *detail = PyObject_CallMethodOneArg((PyObject *)self, str_cancel_cause, index);
        Py_DECREF(index);
        if (detail == NULL) return -1;
        int failed = as_int32(detail, &cause);
        Py_DECREF(detail);
        if (failed) return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(waiters);
    for (Py_ssize_t i = WAITERS_FIELDS; i < count; i++) {
        int32_t lane;
        if (as_int32(PyTuple_GET_ITEM(waiters, i), &lane) < 0
            || recorder_append(recorder, lane, CODE_WAKE, waker, cause, 0) < 0
            || recorder_append(recorder, lane, CODE_READY, waker, cause, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Whether `future` is done: 1, 0, or -1 with an error. */
static int
future_done(PyObject *future)
{
    PyObject *done = PyObject_CallMethodNoArgs(future, str_done);
    if (done == NULL) return -1;
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    return is_done;
}

/* The future a waiting row holds (_asyncio_tracer.held_future), NULL when it has died; for an
 * identity check only (not a reference: the row's future may die any time) */
static PyObject *
held_future(PyObject *held)
{
    if (!PyWeakref_CheckRefExact(held)) return held;  /* not weakly referenceable: held itself */
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *future;
    if (PyWeakref_GetRef(held, &future) <= 0) return NULL;  /* dead (a ref cannot fail) */
    Py_DECREF(future);
    return future;
#else
    PyObject *future = PyWeakref_GET_OBJECT(held);
    return future == Py_None ? NULL : future;
#endif
}

/* How the waiting table holds `future` (_asyncio_tracer._held_weakly): a weak reference, so
 * the program's futures and the tasks waiting on them live as long as they would untraced;
 * an object that cannot be weakly referenced is held itself. A new reference.
 * A weak reference made here is the tracer's own object, living as long as the wait: like
 * the proxies, it is taken off the collector's young count (tracer/_gc_schedule.c), and
 * given back by release_row when the row that holds it is dropped. */
static PyObject *
held_weakly(PyObject *future)
{
    PyObject *held = PyWeakref_NewRef(future, NULL);
    if (held != NULL) {
        if (Py_REFCNT(held) == 1) gc_schedule_uncount();  /* made now, not a shared one */
        return held;
    }
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
    PyErr_Clear();
    return Py_NewRef(future);
}

/* A waiting row about to lose a reference: if that frees it and the weak reference it holds,
 * the reference goes back on the young count first (held_weakly took it off; its free takes
 * it off again). */
static void
release_row(PyObject *waiters)
{
    PyObject *held = PyTuple_GET_ITEM(waiters, WAITERS_FUTURE);
    if (Py_REFCNT(waiters) == 1 && PyWeakref_CheckRefExact(held) && Py_REFCNT(held) == 1) {
        gc_schedule_recount();
    }
}

/* Forgets the waiting rows of the futures that died while lanes waited on them (the program
 * dropped them and their waiters), and sets the table's size at its next sweep
 * (LoopTracer.pure_sweep_waiting): rarely, from proxy_add_waiter, or from Python. */
static int
tracer_sweep_waiting(LoopTracerCore *self)
{
    PyObject *waiting = self->waiting;
    if (waiting == NULL || !PyDict_Check(waiting)) return 0;
    PyObject *dead = PyList_New(0);
    if (dead == NULL) return -1;
    Py_ssize_t position = 0;
    PyObject *key, *row;
    int failed = 0;
    while (!failed && PyDict_Next(waiting, &position, &key, &row)) {
        failed = checked_row(row, WAITERS_FIELDS, "asyncio waiters") == NULL
            || (held_future(PyTuple_GET_ITEM(row, WAITERS_FUTURE)) == NULL
                && PyList_Append(dead, key) < 0);
    }
    for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(dead); i++) {
        key = PyList_GET_ITEM(dead, i);
        row = PyDict_GetItemWithError(waiting, key);  /* borrowed */
        if (row != NULL) release_row(row);
        failed = row == NULL ? PyErr_Occurred() != NULL : PyDict_DelItem(waiting, key) < 0;
    }
    Py_DECREF(dead);
    if (failed) return -1;
    Py_ssize_t next = 2 * PyDict_GET_SIZE(waiting);
    self->sweep_waiting_at = next > SWEEP_WAITING_AT ? next : SWEEP_WAITING_AT;
    return 0;
}

static PyObject *
tracer_sweep_waiting_method(LoopTracerCore *self, PyObject *unused)
{
    (void)unused;
    if (tracer_sweep_waiting(self) < 0) return NULL;
    Py_RETURN_NONE;
}

/* The lanes waiting on `future`, if it is done, are woken (and forgotten). */
static int
tracer_future_done(LoopTracerCore *self, PyObject *future, int32_t finished)
{
    PyObject *key = PyLong_FromVoidPtr(future);
    if (key == NULL) return -1;
    PyObject *waiters = PyDict_GetItemWithError(self->waiting, key);  /* borrowed */
    if (waiters == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (checked_row(waiters, WAITERS_FIELDS, "asyncio waiters") == NULL) {
        Py_DECREF(key);
        return -1;
    }
    if (held_future(PyTuple_GET_ITEM(waiters, WAITERS_FUTURE)) != future) {  /* an id reused */
        Py_DECREF(key);
        return 0;
    }
    int is_done = future_done(future);
    if (is_done <= 0) {
        Py_DECREF(key);
        return is_done;
    }
    Py_INCREF(waiters);
    int failed = PyDict_DelItem(self->waiting, key) < 0
        || tracer_wake(self, future, waiters, finished) < 0;
    release_row(waiters);
    Py_DECREF(waiters);
    Py_DECREF(key);
    return failed ? -1 : 0;
}

static PyObject *task_own_coro(PyObject *task);

/* The lane of a traced task (its coroutine is our proxy), else NO_LANE. */
static int
lane_of_task(PyObject *task, int32_t *lane)
{
    PyObject *coro = task_own_coro(task);
    if (coro == NULL) return -1;
    *lane = PyObject_TypeCheck(coro, &ProxyCoreType) ? ((ProxyCore *)coro)->lane : NO_LANE;
    Py_DECREF(coro);
    return 0;
}

/* A callback is being scheduled with `first` as its argument: a future or task completing,
 * maybe, which wakes the lanes waiting on it. Sets *lane to the lane of a traced task that
 * finished (its callbacks then run on its behalf), else NO_LANE. 1 when `first` is of a type
 * not judged here (pure_callback_scheduled judges it), 0 when done, -1 on an error. */
static int
tracer_judge_scheduled(LoopTracerCore *self, PyObject *first, int32_t *lane)
{
    *lane = NO_LANE;
    PyObject *kind = (PyObject *)Py_TYPE(first);
    int is_task = kind == self->plain_task;
    if ((kind != self->plain_future && kind != self->gathering_future && !is_task)
        || self->waiting == NULL || !PyDict_Check(self->waiting) || self->recorder == NULL) {
        return 1;
    }
    if (!is_task) {
        return PyDict_GET_SIZE(self->waiting) && tracer_future_done(self, first, NO_LANE) < 0
            ? -1 : 0;
    }
    int is_done = future_done(first);
    if (is_done <= 0) return is_done;
    int32_t finished;
    if (lane_of_task(first, &finished) < 0) return -1;
    if (PyDict_GET_SIZE(self->waiting) && tracer_future_done(self, first, finished) < 0) {
        return -1;
    }
    *lane = finished;
    return 0;
}

/* The callback, run on behalf of the finished task of lane `lane` (a new reference); on an
 * error in the tracer, the callback itself; NULL only for an error that stays raised. */
static PyObject *
caused_by_task(LoopTracerCore *self, PyObject *callback, int32_t lane)
{
    PyObject *cause = Py_BuildValue("(iii)", lane, self->cause_task, 0);  /* CAUSE_FIELDS */
    PyObject *caused = cause == NULL ? NULL
        : caused_callback_new(&CausedCallbackType, self, callback, cause);
    Py_XDECREF(cause);
    if (caused == NULL && tracer_failed(self) == 0) return Py_NewRef(callback);
    return caused;
}

/* callback_scheduled(callback, first) -> the callback to schedule (LoopTracer's
 * pure_callback_scheduled, which judges the types tracer_judge_scheduled leaves to it). */
static PyObject *
tracer_callback_scheduled(LoopTracerCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "callback_scheduled(callback, first)");
        return NULL;
    }
    PyObject *callback = args[0], *first = args[1];
    int32_t lane;
    int judged = tracer_judge_scheduled(self, first, &lane);
    if (judged == 1) {
        return PyObject_CallMethodObjArgs((PyObject *)self, str_pure_callback_scheduled,
                                          callback, first, NULL);
    }
    if (judged < 0) return tracer_failed(self) < 0 ? NULL : Py_NewRef(callback);
    return lane == NO_LANE ? Py_NewRef(callback) : caused_by_task(self, callback, lane);
}

/* -- timers (LoopTracer.pure_timer_scheduled, which this is the twin of) ------------------- */

/* round(delay * 1e9), as Python rounds it: a float's half-way case to even */
static PyObject *
delay_ns(PyObject *delay)
{
    if (PyFloat_CheckExact(delay)) {
        double ns = PyFloat_AS_DOUBLE(delay) * 1e9;
        if (isfinite(ns)) {
            double rounded = round(ns);
            if (fabs(ns - rounded) == 0.5) rounded = 2.0 * round(ns / 2.0);
            return PyLong_FromDouble(rounded);
        }
    }
    PyObject *factor = PyFloat_FromDouble(1e9);
    PyObject *product = factor == NULL ? NULL : PyNumber_Multiply(delay, factor);
    Py_XDECREF(factor);
    PyObject *rounded = product == NULL ? NULL : PyObject_CallOneArg(builtin_round, product);
    Py_XDECREF(product);
    return rounded;
}

/* The deadline of a timer due in `delay` seconds, in ns of the recorder's time:
 * recorder.clock() - recorder.origin + round(delay * 1e9) */
static PyObject *
timer_deadline(LoopTracerCore *self, PyObject *delay)
{
    int64_t now;
    if (recorder_read_clock(self->recorder, &now) < 0) return NULL;
    PyObject *origin = PyObject_GetAttr((PyObject *)self->recorder, str_origin);
    if (origin == NULL) return NULL;
    PyObject *reading = PyLong_FromLongLong(now);
    PyObject *since = reading == NULL ? NULL : PyNumber_Subtract(reading, origin);
    Py_XDECREF(reading);
    Py_DECREF(origin);
    if (since == NULL) return NULL;
    PyObject *ahead = delay_ns(delay);
    PyObject *deadline = ahead == NULL ? NULL : PyNumber_Add(since, ahead);
    Py_DECREF(since);
    Py_XDECREF(ahead);
    return deadline;
}

/* round(delay, 6), remembered for the last delay: a program sleeps the same delays over and
 * over (a borrowed reference, or NULL with an exception) */
static PyObject *
shown_delay(LoopTracerCore *self, PyObject *delay)
{
    PyObject *last = self->last_delay;
    if (last != NULL && (last == delay || (PyFloat_CheckExact(delay) && PyFloat_CheckExact(last)
            && memcmp(&((PyFloatObject *)last)->ob_fval, &((PyFloatObject *)delay)->ob_fval,
                      sizeof(double)) == 0))) {
        return self->last_delay_shown;
    }
    PyObject *shown = PyObject_CallFunction(builtin_round, "Oi", delay, 6);
    if (shown == NULL) return NULL;
    Py_XSETREF(self->last_delay_shown, shown);
    Py_XSETREF(self->last_delay, Py_NewRef(delay));
    return shown;
}

/* asyncio.sleep's timer: its SLEEPING detail, ("delay_s", round(delay, 6), "deadline_ns",
 * deadline), a value row now, kept with the deadline for the wait on `future`
 * (tracer.sleeps, SLEEP_FIELDS) */
static int
tracer_remember_sleep(LoopTracerCore *self, PyObject *delay, PyObject *deadline,
                      PyObject *future)
{
    if (self->sleeps == NULL || !PyDict_Check(self->sleeps)) {
        PyErr_SetString(PyExc_TypeError, "the asyncio tracer's sleeps must be a dict");
        return -1;
    }
    PyObject *shown = shown_delay(self, delay);  /* borrowed */
    if (shown == NULL) return -1;
    int32_t index;
    if (deadline_row(self->recorder, str_delay_s, shown, deadline, &index) < 0) return -1;
    int failed;
    PyObject *key = PyLong_FromVoidPtr(future);  /* id(future) */
    PyObject *row = key == NULL ? NULL : Py_BuildValue("(OiO)", future, index, deadline);
    failed = row == NULL || PyDict_SetItem(self->sleeps, key, row) < 0;
    Py_XDECREF(key);
    Py_XDECREF(row);
    return failed ? -1 : 0;
}

/* timer_scheduled(delay, callback, args) -> the callback to schedule, run with the timer as
 * the cause of what it completes; asyncio.sleep's timer also leaves its SLEEPING detail for
 * the wait on its future. Every sleep of a program comes here. */
static PyObject *
tracer_timer_scheduled(LoopTracerCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "timer_scheduled(delay, callback, args)");
        return NULL;
    }
    PyObject *delay = args[0], *callback = args[1], *callback_args = args[2];
    PyObject *result = NULL;
    PyObject *deadline = timer_deadline(self, delay);
    if (deadline != NULL && callback == self->timer_fires && PyTuple_GET_SIZE(callback_args)) {
        /* asyncio.sleep's timer runs as it is, without a wrapper and a cause per sleep:
         * the wake-up's cause is made from the deadline the wait leaves in tracer.sleeping */
        int failed = tracer_remember_sleep(self, delay, deadline,
                                           PyTuple_GET_ITEM(callback_args, 0));
        Py_DECREF(deadline);
        if (!failed) return Py_NewRef(callback);
    }
    else if (deadline != NULL) {
        PyObject *cause = Py_BuildValue("(iiO)", self->loop_lane, -1, deadline);  /* CAUSE_FIELDS */
        Py_DECREF(deadline);
        result = cause == NULL ? NULL
            : caused_callback_new(&CausedCallbackType, self, callback, cause);
        Py_XDECREF(cause);
    }
    if (result == NULL && tracer_failed(self) == 0) return Py_NewRef(callback);
    return result;
}

/* An Exception raised while recording detaches the tracer (the program goes on); anything
 * else stays raised. Returns 0 when handled. */
static int
tracer_failed(LoopTracerCore *self)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
    PyObject *done = PyObject_CallMethodOneArg((PyObject *)self, str_detach,
                                               value ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

static int
as_detail(PyObject *value, int *out)
{
    int32_t index;
    int failed = value == NULL || as_int32(value, &index) < 0;
    Py_XDECREF(value);
    if (failed) return -1;
    *out = index;
    return 0;
}

static int
tracer_record_poll(LoopTracerCore *self, PyObject *timeout)
{
    int detail;
    if (timeout == Py_None && self->poll_none_detail != 0) {
        detail = self->poll_none_detail;
    }
    else {
        int same = 0;
        if (timeout != Py_None && self->poll_timeout != NULL) {
            same = PyObject_RichCompareBool(timeout, self->poll_timeout, Py_EQ);
            if (same < 0) return -1;
        }
        if (same) {
            detail = self->poll_detail;
        }
        else {
            PyObject *interned = PyObject_CallMethodOneArg((PyObject *)self,
                                                           str_poll_timeout_detail, timeout);
            if (as_detail(interned, &detail) < 0) return -1;
            if (timeout == Py_None) {
                self->poll_none_detail = detail;
            }
            else {
                Py_INCREF(timeout);
                Py_XSETREF(self->poll_timeout, timeout);
                self->poll_detail = detail;
            }
        }
    }
    return recorder_append(self->recorder, self->loop_lane, CODE_POLL, NO_LANE, detail, 0);
}

/* poll_started(timeout): the loop lane's POLL, with the timeout as its detail */
static PyObject *
tracer_poll_started(LoopTracerCore *self, PyObject *timeout)
{
    if (self->recorder == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loop tracer not initialised");
        return NULL;
    }
    if (tracer_record_poll(self, timeout) < 0 && tracer_failed(self) < 0) return NULL;
    Py_RETURN_NONE;
}

/* The fds of a select() result with `bit` in their mask, as a tuple. */
static PyObject *
ready_fds(PyObject *ready, long bit)
{
    Py_ssize_t count = PyList_GET_SIZE(ready);
    PyObject *fds = PyList_New(0);
    if (fds == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(ready, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "select() must return (key, events) pairs");
            Py_DECREF(fds);
            return NULL;
        }
        long mask = PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
        if (mask == -1 && PyErr_Occurred()) {
            Py_DECREF(fds);
            return NULL;
        }
        if (!(mask & bit)) continue;
        PyObject *fd = PyObject_GetAttr(PyTuple_GET_ITEM(pair, 0), str_fd);
        int failed = fd == NULL || PyList_Append(fds, fd) < 0;
        Py_XDECREF(fd);
        if (failed) {
            Py_DECREF(fds);
            return NULL;
        }
    }
    PyObject *as_tuple = PyList_AsTuple(fds);
    Py_DECREF(fds);
    return as_tuple;
}

static int
tracer_record_poll_result(LoopTracerCore *self, PyObject *ready)
{
    if (!PyList_Check(ready)) {
        PyErr_SetString(PyExc_TypeError, "select() must return a list");
        return -1;
    }
    int detail;
    if (PyList_GET_SIZE(ready) == 0 && self->nothing_ready != 0) {
        detail = self->nothing_ready;
    }
    else {
        PyObject *readable = ready_fds(ready, 1);  /* selectors.EVENT_READ */
        PyObject *writable = readable == NULL ? NULL : ready_fds(ready, 2);  /* EVENT_WRITE */
        PyObject *row = writable == NULL ? NULL
            : Py_BuildValue("(sOsO)", "readable", readable, "writable", writable);
        Py_XDECREF(readable);
        Py_XDECREF(writable);
        if (row == NULL) return -1;
        PyObject *interned = PyObject_CallMethodOneArg((PyObject *)self->recorder, str_detail,
                                                       row);
        Py_DECREF(row);
        if (as_detail(interned, &detail) < 0) return -1;
        if (PyList_GET_SIZE(ready) == 0) self->nothing_ready = detail;
    }
    if (recorder_append(self->recorder, self->loop_lane, CODE_ANNOTATE, NO_LANE, detail, 0) < 0) {
        return -1;
    }
    return recorder_append(self->recorder, self->loop_lane, CODE_DISPATCH, NO_LANE, 0, 0);
}

/* poll_returned(ready): what the poll found ready (ANNOTATE), then the loop lane's DISPATCH */
static PyObject *
tracer_poll_returned(LoopTracerCore *self, PyObject *ready)
{
    if (self->detached) Py_RETURN_NONE;
    if (self->recorder == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loop tracer not initialised");
        return NULL;
    }
    if (tracer_record_poll_result(self, ready) < 0 && tracer_failed(self) < 0) return NULL;
    Py_RETURN_NONE;
}

/* The task's spawn base detail for lanes of coroutines with this qualname, or -1 on error. */
static int32_t
task_spawn_base(LoopTracerCore *self, PyObject *qualname)
{
    int32_t base;
    PyObject *known = PyDict_GetItemWithError(self->spawn_bases, qualname);  /* borrowed */
    if (known != NULL) return as_int32(known, &base) < 0 ? -1 : base;
    if (PyErr_Occurred()) return -1;
    known = PyObject_CallMethodOneArg((PyObject *)self, str_task_spawn_base, qualname);
    if (known == NULL) return -1;
    int failed = as_int32(known, &base);
    Py_DECREF(known);
    return failed ? -1 : base;
}

/* The widest character of qualname[start:], for PyUnicode_New to make a str of that part's
 * own kind: the qualname's kind would be wider than the part's text when only the dropped
 * "<locals>." prefix held wide characters (a function named in Chinese, say), and CPython
 * hashes and compares such a str unlike the same text made any other way. */
static Py_UCS4
shown_max_char(PyObject *qualname, Py_ssize_t start)
{
    if (start == 0 || PyUnicode_IS_ASCII(qualname)) return PyUnicode_MAX_CHAR_VALUE(qualname);
    int kind = PyUnicode_KIND(qualname);
    const void *data = PyUnicode_DATA(qualname);
    Py_UCS4 widest = 0;
    for (Py_ssize_t i = start, length = PyUnicode_GET_LENGTH(qualname); i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c > widest) widest = c;
    }
    return widest;
}

/* "<qualname> (<task name>)", what PyUnicode_FromFormat("%U (%S)") makes, copied into place
 * without parsing a format: a lane name is made for every task. The qualname is shown as
 * written (naming.as_written), from `start` (qualname_shown_start): a coroutine defined in a
 * function drops the function's "<locals>." ("fetch (Task-3)", not
 * "main.<locals>.fetch (Task-3)"). */
static PyObject *
task_lane_name(PyObject *qualname, Py_ssize_t start, PyObject *task_name)
{
    Py_ssize_t whole = PyUnicode_GET_LENGTH(qualname);
    PyObject *text = PyUnicode_CheckExact(task_name) ? Py_NewRef(task_name)
        : PyObject_Str(task_name);
    if (text == NULL) return NULL;
    Py_ssize_t head = whole - start, tail = PyUnicode_GET_LENGTH(text);
    Py_UCS4 widest = shown_max_char(qualname, start);
    if (PyUnicode_MAX_CHAR_VALUE(text) > widest) widest = PyUnicode_MAX_CHAR_VALUE(text);
    PyObject *name = PyUnicode_New(head + tail + 3, widest);
    if (name != NULL) {
        int kind = PyUnicode_KIND(name);
        void *data = PyUnicode_DATA(name);
        PyUnicode_CopyCharacters(name, 0, qualname, start, head);
        PyUnicode_WRITE(kind, data, head, ' ');
        PyUnicode_WRITE(kind, data, head + 1, '(');
        PyUnicode_CopyCharacters(name, head + 2, text, 0, tail);
        PyUnicode_WRITE(kind, data, head + 2 + tail, ')');
    }
    Py_DECREF(text);
    return name;
}

/* Where the name shown starts in `qualname`: after its last "<locals>." (as_written), or 0;
 * -1 on error. */
static Py_ssize_t
qualname_shown_start(PyObject *qualname)
{
    static PyObject *locals_dot = NULL;
    if (locals_dot == NULL && (locals_dot = PyUnicode_InternFromString("<locals>.")) == NULL) {
        return -1;
    }
    Py_ssize_t found = PyUnicode_Find(qualname, locals_dot, 0, PyUnicode_GET_LENGTH(qualname),
                                      -1);
    if (found == -2) return -1;
    return found >= 0 ? found + PyUnicode_GET_LENGTH(locals_dot) : 0;
}

/* -- A task's own name, read where the Task keeps it ---------------------------------------
 *
 * Task.get_name costs 3.12 and later 1.7k instructions a task: a task the program did not
 * name keeps its number until get_name formats "Task-N" (PyUnicode_FromFormat) and stores
 * that, and the tracer is the only one who asks. CPython's C Task keeps its coroutine and its
 * name in slots of its object that no header declares, so where they are is learned, not
 * assumed: the first traced task of asyncio's Task type is asked by get_name as before, and
 * the one slot holding the name it returned and the one holding the task's coroutine (the
 * proxy) are the slots. A number in the name slot is read as "Task-<number>" once the first
 * one seen has been checked against what get_name made of it. Anything else (another task
 * type, a mutable type whose get_name a program could replace, a free-threaded build, no
 * such unique slots, a name slot holding something else) asks get_name as before. */

static PyObject *hooks_task_type;  /* asyncio's Task type (configure_loop_hooks, below) */
static Py_ssize_t task_name_slot, task_coro_slot;  /* byte offsets in a Task, once known */
static int task_slots_known;    /* 0: not looked for yet, 1: known, -1: not to be used */
static int task_numbers_known;  /* 0: not checked yet, 1: a number is "Task-<number>", -1 not */

static inline PyObject *
task_slot(PyObject *task, Py_ssize_t offset)
{
    return *(PyObject **)((char *)task + offset);  /* borrowed; may be NULL */
}

/* Whether `task` is of the type whose slots are known. */
static inline int
task_slots_usable(PyObject *task)
{
    return task_slots_known > 0 && (PyObject *)Py_TYPE(task) == hooks_task_type;
}

/* Finds the name and coroutine slots in `task`, which get_name has just answered `name`. */
static void
task_slots_learn(PyObject *task, PyObject *coro, PyObject *name)
{
    task_slots_known = -1;
#ifndef Py_GIL_DISABLED
    PyTypeObject *type = Py_TYPE(task);
    if ((PyObject *)type != hooks_task_type || type->tp_itemsize != 0
        || !(type->tp_flags & Py_TPFLAGS_IMMUTABLETYPE)) {
        return;
    }
    Py_ssize_t name_at = 0, coro_at = 0;
    for (Py_ssize_t at = sizeof(PyObject);
         at + (Py_ssize_t)sizeof(PyObject *) <= type->tp_basicsize; at += sizeof(PyObject *)) {
        PyObject *held = task_slot(task, at);
        if (held == name) {
            if (name_at != 0) return;
            name_at = at;
        }
        else if (held == coro) {
            if (coro_at != 0) return;
            coro_at = at;
        }
    }
    if (name_at == 0 || coro_at == 0) return;
    task_name_slot = name_at;
    task_coro_slot = coro_at;
    task_slots_known = 1;
#else
    (void)coro;
    (void)name;
#endif
}

/* The decimal digits of a non-negative `value`, last digit first; their count. */
static int
reversed_digits(long long value, char digits[24])
{
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    return count;
}

/* "Task-<number>" for the int a Task keeps as its name, as get_name formats it ("Task-%S"). */
static PyObject *
task_number_name(PyObject *number)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (overflow != 0 || value < 0) return PyUnicode_FromFormat("Task-%S", number);
    char digits[24];
    int count = reversed_digits(value, digits);
    PyObject *name = PyUnicode_New(5 + count, 127);
    if (name == NULL) return NULL;
    Py_UCS1 *text = PyUnicode_1BYTE_DATA(name);
    memcpy(text, "Task-", 5);
    for (int i = 0; i < count; i++) text[5 + i] = (Py_UCS1)digits[count - 1 - i];
    return name;
}

/* What task.get_name() answers (a new reference), read from its name slot when it is known
 * (`coro` is the task's coroutine, which the first call finds the slots by). */
static PyObject *
task_own_name(PyObject *task, PyObject *coro)
{
    PyObject *number = NULL;
    if (task_slots_usable(task)) {
        PyObject *held = task_slot(task, task_name_slot);
        if (held != NULL && PyUnicode_CheckExact(held)) return Py_NewRef(held);
        if (held != NULL && PyLong_CheckExact(held)) {
            if (task_numbers_known > 0) return task_number_name(held);
            if (task_numbers_known == 0) number = Py_NewRef(held);  /* checked below */
        }
    }
    PyObject *name = PyObject_CallMethodNoArgs(task, str_get_name);
    if (name == NULL || (number == NULL && task_slots_known != 0)) {
        Py_XDECREF(number);
        return name;
    }
    if (number != NULL) {
        PyObject *ours = task_number_name(number);
        Py_DECREF(number);
        if (ours == NULL) {
            Py_DECREF(name);
            return NULL;
        }
        task_numbers_known = PyUnicode_CheckExact(name)
            && PyUnicode_Compare(ours, name) == 0 ? 1 : -1;
        Py_DECREF(ours);
    }
    else if (PyUnicode_CheckExact(name)) {
        task_slots_learn(task, coro, name);
    }
    else {
        task_slots_known = -1;
    }
    return name;
}

/* The lane name "<qualname from start> (Task-<number>)" of a task the program did not name,
 * its number written straight into the name: what task_lane_name makes of task_own_name's
 * "Task-<number>", without that string. NULL without an error when the task's name is not a
 * number read this way (task_own_name says what it is). */
static PyObject *
task_number_lane_name(PyObject *qualname, Py_ssize_t start, PyObject *task)
{
    if (!task_slots_usable(task) || task_numbers_known <= 0) return NULL;
    PyObject *held = task_slot(task, task_name_slot);
    if (held == NULL || !PyLong_CheckExact(held)) return NULL;
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(held, &overflow);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (overflow != 0 || value < 0) return NULL;
    char digits[24];
    int count = reversed_digits(value, digits);
    char tail[40];  /* " (Task-" + up to 20 digits + ")" */
    memcpy(tail, " (Task-", 7);
    int size = 7;
    for (int i = count - 1; i >= 0; i--) tail[size++] = digits[i];
    tail[size++] = ')';
    Py_ssize_t head = PyUnicode_GET_LENGTH(qualname) - start;
    PyObject *name = PyUnicode_New(head + size, shown_max_char(qualname, start));
    if (name == NULL) return NULL;
    int kind = PyUnicode_KIND(name);
    void *data = PyUnicode_DATA(name);
    if (kind == PyUnicode_1BYTE_KIND && PyUnicode_KIND(qualname) == PyUnicode_1BYTE_KIND) {
        /* the usual name, all one byte a character: two copies */
        memcpy(data, PyUnicode_1BYTE_DATA(qualname) + start, (size_t)head);
        memcpy((Py_UCS1 *)data + head, tail, (size_t)size);
        return name;
    }
    PyUnicode_CopyCharacters(name, 0, qualname, start, head);
    for (int i = 0; i < size; i++) PyUnicode_WRITE(kind, data, head + i, (Py_UCS4)tail[i]);
    return name;
}

/* task.get_coro() (a new reference), read from its coroutine slot when it is known */
static PyObject *
task_own_coro(PyObject *task)
{
    if (task_slots_usable(task)) {
        PyObject *coro = task_slot(task, task_coro_slot);
        return coro != NULL ? Py_NewRef(coro) : Py_NewRef(Py_None);
    }
    return PyObject_CallMethodNoArgs(task, str_get_coro);
}

/* coroutine.__qualname__'s getter, found in the type once: a task's lane name reads its
 * coroutine's qualname, and the generic getattr (a type lookup, then the descriptor's call)
 * was 200 instructions a task of the 5k the tracer adds to an eager one. */
static getter coro_qualname_getter;
static void *coro_qualname_closure;
static int coro_qualname_looked_up;

/* coro.__qualname__ (a new reference) */
static PyObject *
coroutine_qualname(PyObject *coro)
{
    if (!coro_qualname_looked_up) {
        coro_qualname_looked_up = 1;
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *dict = PyType_GetDict(&PyCoro_Type);  /* a static type's: 3.12+ asks */
#else
        PyObject *dict = Py_XNewRef(PyCoro_Type.tp_dict);
#endif
        PyObject *descriptor = dict != NULL ? PyDict_GetItemWithError(dict, str_qualname) : NULL;
        if (descriptor != NULL && Py_IS_TYPE(descriptor, &PyGetSetDescr_Type)) {
            PyGetSetDef *getset = ((PyGetSetDescrObject *)descriptor)->d_getset;
            coro_qualname_getter = getset->get;  /* the type and its dict live as long as we */
            coro_qualname_closure = getset->closure;
        }
        Py_XDECREF(dict);
        if (descriptor == NULL && PyErr_Occurred()) {
            PyErr_Clear();  /* not to be found: the generic getattr below, as before */
        }
    }
    if (coro_qualname_getter != NULL && PyCoro_CheckExact(coro)) {
        return coro_qualname_getter(coro, coro_qualname_closure);
    }
    return PyObject_GetAttr(coro, str_qualname);
}

/* LoopTracer._spawn in C for the usual task: a lane named "<qualname> (Task-N)" (the task's
 * name, or `suffix` when not NULL) or as the program named it, READY from its creator. 0 when
 * done, 1 when Python must do it (a request handler's lane), -1 on error. */
static int
tracer_spawn_task(LoopTracerCore *self, ProxyCore *proxy, PyObject *task, PyObject *given,
                  PyObject *suffix)
{
    RecorderCore *recorder = self->recorder;
    if (self->spawn_bases == NULL || !PyDict_Check(self->spawn_bases)
        || self->named_by_request == NULL || !PyDict_Check(self->named_by_request)
        || (given != Py_None && !PyUnicode_CheckExact(given))) {
        return 1;
    }
    PyObject *qualname = coroutine_qualname(proxy->coro);
    if (qualname == NULL) return -1;
    int32_t base;
    Py_ssize_t start;
    if (qualname == self->stem_qualname && self->spawn_bases == self->stem_bases
        && self->named_by_request == self->stem_requests) {
        /* the coroutines of one function share their __qualname__ object: what was looked up
         * for it last time holds while these dicts are the ones it was looked up in (spawn
         * bases are set once per qualname, the request names at start) */
        base = self->stem_base;
        start = self->stem_start;
    }
    else {
        int by_request = PyUnicode_CheckExact(qualname)
            ? PyDict_Contains(self->named_by_request, qualname) : 1;
        base = by_request == 0 ? task_spawn_base(self, qualname) : 0;
        start = by_request == 0 && base >= 0 ? qualname_shown_start(qualname) : 0;
        if (by_request != 0 || base < 0 || start < 0) {
            Py_DECREF(qualname);
            return by_request < 0 || base < 0 || start < 0 ? -1 : 1;
        }
        Py_XSETREF(self->stem_qualname, Py_NewRef(qualname));
        Py_XSETREF(self->stem_bases, Py_NewRef(self->spawn_bases));
        Py_XSETREF(self->stem_requests, Py_NewRef(self->named_by_request));
        self->stem_base = base;
        self->stem_start = start;
    }
    PyObject *name;
    if (given == Py_None) {
        name = suffix == NULL ? task_number_lane_name(qualname, start, task) : NULL;
        if (name == NULL && !PyErr_Occurred()) {
            PyObject *task_name = suffix != NULL ? Py_NewRef(suffix)
                : task_own_name(task, (PyObject *)proxy);
            name = task_name == NULL ? NULL : task_lane_name(qualname, start, task_name);
            Py_XDECREF(task_name);
        }
    }
    else {
        name = Py_NewRef(given);
    }
    Py_DECREF(qualname);
    if (name == NULL) return -1;
    int32_t creator = recorder->current == NO_LANE ? self->loop_lane : recorder->current;
    int32_t lane;
    PyObject *named;
    int failed = recorder_spawn(recorder, name, base, creator, 0, &lane, &named);
    Py_DECREF(name);
    if (failed) return -1;
    proxy->lane = lane;
    Py_XSETREF(proxy->name, named);
    /* made ready as it is made: at its SPAWN's instant */
    return recorder_append_same_instant(recorder, lane, CODE_READY, creator, self->ready_spawn,
                                        0);
}

/* task_created(proxy, task, name): the task's lane (LoopTracer.pure_task_created's twin) */
static PyObject *
tracer_task_created(LoopTracerCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "task_created(proxy, task, name)");
        return NULL;
    }
    PyObject *proxy = args[0], *task = args[1], *given = args[2];
    if (self->detached || !PyObject_TypeCheck(proxy, &ProxyCoreType)
        || ((ProxyCore *)proxy)->coro == NULL || self->recorder == NULL) {
        return PyObject_CallMethod((PyObject *)self, "pure_task_created", "OOO", proxy, task,
                                   given);
    }
    if (((ProxyCore *)proxy)->lane != NO_LANE) Py_RETURN_NONE;  /* an eager task ran */
    int done = tracer_spawn_task(self, (ProxyCore *)proxy, task, given, NULL);
    if (done == 1) {
        return PyObject_CallMethod((PyObject *)self, "pure_task_created", "OOO", proxy, task,
                                   given);
    }
    if (done < 0 && tracer_failed(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef tracer_methods[] = {
    {"task_created", (PyCFunction)(void (*)(void))tracer_task_created, METH_FASTCALL,
     "task_created(proxy, task, name): a lane for the task, READY from its creator."},
    {"timer_scheduled", (PyCFunction)(void (*)(void))tracer_timer_scheduled, METH_FASTCALL,
     "timer_scheduled(delay, callback, args): the callback to schedule for a timer."},
    {"callback_scheduled", (PyCFunction)(void (*)(void))tracer_callback_scheduled,
     METH_FASTCALL, NULL},
    {"poll_started", (PyCFunction)tracer_poll_started, METH_O,
     "poll_started(timeout): the loop lane's POLL."},
    {"poll_returned", (PyCFunction)tracer_poll_returned, METH_O,
     "poll_returned(ready): ANNOTATE with the ready fds, then DISPATCH."},
    {"sweep_waiting", (PyCFunction)tracer_sweep_waiting_method, METH_NOARGS,
     "sweep_waiting(): forgets the waiting rows of futures that died waited on."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject LoopTracerCoreType = {
    CORE_TYPE("LoopTracerCore", LoopTracerCore, tracer,
              "What the C coroutine proxy reads of its loop tracer on every step."),
    .tp_init = (initproc)tracer_init,
    .tp_methods = tracer_methods,
    .tp_getset = tracer_getset,
};

/* -- CausedCallback ---------------------------------------------------------------------- */

/* A callback run with `cause` as the tracer's cause while it runs: LoopTracer.with_cause. */
typedef struct {
    PyObject_HEAD
    LoopTracerCore *tracer;
    PyObject *callback;
    PyObject *cause;
    vectorcallfunc vectorcall;
} CausedCallback;

static PyObject *
caused_vectorcall(CausedCallback *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LoopTracerCore *tracer = self->tracer;
    PyObject *outer = tracer->cause;  /* the reference moves to this frame */
    int outer_lane = tracer->done_lane;
    tracer->cause = Py_NewRef(self->cause);
    tracer->done_lane = NO_LANE;
    PyObject *result = PyObject_Vectorcall(self->callback, args, nargsf, kwnames);
    Py_XSETREF(tracer->cause, outer);
    tracer->done_lane = outer_lane;
    return result;
}

static PyObject *
caused_callback_new(PyTypeObject *type, LoopTracerCore *tracer, PyObject *callback,
                    PyObject *cause)
{
    CausedCallback *self = (CausedCallback *)own_object_alloc(type);
    if (self == NULL) return NULL;
    self->tracer = (LoopTracerCore *)Py_NewRef(tracer);
    self->callback = Py_NewRef(callback);
    /* A cause of plain ints (every one the tracer makes) can never be part of a reference
     * cycle: untracked, it is not one more object for the collector to walk while its
     * callback waits in the ready queue (the collector would untrack it itself, later). */
    int atomic = PyTuple_CheckExact(cause);
    for (Py_ssize_t i = 0; atomic && i < PyTuple_GET_SIZE(cause); i++) {
        atomic = PyLong_CheckExact(PyTuple_GET_ITEM(cause, i));
    }
    if (atomic) PyObject_GC_UnTrack(cause);
    self->cause = Py_NewRef(cause);
    self->vectorcall = (vectorcallfunc)caused_vectorcall;
    return (PyObject *)self;
}

static PyObject *
caused_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *tracer, *callback, *cause;
    if (!PyArg_ParseTuple(args, "O!OO:CausedCallback", &LoopTracerCoreType, &tracer, &callback,
                          &cause)) {
        return NULL;
    }
    return caused_callback_new(type, (LoopTracerCore *)tracer, callback, cause);
}

static PyObject *
caused_qualname(CausedCallback *self, void *closure)
{
    PyObject *name;
    if (PyObject_GetOptionalAttrString_compat(self->callback, "__qualname__", &name) < 0) {
        return NULL;
    }
    return name != NULL ? name : PyUnicode_FromString("callback");
}

static PyObject *
caused_repr(CausedCallback *self)
{
    return PyObject_Repr(self->callback);
}

static PyGetSetDef caused_getset[] = {
    {"__qualname__", (getter)caused_qualname, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef caused_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CausedCallback, vectorcall), READONLY, NULL},
    {"tracer", T_OBJECT, offsetof(CausedCallback, tracer), READONLY, NULL},
    {"callback", T_OBJECT, offsetof(CausedCallback, callback), READONLY, NULL},
    {"cause", T_OBJECT, offsetof(CausedCallback, cause), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

GC_FROM_MEMBERS_FREED_BY(caused, caused_members, own_object_dealloc)

PyTypeObject CausedCallbackType = {
    CALLABLE_TYPE("CausedCallback", CausedCallback, caused,
                  "CausedCallback(tracer, callback, cause): callback run with tracer.cause = "
                  "cause."),
    .tp_new = caused_new,
    .tp_getset = caused_getset,
    .tp_repr = (reprfunc)caused_repr,
};

/* -- DoneCallbacks ----------------------------------------------------------------------- */

/* What the traced loop's call_soon schedules for a finished task's done callback, in place of
 * the callback: one per tracer, called as done_callbacks(callback, task, lane), it runs
 * callback(task) with the task's lane as the cause of what it completes (tracer.done_lane).
 * The same as a CausedCallback, without a wrapper and a cause tuple per callback: a program
 * that finishes 50k tasks at once would otherwise give the garbage collector 100k more
 * objects to walk while they wait in the ready queue. */
typedef struct {
    PyObject_HEAD
    LoopTracerCore *tracer;
    vectorcallfunc vectorcall;
} DoneCallbacks;

static PyObject *
done_vectorcall(DoneCallbacks *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    int32_t lane;
    if (PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "done callbacks take (callback, task, lane)");
        return NULL;
    }
    if (as_int32(args[2], &lane) < 0) return NULL;
    LoopTracerCore *tracer = self->tracer;
    PyObject *outer = tracer->cause;  /* the reference moves to this frame */
    int outer_lane = tracer->done_lane;
    tracer->cause = NULL;
    tracer->done_lane = lane;
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, 1, NULL);
    Py_XSETREF(tracer->cause, outer);
    tracer->done_lane = outer_lane;
    return result;
}

static PyMemberDef done_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(DoneCallbacks, vectorcall), READONLY, NULL},
    {"tracer", T_OBJECT, offsetof(DoneCallbacks, tracer), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

GC_FROM_MEMBERS(done, done_members)

PyTypeObject DoneCallbacksType = {
    CALLABLE_TYPE("DoneCallbacks", DoneCallbacks, done,
                  "Runs a finished task's done callback with the task's lane as its cause."),
};

/* The tracer's DoneCallbacks (borrowed), made at first use */
static PyObject *
tracer_done_callbacks(LoopTracerCore *self)
{
    if (self->done_callbacks != NULL) return self->done_callbacks;
    DoneCallbacks *made = PyObject_GC_New(DoneCallbacks, &DoneCallbacksType);
    if (made == NULL) return NULL;
    made->tracer = (LoopTracerCore *)Py_NewRef(self);
    made->vectorcall = (vectorcallfunc)done_vectorcall;
    PyObject_GC_Track(made);
    self->done_callbacks = (PyObject *)made;
    return self->done_callbacks;
}

/* -- CoroutineProxyCore ------------------------------------------------------------------ */

/* The rows of the tracer's tables keyed by id(code) hold the code object first: hashing a
 * code object walks its bytecode (3.12+), and holding it keeps its id from being reused. */
#if VERDICT_CODE != 0 || LINES_OF_CODE != 0
#error "known_code_row reads a row's code object from its first field"
#endif

/* table[id(code)] when it is code's row (borrowed): a tuple of at least `fields` items whose
 * first is `code` itself. NULL with an error when the row is not such a tuple, NULL without
 * one when the table has no row for `code` (or a row left by another code object that had
 * the same id). `table` is a dict. */
static PyObject *
known_code_row(PyObject *table, PyObject *code, Py_ssize_t fields, const char *name)
{
    PyObject *code_id = PyLong_FromVoidPtr(code);
    if (code_id == NULL) return NULL;
    PyObject *row = PyDict_GetItemWithError(table, code_id);  /* borrowed */
    Py_DECREF(code_id);
    if (row == NULL || checked_row(row, fields, name) == NULL) return NULL;
    return PyTuple_GET_ITEM(row, 0) == code ? row : NULL;
}

/* walk_await_chain's entry where no library call is below the program's innermost coroutine:
 * the program's own function is innermost, or none is the program's (a library task's chain).
 * No side is this. */
#define NO_LIBRARY_CALL (-4)

static int walk_await_chain(PyObject *coro, PyObject *calls, PyObject **innermost, long *entry);

/* The BLOCKED detail naming the library function the program called, as
 * LoopTracer._program_call_detail finds it: the program's entry into the library in `coro`'s
 * await chain. Leaves *detail (the innermost function's) when no such call is below the
 * program's innermost coroutine. 1 when decided, 0 when a function on the way is not in
 * tracer._wait_calls yet or the call is not named yet (Python decides), -1 on an error. */
static int
program_call_detail(LoopTracerCore *tracer, PyObject *coro, int32_t *detail)
{
    PyObject *calls = tracer->wait_calls;
    if (calls == NULL || !PyDict_Check(calls)) return 0;
    PyObject *innermost;
    long entry;
    int walked = walk_await_chain(coro, calls, &innermost, &entry);
    if (walked <= 0) return walked;
    Py_DECREF(innermost);
    if (entry == NO_LIBRARY_CALL) return 1;
    if (entry == LIBRARY_SIDE) return 0;  /* the call is named by Python first */
    *detail = (int32_t)entry;
    return 1;
}


/* The wait detail of a bare asyncio.Future the step yielded, judged from the await chain as
 * LoopTracer._record_awaiter_wait does when its caches know the answer. Sets *code and
 * *detail and returns 1; returns 0 when the caches do not know (Python decides), -1 on error.
 */
static int
proxy_known_wait(ProxyCore *self, int8_t *code, int32_t *detail)
{
    LoopTracerCore *tracer = self->tracer;
    PyObject *innermost;
    if (walk_await_chain(self->coro, NULL, &innermost, NULL) < 0) return -1;
    PyObject *verdicts = innermost == self->coro ? tracer->verdicts_top : tracer->verdicts_inner;
    if (verdicts == NULL || !PyDict_Check(verdicts)) {
        Py_DECREF(innermost);
        return 0;
    }
    int is_coroutine = PyCoro_CheckExact(innermost);
    PyObject *awaiter_code = PyObject_GetAttr(innermost, is_coroutine ? str_cr_code : str_gi_code);
    if (awaiter_code == NULL) {
        Py_DECREF(innermost);
        return -1;
    }
    Py_DECREF(awaiter_code);  /* the innermost coroutine keeps it alive */
    PyObject *entry = known_code_row(verdicts, awaiter_code, VERDICT_FIELDS,
                                     "asyncio wait verdicts");
    if (entry == NULL) {
        Py_DECREF(innermost);
        return PyErr_Occurred() ? -1 : 0;
    }
    long verdict = PyLong_AsLong(PyTuple_GET_ITEM(entry, VERDICT_VERDICT));
    if (verdict == -1 && PyErr_Occurred()) {
        Py_DECREF(innermost);
        return -1;
    }
    if (verdict >= 0) {  /* a blocked wait: no need for the frame */
        int is_top = innermost == self->coro;
        Py_DECREF(innermost);
        *detail = (int32_t)verdict;
        if (!is_top) {
            int decided = program_call_detail(tracer, self->coro, detail);
            if (decided <= 0) return decided;
        }
        *code = CODE_BLOCKED;
        return 1;
    }
    PyObject *frame = PyObject_GetAttr(innermost, is_coroutine ? str_cr_frame : str_gi_frame);
    Py_DECREF(innermost);
    if (frame == NULL) return -1;
    PyObject *owner = local_self(NULL, frame);
    Py_DECREF(frame);
    if (owner == NULL) return -1;
    if (tracer->owner_details == NULL || !PyDict_Check(tracer->owner_details)) {
        Py_DECREF(owner);
        return 0;
    }
    /* the key LoopTracer.step_waits makes: id(owner) * 2 + (1 for a write wait) */
    unsigned long long address = (unsigned long long)(uintptr_t)owner;
    PyObject *key = PyLong_FromUnsignedLongLong(address * 2 + (verdict == STREAM_WRITE));
    if (key == NULL) {
        Py_DECREF(owner);
        return -1;
    }
    PyObject *known = PyDict_GetItemWithError(tracer->owner_details, key);  /* borrowed */
    Py_DECREF(key);
    if (known != NULL) known = checked_row(known, OWNER_FIELDS, "asyncio stream waits");
    if (known == NULL) {
        Py_DECREF(owner);
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *alive = PyObject_CallNoArgs(PyTuple_GET_ITEM(known, OWNER_STREAM));
    if (alive == NULL) {
        Py_DECREF(owner);
        return -1;
    }
    int same = alive == owner;
    Py_DECREF(alive);
    Py_DECREF(owner);
    if (!same) return 0;
    if (as_int32(PyTuple_GET_ITEM(known, OWNER_DETAIL), detail) < 0) return -1;
    *code = CODE_IO_WAIT;
    return 1;
}

/* waiting[id(future)] gains this lane: (future held weakly, lane, lane...), or held itself
 * when a timer of the loop's holds it anyway (asyncio.sleep's: a weak reference would cost
 * the wait an object and change nothing); a new row sweeps the table of dead futures' rows
 * when it has grown enough (LoopTracer.add_waiter) */
static int
proxy_add_waiter(LoopTracerCore *tracer, PyObject *key, PyObject *future, int lane,
                 int timer_holds_it)
{
    PyObject *waiters = PyDict_GetItemWithError(tracer->waiting, key);  /* borrowed */
    if (waiters == NULL && PyErr_Occurred()) return -1;
    if (waiters != NULL && checked_row(waiters, WAITERS_FIELDS, "asyncio waiters") == NULL) {
        return -1;
    }
    PyObject *lane_object = PyLong_FromLong(lane);
    if (lane_object == NULL) return -1;
    PyObject *grown;
    if (waiters != NULL && held_future(PyTuple_GET_ITEM(waiters, WAITERS_FUTURE)) == future) {
        Py_ssize_t size = PyTuple_GET_SIZE(waiters);
        grown = PyTuple_New(size + 1);
        if (grown != NULL) {
            for (Py_ssize_t i = 0; i < size; i++) {
                PyTuple_SET_ITEM(grown, i, Py_NewRef(PyTuple_GET_ITEM(waiters, i)));
            }
            PyTuple_SET_ITEM(grown, size, Py_NewRef(lane_object));
        }
    }
    else {  /* a new row, or one left by a future that died waited on, whose id is reused */
        if (PyDict_GET_SIZE(tracer->waiting) >= tracer->sweep_waiting_at) {
            /* the sweep drops every dead future's row, this one's too */
            waiters = NULL;
            if (tracer_sweep_waiting(tracer) < 0) {
                Py_DECREF(lane_object);
                return -1;
            }
        }
        if (waiters != NULL) release_row(waiters);  /* a dead future's, replaced below */
        PyObject *held = timer_holds_it ? Py_NewRef(future) : held_weakly(future);
        grown = held == NULL ? NULL : PyTuple_Pack(2, held, lane_object);
        Py_XDECREF(held);
    }
    Py_DECREF(lane_object);
    if (grown == NULL) return -1;
    int failed = PyDict_SetItem(tracer->waiting, key, grown);
    Py_DECREF(grown);
    return failed;
}

/* The step yielded a future: record the wait, in C when it is a sleep, or a plain stream or
 * blocked wait the tracer has judged before; 0 when Python must decide (nothing recorded),
 * -1 on error. */
static int
proxy_fast_wait(ProxyCore *self, RecorderCore *recorder, int lane, PyObject *future)
{
    LoopTracerCore *tracer = self->tracer;
    if ((PyObject *)Py_TYPE(future) == tracer->gathering_future && tracer->on_gather != 0
        && tracer->waiting != NULL && PyDict_Check(tracer->waiting)) {
        /* a wait on gather's future (LoopTracer.step_waits) */
        PyObject *key = PyLong_FromVoidPtr(future);
        int failed = key == NULL
            || recorder_append(recorder, lane, CODE_BLOCKED, NO_LANE, tracer->on_gather, 0) < 0
            || proxy_add_waiter(tracer, key, future, lane, 0) < 0;
        Py_XDECREF(key);
        return failed ? -1 : 1;
    }
    if ((PyObject *)Py_TYPE(future) != tracer->plain_future || tracer->waiting == NULL
        || !PyDict_Check(tracer->waiting) || tracer->sleeps == NULL
        || !PyDict_Check(tracer->sleeps) || tracer->sleeping == NULL
        || !PyDict_Check(tracer->sleeping) || tracer->io_futures == NULL
        || !PyDict_Check(tracer->io_futures)) {
        return 0;
    }
    PyObject *key = PyLong_FromVoidPtr(future);
    if (key == NULL) return -1;
    if (PyDict_GET_SIZE(tracer->sleeps)) {
        /* asyncio.sleep's future, its SLEEPING detail interned when its timer was scheduled
         * (LoopTracer.timer_scheduled): sleeps.pop(id(future)), as step_waits does */
        PyObject *sleep = PyDict_GetItemWithError(tracer->sleeps, key);  /* borrowed */
        if (sleep != NULL) {
            int32_t detail;
            Py_INCREF(sleep);
            int failed = checked_row(sleep, SLEEP_FIELDS, "asyncio sleeps") == NULL
                || as_int32(PyTuple_GET_ITEM(sleep, SLEEP_DETAIL), &detail) < 0
                || PyDict_SetItem(tracer->sleeping, key,
                                  PyTuple_GET_ITEM(sleep, SLEEP_DEADLINE_NS)) < 0
                || PyDict_DelItem(tracer->sleeps, key) < 0
                || recorder_append(recorder, lane, CODE_SLEEPING, NO_LANE, detail, 0) < 0
                || proxy_add_waiter(tracer, key, future, lane, 1) < 0;
            Py_DECREF(sleep);
            Py_DECREF(key);
            return failed ? -1 : 1;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
    }
    int listed = 0;
    if (PyDict_GET_SIZE(tracer->io_futures)) {
        listed = PyDict_Contains(tracer->io_futures, key);
    }
    if (listed != 0) {  /* a socket wait: Python knows its detail */
        Py_DECREF(key);
        return listed < 0 ? -1 : 0;
    }
    int8_t code;
    int32_t detail;
    int known = proxy_known_wait(self, &code, &detail);
    if (known <= 0) {
        Py_DECREF(key);
        return known;
    }
    if (recorder_append(recorder, lane, code, NO_LANE, detail, 0) < 0
        || proxy_add_waiter(tracer, key, future, lane, 0) < 0) {
        Py_DECREF(key);
        return -1;
    }
    Py_DECREF(key);
    return 1;
}

/* The {line: source index} the tracer keeps for `code` (a new reference), or NULL: with an
 * error, or without one when it has none yet (LoopTracer.lines_of makes it). */
static PyObject *
code_lines_known(LoopTracerCore *tracer, PyObject *code)
{
    if (tracer->code_lines == NULL || !PyDict_Check(tracer->code_lines)) return NULL;
    /* an entry stays as it is while its code lives (lines_of replaces one only for another
     * code object given the same id), and the one kept here keeps its code alive */
    PyObject *last = tracer->last_code_lines;
    if (last != NULL && PyTuple_GET_ITEM(last, LINES_OF_CODE) == code) {
        return Py_NewRef(PyTuple_GET_ITEM(last, LINES_OF_LINES));
    }
    PyObject *entry = known_code_row(tracer->code_lines, code, LINES_OF_FIELDS,
                                     "asyncio code lines");
    if (entry == NULL) return NULL;
    Py_XSETREF(tracer->last_code_lines, Py_NewRef(entry));
    return Py_NewRef(PyTuple_GET_ITEM(entry, LINES_OF_LINES));
}

/* The proxy's fields for `coro` (whose code object is `code`) driven under `tracer`: what
 * CoroutineProxyCore(coro, tracer) sets, and what create_task sets in the proxies it makes
 * without a call of the type (hooks_new_proxy). */
static int
proxy_fill(ProxyCore *self, PyObject *coro, LoopTracerCore *tracer, PyObject *code)
{
    PyObject *lines = code_lines_known(tracer, code);
    if (lines == NULL && !PyErr_Occurred()) {
        lines = PyObject_CallMethodOneArg((PyObject *)tracer, str_lines_of, code);
    }
    if (lines == NULL) return -1;
    if (!PyDict_Check(lines)) {
        Py_DECREF(lines);
        PyErr_SetString(PyExc_TypeError, "lines_of() must return a dict");
        return -1;
    }
    Py_INCREF(coro);
    Py_XSETREF(self->coro, coro);
    Py_INCREF(tracer);
    Py_XSETREF(self->tracer, tracer);
    Py_XSETREF(self->lines, lines);
    Py_XSETREF(self->name, Py_NewRef(str_empty));
    self->lane = NO_LANE;
    self->last_offset = -2;
    self->last_source = 0;
    self->first_step_ticket = 0;
    if (code == tracer->first_step_code && tracer->first_step_known) {
        /* a hint proxy_source checks against the offset the coroutine resumes at */
        self->last_offset = tracer->first_step_offset;
        self->last_source = tracer->first_step_source;
    }
    else {
        if (code != tracer->first_step_code) {
            Py_XSETREF(tracer->first_step_code, Py_NewRef(code));
            tracer->first_step_known = 0;
        }
        tracer->first_step_ticket = tracer->first_step_ticket == INT_MAX ? 1
            : tracer->first_step_ticket + 1;
        self->first_step_ticket = tracer->first_step_ticket;
    }
    return 0;
}

static int
proxy_init(ProxyCore *self, PyObject *args, PyObject *kwargs)
{
    PyObject *coro, *tracer;
    if (!PyArg_ParseTuple(args, "OO!:CoroutineProxyCore", &coro, &LoopTracerCoreType, &tracer)) {
        return -1;
    }
    PyObject *code = PyObject_GetAttr(coro, str_cr_code);
    if (code == NULL) return -1;
    int failed = proxy_fill(self, coro, (LoopTracerCore *)tracer, code);
    Py_DECREF(code);
    return failed;
}

/* The source index of `line` from the {line: source index} table `lines` of the code that
 * `owner` (a frame, or a coroutine) runs, asking the recorder (and remembering its answer)
 * for a line not seen yet. */
static int
line_index(LoopTracerCore *tracer, PyObject *lines, int line, PyObject *owner, int32_t *source)
{
    PyObject *key = PyLong_FromLong(line);
    if (key == NULL) return -1;
    PyObject *known = PyDict_GetItemWithError(lines, key);  /* borrowed */
    if (known != NULL) {
        Py_INCREF(known);
    }
    else if (!PyErr_Occurred()) {
        PyObject *code = PyFrame_Check(owner) ? (PyObject *)PyFrame_GetCode((PyFrameObject *)owner)
            : PyObject_GetAttr(owner, str_cr_code);
        known = code == NULL ? NULL
            : PyObject_CallMethod((PyObject *)tracer->recorder, "source_of", "Oi", code, line);
        Py_XDECREF(code);
        if (known != NULL && PyDict_SetItem(lines, key, known) < 0) Py_CLEAR(known);
    }
    Py_DECREF(key);
    if (known == NULL) return -1;
    int failed = as_int32(known, source);
    Py_DECREF(known);
    return failed ? -1 : 0;
}

/* The source index of the line `frame` is on (line_index) */
static int
line_source(LoopTracerCore *tracer, PyObject *lines, PyFrameObject *frame, int32_t *source)
{
    return line_index(tracer, lines, PyFrame_GetLineNumber(frame), (PyObject *)frame, source);
}

/* The source index of the line the coroutine resumes at (0 when it has no frame). A plain
 * coroutine's is read from its interpreter frame (coroutine_resume_point): reading cr_frame
 * would make a frame object for every task. */
static int
proxy_source(ProxyCore *self, int32_t *source)
{
    int offset, line = 0;
    PyObject *frame = NULL;
    int found = PyCoro_CheckExact(self->coro)
        ? coroutine_resume_point(self->coro, self->last_offset, &offset, &line) : -1;
    if (found == 0) {
        *source = 0;
        return 0;
    }
    if (found < 0) {
        frame = PyObject_GetAttr(self->coro, str_cr_frame);
        if (frame == NULL) return -1;
        if (!PyFrame_Check(frame)) {
            Py_DECREF(frame);
            *source = 0;
            return 0;
        }
        offset = PyFrame_GetLasti((PyFrameObject *)frame);
    }
    /* A task resumes where it last awaited, mostly at the same instruction: the offset
     * saves working out the line from the line table on every step. */
    if (offset == self->last_offset) {
        Py_XDECREF(frame);
        *source = self->last_source;
        return 0;
    }
    if (frame != NULL) line = PyFrame_GetLineNumber((PyFrameObject *)frame);
    int32_t index;
    int failed = line_index(self->tracer, self->lines, line,
                            frame != NULL ? frame : self->coro, &index);
    Py_XDECREF(frame);
    if (failed) return -1;
    if (self->first_step_ticket != 0) {  /* its first step: the code's other proxies start here */
        LoopTracerCore *tracer = self->tracer;
        if (self->first_step_ticket == tracer->first_step_ticket && !tracer->first_step_known) {
            tracer->first_step_offset = offset;
            tracer->first_step_source = index;
            tracer->first_step_known = 1;
        }
        self->first_step_ticket = 0;
    }
    self->last_offset = offset;
    self->last_source = index;
    *source = index;
    return 0;
}

/* The {line: source index} the tracer keeps for `code` (a new reference): known, or made by
 * LoopTracer.lines_of. An exact dict is a program file's; a library file's is LibraryLines. */
static PyObject *
code_lines_of(LoopTracerCore *tracer, PyObject *code)
{
    PyObject *lines = code_lines_known(tracer, code);
    if (lines == NULL && !PyErr_Occurred()) {
        lines = PyObject_CallMethodOneArg((PyObject *)tracer, str_lines_of, code);
    }
    if (lines != NULL && !PyDict_Check(lines)) {
        Py_DECREF(lines);
        PyErr_SetString(PyExc_TypeError, "lines_of() must return a dict");
        return NULL;
    }
    return lines;
}

/* For a task whose own coroutine is library code (aiohttp's RequestHandler): the source
 * index of the line the innermost coroutine of the program's files in its await chain is
 * suspended at (the handler's `await`). Returns 1 with *source set, 0 when no program
 * coroutine is in the chain (the caller takes the task's own line), -1 on error. */
static int
proxy_program_source(ProxyCore *self, int32_t *source)
{
    PyObject *program = NULL, *program_lines = NULL;  /* the innermost program one so far */
    PyObject *current = Py_NewRef(self->coro);
    int failed = 0;
    for (;;) {
        int is_coroutine = PyCoro_CheckExact(current);
        if (!is_coroutine && !PyGen_CheckExact(current)) break;
        if (current != self->coro) {  /* the task's own coroutine is known to be library */
            PyObject *code = PyObject_GetAttr(current, is_coroutine ? str_cr_code : str_gi_code);
            PyObject *lines = code == NULL ? NULL : code_lines_of(self->tracer, code);
            Py_XDECREF(code);
            if (lines == NULL) {
                failed = 1;
                break;
            }
            if (PyDict_CheckExact(lines)) {
                Py_XSETREF(program, Py_NewRef(current));
                Py_XSETREF(program_lines, lines);
            }
            else {
                Py_DECREF(lines);
            }
        }
        PyObject *awaited = PyObject_GetAttr(current, is_coroutine ? str_cr_await
                                                                   : str_gi_yieldfrom);
        if (awaited == NULL) {
            failed = 1;
            break;
        }
        Py_SETREF(current, awaited);
    }
    Py_DECREF(current);
    if (failed || program == NULL) {
        Py_XDECREF(program);
        Py_XDECREF(program_lines);
        return failed ? -1 : 0;
    }
    PyObject *frame = PyObject_GetAttr(program, PyCoro_CheckExact(program) ? str_cr_frame
                                                                           : str_gi_frame);
    Py_DECREF(program);
    int found = 0;
    if (frame != NULL && PyFrame_Check(frame)) {
        found = line_source(self->tracer, program_lines, (PyFrameObject *)frame, source) < 0
                ? -1 : 1;
    }
    else if (frame == NULL) {
        found = -1;
    }
    Py_XDECREF(frame);
    Py_DECREF(program_lines);
    return found;
}

/* asyncio.current_task, looked up at the first eager task */
static PyObject *asyncio_current_task;

/* What an eager task's lane is named by, found in its first step, which runs inside the Task
 * constructor before create_task has returned the task: the name the program gave (kept in
 * the proxy's name until the lane is spawned, None when it gave none), and the task, asyncio's
 * current task while that step runs (NULL when it is not to be found: then "eager" stands in
 * for its name; LoopTracer.spawn_eager's twin). New references. */
static int
proxy_eager_names(ProxyCore *self, PyObject **given, PyObject **found)
{
    *given = self->name != NULL && PyUnicode_CheckExact(self->name)
        && PyUnicode_GET_LENGTH(self->name) > 0 ? self->name : Py_None;
    Py_INCREF(*given);
    *found = NULL;
    if (asyncio_current_task == NULL) {
        PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
        asyncio_current_task = tasks == NULL ? NULL
            : PyObject_GetAttrString(tasks, "current_task");
        Py_XDECREF(tasks);
        if (asyncio_current_task == NULL) goto failed;
    }
    /* an argument array that is not NULL, though empty: current_task's argument parsing
     * takes its fast path only then (PyObject_CallNoArgs passes NULL) */
    PyObject *no_arguments[1] = {NULL};
    PyObject *task = PyObject_Vectorcall(asyncio_current_task, no_arguments, 0, NULL);
    if (task == NULL) {  /* no running loop: a step run by something else than a loop */
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) goto failed;
        PyErr_Clear();
    }
    else if (task != Py_None) {
        PyObject *coro = task_own_coro(task);
        if (coro == NULL) {
            Py_DECREF(task);
            goto failed;
        }
        if (coro == (PyObject *)self) *found = Py_NewRef(task);
        Py_DECREF(coro);
    }
    Py_XDECREF(task);
    return 0;
failed:
    Py_CLEAR(*given);
    return -1;
}

/* RUNNING on the proxy's lane at its resume line; the lane becomes the recorder's current. */
static int
proxy_step_started(ProxyCore *self, RecorderCore *recorder)
{
    int eager = self->lane < 0;
    if (eager) {  /* an eager task: its first step runs inside create_task */
        PyObject *given, *task;
        if (proxy_eager_names(self, &given, &task) < 0) return -1;
        int done = tracer_spawn_task(self->tracer, self, task != NULL ? task : Py_None, given,
                                     task != NULL ? NULL : str_eager);
        Py_DECREF(given);
        Py_XDECREF(task);
        if (done < 0) return -1;
        if (done == 1) {  /* Python names this one (LoopTracer.spawn_eager) */
            PyObject *lane = PyObject_CallMethodOneArg((PyObject *)self->tracer,
                                                       str_spawn_eager, (PyObject *)self);
            if (lane == NULL) return -1;
            Py_DECREF(lane);  /* spawn_eager stored it in self->lane */
        }
    }
    int32_t source = 0;
    /* a task running library code steps at its program's innermost line; others pay one check */
    int found = PyDict_CheckExact(self->lines) ? 0 : proxy_program_source(self, &source);
    if (found < 0 || (found == 0 && proxy_source(self, &source) < 0)) return -1;
    /* an eager task runs as it is made: at its SPAWN's instant */
    if ((eager ? recorder_append_same_instant : recorder_append)(
            recorder, self->lane, CODE_RUNNING, NO_LANE, 0, source) < 0) {
        return -1;
    }
    recorder->current = self->lane;
    return 0;
}

/* What the step's outcome says: READY for a bare yield, else the tracer judges the wait. */
static int
proxy_step_yielded(ProxyCore *self, RecorderCore *recorder, int lane, int outer,
                   PyObject *result)
{
    recorder->current = outer;
    if (result == Py_None) {
        return recorder_append(recorder, lane, CODE_READY, lane, self->tracer->ready_self, 0);
    }
    int fast = proxy_fast_wait(self, recorder, lane, result);
    if (fast != 0) return fast < 0 ? -1 : 0;
    PyObject *lane_object = PyLong_FromLong(lane);
    if (lane_object == NULL) return -1;
    PyObject *done = PyObject_CallMethodObjArgs((PyObject *)self->tracer, str_step_waits,
                                                (PyObject *)self, lane_object, result, NULL);
    Py_DECREF(lane_object);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

static PySendResult
proxy_am_send(ProxyCore *self, PyObject *arg, PyObject **presult)
{
    LoopTracerCore *tracer = self->tracer;
    if (tracer == NULL || self->coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "coroutine proxy not initialised");
        *presult = NULL;
        return PYGEN_ERROR;
    }
    if (tracer->detached) return PyIter_Send(self->coro, arg, presult);
    RecorderCore *recorder = tracer->recorder;
    Py_INCREF(recorder);
    int outer = recorder->current;
    if (proxy_step_started(self, recorder) < 0 && tracer_failed(self->tracer) < 0) {
        Py_DECREF(recorder);
        *presult = NULL;
        return PYGEN_ERROR;
    }
    int lane = self->lane;
    PySendResult status = PyIter_Send(self->coro, arg, presult);
    if (tracer->detached) {
        Py_DECREF(recorder);
        return status;
    }
    if (status == PYGEN_NEXT) {
        if (proxy_step_yielded(self, recorder, lane, outer, *presult) < 0
            && tracer_failed(self->tracer) < 0) {
            Py_CLEAR(*presult);
            status = PYGEN_ERROR;
        }
    }
    else if (status == PYGEN_RETURN && *presult == Py_None && tracer->end_none != 0) {
        /* the usual end, a coroutine that returned None: LoopTracer.step_returned in C */
        recorder->current = outer;
        if (recorder_append(recorder, lane, CODE_END, NO_LANE, tracer->end_none, 0) < 0
            && tracer_failed(self->tracer) < 0) {
            Py_CLEAR(*presult);
            status = PYGEN_ERROR;
        }
    }
    else if (status == PYGEN_RETURN) {
        PyObject *outer_object = PyLong_FromLong(outer);
        PyObject *done = outer_object == NULL ? NULL : PyObject_CallMethodObjArgs(
            (PyObject *)tracer, str_step_returned, (PyObject *)self, outer_object, *presult,
            NULL);
        Py_XDECREF(outer_object);
        if (done == NULL) {  /* step_returned guards itself: only a stop gets here */
            Py_CLEAR(*presult);
            status = PYGEN_ERROR;
        }
        Py_XDECREF(done);
    }
    else {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
        PyObject *outer_object = PyLong_FromLong(outer);
        PyObject *done = outer_object == NULL ? NULL : PyObject_CallMethodObjArgs(
            (PyObject *)tracer, str_step_ended, (PyObject *)self, outer_object,
            value ? value : Py_None, NULL);
        Py_XDECREF(outer_object);
        if (done == NULL) {  /* a stop raised while recording the end wins */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
        else {
            Py_DECREF(done);
            PyErr_Restore(type, value, traceback);
        }
    }
    Py_DECREF(recorder);
    return status;
}

static PyObject *
proxy_send(ProxyCore *self, PyObject *value)
{
    PyObject *result;
    PySendResult status = proxy_am_send(self, value, &result);
    if (status == PYGEN_NEXT) return result;
    if (status == PYGEN_RETURN) {
        if (result == Py_None) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        else {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(result);
    }
    return NULL;
}

static PyMethodDef proxy_methods[] = {
    {"send", (PyCFunction)proxy_send, METH_O, "One step of the wrapped coroutine, recorded."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef proxy_members[] = {
    {"_coro", T_OBJECT, offsetof(ProxyCore, coro), READONLY, NULL},
    {"_tracer", T_OBJECT, offsetof(ProxyCore, tracer), READONLY, NULL},
    {"_lines", T_OBJECT, offsetof(ProxyCore, lines), READONLY, NULL},
    {"_name", T_OBJECT, offsetof(ProxyCore, name), 0, NULL},
    {"_lane", T_INT, offsetof(ProxyCore, lane), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

GC_FROM_MEMBERS_FREED_BY(proxy, proxy_members, own_object_dealloc)

static PyAsyncMethods proxy_as_async = {
    .am_send = (sendfunc)proxy_am_send,
};

PyTypeObject ProxyCoreType = {
    GC_TYPE("CoroutineProxyCore", ProxyCore, proxy, Py_TPFLAGS_BASETYPE,
            "A traced task's coroutine: send() records the step around the wrapped one."),
    .tp_new = own_object_new,
    .tp_init = (initproc)proxy_init,
    .tp_methods = proxy_methods,
    .tp_as_async = &proxy_as_async,
};

/* -- LoopHooksCore ----------------------------------------------------------------------- */

/* The base of the traced asyncio loop (tracer.models._asyncio_loop.TracingEventLoop):
 * create_task and call_soon, which every task and every step go through, without a Python
 * frame of their own. PureLoopHooks there is their twin. What they fall back to and build
 * (BaseEventLoop's methods, the Task and Handle classes, the proxy type) is set once by
 * configure_loop_hooks when that module is imported.
 *
 * It has no fields of its own: the loop's tracer is its `_tracer` attribute, as in the twin.
 * A field would make the loop's objects larger than a plain object, and 3.13 keeps the
 * attributes of only those in their inline values; without them the interpreter cannot
 * specialise an attribute read on the loop (`self._closed`, `self._task_factory`,
 * `loop.create_task`), and asyncio's own Python code reads the loop's attributes a few times
 * for every task. */
typedef struct {
    PyObject_HEAD
} LoopHooksCore;

static PyObject *str_tracer_attribute;  /* "_tracer" */

static PyObject *hooks_base_create_task, *hooks_base_call_soon, *hooks_task_type,
    *hooks_handle_type, *hooks_proxy_type, *hooks_cleanup_codes, *hooks_naming_callers,
    *hooks_loop_kwnames;
static int hooks_named_afterwards;
/* the ids in hooks_cleanup_codes (asyncio.run's clean-ups: a few code objects that live as
 * long as asyncio), compared with a task's code without an int and a set lookup a task */
#define CLEANUP_CODES_HELD 8
static void *hooks_cleanup_ids[CLEANUP_CODES_HELD];
static Py_ssize_t hooks_cleanup_count = -1;  /* -1: more than held, the set is asked */
static PyObject *str_name, *str_context, *str_task_factory, *str_debug, *str_closed,
    *str_ready, *str_append, *str_loop;

/* configure_loop_hooks(base_create_task, base_call_soon, task_type, handle_type, proxy_type,
 * cleanup_codes, naming_callers, named_afterwards) */
PyObject *
configure_loop_hooks(PyObject *module, PyObject *args)
{
    PyObject *given[7];
    int named_afterwards;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!p:configure_loop_hooks", &given[0], &given[1],
                          &given[2], &given[3], &given[4], &PyFrozenSet_Type, &given[5],
                          &PyTuple_Type, &given[6], &named_afterwards)) {
        return NULL;
    }
    static const InternedName names[] = {
        {&str_name, "name"}, {&str_context, "context"}, {&str_task_factory, "_task_factory"},
        {&str_debug, "_debug"}, {&str_closed, "_closed"}, {&str_ready, "_ready"},
        {&str_append, "append"}, {&str_loop, "loop"}, {&str_tracer_attribute, "_tracer"},
        {NULL, NULL},
    };
    if (intern_names(names) < 0 || intern_own_names() < 0) return NULL;
    PyObject *loop_kwnames = PyTuple_Pack(1, str_loop);
    if (loop_kwnames == NULL) return NULL;
    PyObject **slots[] = {&hooks_base_create_task, &hooks_base_call_soon, &hooks_task_type,
                          &hooks_handle_type, &hooks_proxy_type, &hooks_cleanup_codes,
                          &hooks_naming_callers};
    /* The proxy type is a Python subclass of CoroutineProxyCore, and a subclass does not
     * inherit the am_send slot: without it the Task's PyIter_Send calls the send() method by
     * name for every step, and makes a StopIteration for every task that ends. */
    PyTypeObject *proxy_type = (PyTypeObject *)given[4];
    if (PyType_Check(given[4]) && PyType_IsSubtype(proxy_type, &ProxyCoreType)
        && (proxy_type->tp_flags & Py_TPFLAGS_HEAPTYPE) && proxy_type->tp_as_async != NULL
        && proxy_type->tp_as_async->am_send == NULL) {
        proxy_type->tp_as_async->am_send = (sendfunc)proxy_am_send;
        PyType_Modified(proxy_type);
    }
    PyObject *ids = PyObject_GetIter(given[5]);
    if (ids == NULL) {
        Py_DECREF(loop_kwnames);
        return NULL;
    }
    hooks_cleanup_count = 0;
    PyObject *id;
    while ((id = PyIter_Next(ids)) != NULL) {
        void *address = PyLong_Check(id) ? PyLong_AsVoidPtr(id) : NULL;
        Py_DECREF(id);
        if (address == NULL || hooks_cleanup_count == CLEANUP_CODES_HELD) {
            hooks_cleanup_count = -1;  /* the set is asked instead */
            break;
        }
        hooks_cleanup_ids[hooks_cleanup_count++] = address;
    }
    Py_DECREF(ids);
    PyErr_Clear();  /* none is raised by a frozenset's iterator; a bad id's is not ours */
    for (int i = 0; i < 7; i++) Py_XSETREF(*slots[i], Py_NewRef(given[i]));
    Py_XSETREF(hooks_loop_kwnames, loop_kwnames);
    hooks_named_afterwards = named_afterwards;
    Py_RETURN_NONE;
}

/* What BaseEventLoop's `method` does with these arguments: self prepended to `args`. */
static PyObject *
hooks_call_base(PyObject *method, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *small[8];
    PyObject **all = total + 1 <= 8 ? small : PyMem_Malloc((total + 1) * sizeof(PyObject *));
    if (all == NULL) return PyErr_NoMemory();
    all[0] = self;
    memcpy(all + 1, args, total * sizeof(PyObject *));
    PyObject *result = PyObject_Vectorcall(method, all, nargs + 1, kwnames);
    if (all != small) PyMem_Free(all);
    return result;
}

/* The truth of getattr(self, name) */
static int
attribute_true(PyObject *self, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(self, name);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* The keyword argument `name` of a vectorcall, borrowed, or NULL */
static PyObject *
keyword_argument(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject *name)
{
    Py_ssize_t count = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (key == name || PyUnicode_Compare(key, name) == 0) return args[nargs + i];
    }
    return NULL;
}

/* Before 3.13 asyncio.create_task and TaskGroup.create_task name the task after making it:
 * the name the program chose is their `name` argument (None when there is none). */
static PyObject *
name_from_caller(void)
{
    PyFrameObject *frame = PyEval_GetFrame();  /* borrowed: the caller of create_task */
    if (frame == NULL) Py_RETURN_NONE;
    PyCodeObject *code = PyFrame_GetCode(frame);
    int naming = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hooks_naming_callers); i++) {
        naming |= PyTuple_GET_ITEM(hooks_naming_callers, i) == (PyObject *)code;
    }
    Py_DECREF(code);
    if (!naming) Py_RETURN_NONE;
    PyObject *locals = PyFrame_GetLocals(frame);
    if (locals == NULL) return NULL;
    PyObject *name = PyMapping_Check(locals) ? PyObject_GetItem(locals, str_name) : NULL;
    Py_DECREF(locals);
    if (name == NULL) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_KeyError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return name;
}

/* Task(proxy, loop=self, **options): what BaseEventLoop.create_task builds */
static PyObject *
hooks_new_task(PyObject *self, PyObject *proxy, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    Py_ssize_t options = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (options == 0) {
        PyObject *call[2] = {proxy, self};
        return PyObject_Vectorcall(hooks_task_type, call, 1, hooks_loop_kwnames);
    }
    PyObject *names = PyTuple_New(options + 1);
    if (names == NULL) return NULL;
    PyTuple_SET_ITEM(names, 0, Py_NewRef(str_loop));
    for (Py_ssize_t i = 0; i < options; i++) {
        PyTuple_SET_ITEM(names, i + 1, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
    }
    PyObject **call = PyMem_Malloc((options + 2) * sizeof(PyObject *));
    if (call == NULL) {
        Py_DECREF(names);
        return PyErr_NoMemory();
    }
    call[0] = proxy;
    call[1] = self;
    memcpy(call + 2, args + nargs, options * sizeof(PyObject *));
    PyObject *task = PyObject_Vectorcall(hooks_task_type, call, 1, names);
    PyMem_Free(call);
    Py_DECREF(names);
    return task;
}

/* The loop's tracer (a new reference), or NULL while it has none (a loop being made, or not
 * ours); NULL with an error set when reading it failed otherwise. */
static LoopTracerCore *
hooks_tracer(LoopHooksCore *self)
{
    PyObject *tracer = PyObject_GetAttr((PyObject *)self, str_tracer_attribute);
    if (tracer == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
    }
    if (tracer != NULL && !PyObject_TypeCheck(tracer, &LoopTracerCoreType)) Py_CLEAR(tracer);
    return (LoopTracerCore *)tracer;
}

/* Whether create_task traces this coroutine: the tracer is on and it is a plain coroutine
 * that is not one of asyncio.run's own clean-ups. When it does, *code is the coroutine's code
 * object (a new reference), which its proxy is made with. */
static int
hooks_traces(LoopTracerCore *tracer, PyObject *coro, PyObject **code)
{
    *code = NULL;
    if (tracer == NULL || tracer->detached || !PyCoro_CheckExact(coro)) return 0;
    PyObject *found = coroutine_code(coro);
    found = found != NULL ? Py_NewRef(found) : PyObject_GetAttr(coro, str_cr_code);
    if (found == NULL) return -1;
    int cleanup = 0;
    if (hooks_cleanup_count >= 0) {
        for (Py_ssize_t i = 0; i < hooks_cleanup_count && !cleanup; i++) {
            cleanup = hooks_cleanup_ids[i] == (void *)found;
        }
    }
    else {
        PyObject *key = PyLong_FromVoidPtr(found);
        cleanup = key == NULL ? -1 : PySet_Contains(hooks_cleanup_codes, key);
        Py_XDECREF(key);
    }
    if (cleanup != 0) {
        Py_DECREF(found);
        return cleanup < 0 ? -1 : 0;
    }
    *code = found;
    return 1;
}

/* The proxy of `coro` (code object `code`): hooks_proxy_type(coro, tracer). When that type
 * makes its objects as CoroutineProxyCore does (our new and init: a subclass that
 * defines neither), they are made here without the call, its argument tuple and its parse. */
static PyObject *
hooks_new_proxy(LoopTracerCore *tracer, PyObject *coro, PyObject *code)
{
    PyTypeObject *type = (PyTypeObject *)hooks_proxy_type;
    if (!PyType_Check(hooks_proxy_type) || !PyType_IsSubtype(type, &ProxyCoreType)
        || type->tp_new != own_object_new || type->tp_init != (initproc)proxy_init) {
        PyObject *call[2] = {coro, (PyObject *)tracer};
        return PyObject_Vectorcall(hooks_proxy_type, call, 2, NULL);
    }
    PyObject *proxy = own_object_alloc(type);
    if (proxy == NULL) return NULL;
    if (proxy_fill((ProxyCore *)proxy, coro, tracer, code) < 0) {
        Py_DECREF(proxy);
        return NULL;
    }
    return proxy;
}

/* create_task(coro, **options) with the loop's tracer (NULL: none) */
static PyObject *
hooks_create_task_traced(LoopHooksCore *self, LoopTracerCore *tracer, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *code = NULL;
    int traces = nargs == 1 ? hooks_traces(tracer, args[0], &code) : 0;
    if (traces < 0) return NULL;
    if (!traces) {
        return hooks_call_base(hooks_base_create_task, (PyObject *)self, args, nargs, kwnames);
    }
    PyObject *proxy = hooks_new_proxy(tracer, args[0], code);
    Py_DECREF(code);
    if (proxy == NULL) {  /* ours, not the program's: the task runs untraced */
        if (tracer_failed(tracer) < 0) return NULL;
        return hooks_call_base(hooks_base_create_task, (PyObject *)self, args, nargs, kwnames);
    }
    /* the name the program gave, found before the task is made: an eager task's lane is
     * spawned by its first step, which runs inside the Task constructor, and takes it from
     * the proxy's name (proxy_eager_names) */
    PyObject *given = keyword_argument(args, nargs, kwnames, str_name);
    PyObject *name = given != NULL && given != Py_None ? Py_NewRef(given)
        : hooks_named_afterwards ? name_from_caller() : Py_NewRef(Py_None);
    if (name != NULL && name != Py_None) Py_SETREF(name, PyObject_Str(name));
    if (name == NULL) goto failed;
    if (name != Py_None) Py_XSETREF(((ProxyCore *)proxy)->name, Py_NewRef(name));
    int factory = 0, plain = 1;
    PyObject *task_factory = PyObject_GetAttr((PyObject *)self, str_task_factory);
    if (task_factory == NULL) goto failed_named;
    factory = task_factory != Py_None;
    Py_DECREF(task_factory);
    /* what BaseEventLoop.create_task does with no factory, not in debug mode and open */
    for (int i = 0; i < 2 && plain && !factory; i++) {
        int truth = attribute_true((PyObject *)self, i == 0 ? str_debug : str_closed);
        if (truth < 0) goto failed_named;
        plain = !truth;
    }
    PyObject *task;
    if (plain && !factory) {
        task = hooks_new_task((PyObject *)self, proxy, args, nargs, kwnames);
    }
    else {  /* BaseEventLoop.create_task(self, proxy, **options) */
        Py_ssize_t options = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        PyObject *small[8];
        PyObject **all = options + 1 <= 8 ? small
            : PyMem_Malloc((options + 1) * sizeof(PyObject *));
        if (all == NULL) {
            PyErr_NoMemory();
            goto failed_named;
        }
        all[0] = proxy;
        memcpy(all + 1, args + 1, options * sizeof(PyObject *));
        task = hooks_call_base(hooks_base_create_task, (PyObject *)self, all, 1, kwnames);
        if (all != small) PyMem_Free(all);
    }
    if (task == NULL) goto failed_named;
    PyObject *created[3] = {proxy, task, name};
    PyObject *done = tracer_task_created(tracer, created, 3);
    Py_DECREF(name);
    Py_DECREF(proxy);
    if (done == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(done);
    return task;
failed_named:
    Py_DECREF(name);
failed:
    Py_DECREF(proxy);
    return NULL;
}

/* create_task(coro, **options): PureLoopHooks.create_task's twin */
static PyObject *
hooks_create_task(LoopHooksCore *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (hooks_task_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_loop_hooks() was not called");
        return NULL;
    }
    LoopTracerCore *tracer = hooks_tracer(self);
    if (tracer == NULL && PyErr_Occurred()) return NULL;
    PyObject *task = hooks_create_task_traced(self, tracer, args, PyVectorcall_NARGS(nargsf),
                                              kwnames);
    Py_XDECREF(tracer);
    return task;
}

static PyObject *hooks_call_soon_traced(LoopHooksCore *self, LoopTracerCore *tracer,
                                        PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames);

/* call_soon(callback, *args, context=None): PureLoopHooks.call_soon's twin */
static PyObject *
hooks_call_soon(LoopHooksCore *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LoopTracerCore *tracer = hooks_tracer(self);
    if (tracer == NULL && PyErr_Occurred()) return NULL;
    PyObject *handle = hooks_call_soon_traced(self, tracer, args, PyVectorcall_NARGS(nargsf),
                                              kwnames);
    Py_XDECREF(tracer);
    return handle;
}

/* call_soon with the loop's tracer (NULL: none) */
static PyObject *
hooks_call_soon_traced(LoopHooksCore *self, LoopTracerCore *tracer, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *context = keyword_argument(args, nargs, kwnames, str_context);
    if (hooks_handle_type == NULL || nargs < 1 || keywords > (context != NULL)) {
        /* let the base method say what is wrong with the call */
        return hooks_call_base(hooks_base_call_soon, (PyObject *)self, args, nargs, kwnames);
    }
    PyObject *callback;
    int32_t done_lane = NO_LANE;
    if (nargs > 1 && tracer != NULL && !tracer->detached) {
        /* a future that completes schedules its callbacks here with itself as the argument */
        int judged = tracer_judge_scheduled(tracer, args[1], &done_lane);
        if (judged == 1) {
            callback = PyObject_CallMethodObjArgs((PyObject *)tracer,
                                                  str_pure_callback_scheduled, args[0],
                                                  args[1], NULL);
            if (callback == NULL) return NULL;
        }
        else if (judged < 0) {
            done_lane = NO_LANE;
            if (tracer_failed(tracer) < 0) return NULL;
            callback = Py_NewRef(args[0]);
        }
        else {
            callback = Py_NewRef(args[0]);
        }
    }
    else {
        callback = Py_NewRef(args[0]);
    }
    int closed = attribute_true((PyObject *)self, str_closed);
    int debug = closed == 0 ? attribute_true((PyObject *)self, str_debug) : 0;
    PyObject *handle = NULL;
    if (closed < 0 || debug < 0) goto done;
    /* callback(task) for a finished task: DoneCallbacks runs it on the task's behalf */
    PyObject *done_callbacks = done_lane != NO_LANE && nargs == 2 && !closed && !debug
        ? tracer_done_callbacks(tracer) : NULL;
    if (done_lane != NO_LANE && done_callbacks == NULL) {
        if (PyErr_Occurred() && tracer_failed(tracer) < 0) goto done;
        Py_SETREF(callback, caused_by_task(tracer, callback, done_lane));
        if (callback == NULL) return NULL;
    }
    if (closed || debug) {  /* the base's checks */
        PyObject *small[8];
        Py_ssize_t total = nargs + keywords;
        PyObject **all = total <= 8 ? small : PyMem_Malloc(total * sizeof(PyObject *));
        if (all == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(all, args, total * sizeof(PyObject *));
        all[0] = callback;
        handle = hooks_call_base(hooks_base_call_soon, (PyObject *)self, all, nargs, kwnames);
        if (all != small) PyMem_Free(all);
        goto done;
    }
    /* what BaseEventLoop.call_soon does when not in debug mode, without its two frames */
    PyObject *callback_args = done_callbacks != NULL
        ? Py_BuildValue("(OOi)", callback, args[1], done_lane) : PyTuple_New(nargs - 1);
    if (callback_args == NULL) goto done;
    for (Py_ssize_t i = 1; done_callbacks == NULL && i < nargs; i++) {
        PyTuple_SET_ITEM(callback_args, i - 1, Py_NewRef(args[i]));
    }
    PyObject *made[4] = {done_callbacks != NULL ? done_callbacks : callback, callback_args,
                         (PyObject *)self, context != NULL ? context : Py_None};
    handle = PyObject_Vectorcall(hooks_handle_type, made, 4, NULL);
    Py_DECREF(callback_args);
    if (handle == NULL) goto done;
    PyObject *ready = PyObject_GetAttr((PyObject *)self, str_ready);
    PyObject *appended = ready == NULL ? NULL
        : PyObject_CallMethodOneArg(ready, str_append, handle);
    Py_XDECREF(ready);
    if (appended == NULL) Py_CLEAR(handle);
    Py_XDECREF(appended);
done:
    Py_DECREF(callback);
    return handle;
}

static PyMethodDef hooks_methods[] = {
    {"create_task", (PyCFunction)(void (*)(void))hooks_create_task,
     METH_FASTCALL | METH_KEYWORDS, "A Task around a traced coroutine, its lane spawned."},
    {"call_soon", (PyCFunction)(void (*)(void))hooks_call_soon, METH_FASTCALL | METH_KEYWORDS,
     "Schedule a callback; a future it completes wakes the lanes waiting on it."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject LoopHooksCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._speedups.LoopHooksCore",
    .tp_basicsize = sizeof(LoopHooksCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The traced asyncio loop's create_task and call_soon.",
    .tp_methods = hooks_methods,
    .tp_new = PyType_GenericNew,
};


/* -- await chains ------------------------------------------------------------------------ */


/* Walks coro's await chain down to its innermost coroutine or generator, left in *innermost
 * (a new reference). Given `calls` (a LoopTracer's _wait_calls, a dict), it also finds the
 * program's entry into the library, as tracer.models._asyncio_waits.walk_await_chain does:
 * the side of the first function below the program's innermost coroutine that is not passed
 * over, in *entry, else NO_LIBRARY_CALL. Returns 1 when walked; 0 when a function on the way
 * has no row in `calls` yet (Python makes it), *innermost left unset; -1 on an error. */
static int
walk_await_chain(PyObject *coro, PyObject *calls, PyObject **innermost, long *entry)
{
    int after_program = 0;
    if (calls != NULL) *entry = NO_LIBRARY_CALL;
    PyObject *current = Py_NewRef(coro);
    for (;;) {
        int is_coroutine = PyCoro_CheckExact(current);
        if (calls != NULL) {
            PyObject *code = PyObject_GetAttr(current, is_coroutine ? str_cr_code : str_gi_code);
            if (code == NULL) goto error;
            Py_DECREF(code);  /* the coroutine keeps it alive */
            PyObject *row = known_code_row(calls, code, VERDICT_FIELDS, "asyncio wait calls");
            if (row == NULL) {
                Py_DECREF(current);
                return PyErr_Occurred() ? -1 : 0;
            }
            long side = PyLong_AsLong(PyTuple_GET_ITEM(row, VERDICT_VERDICT));
            if (side == -1 && PyErr_Occurred()) goto error;
            if (side == PROGRAM_SIDE) {
                after_program = 1;
                *entry = NO_LIBRARY_CALL;
            }
            else if (after_program && side != PASSED_OVER) {
                after_program = 0;
                *entry = side;
            }
        }
        PyObject *awaited = PyObject_GetAttr(current,
                                             is_coroutine ? str_cr_await : str_gi_yieldfrom);
        if (awaited == NULL) goto error;
        if (!PyCoro_CheckExact(awaited) && !PyGen_CheckExact(awaited)) {
            Py_DECREF(awaited);
            *innermost = current;
            return 1;
        }
        Py_SETREF(current, awaited);
    }
error:
    Py_DECREF(current);
    return -1;
}

/* innermost_awaiter(coro) -> (code, frame, is_top), as tracer.models._asyncio_waits has it */
PyObject *
innermost_awaiter(PyObject *module, PyObject *coro)
{
    PyObject *current;
    if (walk_await_chain(coro, NULL, &current, NULL) < 0) return NULL;
    int is_coroutine = PyCoro_CheckExact(current);
    PyObject *code = PyObject_GetAttr(current, is_coroutine ? str_cr_code : str_gi_code);
    PyObject *frame = code == NULL ? NULL
        : PyObject_GetAttr(current, is_coroutine ? str_cr_frame : str_gi_frame);
    PyObject *result = frame == NULL ? NULL
        : PyTuple_Pack(3, code, frame, current == coro ? Py_True : Py_False);
    Py_XDECREF(code);
    Py_XDECREF(frame);
    Py_DECREF(current);
    return result;
}

/* local_self(frame) -> the frame's `self` local, or None */
PyObject *
local_self(PyObject *module, PyObject *frame)
{
    if (!PyFrame_Check(frame)) Py_RETURN_NONE;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *value = PyFrame_GetVarString((PyFrameObject *)frame, "self");
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_NameError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return value;
#else
    PyObject *locals = PyFrame_GetLocals((PyFrameObject *)frame);
    if (locals == NULL) return NULL;
    /* an interned key: PyDict_GetItemString would build and hash a new str every time */
    PyObject *value = PyDict_Check(locals) ? PyDict_GetItemWithError(locals, str_self) : NULL;
    if (value == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(locals);
            return NULL;
        }
        value = Py_None;
    }
    Py_INCREF(value);
    Py_DECREF(locals);
    return value;
#endif
}

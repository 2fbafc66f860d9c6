/* The fast paths of a lock the traced program made (tracer.thread_waits): `with lock:`,
   `acquire` and `release` take and give back the real lock from C, so a lock nobody waits for
   costs about what the real one does. Only when a take fails does it call back into Python
   (`self._wait(timeout, frame)`, which records the wait and blocks), and only while a thread
   waits does a release (`self._letting_go()`) say who let it go.
   The pure-Python twin is tracer.thread_waits.PureLockBase. */

#define PY_SSIZE_T_CLEAN
#include "loopscope.h" /* the contract every extension of tracer/ takes; it brings Python.h */
#include <stddef.h>

typedef struct {
    PyObject_HEAD
    PyObject *lock;    /* the _thread lock (or RLock) it stands for */
    PyObject *waiting; /* the ids of the threads waiting for it: a set */
    PyObject *take;    /* lock.acquire and lock.release, bound once */
    PyObject *give;
    PyObject *weakreflist;
} LockBase;

static PyObject *str_acquire, *str_release, *str_wait, *str_letting_go, *minus_one;

static int
lockbase_init(LockBase *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"lock", NULL};
    PyObject *lock;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", keywords, &lock))
        return -1;
    PyObject *waiting = PySet_New(NULL);
    if (waiting == NULL)
        return -1;
    PyObject *take = PyObject_GetAttr(lock, str_acquire);
    PyObject *give = take ? PyObject_GetAttr(lock, str_release) : NULL;
    if (give == NULL) {
        Py_DECREF(waiting);
        Py_XDECREF(take);
        return -1;
    }
    Py_INCREF(lock);
    Py_XSETREF(self->lock, lock);
    Py_XSETREF(self->waiting, waiting);
    Py_XSETREF(self->take, take);
    Py_XSETREF(self->give, give);
    return 0;
}

static void
lockbase_dealloc(LockBase *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->waiting);
    Py_CLEAR(self->take);
    Py_CLEAR(self->give);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
ready(LockBase *self)
{
    if (self->lock == NULL || self->waiting == NULL || self->take == NULL
        || self->give == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the lock was not initialised");
        return 0;
    }
    return 1;
}

/* lock.acquire(False): a new reference to True or False, or NULL */
static PyObject *
try_take(LockBase *self)
{
    PyObject *args[1] = {Py_False};
    return PyObject_Vectorcall(self->take, args, 1, NULL);
}

/* self._wait(timeout, the caller's frame): the slow path, in Python */
static PyObject *
wait_for(LockBase *self, PyObject *timeout)
{
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the caller's (C adds none) */
    PyObject *args[3] = {(PyObject *)self, timeout, frame ? (PyObject *)frame : Py_None};
    return PyObject_VectorcallMethod(str_wait, args, 3, NULL);
}

/* The real lock taken without blocking if it is free (True), else the watched wait for it. */
static PyObject *
take_or_wait(LockBase *self, PyObject *timeout)
{
    PyObject *taken = try_take(self);
    if (taken == NULL || taken == Py_True)
        return taken;
    Py_DECREF(taken);
    return wait_for(self, timeout);
}

static PyObject *
lockbase_enter(LockBase *self, PyObject *Py_UNUSED(ignored))
{
    if (!ready(self))
        return NULL;
    return take_or_wait(self, minus_one);
}

static PyObject *
lockbase_acquire(LockBase *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"blocking", "timeout", NULL};
    int blocking = 1;
    PyObject *timeout = minus_one;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pO:acquire", keywords, &blocking, &timeout))
        return NULL;
    if (!ready(self))
        return NULL;
    if (!blocking) /* the real lock says what a non-blocking take with a timeout means */
        return PyObject_CallMethodObjArgs(self->lock, str_acquire, Py_False, timeout, NULL);
    return take_or_wait(self, timeout);
}

static PyObject *
lockbase_release(LockBase *self, PyObject *Py_UNUSED(ignored))
{
    if (!ready(self))
        return NULL;
    if (PySet_GET_SIZE(self->waiting) > 0) {
        PyObject *noted = PyObject_CallMethodNoArgs((PyObject *)self, str_letting_go);
        if (noted == NULL)
            return NULL;
        Py_DECREF(noted);
    }
    return PyObject_CallNoArgs(self->give);
}

static PyObject *
lockbase_exit(LockBase *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    PyObject *released = lockbase_release(self, NULL);
    if (released == NULL)
        return NULL;
    Py_DECREF(released);
    Py_RETURN_NONE;
}

static PyObject *
lockbase_get_lock(LockBase *self, void *Py_UNUSED(closure))
{
    if (!ready(self))
        return NULL;
    return Py_NewRef(self->lock);
}

static PyObject *
lockbase_get_waiting(LockBase *self, void *Py_UNUSED(closure))
{
    if (!ready(self))
        return NULL;
    return Py_NewRef(self->waiting);
}

static PyMethodDef lockbase_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lockbase_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1): take the lock; wait (recorded) only if taken"},
    {"release", (PyCFunction)lockbase_release, METH_NOARGS, "release(): give the lock back"},
    {"__enter__", (PyCFunction)lockbase_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)(void (*)(void))lockbase_exit, METH_FASTCALL, "release()"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef lockbase_getset[] = {
    {"_lock", (getter)lockbase_get_lock, NULL, "the real lock", NULL},
    {"_waiting", (getter)lockbase_get_waiting, NULL, "ids of the threads waiting", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LockBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._thread_locks.LockBase",
    .tp_basicsize = sizeof(LockBase),
    .tp_dealloc = (destructor)lockbase_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The fast paths of a lock the traced program made (see tracer.thread_waits).",
    .tp_weaklistoffset = offsetof(LockBase, weakreflist),
    .tp_methods = lockbase_methods,
    .tp_getset = lockbase_getset,
    .tp_init = (initproc)lockbase_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef thread_locks_module = EXTENSION_MODULE(
    "loopscope.tracer._thread_locks",
    "The fast paths of the program's locks while traced (tracer.thread_waits).", NULL);

PyMODINIT_FUNC
PyInit__thread_locks(void)
{
    static const InternedName names[] = {
        {&str_acquire, "acquire"}, {&str_release, "release"}, {&str_wait, "_wait"},
        {&str_letting_go, "_letting_go"}, {NULL, NULL},
    };
    if (intern_names(names) < 0) return NULL;
    minus_one = PyLong_FromLong(-1);
    if (minus_one == NULL) return NULL;
    static const ExportedType types[] = {{"LockBase", &LockBaseType}, {NULL, NULL}};
    static const ExportedInt constants[] = {{NULL, 0}};
    return create_module(&thread_locks_module, types, constants);
}

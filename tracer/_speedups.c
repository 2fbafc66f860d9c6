/* tracer._speedups: the hot paths of the recorder and of the asyncio task proxy, in C.
 *
 * RecorderCore is the base of tracer.recorder.Recorder: record() and handoff() append to
 * growable C columns (the wire's own types) and read the clock in C, so an event costs no
 * Python-level work; _take() hands a batch back as array.array columns. The Python subclass
 * keeps everything else (interning, flushing, the gate, the flush timer).
 *
 * LoopTracerCore is the base of the asyncio LoopTracer: the three fields the proxy reads on
 * every step. CoroutineProxyCore is the base of the asyncio TracedCoroutine: am_send (which
 * the C Task calls through PyIter_Send) and send() record the step's RUNNING and, for a bare
 * yield, its READY without entering Python; everything else goes to the Python tracer.
 *
 * The pure-Python twins of these classes live beside their subclasses and must produce the
 * same events; tests/tracer/test_speedups.py compares the two.
 */


#include "_speedups.h"

#ifdef __linux__
#include <sys/prctl.h>
#endif

PyObject *array_type;
PyObject *str_limit_reached;
PyObject *str_cr_frame;
PyObject *str_source_of;
PyObject *str_spawn_eager;
PyObject *str_step_waits;
PyObject *str_step_ended;
PyObject *str_step_returned;
PyObject *str_detach;
PyObject *str_lines_of;
PyObject *str_cr_code;
PyObject *str_cr_await;
PyObject *str_gi_yieldfrom;
PyObject *str_gi_code;
PyObject *str_gi_frame;
PyObject *str_self;
PyObject *str_fd;
PyObject *str_detail;
PyObject *str_poll_timeout_detail;
PyObject *str_done;
PyObject *str_pure_callback_scheduled;
PyObject *str_timer_cause;
PyObject *str_cancelled;
PyObject *str_cancel_cause;

/* -- the module ---------------------------------------------------------------------------- */

static PyObject *
monotonic_ns(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#if HAVE_NATIVE_CLOCK
    struct timespec spec;
    clock_gettime(CLOCK_MONOTONIC, &spec);
    return PyLong_FromLongLong((long long)spec.tv_sec * 1000000000 + spec.tv_nsec);
#else
    PyErr_SetString(PyExc_RuntimeError, "no native clock on this platform");
    return NULL;
#endif
}

/* become_subreaper(): prctl(PR_SET_CHILD_SUBREAPER, 1), whether it took (Linux only): the
 * command line adopts its run's orphans (tracer.descendants), here in C since loading ctypes
 * to make the call cost the command line's start-up 9M instructions. */
static PyObject *
become_subreaper(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#if defined(__linux__) && defined(PR_SET_CHILD_SUBREAPER)
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0) Py_RETURN_TRUE;
#endif
    Py_RETURN_FALSE;
}

/* compile_script(source, filename): the code of a script's bytes, as runpy.run_path compiles
 * it (compile(source, filename, "exec"), no future flags inherited), less the one thing the
 * builtin does first: PyAST_Check(source), which builds the ast module's hundred-odd types the
 * first time any compile() runs in a process (13M instructions on 3.13, a few milliseconds of
 * every traced script's start-up; `python script.py` never builds them). Source holding a NUL
 * byte is refused: the builtin's own error for it differs between versions, so the caller
 * leaves such source to the builtin (tracer.program). */
static PyObject *
compile_script(PyObject *module, PyObject *args)
{
    const char *source;
    Py_ssize_t size;
    PyObject *filename;
    if (!PyArg_ParseTuple(args, "y#U:compile_script", &source, &size, &filename)) return NULL;
    if ((Py_ssize_t)strlen(source) != size) {
        PyErr_SetString(PyExc_ValueError, "source with a NUL byte is compile()'s to refuse");
        return NULL;
    }
    PyCompilerFlags flags = _PyCompilerFlags_INIT;
    flags.cf_flags = PyCF_SOURCE_IS_UTF8;  /* as the builtin sets it */
    return Py_CompileStringObject(source, filename, Py_file_input, &flags, -1);
}

static PyMethodDef module_methods[] = {
    {"innermost_awaiter", innermost_awaiter, METH_O,
     "(code, frame, is_top) of the innermost coroutine or generator in coro's await chain."},
    {"local_self", local_self, METH_O, "The `self` local of a frame, or None."},
    {"configure_loop_hooks", configure_loop_hooks, METH_VARARGS,
     "What LoopHooksCore falls back to and builds (tracer.models._asyncio_loop)."},
    {"column_problem", column_problem, METH_VARARGS,
     "What is wrong with a run of event columns (trace_checks.check_columns), or None."},
    {"code_positions", code_positions, METH_VARARGS,
     "The positions of the events from `start` on with this code, as native int64 bytes."},
    {"value_bases", value_bases, METH_VARARGS,
     "The base detail of the value row of each event at seqs, as native int32 bytes."},
    {"monotonic_ns", monotonic_ns, METH_NOARGS,
     "The clock RecorderCore reads natively (CLOCK_MONOTONIC, as time.perf_counter_ns)."},
    {"become_subreaper", become_subreaper, METH_NOARGS,
     "prctl(PR_SET_CHILD_SUBREAPER, 1) on Linux: whether this process now adopts orphans."},
    {"compile_script", compile_script, METH_VARARGS,
     "compile(source, filename, 'exec') of a script's bytes without building the ast types."},
    {"task_objects_uncounted", task_objects_uncounted, METH_NOARGS,
     "Whether the asyncio proxies are kept off the collector's count on this Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = EXTENSION_MODULE(
    "loopscope.tracer._speedups", "C hot paths of the recorder and the asyncio task proxy.",
    module_methods);

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL) return NULL;
    array_type = PyObject_GetAttrString(array_module, "array");
    Py_DECREF(array_module);
    if (array_type == NULL) return NULL;
    static const InternedName names[] = {
        {&str_limit_reached, "_limit_reached"}, {&str_cr_frame, "cr_frame"},
        {&str_cr_code, "cr_code"}, {&str_source_of, "source_of"},
        {&str_spawn_eager, "spawn_eager"}, {&str_step_waits, "step_waits"},
        {&str_step_ended, "step_ended"}, {&str_step_returned, "step_returned"},
        {&str_detach, "detach"}, {&str_lines_of, "lines_of"}, {&str_cr_await, "cr_await"},
        {&str_gi_yieldfrom, "gi_yieldfrom"}, {&str_gi_code, "gi_code"},
        {&str_gi_frame, "gi_frame"}, {&str_done, "done"},
        {&str_pure_callback_scheduled, "pure_callback_scheduled"},
        {&str_timer_cause, "_timer_cause"}, {&str_cancelled, "cancelled"},
        {&str_cancel_cause, "cancel_cause"}, {&str_self, "self"}, {&str_fd, "fd"},
        {&str_detail, "detail"}, {&str_poll_timeout_detail, "_poll_timeout_detail"},
        {NULL, NULL},
    };
    if (intern_names(names) < 0) return NULL;
    static const ExportedType types[] = {
        {"RecorderCore", &RecorderCoreType}, {"LoopTracerCore", &LoopTracerCoreType},
        {"CoroutineProxyCore", &ProxyCoreType}, {"CausedCallback", &CausedCallbackType},
        {"LoopHooksCore", &LoopHooksCoreType}, {"DoneCallbacks", &DoneCallbacksType},
        {NULL, NULL},
    };
    static const ExportedInt constants[] = {{"HAVE_NATIVE_CLOCK", HAVE_NATIVE_CLOCK}, {NULL, 0}};
    PyObject *module = create_module(&speedups_module, types, constants);
    if (module == NULL) return NULL;
    PyObject *api_capsule = PyCapsule_New(&recorder_api, RECORDER_API_CAPSULE, NULL);
    int added = api_capsule == NULL ? -1
        : PyModule_AddObjectRef(module, "_recorder_api", api_capsule);
    Py_XDECREF(api_capsule);
    if (added < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

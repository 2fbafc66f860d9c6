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

#include "_handoffs.h"

LoopscopeRecorderAPI *recorder_api;

PyObject *str_yield;
PyObject *str_send_opname;
PyObject *str_send;
PyObject *str_next;
PyObject *str_last_caller;
PyObject *str_lane_count;
PyObject *str_switch;
PyObject *str_throw;
PyObject *str_call;
PyObject *str_return;
PyObject *str_exception;
PyObject *str_dead;
PyObject *repr_limit;

/* -- the module ------------------------------------------------------------------------------ */

/* eval_hook_installed(): whether generator_eval evaluates this interpreter's frames */
static PyObject *
eval_hook_installed(PyObject *module, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX < 0x030C0000
    return PyBool_FromLong(generator_eval_installed());
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef module_methods[] = {
    {"eval_hook_installed", eval_hook_installed, METH_NOARGS,
     "Whether the generator hooks evaluate this interpreter's frames (3.11)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef handoffs_module = EXTENSION_MODULE(
    "loopscope.tracer._handoffs", "C hot paths of generator and greenlet hand-off tracing.",
    module_methods);

PyMODINIT_FUNC
PyInit__handoffs(void)
{
    /* PyCapsule_Import only imports the package and then looks attributes up, so the
       extension module must be imported first (a pure-Python run never imports it). */
    PyObject *speedups = PyImport_ImportModule("loopscope.tracer._speedups");
    if (speedups == NULL) return NULL;
    Py_DECREF(speedups);
    recorder_api = PyCapsule_Import(RECORDER_API_CAPSULE, 0);
    if (recorder_api == NULL) return NULL;
    if (recorder_api->version < RECORDER_API_VERSION) {
        PyErr_SetString(PyExc_ImportError, "loopscope.tracer._speedups is too old for tracer._handoffs");
        return NULL;
    }
    static const InternedName names[] = {
        {&str_yield, "yield"}, {&str_send_opname, "SEND"}, {&str_send, "send"},
        {&str_next, "next"}, {&str_last_caller, "_last_caller"},
        {&str_lane_count, "_lane_count"}, {&str_switch, "switch"},
        {&str_throw, "throw"}, {&str_call, "call"}, {&str_return, "return"},
        {&str_exception, "exception"},
        {&str_dead, "dead"}, {NULL, NULL},
    };
    if (intern_names(names) < 0) return NULL;
    repr_limit = PyLong_FromLong(REPR_LIMIT);
    if (repr_limit == NULL) return NULL;
    static const ExportedType types[] = {
        {"GeneratorHooks", &GeneratorHooksType}, {"SwitchTrace", &SwitchTraceType}, {NULL, NULL},
    };
    static const ExportedInt constants[] = {{"REPR_LIMIT", REPR_LIMIT}, {NULL, 0}};
    return create_module(&handoffs_module, types, constants);
}

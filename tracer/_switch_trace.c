/* SwitchTrace: the greenlet model's greenlet.settrace callback (tracer.models._greenlets).
 *
 * A plain switch between two known live greenlets is recorded here as one hand-off, its
 * arrival found by the resumed frame's identity; anything else goes to the Python trace.
 */

#include "_handoffs.h"

/* -- SwitchTrace ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *recorder;    /* a RecorderCore */
    PyObject *lanes;       /* tracer.lanes: weakref.ref(greenlet) -> lane */
    PyObject *arrivals;    /* tracer._arrivals: list by lane */
    PyObject *arrival_of;  /* tracer.arrival */
    PyObject *fallback;    /* the Python switch trace, for everything but a plain switch */
    /* greenlet.greenlet's own `dead` getter, called directly on exact greenlets (a subclass,
       such as gevent's Greenlet, may define its own `dead`) */
    PyTypeObject *greenlet_type;
    getter dead_getter;
    void *dead_closure;
} SwitchTrace;

/* The objects a SwitchTrace holds, for its traverse and clear. */
#define SWITCH_TRACE_OBJECTS(X) \
    X(recorder) X(lanes) X(arrivals) X(arrival_of) X(fallback) X(greenlet_type)

/* The lane of a greenlet (GreenletTracer.lanes), as lane_in finds it: keyed by the greenlet's
 * plain weak reference, which this gets back (the row's own key while the greenlet lives) */
static Py_ssize_t
greenlet_lane(SwitchTrace *self, PyObject *glet)
{
    PyObject *key = PyWeakref_NewRef(glet, NULL);
    if (key == NULL) return -2;
    Py_ssize_t lane = lane_in(self->lanes, key);
    Py_DECREF(key);
    return lane;
}

/* 1: recorded a plain switch between two known live greenlets; 0: not one; -1: error */
static int
plain_switch(SwitchTrace *self, PyObject *origin, PyObject *target)
{
    Py_ssize_t origin_lane = greenlet_lane(self, origin);
    if (origin_lane < 0) return origin_lane == -2 ? -1 : 0;
    Py_ssize_t target_lane = greenlet_lane(self, target);
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
    PyObject *arrival = table_row(self->arrivals, target_lane, ARRIVAL_FIELDS,
                                  "tracer._arrivals");
    if (arrival == NULL) return -1;
    Py_INCREF(arrival);
    if ((PyObject *)frame != PyTuple_GET_ITEM(arrival, ARRIVAL_FRAME)
        || PyFrame_GetLasti(frame)
           != PyLong_AsLong(PyTuple_GET_ITEM(arrival, ARRIVAL_OFFSET))) {
        PyObject *lane_number = PyLong_FromSsize_t(target_lane);
        Py_SETREF(arrival, lane_number == NULL ? NULL
                  : PyObject_CallFunctionObjArgs(self->arrival_of, lane_number, frame, NULL));
        Py_XDECREF(lane_number);
        if (checked_row(arrival, ARRIVAL_FIELDS, "tracer.arrival()") == NULL) {
            Py_XDECREF(arrival);
            return -1;
        }
    }
    int32_t source, switch_detail, blocked_detail;
    int failed = as_int32(PyTuple_GET_ITEM(arrival, ARRIVAL_SOURCE), &source) < 0
        || as_int32(PyTuple_GET_ITEM(arrival, ARRIVAL_SWITCH_DETAIL), &switch_detail) < 0
        || as_int32(PyTuple_GET_ITEM(arrival, ARRIVAL_BLOCKED_DETAIL), &blocked_detail) < 0;
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
    if (take_table(&self->lanes, tracer, "lanes", is_exact_dict) < 0
        || take_table(&self->arrivals, tracer, "_arrivals", is_exact_list) < 0
        || take_table(&self->arrival_of, tracer, "arrival", PyCallable_Check) < 0) {
        return -1;
    }
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

GC_FIELD_FUNCTIONS(switch_trace, SwitchTrace, SWITCH_TRACE_OBJECTS)

PyTypeObject SwitchTraceType = {
    HANDOFFS_TYPE_SLOTS(SwitchTrace, switch_trace),
    .tp_doc = "SwitchTrace(tracer, recorder, fallback): a greenlet.settrace callback recording "
              "plain switches in C and passing the rest to fallback(event, args).",
    .tp_call = (ternaryfunc)switch_trace_call,
};

/* 3.11 only: generator frames followed without 3.11's tracing mode, for GeneratorHooks.
 *
 * generator_trace is a C trace function that replaces the Python sys.settrace pair; the frame
 * evaluation hook (PEP 523) plays it the events sys.settrace would have delivered, so both
 * record the same trace (see "the frame evaluation hook" below). Both drive the fast paths of
 * _generator_hooks.c and hand everything else to the Python trace functions.
 */

#include "_handoffs.h"

#if PY_VERSION_HEX < 0x030C0000
/* The unspecialised bytecode of `code` (borrowed), NULL with an error on failure: made once by
 * PyCode_GetCode, then kept by the code object (_co_code), where it is read here without the
 * call and the reference counting (several times a hand-off). */
static PyObject *
unspecialised(PyCodeObject *code)
{
    if (code->_co_code != NULL) return code->_co_code;
    PyObject *raw = PyCode_GetCode(code);
    if (raw == NULL) return NULL;
    Py_DECREF(raw);
    if (code->_co_code != NULL) return code->_co_code;
    PyErr_SetString(PyExc_RuntimeError, "a code object kept no bytecode");
    return NULL;
}

/* The 'call' of a generator frame. 1: followed -- its resume recorded, or the Python trace
 * chose to follow it (then *local is the local trace function it returned, a new reference);
 * 0: not followed; -1: error. */
static int
play_call(GeneratorHooks *self, PyFrameObject *frame, PyObject **local)
{
    *local = NULL;
    Py_ssize_t lane = lane_of(self, frame);
    if (lane == -2) return -1;
    if (lane >= 0) {
        if (PyDict_GET_SIZE(self->errors)
            && dict_discard(self->errors, (PyObject *)frame) < 0) {
            return -1;
        }
        PyObject *offset = PyLong_FromLong(PyFrame_GetLasti(frame));
        if (offset == NULL) return -1;
        int done = fast_resume(self, frame, lane, offset);
        Py_DECREF(offset);
        if (done) return done;
    }
    else if (!(frame->f_frame->f_code->co_flags & CO_FOLLOWED_FLAGS)) {
        return 0;
    }
    else {
        int done = fast_start(self, frame);
        if (done) return done;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(self->call_fallback, (PyObject *)frame,
                                                    str_call, Py_None, NULL);
    if (result == NULL) return -1;
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    *local = result;
    return 1;
}

/* The 'return' (`arg` the value, NULL when an exception leaves) or 'exception' event of a
 * followed frame. */
static int
play_leave(GeneratorHooks *self, PyFrameObject *frame, int what, PyObject *arg)
{
    if (what == PyTrace_RETURN && arg != NULL && PyDict_GET_SIZE(self->errors) == 0) {
        /* the unspecialised instruction the frame is leaving at */
        PyObject *raw = unspecialised(frame->f_frame->f_code);
        if (raw == NULL) return -1;
        int lasti = PyFrame_GetLasti(frame);
        int opcode = lasti >= 0 && lasti < PyBytes_GET_SIZE(raw)
            ? (unsigned char)PyBytes_AS_STRING(raw)[lasti] : -1;
        if (opcode == RETURN_VALUE) {
            int done = fast_return(self, frame, arg);
            if (done) return done < 0 ? -1 : 0;
        }
        else if (opcode == YIELD_VALUE) {
            Py_ssize_t lane = lane_of(self, frame);
            if (lane == -2) return -1;
            /* not a lane: a coroutine that ran as a call until now, which Python makes one */
            if (lane >= 0) {
                int done = fast_yield(self, lane, arg);
                if (done) return done < 0 ? -1 : 0;
            }
        }
    }
    PyObject *result = PyObject_CallFunctionObjArgs(
        self->local_fallback, (PyObject *)frame,
        what == PyTrace_RETURN ? str_return : str_exception, arg == NULL ? Py_None : arg, NULL);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

static int stack_is_low(void);
static int opcode_at(PyCodeObject *code, _Py_CODEUNIT *instruction);

/* -- 3.11: where the trace function stops following ------------------------------------------
 *
 * With any trace function, 3.11 calls each C function through its tracing path, which costs C
 * stack plain 3.11 does not: about 80 bytes more for each evaluation a C function enters
 * (next(), send(), throw(): a recursion through generators driven by next() uses 496 bytes a
 * level traced against 416 plain), so a recursion that plain 3.11 survives near the end of
 * its C stack would overflow it traced. Evaluations entered from the evaluation loop itself
 * (yield from, a for loop) cost no more than plain. So the trace function counts the
 * evaluations nested on its thread that a C function call entered, and past
 * TRACED_C_CALL_LIMIT of them (the default recursion limit: a program going deeper raised
 * it), or when the stack runs low anyway, it removes itself for the rest of the run (the
 * excess per level goes with it) and leaves a note. What the recursion already used stays
 * used: the traced program keeps about TRACED_C_CALL_LIMIT * 80 bytes less stack than a
 * plain one, plus what the evaluation hook's own frames took before it handed over. */
#define TRACED_C_CALL_LIMIT 1000
static __thread int traced_c_calls;   /* such evaluations open on this thread */
static int following_stopped;         /* the trace function removed itself: noted once */

static const char DEEP_RECURSION_NOTE[] =
    "The program's calls through next(), send() or other C functions nested deeper than "
    "Loopscope can follow on Python 3.11 without risking a crash of the C stack: from there "
    "on, its generators were not traced (lanes still running at that point show no more "
    "hand-offs).";

/* Whether `frame`'s evaluation was entered by a C function its driver called (next(g),
 * g.send()), rather than inlined or resumed by the evaluation loop itself. */
static int
entered_through_c_call(PyFrameObject *frame)
{
    _PyInterpreterFrame *iframe = frame->f_frame;
    if (iframe == NULL || !iframe->is_entry) return 0;
    _PyInterpreterFrame *driver = iframe->previous;
    if (driver == NULL || _PyFrame_IsIncomplete(driver)) return 0;
    int opcode = opcode_at(driver->f_code, driver->prev_instr);
    if (opcode == -2) {
        PyErr_Clear();  /* unknown: counted as the costlier kind */
        return 1;
    }
    return opcode == CALL || opcode == PRECALL;
}

/* Removes the trace function from this thread for the rest of the run, with the run note. */
static void
stop_following(void)
{
    PyEval_SetTrace(NULL, NULL);
    traced_c_calls = 0;
    if (following_stopped) return;
    following_stopped = 1;
    PyObject *notes = PyImport_ImportModule("loopscope.tracer.notes");
    PyObject *done = notes == NULL ? NULL
        : PyObject_CallMethod(notes, "add_note", "s", DEEP_RECURSION_NOTE);
    Py_XDECREF(notes);
    Py_XDECREF(done);
    if (done == NULL) PyErr_WriteUnraisable(NULL);  /* the run goes on without its note */
}

/* The 3.11 trace function: the 'call' of a generator resume, the 'return' of its yield.
 * f_trace marks the frames followed (it holds the local trace function); line events are
 * switched off everywhere, as nothing here uses them. */
static int
generator_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    GeneratorHooks *self = (GeneratorHooks *)obj;
    if (what == PyTrace_CALL) {
        if ((entered_through_c_call(frame) && ++traced_c_calls > TRACED_C_CALL_LIMIT)
            || stack_is_low()) {
            stop_following();
            return 0;
        }
        frame->f_trace_lines = 0;
        PyObject *local;
        int followed = play_call(self, frame, &local);
        if (followed == 1 && (local != NULL || frame->f_trace == NULL)) {
            /* (a frame the evaluation hook followed before falling back here has no mark) */
            Py_XSETREF(frame->f_trace, local != NULL ? local : Py_NewRef(self->local_fallback));
        }
        return followed < 0 ? -1 : 0;
    }
    /* (an evaluation begun before this function was installed was never counted: those
       finish after every one begun since, as C calls nest) */
    if (what == PyTrace_RETURN && traced_c_calls > 0 && entered_through_c_call(frame)) {
        traced_c_calls--;
    }
    if (frame->f_trace == NULL || (what != PyTrace_RETURN && what != PyTrace_EXCEPTION)) {
        return 0;
    }
    return play_leave(self, frame, what, arg);
}

/* -- 3.11: the frame evaluation hook (PEP 523) ----------------------------------------------
 *
 * Any trace function puts 3.11 in its tracing mode, where every instruction of the program runs
 * unspecialised: a send() costs 4x before anything is recorded. So with the C hooks built,
 * 3.11 follows generator frames from the interpreter's frame evaluation hook instead. Around
 * each evaluation of a generator frame it plays the events sys.settrace would have delivered
 * (call before; return, or exception then return, after) to play_call / play_leave, as the
 * trace function does, so both record the same trace. Like sys.settrace it follows only the
 * thread that installed it, and nothing the hooks' own code runs (inside "tracing", so the
 * program's own trace and profile functions do not see it either); it leaves f_trace and line
 * events to the program.
 *
 * The price: with any evaluation hook, 3.11 no longer inlines Python-to-Python calls, so each
 * call uses C stack again (and costs about 1.5x). A program that recurses deeper than the C
 * stack allows would crash; so the hook watches each thread's stack, and when one runs low it
 * hands over to the trace function above for the rest of the run (which inlines again). */

static GeneratorHooks *eval_hooks;     /* the hooks whose generator_eval is installed */
static PyThreadState *eval_thread;     /* the thread they follow */
static int eval_busy;                  /* inside the hooks' own code: follow nothing */
static int eval_handed_over;           /* the stack ran low: the trace function took over */

#if defined(__linux__) && defined(__GLIBC__)
#define HAVE_STACK_BOUNDS 1
#else
#define HAVE_STACK_BOUNDS 0  /* no pthread_getattr_np: the trace function is used instead */
#endif

#define STACK_MARGIN (256 * 1024)
static __thread char *stack_floor;     /* below this the thread's C stack is running low */
/* Frames nested in the hook on this thread. Each costs C stack that plain 3.11 would not use
 * (an inlined call, or a bare generator resume), so waiting for the stack to run low would
 * leave too little for a recursion plain Python survives; past this depth (the default
 * recursion limit: a program that goes deeper raised it) the hook hands over at once. */
#define EVAL_DEPTH_LIMIT 1000
static __thread int eval_depth;

static int
stack_is_low(void)
{
#if HAVE_STACK_BOUNDS
    char here;
    if (stack_floor == NULL) {
        pthread_attr_t attributes;
        void *lowest;
        size_t size;
        stack_floor = (char *)1;  /* unknown: never low */
        if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
            if (pthread_attr_getstack(&attributes, &lowest, &size) == 0) {
                size_t margin = size / 4 < STACK_MARGIN ? size / 4 : STACK_MARGIN;
                stack_floor = (char *)lowest + margin;
            }
            pthread_attr_destroy(&attributes);
        }
    }
    return &here < stack_floor;
#else
    return 0;
#endif
}

/* A pending call: the followed thread installs the trace function (another thread's stack ran
 * low, and a trace function can only be installed from its own thread). */
static int
trace_from_pending(void *unused)
{
    if (eval_hooks != NULL && eval_handed_over && PyThreadState_Get() == eval_thread) {
        PyEval_SetTrace(generator_trace, (PyObject *)eval_hooks);
    }
    return 0;
}

static void
hand_over_to_trace(PyThreadState *tstate)
{
    _PyInterpreterState_SetEvalFrameFunc(tstate->interp, _PyEval_EvalFrameDefault);
    eval_handed_over = 1;
    if (tstate == eval_thread) {
        PyEval_SetTrace(generator_trace, (PyObject *)eval_hooks);
    }
    else {
        /* pending calls run in the main thread, which is the one followed in a run's child */
        (void)Py_AddPendingCall(trace_from_pending, NULL);
    }
}

/* The frame object of a generator's frame (borrowed), made through gi_frame if need be;
 * NULL with no error set if there is none. */
static PyFrameObject *
generator_frame_object(_PyInterpreterFrame *iframe)
{
    if (iframe->frame_obj != NULL) return iframe->frame_obj;
    PyObject *generator = (PyObject *)_PyFrame_GetGenerator(iframe);
    const char *attribute = (iframe->f_code->co_flags & CO_COROUTINE_FLAG) ? "cr_frame" : "gi_frame";
    PyObject *frame = PyObject_GetAttrString(generator, attribute);
    if (frame == NULL) return NULL;
    Py_DECREF(frame);  /* the generator's frame keeps it */
    return iframe->frame_obj;
}

/* The opcode (unspecialised) at `instruction`; -1 outside the code, -2 on error. */
static int
opcode_at(PyCodeObject *code, _Py_CODEUNIT *instruction)
{
    PyObject *raw = unspecialised(code);
    if (raw == NULL) return -2;
    Py_ssize_t index = instruction - _PyCode_CODE(code);
    return index >= 0 && index * 2 < PyBytes_GET_SIZE(raw)
        ? (unsigned char)PyBytes_AS_STRING(raw)[index * 2] : -1;
}

/* Before the frame runs: its 'call' event, with the frame as sys.settrace shows it then
 * (f_back the driver, f_lasti the RESUME about to run, a specialised driver's call at its
 * CALL). 1: followed; 0: not; -1: error. */
static int
eval_resume(GeneratorHooks *self, PyThreadState *tstate, _PyInterpreterFrame *iframe,
            int throwflag, PyFrameObject **frame_out)
{
    iframe->previous = tstate->cframe->current_frame;  /* what the evaluation will set */
    PyFrameObject *frame = generator_frame_object(iframe);
    *frame_out = frame;
    if (frame == NULL) return PyErr_Occurred() ? -1 : 0;
    _Py_CODEUNIT *saved = iframe->prev_instr;
    if (!throwflag) {
        /* a resume runs the RESUME after its yield (after RETURN_GENERATOR, POP_TOP at the
           start); a throw raises at the yield itself, as the trace's call event shows */
        _Py_CODEUNIT *next = saved + 1;
        for (int i = 0; i < 3; i++, next++) {
            int opcode = opcode_at(iframe->f_code, next);
            if (opcode == -2) return -1;
            if (opcode == RESUME) {
                iframe->prev_instr = next;
                break;
            }
        }
    }
    /* A specialised call of a C function (send, next, throw, close) runs in its PRECALL and
       skips the CALL after it; the trace, on unspecialised code, sees the CALL. */
    _PyInterpreterFrame *driver = iframe->previous;
    _Py_CODEUNIT *driver_saved = driver != NULL ? driver->prev_instr : NULL;
    if (driver != NULL && !_PyFrame_IsIncomplete(driver)) {
        int opcode = opcode_at(driver->f_code, driver_saved);
        if (opcode == -2) {
            iframe->prev_instr = saved;
            return -1;
        }
        _Py_CODEUNIT *call = driver_saved + 1 + INLINE_CACHE_ENTRIES_PRECALL;
        if (opcode == PRECALL && opcode_at(driver->f_code, call) == CALL) {
            driver->prev_instr = call;
        }
    }
    PyObject *local;
    int followed = play_call(self, frame, &local);
    Py_XDECREF(local);
    iframe->prev_instr = saved;
    if (driver != NULL) driver->prev_instr = driver_saved;
    return followed;
}

static void replace_error(PyObject *type, PyObject *value, PyObject *traceback);

/* After the frame ran: a yield or return as the trace's 'return' event, or an exception
 * leaving as its 'exception' then 'return'. Returns `result`; or NULL, with the error that
 * recording raised (it replaces the program's exception, which becomes its __context__, as a
 * trace function's error would; the generator is finished then). */
static PyObject *
eval_left(GeneratorHooks *self, PyFrameObject *frame, PyObject *result)
{
    if (result != NULL) {
        if (play_leave(self, frame, PyTrace_RETURN, result) == 0) return result;
        Py_DECREF(result);
        return NULL;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
    PyObject *info = PyTuple_Pack(3, type ? type : Py_None, value ? value : Py_None,
                                  traceback ? traceback : Py_None);
    int failed = info == NULL
        || play_leave(self, frame, PyTrace_EXCEPTION, info) < 0
        || play_leave(self, frame, PyTrace_RETURN, NULL) < 0;
    Py_XDECREF(info);
    if (!failed) {
        PyErr_Restore(type, value, traceback);
        return NULL;
    }
    replace_error(type, value, traceback);
    return NULL;
}

/* The error now set replaces the exception (type, value, traceback), which becomes its
 * __context__. Steals the three references. */
static void
replace_error(PyObject *type, PyObject *value, PyObject *traceback)
{
    PyObject *new_type, *new_value, *new_traceback;
    PyErr_Fetch(&new_type, &new_value, &new_traceback);
    PyErr_NormalizeException(&new_type, &new_value, &new_traceback);
    if (new_value != NULL && value != NULL && new_value != value) {
        PyException_SetContext(new_value, Py_NewRef(value));
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    PyErr_Restore(new_type, new_value, new_traceback);
}

/* The default evaluation, counted in eval_depth while it runs. */
static PyObject *
evaluate_counted(PyThreadState *tstate, _PyInterpreterFrame *iframe, int throwflag)
{
    eval_depth++;
    PyObject *result = _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    eval_depth--;
    return result;
}

static PyObject *
generator_eval(PyThreadState *tstate, _PyInterpreterFrame *iframe, int throwflag)
{
    GeneratorHooks *self = eval_hooks;
    if (self == NULL) return _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    if (eval_depth >= EVAL_DEPTH_LIMIT || stack_is_low()) {
        hand_over_to_trace(tstate);
        return _PyEval_EvalFrameDefault(tstate, iframe, throwflag);
    }
    if (eval_busy || tstate != eval_thread || iframe->owner != FRAME_OWNED_BY_GENERATOR
        || !(iframe->f_code->co_flags & CO_FOLLOWED_FLAGS)) {
        return evaluate_counted(tstate, iframe, throwflag);
    }
    Py_INCREF(self);
    PyFrameObject *frame = NULL;
    /* a throw arrives with its exception set: kept aside while the hooks run, as a trace
       function's call does */
    PyObject *type = NULL, *value = NULL, *traceback = NULL;
    if (throwflag) PyErr_Fetch(&type, &value, &traceback);
    eval_busy = 1;
    PyThreadState_EnterTracing(tstate);
    int followed = eval_resume(self, tstate, iframe, throwflag, &frame);
    PyThreadState_LeaveTracing(tstate);
    eval_busy = 0;
    if (throwflag) {
        if (followed < 0) replace_error(type, value, traceback);
        else PyErr_Restore(type, value, traceback);
    }
    /* A resume that could not be recorded raises its error inside the generator, as a trace
       function's error would (the frame must run to be left in order). */
    PyObject *result = evaluate_counted(tstate, iframe, followed < 0 ? 1 : throwflag);
    if (followed == 1 && eval_hooks == self) {
        Py_INCREF(frame);
        eval_busy = 1;
        PyThreadState_EnterTracing(tstate);
        result = eval_left(self, frame, result);
        PyThreadState_LeaveTracing(tstate);
        eval_busy = 0;
        Py_DECREF(frame);
    }
    Py_DECREF(self);
    return result;
}

/* Keeps install_*(call_fallback, local_fallback, errors)'s arguments: the Python trace
 * functions and their pending-exception table. */
static int
keep_fallbacks(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs,
               const char *name)
{
    if (nargs != 3 || !PyDict_CheckExact(args[2])) {
        PyErr_Format(PyExc_TypeError, "%s(call_fallback, local_fallback, errors)", name);
        return -1;
    }
    Py_XSETREF(self->call_fallback, Py_NewRef(args[0]));
    Py_XSETREF(self->local_fallback, Py_NewRef(args[1]));
    Py_XSETREF(self->errors, Py_NewRef(args[2]));
    following_stopped = 0;
    return 0;
}

int
generator_install_trace(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (keep_fallbacks(self, args, nargs, "install_trace") < 0) return -1;
    PyEval_SetTrace(generator_trace, (PyObject *)self);
    return 0;
}

int
generator_install_eval(GeneratorHooks *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!HAVE_STACK_BOUNDS) {
        PyErr_SetString(PyExc_RuntimeError, "no way to watch the C stack on this platform");
        return -1;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (_PyInterpreterState_GetEvalFrameFunc(interp) != _PyEval_EvalFrameDefault
        || (eval_hooks != NULL && eval_hooks != self)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "frames are already evaluated by another hook (PEP 523)");
        return -1;
    }
    if (keep_fallbacks(self, args, nargs, "install_eval") < 0) return -1;
    Py_XSETREF(eval_hooks, (GeneratorHooks *)Py_NewRef(self));
    eval_thread = PyThreadState_Get();
    eval_busy = 0;
    eval_handed_over = 0;
    _PyInterpreterState_SetEvalFrameFunc(interp, generator_eval);
    return 0;
}

int
generator_uninstall_eval(GeneratorHooks *self)
{
    if (eval_hooks == self) {
        PyInterpreterState *interp = PyInterpreterState_Get();
        if (_PyInterpreterState_GetEvalFrameFunc(interp) == generator_eval) {
            _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
        }
        int handed_over = eval_handed_over;
        eval_thread = NULL;
        eval_handed_over = 0;
        Py_CLEAR(eval_hooks);
        return handed_over;
    }
    return 0;
}

int
generator_eval_installed(void)
{
    return _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get()) == generator_eval;
}
#else
/* ISO C wants something in a translation unit. */
typedef int generator_eval_is_for_3_11;
#endif

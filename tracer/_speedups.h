/* What the files of the tracer._speedups extension share (not a public API: that is the
 * recorder's C API in loopscope.h).
 *
 *   _speedups.c       the module: its functions, the interned names, initialisation
 *   _recorder_core.c  RecorderCore, the recorder's buffer, and the C API table over it
 *   _asyncio_core.c   LoopTracerCore, CausedCallback, CoroutineProxyCore, LoopHooksCore: the
 *                     asyncio model's hot paths, and reading await chains
 *   _coroutine_frames.c  where a coroutine resumes, from its interpreter frame
 *   _gc_schedule.c    the tracer's own objects kept off the collector's count (these two
 *                     files are the ones that read CPython's internals)
 */

#ifndef LOOPSCOPE_SPEEDUPS_H
#define LOOPSCOPE_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "loopscope.h"

#if defined(__linux__)
#define HAVE_NATIVE_CLOCK 1
#else
#define HAVE_NATIVE_CLOCK 0
#endif

/* -- the recorder (_recorder_core.c) ------------------------------------------------------- */

/* One slot of a recorder's name table: a name's hash (0: an empty slot) and its uses. */
typedef struct {
    uint64_t key;
    uint64_t uses;
} NameUses;

typedef struct {
    PyObject_HEAD
    int64_t *ts;
    int32_t *lane;
    int8_t *code;
    int32_t *other;
    int32_t *detail;
    int32_t *source;
    Py_ssize_t count;
    Py_ssize_t capacity;
    Py_ssize_t limit;      /* _limit: _limit_reached() runs once count reaches it */
    int current;           /* the lane whose code is running */
    PyObject *clock;       /* NULL: CLOCK_MONOTONIC read here */
    /* Pending value rows (tracer/values.py): bases, text lengths and the texts, as sent. */
    int32_t *value_base;
    uint32_t *value_length;
    Py_ssize_t values_pending;
    Py_ssize_t values_capacity;
    char *value_texts;
    Py_ssize_t texts_size;
    Py_ssize_t texts_capacity;
    int64_t value_count;   /* value rows so far, sent or pending */
    /* Recorder.spawn's bookkeeping, kept here so C can spawn a lane too */
    int lane_count;        /* _lane_count: lanes are numbered 0 to lane_count - 1 */
    /* How many lanes have taken each name, by the name's hash (recorder_take_name): a table
     * of plain numbers, where a dict of names kept every task's name alive for the whole run */
    NameUses *name_uses;   /* name_uses_mask + 1 slots, or NULL before the first name */
    Py_ssize_t name_uses_mask;
    Py_ssize_t name_uses_count;
    /* The task numbers N of the names that end in " (Task-N)" (task_number_shown), a bit each:
     * such names are kept here, not in name_uses */
    uint8_t *task_numbers;
    Py_ssize_t task_numbers_size;  /* bytes */
    /* Recorder.detail's table: detail tuple -> index, and the tuples in index order */
    PyObject *details;     /* _details */
    PyObject *detail_rows; /* _detail_rows */
    /* the rows unique_detail() added since the last flush, forgotten once it sent them */
    int32_t *unique_rows;
    Py_ssize_t unique_count;
    Py_ssize_t unique_capacity;
} RecorderCore;

extern PyTypeObject RecorderCoreType;
extern LoopscopeRecorderAPI recorder_api;
int recorder_append(RecorderCore *self, int32_t lane, int8_t code, int32_t other, int32_t detail,
                    int32_t source);
int recorder_append_same_instant(RecorderCore *self, int32_t lane, int8_t code, int32_t other,
                                 int32_t detail, int32_t source);
int recorder_spawn(RecorderCore *self, PyObject *name, int32_t base, int32_t parent,
                   int32_t source, int32_t *lane, PyObject **named);
int recorder_detail(RecorderCore *self, PyObject *detail, int32_t *index);
int recorder_unique_detail(RecorderCore *self, PyObject *detail, int32_t *index);
int recorder_read_clock(RecorderCore *self, int64_t *now);

/* -- the parent's column checks (_column_checks.c) */
PyObject *column_problem(PyObject *module, PyObject *args);
PyObject *code_positions(PyObject *module, PyObject *args);
PyObject *value_bases(PyObject *module, PyObject *args);

/* -- the asyncio model's cores (_asyncio_core.c) ------------------------------------------- */

typedef struct {
    PyObject_HEAD
    RecorderCore *recorder;
    char detached;
    int ready_self;  /* the detail index of READY's ("cause", "self") */
    /* the tracer's tables the proxy's wait fast path reads (see LoopTracer) */
    PyObject *waiting;
    Py_ssize_t sweep_waiting_at;  /* the waiting table's size at its next sweep */
    PyObject *sleeps;
    PyObject *io_futures;
    PyObject *verdicts_top;
    PyObject *verdicts_inner;
    PyObject *wait_calls;    /* id(code) -> (code, side): what a blocked wait is named by */
    PyObject *owner_details;
    PyObject *plain_future;  /* asyncio.Future: the only type the fast path judges */
    /* what wakes whom (see LoopTracer._wake) */
    PyObject *cause;         /* (waker, cause detail, deadline_ns) while a callback runs */
    int loop_lane;
    int cause_future;
    int cause_callback;
    /* the POLL details interned so far: a busy loop alternates a blocking poll (None) with
     * a zero-timeout one, so None keeps a slot of its own beside the last other timeout */
    PyObject *poll_timeout;
    int poll_detail;
    int poll_none_detail;
    int nothing_ready;       /* ANNOTATE's detail for a poll that found nothing ready */
    /* what a task's spawn and end need without a call into Python */
    PyObject *plain_task;    /* asyncio.Task: the type whose completion is judged here */
    PyObject *code_lines;    /* id(code) -> (code, {line: source index}) (LINES_OF_*) */
    int cause_task;          /* the WAKE cause of a task that finished */
    int end_none;            /* END's detail for a coroutine that returned None (0: unset) */
    int ready_spawn;         /* READY's detail for a task just spawned */
    PyObject *spawn_bases;   /* qualname -> the task lanes' spawn base detail (tracer.values) */
    PyObject *named_by_request;  /* qualnames whose lanes naming.request_label names */
    PyObject *gathering_future;  /* asyncio.gather's future: a wait judged here too */
    /* While a finished task's done callback runs through DoneCallbacks: the task's lane,
     * standing for the cause (lane, cause_task, 0) without a tuple and a wrapper per
     * callback; NO_LANE otherwise (then `cause` says what is running) */
    int done_lane;
    PyObject *done_callbacks;    /* the tracer's DoneCallbacks, made at first use */
    int on_gather;               /* BLOCKED's detail for a wait on gather (0: unset) */
    /* timers (LoopTracer.timer_scheduled): what asyncio.sleep's timer calls, and the last
     * delay a sleep asked for with its shown value, round(delay, 6) */
    PyObject *timer_fires;
    /* id(future) -> its timer's deadline while a lane sleeps on asyncio.sleep's future, whose
     * timer runs unwrapped: the wake-up's cause is that timer's */
    PyObject *sleeping;
    PyObject *last_delay;
    PyObject *last_delay_shown;
    /* the code_lines entry read last: a run's tasks mostly run a few coroutines, and finding
     * an entry by id(code) made an int and a dict lookup a task */
    PyObject *last_code_lines;
    /* The source of the first step of the coroutines of one code object (the last one a proxy
     * was made for), learned from the first of them to step: an eager tree's tasks are
     * mostly fresh coroutines of one code that finish in that step, and each one's proxy
     * would otherwise work out the same line and look up its source again. The proxy made
     * last for the code holds `first_step_ticket` until it has told its offset and source. */
    PyObject *first_step_code;
    int first_step_known;
    int first_step_offset;
    int first_step_source;
    int first_step_ticket;
    /* The last task lane name's stem: the coroutine's __qualname__ (the object, compared by
     * identity) with the spawn_bases and named_by_request dicts it was looked up in, then
     * where the name shown starts in it and its spawn base (tracer_spawn_task). */
    PyObject *stem_qualname;
    PyObject *stem_bases;
    PyObject *stem_requests;
    Py_ssize_t stem_start;
    int32_t stem_base;
} LoopTracerCore;

extern PyTypeObject LoopTracerCoreType;
extern PyTypeObject CausedCallbackType;
extern PyTypeObject ProxyCoreType;
extern PyTypeObject LoopHooksCoreType;
extern PyTypeObject DoneCallbacksType;
PyObject *configure_loop_hooks(PyObject *module, PyObject *args);
PyObject *innermost_awaiter(PyObject *module, PyObject *coro);
PyObject *local_self(PyObject *module, PyObject *frame);

/* -- interned names and shared objects (_speedups.c, set up by PyInit__speedups) ------------ */

extern PyObject *array_type;  /* array.array */
extern PyObject *str_limit_reached;
extern PyObject *str_cr_frame;
extern PyObject *str_source_of;
extern PyObject *str_spawn_eager;
extern PyObject *str_step_waits;
extern PyObject *str_step_ended;
extern PyObject *str_step_returned;
extern PyObject *str_detach;
extern PyObject *str_lines_of;
extern PyObject *str_cr_code;
extern PyObject *str_cr_await;
extern PyObject *str_gi_yieldfrom;
extern PyObject *str_gi_code;
extern PyObject *str_gi_frame;
extern PyObject *str_self;
extern PyObject *str_fd;
extern PyObject *str_detail;
extern PyObject *str_poll_timeout_detail;
extern PyObject *str_done;
extern PyObject *str_pure_callback_scheduled;
extern PyObject *str_timer_cause;
extern PyObject *str_cancelled;
extern PyObject *str_cancel_cause;

/* Where an exact coroutine resumes (tracer/_coroutine_frames.c): its instruction offset and
 * line, as its frame object would say, without making one; the line only when the offset is
 * not `known_offset` (whose line the caller knows). 1 when found, 0 when it has finished (no
 * frame), -1 when this Python's frame layout is not read (3.11 to 3.15 are: a later one
 * reads cr_frame). */
int coroutine_resume_point(PyObject *coro, int known_offset, int *offset, int *line);
/* The code object a coroutine that has not finished runs (borrowed), read from its
 * interpreter frame without cr_code's attribute lookup; NULL when not read that way. */
PyObject *coroutine_code(PyObject *coro);

/* The tracer's own per-task objects off the collector's schedule (tracer/_gc_schedule.c):
 * uncount right after one is allocated, recount right before it is freed; both do nothing
 * where this Python's collector is not read (the module's task_objects_uncounted() says). */
void gc_schedule_uncount(void);
void gc_schedule_recount(void);
PyObject *task_objects_uncounted(PyObject *module, PyObject *unused);

#endif /* LOOPSCOPE_SPEEDUPS_H */

/* Where a suspended coroutine resumes, read from its interpreter frame.
 *
 * `coro.cr_frame` makes a frame object the first time it is read, and that object lives as
 * long as the coroutine does. The asyncio proxy asks every step where its coroutine resumes;
 * made for every task, those frame objects are as many allocations as the tasks themselves,
 * and on 3.13 they alone make the collector run a full collection more than the untraced
 * program does (docs/benchmarks.md, round 7). Reading the interpreter frame answers the same
 * question (what PyFrame_GetLasti and PyFrame_GetLineNumber would say) without one. This is
 * the only file of tracer._speedups that reads CPython's internal frame layout.
 */

#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX < 0x030E0000
/* 3.11 to 3.13, whose interpreter frame and generator layouts this reads */
#if PY_VERSION_HEX < 0x030C0000
/* The public headers defined it before Py_BUILD_CORE; pycore_gc.h's definition replaces it. */
#undef _PyGC_FINALIZED
#endif
#include "internal/pycore_frame.h"
#define READS_FRAMES 1
#define COROUTINE_FINISHED(GEN) ((GEN)->gi_frame_state >= FRAME_COMPLETED)
#define COROUTINE_FRAME(GEN) ((_PyInterpreterFrame *)(GEN)->gi_iframe)
#if PY_VERSION_HEX < 0x030D0000
#define FRAME_CODE(FRAME) ((FRAME)->f_code)
#else
#define FRAME_CODE(FRAME) _PyFrame_GetCode(FRAME)
#endif

#elif PY_VERSION_HEX < 0x03100000
/* 3.14 and 3.15: the same layouts, in the headers they moved to. Unread, each task's
 * cr_frame made a frame object that lived as long as it there too. */
#include "internal/pycore_frame.h"
#include "internal/pycore_interpframe.h"
#define READS_FRAMES 1
#define COROUTINE_FINISHED(GEN) FRAME_STATE_FINISHED((GEN)->gi_frame_state)
#define COROUTINE_FRAME(GEN) (&(GEN)->gi_iframe)
#define FRAME_CODE(FRAME) _PyFrame_GetCode(FRAME)
#endif

#include "_speedups.h"

#ifdef READS_FRAMES

int
coroutine_resume_point(PyObject *coro, int known_offset, int *offset, int *line)
{
    PyGenObject *generator = (PyGenObject *)coro;
    if (COROUTINE_FINISHED(generator)) return 0;  /* cr_frame is None */
    _PyInterpreterFrame *frame = COROUTINE_FRAME(generator);
    if (frame->frame_obj != NULL) {  /* one exists already: what it says (its f_lineno) */
        *offset = PyFrame_GetLasti(frame->frame_obj);
        if (*offset != known_offset) *line = PyFrame_GetLineNumber(frame->frame_obj);
        return 1;
    }
    int last = _PyInterpreterFrame_LASTI(frame);
    *offset = last < 0 ? -1 : last * (int)sizeof(_Py_CODEUNIT);
    if (*offset != known_offset) {
        *line = PyCode_Addr2Line(FRAME_CODE(frame), last * (int)sizeof(_Py_CODEUNIT));
    }
    return 1;
}

PyObject *
coroutine_code(PyObject *coro)
{
    PyGenObject *generator = (PyGenObject *)coro;
    if (COROUTINE_FINISHED(generator)) return NULL;
    return (PyObject *)FRAME_CODE(COROUTINE_FRAME(generator));
}

#else
/* A later layout, not read: the caller reads cr_frame there. */

PyObject *
coroutine_code(PyObject *coro)
{
    (void)coro;
    return NULL;
}

int
coroutine_resume_point(PyObject *coro, int known_offset, int *offset, int *line)
{
    (void)coro;
    (void)known_offset;
    (void)offset;
    (void)line;
    return -1;
}
#endif

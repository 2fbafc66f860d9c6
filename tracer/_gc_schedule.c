/* The tracer's own objects kept off the collector's schedule.
 *
 * CPython runs a young collection when the young generation's count (allocations of tracked
 * objects less their frees, since the last collection) passes its threshold, and a full one
 * after enough of those. The asyncio tracer makes one proxy per task, living as long as the
 * task: untraced, a program's tasks do not make them, so traced it ran more collections than
 * untraced (on 3.13's plain async_tree one full collection more; docs/benchmarks.md, gc8).
 * The proxies stay tracked, so a cycle through one is still found and freed; only their
 * allocation is taken back off that count right after it is made, and given back just before
 * the object is freed (whose free takes one off again), so the program's collections come
 * when its own allocations bring them, as they do untraced.
 *
 * This reads the collector's state in CPython's internal headers (Py_BUILD_CORE), and does
 * it only where the count is the generational collector's `generations[0].count` with the
 * young threshold of 2,000: 3.13, and 3.14/3.15 since they went back to that collector. There
 * a run of async_tree makes one to three full collections, and the proxies' count alone added
 * one. 3.11 and 3.12 collect the young generation every 700 and make six to nine full ones;
 * there the change moved them to moments with more live objects and cost more than it saved
 * (0.05-0.08x of CPU on the plain and io trees, in three sittings), so it is left off. So are
 * the incremental collector of early 3.14 releases and the free-threaded build: both
 * functions do nothing there.
 */

#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000 && !defined(Py_GIL_DISABLED)
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"
/* The incremental collector (3.14.0 and its first fixes) marks its old spaces in this bit;
 * the generational one, in 3.13 and again in later 3.14s, has no such bit. */
#if !defined(_PyGC_NEXT_MASK_OLD_SPACE_1)
#define KEEPS_OWN_OBJECTS_UNCOUNTED 1
#endif
#endif

#include "_speedups.h"

#ifdef KEEPS_OWN_OBJECTS_UNCOUNTED

/* The public getter: the internal one reads a thread-local that 3.13 does not export. */
#define YOUNG_COUNT (PyInterpreterState_Get()->gc.generations[0].count)

void
gc_schedule_uncount(void)
{
    int *young = &YOUNG_COUNT;
    if (*young > 0) (*young)--;
}

void
gc_schedule_recount(void)
{
    YOUNG_COUNT++;
}

PyObject *
task_objects_uncounted(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    Py_RETURN_TRUE;
}

#else

void
gc_schedule_uncount(void)
{
}

void
gc_schedule_recount(void)
{
}

PyObject *
task_objects_uncounted(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    Py_RETURN_FALSE;
}

#endif

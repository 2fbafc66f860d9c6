/* check_columns in C: the column checks of tracer.trace_checks over array.array columns.
 *
 * The parent checks every batch the child streams and every trace it loads. Its pure twin
 * (trace_checks._numpy_column_problem) is vectorised with numpy, whose import alone costs a
 * short traced run a tenth of a second of the parent's CPU; one pass of plain C loops over
 * the columns' buffers costs less than that import and needs no numpy at all.
 */

#include "_speedups.h"

#define VALUE_ROW_FIRST (1 << 30)
#define MAX_TS_VALUE ((int64_t)1 << 62)

/* The buffer of a column whose items are `itemsize` bytes, or -1 (with an exception) when
 * the column is something else. */
static int
column_buffer(PyObject *column, Py_ssize_t itemsize, Py_buffer *view)
{
    if (PyObject_GetBuffer(column, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "a column has the wrong item size");
        return -1;
    }
    return 0;
}

static const char *
columns_problem(const int64_t *ts, const int32_t *lane, const int8_t *code, const int32_t *other,
                const int32_t *detail, const int32_t *source, Py_ssize_t count,
                const unsigned char *known, long long detail_count, long long value_count,
                long long source_count, long long previous_events, long long previous_ts)
{
    long long lanes = previous_events + count;
    /* in the pure twin's order, so that a column wrong twice is named alike by both */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!known[(unsigned char)code[i]]) return "an event has an unknown code";
    }
    if (ts[0] < previous_ts || ts[count - 1] >= MAX_TS_VALUE) return "a timestamp is out of range";
    for (Py_ssize_t i = 1; i < count; i++) {
        if (ts[i] < ts[i - 1]) return "the timestamps go backwards";
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (lane[i] < 0 || lane[i] >= lanes) return "an event is on a lane out of range";
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (other[i] < -1 || other[i] >= lanes) return "an event names a lane out of range";
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (source[i] < 0 || source[i] >= source_count) {
            return "an event names a source location that does not exist";
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (detail[i] < VALUE_ROW_FIRST && (detail[i] < 0 || detail[i] >= detail_count)) {
            return "an event names a detail that does not exist";
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (detail[i] >= VALUE_ROW_FIRST && (long long)detail[i] - VALUE_ROW_FIRST >= value_count) {
            return "an event names a value row that does not exist";
        }
    }
    return NULL;
}

/* column_problem(ts, lane, code, other, detail, source, known, detail_count, value_count,
 * source_count, previous_events, previous_ts): what is wrong with the columns, or None.
 * `known` is 256 bytes, non-zero at each known code (as an unsigned byte). */
PyObject *
column_problem(PyObject *module, PyObject *args)
{
    PyObject *columns[6];
    Py_buffer known;
    long long detail_count, value_count, source_count, previous_events, previous_ts;
    if (!PyArg_ParseTuple(args, "OOOOOOy*LLLLL:column_problem", &columns[0], &columns[1],
                          &columns[2], &columns[3], &columns[4], &columns[5], &known,
                          &detail_count, &value_count, &source_count, &previous_events,
                          &previous_ts)) {
        return NULL;
    }
    static const Py_ssize_t sizes[6] = {8, 4, 1, 4, 4, 4};
    Py_buffer views[6];
    int held = 0;
    PyObject *result = NULL;
    if (known.len != 256) {
        PyErr_SetString(PyExc_ValueError, "known must be 256 bytes");
        goto done;
    }
    for (; held < 6; held++) {
        if (column_buffer(columns[held], sizes[held], &views[held]) < 0) goto done;
    }
    Py_ssize_t count = views[0].len / 8;
    for (int i = 1; i < 6 && count > 0; i++) {
        if (views[i].len / sizes[i] != count) {
            result = PyUnicode_FromString("the columns differ in length");
            goto done;
        }
    }
    const char *problem = count == 0 ? NULL : columns_problem(
        views[0].buf, views[1].buf, views[2].buf, views[3].buf, views[4].buf, views[5].buf,
        count, known.buf, detail_count, value_count, source_count, previous_events,
        previous_ts);
    result = problem == NULL ? Py_NewRef(Py_None) : PyUnicode_FromString(problem);
done:
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    PyBuffer_Release(&known);
    return result;
}

/* code_positions(codes, code, start): the positions start + i of the events of
 * codes[start:] whose code is `code`, as native int64s (array("q").frombytes takes them):
 * SpawnedLanes.find_spawns in C, which a run of 100k tasks asks for 100k positions. */
PyObject *
code_positions(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *column;
    int code;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "Oin:code_positions", &column, &code, &start)) return NULL;
    Py_buffer view;
    if (column_buffer(column, 1, &view) < 0) return NULL;
    const char *codes = view.buf;
    Py_ssize_t count = view.len;
    if (start < 0) start = 0;
    Py_ssize_t found = 0;
    for (Py_ssize_t i = start; i < count; i++) found += codes[i] == (char)code;
    PyObject *positions = PyBytes_FromStringAndSize(NULL, found * (Py_ssize_t)sizeof(int64_t));
    if (positions != NULL) {
        int64_t *out = (int64_t *)PyBytes_AS_STRING(positions);
        for (Py_ssize_t i = start; i < count; i++) {
            if (codes[i] == (char)code) *out++ = (int64_t)i;
        }
    }
    PyBuffer_Release(&view);
    return positions;
}

/* value_bases(detail, seqs, value_bases, first_value_row): for the events at `seqs` (int64s),
 * whose details must all be value rows, the base detail of each (value_bases[detail[seq] -
 * first_value_row]) as native int32s; None when one is not a value row. SpawnedLanes'
 * _spawn_bases in C: the kinds of a run's 100k lanes without two tuples of 100k ints. */
PyObject *
value_bases(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *detail_column, *seq_column, *bases_column;
    long long first_value_row;
    if (!PyArg_ParseTuple(args, "OOOL:value_bases", &detail_column, &seq_column, &bases_column,
                          &first_value_row)) {
        return NULL;
    }
    Py_buffer details, seqs, bases;
    if (column_buffer(detail_column, 4, &details) < 0) return NULL;
    if (column_buffer(seq_column, 8, &seqs) < 0) {
        PyBuffer_Release(&details);
        return NULL;
    }
    if (column_buffer(bases_column, 4, &bases) < 0) {
        PyBuffer_Release(&details);
        PyBuffer_Release(&seqs);
        return NULL;
    }
    const int32_t *detail = details.buf, *base = bases.buf;
    const int64_t *seq = seqs.buf;
    Py_ssize_t events = details.len / 4, count = seqs.len / 8, known = bases.len / 4;
    PyObject *result = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(int32_t));
    if (result != NULL) {
        int32_t *out = (int32_t *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (seq[i] < 0 || seq[i] >= events) {
                Py_SETREF(result, NULL);
                PyErr_SetString(PyExc_IndexError, "an event index is out of range");
                break;
            }
            long long index = detail[seq[i]];
            if (index < first_value_row) {
                Py_SETREF(result, Py_NewRef(Py_None));
                break;
            }
            if (index - first_value_row >= known) {
                Py_SETREF(result, NULL);
                PyErr_SetString(PyExc_IndexError, "a value row does not exist");
                break;
            }
            out[i] = base[index - first_value_row];
        }
    }
    PyBuffer_Release(&details);
    PyBuffer_Release(&seqs);
    PyBuffer_Release(&bases);
    return result;
}

/* RecorderCore: the base of tracer.recorder.Recorder. record() and handoff() append to growable
 * C columns (the wire's own types) and read the clock in C, so an event costs no Python-level
 * work; _take() hands a batch back as array.array columns. The Python subclass keeps
 * everything else (interning, flushing, the gate, the flush timer). The recorder's C API
 * (loopscope.h) is a table of entry points into it for tracer._handoffs.
 */

#include "_speedups.h"

#define INITIAL_CAPACITY 1024

/* -- RecorderCore ------------------------------------------------------------------------ */




/* The event columns, each an array of `capacity` items: X(field, item type) for each. Grown
 * and freed from this one list, so a column cannot be grown and then leaked. */
#define RECORDER_COLUMNS(X)                                                                    \
    X(ts, int64_t) X(lane, int32_t) X(code, int8_t) X(other, int32_t) X(detail, int32_t)     \
    X(source, int32_t)

static int
recorder_grow(RecorderCore *self)
{
    Py_ssize_t capacity = self->capacity ? self->capacity * 2 : INITIAL_CAPACITY;
#define GROW(field, type)                                                   \
    {                                                                       \
        type *grown = PyMem_Realloc(self->field, capacity * sizeof(type));  \
        if (grown == NULL) goto fail;                                       \
        self->field = grown;                                                \
    }
    RECORDER_COLUMNS(GROW)
#undef GROW
    self->capacity = capacity;
    return 0;
fail:
    PyErr_NoMemory();
    return -1;
}

/* The clock reading for one event; -1 with an exception set on failure. */
static inline int
recorder_now(RecorderCore *self, int64_t *now)
{
    if (self->clock == NULL) {
#if HAVE_NATIVE_CLOCK
        struct timespec spec;
        clock_gettime(CLOCK_MONOTONIC, &spec);
        *now = (int64_t)spec.tv_sec * 1000000000 + spec.tv_nsec;
        return 0;
#else
        PyErr_SetString(PyExc_RuntimeError, "no native clock on this platform");
        return -1;
#endif
    }
    PyObject *value = PyObject_CallNoArgs(self->clock);
    if (value == NULL) return -1;
    long long reading = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (reading == -1 && PyErr_Occurred()) return -1;
    *now = reading;
    return 0;
}

static inline void
recorder_put(RecorderCore *self, int64_t now, int32_t lane, int8_t code, int32_t other,
             int32_t detail, int32_t source)
{
    Py_ssize_t i = self->count++;
    int8_t *codes = self->code;  /* (stored last: an int8_t store may alias the rest) */
    self->ts[i] = now;
    self->lane[i] = lane;
    self->other[i] = other;
    self->detail[i] = detail;
    self->source[i] = source;
    codes[i] = code;
}

/* The three events of a hand-off (switch, the origin's new state, the target running), all
 * at `now`. The columns and the count are read into locals once: a store to the int8_t code
 * column may alias anything, so written through `self` every store would read them again. */
static inline void
recorder_put_handoff(RecorderCore *self, int64_t now, int32_t origin, int32_t target,
                     int32_t switch_detail, int8_t origin_state, int32_t origin_detail,
                     int32_t target_source)
{
    Py_ssize_t i = self->count;
    int64_t *ts = self->ts;
    int32_t *lane = self->lane, *other = self->other, *detail = self->detail;
    int32_t *source = self->source;
    int8_t *code = self->code;
    self->count = i + 3;
    ts[i] = now;
    ts[i + 1] = now;
    ts[i + 2] = now;
    lane[i] = origin;
    lane[i + 1] = origin;
    lane[i + 2] = target;
    other[i] = target;
    other[i + 1] = target;
    other[i + 2] = NO_LANE;
    detail[i] = switch_detail;
    detail[i + 1] = origin_detail;
    detail[i + 2] = 0;
    source[i] = 0;
    source[i + 1] = 0;
    source[i + 2] = target_source;
    code[i] = CODE_SWITCH;
    code[i + 1] = origin_state;
    code[i + 2] = CODE_RUNNING;
}

static inline int
recorder_after_append(RecorderCore *self)
{
    if (self->count >= self->limit) {
        PyObject *done = PyObject_CallMethodNoArgs((PyObject *)self, str_limit_reached);
        if (done == NULL) return -1;
        Py_DECREF(done);
    }
    return 0;
}

/* One event, as record() writes it; the entry point of the C proxy. */
int
recorder_append(RecorderCore *self, int32_t lane, int8_t code, int32_t other, int32_t detail,
                int32_t source)
{
    int64_t now;
    if (self->count >= self->capacity && recorder_grow(self) < 0) return -1;
    if (recorder_now(self, &now) < 0) return -1;
    recorder_put(self, now, lane, code, other, detail, source);
    return recorder_after_append(self);
}

/* An event at the instant of the one recorded just before it (a task's READY right after its
 * SPAWN): that event's time while it is still pending, without reading the clock again; the
 * clock when a flush came between (as the step gate's flush after every event does: a pause
 * there must not leave an event behind the time it was recorded at). PurePendingBuffer.
 * record_same_instant's twin. */
int
recorder_append_same_instant(RecorderCore *self, int32_t lane, int8_t code, int32_t other,
                             int32_t detail, int32_t source)
{
    if (self->count == 0) return recorder_append(self, lane, code, other, detail, source);
    if (self->count >= self->capacity && recorder_grow(self) < 0) return -1;
    recorder_put(self, self->ts[self->count - 1], lane, code, other, detail, source);
    return recorder_after_append(self);
}

/* A new value row (detail `base` plus `size` bytes of UTF-8 text, tracer.values): its detail
 * index in *out. */
static int
recorder_value_row_utf8(RecorderCore *self, int32_t base, const char *data, Py_ssize_t size,
                        int32_t *out)
{
    if (self->value_count >= MAX_VALUE_ROWS) {
        PyErr_SetString(PyExc_OverflowError, "more value rows than a detail index can name");
        return -1;
    }
    if ((uint64_t)size > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a value row's text is over 4 GiB");
        return -1;
    }
    if (self->values_pending >= self->values_capacity) {
        Py_ssize_t capacity = self->values_capacity ? self->values_capacity * 2 : 256;
        int32_t *bases = PyMem_Realloc(self->value_base, capacity * sizeof(int32_t));
        if (bases == NULL) goto no_memory;
        self->value_base = bases;
        uint32_t *lengths = PyMem_Realloc(self->value_length, capacity * sizeof(uint32_t));
        if (lengths == NULL) goto no_memory;
        self->value_length = lengths;
        self->values_capacity = capacity;
    }
    if (self->texts_size + size > self->texts_capacity) {
        Py_ssize_t capacity = self->texts_capacity ? self->texts_capacity : 4096;
        while (capacity < self->texts_size + size) capacity *= 2;
        char *texts = PyMem_Realloc(self->value_texts, capacity);
        if (texts == NULL) goto no_memory;
        self->value_texts = texts;
        self->texts_capacity = capacity;
    }
    if (size) memcpy(self->value_texts + self->texts_size, data, size);
    self->texts_size += size;
    self->value_base[self->values_pending] = base;
    self->value_length[self->values_pending] = (uint32_t)size;
    self->values_pending++;
    *out = (int32_t)(VALUE_ROW + self->value_count++);
    return 0;
no_memory:
    PyErr_NoMemory();
    return -1;
}

/* The same for a str `text` (lone surrogates escaped, as the pure twin does). */
static int
recorder_value_row(RecorderCore *self, int32_t base, PyObject *text, int32_t *out)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "a value row's text must be a str");
        return -1;
    }
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data != NULL) return recorder_value_row_utf8(self, base, data, size, out);
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace");
    if (encoded == NULL) return -1;
    int failed = recorder_value_row_utf8(self, base, PyBytes_AS_STRING(encoded),
                                         PyBytes_GET_SIZE(encoded), out);
    Py_DECREF(encoded);
    return failed;
}

static void
put_u32_le(unsigned char *out, uint32_t value)
{
    out[0] = (unsigned char)value;
    out[1] = (unsigned char)(value >> 8);
    out[2] = (unsigned char)(value >> 16);
    out[3] = (unsigned char)(value >> 24);
}

/* _take_values() -> the pending value rows as one section (tracer/values.py), b"" if none */
static PyObject *
recorder_take_values(RecorderCore *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t count = self->values_pending;
    if (count == 0) return PyBytes_FromStringAndSize(NULL, 0);
    PyObject *section = PyBytes_FromStringAndSize(NULL, 8 + 8 * count + self->texts_size);
    if (section == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(section);
    put_u32_le(out, (uint32_t)(self->value_count - count));
    put_u32_le(out + 4, (uint32_t)count);
    out += 8;
    for (Py_ssize_t i = 0; i < count; i++, out += 4) put_u32_le(out, (uint32_t)self->value_base[i]);
    for (Py_ssize_t i = 0; i < count; i++, out += 4) put_u32_le(out, self->value_length[i]);
    if (self->texts_size) memcpy(out, self->value_texts, self->texts_size);
    self->values_pending = 0;
    self->texts_size = 0;
    return section;
}

/* value_row(base, text) -> detail index */
static PyObject *
recorder_value_row_method(RecorderCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "value_row(base, text)");
        return NULL;
    }
    long base = PyLong_AsLong(args[0]);
    if (base == -1 && PyErr_Occurred()) return NULL;
    if (base < 0 || base >= VALUE_ROW) {
        PyErr_SetString(PyExc_ValueError, "a value row's base must be an interned detail");
        return NULL;
    }
    int32_t index;
    if (recorder_value_row(self, (int32_t)base, args[1], &index) < 0) return NULL;
    return PyLong_FromLong(index);
}

static const char *record_keywords[] = {"lane", "code", "other", "detail", "source"};

/* record(lane, code, other=-1, detail=0, source=0), or record_same_instant's when
 * `same_instant` */
static PyObject *
recorder_record_at(RecorderCore *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, int same_instant)
{
    PyObject *given[5] = {NULL, NULL, NULL, NULL, NULL};
    if (nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "record() takes at most 5 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) given[i] = args[i];
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, k);
            int slot = -1;
            for (int j = 0; j < 5; j++) {
                if (PyUnicode_CompareWithASCIIString(name, record_keywords[j]) == 0) {
                    slot = j;
                    break;
                }
            }
            if (slot < 0) {
                PyErr_Format(PyExc_TypeError, "record() got an unexpected keyword argument '%U'",
                             name);
                return NULL;
            }
            if (given[slot] != NULL) {
                PyErr_Format(PyExc_TypeError, "record() got multiple values for argument '%U'",
                             name);
                return NULL;
            }
            given[slot] = args[nargs + k];
        }
    }
    if (given[0] == NULL || given[1] == NULL) {
        PyErr_SetString(PyExc_TypeError, "record() needs lane and code");
        return NULL;
    }
    int32_t lane, other = NO_LANE, detail = 0, source = 0;
    int8_t code;
    if (as_int32(given[0], &lane) < 0 || as_code(given[1], &code) < 0) return NULL;
    if (given[2] != NULL && as_int32(given[2], &other) < 0) return NULL;
    if (given[3] != NULL && as_int32(given[3], &detail) < 0) return NULL;
    if (given[4] != NULL && as_int32(given[4], &source) < 0) return NULL;
    if ((same_instant ? recorder_append_same_instant : recorder_append)(
            self, lane, code, other, detail, source) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
recorder_record(RecorderCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return recorder_record_at(self, args, nargs, kwnames, 0);
}

static PyObject *
recorder_record_same_instant(RecorderCore *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    return recorder_record_at(self, args, nargs, kwnames, 1);
}

/* handoff(origin, target, switch_detail, origin_state, origin_detail, target_source) */
static PyObject *
recorder_handoff(RecorderCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "handoff() takes exactly 6 arguments");
        return NULL;
    }
    int32_t origin, target, switch_detail, origin_detail, target_source;
    int8_t origin_state;
    if (as_int32(args[0], &origin) < 0 || as_int32(args[1], &target) < 0
        || as_int32(args[2], &switch_detail) < 0 || as_code(args[3], &origin_state) < 0
        || as_int32(args[4], &origin_detail) < 0 || as_int32(args[5], &target_source) < 0) {
        return NULL;
    }
    while (self->count + 3 > self->capacity) {
        if (recorder_grow(self) < 0) return NULL;
    }
    int64_t now;
    if (recorder_now(self, &now) < 0) return NULL;
    recorder_put_handoff(self, now, origin, target, switch_detail, origin_state, origin_detail,
                         target_source);
    if (recorder_after_append(self) < 0) return NULL;
    Py_RETURN_NONE;
}

/* An array.array of `typecode` holding a copy of `size` bytes at `data` (one copy). */
static PyObject *
column_array(const char *typecode, const void *data, Py_ssize_t size)
{
    PyObject *column = PyObject_CallFunction(array_type, "s", typecode);
    if (column == NULL) return NULL;
    PyObject *view = PyMemoryView_FromMemory((char *)data, size, PyBUF_READ);
    PyObject *done = view == NULL ? NULL : PyObject_CallMethod(column, "frombytes", "O", view);
    Py_XDECREF(view);
    if (done == NULL) {
        Py_DECREF(column);
        return NULL;
    }
    Py_DECREF(done);
    return column;
}

/* _take(origin) -> six array.array columns of the pending events, ts made origin-relative */
static PyObject *
recorder_take(RecorderCore *self, PyObject *origin_arg)
{
    long long origin = PyLong_AsLongLong(origin_arg);
    if (origin == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t count = self->count;
    /* the buffer is emptied below, so its timestamps can be made relative in place */
    for (Py_ssize_t i = 0; i < count; i++) self->ts[i] -= origin;
    PyObject *columns = Py_BuildValue(
        "(NNNNNN)",
        column_array("q", self->ts, count * (Py_ssize_t)sizeof(int64_t)),
        column_array("i", self->lane, count * (Py_ssize_t)sizeof(int32_t)),
        column_array("b", self->code, count * (Py_ssize_t)sizeof(int8_t)),
        column_array("i", self->other, count * (Py_ssize_t)sizeof(int32_t)),
        column_array("i", self->detail, count * (Py_ssize_t)sizeof(int32_t)),
        column_array("i", self->source, count * (Py_ssize_t)sizeof(int32_t)));
    if (columns == NULL) {
        for (Py_ssize_t i = 0; i < count; i++) self->ts[i] += origin;
        return NULL;
    }
    self->count = 0;
    return columns;
}

static PyObject *
recorder_pending_count(RecorderCore *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->count);
}

static PyObject *
recorder_last_event(RecorderCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->count == 0) {
        PyErr_SetString(PyExc_IndexError, "no pending event");
        return NULL;
    }
    Py_ssize_t last = self->count - 1;
    return Py_BuildValue("(ii)", (int)self->code[last], (int)self->lane[last]);
}

/* _set_clock(clock): None reads CLOCK_MONOTONIC in C; anything else is called per event */
static PyObject *
recorder_set_clock(RecorderCore *self, PyObject *clock)
{
    if (clock == Py_None) {
        if (!HAVE_NATIVE_CLOCK) {
            PyErr_SetString(PyExc_ValueError, "no native clock on this platform");
            return NULL;
        }
        Py_CLEAR(self->clock);
    }
    else {
        Py_INCREF(clock);
        Py_XSETREF(self->clock, clock);
    }
    Py_RETURN_NONE;
}

#define RECORDER_OBJECTS(X) X(clock) X(details) X(detail_rows)
GC_FIELD_FUNCTIONS(recorder, RecorderCore, RECORDER_OBJECTS)

/* -- lane names --------------------------------------------------------------------------
 *
 * No two lanes share a name: the second lane to take "fetch" is "fetch #2". Which names were
 * taken is kept by their hash alone, in an open-addressed table of numbers, where a dict of
 * the names kept one str per lane alive to the end of the run: 56k tasks left 56k strings
 * strewn through the heap the program allocates from, and the traced eager async_tree ran
 * 8% more instructions for that dict (cachegrind, 3.14). Two names whose hashes agree count
 * as one name: with 64-bit hashes, about one needless "#2" in 10^7 runs of a million lanes.
 *
 * A task's automatic name, "fetch (Task-17)", is not hashed into that table at all: asyncio
 * numbers its tasks one by one, so such names differ by their numbers, and which numbers a
 * lane shows is one bit each (task_numbers), set in the order the tasks are made. The table
 * is as large as the names are many, and each new name's hash lands in a slot of it at random:
 * for 56k tasks that was a cache and TLB miss a task, a fifth of what tracing an eager
 * async_tree cost on 3.14 (about 20 ms of 85). Which names count as such is read off the
 * text alone (task_number_shown), so a name the program gives in that shape is one too; a
 * second name showing the same number is numbered ("#2") even when its other words differ,
 * the one needless number this costs, and only for names a program wrote to look like
 * asyncio's.
 * recorder.PurePendingBuffer._unique_name is the twin. */

/* The N of a name ending in " (Task-N)", N written without leading zeros and below
 * TASK_NUMBERS_KEPT; -1 for any other name. */
#define TASK_NUMBERS_KEPT ((int64_t)1 << 24)  /* 2 MiB of bits at most */
#define TASK_NUMBER_DIGITS_SCALE 100000000  /* 10^8: 8 digits at most, as 2^24 - 1 has */
static int64_t
task_number_shown(PyObject *name)
{
    static const char head[] = " (Task-";
    const Py_ssize_t head_size = (Py_ssize_t)sizeof(head) - 1;
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    if (length < head_size + 2) return -1;
    Py_ssize_t first = length - 1;  /* the first digit's position, once found */
    int64_t number = 0, scale = 1;
    if (PyUnicode_KIND(name) == PyUnicode_1BYTE_KIND) {  /* every task's own: one pass */
        const Py_UCS1 *text = PyUnicode_1BYTE_DATA(name);
        if (text[length - 1] != ')') return -1;
        while (first > 0 && text[first - 1] >= '0' && text[first - 1] <= '9'
               && scale < TASK_NUMBER_DIGITS_SCALE) {
            number += (int64_t)(text[first - 1] - '0') * scale;
            scale *= 10;
            first--;
        }
        /* (a ninth digit fails the head check: the head must end just before the digits) */
        if (first == length - 1 || first < head_size || (text[first] == '0' && scale > 10)
            || memcmp(text + first - head_size, head, (size_t)head_size) != 0) {
            return -1;
        }
        return number < TASK_NUMBERS_KEPT ? number : -1;
    }
    int kind = PyUnicode_KIND(name);
    const void *data = PyUnicode_DATA(name);
    if (PyUnicode_READ(kind, data, length - 1) != ')') return -1;
    while (first > 0 && scale < TASK_NUMBER_DIGITS_SCALE) {
        Py_UCS4 c = PyUnicode_READ(kind, data, first - 1);
        if (c < '0' || c > '9') break;
        number += (int64_t)(c - '0') * scale;
        scale *= 10;
        first--;
    }
    if (first == length - 1 || first < head_size
        || (PyUnicode_READ(kind, data, first) == '0' && scale > 10)) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < head_size; i++) {
        if (PyUnicode_READ(kind, data, first - head_size + i) != (Py_UCS4)head[i]) return -1;
    }
    return number < TASK_NUMBERS_KEPT ? number : -1;
}

/* Marks task number `number` shown: 1 when a lane showed it already, 0 when not, -1 on error. */
static int
task_number_take(RecorderCore *self, int64_t number)
{
    Py_ssize_t byte = (Py_ssize_t)(number >> 3);
    if (byte >= self->task_numbers_size) {
        Py_ssize_t size = self->task_numbers_size ? self->task_numbers_size : 1024;
        while (size <= byte) size *= 2;
        uint8_t *grown = PyMem_Realloc(self->task_numbers, (size_t)size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(grown + self->task_numbers_size, 0, (size_t)(size - self->task_numbers_size));
        self->task_numbers = grown;
        self->task_numbers_size = size;
    }
    uint8_t bit = (uint8_t)(1u << (number & 7));
    int shown = (self->task_numbers[byte] & bit) != 0;
    self->task_numbers[byte] |= bit;
    return shown;
}

static int
name_uses_grow(RecorderCore *self)
{
    Py_ssize_t size = self->name_uses == NULL ? 256 : (self->name_uses_mask + 1) * 2;
    NameUses *table = PyMem_Calloc((size_t)size, sizeof(NameUses));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t mask = (uint64_t)size - 1;
    if (self->name_uses != NULL) {
        for (Py_ssize_t i = 0; i <= self->name_uses_mask; i++) {
            NameUses slot = self->name_uses[i];
            if (slot.key == 0) continue;
            uint64_t at = slot.key & mask;
            while (table[at].key != 0) at = (at + 1) & mask;
            table[at] = slot;
        }
        PyMem_Free(self->name_uses);
    }
    self->name_uses = table;
    self->name_uses_mask = (Py_ssize_t)mask;
    return 0;
}

/* The slot of `name` in the table (its key 0 when no lane has taken the name), the table
 * grown first when `to_take` and it is half full; NULL on error. */
static NameUses *
name_slot(RecorderCore *self, PyObject *name, int to_take)
{
    Py_hash_t hash = PyObject_Hash(name);
    if (hash == -1) return NULL;
    uint64_t key = hash == 0 ? 1 : (uint64_t)hash;  /* 0 marks an empty slot */
    if (self->name_uses == NULL
        || (to_take && 2 * (self->name_uses_count + 1) > self->name_uses_mask + 1)) {
        if (name_uses_grow(self) < 0) return NULL;
    }
    uint64_t mask = (uint64_t)self->name_uses_mask;
    uint64_t at = key & mask;
    NameUses *table = self->name_uses;
    while (table[at].key != 0 && table[at].key != key) at = (at + 1) & mask;
    if (to_take && table[at].key == 0) {
        table[at].key = key;
        self->name_uses_count++;
    }
    return &table[at];
}

/* One more lane takes `name`: how many lanes have taken it, this one included, in *uses. */
static int
recorder_take_name(RecorderCore *self, PyObject *name, uint64_t *uses)
{
    NameUses *slot = name_slot(self, name, 1);
    if (slot == NULL) return -1;
    *uses = ++slot->uses;
    return 0;
}

/* Whether a lane has taken `name`: 1, 0, or -1 on error. */
static int
recorder_name_taken(RecorderCore *self, PyObject *name)
{
    NameUses *slot = name_slot(self, name, 0);
    return slot == NULL ? -1 : slot->key != 0;
}

/* The name a lane taking `name` is shown by (a new reference): `name`, or "name #N" when
 * N - 1 lanes took it before, N the first number whose name no lane has taken either. */
static PyObject *
recorder_unique_name(RecorderCore *self, PyObject *name)
{
    /* a lane showing the same task number counts as one taking the name before */
    uint64_t uses, before = 0;
    int64_t number = task_number_shown(name);
    if (number >= 0) {
        int shown = task_number_take(self, number);
        if (shown <= 0) return shown < 0 ? NULL : Py_NewRef(name);
        before = 1;
    }
    if (recorder_take_name(self, name, &uses) < 0) return NULL;
    uses += before;
    if (uses == 1) return Py_NewRef(name);
    for (;;) {
        PyObject *numbered = PyUnicode_FromFormat("%U #%llu", name, (unsigned long long)uses);
        if (numbered == NULL) return NULL;
        int taken = recorder_name_taken(self, numbered);
        uint64_t numbered_uses;
        if (taken == 0 && recorder_take_name(self, numbered, &numbered_uses) == 0) {
            return numbered;
        }
        Py_DECREF(numbered);
        if (taken != 1) return NULL;  /* an error, while looking or taking */
        /* a lane has that name already (the program named it so): the next number */
        if (recorder_take_name(self, name, &uses) < 0) return NULL;
        uses += before;
    }
}

static PyObject *
recorder_unique_name_method(RecorderCore *self, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "a lane's name must be a str");
        return NULL;
    }
    return recorder_unique_name(self, name);
}

/* Recorder.spawn with the lane's detail a value row on `base`: the new lane in *lane and its
 * name in *named (a new reference: recorder_unique_name's). */
int
recorder_spawn(RecorderCore *self, PyObject *name, int32_t base, int32_t parent,
               int32_t source, int32_t *lane, PyObject **named)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "a lane's name must be a str");
        return -1;
    }
    if (self->lane_count == INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more lanes than a lane id can name");
        return -1;
    }
    PyObject *unique = recorder_unique_name(self, name);
    if (unique == NULL) return -1;
    int32_t detail;
    if (recorder_value_row(self, base, unique, &detail) < 0) {
        Py_DECREF(unique);
        return -1;
    }
    int32_t spawned = self->lane_count++;
    if (recorder_append(self, spawned, CODE_SPAWN, parent, detail, source) < 0) {
        Py_DECREF(unique);
        return -1;
    }
    *lane = spawned;
    *named = unique;
    return 0;
}

/* Recorder.detail: the interned index of a detail tuple in *index, a new row when it is new.
 * In C because a program that sleeps gives every sleep a detail of its own (its deadline):
 * interning it from C costs no Python call. */
int
recorder_detail(RecorderCore *self, PyObject *detail, int32_t *index)
{
    PyObject *details = self->details, *rows = self->detail_rows;
    if (details == NULL || !PyDict_Check(details) || rows == NULL || !PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "the recorder's _details must be a dict, "
                        "its _detail_rows a list");
        return -1;
    }
    PyObject *known = PyDict_GetItemWithError(details, detail);  /* borrowed */
    if (known != NULL) return as_int32(known, index);
    if (PyErr_Occurred()) return -1;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (count >= VALUE_ROW) {
        PyErr_SetString(PyExc_OverflowError,
                        "more interned details than the detail column can name");
        return -1;
    }
    PyObject *number = PyLong_FromSsize_t(count);
    int failed = number == NULL || PyDict_SetItem(details, detail, number) < 0
        || PyList_Append(rows, detail) < 0;
    Py_XDECREF(number);
    if (failed) return -1;
    *index = (int32_t)count;
    return 0;
}

/* Recorder.unique_detail: a new row for a detail that cannot have been interned before (a
 * sleep's, which holds its deadline), its index in *index. Not kept for interning, and
 * forgotten once a flush has sent it (_forget_unique_rows): a program that sleeps 50,000
 * times does not keep 50,000 tuples alive for the collector to count and walk. */
int
recorder_unique_detail(RecorderCore *self, PyObject *detail, int32_t *index)
{
    PyObject *rows = self->detail_rows;
    if (rows == NULL || !PyList_Check(rows) || !PyTuple_Check(detail)) {
        PyErr_SetString(PyExc_TypeError, "unique_detail needs a tuple and _detail_rows a list");
        return -1;
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (count >= VALUE_ROW) {
        PyErr_SetString(PyExc_OverflowError,
                        "more interned details than the detail column can name");
        return -1;
    }
    if (self->unique_count == self->unique_capacity) {
        Py_ssize_t capacity = self->unique_capacity ? self->unique_capacity * 2 : 256;
        int32_t *grown = PyMem_Realloc(self->unique_rows, capacity * sizeof(int32_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->unique_rows = grown;
        self->unique_capacity = capacity;
    }
    if (PyList_Append(rows, detail) < 0) return -1;
    self->unique_rows[self->unique_count++] = (int32_t)count;
    *index = (int32_t)count;
    return 0;
}

static PyObject *
recorder_unique_detail_method(RecorderCore *self, PyObject *detail)
{
    int32_t index;
    if (recorder_unique_detail(self, detail, &index) < 0) return NULL;
    return PyLong_FromLong(index);
}

/* The unique rows sent by now are None in _detail_rows from here on. */
static PyObject *
recorder_forget_unique_rows(RecorderCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *rows = self->detail_rows;
    if (rows == NULL || !PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "_detail_rows must be a list");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->unique_count; i++) {
        Py_ssize_t row = self->unique_rows[i];
        if (row < PyList_GET_SIZE(rows)
            && PyList_SetItem(rows, row, Py_NewRef(Py_None)) < 0) {
            return NULL;
        }
    }
    self->unique_count = 0;
    Py_RETURN_NONE;
}

static PyObject *
recorder_detail_method(RecorderCore *self, PyObject *detail)
{
    int32_t index;
    if (recorder_detail(self, detail, &index) < 0) return NULL;
    return PyLong_FromLong(index);
}

/* The clock reading events are stamped with (not yet relative to the recorder's origin). */
int
recorder_read_clock(RecorderCore *self, int64_t *now)
{
    return recorder_now(self, now);
}

static void
recorder_dealloc(RecorderCore *self)
{
    PyObject_GC_UnTrack(self);
    recorder_clear(self);
#define FREE_COLUMN(field, type) PyMem_Free(self->field);
    RECORDER_COLUMNS(FREE_COLUMN)
#undef FREE_COLUMN
    PyMem_Free(self->value_base);
    PyMem_Free(self->value_length);
    PyMem_Free(self->value_texts);
    PyMem_Free(self->unique_rows);
    PyMem_Free(self->name_uses);
    PyMem_Free(self->task_numbers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
recorder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    RecorderCore *self = (RecorderCore *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->current = NO_LANE;
    self->limit = PY_SSIZE_T_MAX;
    /* the table starts with the empty detail, NO_DETAIL */
    PyObject *empty = PyTuple_New(0);
    PyObject *zero = PyLong_FromLong(0);  /* NO_DETAIL */
    self->details = PyDict_New();
    self->detail_rows = empty == NULL ? NULL : PyList_New(0);
    int failed = empty == NULL || zero == NULL || self->details == NULL
        || self->detail_rows == NULL || PyDict_SetItem(self->details, empty, zero) < 0
        || PyList_Append(self->detail_rows, empty) < 0;
    Py_XDECREF(empty);
    Py_XDECREF(zero);
    if (failed) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMethodDef recorder_methods[] = {
    {"record", (PyCFunction)(void (*)(void))recorder_record, METH_FASTCALL | METH_KEYWORDS,
     "record(lane, code, other=-1, detail=0, source=0): one event, timed now."},
    {"record_same_instant", (PyCFunction)(void (*)(void))recorder_record_same_instant,
     METH_FASTCALL | METH_KEYWORDS,
     "record_same_instant(lane, code, other=-1, detail=0, source=0): one event, timed as the "
     "one before it while that is pending."},
    {"handoff", (PyCFunction)(void (*)(void))recorder_handoff, METH_FASTCALL,
     "handoff(origin, target, switch_detail, origin_state, origin_detail, target_source)"},
    {"_take", (PyCFunction)recorder_take, METH_O,
     "_take(origin): the pending events as six columns; the buffer empties."},
    {"value_row", (PyCFunction)(void (*)(void))recorder_value_row_method, METH_FASTCALL,
     "value_row(base, text): a new value row (detail base plus the value text); its index."},
    {"_take_values", (PyCFunction)recorder_take_values, METH_NOARGS,
     "_take_values(): the pending value rows as one section; b'' when there are none."},
    {"_pending_count", (PyCFunction)recorder_pending_count, METH_NOARGS, NULL},
    {"_last_event", (PyCFunction)recorder_last_event, METH_NOARGS,
     "(code, lane) of the last pending event."},
    {"_set_clock", (PyCFunction)recorder_set_clock, METH_O, NULL},
    {"detail", (PyCFunction)recorder_detail_method, METH_O,
     "detail(detail): the interned index of a detail tuple."},
    {"unique_detail", (PyCFunction)recorder_unique_detail_method, METH_O,
     "unique_detail(detail): a new row for a detail no other event has; its index."},
    {"_unique_name", (PyCFunction)recorder_unique_name_method, METH_O,
     "_unique_name(name): the name a new lane taking it is shown by (\"name #N\" if taken)."},
    {"_forget_unique_rows", (PyCFunction)recorder_forget_unique_rows, METH_NOARGS,
     "_forget_unique_rows(): the unique rows sent by now become None."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef recorder_members[] = {
    {"current", T_INT, offsetof(RecorderCore, current), 0,
     "The lane whose code is executing now."},
    {"_limit", T_PYSSIZET, offsetof(RecorderCore, limit), 0,
     "_limit_reached() runs when this many events are pending (0: at the next event)."},
    {"_lane_count", T_INT, offsetof(RecorderCore, lane_count), 0,
     "How many lanes have been spawned."},
    {"_details", T_OBJECT, offsetof(RecorderCore, details), 0,
     "detail tuple -> its interned index (Recorder.detail)."},
    {"_detail_rows", T_OBJECT, offsetof(RecorderCore, detail_rows), 0,
     "The interned detail tuples in index order."},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject RecorderCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.tracer._speedups.RecorderCore",
    .tp_basicsize = sizeof(RecorderCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The recorder's event buffer: C columns, a C clock, a flush threshold.",
    .tp_new = recorder_new,
    .tp_dealloc = (destructor)recorder_dealloc,
    .tp_traverse = (traverseproc)recorder_traverse,
    .tp_clear = (inquiry)recorder_clear,
    .tp_methods = recorder_methods,
    .tp_members = recorder_members,
};

/* -- the C API for other extensions (tracer._handoffs) ------------------------------------ */

/* LoopscopeRecorderAPI (loopscope.h): the table other extensions record through. */

static int
api_append(PyObject *core, int32_t lane, int8_t code, int32_t other, int32_t detail,
           int32_t source)
{
    return recorder_append((RecorderCore *)core, lane, code, other, detail, source);
}

static int
api_handoff(PyObject *core, int32_t origin, int32_t target, int32_t switch_detail,
            int8_t origin_state, int32_t origin_detail, int32_t target_source)
{
    RecorderCore *self = (RecorderCore *)core;
    while (self->count + 3 > self->capacity) {
        if (recorder_grow(self) < 0) return -1;
    }
    int64_t now;
    if (recorder_now(self, &now) < 0) return -1;
    recorder_put_handoff(self, now, origin, target, switch_detail, origin_state, origin_detail,
                         target_source);
    return recorder_after_append(self);
}

static void
api_set_current(PyObject *core, int32_t lane)
{
    ((RecorderCore *)core)->current = lane;
}

static int32_t
api_get_current(PyObject *core)
{
    return ((RecorderCore *)core)->current;
}

static int
api_value_row(PyObject *core, int32_t base, PyObject *text, int32_t *out)
{
    return recorder_value_row((RecorderCore *)core, base, text, out);
}

static int
api_value_row_utf8(PyObject *core, int32_t base, const char *text, Py_ssize_t size,
                   int32_t *out)
{
    return recorder_value_row_utf8((RecorderCore *)core, base, text, size, out);
}

static int
api_spawn(PyObject *core, PyObject *name, int32_t base, int32_t parent, int32_t source,
          int32_t *lane, PyObject **named)
{
    return recorder_spawn((RecorderCore *)core, name, base, parent, source, lane, named);
}

LoopscopeRecorderAPI recorder_api = {
    RECORDER_API_VERSION, &RecorderCoreType, api_append, api_handoff, api_set_current, api_get_current,
    api_value_row, api_value_row_utf8, api_spawn,
};

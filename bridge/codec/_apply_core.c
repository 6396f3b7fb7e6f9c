/* apply's compiled screen: a whole fetched batch of change records checked on their text and
 * turned into events in one call (bridge/apply/screening.py, `Screen.check_batch`).
 *
 * The reference is the Python text path, `Screen._text_check`, with its checks in
 * bridge/codec/image_text.py (`KeyShape.canonical_values`, `KeyShape.image_keys`,
 * `image_ok`). For each record this answers either (event, Kafka key), exactly what that path
 * answers, or None: "take the Python path", which then decides and names any problem. It
 * never refuses a record itself, so a dead letter reads the same with or without it, and it
 * may answer None where the Python text path would have admitted (it is stricter in a few
 * corners: a Kafka key spelt otherwise than the envelope's keys, objects of more than
 * MAX_MEMBERS names). tests/contracts/test_fast_slow.py holds it to that over hypothesis
 * input.
 *
 * Why in C: on the text path the checks were compiled regular expressions plus an orjson
 * round trip per image to prove its names unique, ~10 µs of a record's ~15 in the batch step;
 * here one pass over the bytes does both. The envelope is still read by the codec's text
 * decoder (the producer core's `decode_text`) and the event built by the core's `build_event`
 * (bridge/codec/_core.c), called through the function objects given, so those stay in one
 * place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* image_text.DEPTH: M/L levels the text path takes; deeper images take the parsing path. */
#define DEPTH 3
/* Names per object compared pairwise for duplicates; a larger object is left to Python. */
#define MAX_MEMBERS 256
#define MAX_NUMBER 38

static int configured;
static PyObject *build_event_fn, *event_cls, *pending, *op_remove;

typedef struct {
    const unsigned char *p, *end;
} Cursor;

typedef struct {
    const unsigned char *start;
    Py_ssize_t len;
} Span;

static int take(Cursor *c, const char *text, Py_ssize_t n)
{
    if (c->end - c->p < n || memcmp(c->p, text, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int take_char(Cursor *c, char ch)
{
    if (c->p >= c->end || *c->p != (unsigned char)ch) return 0;
    c->p++;
    return 1;
}

static int is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int is_b64(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

/* image_text._STR: a JSON string with simple escapes and \u escapes outside the surrogates. */
static int string(Cursor *c)
{
    if (!take_char(c, '"')) return 0;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') { c->p++; return 1; }
        if (ch < 0x20) return 0;
        if (ch != '\\') { c->p++; continue; }
        if (c->end - c->p < 2) return 0;
        unsigned char e = c->p[1];
        if (e == 'u') {
            if (c->end - c->p < 6) return 0;
            const unsigned char *h = c->p + 2;
            if (!is_hex(h[0]) || !is_hex(h[1]) || !is_hex(h[2]) || !is_hex(h[3])) return 0;
            if ((h[0] == 'd' || h[0] == 'D') && !(h[1] >= '0' && h[1] <= '7')) return 0;
            c->p += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
            c->p += 2;
        } else {
            return 0;
        }
    }
    return 0;
}

/* image_text._NAME: a name without escapes; its span includes the quotes. */
static int name(Cursor *c, Span *out)
{
    const unsigned char *start = c->p;
    if (!take_char(c, '"')) return 0;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            out->start = start;
            out->len = c->p - start;
            return 1;
        }
        if (ch < 0x20 || ch == '\\') return 0;
        c->p++;
    }
    return 0;
}

/* The content between quotes: [start, end) up to the closing quote (no escapes in it). */
static int quoted(Cursor *c, const unsigned char **start, const unsigned char **stop)
{
    if (!take_char(c, '"')) return 0;
    const unsigned char *q = memchr(c->p, '"', c->end - c->p);
    if (q == NULL) return 0;
    *start = c->p;
    *stop = q;
    c->p = q + 1;
    return 1;
}

/* image_text._NUM: 1-38 characters of [-.0-9]; -?(digits .? digits* | . digits+). */
static int number(Cursor *c)
{
    const unsigned char *s, *e;
    if (!quoted(c, &s, &e)) return 0;
    Py_ssize_t n = e - s;
    if (n < 1 || n > MAX_NUMBER) return 0;
    const unsigned char *p = s;
    if (*p == '-') p++;
    const unsigned char *digits = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    if (p > digits) {
        if (p < e && *p == '.') p++;
        while (p < e && *p >= '0' && *p <= '9') p++;
    } else {
        if (p >= e || *p != '.') return 0;
        p++;
        const unsigned char *fraction = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == fraction) return 0;
    }
    return p == e;
}

/* image_text._B64 (empty allowed): whole groups of four, the last one padded as base64 pads. */
static int base64_body(const unsigned char *s, const unsigned char *e)
{
    Py_ssize_t n = e - s;
    if (n % 4) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_b64(s[i])) continue;
        /* '=' only as the last one or two characters of the last group, after two b64 */
        if (s[i] != '=' || i < n - 2) return 0;
        if (i == n - 2 && s[n - 1] != '=') return 0;
    }
    return 1;
}

static int binary(Cursor *c)
{
    const unsigned char *s, *e;
    return quoted(c, &s, &e) && base64_body(s, e);
}

typedef int (*Element)(Cursor *);

/* `[` elements separated by commas `]`, none allowed (image_text._list). */
static int list_of(Cursor *c, Element element)
{
    if (!take_char(c, '[')) return 0;
    if (take_char(c, ']')) return 1;
    for (;;) {
        if (!element(c)) return 0;
        if (take_char(c, ']')) return 1;
        if (!take_char(c, ',')) return 0;
    }
}

static int members(Cursor *c, int depth, const Span *keys, Py_ssize_t n_keys, Span *captured);

/* One attribute value (image_text._nested of the scalars, DEPTH levels). `*scalar` tells
 * whether it was one of the scalar forms (what a key attribute's value must be). */
static int value(Cursor *c, int depth, int *scalar)
{
    *scalar = 1;
    if (!take(c, "{\"", 2)) return 0;
    const unsigned char *tag = c->p;
    const unsigned char *q = memchr(tag, '"', c->end - tag);
    if (q == NULL || q + 1 >= c->end || q[1] != ':') return 0;
    Py_ssize_t n = q - tag;
    c->p = q + 2;
    int ok;
    if (n == 1 && tag[0] == 'S') ok = string(c);
    else if (n == 1 && tag[0] == 'N') ok = number(c);
    else if (n == 1 && tag[0] == 'B') ok = binary(c);
    else if (n == 4 && memcmp(tag, "BOOL", 4) == 0) ok = take(c, "true", 4) || take(c, "false", 5);
    else if (n == 4 && memcmp(tag, "NULL", 4) == 0) ok = take(c, "true", 4);
    else if (n == 2 && memcmp(tag, "SS", 2) == 0) ok = list_of(c, string);
    else if (n == 2 && memcmp(tag, "NS", 2) == 0) ok = list_of(c, number);
    else if (n == 2 && memcmp(tag, "BS", 2) == 0) ok = list_of(c, binary);
    else if (n == 1 && (tag[0] == 'M' || tag[0] == 'L') && depth < DEPTH) {
        *scalar = 0;
        if (tag[0] == 'M') {
            ok = members(c, depth + 1, NULL, 0, NULL);
        } else {
            ok = 0;
            if (take_char(c, '[')) {
                if (take_char(c, ']')) {
                    ok = 1;
                } else {
                    int inner;
                    for (;;) {
                        if (!value(c, depth + 1, &inner)) break;
                        if (take_char(c, ']')) { ok = 1; break; }
                        if (!take_char(c, ',')) break;
                    }
                }
            }
        }
    } else {
        return 0;
    }
    return ok && take_char(c, '}');
}

/* An object of attributes `{"name":value,...}`, no name twice (the parsing path refuses a
 * repeated name: json_names). At the top level (`keys` given), the value text of each member
 * named keys[i] (the name with its quotes) goes to captured[i]; it must be a scalar. */
static int members(Cursor *c, int depth, const Span *keys, Py_ssize_t n_keys, Span *captured)
{
    Span names[MAX_MEMBERS];
    Py_ssize_t count = 0;
    if (!take_char(c, '{')) return 0;
    if (take_char(c, '}')) return 1;
    for (;;) {
        Span nm;
        if (!name(c, &nm) || !take_char(c, ':')) return 0;
        if (count == MAX_MEMBERS) return 0;
        for (Py_ssize_t i = 0; i < count; i++)
            if (names[i].len == nm.len && memcmp(names[i].start, nm.start, nm.len) == 0) return 0;
        names[count++] = nm;
        const unsigned char *start = c->p;
        int scalar;
        if (!value(c, depth, &scalar)) return 0;
        for (Py_ssize_t k = 0; k < n_keys; k++) {
            if (keys[k].len == nm.len && memcmp(keys[k].start, nm.start, nm.len) == 0) {
                if (!scalar) return 0;
                captured[k].start = start;
                captured[k].len = c->p - start;
            }
        }
        if (take_char(c, '}')) return 1;
        if (!take_char(c, ',')) return 0;
    }
}

/* Valid UTF-8, as bytes.decode("utf-8") decides it (only asked of non-ASCII text). */
static int utf8_ok(const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] >= 0x80) {
            PyObject *u = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
            if (u == NULL) { PyErr_Clear(); return 0; }
            Py_DECREF(u);
            return 1;
        }
    }
    return 1;
}

/* image_text.image_ok: the whole text is one item the parsing path accepts. */
static int image_ok(PyObject *text)
{
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(text);
    Py_ssize_t n = PyBytes_GET_SIZE(text);
    Cursor c = {s, s + n};
    return members(&c, 0, NULL, 0, NULL) && c.p == c.end && utf8_ok(s, n);
}

static Py_ssize_t occurrences(const unsigned char *s, Py_ssize_t n, const unsigned char *needle,
                              Py_ssize_t m)
{
    Py_ssize_t count = 0;
    const unsigned char *p = s, *end = s + n;
    while (end - p >= m) {
        const unsigned char *hit = memchr(p, needle[0], end - p - m + 1);
        if (hit == NULL) break;
        if (memcmp(hit, needle, m) == 0) { count++; p = hit + m; }
        else p = hit + 1;
    }
    return count;
}

/* A table's key schema, from Python: a tuple of (name as orjson writes it, type tag as orjson
 * writes it, 'S' | 'N' | 'B'), in the order canonical_key writes them (sorted names). */
#define MAX_KEYS 2

typedef struct {
    Py_ssize_t n;
    Span name[MAX_KEYS], tag[MAX_KEYS];
    char type[MAX_KEYS];
} Shape;

static int read_shape(PyObject *tuple, Shape *shape)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < 1 || PyTuple_GET_SIZE(tuple) > MAX_KEYS)
        return 0;
    shape->n = PyTuple_GET_SIZE(tuple);
    for (Py_ssize_t i = 0; i < shape->n; i++) {
        PyObject *entry = PyTuple_GET_ITEM(tuple, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) return 0;
        PyObject *nm = PyTuple_GET_ITEM(entry, 0), *tag = PyTuple_GET_ITEM(entry, 1);
        PyObject *type = PyTuple_GET_ITEM(entry, 2);
        if (!PyBytes_Check(nm) || !PyBytes_Check(tag) || !PyUnicode_Check(type) ||
            PyUnicode_GET_LENGTH(type) != 1)
            return 0;
        shape->name[i].start = (const unsigned char *)PyBytes_AS_STRING(nm);
        shape->name[i].len = PyBytes_GET_SIZE(nm);
        shape->tag[i].start = (const unsigned char *)PyBytes_AS_STRING(tag);
        shape->tag[i].len = PyBytes_GET_SIZE(tag);
        Py_UCS4 t = PyUnicode_READ_CHAR(type, 0);
        if (t != 'S' && t != 'N' && t != 'B') return 0;
        shape->type[i] = (char)t;
    }
    return 1;
}

/* image_text._KEY_VALUE: a key value as attrs.canonical_key writes it. */
static int key_value(Cursor *c, char type)
{
    const unsigned char *s, *e;
    if (type == 'S') {
        if (!take_char(c, '"')) return 0;
        const unsigned char *start = c->p;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p < 0x20 || *c->p == '\\') return 0;
            c->p++;
        }
        return c->p > start && take_char(c, '"');
    }
    if (!quoted(c, &s, &e)) return 0;
    Py_ssize_t n = e - s;
    if (type == 'B') return n > 0 && base64_body(s, e);
    /* N: (?=[-.0-9]{1,38}")(?!-0")-?(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])? */
    if (n < 1 || n > MAX_NUMBER || (n == 2 && s[0] == '-' && s[1] == '0')) return 0;
    const unsigned char *p = s;
    if (*p == '-') p++;
    if (p >= e) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') { while (p < e && *p >= '0' && *p <= '9') p++; }
    else return 0;
    if (p == e) return 1;
    if (*p != '.') return 0;
    p++;
    const unsigned char *fraction = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    return p == e && p > fraction && e[-1] != '0';
}

/* KeyShape.canonical_values: the Kafka key is canonical_key of a key of this schema; each
 * key attribute's value text (`{"S":"a"}`) in values[i], in the shape's (sorted) order. */
static int canonical_values(const unsigned char *s, Py_ssize_t n, const Shape *shape, Span *values)
{
    Cursor c = {s, s + n};
    if (!take_char(&c, '{')) return 0;
    for (Py_ssize_t i = 0; i < shape->n; i++) {
        if (i && !take_char(&c, ',')) return 0;
        if (!take(&c, (const char *)shape->name[i].start, shape->name[i].len) || !take_char(&c, ':'))
            return 0;
        const unsigned char *start = c.p;
        if (!take_char(&c, '{') ||
            !take(&c, (const char *)shape->tag[i].start, shape->tag[i].len) ||
            !take_char(&c, ':') || !key_value(&c, shape->type[i]) || !take_char(&c, '}'))
            return 0;
        values[i].start = start;
        values[i].len = c.p - start;
    }
    return take_char(&c, '}') && c.p == c.end;
}

/* KeyShape.image_keys == values: the new image is image_ok, each key attribute occurs in it
 * exactly once, at the top level, as a scalar spelt as in the canonical key. */
static int image_holds_keys(PyObject *text, const Shape *shape, const Span *values)
{
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(text);
    Py_ssize_t n = PyBytes_GET_SIZE(text);
    Span needles[MAX_KEYS], captured[MAX_KEYS];
    unsigned char buffer[MAX_KEYS][256];
    for (Py_ssize_t i = 0; i < shape->n; i++) {
        Py_ssize_t m = shape->name[i].len;
        if (m + 1 > (Py_ssize_t)sizeof buffer[i]) return 0;
        memcpy(buffer[i], shape->name[i].start, m);
        buffer[i][m] = ':';
        if (occurrences(s, n, buffer[i], m + 1) != 1) return 0;
        needles[i] = shape->name[i];
        captured[i].start = NULL;
    }
    Cursor c = {s, s + n};
    if (!members(&c, 0, needles, shape->n, captured) || c.p != c.end || !utf8_ok(s, n)) return 0;
    for (Py_ssize_t i = 0; i < shape->n; i++) {
        if (captured[i].start == NULL || captured[i].len != values[i].len ||
            memcmp(captured[i].start, values[i].start, values[i].len) != 0)
            return 0;
    }
    return 1;
}

/* One record: (event, Kafka key) or None (Py_None, a new reference); NULL only on a failure
 * to allocate or a broken configuration. */
typedef struct {
    PyObject *topics, *prefix, *decode_at, *decode;
} Decoding;

/* EventCodec.decode_text(value): the text decoder at `decode_at(value, len(prefix))` for the
 * usual single-object framing, else the codec's own (other framings). */
static PyObject *decode_parts(PyObject *value, const Decoding *how)
{
    Py_ssize_t m = PyBytes_GET_SIZE(how->prefix);
    if (PyBytes_GET_SIZE(value) >= m &&
        memcmp(PyBytes_AS_STRING(value), PyBytes_AS_STRING(how->prefix), m) == 0) {
        PyObject *start = PyLong_FromSsize_t(m);
        if (start == NULL) return NULL;
        PyObject *args[2] = {value, start};
        PyObject *parts = PyObject_Vectorcall(how->decode_at, args, 2, NULL);
        Py_DECREF(start);
        return parts;
    }
    return PyObject_Vectorcall(how->decode, &value, 1, NULL);
}

static PyObject *screen_one(PyObject *rec, const Decoding *how)
{
    PyObject *topics = how->topics;
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) < 5) Py_RETURN_NONE;
    PyObject *topic = PyTuple_GET_ITEM(rec, 0), *key = PyTuple_GET_ITEM(rec, 3);
    PyObject *value = PyTuple_GET_ITEM(rec, 4);
    if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) Py_RETURN_NONE;
    PyObject *entry = PyDict_GetItemWithError(topics, topic);
    if (entry == NULL) {
        if (PyErr_Occurred()) PyErr_Clear();
        Py_RETURN_NONE;
    }
    Shape shape;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !read_shape(PyTuple_GET_ITEM(entry, 1), &shape))
        Py_RETURN_NONE;
    PyObject *table = PyTuple_GET_ITEM(entry, 0);

    Span values[MAX_KEYS];
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(key);
    if (!canonical_values(k, PyBytes_GET_SIZE(key), &shape, values)) Py_RETURN_NONE;

    PyObject *parts = decode_parts(value, how);
    if (parts == NULL) return NULL;
    PyObject *result = NULL;
    if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 13) goto defer;
    /* table, op, origin, version, keys, keys_text, new_text, old_text, shard_id,
     * sequence_number, event_id, created, ttl_expired */
    PyObject *t = PyTuple_GET_ITEM(parts, 0), *op = PyTuple_GET_ITEM(parts, 1);
    PyObject *keys_text = PyTuple_GET_ITEM(parts, 5);
    PyObject *new_text = PyTuple_GET_ITEM(parts, 6), *old_text = PyTuple_GET_ITEM(parts, 7);
    int same = PyUnicode_Check(t) ? PyUnicode_Compare(t, table) : -1;
    if (same != 0) { PyErr_Clear(); goto defer; }
    /* The text path compares a differently spelt Kafka key to the keys parsed; left to it. */
    if (!PyBytes_CheckExact(keys_text) || PyBytes_GET_SIZE(keys_text) != PyBytes_GET_SIZE(key) ||
        memcmp(PyBytes_AS_STRING(keys_text), k, PyBytes_GET_SIZE(key)) != 0)
        goto defer;
    if (new_text == Py_None) {
        if (op != op_remove) goto defer;
    } else if (!PyBytes_CheckExact(new_text) || !image_holds_keys(new_text, &shape, values)) {
        goto defer;
    }
    if (old_text != Py_None && (!PyBytes_CheckExact(old_text) || !image_ok(old_text))) goto defer;

    PyObject *fields[16] = {
        event_cls,
        t,
        op,
        PyTuple_GET_ITEM(parts, 4), /* keys */
        PyTuple_GET_ITEM(parts, 3), /* version */
        PyTuple_GET_ITEM(parts, 2), /* origin */
        new_text == Py_None ? Py_None : pending,
        old_text == Py_None ? Py_None : pending,
        PyTuple_GET_ITEM(parts, 8),
        PyTuple_GET_ITEM(parts, 9),
        PyTuple_GET_ITEM(parts, 10),
        PyTuple_GET_ITEM(parts, 11),
        PyTuple_GET_ITEM(parts, 12),
        new_text,
        old_text,
        Py_None,
    };
    PyObject *event = PyObject_Vectorcall(build_event_fn, fields, 16, NULL);
    if (event == NULL) goto done;
    result = PyTuple_Pack(2, event, key);
    Py_DECREF(event);
    goto done;
defer:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_DECREF(parts);
    return result;
}

/* screen_batch(records, topics, prefix, decode_at, decode): for each record (a RawRecord:
 * topic, partition, offset, key, value, ...) its (event, Kafka key) or None, in a list.
 * `topics` maps a topic to (its table, the table's key shape: see read_shape); a topic not in
 * it gives None. The envelope is read as EventCodec.decode_text reads it: `decode_at(value,
 * len(prefix))` for a value framed with `prefix`, else `decode(value)`. */
static PyObject *py_screen_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_apply_core.configure() not called"); return NULL; }
    if (nargs != 5 || !PyList_Check(args[0]) || !PyDict_Check(args[1]) ||
        !PyBytes_CheckExact(args[2]) || !PyCallable_Check(args[3]) || !PyCallable_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "screen_batch(records: list, topics: dict, prefix: bytes, decode_at, decode)");
        return NULL;
    }
    PyObject *records = args[0];
    Decoding how = {args[1], args[2], args[3], args[4]};
    Py_ssize_t n = PyList_GET_SIZE(records);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *verdict = screen_one(PyList_GET_ITEM(records, i), &how);
        if (verdict == NULL) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, verdict);
    }
    return out;
}

/* image_ok(text): image_text.image_ok's answer where it is True; False may also mean "not
 * certain here" (an object of more than MAX_MEMBERS names). For the tests. */
static PyObject *py_image_ok(PyObject *self, PyObject *text)
{
    if (!PyBytes_CheckExact(text)) Py_RETURN_FALSE;
    return PyBool_FromLong(image_ok(text));
}

/* configure(build_event, TextImageEvent, PENDING, Op.REMOVE) */
static PyObject *py_configure(PyObject *self, PyObject *args)
{
    PyObject *build, *cls, *pend, *remove;
    if (!PyArg_ParseTuple(args, "OOOO", &build, &cls, &pend, &remove)) return NULL;
    if (!PyCallable_Check(build) || !PyType_Check(cls)) {
        PyErr_SetString(PyExc_ValueError, "configure(build_event, event class, PENDING, Op.REMOVE)");
        return NULL;
    }
    Py_INCREF(build); Py_XSETREF(build_event_fn, build);
    Py_INCREF(cls); Py_XSETREF(event_cls, cls);
    Py_INCREF(pend); Py_XSETREF(pending, pend);
    Py_INCREF(remove); Py_XSETREF(op_remove, remove);
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS, "configure(build_event, TextImageEvent, PENDING, Op.REMOVE)"},
    {"screen_batch", (PyCFunction)(void (*)(void))py_screen_batch, METH_FASTCALL, "Each record's (event, Kafka key) from its text, or None."},
    {"image_ok", py_image_ok, METH_O, "image_text.image_ok, where it is certain."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_apply_core", NULL, -1, methods};

PyMODINIT_FUNC PyInit__apply_core(void)
{
    return PyModule_Create(&module);
}

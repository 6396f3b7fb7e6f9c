/* The compiled per-item core: DynamoDB item -> validated item -> canonical key bytes -> Avro
 * envelope body, in one call per export line, stream record or scanned item.
 *
 * The Python implementation (bridge/model/attrs.py, bridge/model/event.py,
 * bridge/codec/envelope.py and the readers) is the reference. Every function here answers
 * either with exactly what the reference makes of its input, or with None, meaning "take the
 * reference path": that path then decides, and names any problem. So the core never refuses
 * anything itself, and a refusal reads the same with or without it
 * (tests/contracts/test_fast_slow.py holds the two to this, byte for byte).
 *
 * JSON is parsed and written by orjson (called through its Python entry points, once per
 * item or image): its output is the reference's bytes by construction. What was Python here
 * is the walk over every attribute value, the key's canonical form, the envelope's Avro
 * encoding and the event's construction.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* DynamoDB nests documents at most 32 levels; attrs.MAX_NESTING refuses more than 64. */
#define MAX_NESTING 64
#define MAX_DIGITS 38
#define N_FIELDS 15

/* Set once by configure(). */
static PyObject *loads_fn, *dumps_fn, *sort_keys_opt, *event_type;
static PyObject *field_descr[N_FIELDS];
static PyObject *op_members[4], *origin_members[4];
static PyObject *ttl_principal;
static PyObject *s_S, *s_N, *s_B, *s_BOOL, *s_NULL, *s_SS, *s_NS, *s_BS, *s_L, *s_M;
static PyObject *s_Item, *s_dynamodb, *s_eventName, *s_Keys, *s_NewImage, *s_OldImage;
static PyObject *s_SequenceNumber, *s_eventID, *s_userIdentity, *s_Type, *s_PrincipalId;
static PyObject *s_Service, *s_ACDT, *s_INSERT, *s_MODIFY, *s_REMOVE, *s_option, *kw_option;
static int configured = 0;

/* Field order of ChangeEvent, as configure() checks it. */
static const char *FIELD_NAMES[N_FIELDS] = {
    "table", "op", "keys", "version", "origin", "new_image", "old_image", "shard_id",
    "sequence_number", "event_id", "approximate_creation_time_ms", "ttl_expired",
    "new_image_json", "old_image_json", "encoded",
};
enum { F_TABLE, F_OP, F_KEYS, F_VERSION, F_ORIGIN, F_NEW, F_OLD, F_SHARD, F_SEQ, F_EID,
       F_CREATED, F_TTL, F_NEW_JSON, F_OLD_JSON, F_ENCODED };
enum { OP_INSERT, OP_MODIFY, OP_REMOVE, OP_SNAPSHOT };
enum { ORIGIN_STREAM, ORIGIN_SCAN, ORIGIN_EXPORT, ORIGIN_INCREMENTAL };

/* Walk results: OK, DEFER (ask the reference; no exception set), FAIL (exception set). */
#define OK 0
#define DEFER 1
#define FAIL (-1)

/* What an entry point answers where it is not certain (or failed): None, any error cleared,
   so that the Python implementation decides (a new reference). */
static PyObject *deferred(void)
{
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* -- numbers ------------------------------------------------------------------------------ */

/* attrs._PLAIN: -?(?:[0-9]+\.?[0-9]*|\.[0-9]+) over the whole text. */
static int plain_number(const char *s, Py_ssize_t n, int *has_minus, int *has_point)
{
    Py_ssize_t i = 0, digits = 0;
    *has_minus = *has_point = 0;
    if (i < n && s[i] == '-') { *has_minus = 1; i++; }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) digits++;
    if (i < n && s[i] == '.') {
        *has_point = 1;
        i++;
        Py_ssize_t after = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) after++;
        if (digits == 0 && after == 0) return 0;
    } else if (digits == 0) {
        return 0;
    }
    return i == n;
}

/* attrs.is_short_number: a plain number of at most 38 digits (valid by its form alone). */
static int short_number_bytes(const char *s, Py_ssize_t n)
{
    int minus, point;
    if (n > MAX_DIGITS + 2 || !plain_number(s, n, &minus, &point)) return 0;
    return n <= MAX_DIGITS || n - minus - point <= MAX_DIGITS;
}

static int short_number(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) return 0;
    return short_number_bytes((const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
}

/* attrs.normalize_number's fast path: already canonical (so its own normal form). */
static int canonical_number(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    if (n > MAX_DIGITS || n == 0) return 0;
    if (n == 2 && s[0] == '-' && s[1] == '0') return 0;
    if (s[i] == '-') i++;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {}
    } else {
        return 0;
    }
    if (i == n) return 1;
    if (s[i] != '.') return 0;
    i++;
    if (i >= n || s[n - 1] < '1' || s[n - 1] > '9') return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* -- base64 ------------------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static signed char B64_VALUE[256];

/* Base64 exactly as b64encode writes it (attrs._CANONICAL_B64): such text decodes and
 * re-encodes to itself, so every path keeps it as it is. */
static int canonical_b64_bytes(const unsigned char *s, Py_ssize_t n)
{
    if (n % 4) return 0;
    Py_ssize_t body = n;
    if (n && s[n - 1] == '=') body = (s[n - 2] == '=') ? n - 2 : n - 1;
    for (Py_ssize_t i = 0; i < body; i++)
        if (B64_VALUE[s[i]] < 0) return 0;
    if (body == n - 2) return (B64_VALUE[s[body - 1]] & 0x0F) == 0; /* 4 unused bits */
    if (body == n - 1) return (B64_VALUE[s[body - 1]] & 0x03) == 0; /* 2 unused bits */
    return 1;
}

static int canonical_b64(PyObject *text)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) return 0;
    return canonical_b64_bytes(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text));
}

static PyObject *b64encode(PyObject *value)
{
    Py_buffer view;
    if (!(PyBytes_CheckExact(value) || PyByteArray_CheckExact(value) || PyMemoryView_Check(value)))
        return NULL;
    if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) { PyErr_Clear(); return NULL; }
    Py_ssize_t n = view.len, out_len = 4 * ((n + 2) / 3);
    PyObject *out = PyUnicode_New(out_len, 127);
    if (out == NULL) { PyBuffer_Release(&view); return NULL; }
    unsigned char *d = PyUnicode_1BYTE_DATA(out);
    const unsigned char *s = view.buf;
    Py_ssize_t i = 0, j = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        d[j++] = B64[v >> 18]; d[j++] = B64[(v >> 12) & 63];
        d[j++] = B64[(v >> 6) & 63]; d[j++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        d[j++] = B64[v >> 18]; d[j++] = B64[(v >> 12) & 63]; d[j++] = '='; d[j++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        d[j++] = B64[v >> 18]; d[j++] = B64[(v >> 12) & 63]; d[j++] = B64[(v >> 6) & 63];
        d[j++] = '=';
    }
    PyBuffer_Release(&view);
    return out;
}

/* -- the walk over attribute values ------------------------------------------------------- */

static int is_number_text(PyObject *v) { return PyUnicode_CheckExact(v) && short_number(v); }

/* A type tag, read from its bytes (one switch instead of a chain of string comparisons). */
enum { T_S, T_N, T_B, T_BOOL, T_NULL, T_SS, T_NS, T_BS, T_L, T_M, T_OTHER };

static int tag_bytes(const char *c, Py_ssize_t n)
{
    switch (n) {
    case 1:
        switch (c[0]) {
        case 'S': return T_S;
        case 'N': return T_N;
        case 'B': return T_B;
        case 'L': return T_L;
        case 'M': return T_M;
        }
        return T_OTHER;
    case 2:
        if (c[1] != 'S') return T_OTHER;
        switch (c[0]) {
        case 'S': return T_SS;
        case 'N': return T_NS;
        case 'B': return T_BS;
        }
        return T_OTHER;
    case 4:
        if (memcmp(c, "BOOL", 4) == 0) return T_BOOL;
        if (memcmp(c, "NULL", 4) == 0) return T_NULL;
        return T_OTHER;
    }
    return T_OTHER;
}

static int tag_of(PyObject *tag)
{
    if (!PyUnicode_CheckExact(tag) || !PyUnicode_IS_ASCII(tag)) return T_OTHER;
    return tag_bytes((const char *)PyUnicode_1BYTE_DATA(tag), PyUnicode_GET_LENGTH(tag));
}

/* One attribute value of a parsed wire-form item (export line, GetRecords body). Accepts
 * only what attrs.validate and attrs.from_wire both accept unchanged; counts object members
 * as item_check.item_members does (names and type tags of maps, list elements). */
static int walk_value(PyObject *av, int depth, Py_ssize_t *members)
{
    if (!PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1) return DEFER;
    Py_ssize_t pos = 0;
    PyObject *tag, *value;
    PyDict_Next(av, &pos, &tag, &value);
    int t = tag_of(tag);
    if (t == T_S) return PyUnicode_CheckExact(value) ? OK : DEFER;
    if (t == T_N) return is_number_text(value) ? OK : DEFER;
    if (t == T_M) {
        if (!PyDict_CheckExact(value)) return DEFER;
        Py_ssize_t n = PyDict_GET_SIZE(value);
        if (n == 0) return OK;
        if (depth >= MAX_NESTING) return DEFER;
        *members += 2 * n;
        Py_ssize_t p = 0;
        PyObject *k, *v;
        while (PyDict_Next(value, &p, &k, &v)) {
            int r = walk_value(v, depth + 1, members);
            if (r != OK) return r;
        }
        return OK;
    }
    if (t == T_L) {
        if (!PyList_CheckExact(value)) return DEFER;
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (n == 0) return OK;
        if (depth >= MAX_NESTING) return DEFER;
        *members += n;
        for (Py_ssize_t i = 0; i < n; i++) {
            int r = walk_value(PyList_GET_ITEM(value, i), depth + 1, members);
            if (r != OK) return r;
        }
        return OK;
    }
    if (t == T_BOOL) return PyBool_Check(value) ? OK : DEFER;
    if (t == T_NULL) return value == Py_True ? OK : DEFER;
    if (t == T_B) return canonical_b64(value) ? OK : DEFER;
    int ss = t == T_SS, ns = t == T_NS, bs = t == T_BS;
    if (ss || ns || bs) {
        if (!PyList_CheckExact(value)) return DEFER;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            PyObject *v = PyList_GET_ITEM(value, i);
            if (ss ? !PyUnicode_CheckExact(v) : ns ? !is_number_text(v) : !canonical_b64(v))
                return DEFER;
        }
        return OK;
    }
    return DEFER;
}

/* An attribute map (an item, keys, an image): how many members its JSON holds, or -1. */
static Py_ssize_t walk_map(PyObject *map)
{
    if (!PyDict_CheckExact(map)) return -1;
    Py_ssize_t members = 2 * PyDict_GET_SIZE(map), p = 0;
    PyObject *k, *v;
    while (PyDict_Next(map, &p, &k, &v))
        if (walk_value(v, 1, &members) != OK) return -1;
    return members;
}

/* One attribute value in boto3's form (binary as bytes), to the wire form attrs.from_boto
 * makes of it: a new reference, or NULL to defer (no exception set) / on failure (set). */
static PyObject *boto_map(PyObject *map, int depth);

static PyObject *tagged(PyObject *tag, PyObject *value)
{
    if (value == NULL) return NULL;
    PyObject *d = PyDict_New();
    if (d == NULL || PyDict_SetItem(d, tag, value) < 0) { Py_XDECREF(d); Py_DECREF(value); return NULL; }
    Py_DECREF(value);
    return d;
}

static PyObject *boto_value(PyObject *av, int depth)
{
    if (!PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1) return NULL;
    Py_ssize_t pos = 0;
    PyObject *tag, *value;
    PyDict_Next(av, &pos, &tag, &value);
    int t = tag_of(tag);
    if (t == T_B) return tagged(s_B, b64encode(value));
    if (t == T_BS) {
        if (!PyList_CheckExact(value)) return NULL;
        Py_ssize_t n = PyList_GET_SIZE(value);
        PyObject *out = PyList_New(n);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *text = b64encode(PyList_GET_ITEM(value, i));
            if (text == NULL) { Py_DECREF(out); return NULL; }
            PyList_SET_ITEM(out, i, text);
        }
        return tagged(s_BS, out);
    }
    if (t == T_M) {
        if (!PyDict_CheckExact(value)) return NULL;
        if (PyDict_GET_SIZE(value) && depth >= MAX_NESTING) return NULL;
        return tagged(s_M, boto_map(value, depth + 1));
    }
    if (t == T_L) {
        if (!PyList_CheckExact(value)) return NULL;
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (n && depth >= MAX_NESTING) return NULL;
        PyObject *out = PyList_New(n);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = boto_value(PyList_GET_ITEM(value, i), depth + 1);
            if (v == NULL) { Py_DECREF(out); return NULL; }
            PyList_SET_ITEM(out, i, v);
        }
        return tagged(s_L, out);
    }
    /* S, N, BOOL, NULL, SS, NS: the same checks as the wire form, the value kept. */
    Py_ssize_t ignored = 0;
    if (walk_value(av, depth, &ignored) != OK) return NULL;
    Py_INCREF(av);
    return av;
}

static PyObject *boto_map(PyObject *map, int depth)
{
    if (!PyDict_CheckExact(map)) return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    Py_ssize_t p = 0;
    PyObject *k, *v;
    while (PyDict_Next(map, &p, &k, &v)) {
        PyObject *w = boto_value(v, depth);
        if (w == NULL || PyDict_SetItem(out, k, w) < 0) { Py_XDECREF(w); Py_DECREF(out); return NULL; }
        Py_DECREF(w);
    }
    return out;
}

/* -- keys --------------------------------------------------------------------------------- */

/* {name: item[name]} in key-schema order (attrs.extract_keys); NULL to defer. */
static PyObject *extract_keys(PyObject *item, PyObject *key_names)
{
    PyObject *keys = PyDict_New();
    if (keys == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key_names); i++) {
        PyObject *name = PyTuple_GET_ITEM(key_names, i);
        PyObject *av = PyDict_GetItemWithError(item, name);
        if (av == NULL || PyDict_SetItem(keys, name, av) < 0) { Py_DECREF(keys); return NULL; }
    }
    return keys;
}

/* The key attributes have the table's key types, non-empty (export_files._check_key). */
static int key_types_ok(PyObject *keys, PyObject *key_names, PyObject *key_types)
{
    Py_ssize_t n = PyTuple_GET_SIZE(key_names);
    if (PyTuple_GET_SIZE(key_types) < n) n = PyTuple_GET_SIZE(key_types);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *av = PyDict_GetItemWithError(keys, PyTuple_GET_ITEM(key_names, i));
        if (av == NULL || !PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1) return 0;
        PyObject *value = PyDict_GetItemWithError(av, PyTuple_GET_ITEM(key_types, i));
        if (value == NULL || !PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) == 0)
            return 0;
    }
    return 1;
}

static PyObject *dumps(PyObject *value, int sorted)
{
    PyObject *args[1] = {value};
    if (!sorted) return PyObject_Vectorcall(dumps_fn, args, 1, NULL);
    PyObject *kw_args[2] = {value, sort_keys_opt};
    return PyObject_Vectorcall(dumps_fn, kw_args, 1, kw_option);
}

/* attrs.canonical_key when every key number is canonical already (else NULL: defer).
 * *plain receives orjson.dumps(keys) (the envelope's keys text): the same bytes when the
 * names are in sorted order already, else a second call. */
static PyObject *canonical_key(PyObject *keys, PyObject **plain)
{
    Py_ssize_t p = 0;
    PyObject *k, *av, *prev = NULL;
    int sorted = 1;
    *plain = NULL;
    while (PyDict_Next(keys, &p, &k, &av)) {
        if (!PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1) return NULL;
        PyObject *number = PyDict_GetItemWithError(av, s_N);
        if (number != NULL && (!PyUnicode_CheckExact(number) || !canonical_number(number)))
            return NULL;
        if (!PyUnicode_CheckExact(k)) return NULL;
        if (prev != NULL && PyUnicode_Compare(prev, k) >= 0) sorted = 0;
        prev = k;
    }
    if (PyErr_Occurred()) return NULL;
    PyObject *key = dumps(keys, 1);
    if (key == NULL) return NULL;
    if (sorted) {
        Py_INCREF(key);
        *plain = key;
    } else if ((*plain = dumps(keys, 0)) == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* -- the Avro envelope -------------------------------------------------------------------- */

typedef struct {
    char *p;
} Out;

static Py_ssize_t varint_size(uint64_t z)
{
    Py_ssize_t n = 1;
    while (z > 0x7F) { z >>= 7; n++; }
    return n;
}

static void put_varint(Out *o, uint64_t z)
{
    while (z > 0x7F) { *o->p++ = (char)((z & 0x7F) | 0x80); z >>= 7; }
    *o->p++ = (char)z;
}

static uint64_t zigzag(int64_t n) { return ((uint64_t)n << 1) ^ (uint64_t)(n >> 63); }

/* One envelope field that is text: its UTF-8 bytes (str) or the bytes themselves. */
typedef struct {
    const char *data;
    Py_ssize_t len;
    int present;
} Text;

static int text_of(PyObject *obj, Text *t)
{
    t->present = obj != NULL && obj != Py_None;
    t->data = NULL;
    t->len = 0;
    if (!t->present) return 0;
    if (PyBytes_CheckExact(obj)) {
        t->data = PyBytes_AS_STRING(obj);
        t->len = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyUnicode_CheckExact(obj)) {
        t->data = PyUnicode_AsUTF8AndSize(obj, &t->len);
        if (t->data == NULL) { PyErr_Clear(); return -1; } /* lone surrogates: the reference decides */
        return 0;
    }
    return -1;
}

static Py_ssize_t text_size(const Text *t) { return varint_size(zigzag(t->len)) + t->len; }

static void put_text(Out *o, const Text *t)
{
    put_varint(o, zigzag(t->len));
    memcpy(o->p, t->data, t->len);
    o->p += t->len;
}

/* The Avro body of the envelope (bridge/codec/envelope.py's layout, schemas/change_event.avsc):
 * NULL to defer. `created_ms` is used when has_created. */
static PyObject *envelope(PyObject *table, int op, int origin, PyObject *version,
                          PyObject *keys_json, PyObject *new_json, PyObject *old_json,
                          PyObject *shard, PyObject *seq, PyObject *eid, int has_created,
                          int64_t created_ms, int ttl)
{
    Text t_table, t_keys, t_new, t_old, t_shard, t_seq, t_eid;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(version, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) { PyErr_Clear(); return NULL; }
    if (text_of(table, &t_table) || !t_table.present || text_of(keys_json, &t_keys) ||
        text_of(new_json, &t_new) || text_of(old_json, &t_old) || text_of(shard, &t_shard) ||
        text_of(seq, &t_seq) || text_of(eid, &t_eid))
        return NULL;
    if (!PyUnicode_CheckExact(table) || !PyBytes_CheckExact(keys_json)) return NULL;
    if ((t_shard.present && !PyUnicode_CheckExact(shard)) ||
        (t_seq.present && !PyUnicode_CheckExact(seq)) ||
        (t_eid.present && !PyUnicode_CheckExact(eid)))
        return NULL;
    uint64_t zv = zigzag(v), zc = zigzag(created_ms);
    Py_ssize_t size = text_size(&t_table) + 2 + varint_size(zv) + text_size(&t_keys);
    const Text *optional[5] = {&t_new, &t_old, &t_shard, &t_seq, &t_eid};
    for (int i = 0; i < 5; i++) size += 1 + (optional[i]->present ? text_size(optional[i]) : 0);
    size += 1 + (has_created ? varint_size(zc) : 0) + 1;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    Out o = {PyBytes_AS_STRING(out)};
    put_text(&o, &t_table);
    *o.p++ = (char)(2 * op);
    *o.p++ = (char)(2 * origin);
    put_varint(&o, zv);
    put_text(&o, &t_keys);
    for (int i = 0; i < 5; i++) {
        *o.p++ = optional[i]->present ? 2 : 0; /* union branch 1 (value) or 0 (null) */
        if (optional[i]->present) put_text(&o, optional[i]);
    }
    *o.p++ = has_created ? 2 : 0;
    if (has_created) put_varint(&o, zc);
    *o.p++ = ttl ? 1 : 0;
    return out;
}

/* -- events ------------------------------------------------------------------------------- */

/* An event of `type` (ChangeEvent or a subclass adding no slots) with its fields set, as the
 * constructor sets them: a frozen dataclass's slots, set through ChangeEvent's own slot
 * descriptors. Steals nothing; NULL with an exception on failure. */
static PyObject *make_event_of(PyTypeObject *type, PyObject *const values[N_FIELDS])
{
    PyObject *event = type->tp_alloc(type, 0);
    if (event == NULL) return NULL;
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *d = field_descr[i];
        if (Py_TYPE(d)->tp_descr_set(d, event, values[i]) < 0) { Py_DECREF(event); return NULL; }
    }
    return event;
}

static PyObject *make_event(PyObject *const values[N_FIELDS])
{
    return make_event_of((PyTypeObject *)event_type, values);
}

static PyObject *encoded_pair(PyObject *key, PyObject *body)
{
    if (key == NULL || body == NULL) return NULL;
    return PyTuple_Pack(2, key, body);
}

/* build_event(cls, table, op, keys, version, origin, new_image, old_image, shard_id,
 *             sequence_number, event_id, created_ms, ttl_expired, new_image_json,
 *             old_image_json, encoded): the constructor of ChangeEvent or of a subclass
 * without slots of its own, without its keyword handling, for paths that build many
 * (apply's text images). The values are the caller's: nothing is checked. */
static PyObject *py_build_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured) { PyErr_SetString(PyExc_RuntimeError, "_core.configure() not called"); return NULL; }
    if (nargs != N_FIELDS + 1) { PyErr_SetString(PyExc_TypeError, "build_event takes 16 arguments"); return NULL; }
    PyObject *cls = args[0];
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)event_type) ||
        ((PyTypeObject *)cls)->tp_basicsize != ((PyTypeObject *)event_type)->tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "build_event: ChangeEvent or a subclass without slots of its own");
        return NULL;
    }
    return make_event_of((PyTypeObject *)cls, args + 1);
}

/* -- export lines ------------------------------------------------------------------------- */

/* json_names.names_at_most over the line: quotes followed by a colon or whitespace. */
static Py_ssize_t names_at_most(const char *s, Py_ssize_t n)
{
    Py_ssize_t count = 0;
    const char *end = s + n, *q = s;
    while ((q = memchr(q, '"', end - q)) != NULL && q + 1 < end) {
        char c = q[1];
        if (c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') count++;
        q++;
    }
    return count;
}

/* export_files.item_text's proof that the line's slice after `{"Item":` is orjson's text of
 * the item: one member, compact, no escape, as many `":` as members. */
static int slice_is_item_text(const char *s, Py_ssize_t n, Py_ssize_t members)
{
    Py_ssize_t end = (n && s[n - 1] == '\n') ? n - 1 : n;
    if (end < 9 || memcmp(s, "{\"Item\":", 8) != 0 || s[end - 1] != '}') return 0;
    Py_ssize_t colons = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == ' ' || c == '\r' || c == '\t') return 0;
        if (c == '"' && i + 1 < n && s[i + 1] == ':') colons++;
    }
    return colons == members + 1;
}

/* export_line(line, table, key_names, key_types, version, origin, passthrough): the event
 * of one full-export line `{"Item": ...}` (SNAPSHOT, its key and envelope made), or None:
 * the reader's Python path decides (blank or bad lines, incremental lines, anything the core
 * does not prove the same). TTL is the caller's (it has the item: event.new_image). */
static PyObject *py_export_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 7) { PyErr_SetString(PyExc_TypeError, "export_line: 7 arguments, after configure()"); return NULL; }
    PyObject *line = args[0], *table = args[1], *key_names = args[2], *key_types = args[3];
    PyObject *version = args[4], *origin = args[5];
    int passthrough = PyObject_IsTrue(args[6]);
    if (!PyBytes_CheckExact(line) || !PyTuple_CheckExact(key_names) || !PyTuple_CheckExact(key_types))
        Py_RETURN_NONE;
    int origin_index = -1;
    for (int i = 0; i < 4; i++)
        if (origin == origin_members[i]) origin_index = i;
    if (origin_index < 0) Py_RETURN_NONE;
    PyObject *doc = PyObject_Vectorcall(loads_fn, &line, 1, NULL);
    if (doc == NULL) { PyErr_Clear(); Py_RETURN_NONE; }
    PyObject *result = NULL, *keys = NULL, *key = NULL, *keys_json = NULL, *text = NULL;
    PyObject *body = NULL, *encoded = NULL;
    if (!PyDict_CheckExact(doc) || PyDict_GET_SIZE(doc) != 1) goto defer;
    PyObject *item = PyDict_GetItemWithError(doc, s_Item);
    if (item == NULL) goto defer;
    Py_ssize_t members = walk_map(item);
    if (members < 0) goto defer;
    const char *s = PyBytes_AS_STRING(line);
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    if (names_at_most(s, n) != members + 1) goto defer; /* a name may repeat: Python counts */
    if (slice_is_item_text(s, n, members)) {
        Py_ssize_t end = s[n - 1] == '\n' ? n - 1 : n;
        text = PyBytes_FromStringAndSize(s + 8, end - 9);
    } else {
        text = dumps(item, 0);
    }
    if (text == NULL) goto defer;
    if ((keys = extract_keys(item, key_names)) == NULL) goto defer;
    if (!key_types_ok(keys, key_names, key_types)) goto defer;
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto defer;
    body = envelope(table, OP_SNAPSHOT, origin_index, version, keys_json, text, NULL, NULL,
                    NULL, NULL, 0, 0, 0);
    if ((encoded = encoded_pair(key, body)) == NULL) goto defer;
    PyObject *values[N_FIELDS] = {
        table, op_members[OP_SNAPSHOT], keys, version, origin, item, Py_None, Py_None, Py_None,
        Py_None, Py_None, Py_False, passthrough ? text : Py_None, Py_None, encoded};
    result = make_event(values);
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    Py_DECREF(doc);
    Py_XDECREF(keys); Py_XDECREF(key); Py_XDECREF(keys_json); Py_XDECREF(text);
    Py_XDECREF(body); Py_XDECREF(encoded);
    return result;
}

/* -- stream records ----------------------------------------------------------------------- */

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* versioning.to_micros of ApproximateCreationDateTime: a UTC datetime (read_page makes one)
 * or whole epoch seconds. 0 when it is anything else (the reference converts it). */
static int created_micros(PyObject *created, int64_t *micros)
{
    if (PyDateTime_CheckExact(created)) {
        PyObject *tz = PyDateTime_DATE_GET_TZINFO(created);
        if (tz != PyDateTime_TimeZone_UTC) return 0;
        int64_t days = days_from_civil(PyDateTime_GET_YEAR(created), PyDateTime_GET_MONTH(created),
                                       PyDateTime_GET_DAY(created));
        int64_t secs = days * 86400 + PyDateTime_DATE_GET_HOUR(created) * 3600 +
                       PyDateTime_DATE_GET_MINUTE(created) * 60 + PyDateTime_DATE_GET_SECOND(created);
        *micros = secs * 1000000 + PyDateTime_DATE_GET_MICROSECOND(created);
        return 1;
    }
    if (PyLong_CheckExact(created)) {
        int overflow = 0;
        long long s = PyLong_AsLongLongAndOverflow(created, &overflow);
        if (overflow || (s == -1 && PyErr_Occurred()) || s < 0 || s > 253402300799LL) {
            PyErr_Clear();
            return 0;
        }
        *micros = (int64_t)s * 1000000;
        return 1;
    }
    return 0;
}

/* stream_record(record, table, shard_id, last_version): the event of one DynamoDB Streams
 * record in wire form (get_records.read_page), versioned as StreamVersioner.next does after
 * `last_version` (the caller stores event.version back), with its key and envelope made; or
 * None: ChangeEvent.from_stream_record decides. */
static PyObject *py_stream_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 4) { PyErr_SetString(PyExc_TypeError, "stream_record: 4 arguments, after configure()"); return NULL; }
    PyObject *record = args[0], *table = args[1], *shard = args[2];
    PyObject *result = NULL, *key = NULL, *keys_json = NULL, *new_json = NULL, *old_json = NULL;
    PyObject *body = NULL, *encoded = NULL, *version = NULL, *created_obj = NULL;
    if (!PyDict_CheckExact(record) || !PyUnicode_CheckExact(table) || !PyUnicode_CheckExact(shard))
        Py_RETURN_NONE;
    int overflow = 0;
    long long last = PyLong_AsLongLongAndOverflow(args[3], &overflow);
    if (overflow || (last == -1 && PyErr_Occurred()) || last >= INT64_MAX - 1) { PyErr_Clear(); Py_RETURN_NONE; }
    PyObject *ddb = PyDict_GetItemWithError(record, s_dynamodb);
    if (ddb == NULL || !PyDict_CheckExact(ddb)) goto defer;
    PyObject *name = PyDict_GetItemWithError(record, s_eventName);
    if (name == NULL || !PyUnicode_CheckExact(name)) goto defer;
    int op;
    if (PyUnicode_Compare(name, s_MODIFY) == 0) op = OP_MODIFY;
    else if (PyUnicode_Compare(name, s_INSERT) == 0) op = OP_INSERT;
    else if (PyUnicode_Compare(name, s_REMOVE) == 0) op = OP_REMOVE;
    else goto defer;
    PyObject *keys = PyDict_GetItemWithError(ddb, s_Keys);
    PyObject *seq = PyDict_GetItemWithError(ddb, s_SequenceNumber);
    PyObject *eid = PyDict_GetItemWithError(record, s_eventID);
    if (PyErr_Occurred() || keys == NULL) goto defer;
    if (seq == NULL) seq = Py_None;
    if (eid == NULL) eid = Py_None;
    if ((seq != Py_None && !PyUnicode_CheckExact(seq)) || (eid != Py_None && !PyUnicode_CheckExact(eid)))
        goto defer;
    int ttl = 0;
    PyObject *identity = PyDict_GetItemWithError(record, s_userIdentity);
    if (identity != NULL && op == OP_REMOVE && PyDict_CheckExact(identity)) {
        PyObject *type = PyDict_GetItemWithError(identity, s_Type);
        PyObject *principal = PyDict_GetItemWithError(identity, s_PrincipalId);
        if (type == NULL || principal == NULL) {
            if (PyErr_Occurred()) goto defer;
        } else {
            /* Only exact strings: another type's __eq__ is the reference's to call. */
            if (!PyUnicode_CheckExact(type) || !PyUnicode_CheckExact(principal)) goto defer;
            ttl = PyUnicode_Compare(type, s_Service) == 0 &&
                  PyUnicode_Compare(principal, ttl_principal) == 0;
        }
    }
    if (PyErr_Occurred()) goto defer;
    PyObject *new_image = PyDict_GetItemWithError(ddb, s_NewImage);
    PyObject *old_image = PyDict_GetItemWithError(ddb, s_OldImage);
    if (PyErr_Occurred()) goto defer;
    if (new_image == NULL) new_image = Py_None;
    if (old_image == NULL) old_image = Py_None;
    if (walk_map(keys) < 0) goto defer;
    if (new_image != Py_None && walk_map(new_image) < 0) goto defer;
    if (old_image != Py_None && walk_map(old_image) < 0) goto defer;
    PyObject *created = PyDict_GetItemWithError(ddb, s_ACDT);
    int64_t micros;
    /* (Before the epoch, C's division would round where the reference floors: deferred.) */
    if (created == NULL || !created_micros(created, &micros) || micros < 0) goto defer;
    int64_t v = micros > last + 1 ? micros : last + 1;
    if ((version = PyLong_FromLongLong(v)) == NULL) goto defer;
    if ((created_obj = PyLong_FromLongLong(micros / 1000)) == NULL) goto defer;
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto defer;
    if (new_image != Py_None && (new_json = dumps(new_image, 0)) == NULL) goto defer;
    if (old_image != Py_None && (old_json = dumps(old_image, 0)) == NULL) goto defer;
    body = envelope(table, op, ORIGIN_STREAM, version, keys_json, new_json, old_json, shard, seq,
                    eid, 1, micros / 1000, ttl);
    if ((encoded = encoded_pair(key, body)) == NULL) goto defer;
    PyObject *values[N_FIELDS] = {
        table, op_members[op], keys, version, origin_members[ORIGIN_STREAM], new_image,
        old_image, shard, seq, eid, created_obj, ttl ? Py_True : Py_False, Py_None, Py_None,
        encoded};
    result = make_event(values);
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    Py_XDECREF(key); Py_XDECREF(keys_json); Py_XDECREF(new_json); Py_XDECREF(old_json);
    Py_XDECREF(body); Py_XDECREF(encoded); Py_XDECREF(version); Py_XDECREF(created_obj);
    return result;
}

/* -- scanned items ------------------------------------------------------------------------ */

/* scan_item(raw, table, key_names, version): (event, bytes of the item's DynamoDB JSON) of a
 * scanned item in boto3's form (attrs.from_boto, then ChangeEvent.snapshot with Origin.SCAN),
 * or None: the reader's Python path decides. */
static PyObject *py_scan_item(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 4) { PyErr_SetString(PyExc_TypeError, "scan_item: 4 arguments, after configure()"); return NULL; }
    PyObject *raw = args[0], *table = args[1], *key_names = args[2], *version = args[3];
    if (!PyTuple_CheckExact(key_names)) Py_RETURN_NONE;
    PyObject *result = NULL, *item = NULL, *keys = NULL, *key = NULL, *keys_json = NULL;
    PyObject *text = NULL, *body = NULL, *encoded = NULL, *event = NULL;
    if ((item = boto_map(raw, 1)) == NULL) goto defer;
    if ((keys = extract_keys(item, key_names)) == NULL) goto defer;
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto defer;
    if ((text = dumps(item, 0)) == NULL) goto defer;
    body = envelope(table, OP_SNAPSHOT, ORIGIN_SCAN, version, keys_json, text, NULL, NULL, NULL,
                    NULL, 0, 0, 0);
    if ((encoded = encoded_pair(key, body)) == NULL) goto defer;
    PyObject *values[N_FIELDS] = {
        table, op_members[OP_SNAPSHOT], keys, version, origin_members[ORIGIN_SCAN], item,
        Py_None, Py_None, Py_None, Py_None, Py_None, Py_False, Py_None, Py_None, encoded};
    if ((event = make_event(values)) == NULL) goto defer;
    result = Py_BuildValue("(On)", event, PyBytes_GET_SIZE(text));
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    Py_XDECREF(item); Py_XDECREF(keys); Py_XDECREF(key); Py_XDECREF(keys_json);
    Py_XDECREF(text); Py_XDECREF(body); Py_XDECREF(encoded); Py_XDECREF(event);
    return result;
}

/* -- any event ---------------------------------------------------------------------------- */

static PyObject *field(PyObject *event, int i)
{
    PyObject *d = field_descr[i];
    return Py_TYPE(d)->tp_descr_get(d, event, (PyObject *)Py_TYPE(event));
}

/* encode_event(event): the envelope body of any ChangeEvent (envelope.compile_encoder's
 * output), or None: the Python encoder decides. */
static PyObject *py_encode_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 1) { PyErr_SetString(PyExc_TypeError, "encode_event: 1 argument, after configure()"); return NULL; }
    PyObject *event = args[0];
    if (!PyObject_TypeCheck(event, (PyTypeObject *)event_type)) Py_RETURN_NONE;
    PyObject *f[N_FIELDS] = {NULL};
    PyObject *result = NULL, *keys_json = NULL, *new_json = NULL, *old_json = NULL;
    for (int i = 0; i < N_FIELDS; i++)
        if ((f[i] = field(event, i)) == NULL) goto defer;
    int op = -1, origin = -1;
    for (int i = 0; i < 4; i++) {
        if (f[F_OP] == op_members[i]) op = i;
        if (f[F_ORIGIN] == origin_members[i]) origin = i;
    }
    if (op < 0 || origin < 0 || !PyLong_CheckExact(f[F_VERSION]) || !PyBool_Check(f[F_TTL]))
        goto defer;
    int64_t created = 0;
    int has_created = f[F_CREATED] != Py_None;
    if (has_created) {
        int overflow = 0;
        if (!PyLong_CheckExact(f[F_CREATED])) goto defer;
        created = PyLong_AsLongLongAndOverflow(f[F_CREATED], &overflow);
        if (overflow || (created == -1 && PyErr_Occurred())) goto defer;
    }
    if ((keys_json = dumps(f[F_KEYS], 0)) == NULL) goto defer;
    if (f[F_NEW] != Py_None) {
        if (f[F_NEW_JSON] != Py_None) {
            if (!PyBytes_CheckExact(f[F_NEW_JSON])) goto defer;
            new_json = f[F_NEW_JSON]; Py_INCREF(new_json);
        } else if ((new_json = dumps(f[F_NEW], 0)) == NULL) goto defer;
    }
    if (f[F_OLD] != Py_None) {
        if (f[F_OLD_JSON] != Py_None) {
            if (!PyBytes_CheckExact(f[F_OLD_JSON])) goto defer;
            old_json = f[F_OLD_JSON]; Py_INCREF(old_json);
        } else if ((old_json = dumps(f[F_OLD], 0)) == NULL) goto defer;
    }
    result = envelope(f[F_TABLE], op, origin, f[F_VERSION], keys_json, new_json, old_json,
                      f[F_SHARD], f[F_SEQ], f[F_EID], has_created, created, f[F_TTL] == Py_True);
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    for (int i = 0; i < N_FIELDS; i++) Py_XDECREF(f[i]);
    Py_XDECREF(keys_json); Py_XDECREF(new_json); Py_XDECREF(old_json);
    return result;
}

/* -- apply's decode ----------------------------------------------------------------------- */

/* A zigzag varint of a 64-bit long at *pos (every version until the year 3111 takes 8
 * bytes); 0 when cut off or beyond 64 bits (the parsing decoder decides then). */
static int read_long(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, int64_t *value)
{
    uint64_t z = 0;
    for (int i = 0; i < 10; i++) {
        if (*pos >= n) return 0;
        unsigned char b = d[(*pos)++];
        if (i == 9 && b > 1) return 0; /* the tenth byte holds bit 63 only */
        z |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *value = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 1;
        }
    }
    return 0;
}

/* A length-prefixed string: its [start, end) inside the data, or 0. */
static int read_span(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, Py_ssize_t *start)
{
    int64_t len;
    if (!read_long(d, n, pos, &len) || len < 0 || len > n - *pos) return 0;
    *start = *pos;
    *pos += (Py_ssize_t)len;
    return 1;
}

/* An optional string ["null", "string"]: 1 for null (*out None), 2 for a string (its
   [start, end) in *start and *pos, *out untouched), 0 when malformed. */
static int read_optional_span(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos,
                              Py_ssize_t *start, PyObject **out)
{
    if (*pos >= n) return 0;
    unsigned char b = d[(*pos)++];
    if (b == 0) { Py_INCREF(Py_None); *out = Py_None; return 1; }
    if (b != 2 || !read_span(d, n, pos, start)) return 0;
    return 2;
}

/* An optional string ["null", "string"]: *out None or the text (new reference), or 0. */
static int read_optional_text(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, PyObject **out)
{
    Py_ssize_t start;
    int found = read_optional_span(d, n, pos, &start, out);
    if (found != 2) return found;
    *out = PyUnicode_DecodeUTF8((const char *)d + start, *pos - start, NULL);
    if (*out == NULL) { PyErr_Clear(); return 0; }
    return 1;
}

/* An optional image ["null", "string"]: *out None or its bytes, unchecked, or 0. */
static int read_optional_bytes(const unsigned char *d, Py_ssize_t n, Py_ssize_t *pos, PyObject **out)
{
    Py_ssize_t start;
    int found = read_optional_span(d, n, pos, &start, out);
    if (found != 2) return found;
    *out = PyBytes_FromStringAndSize((const char *)d + start, *pos - start);
    return *out != NULL;
}

/* decode_text(data, start): envelope.compile_text_decoder's parts of an envelope body, its
 * images left as text (unchecked), or None whenever it is not certain (the parsing decoder
 * then decides and names the problem). */
static PyObject *py_decode_text(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 2) { PyErr_SetString(PyExc_TypeError, "decode_text: 2 arguments, after configure()"); return NULL; }
    if (!PyBytes_CheckExact(args[0])) Py_RETURN_NONE;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]), start;
    if (pos < 0 || pos > n) { PyErr_Clear(); Py_RETURN_NONE; }
    PyObject *table = NULL, *keys_text = NULL, *keys = NULL, *new_text = NULL, *old_text = NULL;
    PyObject *shard = NULL, *seq = NULL, *eid = NULL, *version = NULL, *created = NULL;
    PyObject *result = NULL;
    int64_t v, c;
    if (!read_span(d, n, &pos, &start)) goto defer;
    if ((table = PyUnicode_DecodeUTF8((const char *)d + start, pos - start, NULL)) == NULL) goto defer;
    if (pos + 2 > n || d[pos] > 6 || d[pos] & 1 || d[pos + 1] > 6 || d[pos + 1] & 1) goto defer;
    PyObject *op = op_members[d[pos] >> 1], *origin = origin_members[d[pos + 1] >> 1];
    pos += 2;
    if (!read_long(d, n, &pos, &v) || (version = PyLong_FromLongLong(v)) == NULL) goto defer;
    if (!read_span(d, n, &pos, &start)) goto defer;
    if ((keys_text = PyBytes_FromStringAndSize((const char *)d + start, pos - start)) == NULL) goto defer;
    if ((keys = PyObject_Vectorcall(loads_fn, &keys_text, 1, NULL)) == NULL || !PyDict_CheckExact(keys))
        goto defer;
    if (!read_optional_bytes(d, n, &pos, &new_text) || !read_optional_bytes(d, n, &pos, &old_text))
        goto defer;
    if (!read_optional_text(d, n, &pos, &shard) || !read_optional_text(d, n, &pos, &seq) ||
        !read_optional_text(d, n, &pos, &eid))
        goto defer;
    if (pos >= n) goto defer;
    if (d[pos] == 2) {
        pos++;
        if (!read_long(d, n, &pos, &c) || (created = PyLong_FromLongLong(c)) == NULL) goto defer;
    } else if (d[pos] == 0) {
        pos++;
        Py_INCREF(Py_None);
        created = Py_None;
    } else {
        goto defer;
    }
    if (pos + 1 != n || d[pos] > 1) goto defer;
    result = PyTuple_Pack(13, table, op, origin, version, keys, keys_text, new_text, old_text,
                          shard, seq, eid, created, d[pos] ? Py_True : Py_False);
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    Py_XDECREF(table); Py_XDECREF(keys_text); Py_XDECREF(keys); Py_XDECREF(new_text);
    Py_XDECREF(old_text); Py_XDECREF(shard); Py_XDECREF(seq); Py_XDECREF(eid);
    Py_XDECREF(version); Py_XDECREF(created);
    return result;
}

/* -- the JSON text scanner ---------------------------------------------------------------- */

/* GetRecords bodies read as text: one pass over the JSON validates what the reference would
 * parse and check (orjson.loads, then the walk above), and finds each record's parts as
 * slices of the body, so no Python object is made for an image. An image's slice is the
 * envelope's text as it stands when it is exactly what orjson.dumps writes of it: no JSON
 * whitespace, and only the escapes orjson writes (\" \\ \b \f \n \r \t: each character then
 * has one spelling, so names compare as bytes). Anything else the scanner cannot prove
 * equal (\u and \/ escapes, a name twice in one object, a number other than a short integer
 * outside the images, ...) makes the whole page the reference's. */

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

typedef struct {
    const unsigned char *p, *end;
    int spaced;            /* JSON whitespace seen since the caller last cleared it */
    Span *names;           /* the names of the maps open now, innermost last */
    Py_ssize_t n_names, cap;
    Py_ssize_t members;    /* item_check.item_members' count */
} Scan;

/* 1 for a byte that may stand for itself inside a JSON string (not ", \, a control or
 * non-ASCII, which need a closer look). */
static unsigned char PLAIN[256];

static inline void skip_ws(Scan *sc)
{
    const unsigned char *p = sc->p;
    while (p < sc->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p != sc->p) sc->spaced = 1;
    sc->p = p;
}

static inline int peek(Scan *sc)
{
    skip_ws(sc);
    return sc->p < sc->end ? *sc->p : -1;
}

static inline int take(Scan *sc, char c)
{
    if (peek(sc) != (unsigned char)c) return 0;
    sc->p++;
    return 1;
}

/* The length of the valid UTF-8 sequence at p (a byte >= 0x80), or 0 (orjson refuses it). */
static int utf8_length(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF)
        return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* a surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* beyond U+10FFFF */
        return 4;
    }
    return 0;
}

/* \u00XX of a control character without a short escape, in lowercase hex: the one
 * spelling orjson writes of it (any other \u is another spelling of some character). */
static int control_escape(const unsigned char *p, const unsigned char *end)
{
    static const char HEX[] = "0123456789abcdef";
    if (end - p < 6 || p[2] != '0' || p[3] != '0' || (p[4] != '0' && p[4] != '1')) return 0;
    const char *digit = memchr(HEX, p[5], 16);
    if (digit == NULL || p[5] == 0) return 0;
    int c = (p[4] - '0') * 16 + (int)(digit - HEX);
    return c != '\b' && c != '\f' && c != '\n' && c != '\r' && c != '\t';
}

/* A string: *out its text between the quotes, as written; *escaped whether it holds an
 * escape (then its text is not its value). */
static int scan_string(Scan *sc, Span *out, int *escaped)
{
    if (peek(sc) != '"') return DEFER;
    const unsigned char *start = sc->p + 1, *p = start, *end = sc->end;
    *escaped = 0;
    for (;;) {
        while (p < end && PLAIN[*p]) p++;
        if (p >= end) return DEFER;
        unsigned char c = *p;
        if (c == '"') break;
        if (c == '\\') {
            if (p + 1 >= end) return DEFER;
            switch (p[1]) {
            case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u': /* only as orjson writes a control character: \u00 and lowercase hex */
                if (!control_escape(p, end)) return DEFER;
                p += 6;
                break;
            default:
                return DEFER; /* \/: another spelling of a character */
            }
            *escaped = 1;
        } else if (c < 0x20) {
            return DEFER; /* a raw control character: not JSON */
        } else {
            int len = utf8_length(p, end);
            if (len == 0) return DEFER;
            p += len;
        }
    }
    out->p = (const char *)start;
    out->n = p - start;
    sc->p = p + 1;
    return OK;
}

/* A string whose text is its value (no escape). */
static int scan_plain_string(Scan *sc, Span *out)
{
    int escaped;
    if (scan_string(sc, out, &escaped) != OK || escaped) return DEFER;
    return OK;
}

static int scan_literal(Scan *sc, const char *word)
{
    size_t n = strlen(word);
    if (peek(sc) < 0 || (size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0) return DEFER;
    sc->p += n;
    return OK;
}

/* A non-negative integer of at most 15 digits, as JSON spells it (no sign, fraction,
 * exponent or leading zero): anything else may be read differently, and is deferred. */
static int scan_integer(Scan *sc, int64_t *value)
{
    if (peek(sc) < '0' || *sc->p > '9') return DEFER;
    const unsigned char *p = sc->p;
    int64_t v = 0;
    int digits = 0;
    while (p < sc->end && *p >= '0' && *p <= '9') {
        if (++digits > 15) return DEFER;
        v = v * 10 + (*p++ - '0');
    }
    if (digits > 1 && sc->p[0] == '0') return DEFER;
    if (p < sc->end && (*p == '.' || *p == 'e' || *p == 'E')) return DEFER;
    sc->p = p;
    *value = v;
    return OK;
}

/* Any JSON value the reader ignores (validated all the same: orjson would refuse the page). */
static int skip_value(Scan *sc, int depth)
{
    Span s;
    int escaped;
    int64_t ignored;
    if (depth > MAX_NESTING) return DEFER;
    switch (peek(sc)) {
    case '"': return scan_string(sc, &s, &escaped);
    case 't': return scan_literal(sc, "true");
    case 'f': return scan_literal(sc, "false");
    case 'n': return scan_literal(sc, "null");
    case '{':
        sc->p++;
        if (take(sc, '}')) return OK;
        do {
            if (scan_string(sc, &s, &escaped) != OK || !take(sc, ':') ||
                skip_value(sc, depth + 1) != OK)
                return DEFER;
        } while (take(sc, ','));
        return take(sc, '}') ? OK : DEFER;
    case '[':
        sc->p++;
        if (take(sc, ']')) return OK;
        do {
            if (skip_value(sc, depth + 1) != OK) return DEFER;
        } while (take(sc, ','));
        return take(sc, ']') ? OK : DEFER;
    default:
        return scan_integer(sc, &ignored);
    }
}

static int push_name(Scan *sc, Span name)
{
    if (sc->n_names == sc->cap) {
        Py_ssize_t cap = sc->cap ? 2 * sc->cap : 64;
        Span *names = PyMem_Realloc(sc->names, cap * sizeof(Span));
        if (names == NULL) return -1;
        sc->names = names;
        sc->cap = cap;
    }
    sc->names[sc->n_names++] = name;
    return 0;
}

static int span_order(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

/* No name twice among names[base:] (one spelling per character: bytes compare values). */
static int names_unique(Scan *sc, Py_ssize_t base)
{
    Span *names = sc->names + base;
    Py_ssize_t n = sc->n_names - base;
    if (n <= 32) {
        for (Py_ssize_t i = 1; i < n; i++)
            for (Py_ssize_t j = 0; j < i; j++)
                if (span_order(names + i, names + j) == 0) return 0;
        return 1;
    }
    qsort(names, n, sizeof(Span), span_order); /* names[base:] are not needed in order */
    for (Py_ssize_t i = 1; i < n; i++)
        if (span_order(names + i, names + i - 1) == 0) return 0;
    return 1;
}

static int scan_value(Scan *sc, int depth);

/* The members of an attribute map, after its `{`: names to attribute values at `depth`. */
static int scan_map_body(Scan *sc, int depth)
{
    Py_ssize_t base = sc->n_names;
    if (take(sc, '}')) return OK;
    do {
        Span name;
        int escaped;
        if (scan_string(sc, &name, &escaped) != OK || push_name(sc, name) < 0) return DEFER;
        sc->members += 2;
        if (!take(sc, ':') || scan_value(sc, depth) != OK) return DEFER;
    } while (take(sc, ','));
    if (!take(sc, '}') || !names_unique(sc, base)) return DEFER;
    sc->n_names = base;
    return OK;
}

/* A type tag's text (tag_of's switch on bytes). */
static int tag_text(Span t) { return tag_bytes(t.p, t.n); }

/* One scalar of a type tag's kind: S any string, N a short plain number, B canonical base64. */
static int scan_scalar(Scan *sc, int t)
{
    Span v;
    int escaped;
    if (scan_string(sc, &v, &escaped) != OK) return DEFER;
    if (t == T_S) return OK;
    if (escaped) return DEFER;
    if (t == T_N) return short_number_bytes(v.p, v.n) ? OK : DEFER;
    return canonical_b64_bytes((const unsigned char *)v.p, v.n) ? OK : DEFER;
}

/* One attribute value at `depth`: what walk_value accepts, read from the text. */
static int scan_value(Scan *sc, int depth)
{
    Span tag;
    if (!take(sc, '{') || scan_plain_string(sc, &tag) != OK || !take(sc, ':')) return DEFER;
    int t = tag_text(tag), r = DEFER;
    switch (t) {
    case T_S: case T_N: case T_B:
        r = scan_scalar(sc, t);
        break;
    case T_BOOL:
        r = peek(sc) == 't' ? scan_literal(sc, "true") : scan_literal(sc, "false");
        break;
    case T_NULL:
        r = scan_literal(sc, "true");
        break;
    case T_SS: case T_NS: case T_BS: {
        int element = t == T_SS ? T_S : t == T_NS ? T_N : T_B;
        if (!take(sc, '[')) return DEFER;
        if (take(sc, ']')) { r = OK; break; }
        do {
            if (scan_scalar(sc, element) != OK) return DEFER;
        } while (take(sc, ','));
        r = take(sc, ']') ? OK : DEFER;
        break;
    }
    case T_L:
        if (!take(sc, '[')) return DEFER;
        if (take(sc, ']')) { r = OK; break; }
        if (depth >= MAX_NESTING) return DEFER;
        do {
            sc->members++;
            if (scan_value(sc, depth + 1) != OK) return DEFER;
        } while (take(sc, ','));
        r = take(sc, ']') ? OK : DEFER;
        break;
    case T_M:
        if (!take(sc, '{')) return DEFER;
        if (peek(sc) != '}' && depth >= MAX_NESTING) return DEFER;
        r = scan_map_body(sc, depth + 1);
        break;
    }
    if (r != OK) return DEFER;
    return take(sc, '}') ? OK : DEFER;
}

/* An attribute map (keys, an image, an item): *out its text; *compact whether that text is
 * orjson's own (no whitespace inside). */
static int scan_map(Scan *sc, Span *out, int *compact)
{
    if (peek(sc) != '{') return DEFER;
    const unsigned char *start = sc->p;
    sc->p++;
    sc->spaced = 0;
    if (scan_map_body(sc, 1) != OK) return DEFER;
    out->p = (const char *)start;
    out->n = sc->p - start;
    *compact = !sc->spaced;
    return OK;
}

static int span_is(Span s, const char *text)
{
    size_t n = strlen(text);
    return (size_t)s.n == n && memcmp(s.p, text, n) == 0;
}

/* -- GetRecords pages as text ------------------------------------------------------------- */

/* What a record is made of, as slices of the body. A kind is ABSENT, NUL (JSON null), or
 * GIVEN. */
enum { ABSENT, NUL, GIVEN };

typedef struct {
    int op, ttl;
    int eid_kind, seq_kind, new_kind, old_kind;
    int new_compact, old_compact;
    Span eid, seq, keys, new_image, old_image;
    int64_t created_us;
} PageRecord;

typedef struct {
    PageRecord *records;
    Py_ssize_t n, cap;
    int next_kind;
    Span next;
} Page;

/* A string or null: *kind says which. */
static int scan_optional_string(Scan *sc, int *kind, Span *out)
{
    if (peek(sc) == 'n') {
        *kind = NUL;
        return scan_literal(sc, "null");
    }
    *kind = GIVEN;
    return scan_plain_string(sc, out);
}

/* An image: an attribute map, or null (the record then has none, as stream_record reads it). */
static int scan_image(Scan *sc, int *kind, Span *out, int *compact)
{
    if (peek(sc) == 'n') {
        *kind = NUL;
        return scan_literal(sc, "null");
    }
    *kind = GIVEN;
    return scan_map(sc, out, compact);
}

/* Python's _PyTime_RoundHalfEven, which datetime.fromtimestamp rounds microseconds with. */
static double round_half_even(double x)
{
    double rounded = round(x);
    if (fabs(x - rounded) == 0.5) rounded = 2.0 * round(x / 2.0);
    return rounded;
}

/* ApproximateCreationDateTime in epoch microseconds, as read_page's datetime holds it: an
 * integer exactly; a fraction or exponent (AWS writes e.g. 1.46480646E9) read as the
 * nearest double, as orjson reads it, and rounded to the microsecond half to even as
 * datetime.fromtimestamp rounds it. Not before the epoch nor after the year 9999
 * (deferred: the reference decides those). */
static int scan_time(Scan *sc, int64_t *micros)
{
    if (peek(sc) < '0' || *sc->p > '9') return DEFER;
    const unsigned char *start = sc->p, *p = start, *end = sc->end;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p - start > 1 && start[0] == '0') return DEFER;
    if (p >= end || (*p != '.' && *p != 'e' && *p != 'E')) {
        int64_t s;
        if (scan_integer(sc, &s) != OK || s > 253402300799LL) return DEFER;
        *micros = s * 1000000;
        return OK;
    }
    if (*p == '.') {
        const unsigned char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == digits) return DEFER;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        const unsigned char *digits = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == digits) return DEFER;
    }
    char text[64];
    if (p - start >= (Py_ssize_t)sizeof text) return DEFER;
    memcpy(text, start, p - start);
    text[p - start] = 0;
    char *stop;
    double d = PyOS_string_to_double(text, &stop, NULL);
    if (d == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return DEFER; }
    if (*stop != 0 || !isfinite(d)) return DEFER;
    double whole, part = modf(d, &whole) * 1e6;
    part = round_half_even(part);
    if (part >= 1e6) { part -= 1e6; whole += 1.0; }
    if (whole < 0 || whole > 253402300799.0 || part < 0) return DEFER;
    *micros = (int64_t)whole * 1000000 + (int64_t)part;
    sc->p = p;
    return OK;
}

/* `dynamodb` of a record. */
static int scan_ddb(Scan *sc, PageRecord *r, int *has_keys, int *has_created)
{
    int seen_new = 0, seen_old = 0, seen_seq = 0, compact;
    if (!take(sc, '{')) return DEFER;
    if (take(sc, '}')) return OK;
    do {
        Span name;
        int escaped, rc;
        if (scan_string(sc, &name, &escaped) != OK || !take(sc, ':')) return DEFER;
        if (span_is(name, "Keys")) {
            if ((*has_keys)++) return DEFER;
            rc = scan_map(sc, &r->keys, &compact);
        } else if (span_is(name, "NewImage")) {
            if (seen_new++) return DEFER;
            rc = scan_image(sc, &r->new_kind, &r->new_image, &r->new_compact);
        } else if (span_is(name, "OldImage")) {
            if (seen_old++) return DEFER;
            rc = scan_image(sc, &r->old_kind, &r->old_image, &r->old_compact);
        } else if (span_is(name, "SequenceNumber")) {
            if (seen_seq++) return DEFER;
            rc = scan_optional_string(sc, &r->seq_kind, &r->seq);
        } else if (span_is(name, "ApproximateCreationDateTime")) {
            if ((*has_created)++) return DEFER;
            rc = scan_time(sc, &r->created_us);
        } else {
            rc = skip_value(sc, 3);
        }
        if (rc != OK) return DEFER;
    } while (take(sc, ','));
    return take(sc, '}') ? OK : DEFER;
}

/* `userIdentity` of a record: *type_kind / *principal_kind ABSENT, GIVEN (a plain string,
 * in the spans) or NUL (anything else). Only an object is read; anything else is skipped. */
static int scan_identity(Scan *sc, int *is_object, int *type_kind, Span *type,
                         int *principal_kind, Span *principal)
{
    if (peek(sc) != '{') return skip_value(sc, 2);
    *is_object = 1;
    sc->p++;
    if (take(sc, '}')) return OK;
    do {
        Span name;
        int escaped, *kind = NULL;
        Span *out = NULL;
        if (scan_string(sc, &name, &escaped) != OK || !take(sc, ':')) return DEFER;
        if (span_is(name, "Type")) { kind = type_kind; out = type; }
        else if (span_is(name, "PrincipalId")) { kind = principal_kind; out = principal; }
        if (kind == NULL) {
            if (skip_value(sc, 3) != OK) return DEFER;
            continue;
        }
        if (*kind != ABSENT) return DEFER;
        if (peek(sc) == '"') {
            *kind = GIVEN;
            if (scan_plain_string(sc, out) != OK) return DEFER;
        } else {
            *kind = NUL;
            if (skip_value(sc, 3) != OK) return DEFER;
        }
    } while (take(sc, ','));
    return take(sc, '}') ? OK : DEFER;
}

static int scan_record(Scan *sc, PageRecord *r)
{
    int has_ddb = 0, has_name = 0, has_eid = 0, has_identity = 0, has_keys = 0, has_created = 0;
    int identity_object = 0, type_kind = ABSENT, principal_kind = ABSENT;
    Span event_name = {NULL, 0}, type = {NULL, 0}, principal = {NULL, 0};
    memset(r, 0, sizeof *r);
    if (!take(sc, '{')) return DEFER;
    if (!take(sc, '}')) {
        do {
            Span name;
            int escaped, rc;
            if (scan_string(sc, &name, &escaped) != OK || !take(sc, ':')) return DEFER;
            if (span_is(name, "dynamodb")) {
                if (has_ddb++) return DEFER;
                rc = scan_ddb(sc, r, &has_keys, &has_created);
            } else if (span_is(name, "eventName")) {
                if (has_name++) return DEFER;
                rc = scan_plain_string(sc, &event_name);
            } else if (span_is(name, "eventID")) {
                if (has_eid++) return DEFER;
                rc = scan_optional_string(sc, &r->eid_kind, &r->eid);
            } else if (span_is(name, "userIdentity")) {
                if (has_identity++) return DEFER;
                rc = scan_identity(sc, &identity_object, &type_kind, &type, &principal_kind,
                                   &principal);
            } else {
                rc = skip_value(sc, 2);
            }
            if (rc != OK) return DEFER;
        } while (take(sc, ','));
        if (!take(sc, '}')) return DEFER;
    }
    if (!has_ddb || !has_name || !has_keys || !has_created) return DEFER;
    if (span_is(event_name, "MODIFY")) r->op = OP_MODIFY;
    else if (span_is(event_name, "INSERT")) r->op = OP_INSERT;
    else if (span_is(event_name, "REMOVE")) r->op = OP_REMOVE;
    else return DEFER;
    if (r->op == OP_REMOVE && identity_object && type_kind != ABSENT && principal_kind != ABSENT) {
        if (type_kind != GIVEN || principal_kind != GIVEN) return DEFER;
        Py_ssize_t n;
        const char *ttl_text = PyUnicode_AsUTF8AndSize(ttl_principal, &n);
        if (ttl_text == NULL) return FAIL;
        r->ttl = span_is(type, "Service") && principal.n == n && memcmp(principal.p, ttl_text, n) == 0;
    }
    return OK;
}

/* The whole body: its records and NextShardIterator, or DEFER. */
static int scan_page(const char *body, Py_ssize_t size, Page *page)
{
    Scan sc = {(const unsigned char *)body, (const unsigned char *)body + size, 0, NULL, 0, 0, 0};
    int has_records = 0, has_next = 0, r = DEFER;
    page->n = 0;
    page->next_kind = ABSENT;
    if (!take(&sc, '{')) goto out;
    if (!take(&sc, '}')) {
        do {
            Span name;
            int escaped;
            if (scan_string(&sc, &name, &escaped) != OK || !take(&sc, ':')) goto out;
            if (span_is(name, "Records")) {
                if (has_records++ || !take(&sc, '[')) goto out;
                if (take(&sc, ']')) continue;
                do {
                    if (page->n == page->cap) {
                        Py_ssize_t cap = page->cap ? 2 * page->cap : 256;
                        PageRecord *grown = PyMem_Realloc(page->records, cap * sizeof(PageRecord));
                        if (grown == NULL) goto out;
                        page->records = grown;
                        page->cap = cap;
                    }
                    if (scan_record(&sc, &page->records[page->n]) != OK) goto out;
                    page->n++;
                } while (take(&sc, ','));
                if (!take(&sc, ']')) goto out;
            } else if (span_is(name, "NextShardIterator")) {
                if (has_next++ || scan_optional_string(&sc, &page->next_kind, &page->next) != OK)
                    goto out;
            } else if (skip_value(&sc, 1) != OK) {
                goto out;
            }
        } while (take(&sc, ','));
        if (!take(&sc, '}')) goto out;
    }
    skip_ws(&sc);
    r = sc.p == sc.end ? OK : DEFER;
out:
    PyMem_Free(sc.names);
    return r;
}

static PyObject *span_text(int kind, Span s)
{
    if (kind != GIVEN) { Py_INCREF(Py_None); return Py_None; }
    return PyUnicode_DecodeUTF8(s.p, s.n, NULL);
}

static PyObject *span_bytes(Span s) { return PyBytes_FromStringAndSize(s.p, s.n); }

/* An image's envelope text: its slice when compact, else what orjson writes of it. */
static PyObject *image_json(Span s, int compact)
{
    PyObject *text = span_bytes(s);
    if (text == NULL || compact) return text;
    PyObject *value = PyObject_Vectorcall(loads_fn, &text, 1, NULL);
    Py_DECREF(text);
    if (value == NULL) return NULL;
    PyObject *out = dumps(value, 0);
    Py_DECREF(value);
    return out;
}

/* The event of one scanned record, versioned after *last (advanced), or NULL (deferred, or
 * with an exception set: the caller clears it and defers the page). */
static PyObject *page_event(const PageRecord *r, PyObject *table, PyObject *shard,
                            int64_t *last, PyObject *cls, PyObject *pending)
{
    PyObject *event = NULL, *keys_text = NULL, *keys = NULL, *key = NULL, *keys_json = NULL;
    PyObject *new_json = NULL, *old_json = NULL, *seq = NULL, *eid = NULL, *version = NULL;
    PyObject *created = NULL, *body = NULL, *encoded = NULL;
    if (*last >= INT64_MAX - 1) goto done;
    int64_t micros = r->created_us;
    int64_t v = micros > *last + 1 ? micros : *last + 1;
    if ((keys_text = span_bytes(r->keys)) == NULL) goto done;
    if ((keys = PyObject_Vectorcall(loads_fn, &keys_text, 1, NULL)) == NULL) goto done;
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto done;
    if (r->new_kind == GIVEN && (new_json = image_json(r->new_image, r->new_compact)) == NULL) goto done;
    if (r->old_kind == GIVEN && (old_json = image_json(r->old_image, r->old_compact)) == NULL) goto done;
    if ((seq = span_text(r->seq_kind, r->seq)) == NULL || (eid = span_text(r->eid_kind, r->eid)) == NULL)
        goto done;
    if ((version = PyLong_FromLongLong(v)) == NULL) goto done;
    if ((created = PyLong_FromLongLong(micros / 1000)) == NULL) goto done;
    body = envelope(table, r->op, ORIGIN_STREAM, version, keys_json, new_json, old_json, shard,
                    seq, eid, 1, micros / 1000, r->ttl);
    if ((encoded = encoded_pair(key, body)) == NULL) goto done;
    PyObject *values[N_FIELDS] = {
        table, op_members[r->op], keys, version, origin_members[ORIGIN_STREAM],
        new_json ? pending : Py_None, old_json ? pending : Py_None, shard, seq, eid, created,
        r->ttl ? Py_True : Py_False, new_json ? new_json : Py_None,
        old_json ? old_json : Py_None, encoded};
    if ((event = make_event_of((PyTypeObject *)cls, values)) != NULL) *last = v;
done:
    Py_XDECREF(keys_text); Py_XDECREF(keys); Py_XDECREF(key); Py_XDECREF(keys_json);
    Py_XDECREF(new_json); Py_XDECREF(old_json); Py_XDECREF(seq); Py_XDECREF(eid);
    Py_XDECREF(version); Py_XDECREF(created); Py_XDECREF(body); Py_XDECREF(encoded);
    return event;
}

/* An aware UTC datetime of epoch microseconds (what read_page makes of the wire's time). */
static PyObject *utc_datetime(int64_t micros)
{
    int64_t s = micros / 1000000, days = s / 86400, rem = s % 86400;
    /* civil_from_days (the inverse of days_from_civil), for days >= 0 */
    int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int y = (int)(yoe + era * 400 + (m <= 2));
    return PyDateTimeAPI->DateTime_FromDateAndTime(y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
                                                  (int)(rem % 60), (int)(micros % 1000000),
                                                  PyDateTime_TimeZone_UTC,
                                                  PyDateTimeAPI->DateTimeType);
}

/* What the reader keeps of a record until the processor makes its event: its position and
 * time, as read_page's record has them. */
static PyObject *page_summary(const PageRecord *r)
{
    PyObject *out = NULL, *ddb = NULL, *created = NULL, *seq = NULL, *eid = NULL;
    if ((created = utc_datetime(r->created_us)) == NULL) goto done;
    if ((ddb = PyDict_New()) == NULL || PyDict_SetItem(ddb, s_ACDT, created) < 0) goto done;
    if (r->seq_kind != ABSENT &&
        ((seq = span_text(r->seq_kind, r->seq)) == NULL || PyDict_SetItem(ddb, s_SequenceNumber, seq) < 0))
        goto done;
    if ((out = PyDict_New()) == NULL) goto done;
    if (PyDict_SetItem(out, s_eventName, r->op == OP_MODIFY ? s_MODIFY : r->op == OP_INSERT ? s_INSERT : s_REMOVE) < 0 ||
        (r->eid_kind != ABSENT &&
         ((eid = span_text(r->eid_kind, r->eid)) == NULL || PyDict_SetItem(out, s_eventID, eid) < 0)) ||
        PyDict_SetItem(out, s_dynamodb, ddb) < 0)
        Py_CLEAR(out);
done:
    Py_XDECREF(ddb); Py_XDECREF(created); Py_XDECREF(seq); Py_XDECREF(eid);
    return out;
}

/* A page the scanner took, between page_records and stream_page: its records' slices, and
 * the body they point into (kept alive with them). */
typedef struct {
    PyObject *body;
    Page page;
} Scanned;

static const char SCANNED[] = "ddb_bridge.scanned_page";

static void scanned_free(PyObject *capsule)
{
    Scanned *scanned = PyCapsule_GetPointer(capsule, SCANNED);
    if (scanned == NULL) { PyErr_Clear(); return; }
    Py_XDECREF(scanned->body);
    PyMem_Free(scanned->page.records);
    PyMem_Free(scanned);
}

/* page_records(body): (a summary of each record, NextShardIterator, the scanned page) of a
 * whole GetRecords body, or None when the scanner cannot prove a record: read_page then
 * reads the body, and decides and names any problem. The scanned page is stream_page's. */
static PyObject *py_page_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 1) { PyErr_SetString(PyExc_TypeError, "page_records: 1 argument, after configure()"); return NULL; }
    PyObject *body = args[0];
    if (!PyBytes_CheckExact(body)) Py_RETURN_NONE;
    Scanned *scanned = PyMem_Calloc(1, sizeof(Scanned));
    if (scanned == NULL) return PyErr_NoMemory();
    PyObject *list = NULL, *next = NULL, *capsule = NULL, *result = NULL;
    if (scan_page(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), &scanned->page) != OK) goto defer;
    Py_INCREF(body);
    scanned->body = body;
    if ((capsule = PyCapsule_New(scanned, SCANNED, scanned_free)) == NULL) goto defer;
    Page *page = &scanned->page;
    scanned = NULL; /* the capsule's now */
    if ((list = PyList_New(page->n)) == NULL) goto defer;
    for (Py_ssize_t i = 0; i < page->n; i++) {
        PyObject *item = page_summary(&page->records[i]);
        if (item == NULL) goto defer;
        PyList_SET_ITEM(list, i, item);
    }
    if ((next = span_text(page->next_kind, page->next)) == NULL) goto defer;
    result = PyTuple_Pack(3, list, next, capsule);
    if (result != NULL) goto done;
defer:
    result = deferred();
done:
    if (scanned != NULL) {
        Py_XDECREF(scanned->body);
        PyMem_Free(scanned->page.records);
        PyMem_Free(scanned);
    }
    Py_XDECREF(list); Py_XDECREF(next); Py_XDECREF(capsule);
    return result;
}

/* stream_page(scanned, table, shard_id, last_version, event_cls, pending): the events of a
 * page page_records scanned, every record versioned along the shard after last_version and
 * made as stream_record makes it, but with its images as text: `event_cls` (a ChangeEvent
 * subclass without slots of its own) gets `pending` in each present image's slot and the
 * image's text in new_image_json / old_image_json. None, for the whole page, when one
 * cannot be made so (a key number to normalise, a version past 64 bits): the
 * record-by-record path then decides. */
static PyObject *py_stream_page(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 6) { PyErr_SetString(PyExc_TypeError, "stream_page: 6 arguments, after configure()"); return NULL; }
    Scanned *scanned = PyCapsule_IsValid(args[0], SCANNED) ? PyCapsule_GetPointer(args[0], SCANNED) : NULL;
    PyObject *table = args[1], *shard = args[2], *cls = args[4], *pending = args[5];
    if (scanned == NULL || !PyUnicode_CheckExact(table) || !PyUnicode_CheckExact(shard) ||
        !PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)event_type) ||
        ((PyTypeObject *)cls)->tp_basicsize != ((PyTypeObject *)event_type)->tp_basicsize)
        Py_RETURN_NONE;
    int overflow = 0;
    int64_t last = PyLong_AsLongLongAndOverflow(args[3], &overflow);
    if (overflow || (last == -1 && PyErr_Occurred())) { PyErr_Clear(); Py_RETURN_NONE; }
    Page *page = &scanned->page;
    PyObject *list = PyList_New(page->n);
    if (list == NULL) goto defer;
    for (Py_ssize_t i = 0; i < page->n; i++) {
        PyObject *event = page_event(&page->records[i], table, shard, &last, cls, pending);
        if (event == NULL) goto defer;
        PyList_SET_ITEM(list, i, event);
    }
    return list;
defer:
    PyErr_Clear();
    Py_XDECREF(list);
    Py_RETURN_NONE;
}

/* -- export lines as text ----------------------------------------------------------------- */

/* export_text(line, table, key_names, key_types, version, origin, event_cls, pending): the
 * event of one full-export line `{"Item": ...}` as export_line makes it (passthrough), read
 * as text: the item is checked by the scanner, the key attributes are the only values
 * parsed, and the event (`event_cls`, as stream_page's) keeps the item's text and `pending`
 * in its image slot. None when the scanner cannot prove the line: export_line, then the
 * reader's Python path, decide. */
static PyObject *py_export_text(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 8) { PyErr_SetString(PyExc_TypeError, "export_text: 8 arguments, after configure()"); return NULL; }
    PyObject *line = args[0], *table = args[1], *key_names = args[2], *key_types = args[3];
    PyObject *version = args[4], *origin = args[5], *cls = args[6], *pending = args[7];
    if (!PyBytes_CheckExact(line) || !PyUnicode_CheckExact(table) || !PyTuple_CheckExact(key_names) ||
        !PyTuple_CheckExact(key_types) || !PyType_Check(cls) ||
        !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)event_type) ||
        ((PyTypeObject *)cls)->tp_basicsize != ((PyTypeObject *)event_type)->tp_basicsize)
        Py_RETURN_NONE;
    int origin_index = -1;
    for (int i = 0; i < 4; i++)
        if (origin == origin_members[i]) origin_index = i;
    Py_ssize_t n_keys = PyTuple_GET_SIZE(key_names);
    if (origin_index < 0 || n_keys < 1 || n_keys > 2) Py_RETURN_NONE;
    /* The key names as the line must spell them (a name needing an escape: deferred). */
    Span wanted[2], found[2] = {{NULL, 0}, {NULL, 0}};
    for (Py_ssize_t i = 0; i < n_keys; i++) {
        PyObject *name = PyTuple_GET_ITEM(key_names, i);
        if (!PyUnicode_CheckExact(name)) Py_RETURN_NONE;
        wanted[i].p = PyUnicode_AsUTF8AndSize(name, &wanted[i].n);
        if (wanted[i].p == NULL) { PyErr_Clear(); Py_RETURN_NONE; }
        for (Py_ssize_t j = 0; j < wanted[i].n; j++) {
            unsigned char c = (unsigned char)wanted[i].p[j];
            if (c < 0x20 || c == '"' || c == '\\') Py_RETURN_NONE;
        }
    }
    const char *s = PyBytes_AS_STRING(line);
    Scan sc = {(const unsigned char *)s, (const unsigned char *)s + PyBytes_GET_SIZE(line), 0, NULL, 0, 0, 0};
    PyObject *result = NULL, *keys = NULL, *key = NULL, *keys_json = NULL, *text = NULL;
    PyObject *body = NULL, *encoded = NULL;
    Span name, item;
    int escaped;
    if (!take(&sc, '{') || scan_plain_string(&sc, &name) != OK || !span_is(name, "Item") ||
        !take(&sc, ':') || peek(&sc) != '{')
        goto defer;
    item.p = (const char *)sc.p;
    sc.p++;
    sc.spaced = 0;
    if (!take(&sc, '}')) {
        do {
            if (scan_string(&sc, &name, &escaped) != OK || push_name(&sc, name) < 0) goto defer;
            if (!take(&sc, ':') || peek(&sc) < 0) goto defer;
            const char *value = (const char *)sc.p;
            if (scan_value(&sc, 1) != OK) goto defer;
            for (Py_ssize_t i = 0; i < n_keys; i++)
                if (!escaped && name.n == wanted[i].n && memcmp(name.p, wanted[i].p, name.n) == 0) {
                    found[i].p = value;
                    found[i].n = (const char *)sc.p - value;
                }
        } while (take(&sc, ','));
        if (!take(&sc, '}') || !names_unique(&sc, 0)) goto defer;
    }
    item.n = (const char *)sc.p - item.p;
    int compact = !sc.spaced;
    if (!take(&sc, '}')) goto defer;
    skip_ws(&sc); /* the newline, and any other whitespace orjson.loads lets through */
    if (sc.p != sc.end) goto defer;
    /* {name: value} in key-schema order (attrs.extract_keys), each value parsed alone. */
    if ((keys = PyDict_New()) == NULL) goto defer;
    for (Py_ssize_t i = 0; i < n_keys; i++) {
        if (found[i].p == NULL) goto defer; /* a key attribute missing: the reference names it */
        PyObject *value_text = span_bytes(found[i]);
        if (value_text == NULL) goto defer;
        PyObject *value = PyObject_Vectorcall(loads_fn, &value_text, 1, NULL);
        Py_DECREF(value_text);
        if (value == NULL || PyDict_SetItem(keys, PyTuple_GET_ITEM(key_names, i), value) < 0) {
            Py_XDECREF(value);
            goto defer;
        }
        Py_DECREF(value);
    }
    if (!key_types_ok(keys, key_names, key_types)) goto defer;
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto defer;
    if ((text = image_json(item, compact)) == NULL) goto defer;
    body = envelope(table, OP_SNAPSHOT, origin_index, version, keys_json, text, NULL, NULL, NULL,
                    NULL, 0, 0, 0);
    if ((encoded = encoded_pair(key, body)) == NULL) goto defer;
    PyObject *values[N_FIELDS] = {
        table, op_members[OP_SNAPSHOT], keys, version, origin, pending, Py_None, Py_None, Py_None,
        Py_None, Py_None, Py_False, text, Py_None, encoded};
    result = make_event_of((PyTypeObject *)cls, values);
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    PyMem_Free(sc.names);
    Py_XDECREF(keys); Py_XDECREF(key); Py_XDECREF(keys_json); Py_XDECREF(text);
    Py_XDECREF(body); Py_XDECREF(encoded);
    return result;
}

/* -- scanned items written as text ------------------------------------------------------- */

/* A scanned item (boto3's form) written straight to the DynamoDB JSON orjson.dumps writes of
 * attrs.from_boto(item), without building that wire-form map: it accepts exactly what
 * boto_value accepts (else DEFER), and writes what orjson writes of it: names and strings as
 * UTF-8 with \" \\ \b \f \n \r \t and \u00xx (lowercase) for the other controls, everything
 * else as it is. */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_room(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_room(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* A str as orjson writes it; DEFER for what it refuses (lone surrogates) or a str subclass. */
static int put_json_str(Buf *b, PyObject *str)
{
    if (!PyUnicode_CheckExact(str)) return DEFER;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(str, &n);
    if (s == NULL) { PyErr_Clear(); return DEFER; }
    if (buf_room(b, 2 + 6 * n) < 0) return FAIL; /* at most \u00xx per byte */
    char *o = b->p + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = "0123456789abcdef"[c >> 4];
            *o++ = "0123456789abcdef"[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->p;
    return OK;
}

/* Base64 of a bytes-like value, quoted (b64encode's text needs no escape). */
static int put_b64(Buf *b, PyObject *value)
{
    PyObject *text = b64encode(value);
    if (text == NULL) { PyErr_Clear(); return DEFER; }
    int r = OK;
    if (buf_put(b, "\"", 1) < 0 ||
        buf_put(b, (const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text)) < 0 ||
        buf_put(b, "\"", 1) < 0)
        r = FAIL;
    Py_DECREF(text);
    return r;
}

static int write_boto_map(Buf *b, PyObject *map, int depth);

static int write_boto_value(Buf *b, PyObject *av, int depth)
{
    if (!PyDict_CheckExact(av) || PyDict_GET_SIZE(av) != 1) return DEFER;
    Py_ssize_t pos = 0, ignored = 0;
    PyObject *tag, *value;
    PyDict_Next(av, &pos, &tag, &value);
    int t = tag_of(tag), r;
    switch (t) {
    case T_B: case T_BS: case T_M: case T_L:
        break;
    default: /* S, N, BOOL, NULL, SS, NS: the wire form's checks, the value kept */
        if (walk_value(av, depth, &ignored) != OK) return DEFER;
    }
    if (buf_put(b, "{", 1) < 0 || put_json_str(b, tag) != OK || buf_put(b, ":", 1) < 0) return FAIL;
    switch (t) {
    case T_S:
        return put_json_str(b, value) == OK && buf_put(b, "}", 1) == 0 ? OK : DEFER;
    case T_N: /* a short plain number: ASCII digits, '-' and '.', nothing to escape */
        return put_json_str(b, value) == OK && buf_put(b, "}", 1) == 0 ? OK : DEFER;
    case T_BOOL:
        return buf_put(b, value == Py_True ? "true}" : "false}", value == Py_True ? 5 : 6) == 0 ? OK : FAIL;
    case T_NULL:
        return buf_put(b, "true}", 5) == 0 ? OK : FAIL;
    case T_B:
        if ((r = put_b64(b, value)) != OK) return r;
        return buf_put(b, "}", 1) == 0 ? OK : FAIL;
    case T_M:
        if (!PyDict_CheckExact(value)) return DEFER;
        if (PyDict_GET_SIZE(value) && depth >= MAX_NESTING) return DEFER;
        if ((r = write_boto_map(b, value, depth + 1)) != OK) return r;
        return buf_put(b, "}", 1) == 0 ? OK : FAIL;
    case T_L: case T_BS: case T_SS: case T_NS: {
        if (!PyList_CheckExact(value)) return DEFER;
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (t == T_L && n && depth >= MAX_NESTING) return DEFER;
        if (buf_put(b, "[", 1) < 0) return FAIL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = PyList_GET_ITEM(value, i);
            if (i && buf_put(b, ",", 1) < 0) return FAIL;
            r = t == T_L ? write_boto_value(b, v, depth + 1) : t == T_BS ? put_b64(b, v) : put_json_str(b, v);
            if (r != OK) return r;
        }
        return buf_put(b, "]}", 2) == 0 ? OK : FAIL;
    }
    }
    return DEFER;
}

static int write_boto_map(Buf *b, PyObject *map, int depth)
{
    if (!PyDict_CheckExact(map)) return DEFER;
    if (buf_put(b, "{", 1) < 0) return FAIL;
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    while (PyDict_Next(map, &pos, &k, &v)) {
        int r;
        if (i++ && buf_put(b, ",", 1) < 0) return FAIL;
        if ((r = put_json_str(b, k)) != OK) return r;
        if (buf_put(b, ":", 1) < 0) return FAIL;
        if ((r = write_boto_value(b, v, depth)) != OK) return r;
    }
    return buf_put(b, "}", 1) == 0 ? OK : FAIL;
}

/* scan_text(raw, table, key_names, version, event_cls, pending): (event, size of its
 * DynamoDB JSON) of a scanned item in boto3's form, as scan_item makes it, the item written
 * as text by the core and kept as such in the event (`event_cls`, as stream_page's); or
 * None: scan_item, then the reader's Python path, decide. */
static PyObject *py_scan_text(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!configured || nargs != 6) { PyErr_SetString(PyExc_TypeError, "scan_text: 6 arguments, after configure()"); return NULL; }
    PyObject *raw = args[0], *table = args[1], *key_names = args[2], *version = args[3];
    PyObject *cls = args[4], *pending = args[5];
    if (!PyDict_CheckExact(raw) || !PyTuple_CheckExact(key_names) || !PyType_Check(cls) ||
        !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)event_type) ||
        ((PyTypeObject *)cls)->tp_basicsize != ((PyTypeObject *)event_type)->tp_basicsize)
        Py_RETURN_NONE;
    Buf b = {NULL, 0, 0};
    PyObject *result = NULL, *keys = NULL, *key = NULL, *keys_json = NULL, *text = NULL;
    PyObject *body = NULL, *encoded = NULL, *event = NULL;
    if (write_boto_map(&b, raw, 1) != OK) goto defer;
    if ((text = PyBytes_FromStringAndSize(b.p, b.len)) == NULL) goto defer;
    /* The key attributes in wire form, in key-schema order (attrs.extract_keys). */
    if ((keys = PyDict_New()) == NULL) goto defer;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key_names); i++) {
        PyObject *name = PyTuple_GET_ITEM(key_names, i);
        PyObject *av = PyDict_GetItemWithError(raw, name);
        if (av == NULL) goto defer;
        PyObject *wire = boto_value(av, 1);
        if (wire == NULL || PyDict_SetItem(keys, name, wire) < 0) { Py_XDECREF(wire); goto defer; }
        Py_DECREF(wire);
    }
    if ((key = canonical_key(keys, &keys_json)) == NULL) goto defer;
    body = envelope(table, OP_SNAPSHOT, ORIGIN_SCAN, version, keys_json, text, NULL, NULL, NULL,
                    NULL, 0, 0, 0);
    if ((encoded = encoded_pair(key, body)) == NULL) goto defer;
    PyObject *values[N_FIELDS] = {
        table, op_members[OP_SNAPSHOT], keys, version, origin_members[ORIGIN_SCAN], pending,
        Py_None, Py_None, Py_None, Py_None, Py_None, Py_False, text, Py_None, encoded};
    if ((event = make_event_of((PyTypeObject *)cls, values)) == NULL) goto defer;
    result = Py_BuildValue("(On)", event, PyBytes_GET_SIZE(text));
    if (result == NULL) goto defer;
    goto done;
defer:
    result = deferred();
done:
    PyMem_Free(b.p);
    Py_XDECREF(keys); Py_XDECREF(key); Py_XDECREF(keys_json); Py_XDECREF(text);
    Py_XDECREF(body); Py_XDECREF(encoded); Py_XDECREF(event);
    return result;
}

/* -- configuration ------------------------------------------------------------------------ */

/* configure(ChangeEvent, field_names, ops, origins, orjson.loads, orjson.dumps,
 *           orjson.OPT_SORT_KEYS, TTL_PRINCIPAL): the core checks that the event's fields
 * are the ones it sets, in order, and raises ValueError otherwise (the caller then runs
 * without it). */
static PyObject *py_configure(PyObject *self, PyObject *args)
{
    PyObject *type, *names, *ops, *origins, *loads, *dumps_, *opt, *principal;
    if (!PyArg_ParseTuple(args, "OO!O!O!OOOU", &type, &PyTuple_Type, &names, &PyTuple_Type, &ops,
                          &PyTuple_Type, &origins, &loads, &dumps_, &opt, &principal))
        return NULL;
    if (!PyType_Check(type) || PyTuple_GET_SIZE(names) != N_FIELDS ||
        PyTuple_GET_SIZE(ops) != 4 || PyTuple_GET_SIZE(origins) != 4) {
        PyErr_SetString(PyExc_ValueError, "ChangeEvent's fields, Op or Origin are not the ones the compiled core knows");
        return NULL;
    }
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, FIELD_NAMES[i]) != 0) {
            PyErr_Format(PyExc_ValueError, "ChangeEvent field %d is %R, the compiled core sets %s", i, name, FIELD_NAMES[i]);
            return NULL;
        }
        PyObject *d = PyObject_GetAttr(type, name);
        if (d == NULL) return NULL;
        if (Py_TYPE(d)->tp_descr_set == NULL || Py_TYPE(d)->tp_descr_get == NULL) {
            Py_DECREF(d);
            PyErr_Format(PyExc_ValueError, "ChangeEvent.%U is not a slot", name);
            return NULL;
        }
        Py_XSETREF(field_descr[i], d);
    }
    for (int i = 0; i < 4; i++) {
        Py_INCREF(PyTuple_GET_ITEM(ops, i));
        Py_XSETREF(op_members[i], PyTuple_GET_ITEM(ops, i));
        Py_INCREF(PyTuple_GET_ITEM(origins, i));
        Py_XSETREF(origin_members[i], PyTuple_GET_ITEM(origins, i));
    }
    Py_INCREF(type); Py_XSETREF(event_type, type);
    Py_INCREF(loads); Py_XSETREF(loads_fn, loads);
    Py_INCREF(dumps_); Py_XSETREF(dumps_fn, dumps_);
    Py_INCREF(opt); Py_XSETREF(sort_keys_opt, opt);
    Py_INCREF(principal); Py_XSETREF(ttl_principal, principal);
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS, "configure(ChangeEvent, field_names, ops, origins, loads, dumps, OPT_SORT_KEYS, ttl_principal)"},
    {"export_line", (PyCFunction)(void (*)(void))py_export_line, METH_FASTCALL, "The event of a full export line, or None."},
    {"stream_record", (PyCFunction)(void (*)(void))py_stream_record, METH_FASTCALL, "The event of a wire-form stream record, or None."},
    {"scan_item", (PyCFunction)(void (*)(void))py_scan_item, METH_FASTCALL, "(event, JSON size) of a scanned item, or None."},
    {"encode_event", (PyCFunction)(void (*)(void))py_encode_event, METH_FASTCALL, "The envelope body of an event, or None."},
    {"decode_text", (PyCFunction)(void (*)(void))py_decode_text, METH_FASTCALL, "An envelope's parts, images as text, or None."},
    {"build_event", (PyCFunction)(void (*)(void))py_build_event, METH_FASTCALL, "An event of a ChangeEvent class from its 15 fields, in order."},
    {"stream_page", (PyCFunction)(void (*)(void))py_stream_page, METH_FASTCALL, "The events of a page page_records scanned, or None."},
    {"export_text", (PyCFunction)(void (*)(void))py_export_text, METH_FASTCALL, "The event of a full export line read as text, or None."},
    {"scan_text", (PyCFunction)(void (*)(void))py_scan_text, METH_FASTCALL, "(event, JSON size) of a scanned item written as text, or None."},
    {"page_records", (PyCFunction)(void (*)(void))py_page_records, METH_FASTCALL, "(record summaries, NextShardIterator, scanned page) of a GetRecords body, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__core(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    memset(B64_VALUE, -1, sizeof B64_VALUE);
    for (int i = 0; i < 64; i++) B64_VALUE[(unsigned char)B64[i]] = (signed char)i;
    for (int c = 0x20; c < 0x80; c++) PLAIN[c] = c != '"' && c != '\\';
    INTERN(s_S, "S"); INTERN(s_N, "N"); INTERN(s_B, "B"); INTERN(s_BOOL, "BOOL");
    INTERN(s_NULL, "NULL"); INTERN(s_SS, "SS"); INTERN(s_NS, "NS"); INTERN(s_BS, "BS");
    INTERN(s_L, "L"); INTERN(s_M, "M"); INTERN(s_Item, "Item"); INTERN(s_dynamodb, "dynamodb");
    INTERN(s_eventName, "eventName"); INTERN(s_Keys, "Keys"); INTERN(s_NewImage, "NewImage");
    INTERN(s_OldImage, "OldImage"); INTERN(s_SequenceNumber, "SequenceNumber");
    INTERN(s_eventID, "eventID"); INTERN(s_userIdentity, "userIdentity"); INTERN(s_Type, "Type");
    INTERN(s_PrincipalId, "PrincipalId"); INTERN(s_Service, "Service");
    INTERN(s_ACDT, "ApproximateCreationDateTime"); INTERN(s_INSERT, "INSERT");
    INTERN(s_MODIFY, "MODIFY"); INTERN(s_REMOVE, "REMOVE"); INTERN(s_option, "option");
    if ((kw_option = PyTuple_Pack(1, s_option)) == NULL) return NULL;
    return PyModule_Create(&module);
}

/*
 * mltrace_collector.index.decode._otlp_fast: walk a serialized OTLP ExportTraceServiceRequest and return
 * the per-span fields the lineage processor needs as plain Python objects (decode_spans),
 * or, for the common plain run span, its store rows directly (prepare_plain, further down).
 * Both are one walk (walk_request) with different callbacks for each resource and span.
 *
 * Why: walking the upb-parsed message from Python creates a wrapper object for every
 * KeyValue, AnyValue and WhichOneof() call (~15-20 us per span); reading the wire bytes
 * directly and building only the final str/int/list/dict objects is several times cheaper.
 *
 * Contract (see _otlp_fast.pyi): the caller has already parsed `data` with upb, so it is
 * valid protobuf; we still bounds-check every read and return None for anything we do not
 * model exactly. None means "use the pure-Python path", so it is always a correct answer;
 * a non-None answer must equal what walking the upb message would give. In particular we
 * return None where protobuf merge semantics would make a field-by-field walk wrong: a
 * non-repeated message field seen twice (upb merges the two), two members of the AnyValue
 * oneof (the last one wins in upb), a known field with an unexpected wire type (upb keeps
 * it as an unknown field), groups, truncated input or invalid UTF-8 in a decoded string.
 *
 * No global state is mutated (the key cache lives on the C stack of one call), and the GIL
 * is held throughout: the work is building Python objects.
 *
 * Field numbers are opentelemetry-proto v1 (checked against the installed descriptors):
 *   ExportTraceServiceRequest{1 resource_spans}
 *   ResourceSpans{1 resource, 2 scope_spans, 3 schema_url}
 *   Resource{1 attributes, 2 dropped_attributes_count, 3 entity_refs}
 *   ScopeSpans{1 scope, 2 spans, 3 schema_url}
 *   Span{1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
 *        7 start fixed64, 8 end fixed64, 9 attributes, 10 dropped_attributes_count,
 *        11 events, 12 dropped_events_count, 13 links, 14 dropped_links_count, 15 status,
 *        16 flags fixed32}
 *   Status{2 message, 3 code}
 *   KeyValue{1 key, 2 value, 3 key_strindex}
 *   AnyValue oneof value{1 string, 2 bool, 3 int64, 4 double, 5 array, 6 kvlist, 7 bytes,
 *                        8 string_value_strindex}
 *   ArrayValue{1 values}
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Result of every parse step. BAD: the input is malformed or outside what we model (the
 * call returns None). PYERR: a Python exception is set (e.g. MemoryError), propagated. */
typedef enum { OK = 0, BAD = 1, PYERR = -1 } Status;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

/* ---- wire primitives ------------------------------------------------------------------ */

/* Up to 10 bytes; bits beyond 64 are dropped, as upb does. */
static int
read_varint(Buf *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (b->p >= b->end)
            return 0;
        uint8_t byte = *b->p++;
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static int
read_tag(Buf *b, uint32_t *field, int *wire_type)
{
    uint64_t tag;
    if (!read_varint(b, &tag) || tag > UINT32_MAX || (tag >> 3) == 0)
        return 0;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return 1;
}

/* A length-delimited payload as a sub-buffer; the outer buffer moves past it. */
static int
read_len(Buf *b, Buf *sub)
{
    uint64_t n;
    if (!read_varint(b, &n) || n > (uint64_t)(b->end - b->p))
        return 0;
    sub->p = b->p;
    sub->end = b->p + n;
    b->p += n;
    return 1;
}

static int
read_fixed64(Buf *b, uint64_t *out)
{
    if (b->end - b->p < 8)
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) /* little-endian on the wire, whatever the host */
        v = (v << 8) | b->p[i];
    b->p += 8;
    *out = v;
    return 1;
}

/* Skip one field of an unknown (or uninteresting) number. Groups (3/4) are refused: they
 * are deprecated, never produced by OTLP exporters, and skipping them needs nesting. */
static int
skip_field(Buf *b, int wire_type)
{
    uint64_t ignored;
    Buf sub;
    switch (wire_type) {
    case WT_VARINT:
        return read_varint(b, &ignored);
    case WT_I64:
        if (b->end - b->p < 8)
            return 0;
        b->p += 8;
        return 1;
    case WT_LEN:
        return read_len(b, &sub);
    case WT_I32:
        if (b->end - b->p < 4)
            return 0;
        b->p += 4;
        return 1;
    default:
        return 0;
    }
}

/* Expected wire types of a message's fields, by field number (-1: any); see the header. */
typedef struct {
    const int8_t *types;
    uint32_t n;
} Fields;

#define FIELDS(t) ((Fields){t, (uint32_t)(sizeof t / sizeof *t)})

/* A known field with another wire type: upb keeps it as an unknown field, so we give up. */
static int
wrong_type(Fields fields, uint32_t field, int wt)
{
    return field < fields.n && fields.types[field] != -1 && fields.types[field] != wt;
}

/* The next occurrence of the length-delimited field `want` in *b, every other field
 * skipped: 1 found (its payload in *sub), 0 at the end of *b, -1 malformed or of the
 * wrong_type. */
static int
next_field(Buf *b, uint32_t want, Fields fields, Buf *sub)
{
    while (b->p < b->end) {
        uint32_t field;
        int wt;
        if (!read_tag(b, &field, &wt))
            return -1;
        if (wrong_type(fields, field, wt))
            return -1;
        if (field == want)
            return read_len(b, sub) ? 1 : -1;
        if (!skip_field(b, wt))
            return -1;
    }
    return 0;
}

static const int8_t request_fields[] = {-1, WT_LEN};             /* resource_spans */
static const int8_t array_fields[] = {-1, WT_LEN};               /* values */
static const int8_t resource_fields[] = {-1, WT_LEN, WT_VARINT, WT_LEN};
static const int8_t resource_spans_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN};
static const int8_t scope_spans_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN};
static const int8_t span_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_VARINT,
                                     WT_I64, WT_I64, WT_LEN, WT_VARINT, WT_LEN, WT_VARINT,
                                     WT_LEN, WT_VARINT, WT_LEN, WT_I32};

/* Strict UTF-8 decode; invalid UTF-8 (which upb also rejects for proto3 strings) -> BAD. */
static Status
decode_str(const Buf *s, PyObject **out)
{
    *out = PyUnicode_DecodeUTF8((const char *)s->p, s->end - s->p, NULL);
    if (*out != NULL)
        return OK;
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return BAD;
    }
    return PYERR;
}

/* ---- attribute key cache ---------------------------------------------------------------
 * The same ~10 keys repeat on every span of a request: one str object per distinct key and
 * request saves decoding and allocating it again, and dict insertion then hits the
 * identity fast path with a cached hash. Open addressing on the key's bytes; the entries
 * point into the request buffer, which outlives the call. When the table is full, keys are
 * simply decoded uncached. Keys are also interned, so that they are shared across requests
 * (and with interned constants the processor looks them up with). */
#define KEY_CACHE_SLOTS 64 /* power of two */
#define KEY_CACHE_MAX_LEN 128

typedef struct {
    const uint8_t *ptr;
    Py_ssize_t len;
    PyObject *str; /* owned; NULL = empty slot */
} KeyEntry;

typedef struct {
    KeyEntry slots[KEY_CACHE_SLOTS];
    int used;
} KeyCache;

static Status
cached_key(KeyCache *cache, const Buf *s, PyObject **out)
{
    Py_ssize_t len = s->end - s->p;
    if (len > KEY_CACHE_MAX_LEN || cache->used >= KEY_CACHE_SLOTS / 2) {
        Status st = decode_str(s, out);
        if (st == OK)
            PyUnicode_InternInPlace(out);
        return st;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++)
        h = (h ^ s->p[i]) * 16777619u;
    for (uint32_t i = h;; i++) { /* terminates: the table is at most half full */
        KeyEntry *e = &cache->slots[i & (KEY_CACHE_SLOTS - 1)];
        if (e->str == NULL) {
            Status st = decode_str(s, out);
            if (st != OK)
                return st;
            PyUnicode_InternInPlace(out);
            e->ptr = s->p;
            e->len = len;
            e->str = Py_NewRef(*out);
            cache->used++;
            return OK;
        }
        if (e->len == len && memcmp(e->ptr, s->p, (size_t)len) == 0) {
            *out = Py_NewRef(e->str);
            return OK;
        }
    }
}

static void
key_cache_clear(KeyCache *cache)
{
    for (int i = 0; i < KEY_CACHE_SLOTS; i++)
        Py_CLEAR(cache->slots[i].str);
}

/* ---- AnyValue -------------------------------------------------------------------------- */

typedef enum {
    AV_NONE = 0, /* no oneof member set */
    AV_STRING,
    AV_BOOL,
    AV_INT,
    AV_DOUBLE,
    AV_ARRAY,
    AV_OTHER /* kvlist, bytes, string_value_strindex: never simple */
} AnyKind;

typedef struct {
    AnyKind kind;
    Buf payload;     /* AV_STRING, AV_ARRAY */
    uint64_t scalar; /* AV_BOOL, AV_INT, AV_DOUBLE (raw bits) */
} AnyValueRaw;

/* Reads the AnyValue fields without building anything. More than one oneof member on the
 * wire -> BAD (upb would keep only the last one; not worth modelling). */
static Status
scan_any_value(Buf b, AnyValueRaw *av)
{
    av->kind = AV_NONE;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        if (!read_tag(&b, &field, &wt))
            return BAD;
        AnyKind kind;
        int want;
        switch (field) {
        case 1: kind = AV_STRING; want = WT_LEN; break;
        case 2: kind = AV_BOOL; want = WT_VARINT; break;
        case 3: kind = AV_INT; want = WT_VARINT; break;
        case 4: kind = AV_DOUBLE; want = WT_I64; break;
        case 5: kind = AV_ARRAY; want = WT_LEN; break;
        case 6: kind = AV_OTHER; want = WT_LEN; break;
        case 7: kind = AV_OTHER; want = WT_LEN; break;
        case 8: kind = AV_OTHER; want = WT_VARINT; break;
        default:
            if (!skip_field(&b, wt))
                return BAD;
            continue;
        }
        if (wt != want || av->kind != AV_NONE)
            return BAD;
        av->kind = kind;
        int ok;
        if (want == WT_LEN)
            ok = read_len(&b, &av->payload);
        else if (want == WT_VARINT)
            ok = read_varint(&b, &av->scalar);
        else
            ok = read_fixed64(&b, &av->scalar);
        if (!ok)
            return BAD;
    }
    return OK;
}

/* ArrayValue whose elements are all strings -> list[str] in *out; any other element ->
 * *out = NULL (not simple). Elements after the first non-string one are not examined: the
 * array is not simple whatever they hold. */
static Status
string_array(Buf b, PyObject **out)
{
    *out = NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return PYERR;
    Buf elem;
    int found;
    while ((found = next_field(&b, 1, FIELDS(array_fields), &elem)) == 1) {
        AnyValueRaw av;
        if (scan_any_value(elem, &av) != OK)
            goto bad;
        if (av.kind != AV_STRING) {
            Py_DECREF(list);
            return OK; /* not simple */
        }
        PyObject *s;
        Status st = decode_str(&av.payload, &s);
        if (st != OK) {
            Py_DECREF(list);
            return st;
        }
        int rc = PyList_Append(list, s);
        Py_DECREF(s);
        if (rc < 0) {
            Py_DECREF(list);
            return PYERR;
        }
    }
    if (found < 0)
        goto bad;
    *out = list;
    return OK;
bad:
    Py_DECREF(list);
    return BAD;
}

/* AnyValue -> a simple Python value in *out (new reference), or *out = NULL when the value
 * is not simple. *finite is cleared for a NaN or infinite double. */
static Status
simple_value(Buf b, PyObject **out, int *finite)
{
    AnyValueRaw av;
    *out = NULL;
    Status st = scan_any_value(b, &av);
    if (st != OK)
        return st;
    switch (av.kind) {
    case AV_STRING:
        return decode_str(&av.payload, out);
    case AV_BOOL:
        *out = PyBool_FromLong(av.scalar != 0);
        return OK;
    case AV_INT:
        *out = PyLong_FromLongLong((long long)(int64_t)av.scalar);
        return *out ? OK : PYERR;
    case AV_DOUBLE: {
        double d;
        memcpy(&d, &av.scalar, sizeof d);
        if (!isfinite(d))
            *finite = 0;
        *out = PyFloat_FromDouble(d);
        return *out ? OK : PYERR;
    }
    case AV_ARRAY:
        return string_array(av.payload, out);
    default:
        return OK; /* AV_NONE, AV_OTHER: not simple */
    }
}

/* ---- attributes ------------------------------------------------------------------------ */

/* Attributes being collected for one span or resource. `dict` becomes NULL (and stays so)
 * at the first value that is not simple. */
typedef struct {
    PyObject *dict;
    int finite;
} Attrs;

static Status
attrs_init(Attrs *a)
{
    a->dict = PyDict_New();
    a->finite = 1;
    return a->dict ? OK : PYERR;
}

/* One KeyValue. Its own fields are always checked; its value is read only while the dict
 * is still simple: once the dict is None, nothing inside a later value can change that. */
static Status
add_key_value(KeyCache *cache, Buf b, Attrs *a)
{
    Buf key = {b.p, b.p}; /* absent key: "" */
    Buf value;
    int has_value = 0;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        if (!read_tag(&b, &field, &wt))
            return BAD;
        if (field == 1) {
            if (wt != WT_LEN || !read_len(&b, &key))
                return BAD; /* a repeated scalar field: the last one wins, as in upb */
        }
        else if (field == 2) {
            if (wt != WT_LEN || has_value || !read_len(&b, &value))
                return BAD; /* a second `value` would be merged into the first by upb */
            has_value = 1;
        }
        else if (field == 3) {
            if (wt != WT_VARINT || !skip_field(&b, wt))
                return BAD;
        }
        else if (!skip_field(&b, wt)) {
            return BAD;
        }
    }
    if (a->dict == NULL)
        return OK;
    PyObject *k, *v = NULL;
    Status st = cached_key(cache, &key, &k); /* first: a bad key is BAD, not "not simple" */
    if (st != OK)
        return st;
    if (has_value && (st = simple_value(value, &v, &a->finite)) != OK) {
        Py_DECREF(k);
        return st;
    }
    if (v == NULL) { /* missing or not simple: the whole dict is None */
        Py_DECREF(k);
        Py_CLEAR(a->dict);
        return OK;
    }
    int rc = PyDict_SetItem(a->dict, k, v); /* duplicate key: first position, last value */
    Py_DECREF(k);
    Py_DECREF(v);
    return rc < 0 ? PYERR : OK;
}

/* ---- messages: one walk for both entry points -------------------------------------------
 * The walk reads each ResourceSpans' resource before its spans (wherever it is on the wire)
 * and hands both, in wire order, to its callbacks: decode_spans collects them, prepare_plain
 * turns each span into store rows (or hands it back) at once, so no list of every span is
 * built only to be walked a second time. A callback's Python exception is held until the
 * walk ends: input the walk refuses (BAD) is refused whatever a callback did before. */
typedef struct Walk Walk;
struct Walk {
    KeyCache keys;
    /* attributes (dict, or None when not simple) of the next ResourceSpans; borrowed */
    Status (*on_resource)(Walk *w, PyObject *resource);
    /* one span tuple (SPAN_TUPLE_SIZE items) of the last resource; borrowed */
    Status (*on_span)(Walk *w, PyObject *span);
    void *ctx;
    PyObject *error; /* a callback's exception, raised when the walk is OK */
#if PY_VERSION_HEX < 0x030C0000
    PyObject *error_type, *error_tb;
#endif
};

/* Takes the current exception into w->error (NULL if none is set). */
static void
hold_error(Walk *w)
{
#if PY_VERSION_HEX >= 0x030C0000
    w->error = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&w->error_type, &w->error, &w->error_tb);
    if (w->error_type != NULL) /* the value may not be made yet */
        PyErr_NormalizeException(&w->error_type, &w->error, &w->error_tb);
#endif
}

/* Raises the held exception again (raise = 1) or drops it. */
static void
release_error(Walk *w, int raise)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (raise)
        PyErr_SetRaisedException(w->error);
    else
        Py_DECREF(w->error);
#else
    if (raise) {
        PyErr_Restore(w->error_type, w->error, w->error_tb);
    }
    else {
        Py_XDECREF(w->error_type);
        Py_XDECREF(w->error);
        Py_XDECREF(w->error_tb);
    }
#endif
    w->error = NULL;
}

/* Runs a callback; its exception is kept in w->error and later callbacks are skipped. */
static Status
call_back(Walk *w, Status (*cb)(Walk *, PyObject *), PyObject *arg)
{
    if (w->error != NULL)
        return OK;
    Status st = cb(w, arg);
    if (st == PYERR) {
        hold_error(w);
        return w->error != NULL ? OK : PYERR;
    }
    return st;
}

static Status
parse_resource(Walk *w, Buf b, PyObject **out)
{
    Attrs a;
    Buf sub;
    int found;
    Status st = OK;
    *out = NULL;
    if (attrs_init(&a) != OK)
        return PYERR;
    while (st == OK && (found = next_field(&b, 1, FIELDS(resource_fields), &sub)) == 1)
        st = add_key_value(&w->keys, sub, &a);
    if (st == OK && found < 0)
        st = BAD;
    if (st != OK) {
        Py_XDECREF(a.dict);
        return st;
    }
    *out = a.dict ? a.dict : Py_NewRef(Py_None);
    return OK;
}

static Status
parse_status(Buf b, Buf *message, int32_t *code)
{
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        uint64_t v;
        if (!read_tag(&b, &field, &wt))
            return BAD;
        if (field == 2) {
            if (wt != WT_LEN || !read_len(&b, message))
                return BAD;
        }
        else if (field == 3) {
            if (wt != WT_VARINT || !read_varint(&b, &v))
                return BAD;
            *code = (int32_t)(uint32_t)v; /* enum = int32: the low 32 bits, as upb */
        }
        else if (!skip_field(&b, wt)) {
            return BAD;
        }
    }
    return OK;
}

/* Span tuple: (r, s, k, trace_id, span_id, parent_span_id, start, end, status_code,
 * status_message, attributes, safe, has_events). */
#define SPAN_TUPLE_SIZE 13

static Status
parse_span(Walk *w, Buf b, Py_ssize_t r, Py_ssize_t s, Py_ssize_t k)
{
    Buf trace_id = {b.p, b.p}, span_id = {b.p, b.p}, parent = {b.p, b.p};
    Buf message = {b.p, b.p};
    uint64_t start = 0, end = 0;
    int32_t code = 0;
    int has_status = 0, has_events = 0;
    Attrs a;
    if (attrs_init(&a) != OK)
        return PYERR;
    Status st = OK;
    while (st == OK && b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (!read_tag(&b, &field, &wt)) {
            st = BAD;
            break;
        }
        if (wrong_type(FIELDS(span_fields), field, wt)) {
            st = BAD;
            break;
        }
        switch (field) {
        case 1:
            st = read_len(&b, &trace_id) ? OK : BAD;
            break;
        case 2:
            st = read_len(&b, &span_id) ? OK : BAD;
            break;
        case 4:
            st = read_len(&b, &parent) ? OK : BAD;
            break;
        case 7:
            st = read_fixed64(&b, &start) ? OK : BAD;
            break;
        case 8:
            st = read_fixed64(&b, &end) ? OK : BAD;
            break;
        case 9:
            st = read_len(&b, &sub) ? add_key_value(&w->keys, sub, &a) : BAD;
            break;
        case 11:
            has_events = 1;
            st = skip_field(&b, wt) ? OK : BAD;
            break;
        case 15:
            if (has_status || !read_len(&b, &sub)) /* a second status would be merged */
                st = BAD;
            else
                st = parse_status(sub, &message, &code);
            has_status = 1;
            break;
        default: /* 3, 5, 6, 10, 12, 13, 14, 16 and unknown fields */
            st = skip_field(&b, wt) ? OK : BAD;
        }
    }
    PyObject *msg = NULL;
    if (st == OK)
        st = decode_str(&message, &msg);
    if (st != OK) {
        Py_XDECREF(a.dict);
        return st;
    }
    PyObject *t = PyTuple_New(SPAN_TUPLE_SIZE);
    if (t == NULL) {
        Py_XDECREF(a.dict);
        Py_DECREF(msg);
        return PYERR;
    }
    /* PyTuple_SET_ITEM steals; a NULL item (failed allocation) is checked below, and the
     * tuple's dealloc tolerates NULL items. */
    PyTuple_SET_ITEM(t, 0, PyLong_FromSsize_t(r));
    PyTuple_SET_ITEM(t, 1, PyLong_FromSsize_t(s));
    PyTuple_SET_ITEM(t, 2, PyLong_FromSsize_t(k));
    PyTuple_SET_ITEM(t, 3, PyBytes_FromStringAndSize((const char *)trace_id.p,
                                                     trace_id.end - trace_id.p));
    PyTuple_SET_ITEM(t, 4, PyBytes_FromStringAndSize((const char *)span_id.p,
                                                     span_id.end - span_id.p));
    PyTuple_SET_ITEM(t, 5, PyBytes_FromStringAndSize((const char *)parent.p,
                                                     parent.end - parent.p));
    PyTuple_SET_ITEM(t, 6, PyLong_FromUnsignedLongLong(start));
    PyTuple_SET_ITEM(t, 7, PyLong_FromUnsignedLongLong(end));
    PyTuple_SET_ITEM(t, 8, PyLong_FromLong(code));
    PyTuple_SET_ITEM(t, 9, msg);
    PyTuple_SET_ITEM(t, 10, a.dict ? a.dict : Py_NewRef(Py_None));
    /* safe is only meaningful with attributes; without them it is False, like a span whose
     * values need _json_safe */
    PyTuple_SET_ITEM(t, 11, PyBool_FromLong(a.dict != NULL && a.finite));
    PyTuple_SET_ITEM(t, 12, PyBool_FromLong(has_events));
    for (Py_ssize_t i = 0; i < SPAN_TUPLE_SIZE; i++) {
        if (PyTuple_GET_ITEM(t, i) == NULL) {
            Py_DECREF(t);
            return PYERR;
        }
    }
    st = call_back(w, w->on_span, t);
    Py_DECREF(t);
    return st;
}

static Status
parse_scope_spans(Walk *w, Buf b, Py_ssize_t r, Py_ssize_t s)
{
    /* scope (1) is not read: a duplicate would be merged, but we return nothing of it */
    Py_ssize_t k = 0;
    Buf sub;
    int found;
    while ((found = next_field(&b, 2, FIELDS(scope_spans_fields), &sub)) == 1) {
        Status st = parse_span(w, sub, r, s, k++);
        if (st != OK)
            return st;
    }
    return found < 0 ? BAD : OK;
}

/* One ResourceSpans: its resource first (a second one would be merged into the first: BAD),
 * then its scope spans. */
static Status
parse_resource_spans(Walk *w, Buf b, Py_ssize_t r)
{
    PyObject *resource = NULL;
    Fields fields = FIELDS(resource_spans_fields);
    Buf rest = b, sub;
    int found;
    Status st = OK;
    while (st == OK && (found = next_field(&rest, 1, fields, &sub)) == 1) {
        if (resource != NULL)
            st = BAD;
        else
            st = parse_resource(w, sub, &resource);
    }
    if (st == OK && found < 0)
        st = BAD;
    if (st == OK && resource == NULL && (resource = PyDict_New()) == NULL) /* no attributes */
        st = PYERR;
    if (st == OK)
        st = call_back(w, w->on_resource, resource);
    Py_XDECREF(resource);
    for (Py_ssize_t s = 0; st == OK && (found = next_field(&b, 2, fields, &sub)) == 1; s++)
        st = parse_scope_spans(w, sub, r, s);
    return st; /* the first loop has checked the fields: found is not -1 */
}

/* Walks `view`, calling w's callbacks: OK, BAD (the pure-Python path is needed) or PYERR
 * (a Python exception set, the walk's or a callback's). */
static Status
walk_request(Walk *w, const Py_buffer *view)
{
    Buf b = {(const uint8_t *)view->buf, (const uint8_t *)view->buf + view->len}, sub;
    Status st = OK;
    int found;
    memset(&w->keys, 0, sizeof w->keys);
    w->error = NULL;
    Fields fields = FIELDS(request_fields);
    for (Py_ssize_t r = 0; st == OK && (found = next_field(&b, 1, fields, &sub)) == 1; r++)
        st = parse_resource_spans(w, sub, r);
    if (st == OK && found < 0)
        st = BAD;
    key_cache_clear(&w->keys);
    if (w->error != NULL) {
        release_error(w, st == OK);
        if (st == OK)
            return PYERR;
    }
    return st;
}

/* decode_spans' callbacks: resources and spans appended to two lists. */
typedef struct {
    PyObject *resources;
    PyObject *spans;
} Collected;

static Status
collect_resource(Walk *w, PyObject *resource)
{
    return PyList_Append(((Collected *)w->ctx)->resources, resource) < 0 ? PYERR : OK;
}

static Status
collect_span(Walk *w, PyObject *span)
{
    return PyList_Append(((Collected *)w->ctx)->spans, span) < 0 ? PYERR : OK;
}

static PyObject *
decode_spans(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Collected got = {PyList_New(0), PyList_New(0)};
    Walk w = {.on_resource = collect_resource, .on_span = collect_span, .ctx = &got};
    PyObject *result = NULL;
    if (got.resources != NULL && got.spans != NULL) {
        Status st = walk_request(&w, &view);
        if (st == OK)
            result = PyTuple_Pack(2, got.resources, got.spans);
        else if (st == BAD)
            result = Py_NewRef(Py_None);
    }
    Py_XDECREF(got.resources);
    Py_XDECREF(got.spans);
    PyBuffer_Release(&view);
    return result;
}

/* ---- prepare_plain: the store rows of plain run spans ----------------------------------
 * processor._run_record + writes.prepare for the common span: a component run whose
 * attributes (and its resource's) are all simple and finite, without events, that the
 * processor accepts. Everything else is handed back to Python by its (r, s, k) index, so
 * the rules below only ever need to be right for what they accept: any doubt hands back.
 * The JSON text comes from the caller's dumps_sorted and the artifact ID split from its
 * split_artifact_id, so that both stay byte for byte the Python ones. Every check mirrors
 * processor.py (_run_record, _string, _artifact_list, _params_metrics, _text) and
 * writes.py (_run_row, prepare); tests/test_otlp_fast_rows.py compares the two paths. */
#define MAX_COMPONENT_LENGTH 512   /* processor.MAX_COMPONENT_LENGTH */
#define MAX_RUN_ID_LENGTH 256      /* processor.MAX_RUN_ID_LENGTH */
#define MAX_ARTIFACT_ID_LENGTH 8192 /* processor.MAX_ARTIFACT_ID_LENGTH */
#define RUN_ROW_SIZE 20            /* writes._run_row */

enum {
    S_COMPONENT, S_RUN_ID, S_INPUTS, S_OUTPUTS, S_TAGS, S_RECORDS_RUN_ID, S_RUN_START_RUN_ID,
    S_SERVICE, S_REVISION, S_REPOSITORY, S_FUNCTION, S_FILE, /* processor._CODE_KEYS order */
    S_PARAM_PREFIX, S_METRIC_PREFIX, S_RESOURCE_PREFIX,
    S_IN, S_OUT, S_UNSET, S_OK, S_ERROR, S_EMPTY_MAP, S_EMPTY_LIST, S_FFFD, S_NUL,
    N_STRINGS
};

/* UTF-8; S_NUL (the last one) is made apart: it is not a C string. Names: semconv.py. */
static const char *const string_values[N_STRINGS - 1] = {
    "mltrace.component", "mltrace.run.id", "mltrace.inputs", "mltrace.outputs",
    "mltrace.tags", "mltrace.records.run.id", "mltrace.run_start.run.id",
    "service.name", "vcs.ref.head.revision", "vcs.repository.url.full", "code.function.name",
    "code.file.path",
    "mltrace.param.", "mltrace.metric.", "resource.",
    "in", "out", "unset", "ok", "error", "{}", "[]", "\xef\xbf\xbd",
};

typedef struct {
    PyObject *s[N_STRINGS]; /* owned, interned (dict lookups hit the identity fast path) */
    PyObject *dumps;        /* borrowed: writes.dumps_sorted */
    PyObject *split;        /* borrowed: writes._split_artifact_id */
} Rows;

static int
rows_init(Rows *c)
{
    memset(c->s, 0, sizeof c->s);
    for (int i = 0; i < N_STRINGS - 1; i++) {
        if ((c->s[i] = PyUnicode_InternFromString(string_values[i])) == NULL)
            return -1;
    }
    c->s[S_NUL] = PyUnicode_FromStringAndSize("\0", 1);
    return c->s[S_NUL] ? 0 : -1;
}

static void
rows_clear(Rows *c)
{
    for (int i = 0; i < N_STRINGS; i++)
        Py_CLEAR(c->s[i]);
}

/* A borrowed dict value: 1 found, 0 absent, -1 error. */
static int
lookup(PyObject *dict, PyObject *key, PyObject **value)
{
    *value = PyDict_GetItemWithError(dict, key);
    if (*value != NULL)
        return 1;
    return PyErr_Occurred() ? -1 : 0;
}

/* The checks of processor._string (and of one artifact ID): 1 ok, 0 rejected, -1 error. */
static int
valid_string(PyObject *v, Py_ssize_t limit)
{
    if (!PyUnicode_Check(v))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n == 0 || n > limit)
        return 0;
    Py_ssize_t at = PyUnicode_FindChar(v, 0, 0, n, 1);
    return at == -2 ? -1 : at == -1;
}

/* processor._text: NUL -> U+FFFD. New reference. */
static PyObject *
text(Rows *c, PyObject *v)
{
    Py_ssize_t at = PyUnicode_FindChar(v, 0, 0, PyUnicode_GET_LENGTH(v), 1);
    if (at == -2)
        return NULL;
    if (at == -1)
        return Py_NewRef(v);
    return PyUnicode_Replace(v, c->s[S_NUL], c->s[S_FFFD], -1);
}

static void
hex_into(Py_UCS1 *dst, PyObject *bytes)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(bytes);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(bytes); i++) {
        *dst++ = (Py_UCS1)digits[p[i] >> 4];
        *dst++ = (Py_UCS1)digits[p[i] & 15];
    }
}

/* bytes.hex(), or None for b"" when `empty_none` (parent_span_id.hex() or None). */
static PyObject *
hex_of(PyObject *bytes, int empty_none)
{
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    if (n == 0 && empty_none)
        return Py_NewRef(Py_None);
    if (n > PY_SSIZE_T_MAX / 2)
        return PyErr_NoMemory();
    PyObject *out = PyUnicode_New(2 * n, 127);
    if (out != NULL)
        hex_into(PyUnicode_1BYTE_DATA(out), bytes);
    return out;
}

/* f"{trace_id.hex()}-{span_id.hex()}": the run ID of a span without mltrace.run.id. */
static PyObject *
span_run_id(PyObject *trace, PyObject *span)
{
    Py_ssize_t nt = 2 * PyBytes_GET_SIZE(trace), ns = 2 * PyBytes_GET_SIZE(span);
    PyObject *out = PyUnicode_New(nt + 1 + ns, 127);
    if (out == NULL)
        return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    hex_into(d, trace);
    d[nt] = '-';
    hex_into(d + nt + 1, span);
    return out;
}

/* processor._artifact_list: the ordered de-duplicated IDs in *ids (a new list; [] when the
 * key is absent) and the same IDs as keys of *seen; both NULL when Python rejects it. */
static Status
artifact_list(PyObject *attrs, PyObject *key, PyObject **ids, PyObject **seen)
{
    PyObject *value;
    *ids = *seen = NULL;
    int found = lookup(attrs, key, &value);
    if (found < 0)
        return PYERR;
    if (found && !PyList_Check(value))
        return OK;
    *ids = PyList_New(0);
    *seen = PyDict_New();
    if (*ids == NULL || *seen == NULL)
        goto error;
    for (Py_ssize_t i = 0; found && i < PyList_GET_SIZE(value); i++) {
        PyObject *v = PyList_GET_ITEM(value, i);
        int ok = valid_string(v, MAX_ARTIFACT_ID_LENGTH);
        if (ok < 0)
            goto error;
        if (ok == 0) {
            Py_CLEAR(*ids);
            Py_CLEAR(*seen);
            return OK;
        }
        int known = PyDict_Contains(*seen, v);
        if (known < 0)
            goto error;
        if (!known && (PyDict_SetItem(*seen, v, Py_None) < 0 || PyList_Append(*ids, v) < 0))
            goto error;
    }
    return OK;
error:
    Py_CLEAR(*ids);
    Py_CLEAR(*seen);
    return PYERR;
}

/* processor._params_metrics into the two (empty) dicts; *ok = 0 when Python rejects it. */
static Status
params_metrics(Rows *c, PyObject *attrs, PyObject *params, PyObject *metrics, int *ok)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    *ok = 1;
    while (PyDict_Next(attrs, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) /* never from the walk; not modelled */
            return (*ok = 0, OK);
        Py_ssize_t n = PyUnicode_GET_LENGTH(key);
        if (n < PyUnicode_GET_LENGTH(c->s[S_PARAM_PREFIX]) || PyUnicode_READ_CHAR(key, 0) != 'm')
            continue; /* cheap test first: most keys are neither */
        int prefix = 0; /* 1: param, 2: metric */
        for (int i = 0; i < 2 && !prefix; i++) {
            PyObject *p = c->s[i ? S_METRIC_PREFIX : S_PARAM_PREFIX];
            Py_ssize_t m = PyUnicode_Tailmatch(key, p, 0, n, -1);
            if (m < 0)
                return PYERR;
            prefix = m ? i + 1 : 0;
        }
        if (!prefix)
            continue;
        PyObject *into = params, *stored;
        Py_ssize_t skip = PyUnicode_GET_LENGTH(c->s[S_PARAM_PREFIX]);
        if (prefix == 1) {
            if (PyList_Check(value) || PyDict_Check(value))
                return (*ok = 0, OK); /* must be a scalar */
            stored = Py_NewRef(value); /* _json_safe: simple, finite -> itself */
        }
        else {
            if (PyBool_Check(value) || !(PyLong_Check(value) || PyFloat_Check(value)))
                return (*ok = 0, OK); /* must be a number */
            into = metrics;
            skip = PyUnicode_GET_LENGTH(c->s[S_METRIC_PREFIX]);
            if ((stored = PyNumber_Float(value)) == NULL)
                return PYERR;
        }
        PyObject *name = PyUnicode_Substring(key, skip, n);
        int rc = name ? PyDict_SetItem(into, name, stored) : -1;
        Py_XDECREF(name);
        Py_DECREF(stored);
        if (rc < 0)
            return PYERR;
    }
    return OK;
}

/* ---- JSON text ------------------------------------------------------------------------ */

/* json.dumps(value, sort_keys=True) of the values the walk makes (str, bool, int, finite
 * float, None, lists and str-keyed dicts of them), byte for byte, written straight into one
 * ASCII buffer: the json module's encoder was half of a decode worker's time, most of it
 * generic dispatch and joining chunks. Anything else (a non-finite float) makes json_text
 * fall back to the caller's dumps_sorted. */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Out;

static int
out_reserve(Out *o, Py_ssize_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(o->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->cap = cap;
    return 0;
}

static int
out_put(Out *o, const char *text, Py_ssize_t n)
{
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->len, text, (size_t)n);
    o->len += n;
    return 0;
}

/* json.encoder.encode_basestring_ascii: ASCII 0x20..0x7e as is (but " and \), the five
 * short escapes, everything else \u00xx / \uxxxx (surrogate pairs above the BMP). */
static int
out_string(Out *o, PyObject *s)
{
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (out_reserve(o, n * 12 + 2) < 0) /* the worst case: a surrogate pair per char */
        return -1;
    char *p = o->data + o->len;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch >= 0x20 && ch <= 0x7e && ch != '"' && ch != '\\') {
            *p++ = (char)ch;
            continue;
        }
        *p++ = '\\';
        switch (ch) {
        case '"': *p++ = '"'; continue;
        case '\\': *p++ = '\\'; continue;
        case '\n': *p++ = 'n'; continue;
        case '\r': *p++ = 'r'; continue;
        case '\t': *p++ = 't'; continue;
        case '\b': *p++ = 'b'; continue;
        case '\f': *p++ = 'f'; continue;
        default: break;
        }
        if (ch >= 0x10000) { /* high surrogate, then the low one */
            Py_UCS4 v = ch - 0x10000, hi = 0xd800 | ((v >> 10) & 0x3ff);
            *p++ = 'u';
            *p++ = hex[(hi >> 12) & 0xf];
            *p++ = hex[(hi >> 8) & 0xf];
            *p++ = hex[(hi >> 4) & 0xf];
            *p++ = hex[hi & 0xf];
            *p++ = '\\';
            ch = 0xdc00 | (v & 0x3ff);
        }
        *p++ = 'u';
        *p++ = hex[(ch >> 12) & 0xf];
        *p++ = hex[(ch >> 8) & 0xf];
        *p++ = hex[(ch >> 4) & 0xf];
        *p++ = hex[ch & 0xf];
    }
    *p++ = '"';
    o->len = p - o->data;
    return 0;
}

/* 1: written; 0: a value json_text leaves to dumps_sorted; -1: error. */
static int
out_value(Out *o, PyObject *v, int depth)
{
    if (depth > 8)
        return 0;
    if (PyUnicode_Check(v))
        return out_string(o, v) < 0 ? -1 : 1;
    if (v == Py_True)
        return out_put(o, "true", 4) < 0 ? -1 : 1;
    if (v == Py_False)
        return out_put(o, "false", 5) < 0 ? -1 : 1;
    if (v == Py_None)
        return out_put(o, "null", 4) < 0 ? -1 : 1;
    if (PyLong_CheckExact(v)) {
        PyObject *text = PyObject_Repr(v);
        if (text == NULL)
            return -1;
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
        int rc = utf8 == NULL ? -1 : out_put(o, utf8, n);
        Py_DECREF(text);
        return rc < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d))
            return 0; /* NaN / Infinity: the json module's spelling, from the json module */
        char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return -1;
        int rc = out_put(o, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return rc < 0 ? -1 : 1;
    }
    if (PyList_CheckExact(v)) {
        if (out_put(o, "[", 1) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            if (i && out_put(o, ", ", 2) < 0)
                return -1;
            int rc = out_value(o, PyList_GET_ITEM(v, i), depth + 1);
            if (rc <= 0)
                return rc;
        }
        return out_put(o, "]", 1) < 0 ? -1 : 1;
    }
    if (PyDict_CheckExact(v)) {
        PyObject *keys = PyDict_Keys(v);
        if (keys == NULL)
            return -1;
        int rc = 1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys) && rc == 1; i++) {
            if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i)))
                rc = 0;
        }
        if (rc == 1 && (PyList_Sort(keys) < 0 || out_put(o, "{", 1) < 0))
            rc = -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys) && rc == 1; i++) {
            PyObject *key = PyList_GET_ITEM(keys, i);
            PyObject *item = PyDict_GetItemWithError(v, key);
            if (item == NULL)
                rc = -1;
            else if ((i && out_put(o, ", ", 2) < 0) || out_string(o, key) < 0 ||
                     out_put(o, ": ", 2) < 0)
                rc = -1;
            else
                rc = out_value(o, item, depth + 1);
        }
        if (rc == 1 && out_put(o, "}", 1) < 0)
            rc = -1;
        Py_DECREF(keys);
        return rc;
    }
    return 0;
}

/* dumps_sorted(value) as an ASCII str (see Out). */
static PyObject *
json_text(Rows *c, PyObject *value)
{
    Out o = {NULL, 0, 0};
    PyObject *result = NULL;
    int rc = out_value(&o, value, 0);
    if (rc > 0) {
        result = PyUnicode_New(o.len, 127);
        if (result != NULL)
            memcpy(PyUnicode_1BYTE_DATA(result), o.data, (size_t)o.len);
    }
    PyMem_Free(o.data);
    if (rc == 0)
        return PyObject_CallOneArg(c->dumps, value);
    return result;
}

/* dumps_sorted(value), or `empty` (a new reference to it) when the dict/list is empty. */
static PyObject *
json_or(Rows *c, PyObject *value, PyObject *empty)
{
    if (PyObject_Length(value) == 0)
        return Py_NewRef(empty);
    return json_text(c, value);
}

/* A tuple of n new references (stolen, even on failure). */
static PyObject *
tuple_steal(Py_ssize_t n, PyObject **items)
{
    PyObject *t = PyTuple_New(n);
    int failed = t == NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        failed |= items[i] == NULL;
        if (t != NULL)
            PyTuple_SET_ITEM(t, i, items[i]);
        else
            Py_XDECREF(items[i]);
    }
    if (failed) {
        Py_XDECREF(t);
        return NULL;
    }
    return t;
}

/* run_io rows (`io`) and artifacts (`arts`) of one direction of a run, as writes.prepare
 * makes them for a run alone: an artifact read and written keeps its (earlier) read. */
static Status
io_rows(Rows *c, PyObject *run_id, PyObject *direction, PyObject *ids, PyObject *seen_ns,
        PyObject *skip, PyObject *io, PyObject *arts)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ids); i++) {
        PyObject *aid = PyList_GET_ITEM(ids, i);
        PyObject *parts = PyObject_CallOneArg(c->split, aid);
        if (parts == NULL)
            return PYERR;
        if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 2) {
            Py_DECREF(parts);
            PyErr_SetString(PyExc_TypeError, "split_artifact_id must return a 2-tuple");
            return PYERR;
        }
        PyObject *uri = PyTuple_GET_ITEM(parts, 0), *version = PyTuple_GET_ITEM(parts, 1);
        PyObject *row_items[5] = {Py_NewRef(run_id), Py_NewRef(direction), Py_NewRef(aid),
                                  Py_NewRef(uri), PyLong_FromLong(version != Py_None)};
        PyObject *row = tuple_steal(5, row_items);
        int rc = row ? PyList_Append(io, row) : -1;
        Py_XDECREF(row);
        int known = rc < 0 || skip == NULL ? 0 : PyDict_Contains(skip, aid);
        if (rc == 0 && known == 0) {
            PyObject *art_items[4] = {Py_NewRef(aid), Py_NewRef(uri), Py_NewRef(version),
                                      Py_NewRef(seen_ns)};
            PyObject *art = tuple_steal(4, art_items);
            rc = art ? PyList_Append(arts, art) : -1;
            Py_XDECREF(art);
        }
        Py_DECREF(parts);
        if (rc < 0 || known < 0)
            return PYERR;
    }
    return OK;
}

/* One span whose attributes name a component -> (run_row, io_rows, artifacts) in *out, or
 * *out = NULL to hand it back. `t`: its span tuple; `resource`, `stored`: its resource's
 * attributes, raw and as stored (resource.-prefixed). */
static Status
run_rows(Rows *c, PyObject *t, PyObject *attrs, PyObject *resource, PyObject *stored,
         PyObject **out)
{
    PyObject *item[RUN_ROW_SIZE] = {NULL};
    PyObject *inputs = NULL, *seen_in = NULL, *outputs = NULL, *seen_out = NULL;
    PyObject *params = NULL, *metrics = NULL, *merged = NULL, *io = NULL, *arts = NULL;
    PyObject *trace = PyTuple_GET_ITEM(t, 3), *span = PyTuple_GET_ITEM(t, 4);
    PyObject *start = PyTuple_GET_ITEM(t, 6), *end = PyTuple_GET_ITEM(t, 7);
    PyObject *v, *row;
    long code;
    Status st = PYERR; /* until the end: `goto done` with OK hands the span back */
    int rc, ok;
    *out = NULL;

    /* component: present (the caller checked), a valid string */
    if ((rc = lookup(attrs, c->s[S_COMPONENT], &v)) < 0)
        goto done;
    if (rc == 0 || (ok = valid_string(v, MAX_COMPONENT_LENGTH)) == 0)
        goto hand_back;
    if (ok < 0)
        goto done;
    item[1] = Py_NewRef(v);
    if (PyBytes_GET_SIZE(trace) != 16 || PyBytes_GET_SIZE(span) != 8)
        goto hand_back;
    /* a time beyond the index's BIGINT (>= 2^63 ns): the processor rejects the span */
    if (PyLong_AsUnsignedLongLong(start) > (unsigned long long)INT64_MAX ||
        PyLong_AsUnsignedLongLong(end) > (unsigned long long)INT64_MAX)
        goto hand_back;
    /* run ID: mltrace.run.id, else trace-span */
    if ((rc = lookup(attrs, c->s[S_RUN_ID], &v)) < 0)
        goto done;
    if (rc) {
        if ((ok = valid_string(v, MAX_RUN_ID_LENGTH)) <= 0)
            goto check;
        item[0] = Py_NewRef(v);
    }
    else if ((item[0] = span_run_id(trace, span)) == NULL)
        goto done;
    /* tags: absent, or an array of strings */
    if ((rc = lookup(attrs, c->s[S_TAGS], &v)) < 0)
        goto done;
    if (rc) {
        if (!PyList_Check(v))
            goto hand_back;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            if (!PyUnicode_Check(PyList_GET_ITEM(v, i)))
                goto hand_back;
        }
        if ((item[16] = json_or(c, v, c->s[S_EMPTY_LIST])) == NULL)
            goto done;
    }
    else
        item[16] = Py_NewRef(c->s[S_EMPTY_LIST]);
    /* params and metrics */
    if ((params = PyDict_New()) == NULL || (metrics = PyDict_New()) == NULL)
        goto done;
    if (params_metrics(c, attrs, params, metrics, &ok) != OK)
        goto done;
    if (!ok)
        goto hand_back;
    /* inputs and outputs */
    if (artifact_list(attrs, c->s[S_INPUTS], &inputs, &seen_in) != OK)
        goto done;
    if (inputs == NULL)
        goto hand_back;
    if (artifact_list(attrs, c->s[S_OUTPUTS], &outputs, &seen_out) != OK)
        goto done;
    if (outputs == NULL)
        goto hand_back;
    /* everything is valid from here on: the span is accepted */
    static const int code_item[5] = {5, 10, 11, 12, 13}; /* _CODE_KEYS -> row positions */
    for (int i = 0; i < 5; i++) {
        PyObject *key = c->s[S_SERVICE + i];
        if ((rc = lookup(attrs, key, &v)) == 0)
            rc = lookup(resource, key, &v); /* attrs.get(key, resource.get(key)) */
        if (rc < 0)
            goto done;
        item[code_item[i]] = rc && PyUnicode_Check(v) ? text(c, v) : Py_NewRef(Py_None);
        if (item[code_item[i]] == NULL)
            goto done;
    }
    if ((item[2] = hex_of(trace, 0)) == NULL || (item[3] = hex_of(span, 0)) == NULL ||
        (item[4] = hex_of(PyTuple_GET_ITEM(t, 5), 1)) == NULL)
        goto done;
    item[6] = Py_NewRef(start);
    if ((rc = PyObject_RichCompareBool(end, start, Py_GE)) < 0) /* max(end, start) */
        goto done;
    item[7] = Py_NewRef(rc ? end : start);
    code = PyLong_AsLong(PyTuple_GET_ITEM(t, 8));
    if (code == -1 && PyErr_Occurred())
        goto done;
    item[8] = Py_NewRef(c->s[code == 1 ? S_OK : code == 2 ? S_ERROR : S_UNSET]);
    v = PyTuple_GET_ITEM(t, 9); /* _text(message) or None */
    item[9] = PyUnicode_GET_LENGTH(v) ? text(c, v) : Py_NewRef(Py_None);
    if (item[9] == NULL)
        goto done;
    if ((item[14] = json_or(c, params, c->s[S_EMPTY_MAP])) == NULL ||
        (item[15] = json_or(c, metrics, c->s[S_EMPTY_MAP])) == NULL)
        goto done;
    if ((merged = PyDict_Copy(stored)) == NULL || PyDict_Update(merged, attrs) < 0 ||
        (item[17] = json_text(c, merged)) == NULL)
        goto done;
    if ((item[18] = PyLong_FromSsize_t(PyList_GET_SIZE(inputs))) == NULL ||
        (item[19] = PyLong_FromSsize_t(PyList_GET_SIZE(outputs))) == NULL)
        goto done;
    if ((io = PyList_New(0)) == NULL || (arts = PyList_New(0)) == NULL)
        goto done;
    if (io_rows(c, item[0], c->s[S_IN], inputs, item[6], NULL, io, arts) != OK ||
        io_rows(c, item[0], c->s[S_OUT], outputs, item[7], seen_in, io, arts) != OK)
        goto done;
    row = tuple_steal(RUN_ROW_SIZE, item);
    memset(item, 0, sizeof item); /* stolen */
    if (row == NULL)
        goto done;
    *out = PyTuple_Pack(3, row, io, arts);
    Py_DECREF(row);
    st = *out ? OK : PYERR;
    goto done;
check: /* ok from valid_string: 0 hands back, -1 is an error */
    if (ok < 0)
        goto done;
hand_back:
    st = OK;
done:
    for (int i = 0; i < RUN_ROW_SIZE; i++)
        Py_XDECREF(item[i]);
    Py_XDECREF(inputs);
    Py_XDECREF(seen_in);
    Py_XDECREF(outputs);
    Py_XDECREF(seen_out);
    Py_XDECREF(params);
    Py_XDECREF(metrics);
    Py_XDECREF(merged);
    Py_XDECREF(io);
    Py_XDECREF(arts);
    return st;
}

/* processor._resource_attributes of a simple resource: {"resource." + k: v}; None when the
 * resource is not simple or holds a non-finite double (its spans are handed back). */
static PyObject *
stored_resource(Rows *c, PyObject *resource)
{
    if (!PyDict_Check(resource))
        return Py_NewRef(Py_None);
    PyObject *stored = PyDict_New(), *key, *value;
    Py_ssize_t pos = 0;
    while (stored != NULL && PyDict_Next(resource, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) ||
            (PyFloat_Check(value) && !isfinite(PyFloat_AS_DOUBLE(value)))) {
            Py_DECREF(stored);
            return Py_NewRef(Py_None);
        }
        PyObject *prefixed = PyUnicode_Concat(c->s[S_RESOURCE_PREFIX], key);
        int rc = prefixed ? PyDict_SetItem(stored, prefixed, value) : -1;
        Py_XDECREF(prefixed);
        if (rc < 0)
            Py_CLEAR(stored);
    }
    return stored;
}

/* prepare_plain's callbacks: each span's store rows (done), index (todo) or count (other),
 * built as the walk reaches it. */
typedef struct {
    Rows c;
    PyObject *resource; /* the current resource's attributes, raw (owned) */
    PyObject *stored;   /* ... and as stored, or None when not simple (owned) */
    PyObject *done, *todo;
    Py_ssize_t other, spans;
} Plain;

static Status
plain_resource(Walk *w, PyObject *resource)
{
    Plain *p = w->ctx;
    PyObject *stored = stored_resource(&p->c, resource);
    if (stored == NULL)
        return PYERR;
    Py_XSETREF(p->stored, stored);
    Py_XSETREF(p->resource, Py_NewRef(resource));
    return OK;
}

/* Classifies one span tuple: appended to done or todo, or counted in other. */
static Status
plain_span(Walk *w, PyObject *t)
{
    Plain *p = w->ctx;
    if (++p->spans % 32 == 0) {
        /* A request takes milliseconds here, all with the GIL: hand it to a thread that
         * waits for it (an ingest worker's committer, holding the writers' lock). */
        Py_BEGIN_ALLOW_THREADS
        Py_END_ALLOW_THREADS
    }
    PyObject *attrs = PyTuple_GET_ITEM(t, 10);
    PyObject *entry = NULL;
    int simple = PyDict_Check(attrs) && PyTuple_GET_ITEM(t, 11) == Py_True &&
                 PyTuple_GET_ITEM(t, 12) == Py_False && p->stored != Py_None;
    if (simple) {
        int run = PyDict_Contains(attrs, p->c.s[S_COMPONENT]);
        if (run < 0)
            return PYERR;
        if (!run) {
            /* record chunk spans and run start records: handed back to Python */
            int chunks = PyDict_Contains(attrs, p->c.s[S_RECORDS_RUN_ID]);
            if (chunks == 0)
                chunks = PyDict_Contains(attrs, p->c.s[S_RUN_START_RUN_ID]);
            if (chunks < 0)
                return PYERR;
            if (!chunks) {
                p->other++;
                return OK;
            }
        }
        else if (run_rows(&p->c, t, attrs, p->resource, p->stored, &entry) != OK)
            return PYERR;
    }
    PyObject *into = p->done;
    if (entry == NULL) { /* handed back */
        into = p->todo;
        if ((entry = PyTuple_GetSlice(t, 0, 3)) == NULL)
            return PYERR;
    }
    int rc = PyList_Append(into, entry);
    Py_DECREF(entry);
    return rc < 0 ? PYERR : OK;
}

static PyObject *
prepare_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "prepare_plain expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "dumps_sorted and split_artifact_id must be callable");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Plain p = {.c = {.dumps = args[1], .split = args[2]}};
    Walk w = {.on_resource = plain_resource, .on_span = plain_span, .ctx = &p};
    PyObject *result = NULL;
    if (rows_init(&p.c) == 0 && (p.done = PyList_New(0)) != NULL &&
        (p.todo = PyList_New(0)) != NULL) {
        Status st = walk_request(&w, &view);
        PyObject *count = st == OK ? PyLong_FromSsize_t(p.other) : NULL;
        if (count != NULL) {
            result = PyTuple_Pack(3, p.done, p.todo, count);
            Py_DECREF(count);
        }
        else if (st == BAD)
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    rows_clear(&p.c);
    Py_XDECREF(p.resource);
    Py_XDECREF(p.stored);
    Py_XDECREF(p.done);
    Py_XDECREF(p.todo);
    return result;
}

PyDoc_STRVAR(prepare_plain_doc,
"prepare_plain(data, dumps_sorted, split_artifact_id, /)\n--\n\n"
"Store rows of the plain run spans of a serialized ExportTraceServiceRequest:\n"
"(done, todo, other_spans), or None when the request needs the pure-Python path\n"
"(see _otlp_fast.pyi).");

PyDoc_STRVAR(decode_spans_doc,
"decode_spans(data, /)\n--\n\n"
"Walk a serialized ExportTraceServiceRequest: (resource attribute dicts, span tuples), or\n"
"None when the request needs the pure-Python path (see _otlp_fast.pyi).");

static PyMethodDef methods[] = {
    {"decode_spans", decode_spans, METH_O, decode_spans_doc},
    {"prepare_plain", (PyCFunction)(void (*)(void))prepare_plain, METH_FASTCALL,
     prepare_plain_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mltrace_collector.index.decode._otlp_fast",
    .m_doc = "Fast walk of serialized OTLP trace export requests (see _otlp_fast.pyi).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__otlp_fast(void)
{
    return PyModuleDef_Init(&module_def);
}

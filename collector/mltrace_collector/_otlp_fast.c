/*
 * mltrace_collector._otlp_fast: walk a serialized OTLP ExportTraceServiceRequest and return
 * the per-span fields the lineage processor needs as plain Python objects.
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
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf elem;
        if (!read_tag(&b, &field, &wt))
            goto bad;
        if (field != 1) {
            if (!skip_field(&b, wt))
                goto bad;
            continue;
        }
        if (wt != WT_LEN || !read_len(&b, &elem))
            goto bad;
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

/* ---- messages -------------------------------------------------------------------------- */

typedef struct {
    KeyCache keys;
    PyObject *spans; /* list of span tuples */
} Decoder;

static Status
parse_resource(Decoder *d, Buf b, PyObject **out)
{
    Attrs a;
    *out = NULL;
    if (attrs_init(&a) != OK)
        return PYERR;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        Status st = OK;
        if (!read_tag(&b, &field, &wt))
            st = BAD;
        else if (field == 1)
            st = (wt == WT_LEN && read_len(&b, &sub)) ? add_key_value(&d->keys, sub, &a) : BAD;
        else if ((field == 2 && wt != WT_VARINT) || (field == 3 && wt != WT_LEN))
            st = BAD;
        else if (!skip_field(&b, wt))
            st = BAD;
        if (st != OK) {
            Py_XDECREF(a.dict);
            return st;
        }
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
parse_span(Decoder *d, Buf b, Py_ssize_t r, Py_ssize_t s, Py_ssize_t k)
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
        /* Expected wire type of each known field; -1: unknown, skipped. */
        static const int8_t want[17] = {-1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_LEN,
                                        WT_VARINT, WT_I64, WT_I64, WT_LEN, WT_VARINT,
                                        WT_LEN, WT_VARINT, WT_LEN, WT_VARINT, WT_LEN, WT_I32};
        if (field <= 16 && want[field] != -1 && want[field] != wt) {
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
            st = read_len(&b, &sub) ? add_key_value(&d->keys, sub, &a) : BAD;
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
    int rc = PyList_Append(d->spans, t);
    Py_DECREF(t);
    return rc < 0 ? PYERR : OK;
}

static Status
parse_scope_spans(Decoder *d, Buf b, Py_ssize_t r, Py_ssize_t s)
{
    Py_ssize_t k = 0;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (!read_tag(&b, &field, &wt))
            return BAD;
        if (field == 2) {
            if (wt != WT_LEN || !read_len(&b, &sub))
                return BAD;
            Status st = parse_span(d, sub, r, s, k++);
            if (st != OK)
                return st;
        }
        /* scope (1) is not read: a duplicate would be merged, but we return nothing of it */
        else if (((field == 1 || field == 3) && wt != WT_LEN) || !skip_field(&b, wt)) {
            return BAD;
        }
    }
    return OK;
}

/* One ResourceSpans: its resource attributes (dict or None) in *out; spans appended. */
static Status
parse_resource_spans(Decoder *d, Buf b, Py_ssize_t r, PyObject **out)
{
    PyObject *resource = NULL;
    Py_ssize_t s = 0;
    Status st = OK;
    while (st == OK && b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (!read_tag(&b, &field, &wt))
            st = BAD;
        else if (field == 1) {
            if (wt != WT_LEN || resource != NULL || !read_len(&b, &sub))
                st = BAD; /* a second resource would be merged into the first */
            else
                st = parse_resource(d, sub, &resource);
        }
        else if (field == 2) {
            if (wt != WT_LEN || !read_len(&b, &sub))
                st = BAD;
            else
                st = parse_scope_spans(d, sub, r, s++);
        }
        else if ((field == 3 && wt != WT_LEN) || !skip_field(&b, wt))
            st = BAD;
    }
    if (st != OK) {
        Py_XDECREF(resource);
        return st;
    }
    if (resource == NULL) /* no resource: no attributes */
        resource = PyDict_New();
    *out = resource;
    return resource ? OK : PYERR;
}

static Status
parse_request(Decoder *d, Buf b, PyObject *resources)
{
    Py_ssize_t r = 0;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (!read_tag(&b, &field, &wt))
            return BAD;
        if (field != 1) {
            if (!skip_field(&b, wt))
                return BAD;
            continue;
        }
        if (wt != WT_LEN || !read_len(&b, &sub))
            return BAD;
        PyObject *resource;
        Status st = parse_resource_spans(d, sub, r++, &resource);
        if (st != OK)
            return st;
        int rc = PyList_Append(resources, resource);
        Py_DECREF(resource);
        if (rc < 0)
            return PYERR;
    }
    return OK;
}

static PyObject *
decode_spans(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Decoder d;
    memset(&d.keys, 0, sizeof d.keys);
    PyObject *resources = PyList_New(0);
    d.spans = PyList_New(0);
    PyObject *result = NULL;
    if (resources != NULL && d.spans != NULL) {
        Buf b = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
        Status st = parse_request(&d, b, resources);
        if (st == OK)
            result = PyTuple_Pack(2, resources, d.spans);
        else if (st == BAD)
            result = Py_NewRef(Py_None);
    }
    key_cache_clear(&d.keys);
    Py_XDECREF(resources);
    Py_XDECREF(d.spans);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(decode_spans_doc,
"decode_spans(data, /)\n--\n\n"
"Walk a serialized ExportTraceServiceRequest: (resource attribute dicts, span tuples), or\n"
"None when the request needs the pure-Python path (see _otlp_fast.pyi).");

static PyMethodDef methods[] = {
    {"decode_spans", decode_spans, METH_O, decode_spans_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mltrace_collector._otlp_fast",
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

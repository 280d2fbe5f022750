/*
 * Attribute values of the C reader (see _otlp_fast.h): the per-request key cache, AnyValue
 * -> a simple Python value, and one KeyValue into the attributes dict of a span or resource.
 */
#include "_otlp_fast.h"

static const int8_t array_fields[] = {-1, WT_LEN}; /* ArrayValue{1 values} */

/* ---- attribute key cache ---------------------------------------------------------------
 * The same ~10 keys repeat on every span of a request: one str object per distinct key and
 * request saves decoding and allocating it again, and dict insertion then hits the
 * identity fast path with a cached hash. Open addressing on the key's bytes; the entries
 * point into the request buffer, which outlives the call. When the table is full, keys are
 * simply decoded uncached. Keys are also interned, so that they are shared across requests
 * (and with interned constants the processor looks them up with). */
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

void
otlpf_key_cache_clear(KeyCache *cache)
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

/* One KeyValue. Its own fields are always checked; its value is read only while the dict
 * is still simple: once the dict is None, nothing inside a later value can change that. */
Status
otlpf_add_key_value(KeyCache *cache, Buf b, Attrs *a)
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

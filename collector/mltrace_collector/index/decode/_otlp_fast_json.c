/*
 * JSON text of the C reader's store rows (see _otlp_fast.h).
 *
 * json.dumps(value, sort_keys=True) of the values the walk makes (str, bool, int, finite
 * float, None, lists and str-keyed dicts of them), byte for byte, written straight into one
 * ASCII buffer: the json module's encoder was half of a decode worker's time, most of it
 * generic dispatch and joining chunks. Anything else (a non-finite float) makes json_text
 * fall back to the caller's dumps_sorted.
 */
#include "_otlp_fast.h"

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
PyObject *
otlpf_json_text(Rows *c, PyObject *value)
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
PyObject *
otlpf_json_or(Rows *c, PyObject *value, PyObject *empty)
{
    if (PyObject_Length(value) == 0)
        return Py_NewRef(empty);
    return otlpf_json_text(c, value);
}

/*
 * prepare_plain's store rows of a plain run span (see _otlp_fast.h).
 *
 * processor._run_record + writes.prepare for the common span: a component run whose
 * attributes (and its resource's) are all simple and finite, without events, that the
 * processor accepts. Everything else is handed back to Python by its (r, s, k) index, so
 * the rules below only ever need to be right for what they accept: any doubt hands back.
 * The JSON text comes from the caller's dumps_sorted and the artifact ID split from its
 * split_artifact_id, so that both stay byte for byte the Python ones. Every check mirrors
 * processor.py (_run_record, _string, _artifact_list, _params_metrics, _text) and
 * writes.py (_run_row, prepare); tests/test_otlp_fast_rows.py compares the two paths.
 */
#include "_otlp_fast.h"

#define MAX_COMPONENT_LENGTH 512   /* processor.MAX_COMPONENT_LENGTH */
#define MAX_RUN_ID_LENGTH 256      /* processor.MAX_RUN_ID_LENGTH */
#define MAX_ARTIFACT_ID_LENGTH 8192 /* processor.MAX_ARTIFACT_ID_LENGTH */
#define RUN_ROW_SIZE 20            /* writes._run_row */

/* UTF-8; S_NUL (the last one) is made apart: it is not a C string. Names: semconv.py. */
static const char *const string_values[N_STRINGS - 1] = {
    "mltrace.component", "mltrace.run.id", "mltrace.inputs", "mltrace.outputs",
    "mltrace.tags", "mltrace.records.run.id", "mltrace.run_start.run.id",
    "service.name", "vcs.ref.head.revision", "vcs.repository.url.full", "code.function.name",
    "code.file.path",
    "mltrace.param.", "mltrace.metric.", "resource.",
    "in", "out", "unset", "ok", "error", "{}", "[]", "\xef\xbf\xbd",
};

int
otlpf_rows_init(Rows *c)
{
    memset(c->s, 0, sizeof c->s);
    for (int i = 0; i < N_STRINGS - 1; i++) {
        if ((c->s[i] = PyUnicode_InternFromString(string_values[i])) == NULL)
            return -1;
    }
    c->s[S_NUL] = PyUnicode_FromStringAndSize("\0", 1);
    return c->s[S_NUL] ? 0 : -1;
}

void
otlpf_rows_clear(Rows *c)
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
Status
otlpf_run_rows(Rows *c, PyObject *t, PyObject *attrs, PyObject *resource, PyObject *stored,
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
        if ((item[16] = otlpf_json_or(c, v, c->s[S_EMPTY_LIST])) == NULL)
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
    if ((item[14] = otlpf_json_or(c, params, c->s[S_EMPTY_MAP])) == NULL ||
        (item[15] = otlpf_json_or(c, metrics, c->s[S_EMPTY_MAP])) == NULL)
        goto done;
    if ((merged = PyDict_Copy(stored)) == NULL || PyDict_Update(merged, attrs) < 0 ||
        (item[17] = otlpf_json_text(c, merged)) == NULL)
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
PyObject *
otlpf_stored_resource(Rows *c, PyObject *resource)
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

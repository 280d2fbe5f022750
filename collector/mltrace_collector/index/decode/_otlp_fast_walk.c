/*
 * The one walk of a serialized ExportTraceServiceRequest for both entry points (see
 * _otlp_fast.h): decode_spans collects what it hands over, prepare_plain turns each span
 * into store rows (or hands it back) at once, so no list of every span is built only to be
 * walked a second time. A callback's Python exception is held until the walk ends: input
 * the walk refuses (BAD) is refused whatever a callback did before.
 */
#include "_otlp_fast.h"

static const int8_t request_fields[] = {-1, WT_LEN};             /* resource_spans */
static const int8_t resource_fields[] = {-1, WT_LEN, WT_VARINT, WT_LEN};
static const int8_t resource_spans_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN};
static const int8_t scope_spans_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN};
static const int8_t span_fields[] = {-1, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_LEN, WT_VARINT,
                                     WT_I64, WT_I64, WT_LEN, WT_VARINT, WT_LEN, WT_VARINT,
                                     WT_LEN, WT_VARINT, WT_LEN, WT_I32};

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
        st = otlpf_add_key_value(&w->keys, sub, &a);
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
            st = read_len(&b, &sub) ? otlpf_add_key_value(&w->keys, sub, &a) : BAD;
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

/* See _otlp_fast.h. */
Status
otlpf_walk_request(Walk *w, const Py_buffer *view)
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
    otlpf_key_cache_clear(&w->keys);
    if (w->error != NULL) {
        release_error(w, st == OK);
        if (st == OK)
            return PYERR;
    }
    return st;
}

/*
 * mltrace_collector.index.decode._otlp_fast: walk a serialized OTLP ExportTraceServiceRequest
 * and return the per-span fields the lineage processor needs as plain Python objects
 * (decode_spans), or, for the common plain run span, its store rows directly
 * (prepare_plain). Both are one walk (otlpf_walk_request) with different callbacks for each
 * resource and span. This unit holds the module definition, the two entry points and their
 * callbacks; _otlp_fast.h lists the other units and states the contract.
 *
 * Why: walking the upb-parsed message from Python creates a wrapper object for every
 * KeyValue, AnyValue and WhichOneof() call (~15-20 us per span); reading the wire bytes
 * directly and building only the final str/int/list/dict objects is several times cheaper.
 */
#include "_otlp_fast.h"

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
        Status st = otlpf_walk_request(&w, &view);
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
    PyObject *stored = otlpf_stored_resource(&p->c, resource);
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
        else if (otlpf_run_rows(&p->c, t, attrs, p->resource, p->stored, &entry) != OK)
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
    if (otlpf_rows_init(&p.c) == 0 && (p.done = PyList_New(0)) != NULL &&
        (p.todo = PyList_New(0)) != NULL) {
        Status st = otlpf_walk_request(&w, &view);
        PyObject *count = st == OK ? PyLong_FromSsize_t(p.other) : NULL;
        if (count != NULL) {
            result = PyTuple_Pack(3, p.done, p.todo, count);
            Py_DECREF(count);
        }
        else if (st == BAD)
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    otlpf_rows_clear(&p.c);
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

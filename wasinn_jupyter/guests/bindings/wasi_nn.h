/* wasi_nn.h: C bindings for the legacy witx wasi-nn ABI (import module "wasi_ephemeral_nn"), shipped with
 * wasinn-jupyter so a C guest needs nothing else. `%%wasinn guest NAME --lang c` puts this header on the include
 * path; elsewhere: `zig cc -target wasm32-wasi -I <this directory> guest.c`.
 *
 * Every function returns a wasi_nn_errno_t (0 is success); results go through the trailing out-pointer. The
 * numbers below are the witx numbers wasmtime and WasmEdge use, so a guest built with this header runs on those
 * hosts too. WAMR does not agree: its errnos, tensor types and encodings follow the later WIT numbering (errno 3
 * is timeout, ggml is encoding 5 and autodetect 6, ...), so a guest for WAMR needs WAMR's own header.
 *
 * The lower half declares the wasinn-jupyter compute convention (`%%wasinn compute GRAPH --guest NAME`): a guest
 * that exports `wasinn_alloc` and `wasinn_compute` with the signatures below can be handed tensors from a notebook.
 */
#ifndef WASI_NN_H
#define WASI_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* -- enums ---------------------------------------------------------------------------------------------- */

typedef uint32_t wasi_nn_errno_t;
enum {
    WASI_NN_ERRNO_SUCCESS = 0,
    WASI_NN_ERRNO_INVALID_ARGUMENT = 1,
    WASI_NN_ERRNO_INVALID_ENCODING = 2,
    WASI_NN_ERRNO_MISSING_MEMORY = 3,
    WASI_NN_ERRNO_BUSY = 4,
    WASI_NN_ERRNO_RUNTIME_ERROR = 5,
    WASI_NN_ERRNO_UNSUPPORTED_OPERATION = 6,
    WASI_NN_ERRNO_TOO_LARGE = 7,
    WASI_NN_ERRNO_NOT_FOUND = 8,
    /* WasmEdge's extensions: a guest sees these only from WasmEdge-only functions */
    WASI_NN_ERRNO_END_OF_SEQUENCE = 100,
    WASI_NN_ERRNO_CONTEXT_FULL = 101,
    WASI_NN_ERRNO_PROMPT_TOO_LONG = 102,
    WASI_NN_ERRNO_MODEL_NOT_FOUND = 103,
};

/* The witx tensor types. There is no bf16 in witx. */
typedef uint8_t wasi_nn_tensor_type_t;
enum {
    WASI_NN_TYPE_F16 = 0,
    WASI_NN_TYPE_F32 = 1,
    WASI_NN_TYPE_F64 = 2,
    WASI_NN_TYPE_U8 = 3,
    WASI_NN_TYPE_I32 = 4,
    WASI_NN_TYPE_I64 = 5,
};

typedef uint32_t wasi_nn_graph_encoding_t;
enum {
    WASI_NN_ENCODING_OPENVINO = 0,
    WASI_NN_ENCODING_ONNX = 1,
    WASI_NN_ENCODING_TENSORFLOW = 2,
    WASI_NN_ENCODING_PYTORCH = 3,
    WASI_NN_ENCODING_TENSORFLOWLITE = 4,
    WASI_NN_ENCODING_AUTODETECT = 5, /* WAMR numbers autodetect 6 and ggml 5 */
    WASI_NN_ENCODING_GGML = 6,       /* WasmEdge */
};

typedef uint32_t wasi_nn_execution_target_t;
enum {
    WASI_NN_TARGET_CPU = 0,
    WASI_NN_TARGET_GPU = 1,
    WASI_NN_TARGET_TPU = 2,
};

typedef uint32_t wasi_nn_graph_t;
typedef uint32_t wasi_nn_context_t;

/* -- structs (wasm32 layout: 4-byte aligned, little-endian) -------------------------------------------- */

/* 20 bytes: dims at +0, rank at +4, type at +8 (then 3 padding bytes), data at +12, data size in bytes at +16. */
typedef struct {
    const uint32_t *dims;
    uint32_t dims_len;
    wasi_nn_tensor_type_t type;
    const uint8_t *data;
    uint32_t data_len;
} wasi_nn_tensor_t;

/* One graph builder (a model's bytes); load() takes an array of them. 8 bytes. */
typedef struct {
    const uint8_t *data;
    uint32_t len;
} wasi_nn_graph_builder_t;

#if defined(__wasm32__)
_Static_assert(sizeof(wasi_nn_tensor_t) == 20, "witx tensor is 20 bytes");
_Static_assert(sizeof(wasi_nn_graph_builder_t) == 8, "witx graph builder is 8 bytes");
#endif

/* -- the imports ------------------------------------------------------------------------------------------ */

#define WASI_NN_IMPORT(name) __attribute__((import_module("wasi_ephemeral_nn"), import_name(name)))

WASI_NN_IMPORT("load")
wasi_nn_errno_t wasi_nn_load(const wasi_nn_graph_builder_t *builders, uint32_t builders_len,
                             wasi_nn_graph_encoding_t encoding, wasi_nn_execution_target_t target,
                             wasi_nn_graph_t *graph);

WASI_NN_IMPORT("load_by_name")
wasi_nn_errno_t wasi_nn_load_by_name(const char *name, uint32_t name_len, wasi_nn_graph_t *graph);

WASI_NN_IMPORT("init_execution_context")
wasi_nn_errno_t wasi_nn_init_execution_context(wasi_nn_graph_t graph, wasi_nn_context_t *ctx);

WASI_NN_IMPORT("set_input")
wasi_nn_errno_t wasi_nn_set_input(wasi_nn_context_t ctx, uint32_t index, const wasi_nn_tensor_t *tensor);

WASI_NN_IMPORT("compute")
wasi_nn_errno_t wasi_nn_compute(wasi_nn_context_t ctx);

/* Copies output `index` into buf. If it is larger than buf_max, returns TOO_LARGE and still writes the size
 * needed to *bytes_written, so the guest can retry with a bigger buffer. */
WASI_NN_IMPORT("get_output")
wasi_nn_errno_t wasi_nn_get_output(wasi_nn_context_t ctx, uint32_t index, uint8_t *buf, uint32_t buf_max,
                                   uint32_t *bytes_written);

/* WasmEdge-only functions. Importing any of them makes wasinn-jupyter (like WasmEdge) answer an unknown graph
 * name with MODEL_NOT_FOUND (103) instead of NOT_FOUND (8). A C guest imports only what it calls. */
WASI_NN_IMPORT("load_by_name_with_config")
wasi_nn_errno_t wasi_nn_load_by_name_with_config(const char *name, uint32_t name_len, const char *config,
                                                 uint32_t config_len, wasi_nn_graph_t *graph);

WASI_NN_IMPORT("unload")
wasi_nn_errno_t wasi_nn_unload(wasi_nn_graph_t graph);

WASI_NN_IMPORT("finalize_execution_context")
wasi_nn_errno_t wasi_nn_finalize_execution_context(wasi_nn_context_t ctx);

/* WasmEdge's token streaming, on a prompt graph (a language model loaded as GGML): set input 0 to the prompt's
 * bytes (and input 1 to a metadata JSON object of settings, if any), then call compute_single for one token at a
 * time and read it with get_output_single(ctx, 0, ...) until compute_single answers END_OF_SEQUENCE (100) or
 * CONTEXT_FULL (101); PROMPT_TOO_LONG (102) when the prompt leaves no room. Output 1 (of get_output and of
 * get_output_single) is {"input_tokens": N, "output_tokens": M, ...}. fini_single ends the reply. */
WASI_NN_IMPORT("compute_single")
wasi_nn_errno_t wasi_nn_compute_single(wasi_nn_context_t ctx);

WASI_NN_IMPORT("get_output_single")
wasi_nn_errno_t wasi_nn_get_output_single(wasi_nn_context_t ctx, uint32_t index, uint8_t *buf, uint32_t buf_max,
                                          uint32_t *bytes_written);

WASI_NN_IMPORT("fini_single")
wasi_nn_errno_t wasi_nn_fini_single(wasi_nn_context_t ctx);

/* -- wasinn-jupyter's extensions: the phase-3 proposals for core guests (docs/abi/wasinn-extensions.md) -------
 * Only wasinn-jupyter links these; a guest that imports one runs on no other host. Errors as everywhere: the
 * errno for the guest, the message in the host's last error. */

/* 28 bytes: a name (UTF-8, name_len bytes; a NUL follows where the host wrote it) and a tensor. */
typedef struct {
    const char *name;
    uint32_t name_len;
    wasi_nn_tensor_t tensor;
} wasi_nn_named_tensor_t;

/* What compute_named and get_named_outputs write into the guest's buffer: the count, then the records, whose
 * pointers point into the same buffer (names, dims, and data 16-byte aligned). */
typedef struct {
    uint32_t count;
    wasi_nn_named_tensor_t tensors[];
} wasi_nn_named_tensors_t;

/* bf16 has no witx number: the extensions read and write it as 6 (set_input does not accept it). */
#define WASINN_TYPE_BF16 6

#if defined(__wasm32__)
_Static_assert(sizeof(wasi_nn_named_tensor_t) == 28, "named tensor is 28 bytes");
#endif

/* One call: the inputs by the model's names (TorchScript's forward arguments, a torch.export signature; input0,
 * input1... by position for a model that declares none), in any order. The outputs are laid out in out as a
 * wasi_nn_named_tensors_t (names: a model's dict keys, else output0, output1...). Short of room: TOO_LARGE, the
 * size needed in *bytes_written (exact for a 16-aligned buffer: data is aligned by address), and the outputs are
 * kept: get_named_outputs reads them without a recompute.
 * Errnos: INVALID_ARGUMENT for a bad handle, pointer, name (over 256 bytes, not UTF-8, given twice, unknown to
 * the model, or one the model needs left out), type or size; TOO_LARGE past 256 tensors or the memory budget. */
WASI_NN_IMPORT("compute_named")
wasi_nn_errno_t wasi_nn_compute_named(wasi_nn_context_t ctx, const wasi_nn_named_tensor_t *inputs, uint32_t inputs_len,
                                      uint8_t *out, uint32_t out_max, uint32_t *bytes_written);

/* The last compute's outputs (from compute_named or compute), laid out as compute_named writes them. */
WASI_NN_IMPORT("get_named_outputs")
wasi_nn_errno_t wasi_nn_get_named_outputs(wasi_nn_context_t ctx, uint8_t *out, uint32_t out_max,
                                          uint32_t *bytes_written);

/* Graph properties (wasi-nn PR 80); values are strings. list_properties writes the names, each followed by a
 * NUL. get_property writes the value's bytes (no NUL), NOT_FOUND for a property the graph does not have.
 * set_property applies from the next compute (to every guest sharing a graph loaded by name); INVALID_ARGUMENT
 * for an unknown name or a value out of range. A torch graph has precision (fp32|fp16|bf16), device
 * (cpu|cuda:N), threads and residence (memory|device); a prompt graph adds its sampling settings. */
WASI_NN_IMPORT("list_properties")
wasi_nn_errno_t wasi_nn_list_properties(wasi_nn_graph_t graph, char *buf, uint32_t buf_max, uint32_t *bytes_written);

WASI_NN_IMPORT("get_property")
wasi_nn_errno_t wasi_nn_get_property(wasi_nn_graph_t graph, const char *name, uint32_t name_len, char *buf,
                                     uint32_t buf_max, uint32_t *bytes_written);

WASI_NN_IMPORT("set_property")
wasi_nn_errno_t wasi_nn_set_property(wasi_nn_graph_t graph, const char *name, uint32_t name_len, const char *value,
                                     uint32_t value_len);

/* Input `index` of ctx becomes output `src_index` of src_ctx, with no copy through linear memory (and none at all
 * where the producing graph has residence=device and both graphs share its device). */
WASI_NN_IMPORT("set_input_from_output")
wasi_nn_errno_t wasi_nn_set_input_from_output(wasi_nn_context_t ctx, uint32_t index, wasi_nn_context_t src_ctx,
                                              uint32_t src_index);

#undef WASI_NN_IMPORT

/* -- helpers ---------------------------------------------------------------------------------------------- */

static inline const char *wasi_nn_errno_name(wasi_nn_errno_t e) {
    switch (e) {
    case WASI_NN_ERRNO_SUCCESS: return "success";
    case WASI_NN_ERRNO_INVALID_ARGUMENT: return "invalid_argument";
    case WASI_NN_ERRNO_INVALID_ENCODING: return "invalid_encoding";
    case WASI_NN_ERRNO_MISSING_MEMORY: return "missing_memory";
    case WASI_NN_ERRNO_BUSY: return "busy";
    case WASI_NN_ERRNO_RUNTIME_ERROR: return "runtime_error";
    case WASI_NN_ERRNO_UNSUPPORTED_OPERATION: return "unsupported_operation";
    case WASI_NN_ERRNO_TOO_LARGE: return "too_large";
    case WASI_NN_ERRNO_NOT_FOUND: return "not_found";
    case WASI_NN_ERRNO_END_OF_SEQUENCE: return "end_of_sequence";
    case WASI_NN_ERRNO_CONTEXT_FULL: return "context_full";
    case WASI_NN_ERRNO_PROMPT_TOO_LONG: return "prompt_too_long";
    case WASI_NN_ERRNO_MODEL_NOT_FOUND: return "model_not_found";
    default: return "unknown_errno";
    }
}

/* Bytes per element of a tensor type (0 for an unknown type). */
static inline uint32_t wasi_nn_type_size(wasi_nn_tensor_type_t t) {
    switch (t) {
    case WASI_NN_TYPE_U8: return 1;
    case WASI_NN_TYPE_F16: return 2;
    case WASI_NN_TYPE_F32: case WASI_NN_TYPE_I32: return 4;
    case WASI_NN_TYPE_F64: case WASI_NN_TYPE_I64: return 8;
    default: return 0;
    }
}

/* -- the wasinn-jupyter compute convention ------------------------------------------------------------------
 *
 * `%%wasinn compute GRAPH --guest NAME` calls, on guest NAME:
 *   1. ptr = wasinn_alloc(size): the host then writes, inside [ptr, ptr + size): a wasinn_result_t (zeroed), the
 *      graph name, `n_inputs` wasi_nn_tensor_t structs, their dims and their data, each at an offset from ptr
 *      that is a multiple of 16. Return a 16-byte-aligned ptr (malloc does) for the data to be 16-byte aligned.
 *   2. errno = wasinn_compute(name, name_len, inputs, n_inputs, result): the guest runs the graph through the witx
 *      functions above (or anything it likes) and fills *result with its outputs. 0 means success; any other value
 *      is shown as a wasi-nn errno together with the host's last error message.
 * The host reads the outputs straight after wasinn_compute returns. Memory from wasinn_alloc and the output
 * buffers must stay valid until the next wasinn_alloc call: the host calls it exactly once per compute, so a
 * guest may free the previous round's buffers there. (The notebook magics use a fresh instance for each compute,
 * but do not rely on that.)
 *
 * An output whose type is WASINN_TYPE_FROM_GRAPH carries only bytes (what get_output gives a guest): the host
 * takes its type and dims from what the graph produced for output i of execution context `result->ctx`. Set a
 * real witx type and dims instead when the guest makes its own outputs. The host copies every output out, so
 * together they may not hold more bytes than the guest's memory.
 */
#define WASINN_TYPE_FROM_GRAPH 255

typedef struct {
    uint32_t n_outputs;
    const wasi_nn_tensor_t *outputs; /* n_outputs tensors in guest memory */
    wasi_nn_context_t ctx;           /* the context that WASINN_TYPE_FROM_GRAPH outputs refer to */
} wasinn_result_t;

#define WASINN_EXPORT(name) __attribute__((export_name(name)))

#ifdef __cplusplus
}
#endif

#endif /* WASI_NN_H */

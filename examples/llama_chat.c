/* llama_chat.c: a chat guest written the way LlamaEdge's guests for WasmEdge's GGML plugin are (its simple chat
 * flow: load by name with a JSON config, a prompt per turn, the token counts read from output 1 before any
 * compute, the reply streamed with compute_single until end of sequence, fini_single, a context reset when full).
 * It runs unchanged on WasmEdge and on wasinn-jupyter:
 *
 *   zig cc -target wasm32-wasi -O2 -I wasinn_jupyter/guests/bindings examples/llama_chat.c -o llama_chat.wasm
 *   wasmedge --dir .:. --nn-preload default:GGML:AUTO:model.gguf llama_chat.wasm default "Hello"
 *   wasinn run --nn-preload default:GGML:AUTO:MODEL_DIR_OR_GGUF llama_chat.wasm default "Hello"
 *
 * argv: the model's name, then one user turn per argument. Settings come from the environment, as LlamaEdge's
 * examples take them (--env KEY=VALUE): ctx_size, n_predict, temp, top_p, seed, n_gpu_layers (numbers, put into
 * the config as they are), template ("chat": "User: ...\nAssistant:" turns kept as history; "raw": each argument
 * is the whole prompt), metadata (JSON sent as input 1 before the first turn: its errno is printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasi_nn.h"

#define MAX_PROMPT 65536
#define MAX_OUTPUT (4096 * 6) /* LlamaEdge's buffer: 4096 tokens of 6 bytes on average */

static char history[MAX_PROMPT];
static char prompt[MAX_PROMPT];
static uint8_t output[MAX_OUTPUT + 1];
static char reply[MAX_OUTPUT + 1];

/* Appends `"key": value` to the JSON config when the environment has KEY (numbers only, as in the examples). */
static void option(char *json, size_t cap, const char *env, const char *key) {
    const char *value = getenv(env);
    if (!value || !*value) return;
    size_t len = strlen(json);
    snprintf(json + len, cap - len, "%s\"%s\": %s", len > 1 ? ", " : "", key, value);
}

/* The number after "key": in a flat JSON object, or -1. */
static long json_number(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    return at ? strtol(at + strlen(pattern), NULL, 10) : -1;
}

static wasi_nn_errno_t set_text(wasi_nn_context_t ctx, uint32_t index, const char *text) {
    uint32_t dims[1] = {1}; /* as LlamaEdge sends a prompt: dims [1], the bytes as they are */
    wasi_nn_tensor_t tensor = {dims, 1, WASI_NN_TYPE_U8, (const uint8_t *)text, (uint32_t)strlen(text)};
    return wasi_nn_set_input(ctx, index, &tensor);
}

static const char *metadata(wasi_nn_context_t ctx) {
    uint32_t written = 0;
    wasi_nn_errno_t err = wasi_nn_get_output(ctx, 1, output, MAX_OUTPUT, &written);
    if (err) return "{}";
    output[written] = 0;
    return (const char *)output;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: llama_chat MODEL_NAME [PROMPT...]\n");
        return 2;
    }
    const char *name = argv[1];
    const char *template = getenv("template") ? getenv("template") : "chat";
    char config[512] = "{";
    option(config, sizeof config, "ctx_size", "ctx-size");
    option(config, sizeof config, "n_predict", "n-predict");
    option(config, sizeof config, "temp", "temp");
    option(config, sizeof config, "top_p", "top-p");
    option(config, sizeof config, "seed", "seed");
    option(config, sizeof config, "n_gpu_layers", "n-gpu-layers");
    strncat(config, "}", sizeof config - strlen(config) - 1);
    printf("[INFO] Model alias: %s\n[INFO] Config: %s\n", name, config);

    wasi_nn_graph_t graph;
    wasi_nn_context_t ctx;
    wasi_nn_errno_t err = wasi_nn_load_by_name_with_config(name, strlen(name), config, strlen(config), &graph);
    if (err) {
        printf("[ERROR] load_by_name_with_config: %s (%u)\n", wasi_nn_errno_name(err), err);
        return 1;
    }
    if ((err = wasi_nn_init_execution_context(graph, &ctx))) {
        printf("[ERROR] init_execution_context: %s\n", wasi_nn_errno_name(err));
        return 1;
    }
    const char *extra = getenv("metadata");
    if (extra) {
        err = set_text(ctx, 1, extra);
        printf("[INFO] set_input(1, metadata): %s (%u)\n", wasi_nn_errno_name(err), err);
    }

    for (int turn = 2; turn < argc; turn++) {
        printf("[USER]: %s\n", argv[turn]);
        if (strcmp(template, "raw") == 0) {
            snprintf(prompt, sizeof prompt, "%s", argv[turn]);
        } else {
            snprintf(prompt, sizeof prompt, "%sUser: %s\nAssistant:", history, argv[turn]);
        }
        if ((err = set_text(ctx, 0, prompt))) {
            printf("[ERROR] set_input: %s (%u)\n", wasi_nn_errno_name(err), err);
            return 1;
        }
        /* The token count of the prompt, before any compute. */
        printf("[INFO] Number of input tokens: %ld\n", json_number(metadata(ctx), "input_tokens"));

        printf("[BOT]:");
        fflush(stdout);
        size_t reply_len = 0;
        int reset = 0;
        for (;;) {
            err = wasi_nn_compute_single(ctx);
            if (err == WASI_NN_ERRNO_END_OF_SEQUENCE) break;
            if (err == WASI_NN_ERRNO_CONTEXT_FULL) {
                printf("\n[INFO] Context full, we'll reset the context and continue.");
                reset = 1;
                break;
            }
            if (err == WASI_NN_ERRNO_PROMPT_TOO_LONG) {
                printf("\n[INFO] Prompt too long, we'll reset the context and continue.");
                reset = 1;
                break;
            }
            if (err) {
                printf("\n[ERROR] compute_single: %s (%u)\n", wasi_nn_errno_name(err), err);
                return 1;
            }
            uint32_t written = 0;
            if ((err = wasi_nn_get_output_single(ctx, 0, output, MAX_OUTPUT, &written))) {
                printf("\n[ERROR] get_output_single: %s (%u)\n", wasi_nn_errno_name(err), err);
                return 1;
            }
            fwrite(output, 1, written, stdout);
            fflush(stdout); /* each token as it comes */
            if (reply_len + written < sizeof reply) {
                memcpy(reply + reply_len, output, written);
                reply_len += written;
            }
        }
        printf("\n");
        const char *counts = metadata(ctx);
        printf("[INFO] Number of input tokens: %ld\n", json_number(counts, "input_tokens"));
        printf("[INFO] Number of output tokens: %ld\n", json_number(counts, "output_tokens"));
        if ((err = wasi_nn_fini_single(ctx))) {
            printf("[ERROR] fini_single: %s\n", wasi_nn_errno_name(err));
            return 1;
        }
        reply[reply_len] = 0;
        if (reset) {
            history[0] = 0; /* as LlamaEdge does: start the conversation over */
        } else if (strcmp(template, "raw") != 0) {
            snprintf(history, sizeof history, "%s%s\n", prompt, reply); /* the turn joins the history */
        }
    }
    wasi_nn_finalize_execution_context(ctx);
    wasi_nn_unload(graph);
    return 0;
}

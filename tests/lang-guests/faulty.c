/*
 * Test guest (tests/e2e/languages.rs): the C SDK's failure paths. Passes records through; a
 * record whose value is `fail` makes it return an error, `hog` makes it allocate without bound
 * (the host's memory ceiling must stop it). Stateless.
 */
#include "weir.h"

#include <stdlib.h>
#include <string.h>

static bool is(const weir_record_t *r, const char *word) {
    size_t n = strlen(word);
    return r->value.len == n && memcmp(r->value.ptr, word, n) == 0;
}

bool exports_weir_plugin_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    return true;
}

bool exports_weir_plugin_operator_process(exports_weir_plugin_operator_list_record_t *batch,
                                          exports_weir_plugin_operator_list_record_t *ret,
                                          weir_string_t *err) {
    for (size_t i = 0; i < batch->len; i++) {
        if (is(&batch->ptr[i], "fail")) {
            exports_weir_plugin_operator_list_record_free(batch);
            return weir_fail(err, "asked to fail by the input");
        }
        if (is(&batch->ptr[i], "hog")) {
            /* Keep every block reachable, so the compiler cannot drop the allocations. */
            static char *volatile hoard[4096];
            for (size_t k = 0;; k = (k + 1) % 4096) {
                char *p = malloc(16 << 20);
                if (!p) abort();
                memset(p, 1, 16 << 20);
                hoard[k] = p;
            }
        }
    }
    *ret = *batch;
    return true;
}

bool exports_weir_plugin_operator_on_watermark(int64_t ts, exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)ts;
    (void)err;
    ret->ptr = malloc(1);
    ret->len = 0;
    return true;
}

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    ret->ptr = malloc(1);
    ret->len = 0;
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    (void)err;
    operator_plugin_list_u8_free(state);
    return true;
}

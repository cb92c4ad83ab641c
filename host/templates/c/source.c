/* {{name}}: a weir source. Emits `count` records (config, default 10), then ends; its state is
 * the index of the next record. */
#include "weir.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t next, count = 10;

bool exports_weir_plugin_packed_source_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    char *c = weir_config_get(cfg, "count");
    if (c) count = strtoull(c, NULL, 10);
    free(c);
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    (void)err;
    return true;
}

/* Up to `max` records, packed into one buffer. */
bool exports_weir_plugin_packed_source_poll(uint32_t max, exports_weir_plugin_packed_source_poll_result_t *ret, weir_string_t *err) {
    (void)err;
    if (next >= count) {
        ret->tag = EXPORTS_WEIR_PLUGIN_PACKED_SOURCE_POLL_RESULT_END;
        return true;
    }
    weir_batch_t out = {0};
    for (uint32_t n = 0; n < max && next < count; n++) {
        char v[32];
        int len = snprintf(v, sizeof v, "record-%llu", (unsigned long long)next++);
        weir_batch_push(&out, NULL, 0, v, (size_t)len, NULL);
    }
    ret->tag = EXPORTS_WEIR_PLUGIN_PACKED_SOURCE_POLL_RESULT_BATCH;
    ret->val.batch = weir_batch_take(&out);
    return true;
}

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    weir_buf_t b = {0};
    weir_buf_put_u64(&b, next);
    *ret = weir_buf_take(&b);
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    weir_reader_t r = {state->ptr, state->len};
    bool ok = weir_read_u64(&r, &next);
    {{cworld}}_list_u8_free(state);
    return ok ? true : weir_fail(err, "the stored state is not from this plugin");
}

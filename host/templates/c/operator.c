/* {{name}}: a weir operator. Upper-cases every value; counts what it saw (checkpointed state). */
#include "weir.h"

#include <stdlib.h>
#include <string.h>

static uint64_t seen;

bool exports_weir_plugin_packed_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    return true;
}

/* A batch arrives packed in one buffer: read its records in place, write the output into another. */
bool exports_weir_plugin_packed_operator_process(weir_packed_t *batch, weir_packed_t *ret, weir_string_t *err) {
    weir_batch_reader_t in;
    weir_view_t r;
    weir_batch_t out = {0};
    if (!weir_batch_read(&in, batch)) return weir_fail(err, "not a packed batch");
    while (weir_batch_next(&in, &r)) {
        uint8_t *upper = malloc(r.value_len ? r.value_len : 1);
        for (size_t k = 0; k < r.value_len; k++)
            upper[k] = r.value[k] >= 'a' && r.value[k] <= 'z' ? r.value[k] - 32 : r.value[k];
        weir_batch_push_like(&out, &r, upper, r.value_len);
        free(upper);
        seen++;
    }
    weir_batch_free(batch);
    *ret = weir_batch_take(&out);
    return true;
}

static bool nothing(weir_packed_t *ret) {
    weir_batch_t out = {0};
    *ret = weir_batch_take(&out);
    return true;
}

bool exports_weir_plugin_packed_operator_on_watermark(int64_t ts, weir_packed_t *ret, weir_string_t *err) {
    (void)ts;
    (void)err;
    return nothing(ret);
}

/* Timers registered with weir_register_event_timer (weir.h) fire here. */
bool exports_weir_plugin_packed_operator_on_timers(exports_weir_plugin_packed_operator_list_timer_t *fired,
                                                   weir_packed_t *ret, weir_string_t *err) {
    (void)err;
    exports_weir_plugin_packed_operator_list_timer_free(fired);
    return nothing(ret);
}

/* End of input: emit what is still held back. */
bool exports_weir_plugin_packed_operator_finish(weir_packed_t *ret, weir_string_t *err) {
    (void)err;
    return nothing(ret);
}

bool exports_weir_plugin_state_snapshot(weir_bytes_t *ret, weir_string_t *err) {
    (void)err;
    weir_buf_t b = {0};
    weir_buf_put_u64(&b, seen);
    *ret = weir_buf_take(&b);
    return true;
}

bool exports_weir_plugin_state_restore(weir_bytes_t *state, weir_string_t *err) {
    weir_reader_t r = {state->ptr, state->len};
    bool ok = weir_read_u64(&r, &seen);
    {{cworld}}_list_u8_free(state);
    return ok ? true : weir_fail(err, "the stored state is not from this plugin");
}

/* {{name}}: a weir operator. Upper-cases every value; counts what it saw (checkpointed state). */
#include "weir.h"

#include <stdlib.h>

static uint64_t seen;

bool exports_weir_plugin_operator_open(weir_config_t *cfg, weir_plugin_types_context_t *ctx, weir_string_t *err) {
    (void)err;
    weir_plugin_types_config_free(cfg);
    weir_plugin_types_context_free(ctx);
    return true;
}

bool exports_weir_plugin_operator_process(exports_weir_plugin_operator_list_record_t *batch,
                                          exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)err;
    /* The batch is ours: hand its records back, changed in place. */
    for (size_t i = 0; i < batch->len; i++) {
        weir_bytes_t *v = &batch->ptr[i].value;
        for (size_t k = 0; k < v->len; k++)
            if (v->ptr[k] >= 'a' && v->ptr[k] <= 'z') v->ptr[k] -= 32;
    }
    seen += batch->len;
    *ret = *batch;
    return true;
}

static void empty(exports_weir_plugin_operator_list_record_t *ret) {
    ret->ptr = malloc(1);
    ret->len = 0;
}

bool exports_weir_plugin_operator_on_watermark(int64_t ts, exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)ts;
    (void)err;
    empty(ret);
    return true;
}

/* Event time (weir:plugin@0.2.0): timers registered with weir_register_event_timer fire here. */
bool exports_weir_plugin_operator_on_timers(exports_weir_plugin_operator_list_timer_t *fired,
                                            exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)err;
    exports_weir_plugin_operator_list_timer_free(fired);
    empty(ret);
    return true;
}

/* End of input: emit what is still held back. */
bool exports_weir_plugin_operator_finish(exports_weir_plugin_operator_list_record_t *ret, weir_string_t *err) {
    (void)err;
    empty(ret);
    return true;
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

/* Minimal Cortex-M7 startup for the bare-metal builds: vector table, .data copy, .bss clear, main. */
#include <stdint.h>
#include <string.h>

extern int main(void);
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;

void nas_reset(void)
{
    memcpy(&__data_start, &__data_load, (size_t)((char *)&__data_end - (char *)&__data_start));
    memset(&__bss_start, 0, (size_t)((char *)&__bss_end - (char *)&__bss_start));
    main();
    for (;;) {
    }
}

#ifdef NAS_MODEL_ONLY
#include "model.h"
/* The model image alone: one inference on the arena's input slot (what a deployment links around). */
int main(void)
{
    static int8_t out[NAS_OUTPUT_BYTES];
    return nas_infer(nas_input_buffer(), out);
}
#endif

static void nas_fault(void)
{
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const void *const nas_vectors[16] = {
    &__stack_top, (const void *)nas_reset, (const void *)nas_fault, (const void *)nas_fault,
    (const void *)nas_fault, (const void *)nas_fault, (const void *)nas_fault,
};

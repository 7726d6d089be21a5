package io.microdit.backend.cuda;

import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * FFM bindings of {@code native/include/microdit.h}, in jextract's shape: one static method per C function over
 * a {@link MethodHandle} resolved once, when this class initialises, from the library {@link NativeLibrary}
 * chose (the CUDA build or the host emulator). Methods return the C status as it is; {@link CudaRuntime#check}
 * turns a failing one into an exception.
 */
public final class MicroditNative {
    private static final MethodHandle MDT_ERROR_STRING = handle("mdt_error_string");
    private static final MethodHandle MDT_LAST_ERROR_MESSAGE = handle("mdt_last_error_message");
    private static final MethodHandle MDT_LIBRARY_KIND = handle("mdt_library_kind");
    private static final MethodHandle MDT_DEVICE_COUNT = handle("mdt_device_count");
    private static final MethodHandle MDT_DEVICE_NAME = handle("mdt_device_name");
    private static final MethodHandle MDT_DEVICE_SM_COUNT = handle("mdt_device_sm_count");
    private static final MethodHandle MDT_DEVICE_MEMORY = handle("mdt_device_memory");
    private static final MethodHandle MDT_SET_DEVICE = handle("mdt_set_device");
    private static final MethodHandle MDT_DEVICE_SYNCHRONIZE = handle("mdt_device_synchronize");
    private static final MethodHandle MDT_DRIVER_VERSION = handle("mdt_driver_version");
    private static final MethodHandle MDT_RUNTIME_VERSION = handle("mdt_runtime_version");
    private static final MethodHandle MDT_STREAM_CREATE = handle("mdt_stream_create");
    private static final MethodHandle MDT_STREAM_DESTROY = handle("mdt_stream_destroy");
    private static final MethodHandle MDT_STREAM_SYNCHRONIZE = handle("mdt_stream_synchronize");
    private static final MethodHandle MDT_STREAM_WAIT_EVENT = handle("mdt_stream_wait_event");
    private static final MethodHandle MDT_EVENT_CREATE = handle("mdt_event_create");
    private static final MethodHandle MDT_EVENT_CREATE_UNTIMED = handle("mdt_event_create_untimed");
    private static final MethodHandle MDT_EVENT_DESTROY = handle("mdt_event_destroy");
    private static final MethodHandle MDT_EVENT_RECORD = handle("mdt_event_record");
    private static final MethodHandle MDT_EVENT_SYNCHRONIZE = handle("mdt_event_synchronize");
    private static final MethodHandle MDT_EVENT_ELAPSED_MS = handle("mdt_event_elapsed_ms");
    private static final MethodHandle MDT_MALLOC = handle("mdt_malloc");
    private static final MethodHandle MDT_FREE = handle("mdt_free");
    private static final MethodHandle MDT_MEMCPY_HTOD = handle("mdt_memcpy_htod");
    private static final MethodHandle MDT_MEMCPY_DTOH = handle("mdt_memcpy_dtoh");
    private static final MethodHandle MDT_MEMCPY_DTOD = handle("mdt_memcpy_dtod");
    private static final MethodHandle MDT_MEMSET = handle("mdt_memset");
    private static final MethodHandle MDT_HOST_ALLOC = handle("mdt_host_alloc");
    private static final MethodHandle MDT_HOST_FREE = handle("mdt_host_free");
    private static final MethodHandle MDT_EVENT_QUERY = handle("mdt_event_query");
    private static final MethodHandle MDT_TRACE_BEGIN = handle("mdt_trace_begin");
    private static final MethodHandle MDT_TRACE_END = handle("mdt_trace_end");
    private static final MethodHandle MDT_TRACE_COUNT = handle("mdt_trace_count");
    private static final MethodHandle MDT_TRACE_ENTRY = handle("mdt_trace_entry");
    private static final MethodHandle MDT_SELFTEST_RUN = handle("mdt_selftest_run");
    private static final MethodHandle MDT_EMU_BLOCK_ORDER = handle("mdt_emu_block_order");
    private static final MethodHandle MDT_EMU_ARCHITECTURE = handle("mdt_emu_architecture");
    private static final MethodHandle MDT_EMU_STREAM_MODE = handle("mdt_emu_stream_mode");
    private static final MethodHandle MDT_EMU_THREADS = handle("mdt_emu_threads");
    private static final MethodHandle MDT_EMU_INJECT_LAST_ERROR = handle("mdt_emu_inject_last_error");
    private static final MethodHandle MDT_EMU_PERF_BEGIN = handle("mdt_emu_perf_begin");
    private static final MethodHandle MDT_EMU_PERF_END = handle("mdt_emu_perf_end");
    private static final MethodHandle MDT_EMU_PERF_KERNEL = handle("mdt_emu_perf_kernel");
    private static final MethodHandle MDT_ELEMENTWISE_ADD = handle("mdt_elementwise_add");
    private static final MethodHandle MDT_ELEMENTWISE_ADD_BF16IN = handle("mdt_elementwise_add_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_MUL = handle("mdt_elementwise_mul");
    private static final MethodHandle MDT_ELEMENTWISE_SCALE = handle("mdt_elementwise_scale");
    private static final MethodHandle MDT_ELEMENTWISE_AXPY = handle("mdt_elementwise_axpy");
    private static final MethodHandle MDT_ELEMENTWISE_FILL = handle("mdt_elementwise_fill");
    private static final MethodHandle MDT_ELEMENTWISE_MODULATE_FWD = handle("mdt_elementwise_modulate_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_MODULATE_BWD = handle("mdt_elementwise_modulate_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_FWD = handle("mdt_elementwise_gated_residual_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD = handle("mdt_elementwise_gated_residual_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_FWD_BF16IN = handle("mdt_elementwise_gated_residual_fwd_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN = handle("mdt_elementwise_gated_residual_bwd_bf16in");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16GRAD = handle("mdt_elementwise_gated_residual_bwd_bf16grad");
    private static final MethodHandle MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN_BF16GRAD = handle("mdt_elementwise_gated_residual_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ELEMENTWISE_SLICE_COLUMNS_FWD = handle("mdt_elementwise_slice_columns_fwd");
    private static final MethodHandle MDT_ELEMENTWISE_SLICE_COLUMNS_BWD = handle("mdt_elementwise_slice_columns_bwd");
    private static final MethodHandle MDT_ELEMENTWISE_F32_TO_BF16 = handle("mdt_elementwise_f32_to_bf16");
    private static final MethodHandle MDT_ELEMENTWISE_BF16_TO_F32 = handle("mdt_elementwise_bf16_to_f32");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD = handle("mdt_norm_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16OUT = handle("mdt_norm_layer_norm_fwd_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD = handle("mdt_norm_layer_norm_bwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16IN = handle("mdt_norm_layer_norm_fwd_bf16in");
    private static final MethodHandle MDT_NORM_LAYER_NORM_FWD_BF16IN_BF16OUT = handle("mdt_norm_layer_norm_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_STATISTICS = handle("mdt_norm_layer_norm_statistics");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16_ROWS = handle("mdt_norm_layer_norm_bwd_bf16_rows");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16IN = handle("mdt_norm_layer_norm_bwd_bf16in");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16GRAD = handle("mdt_norm_layer_norm_bwd_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_BF16IN_BF16GRAD = handle("mdt_norm_layer_norm_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_FWD = handle("mdt_norm_layer_norm_modulate_fwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_FWD_BF16OUT = handle("mdt_norm_layer_norm_modulate_fwd_bf16out");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD = handle("mdt_norm_layer_norm_modulate_bwd");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD_BF16GRAD = handle("mdt_norm_layer_norm_modulate_bwd_bf16grad");
    private static final MethodHandle MDT_NORM_LAYER_NORM_BWD_ACCUMULATE = handle("mdt_norm_layer_norm_bwd_accumulate");
    private static final MethodHandle MDT_NORM_LAYER_NORM_MODULATE_BWD_ACCUMULATE = handle("mdt_norm_layer_norm_modulate_bwd_accumulate");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_FWD = handle("mdt_norm_residual_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_FWD_BF16COPY = handle("mdt_norm_residual_layer_norm_fwd_bf16copy");
    private static final MethodHandle MDT_NORM_RESIDUAL_LAYER_NORM_BWD = handle("mdt_norm_residual_layer_norm_bwd");
    private static final MethodHandle MDT_NORM_GATHER_LAYER_NORM_FWD = handle("mdt_norm_gather_layer_norm_fwd");
    private static final MethodHandle MDT_NORM_GATHER_LAYER_NORM_BWD = handle("mdt_norm_gather_layer_norm_bwd");
    private static final MethodHandle MDT_TOKENS_GATHER_ROWS = handle("mdt_tokens_gather_rows");
    private static final MethodHandle MDT_TOKENS_SCATTER_ROWS = handle("mdt_tokens_scatter_rows");
    private static final MethodHandle MDT_TOKENS_MEAN_FWD = handle("mdt_tokens_mean_fwd");
    private static final MethodHandle MDT_TOKENS_MEAN_BWD = handle("mdt_tokens_mean_bwd");
    private static final MethodHandle MDT_OPTIM_ADAMW = handle("mdt_optim_adamw");
    private static final MethodHandle MDT_OPTIM_EMA = handle("mdt_optim_ema");
    private static final MethodHandle MDT_OPTIM_SUM_OF_SQUARES = handle("mdt_optim_sum_of_squares");
    private static final MethodHandle MDT_OPTIM_ADAMW_MULTI = handle("mdt_optim_adamw_multi");
    private static final MethodHandle MDT_OPTIM_ADAMW_BF16_COPY_MULTI = handle("mdt_optim_adamw_bf16_copy_multi");
    private static final MethodHandle MDT_OPTIM_EMA_MULTI = handle("mdt_optim_ema_multi");
    private static final MethodHandle MDT_OPTIM_SUM_OF_SQUARES_MULTI = handle("mdt_optim_sum_of_squares_multi");
    private static final MethodHandle MDT_RNG_UNIFORM = handle("mdt_rng_uniform");
    private static final MethodHandle MDT_RNG_NORMAL = handle("mdt_rng_normal");
    private static final MethodHandle MDT_GEMM_MATMUL = handle("mdt_gemm_matmul");
    private static final MethodHandle MDT_GEMM_MATMUL_WORKSPACE = handle("mdt_gemm_matmul_workspace");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16 = handle("mdt_gemm_matmul_bf16");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_OUT = handle("mdt_gemm_matmul_bf16_out");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU = handle("mdt_gemm_matmul_bf16_gelu");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU_GATHERED = handle("mdt_gemm_matmul_bf16_gelu_gathered");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GATHERED = handle("mdt_gemm_matmul_bf16_gathered");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_GELU_BWD = handle("mdt_gemm_matmul_bf16_gelu_bwd");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_SWIGLU = handle("mdt_gemm_matmul_bf16_swiglu");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_SWIGLU_BWD = handle("mdt_gemm_matmul_bf16_swiglu_bwd");
    private static final MethodHandle MDT_GEMM_MATMUL_BF16_WORKSPACE = handle("mdt_gemm_matmul_bf16_workspace");
    private static final MethodHandle MDT_GEMM_MATMUL_TF32 = handle("mdt_gemm_matmul_tf32");
    private static final MethodHandle MDT_GEMM_MATMUL_TF32_WORKSPACE = handle("mdt_gemm_matmul_tf32_workspace");
    private static final MethodHandle MDT_GEMM_SUM_ROWS = handle("mdt_gemm_sum_rows");
    private static final MethodHandle MDT_GEMM_SUM_ROWS_BF16IN = handle("mdt_gemm_sum_rows_bf16in");
    private static final MethodHandle MDT_GEMM_SUM_ROWS_WORKSPACE_FLOATS = handle("mdt_gemm_sum_rows_workspace_floats");

    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD = handle("mdt_activations_gelu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16OUT = handle("mdt_activations_gelu_fwd_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD = handle("mdt_activations_gelu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16IN = handle("mdt_activations_gelu_fwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_FWD_BF16IN_BF16OUT = handle("mdt_activations_gelu_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16IN = handle("mdt_activations_gelu_bwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16GRAD = handle("mdt_activations_gelu_bwd_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_GELU_BWD_BF16IN_BF16GRAD = handle("mdt_activations_gelu_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SILU_FWD = handle("mdt_activations_silu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SILU_BWD = handle("mdt_activations_silu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD = handle("mdt_activations_swiglu_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16OUT = handle("mdt_activations_swiglu_fwd_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD = handle("mdt_activations_swiglu_bwd");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN = handle("mdt_activations_swiglu_fwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN_BF16OUT = handle("mdt_activations_swiglu_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN = handle("mdt_activations_swiglu_bwd_bf16in");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16GRAD = handle("mdt_activations_swiglu_bwd_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN_BF16GRAD = handle("mdt_activations_swiglu_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ACTIVATIONS_SOFTMAX_FWD = handle("mdt_activations_softmax_fwd");
    private static final MethodHandle MDT_ACTIVATIONS_SOFTMAX_BWD = handle("mdt_activations_softmax_bwd");
    private static final MethodHandle MDT_EMBED_PATCHIFY_FWD = handle("mdt_embed_patchify_fwd");
    private static final MethodHandle MDT_EMBED_PATCHIFY_BWD = handle("mdt_embed_patchify_bwd");
    private static final MethodHandle MDT_EMBED_UNPATCHIFY_FWD = handle("mdt_embed_unpatchify_fwd");
    private static final MethodHandle MDT_EMBED_UNPATCHIFY_BWD = handle("mdt_embed_unpatchify_bwd");
    private static final MethodHandle MDT_EMBED_POSITION_2D = handle("mdt_embed_position_2d");
    private static final MethodHandle MDT_EMBED_TIMESTEP = handle("mdt_embed_timestep");
    private static final MethodHandle MDT_LOSS_EDM_FWD = handle("mdt_loss_edm_fwd");
    private static final MethodHandle MDT_LOSS_EDM_BWD = handle("mdt_loss_edm_bwd");
    private static final MethodHandle MDT_MOE_TOPK_FWD = handle("mdt_moe_topk_fwd");
    private static final MethodHandle MDT_MOE_TOPK_BWD = handle("mdt_moe_topk_bwd");
    private static final MethodHandle MDT_MOE_DISPATCH_FWD = handle("mdt_moe_dispatch_fwd");
    private static final MethodHandle MDT_MOE_DISPATCH_FWD_BF16OUT = handle("mdt_moe_dispatch_fwd_bf16out");
    private static final MethodHandle MDT_MOE_TOKEN_SLOTS = handle("mdt_moe_token_slots");
    private static final MethodHandle MDT_MOE_ROUTED_ROWS = handle("mdt_moe_routed_rows");
    private static final MethodHandle MDT_MOE_DISPATCH_BWD = handle("mdt_moe_dispatch_bwd");
    private static final MethodHandle MDT_MOE_COMBINE_FWD = handle("mdt_moe_combine_fwd");
    private static final MethodHandle MDT_MOE_COMBINE_FWD_BF16IN = handle("mdt_moe_combine_fwd_bf16in");
    private static final MethodHandle MDT_MOE_COMBINE_FWD_BF16IN_BF16OUT = handle("mdt_moe_combine_fwd_bf16in_bf16out");
    private static final MethodHandle MDT_MOE_COMBINE_BWD = handle("mdt_moe_combine_bwd");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16IN = handle("mdt_moe_combine_bwd_bf16in");
    private static final MethodHandle MDT_MOE_DISPATCH_BWD_BF16GRAD = handle("mdt_moe_dispatch_bwd_bf16grad");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16GRAD = handle("mdt_moe_combine_bwd_bf16grad");
    private static final MethodHandle MDT_MOE_COMBINE_BWD_BF16IN_BF16GRAD = handle("mdt_moe_combine_bwd_bf16in_bf16grad");
    private static final MethodHandle MDT_ATTENTION_FWD = handle("mdt_attention_fwd");
    private static final MethodHandle MDT_ATTENTION_BWD = handle("mdt_attention_bwd");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16 = handle("mdt_attention_fwd_bf16");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16_OUT = handle("mdt_attention_fwd_bf16_out");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16 = handle("mdt_attention_bwd_bf16");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT = handle("mdt_attention_bwd_bf16_out");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_BF16GRAD = handle("mdt_attention_bwd_bf16_bf16grad");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD = handle("mdt_attention_bwd_bf16_out_bf16grad");
    private static final MethodHandle MDT_ATTENTION_FWD_BF16_OUT_QKNORM = handle("mdt_attention_fwd_bf16_out_qknorm");
    private static final MethodHandle MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD_QKNORM = handle("mdt_attention_bwd_bf16_out_bf16grad_qknorm");
    private static final MethodHandle MDT_COMM_UNIQUE_ID = handle("mdt_comm_unique_id");
    private static final MethodHandle MDT_COMM_INIT = handle("mdt_comm_init");
    private static final MethodHandle MDT_COMM_DESTROY = handle("mdt_comm_destroy");
    private static final MethodHandle MDT_COMM_ALL_REDUCE_SUM = handle("mdt_comm_all_reduce_sum");
    private static final MethodHandle MDT_COMM_REDUCE_SCATTER_SUM = handle("mdt_comm_reduce_scatter_sum");
    private static final MethodHandle MDT_COMM_ALL_GATHER = handle("mdt_comm_all_gather");
    private static final MethodHandle MDT_COMM_ALL_GATHER_BF16 = handle("mdt_comm_all_gather_bf16");
    private static final MethodHandle MDT_COMM_BROADCAST = handle("mdt_comm_broadcast");
    private static final MethodHandle MDT_COMM_ALL_REDUCE_SUM_DEFERRED = handle("mdt_comm_all_reduce_sum_deferred");
    private static final MethodHandle MDT_COMM_REDUCE_SCATTER_SUM_DEFERRED = handle("mdt_comm_reduce_scatter_sum_deferred");
    private static final MethodHandle MDT_COMM_JOIN = handle("mdt_comm_join");
    private MicroditNative() {
    }

    private static MethodHandle handle(String name) {
        MemorySegment symbol = NativeLibrary.lookup().find(name).orElseThrow(() -> new UnsatisfiedLinkError(
                "microdit native library " + NativeLibrary.path() + " has no symbol " + name
                        + ": it was built from another microdit.h; rebuild it (make -C native)"));
        return Linker.nativeLinker().downcallHandle(symbol, MicroditAbi.FUNCTIONS.get(name));
    }

    public static MemorySegment mdt_error_string(int status) {
        try {
            return (MemorySegment) MDT_ERROR_STRING.invokeExact(status);
        } catch (Throwable error) {
            throw new AssertionError("mdt_error_string threw", error);
        }
    }

    public static MemorySegment mdt_last_error_message() {
        try {
            return (MemorySegment) MDT_LAST_ERROR_MESSAGE.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_last_error_message threw", error);
        }
    }

    public static int mdt_library_kind() {
        try {
            return (int) MDT_LIBRARY_KIND.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_library_kind threw", error);
        }
    }

    public static int mdt_device_count(MemorySegment count) {
        try {
            return (int) MDT_DEVICE_COUNT.invokeExact(count);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_count threw", error);
        }
    }

    public static int mdt_device_name(int device, MemorySegment buffer, long capacity) {
        try {
            return (int) MDT_DEVICE_NAME.invokeExact(device, buffer, capacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_name threw", error);
        }
    }

    public static int mdt_device_sm_count(int device, MemorySegment count) {
        try {
            return (int) MDT_DEVICE_SM_COUNT.invokeExact(device, count);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_sm_count threw", error);
        }
    }

    public static int mdt_device_memory(int device, MemorySegment freeBytes, MemorySegment totalBytes) {
        try {
            return (int) MDT_DEVICE_MEMORY.invokeExact(device, freeBytes, totalBytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_memory threw", error);
        }
    }

    public static int mdt_set_device(int device) {
        try {
            return (int) MDT_SET_DEVICE.invokeExact(device);
        } catch (Throwable error) {
            throw new AssertionError("mdt_set_device threw", error);
        }
    }

    public static int mdt_device_synchronize() {
        try {
            return (int) MDT_DEVICE_SYNCHRONIZE.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_device_synchronize threw", error);
        }
    }

    public static int mdt_driver_version(MemorySegment version) {
        try {
            return (int) MDT_DRIVER_VERSION.invokeExact(version);
        } catch (Throwable error) {
            throw new AssertionError("mdt_driver_version threw", error);
        }
    }

    public static int mdt_runtime_version(MemorySegment version) {
        try {
            return (int) MDT_RUNTIME_VERSION.invokeExact(version);
        } catch (Throwable error) {
            throw new AssertionError("mdt_runtime_version threw", error);
        }
    }

    public static int mdt_stream_create(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_CREATE.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_create threw", error);
        }
    }

    public static int mdt_stream_destroy(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_DESTROY.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_destroy threw", error);
        }
    }

    public static int mdt_stream_synchronize(MemorySegment stream) {
        try {
            return (int) MDT_STREAM_SYNCHRONIZE.invokeExact(stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_synchronize threw", error);
        }
    }

    public static int mdt_stream_wait_event(MemorySegment stream, MemorySegment event) {
        try {
            return (int) MDT_STREAM_WAIT_EVENT.invokeExact(stream, event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_stream_wait_event threw", error);
        }
    }

    public static int mdt_event_create_untimed(MemorySegment event) {
        try {
            return (int) MDT_EVENT_CREATE_UNTIMED.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_create_untimed threw", error);
        }
    }

    public static int mdt_event_create(MemorySegment event) {
        try {
            return (int) MDT_EVENT_CREATE.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_create threw", error);
        }
    }

    public static int mdt_event_destroy(MemorySegment event) {
        try {
            return (int) MDT_EVENT_DESTROY.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_destroy threw", error);
        }
    }

    public static int mdt_event_record(MemorySegment event, MemorySegment stream) {
        try {
            return (int) MDT_EVENT_RECORD.invokeExact(event, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_record threw", error);
        }
    }

    public static int mdt_event_synchronize(MemorySegment event) {
        try {
            return (int) MDT_EVENT_SYNCHRONIZE.invokeExact(event);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_synchronize threw", error);
        }
    }

    public static int mdt_event_elapsed_ms(MemorySegment start, MemorySegment end, MemorySegment milliseconds) {
        try {
            return (int) MDT_EVENT_ELAPSED_MS.invokeExact(start, end, milliseconds);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_elapsed_ms threw", error);
        }
    }

    public static int mdt_malloc(MemorySegment pointer, long bytes) {
        try {
            return (int) MDT_MALLOC.invokeExact(pointer, bytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_malloc threw", error);
        }
    }

    public static int mdt_free(MemorySegment pointer) {
        try {
            return (int) MDT_FREE.invokeExact(pointer);
        } catch (Throwable error) {
            throw new AssertionError("mdt_free threw", error);
        }
    }

    public static int mdt_memcpy_htod(MemorySegment deviceTarget, MemorySegment hostSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_HTOD.invokeExact(deviceTarget, hostSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_htod threw", error);
        }
    }

    public static int mdt_memcpy_dtoh(MemorySegment hostTarget, MemorySegment deviceSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_DTOH.invokeExact(hostTarget, deviceSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_dtoh threw", error);
        }
    }

    public static int mdt_memcpy_dtod(MemorySegment deviceTarget, MemorySegment deviceSource, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMCPY_DTOD.invokeExact(deviceTarget, deviceSource, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memcpy_dtod threw", error);
        }
    }

    public static int mdt_memset(MemorySegment deviceTarget, int value, long bytes, MemorySegment stream) {
        try {
            return (int) MDT_MEMSET.invokeExact(deviceTarget, value, bytes, stream);
        } catch (Throwable error) {
            throw new AssertionError("mdt_memset threw", error);
        }
    }

    public static int mdt_host_alloc(MemorySegment pointer, long bytes) {
        try {
            return (int) MDT_HOST_ALLOC.invokeExact(pointer, bytes);
        } catch (Throwable error) {
            throw new AssertionError("mdt_host_alloc threw", error);
        }
    }

    public static int mdt_host_free(MemorySegment pointer) {
        try {
            return (int) MDT_HOST_FREE.invokeExact(pointer);
        } catch (Throwable error) {
            throw new AssertionError("mdt_host_free threw", error);
        }
    }

    public static int mdt_event_query(MemorySegment event, MemorySegment complete) {
        try {
            return (int) MDT_EVENT_QUERY.invokeExact(event, complete);
        } catch (Throwable error) {
            throw new AssertionError("mdt_event_query threw", error);
        }
    }

    public static int mdt_trace_begin(int dryRun) {
        try {
            return (int) MDT_TRACE_BEGIN.invokeExact(dryRun);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_begin threw", error);
        }
    }

    public static int mdt_trace_end() {
        try {
            return (int) MDT_TRACE_END.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_end threw", error);
        }
    }

    public static int mdt_trace_count(MemorySegment launches) {
        try {
            return (int) MDT_TRACE_COUNT.invokeExact(launches);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_count threw", error);
        }
    }

    public static int mdt_trace_entry(long index, MemorySegment kernel, long capacity, MemorySegment shape) {
        try {
            return (int) MDT_TRACE_ENTRY.invokeExact(index, kernel, capacity, shape);
        } catch (Throwable error) {
            throw new AssertionError("mdt_trace_entry threw", error);
        }
    }

    public static int mdt_selftest_run(MemorySegment name, int gridX, int blockX, int sharedBytes, MemorySegment hostOut, long capacity) {
        try {
            return (int) MDT_SELFTEST_RUN.invokeExact(name, gridX, blockX, sharedBytes, hostOut, capacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_selftest_run threw", error);
        }
    }

    public static int mdt_emu_block_order(int order, long seed) {
        try {
            return (int) MDT_EMU_BLOCK_ORDER.invokeExact(order, seed);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_block_order threw", error);
        }
    }

    public static int mdt_emu_architecture(int sm) {
        try {
            return (int) MDT_EMU_ARCHITECTURE.invokeExact(sm);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_architecture threw", error);
        }
    }

    public static int mdt_emu_stream_mode(int mode) {
        try {
            return (int) MDT_EMU_STREAM_MODE.invokeExact(mode);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_stream_mode threw", error);
        }
    }

    public static int mdt_emu_threads(int count, MemorySegment inEffect) {
        try {
            return (int) MDT_EMU_THREADS.invokeExact(count, inEffect);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_threads threw", error);
        }
    }

    public static int mdt_emu_inject_last_error() {
        try {
            return (int) MDT_EMU_INJECT_LAST_ERROR.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_inject_last_error threw", error);
        }
    }

    public static int mdt_emu_perf_begin() {
        try {
            return (int) MDT_EMU_PERF_BEGIN.invokeExact();
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_begin threw", error);
        }
    }

    public static int mdt_emu_perf_end(MemorySegment kernels) {
        try {
            return (int) MDT_EMU_PERF_END.invokeExact(kernels);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_end threw", error);
        }
    }

    public static int mdt_emu_perf_kernel(int index, MemorySegment name, long nameCapacity, MemorySegment counts) {
        try {
            return (int) MDT_EMU_PERF_KERNEL.invokeExact(index, name, nameCapacity, counts);
        } catch (Throwable error) {
            throw new AssertionError("mdt_emu_perf_kernel threw", error);
        }
    }

    public static int mdt_elementwise_add(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_ADD.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_add threw", error);
        }
    }

    public static int mdt_elementwise_add_bf16in(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_ADD_BF16IN.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_add_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_mul(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n, long bN) {
        try {
            return (int) MDT_ELEMENTWISE_MUL.invokeExact(stream, a, b, out, n, bN);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_mul threw", error);
        }
    }

    public static int mdt_elementwise_scale(MemorySegment stream, MemorySegment x, float alpha, MemorySegment out, long n) {
        try {
            return (int) MDT_ELEMENTWISE_SCALE.invokeExact(stream, x, alpha, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_scale threw", error);
        }
    }

    public static int mdt_elementwise_axpy(MemorySegment stream, float alpha, MemorySegment x, MemorySegment y, long n) {
        try {
            return (int) MDT_ELEMENTWISE_AXPY.invokeExact(stream, alpha, x, y, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_axpy threw", error);
        }
    }

    public static int mdt_elementwise_fill(MemorySegment stream, MemorySegment out, float value, long n) {
        try {
            return (int) MDT_ELEMENTWISE_FILL.invokeExact(stream, out, value, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_fill threw", error);
        }
    }

    public static int mdt_elementwise_modulate_fwd(MemorySegment stream, MemorySegment x, MemorySegment shift, MemorySegment scale, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_MODULATE_FWD.invokeExact(stream, x, shift, scale, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_modulate_fwd threw", error);
        }
    }

    public static int mdt_elementwise_modulate_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment scale, MemorySegment dx, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_MODULATE_BWD.invokeExact(stream, dOut, x, scale, dx, dShift, dScale, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_modulate_bwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_fwd(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_FWD.invokeExact(stream, x, gate, f, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_fwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_FWD_BF16IN.invokeExact(stream, x, gate, f, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_fwd_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16in threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, int bf16Grads) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16GRAD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_elementwise_gated_residual_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment gate, MemorySegment f, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, int bf16Grads) {
        try {
            return (int) MDT_ELEMENTWISE_GATED_RESIDUAL_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, gate, f, dGate, dF, samples, tokens, width, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_gated_residual_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_elementwise_slice_columns_fwd(MemorySegment stream, MemorySegment x, long start, MemorySegment out, long rows, long columns, long width) {
        try {
            return (int) MDT_ELEMENTWISE_SLICE_COLUMNS_FWD.invokeExact(stream, x, start, out, rows, columns, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_slice_columns_fwd threw", error);
        }
    }

    public static int mdt_elementwise_slice_columns_bwd(MemorySegment stream, MemorySegment dOut, long start, MemorySegment dx, long rows, long columns, long width) {
        try {
            return (int) MDT_ELEMENTWISE_SLICE_COLUMNS_BWD.invokeExact(stream, dOut, start, dx, rows, columns, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_slice_columns_bwd threw", error);
        }
    }

    public static int mdt_elementwise_f32_to_bf16(MemorySegment stream, MemorySegment source, MemorySegment target, long n) {
        try {
            return (int) MDT_ELEMENTWISE_F32_TO_BF16.invokeExact(stream, source, target, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_f32_to_bf16 threw", error);
        }
    }

    public static int mdt_elementwise_bf16_to_f32(MemorySegment stream, MemorySegment source, MemorySegment target, long n) {
        try {
            return (int) MDT_ELEMENTWISE_BF16_TO_F32.invokeExact(stream, source, target, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_elementwise_bf16_to_f32 threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16OUT.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16out threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16IN.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16in threw", error);
        }
    }

    public static int mdt_norm_layer_norm_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long rows, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_FWD_BF16IN_BF16OUT.invokeExact(stream, x, weight, eps, out, mean, rstd, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_fwd_bf16in_bf16out threw", error);
        }
    }
    public static int mdt_norm_layer_norm_statistics(MemorySegment stream, MemorySegment x, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, MemorySegment center, long rows, long width, long xStride, int bf16Operands) {
        try {
            return (int) MDT_NORM_LAYER_NORM_STATISTICS.invokeExact(stream, x, eps, out, mean, rstd, center, rows, width, xStride, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_statistics threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16_rows(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment mean, MemorySegment rstd, MemorySegment dx, long rows, long width, long rowStride) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16_ROWS.invokeExact(stream, dOut, x, mean, rstd, dx, rows, width, rowStride);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16_rows threw", error);
        }
    }


    public static int mdt_norm_layer_norm_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16IN.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16in threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16GRAD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_fwd(MemorySegment stream, MemorySegment x, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_FWD.invokeExact(stream, x, weight, shift, scale, eps, out, mean, rstd, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_fwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_FWD_BF16OUT.invokeExact(stream, x, weight, shift, scale, eps, out, mean, rstd, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_fwd_bf16out threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD_BF16GRAD.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_norm_layer_norm_bwd_accumulate(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long rows, long width, MemorySegment workspace, long workspaceCapacity, int bf16Operands) {
        try {
            return (int) MDT_NORM_LAYER_NORM_BWD_ACCUMULATE.invokeExact(stream, dOut, x, weight, mean, rstd, dx, dWeight, rows, width, workspace, workspaceCapacity, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_bwd_accumulate threw", error);
        }
    }

    public static int mdt_norm_layer_norm_modulate_bwd_accumulate(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Grads) {
        try {
            return (int) MDT_NORM_LAYER_NORM_MODULATE_BWD_ACCUMULATE.invokeExact(stream, dOut, x, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, samples, tokens, width, workspace, workspaceCapacity, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_layer_norm_modulate_bwd_accumulate threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_fwd_bf16copy(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment residual, MemorySegment out, MemorySegment outBf16, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width, int bf16F) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_FWD_BF16COPY.invokeExact(stream, x, gate, f, weight, shift, scale, eps, residual, out, outBf16, mean, rstd, samples, tokens, width, bf16F);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_fwd_bf16copy threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment shift, MemorySegment scale, float eps, MemorySegment residual, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long width, int bf16Operands) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_FWD.invokeExact(stream, x, gate, f, weight, shift, scale, eps, residual, out, mean, rstd, samples, tokens, width, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_residual_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dResidual, MemorySegment residual, MemorySegment gate, MemorySegment f, MemorySegment weight, MemorySegment scale, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, MemorySegment dShift, MemorySegment dScale, MemorySegment dGate, MemorySegment dF, long samples, long tokens, long width, MemorySegment workspace, long workspaceCapacity, int bf16Operands) {
        try {
            return (int) MDT_NORM_RESIDUAL_LAYER_NORM_BWD.invokeExact(stream, dOut, dResidual, residual, gate, f, weight, scale, mean, rstd, dx, dWeight, dShift, dScale, dGate, dF, samples, tokens, width, workspace, workspaceCapacity, bf16Operands);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_residual_layer_norm_bwd threw", error);
        }
    }

    public static int mdt_norm_gather_layer_norm_fwd(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment weight, float eps, MemorySegment out, MemorySegment mean, MemorySegment rstd, long samples, long tokens, long kept, long width, int bf16Out, MemorySegment errorRecord) {
        try {
            return (int) MDT_NORM_GATHER_LAYER_NORM_FWD.invokeExact(stream, x, ids, weight, eps, out, mean, rstd, samples, tokens, kept, width, bf16Out, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_gather_layer_norm_fwd threw", error);
        }
    }

    public static int mdt_norm_gather_layer_norm_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment ids, MemorySegment weight, MemorySegment mean, MemorySegment rstd, MemorySegment dx, MemorySegment dWeight, long samples, long tokens, long kept, long width, MemorySegment workspace, long workspaceCapacity, int bf16DOut, int accumulate, MemorySegment errorRecord) {
        try {
            return (int) MDT_NORM_GATHER_LAYER_NORM_BWD.invokeExact(stream, dOut, x, ids, weight, mean, rstd, dx, dWeight, samples, tokens, kept, width, workspace, workspaceCapacity, bf16DOut, accumulate, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_norm_gather_layer_norm_bwd threw", error);
        }
    }

    public static int mdt_tokens_gather_rows(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment out, long samples, long tokens, long kept, long width, MemorySegment errorRecord) {
        try {
            return (int) MDT_TOKENS_GATHER_ROWS.invokeExact(stream, x, ids, out, samples, tokens, kept, width, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_gather_rows threw", error);
        }
    }

    public static int mdt_tokens_scatter_rows(MemorySegment stream, MemorySegment x, MemorySegment ids, MemorySegment out, long samples, long tokens, long kept, long width, MemorySegment errorRecord) {
        try {
            return (int) MDT_TOKENS_SCATTER_ROWS.invokeExact(stream, x, ids, out, samples, tokens, kept, width, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_scatter_rows threw", error);
        }
    }

    public static int mdt_tokens_mean_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long samples, long tokens, long width) {
        try {
            return (int) MDT_TOKENS_MEAN_FWD.invokeExact(stream, x, out, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_mean_fwd threw", error);
        }
    }

    public static int mdt_tokens_mean_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dx, long samples, long tokens, long width) {
        try {
            return (int) MDT_TOKENS_MEAN_BWD.invokeExact(stream, dOut, dx, samples, tokens, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_tokens_mean_bwd threw", error);
        }
    }

    public static int mdt_optim_adamw(MemorySegment stream, MemorySegment param, MemorySegment grad, MemorySegment m, MemorySegment v, long n, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale) {
        try {
            return (int) MDT_OPTIM_ADAMW.invokeExact(stream, param, grad, m, v, n, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw threw", error);
        }
    }

    public static int mdt_optim_ema(MemorySegment stream, MemorySegment ema, MemorySegment param, long n, float decay) {
        try {
            return (int) MDT_OPTIM_EMA.invokeExact(stream, ema, param, n, decay);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_ema threw", error);
        }
    }

    public static int mdt_optim_sum_of_squares(MemorySegment stream, MemorySegment x, long n, MemorySegment partials, long partialCapacity, MemorySegment result) {
        try {
            return (int) MDT_OPTIM_SUM_OF_SQUARES.invokeExact(stream, x, n, partials, partialCapacity, result);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_sum_of_squares threw", error);
        }
    }

    public static int mdt_optim_adamw_multi(MemorySegment stream, MemorySegment entries, long count, long total, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_ADAMW_MULTI.invokeExact(stream, entries, count, total, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw_multi threw", error);
        }
    }

    public static int mdt_optim_adamw_bf16_copy_multi(MemorySegment stream, MemorySegment entries, MemorySegment copies, long count, long total, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, long step, float gradScale, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_ADAMW_BF16_COPY_MULTI.invokeExact(stream, entries, copies, count, total, learningRate, beta1, beta2, epsilon, weightDecay, step, gradScale, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_adamw_bf16_copy_multi threw", error);
        }
    }

    public static int mdt_optim_ema_multi(MemorySegment stream, MemorySegment entries, long count, long total, float decay, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_EMA_MULTI.invokeExact(stream, entries, count, total, decay, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_ema_multi threw", error);
        }
    }

    public static int mdt_optim_sum_of_squares_multi(MemorySegment stream, MemorySegment entries, long count, long totalPartials, MemorySegment partials, long partialCapacity, MemorySegment results, MemorySegment errorRecord) {
        try {
            return (int) MDT_OPTIM_SUM_OF_SQUARES_MULTI.invokeExact(stream, entries, count, totalPartials, partials, partialCapacity, results, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_optim_sum_of_squares_multi threw", error);
        }
    }

    public static int mdt_rng_uniform(MemorySegment stream, long seed, long philoxStream, long offset, MemorySegment out, long n) {
        try {
            return (int) MDT_RNG_UNIFORM.invokeExact(stream, seed, philoxStream, offset, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_rng_uniform threw", error);
        }
    }

    public static int mdt_rng_normal(MemorySegment stream, long seed, long philoxStream, long offset, MemorySegment out, long n) {
        try {
            return (int) MDT_RNG_NORMAL.invokeExact(stream, seed, philoxStream, offset, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_rng_normal threw", error);
        }
    }

    public static int mdt_gemm_matmul(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul threw", error);
        }
    }

    public static int mdt_gemm_matmul_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_workspace threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16 threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_out(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_OUT.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_out threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment pre, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU.invokeExact(stream, a, transposeA, b, transposeB, bias, pre, out, batch, m, n, k, strideA, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu_gathered(MemorySegment stream, MemorySegment x, MemorySegment rows, long xRows, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment pre, MemorySegment out, long batch, long m, long n, long k, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU_GATHERED.invokeExact(stream, x, rows, xRows, b, transposeB, bias, pre, out, batch, m, n, k, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu_gathered threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gathered(MemorySegment stream, MemorySegment x, MemorySegment rows, long xRows, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideB, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GATHERED.invokeExact(stream, x, rows, xRows, transposeA, b, transposeB, bias, out, batch, m, n, k, strideB, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gathered threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_gelu_bwd(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment pre, MemorySegment dPre, long batch, long m, long n, long k, long strideA, long strideB, int tanhApproximation, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_GELU_BWD.invokeExact(stream, a, transposeA, b, transposeB, pre, dPre, batch, m, n, k, strideA, strideB, tanhApproximation, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_gelu_bwd threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_swiglu(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment gateA, MemorySegment gateB, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_SWIGLU.invokeExact(stream, a, transposeA, b, transposeB, bias, gateA, gateB, out, batch, m, n, k, strideA, strideB, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_swiglu threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_swiglu_bwd(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment gateA, MemorySegment gateB, MemorySegment dGateA, MemorySegment dGateB, long batch, long m, long n, long k, long strideA, long strideB, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_SWIGLU_BWD.invokeExact(stream, a, transposeA, b, transposeB, gateA, gateB, dGateA, dGateB, batch, m, n, k, strideA, strideB, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_swiglu_bwd threw", error);
        }
    }

    public static int mdt_gemm_matmul_bf16_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_BF16_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_bf16_workspace threw", error);
        }
    }

    public static int mdt_gemm_matmul_tf32(MemorySegment stream, MemorySegment a, int transposeA, MemorySegment b, int transposeB, MemorySegment bias, MemorySegment out, long batch, long m, long n, long k, long strideA, long strideB, int accumulate, int gelu, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_MATMUL_TF32.invokeExact(stream, a, transposeA, b, transposeB, bias, out, batch, m, n, k, strideA, strideB, accumulate, gelu, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_tf32 threw", error);
        }
    }

    public static int mdt_gemm_matmul_tf32_workspace(long batch, long m, long n, long k, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_MATMUL_TF32_WORKSPACE.invokeExact(batch, m, n, k, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_matmul_tf32_workspace threw", error);
        }
    }

    public static int mdt_gemm_sum_rows(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long columns, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_SUM_ROWS.invokeExact(stream, x, out, rows, columns, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows threw", error);
        }
    }

    public static int mdt_gemm_sum_rows_bf16in(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long columns, int accumulate, MemorySegment workspace, long workspaceCapacity) {
        try {
            return (int) MDT_GEMM_SUM_ROWS_BF16IN.invokeExact(stream, x, out, rows, columns, accumulate, workspace, workspaceCapacity);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows_bf16in threw", error);
        }
    }

    public static int mdt_gemm_sum_rows_workspace_floats(long rows, long columns, MemorySegment floats) {
        try {
            return (int) MDT_GEMM_SUM_ROWS_WORKSPACE_FLOATS.invokeExact(rows, columns, floats);
        } catch (Throwable error) {
            throw new AssertionError("mdt_gemm_sum_rows_workspace_floats threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16OUT.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16out threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD.invokeExact(stream, dOut, x, dx, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16in(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16IN.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_gelu_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment x, MemorySegment out, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_FWD_BF16IN_BF16OUT.invokeExact(stream, x, out, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16IN.invokeExact(stream, dOut, x, dx, n, tanhApproximation);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16GRAD.invokeExact(stream, dOut, x, dx, n, tanhApproximation, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_activations_gelu_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n, int tanhApproximation, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_GELU_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, x, dx, n, tanhApproximation, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_gelu_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_activations_silu_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SILU_FWD.invokeExact(stream, x, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_silu_fwd threw", error);
        }
    }

    public static int mdt_activations_silu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment x, MemorySegment dx, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SILU_BWD.invokeExact(stream, dOut, x, dx, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_silu_bwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16out(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16OUT.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16out threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD.invokeExact(stream, dOut, a, b, da, db, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16in(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_swiglu_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment a, MemorySegment b, MemorySegment out, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_FWD_BF16IN_BF16OUT.invokeExact(stream, a, b, out, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN.invokeExact(stream, dOut, a, b, da, db, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16in threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16GRAD.invokeExact(stream, dOut, a, b, da, db, n, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_activations_swiglu_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment a, MemorySegment b, MemorySegment da, MemorySegment db, long n, int bf16Grads) {
        try {
            return (int) MDT_ACTIVATIONS_SWIGLU_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, a, b, da, db, n, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_swiglu_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_activations_softmax_fwd(MemorySegment stream, MemorySegment x, MemorySegment out, long rows, long width) {
        try {
            return (int) MDT_ACTIVATIONS_SOFTMAX_FWD.invokeExact(stream, x, out, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_softmax_fwd threw", error);
        }
    }

    public static int mdt_activations_softmax_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment y, MemorySegment dx, long rows, long width) {
        try {
            return (int) MDT_ACTIVATIONS_SOFTMAX_BWD.invokeExact(stream, dOut, y, dx, rows, width);
        } catch (Throwable error) {
            throw new AssertionError("mdt_activations_softmax_bwd threw", error);
        }
    }

    public static int mdt_embed_patchify_fwd(MemorySegment stream, MemorySegment image, MemorySegment out, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_PATCHIFY_FWD.invokeExact(stream, image, out, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_patchify_fwd threw", error);
        }
    }

    public static int mdt_embed_patchify_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dImage, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_PATCHIFY_BWD.invokeExact(stream, dOut, dImage, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_patchify_bwd threw", error);
        }
    }

    public static int mdt_embed_unpatchify_fwd(MemorySegment stream, MemorySegment tokens, MemorySegment out, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_UNPATCHIFY_FWD.invokeExact(stream, tokens, out, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_unpatchify_fwd threw", error);
        }
    }

    public static int mdt_embed_unpatchify_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment dTokens, long samples, long channels, long height, long width, long patch) {
        try {
            return (int) MDT_EMBED_UNPATCHIFY_BWD.invokeExact(stream, dOut, dTokens, samples, channels, height, width, patch);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_unpatchify_bwd threw", error);
        }
    }

    public static int mdt_embed_position_2d(MemorySegment stream, MemorySegment out, long gridH, long gridW, long dim, float interpolationScale) {
        try {
            return (int) MDT_EMBED_POSITION_2D.invokeExact(stream, out, gridH, gridW, dim, interpolationScale);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_position_2d threw", error);
        }
    }

    public static int mdt_embed_timestep(MemorySegment stream, MemorySegment t, MemorySegment out, long samples, long size) {
        try {
            return (int) MDT_EMBED_TIMESTEP.invokeExact(stream, t, out, samples, size);
        } catch (Throwable error) {
            throw new AssertionError("mdt_embed_timestep threw", error);
        }
    }

    public static int mdt_loss_edm_fwd(MemorySegment stream, MemorySegment denoised, MemorySegment target, MemorySegment weight, MemorySegment mask, MemorySegment perSample, MemorySegment workspace, long samples, long channels, long height, long width, long patch, MemorySegment errorRecord) {
        try {
            return (int) MDT_LOSS_EDM_FWD.invokeExact(stream, denoised, target, weight, mask, perSample, workspace, samples, channels, height, width, patch, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_loss_edm_fwd threw", error);
        }
    }

    public static int mdt_loss_edm_bwd(MemorySegment stream, float dLoss, MemorySegment denoised, MemorySegment target, MemorySegment weight, MemorySegment mask, MemorySegment dDenoised, MemorySegment workspace, long samples, long channels, long height, long width, long patch, MemorySegment errorRecord) {
        try {
            return (int) MDT_LOSS_EDM_BWD.invokeExact(stream, dLoss, denoised, target, weight, mask, dDenoised, workspace, samples, channels, height, width, patch, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_loss_edm_bwd threw", error);
        }
    }

    public static int mdt_moe_topk_fwd(MemorySegment stream, MemorySegment probs, MemorySegment gates, MemorySegment indices, long samples, long tokens, long experts, long k) {
        try {
            return (int) MDT_MOE_TOPK_FWD.invokeExact(stream, probs, gates, indices, samples, tokens, experts, k);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_topk_fwd threw", error);
        }
    }

    public static int mdt_moe_topk_bwd(MemorySegment stream, MemorySegment dGates, MemorySegment indices, MemorySegment dProbs, long samples, long tokens, long experts, long k, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_TOPK_BWD.invokeExact(stream, dGates, indices, dProbs, samples, tokens, experts, k, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_topk_bwd threw", error);
        }
    }

    public static int mdt_moe_dispatch_fwd(MemorySegment stream, MemorySegment x, MemorySegment indices, MemorySegment out, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_DISPATCH_FWD.invokeExact(stream, x, indices, out, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_fwd threw", error);
        }
    }

    public static int mdt_moe_dispatch_fwd_bf16out(MemorySegment stream, MemorySegment x, MemorySegment indices, MemorySegment out, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_DISPATCH_FWD_BF16OUT.invokeExact(stream, x, indices, out, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_fwd_bf16out threw", error);
        }
    }

    public static int mdt_moe_token_slots(MemorySegment stream, MemorySegment indices, MemorySegment offsets, MemorySegment slots, long samples, long tokens, long experts, long k, int check, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_TOKEN_SLOTS.invokeExact(stream, indices, offsets, slots, samples, tokens, experts, k, check, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_token_slots threw", error);
        }
    }

    public static int mdt_moe_routed_rows(MemorySegment stream, MemorySegment indices, MemorySegment rows, long samples, long tokens, long experts, long k, int check, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_ROUTED_ROWS.invokeExact(stream, indices, rows, samples, tokens, experts, k, check, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_routed_rows threw", error);
        }
    }

    public static int mdt_moe_dispatch_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment offsets, MemorySegment slots, MemorySegment dx, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_DISPATCH_BWD.invokeExact(stream, dOut, offsets, slots, dx, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_bwd threw", error);
        }
    }

    public static int mdt_moe_combine_fwd(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd threw", error);
        }
    }

    public static int mdt_moe_combine_fwd_bf16in(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD_BF16IN.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd_bf16in threw", error);
        }
    }

    public static int mdt_moe_combine_fwd_bf16in_bf16out(MemorySegment stream, MemorySegment h, MemorySegment gates, MemorySegment offsets, MemorySegment slots, MemorySegment out, long samples, long tokens, long experts, long k, long dim) {
        try {
            return (int) MDT_MOE_COMBINE_FWD_BF16IN_BF16OUT.invokeExact(stream, h, gates, offsets, slots, out, samples, tokens, experts, k, dim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_fwd_bf16in_bf16out threw", error);
        }
    }

    public static int mdt_moe_combine_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16in(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16IN.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16in threw", error);
        }
    }

    public static int mdt_moe_dispatch_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment offsets, MemorySegment slots, MemorySegment dx, long samples, long tokens, long experts, long k, long dim, int bf16Grads) {
        try {
            return (int) MDT_MOE_DISPATCH_BWD_BF16GRAD.invokeExact(stream, dOut, offsets, slots, dx, samples, tokens, experts, k, dim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_dispatch_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, int bf16Grads, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16GRAD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, bf16Grads, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16grad threw", error);
        }
    }

    public static int mdt_moe_combine_bwd_bf16in_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment h, MemorySegment gates, MemorySegment indices, MemorySegment dH, MemorySegment dGates, long samples, long tokens, long experts, long k, long dim, int bf16Grads, MemorySegment errorRecord) {
        try {
            return (int) MDT_MOE_COMBINE_BWD_BF16IN_BF16GRAD.invokeExact(stream, dOut, h, gates, indices, dH, dGates, samples, tokens, experts, k, dim, bf16Grads, errorRecord);
        } catch (Throwable error) {
            throw new AssertionError("mdt_moe_combine_bwd_bf16in_bf16grad threw", error);
        }
    }

    public static int mdt_attention_fwd(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd threw", error);
        }
    }

    public static int mdt_attention_bwd(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd threw", error);
        }
    }

    public static int mdt_attention_fwd_bf16(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16 threw", error);
        }
    }

    public static int mdt_attention_fwd_bf16_out(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16_OUT.invokeExact(stream, q, k, v, out, lse, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16_out threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16 threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_BF16GRAD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_bf16grad threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out_bf16grad(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD.invokeExact(stream, dOut, q, k, v, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out_bf16grad threw", error);
        }
    }
    public static int mdt_attention_fwd_bf16_out_qknorm(MemorySegment stream, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment qCenter, MemorySegment qRstd, MemorySegment kCenter, MemorySegment kRstd, MemorySegment out, MemorySegment lse, long samples, long queries, long keys, long heads, long headDim, long qStride, long kvStride) {
        try {
            return (int) MDT_ATTENTION_FWD_BF16_OUT_QKNORM.invokeExact(stream, q, k, v, qCenter, qRstd, kCenter, kRstd, out, lse, samples, queries, keys, heads, headDim, qStride, kvStride);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_fwd_bf16_out_qknorm threw", error);
        }
    }

    public static int mdt_attention_bwd_bf16_out_bf16grad_qknorm(MemorySegment stream, MemorySegment dOut, MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment qCenter, MemorySegment qRstd, MemorySegment kCenter, MemorySegment kRstd, MemorySegment out, MemorySegment lse, MemorySegment delta, MemorySegment dOutBf16, MemorySegment dq, MemorySegment dk, MemorySegment dv, long samples, long queries, long keys, long heads, long headDim, long qStride, long kvStride, int bf16Grads) {
        try {
            return (int) MDT_ATTENTION_BWD_BF16_OUT_BF16GRAD_QKNORM.invokeExact(stream, dOut, q, k, v, qCenter, qRstd, kCenter, kRstd, out, lse, delta, dOutBf16, dq, dk, dv, samples, queries, keys, heads, headDim, qStride, kvStride, bf16Grads);
        } catch (Throwable error) {
            throw new AssertionError("mdt_attention_bwd_bf16_out_bf16grad_qknorm threw", error);
        }
    }


    public static int mdt_comm_unique_id(MemorySegment uniqueId) {
        try {
            return (int) MDT_COMM_UNIQUE_ID.invokeExact(uniqueId);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_unique_id threw", error);
        }
    }

    public static int mdt_comm_init(MemorySegment comm, MemorySegment uniqueId, int rank, int size) {
        try {
            return (int) MDT_COMM_INIT.invokeExact(comm, uniqueId, rank, size);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_init threw", error);
        }
    }

    public static int mdt_comm_destroy(MemorySegment comm) {
        try {
            return (int) MDT_COMM_DESTROY.invokeExact(comm);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_destroy threw", error);
        }
    }

    public static int mdt_comm_all_reduce_sum(MemorySegment comm, MemorySegment stream, MemorySegment data, long n) {
        try {
            return (int) MDT_COMM_ALL_REDUCE_SUM.invokeExact(comm, stream, data, n);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_reduce_sum threw", error);
        }
    }

    public static int mdt_comm_reduce_scatter_sum(MemorySegment comm, MemorySegment stream, MemorySegment data, MemorySegment starts, MemorySegment shard, int accumulate) {
        try {
            return (int) MDT_COMM_REDUCE_SCATTER_SUM.invokeExact(comm, stream, data, starts, shard, accumulate);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_reduce_scatter_sum threw", error);
        }
    }

    public static int mdt_comm_all_gather(MemorySegment comm, MemorySegment stream, MemorySegment shard, MemorySegment starts, MemorySegment data) {
        try {
            return (int) MDT_COMM_ALL_GATHER.invokeExact(comm, stream, shard, starts, data);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_gather threw", error);
        }
    }

    public static int mdt_comm_all_gather_bf16(MemorySegment comm, MemorySegment stream, MemorySegment shard, MemorySegment starts, MemorySegment data) {
        try {
            return (int) MDT_COMM_ALL_GATHER_BF16.invokeExact(comm, stream, shard, starts, data);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_gather_bf16 threw", error);
        }
    }

    public static int mdt_comm_broadcast(MemorySegment comm, MemorySegment stream, MemorySegment data, long bytes, int root) {
        try {
            return (int) MDT_COMM_BROADCAST.invokeExact(comm, stream, data, bytes, root);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_broadcast threw", error);
        }
    }

    public static int mdt_comm_all_reduce_sum_deferred(MemorySegment comm, MemorySegment stream, MemorySegment data, long n, MemorySegment done) {
        try {
            return (int) MDT_COMM_ALL_REDUCE_SUM_DEFERRED.invokeExact(comm, stream, data, n, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_all_reduce_sum_deferred threw", error);
        }
    }

    public static int mdt_comm_reduce_scatter_sum_deferred(MemorySegment comm, MemorySegment stream, MemorySegment data, MemorySegment starts, MemorySegment shard, int accumulate, MemorySegment done) {
        try {
            return (int) MDT_COMM_REDUCE_SCATTER_SUM_DEFERRED.invokeExact(comm, stream, data, starts, shard, accumulate, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_reduce_scatter_sum_deferred threw", error);
        }
    }

    public static int mdt_comm_join(MemorySegment comm, MemorySegment stream, MemorySegment done) {
        try {
            return (int) MDT_COMM_JOIN.invokeExact(comm, stream, done);
        } catch (Throwable error) {
            throw new AssertionError("mdt_comm_join threw", error);
        }
    }
}

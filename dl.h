/* dl.h - v0.1.0 - small convolutional networks in one C header. Public domain or MIT, see end.
   >>docs

   Define, train and run small CNNs in-process, on the CPU, with an optional
   CUDA backend (dl_cuda.cu). Dependencies: libc and libm.

   Do this:
      #define DL_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the implementation.

   CONTENTS (search for ">>name")
      >>docs     this block: quick start, concepts, errors, threads, configuration
      >>api      status, ops, net, layers, params, optim, train, ctx, files, backend
      >>impl     the implementation, in this order:
      >>types    private types and helpers    >>net      nets and parameters
      >>layers   shapes, infer/params hooks, constructors
      >>compute  SIMD, threads, GEMM          >>ops      one page per op, in DL_OP order
      >>optable  the op table dl__ops[] and attribute lists
      >>losses   >>optim   >>cpu (the CPU backend)   >>exec (plan, forward, backward)
      >>train    >>backend (moving a net)     >>files (format 2 reader and writer)
      >>platform file calls
      >>fit      optional: summary, schedules, datasets, dl_fit, report (DL_NO_FIT)
      >>emit     optional: frozen nets, exact memory, C source (DL_NO_EMIT)
   A new op is a DL_OP value, a row in dl__ops[] (and dlc__ops[] in dl_cuda.cu),
   its hooks and kernels, a constructor, and a row in tests/ops.h.

   QUICK START (compiles as-is; see README.md and examples/ for more)

      dl_net   *net = dl_net_new();
      dl_layer *x   = dl_input(net, 1, 28, 28);            // C, H, W; the batch is dynamic
      dl_layer *h   = dl_conv2d(x, 32, 3, 1, 1);            // filters, kernel, stride, pad
      h = dl_maxpool2d(dl_prelu(dl_batchnorm(h)), 2, 2);
      dl_layer *logits = dl_dense(dl_flatten(h), 10);
      dl_layer *probs  = dl_softmax(logits);               // used for inference only
      dl_optim *opt = dl_adam(net, 1e-3f);
      float loss;
      dl_train_step(net, opt, logits, images, labels, n, &loss);   // softmax cross-entropy
      const float *p = dl_predict(net, probs, images, n);           // n x 10
      dl_net_save(net, "model.dl");
      dl_net *again = dl_net_load("model.dl", NULL);
      dl_net_free(net); dl_net_free(again);                        // frees layers, optimizers, buffers

   CONCEPTS
      A net is a DAG of layers. A layer is made from the layer(s) it reads and
      belongs to their net; layers are kept in creation order, which is a
      topological order. Training and inference run the same graph: a forward
      pass computes exactly the ancestors of the layer you ask for, so a
      softmax placed after the logits costs nothing during training.

      Per-sample shapes have 1 to 3 dimensions (C, H, W); the batch size n is
      given at each call. Data is float32, NCHW, row-major.

      Parameters (weights, biases, batchnorm statistics) live in one flat
      buffer owned by the net, gradients in a second one of the same layout;
      dl_param views give name, shape and pointers. Activations and
      workspaces live in an execution context (dl_ctx), planned once per
      graph and largest batch size. The net owns one context used by
      dl_train_step / dl_forward / dl_predict; dl_ctx_new makes more, one per
      thread, for concurrent inference on one shared, read-only net.

   ERRORS
      Calls that can fail return a status (DL_OK == 0, or a DL_ERR_* code) or
      NULL, and leave a message in the net: dl_net_error(net). Messages name
      the call, the layer and the shapes. A layer constructor that fails
      returns NULL and records why; constructors given NULL return NULL, so a
      whole graph can be built and checked once at the end. Calls that make a
      net from a file take an optional dl_status* for their message.

      dl_net_error(net) holds the message of the last failed call. A call
      that runs, trains, saves, loads, moves or configures the net
      (dl_predict, dl_forward, dl_backward, dl_train_step(_mse),
      dl_optim_step, dl_optim_set_lr, dl_net_save, dl_checkpoint_save,
      dl_net_save_mem, dl_net_load_weights, dl_net_to_backend, dl_net_sync,
      dl_net_set_threads, dl_net_set_parallel, dl_param_init,
      dl_net_set_collective, dl_net_broadcast_params,
      dl_net_sync_batchnorm) clears it
      when it succeeds. Calls that build (layer constructors,
      dl_layer_set_name, dl_net_find, dl_net_output, optimizers, dl_ctx_new)
      only ever set it, so a whole graph can be built and checked once at
      the end. dl_ctx_error(ctx) follows the same rule for dl_ctx_predict.

      A caller's mistake never aborts and never writes out of bounds. What
      can fail, and how:
      - dl_net_new, dl_ctx_new: NULL only when out of memory.
      - layer constructors: NULL for a NULL input (its error stands), sizes
        not positive or too large (2^29 floats per sample, 2^31 per
        parameter), shapes that do not fit, the wrong number of inputs,
        inputs from another net, a net already on a GPU. The net is as it
        was, generator included.
      - dl_net_find: NULL, and "no layer named", for a name no layer has.
      - dl_optim_new and its short forms: NULL for an unknown kind, lr, eps
        or weight decay not finite and positive (weight decay: >= 0),
        momentum or betas outside [0,1), alpha outside (0,1), clip < 0 or
        NaN, dampening outside [0,1] or with Nesterov. The message names the
        first rule broken, its value and the function called (dl_sgd,
        dl_adam, ...).
      - dl_train_step and its _mse, _nll, _scalar and _multi forms:
        DL_ERR_ARG for NULLs (a NULL layer
        included), batch < 1 or too large (any layer over 2^30 floats for
        the batch; refused before x or the labels are read), a label outside
        [0, classes), an optimizer or layer of another net, a dl_softmax
        layer given to dl_train_step (the loss expects logits: pass the
        softmax's input; dl_train_step_nll wants dl_log_softmax), and a graph with no trainable, unfrozen parameter
        behind the output (inference only: use dl_forward with train 1 to
        update batchnorm statistics alone); DL_ERR_NUMERIC for a NaN or
        infinite input, target, loss or gradient, and for a step that would
        make a parameter, batchnorm statistic or optimizer state infinite
        or NaN (diverging); DL_ERR_SHAPE for batchnorm training on one
        value per channel; DL_ERR_UNSUPPORTED for two input layers
        (use the _multi calls);
        DL_ERR_NOMEM. After any error no parameter, statistic, optimizer
        state or generator state has changed: the step can be retried.
      - dl_predict, dl_forward (and _multi), dl_ctx_predict: NULL, as above; a NULL layer
        is an error, not "the last layer" (that is dl_net_output(net)). Inference
        passes NaN and infinity on (outputs that depend on them are NaN or
        infinite, though relu and max pooling can drop a NaN); training mode
        refuses them before anything runs. x must hold n samples: the one
        thing no call can check.
      - dl_backward: DL_ERR_ARG without a dl_forward to the same layer.
        dl_optim_step: DL_ERR_NUMERIC, and nothing changed, when a gradient
        is not finite or the update would make a parameter or the
        optimizer's state infinite or NaN. dl_optim_set_lr: DL_ERR_ARG
        unless finite and > 0.
      - With a collective (dl_net_set_collective): DL_ERR_BACKEND, and
        nothing changed, when it returns non-zero in dl_optim_step or
        dl_train_step (with synchronised batchnorm also in dl_forward and
        dl_backward in training mode); dl_net_broadcast_params: DL_ERR_ARG
        without one.
      - dl_softmax_cross_entropy, dl_mse: NaN, writing nothing, for NULLs,
        n or size < 1, or a label out of range.
      - dl_net_save, dl_checkpoint_save: DL_ERR_ARG, DL_ERR_IO, DL_ERR_NOMEM,
        and DL_ERR_NUMERIC for a NaN or infinite parameter or optimizer state
        (files hold finite numbers only, so a diverged net never replaces
        the last good file). path is replaced atomically: killed at any
        moment, it holds the old or the new file, whole. A killed save can
        leave a "path.<pid>-<id>-<n>.tmp" file behind, safe to delete. A
        failed save's message names path and the system's reason (errno).
        Only a regular file is replaced: DL_ERR_IO when path is a folder, a
        device or a FIFO (saving to /dev/null does not replace it).
      - dl_net_load(_mem), dl_checkpoint_load(_mem), dl_net_load_weights:
        DL_ERR_IO (missing, not a regular file), DL_ERR_FORMAT (truncated,
        corrupt: every length and offset is checked against the size and a
        CRC-32 covers the file; any value out of range or not finite; a
        newer format), DL_ERR_UNSUPPORTED (custom layers: build the net and
        use dl_net_load_weights), DL_ERR_NOMEM. Files from anyone are safe to
        try: the loaders are fuzzed. dl_net_load_weights leaves the net as it
        was (values and frozen flags) when it fails.
      - dl_net_to_backend: DL_ERR_NOMEM or DL_ERR_BACKEND; the net stays where
        it was.
      Every check for NaN and infinity reads the bits, so the checks hold
      in builds with -ffast-math (make test-fastmath runs the suite so);
      whether inference carries a NaN through relu or max pooling is then
      the compiler's choice.
      Allocation failure is an error, never a crash: every allocation goes
      through DL_MALLOC and a failed one leaves the object usable. The one
      silent case: without memory for the thread pool, work runs on the
      calling thread, with the same results.

   THREAD SAFETY
      Different nets share nothing (no global state: generator, errors,
      thread pool and backend live in the net): any calls on different nets
      may run at the same time, saves to the same path included (each
      writes its own temporary file; the file is always one of them, whole).
      On one net, dl_ctx_predict may run concurrently on distinct contexts,
      and dl_ctx_new and dl_ctx_free may run on any thread meanwhile (the
      net's list of contexts has a lock), as long as no thread changes the
      net (training, adding layers, loading weights, writing parameters,
      moving it to or from a GPU; dl_net_param, dl_net_find_param and
      dl_net_params count as writing). Every other call on a net needs
      exclusive access, and its
      message (dl_net_error) belongs to the thread that made the call.
      dl_ctx objects are not thread-safe themselves: one per thread. fork()
      copies a net but not its pool's threads: a child may use (and free)
      an inherited net only if it never ran multi-threaded in the parent
      (dl_net_set_threads(net, 1) before its first step or prediction).

   CONFIGURATION (define before including the implementation)
      DL_MALLOC(sz), DL_FREE(p)  allocator; define both or neither
      DL_ASSERT(x)               the library's own invariants (default assert)
      DL_STATIC                  make all functions static
      DL_NO_THREADS              build without threads (dl_net_threads is then 1)
      DL_NO_SIMD                 the portable C kernels only
      DL_NO_FIT                  leave out the fit zone (summary, schedules,
                                 datasets, dl_fit, the HTML report)
      DL_NO_EMIT                 leave out freezing and the C emitter (>>emit)
      DL_NO_ONNX                 leave out ONNX import and export (the >>onnx zone)
      DL_OPTIMIZE_ALL            build everything at the command line's level; by
                                 default code run once per net, file or model
                                 (constructors, files, fit, freezing, ONNX) gets
                                 gcc -Og / clang -O0, which halves compile time
      Compile time of the implementation at -O2 on one core: gcc 12 about 5 s,
      4.3 s with DL_NO_ONNX, 3.3 s with all three DL_NO_; clang 14 4.4, 4, 3 s.

   PLATFORMS (what each compiler gets; tested in CI as noted)
      SIMD kernels, chosen at run time: gcc and clang on x86-64 get AVX-512
      and AVX2+FMA micro-kernels and vector row kernels (target attributes and
      __builtin_cpu_supports; no ifuncs, so sanitizers and static linking
      work), on aarch64 NEON. Everywhere else (i686, s390x, other CPUs, tcc,
      MSVC, or DL_NO_SIMD): portable C, which compiles as plain C99 - every
      GNU extension is behind a check for __GNUC__. Results agree across
      kernels within float rounding; on one machine they are bit-identical
      whatever the thread count.
      Threads: Win32 (CreateThread, SRWLOCK, CONDITION_VARIABLE) on Windows,
      POSIX (link with -pthread) on Unix, with any compiler: gcc, clang,
      mingw-w64, tcc (atomics are GNU builtins or Interlocked calls, or a lock
      where the compiler has neither); none with DL_NO_THREADS or on other
      systems. dl_net_threads says how many the pool uses.
      Files: POSIX open/fsync/rename, or on Windows CreateFile,
      FlushFileBuffers and MoveFileEx (replace, write-through); stdio
      elsewhere. The format is little-endian on every machine.
      CI builds and runs the tests on x86-64 (gcc, clang, C++, tcc, ASan,
      UBSan, TSan), aarch64, i686 and s390x (qemu) and Windows (mingw-w64 and
      wine): make test, test-arm, test-i686, test-s390x, test-win, test-tcc,
      test-tsan.

   LAYERS        input constant dense conv2d (asymmetric or "same" pads)
                 conv2d_transpose maxpool2d avgpool2d (asymmetric or "same"
                 pads, ceil mode, padding counted or not, dilated max)
                 maxpool2d_argmax global_avgpool global_maxpool batchnorm
                 dropout reshape flatten transpose pad (constant, reflect, edge)
                 upsample (nearest, bilinear) slice (channels) relu leaky_relu
                 elu prelu sigmoid tanh clip (ReLU6) hard_sigmoid hard_swish
                 selu gelu silu softplus sqrt softmax log_softmax add sub mul
                 div (broadcasting) concat matmul reduce_sum reduce_mean custom;
                 several input layers (_multi)
   LOSSES        softmax cross-entropy (integer labels), negative log-likelihood
                 of log-probabilities (integer labels), mean squared error, the
                 mean of any scalar output (a loss built from layers);
                 L2 weight decay through the optimizer
   OPTIMIZERS    SGD (momentum, dampening, Nesterov), Adam, AdamW, RMSProp
                 (momentum, centered); clipping by global norm; settable learning
                 rate; state readable by parameter (dl_optim_state)
   FILES         dl_net_save / dl_net_load (model), dl_checkpoint_save /
                 dl_checkpoint_load (model + optimizer + generator state)
   FIT           (search ">>fit") dl_net_summary; dl_schedule: step, multi-step,
                 exponential, cosine with restarts, one-cycle, plateau, linear
                 warm-up; dl_dataset views with augmentation (shift, flip,
                 cutout, brightness, contrast); dl_fit: epochs, validation,
                 top-k and confusion matrix, early stopping, checkpoints that
                 resume bit for bit, callbacks, progress bar, an HTML report;
                 dl_evaluate and dl_predict_dataset in bounded memory,
                 dl_print_confusion (per-class accuracy and the matrix)
   SCALE OUT     dl_net_set_collective: gradients averaged by your MPI or NCCL
                 all-reduce; dl_net_sync_batchnorm: batch statistics over
                 every rank (examples/dist, docs/SCALING.md)
   ONNX          dl_onnx_load / dl_onnx_save: models from PyTorch, Keras, ... run
                 here, nets trained here run anywhere (opset 13 out, 1-21 in;
                 docs/ONNX_COVERAGE.md lists what imports)
*/
#ifndef DL_H_INCLUDED
#define DL_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define DL_VERSION_MAJOR 0
#define DL_VERSION_MINOR 1
#define DL_VERSION_PATCH 0

#ifndef DLDEF
#ifdef DL_STATIC
#define DLDEF static
#else
#define DLDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==== >>api: status, ops, net, layers, params, optim, train, ctx, files, backend ==== */
/* ---- status ------------------------------------------------------------ */
typedef enum dl_code {
    DL_OK = 0,
    DL_ERR_ARG = 1,         /* a bad argument: NULL, out of range, wrong net */
    DL_ERR_SHAPE = 2,       /* shapes that do not fit together */
    DL_ERR_NOMEM = 3,       /* an allocation failed */
    DL_ERR_IO = 4,          /* a file could not be read or written */
    DL_ERR_FORMAT = 5,      /* a model file is truncated, corrupt or foreign */
    DL_ERR_NUMERIC = 6,     /* a non-finite loss or gradient; nothing was changed */
    DL_ERR_BACKEND = 7,     /* the GPU backend failed; its message is kept */
    DL_ERR_UNSUPPORTED = 8  /* valid, but not implemented for this case */
} dl_code;

/* Where a call that creates a net leaves its outcome (may be NULL). */
typedef struct dl_status {
    int code;               /* dl_code */
    char msg[256];
} dl_status;

/* ---- op kinds: written into files, so append-only with explicit values -- */
typedef enum dl_op {
    DL_OP_INPUT = 0,
    DL_OP_DENSE = 1,
    DL_OP_CONV2D = 2,
    DL_OP_MAXPOOL2D = 3,
    DL_OP_AVGPOOL2D = 4,
    DL_OP_GLOBAL_AVGPOOL = 5,
    DL_OP_BATCHNORM = 6,
    DL_OP_DROPOUT = 7,
    DL_OP_RESHAPE = 8,
    DL_OP_RELU = 9,
    DL_OP_LEAKY_RELU = 10,
    DL_OP_ELU = 11,
    DL_OP_PRELU = 12,
    DL_OP_SIGMOID = 13,
    DL_OP_TANH = 14,
    DL_OP_SOFTMAX = 15,
    DL_OP_ADD = 16,
    DL_OP_CONCAT = 17,
    DL_OP_MUL = 18,
    DL_OP_MATMUL = 19,
    DL_OP_CUSTOM = 20,
    DL_OP_GLOBAL_MAXPOOL = 21,
    DL_OP_CLIP = 22,
    DL_OP_HARD_SIGMOID = 23,
    DL_OP_HARD_SWISH = 24,
    DL_OP_SELU = 25,
    DL_OP_GELU = 26,
    DL_OP_SILU = 27,
    DL_OP_SOFTPLUS = 28,
    DL_OP_LOG_SOFTMAX = 29,
    DL_OP_SUB = 30,
    DL_OP_DIV = 31,
    DL_OP_CONSTANT = 32,
    DL_OP_CONV2D_TRANSPOSE = 33,
    DL_OP_PAD = 34,
    DL_OP_TRANSPOSE = 35,
    DL_OP_UPSAMPLE = 36,
    DL_OP_SLICE = 37,
    DL_OP_REDUCE = 38,
    DL_OP_SQRT = 39,
    DL_OP_MAXPOOL2D_ARGMAX = 40,
    DL_OP_COUNT
} dl_op;

typedef enum dl_init {
    DL_INIT_DEFAULT = 0,        /* He uniform */
    DL_INIT_HE_UNIFORM = 1,     /* U(-b, b), b = sqrt(6 / fan_in) */
    DL_INIT_HE_NORMAL = 2,      /* N(0, 2 / fan_in) */
    DL_INIT_GLOROT_UNIFORM = 3, /* U(-b, b), b = sqrt(6 / (fan_in + fan_out)) */
    DL_INIT_GLOROT_NORMAL = 4,  /* N(0, 2 / (fan_in + fan_out)) */
    DL_INIT_ZEROS = 5,
    DL_INIT_TORCH_UNIFORM = 6   /* U(-b, b), b = sqrt(1 / fan_in): PyTorch's default for conv and linear */
} dl_init;

typedef struct dl_net dl_net;
typedef struct dl_layer dl_layer;
typedef struct dl_optim dl_optim;
typedef struct dl_ctx dl_ctx;
typedef struct dl_backend dl_backend;

/* ---- net ---------------------------------------------------------------- */
DLDEF dl_net     *dl_net_new(void);                       /* NULL only when out of memory */
DLDEF void        dl_net_free(dl_net *net);               /* frees layers, optimizers, contexts' net state */
DLDEF void        dl_net_seed(dl_net *net, uint64_t seed);/* the net's generator: init, dropout, dl_fit's data */
DLDEF uint64_t    dl_net_rand(dl_net *net);               /* its next 64 bits (0 for NULL): draws of your own */
DLDEF const char *dl_net_error(const dl_net *net);        /* the last failed call's message (ERRORS says when it clears) */
DLDEF int         dl_net_layer_count(const dl_net *net);
DLDEF dl_layer   *dl_net_layer(const dl_net *net, int i); /* creation order; -1 is the last */
DLDEF dl_layer   *dl_net_find(dl_net *net, const char *name);   /* NULL and an error if no layer has it */
DLDEF dl_layer   *dl_net_output(dl_net *net);              /* the last layer added: "the net's output" */
DLDEF void        dl_net_set_input_grad(dl_net *net, int on); /* backward also computes d/d input */

/* Threads. A net starts with as many threads as the machine has cores (or
   the environment variable DL_THREADS); they split the batch and the GEMMs
   of training and dl_predict, each op only when its work pays for another
   thread (small ops, and batch-1 inference of small nets, stay on the
   calling thread); a large dl_predict batch runs chunks of samples on
   each thread (chunk-sized buffers per thread, kept with the net's
   context); they never wait for a thread another process holds up.
   Results are bit-identical for any count.
   Contexts from dl_ctx_new run single-threaded: parallelism comes from the
   threads that call them. With DL_NO_THREADS the library has no threads. */
DLDEF int dl_net_set_threads(dl_net *net, int n);          /* 0: the default */
DLDEF int dl_net_threads(const dl_net *net);
/* Your own job system instead of the built-in pool: run must call
   task(arg, i, thread) once for every i in [0, n_tasks), with thread in
   [0, n_threads) and no two concurrent calls sharing a thread, and return
   when all are done. fn NULL goes back to the built-in pool. */
typedef void (*dl_task)(void *arg, int i, int thread);
typedef void (*dl_parallel_for)(void *user, int n_tasks, dl_task task, void *arg);
DLDEF int dl_net_set_parallel(dl_net *net, dl_parallel_for run, void *user, int n_threads);

/* ---- layers: each returns NULL on error (see dl_net_error) --------------- */
/* Options structs: zero means default. Each geometry field has a both-axes
   form (kernel, stride, pad, dilation) and per-axis forms (_h, _w) that
   override it when non-zero, so any combination can be written. Padding
   may also be given per side (pad_top .. pad_right: when any is non-zero,
   all four are used as given), or computed from the input size by
   auto_pad: DL_PAD_SAME_UPPER / SAME_LOWER (TensorFlow's "same", ONNX's
   auto_pad) give an output of ceil(input / stride) with the odd extra
   padding at the end / the start. */
typedef enum dl_pad_mode { DL_PAD_EXPLICIT = 0, DL_PAD_SAME_UPPER = 1, DL_PAD_SAME_LOWER = 2 } dl_pad_mode;

typedef struct dl_conv_desc {
    int filters;               /* output channels (required) */
    int kernel, stride, pad, dilation;          /* both axes; stride and dilation default to 1 */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
    int groups;                /* 0: 1; = in channels for depthwise */
    int no_bias;               /* 1: no bias */
    int init;                  /* dl_init for the weights; biases start at 0 */
    int pad_top, pad_bottom, pad_left, pad_right;   /* asymmetric padding */
    int auto_pad;              /* dl_pad_mode (conv2d only) */
    int output_padding, output_padding_h, output_padding_w;   /* conv2d_transpose: added at the end, < stride or dilation */
} dl_conv_desc;

typedef struct dl_pool_desc {
    int kernel, stride, pad;   /* both axes; stride defaults to the kernel. Max pooling pads with -inf, average with zeros */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int pad_top, pad_bottom, pad_left, pad_right;   /* asymmetric padding; each side less than the kernel */
    int auto_pad;              /* dl_pad_mode */
    int ceil_mode;             /* 1: PyTorch's ceil_mode (a last, partial window that starts inside the input or left padding) */
    int exclude_pad;           /* average: divide by the input cells only (ONNX's default; PyTorch's count_include_pad=False) */
    int dilation, dilation_h, dilation_w;           /* max pooling only; default 1 */
} dl_pool_desc;

typedef struct dl_dense_desc { int units; int no_bias; int init; } dl_dense_desc;

DLDEF dl_layer *dl_input(dl_net *net, int c, int h, int w);  /* h, w 0 for fewer dims: (c) or (c,h) */
DLDEF dl_layer *dl_dense(dl_layer *x, int units);             /* flattens x per sample */
DLDEF dl_layer *dl_dense_ex(dl_layer *x, const dl_dense_desc *d);
DLDEF dl_layer *dl_conv2d(dl_layer *x, int filters, int kernel, int stride, int pad);
DLDEF dl_layer *dl_conv2d_ex(dl_layer *x, const dl_conv_desc *d);
/* The adjoint of conv2d (PyTorch's ConvTranspose2d): weight (in, filters/groups,
   kH, kW); output (H-1) stride - pad_top - pad_bottom + dilation (k-1) + 1 +
   output_padding along H, the same along W. */
DLDEF dl_layer *dl_conv2d_transpose(dl_layer *x, int filters, int kernel, int stride, int pad);
DLDEF dl_layer *dl_conv2d_transpose_ex(dl_layer *x, const dl_conv_desc *d);
DLDEF dl_layer *dl_maxpool2d(dl_layer *x, int kernel, int stride);
DLDEF dl_layer *dl_avgpool2d(dl_layer *x, int kernel, int stride);
DLDEF dl_layer *dl_maxpool2d_ex(dl_layer *x, const dl_pool_desc *d);
DLDEF dl_layer *dl_avgpool2d_ex(dl_layer *x, const dl_pool_desc *d);
/* Where each maximum of dl_maxpool2d_ex(x, d) is, as a float: by default
   its index in x's (H, W) plane (PyTorch's return_indices), h W + w; the
   first in scan order on ties. flags: DL_ARGMAX_COLUMN_MAJOR counts w H + h;
   DL_ARGMAX_FLAT adds the planes before it in the whole batch, (n C + c) H W
   (ONNX MaxPool's Indices; sample n counts from the start of the batch given
   to dl_predict or dl_forward, however it is run). Exact, so H W (flat: the
   batch's N C H W, which dl_predict and dl_forward check; a frozen net's
   caller must) is at most 2^24. Not differentiable: backward adds nothing
   to x's gradient. */
enum { DL_ARGMAX_COLUMN_MAJOR = 1, DL_ARGMAX_FLAT = 2 };
DLDEF dl_layer *dl_maxpool2d_argmax(dl_layer *x, const dl_pool_desc *d, int flags);
DLDEF dl_layer *dl_global_avgpool(dl_layer *x);               /* (C,H,W) -> (C) */
DLDEF dl_layer *dl_global_maxpool(dl_layer *x);               /* (C,H,W) -> (C) */
DLDEF dl_layer *dl_batchnorm(dl_layer *x);                    /* per channel (dim 0); eps 1e-5, momentum 0.1 */
DLDEF dl_layer *dl_batchnorm_ex(dl_layer *x, float eps, float momentum);
DLDEF dl_layer *dl_dropout(dl_layer *x, float p);             /* inverted dropout, training only */
DLDEF dl_layer *dl_reshape(dl_layer *x, int ndim, const int *shape); /* a view; -1 infers one dim */
DLDEF dl_layer *dl_flatten(dl_layer *x);                      /* (C,H,W) -> (C*H*W), a view */
DLDEF dl_layer *dl_relu(dl_layer *x);
DLDEF dl_layer *dl_leaky_relu(dl_layer *x, float slope);
DLDEF dl_layer *dl_elu(dl_layer *x, float alpha);
DLDEF dl_layer *dl_prelu(dl_layer *x);                        /* one slope per channel, starts at 0.25 */
DLDEF dl_layer *dl_sigmoid(dl_layer *x);
DLDEF dl_layer *dl_tanh(dl_layer *x);
DLDEF dl_layer *dl_softmax(dl_layer *x);                      /* over channels (dim 0) */
DLDEF dl_layer *dl_log_softmax(dl_layer *x);                  /* log of softmax over channels, computed stably */
DLDEF dl_layer *dl_clip(dl_layer *x, float lo, float hi);     /* min(max(x, lo), hi); ReLU6 is dl_clip(x, 0, 6) */
DLDEF dl_layer *dl_hard_sigmoid(dl_layer *x, float alpha, float beta); /* clip(alpha x + beta, 0, 1): PyTorch 1/6, 1/2; ONNX 0.2, 0.5 */
DLDEF dl_layer *dl_hard_swish(dl_layer *x);                   /* x hard_sigmoid(x) with 1/6, 1/2 */
DLDEF dl_layer *dl_selu(dl_layer *x);                         /* 1.0507 (x > 0 ? x : 1.6733 (e^x - 1)) */
DLDEF dl_layer *dl_gelu(dl_layer *x, int tanh_approx);        /* x Phi(x); 1: PyTorch's approximate='tanh' */
DLDEF dl_layer *dl_silu(dl_layer *x);                         /* x sigmoid(x), also called swish */
DLDEF dl_layer *dl_softplus(dl_layer *x);                     /* log(1 + e^x) (x past 20: x, as PyTorch) */
DLDEF dl_layer *dl_sqrt(dl_layer *x);                         /* sqrt x (NaN below 0, as sqrtf) */
/* Elementwise add, sub, mul, div broadcast their inputs along NumPy's rule
   (shapes aligned at the last dim; a dim of 1 repeats): a per-channel
   (C,1,1), a scalar (1) or a (1,H,W) operand against (C,H,W). Gradients sum
   over the repeated positions. */
DLDEF dl_layer *dl_add(dl_layer *a, dl_layer *b);
DLDEF dl_layer *dl_add_n(dl_layer *const *xs, int n);
DLDEF dl_layer *dl_sub(dl_layer *a, dl_layer *b);             /* a - b */
DLDEF dl_layer *dl_mul(dl_layer *a, dl_layer *b);
DLDEF dl_layer *dl_div(dl_layer *a, dl_layer *b);             /* a / b */
DLDEF dl_layer *dl_concat(dl_layer *const *xs, int n);        /* along channels (dim 0) */
/* Shape ops on a per-sample (C,H,W). dl_pad pads H and W: with a constant,
   by reflection (no edge repeated; each pad less than the size) or by
   repeating the edge. dl_transpose permutes the per-sample axes: output
   dim i is input dim perm[i] (perm has x's ndim entries). dl_upsample
   scales H and W by integer factors, nearest or bilinear (align_corners as
   PyTorch's). dl_slice_channels keeps channels start..end-1. */
typedef enum dl_pad_kind { DL_PAD_CONSTANT = 0, DL_PAD_REFLECT = 1, DL_PAD_EDGE = 2 } dl_pad_kind;
typedef struct dl_pad_desc { int top, bottom, left, right; int mode; float value; } dl_pad_desc;   /* mode: dl_pad_kind */
typedef struct dl_upsample_desc { int scale_h, scale_w; int bilinear; int align_corners; } dl_upsample_desc;
DLDEF dl_layer *dl_pad(dl_layer *x, int pad, int mode);      /* every side, value 0 */
DLDEF dl_layer *dl_pad_ex(dl_layer *x, const dl_pad_desc *d);
DLDEF dl_layer *dl_transpose(dl_layer *x, const int *perm);
DLDEF dl_layer *dl_upsample(dl_layer *x, int scale, int bilinear);   /* align_corners off */
DLDEF dl_layer *dl_upsample_ex(dl_layer *x, const dl_upsample_desc *d);
DLDEF dl_layer *dl_slice_channels(dl_layer *x, int start, int end);
/* Sum or mean over the per-sample axes listed (n_axes 0: all of them). keepdims
   1 keeps them as 1s; else they go, and reducing every axis leaves (1). */
DLDEF dl_layer *dl_reduce_sum(dl_layer *x, const int *axes, int n_axes, int keepdims);
DLDEF dl_layer *dl_reduce_mean(dl_layer *x, const int *axes, int n_axes, int keepdims);
/* A constant per-sample tensor (the same for every sample): a non-trainable
   parameter "<name>.value" saved with the net. data: the product of shape floats. */
DLDEF dl_layer *dl_constant(dl_net *net, int ndim, const int *shape, const float *data);
/* The same, fed by x, whose values it never reads: it takes x's batch, so a
   net whose output is a constant (an imported ONNX Shape, a dropout mask)
   still reads its input and runs under dl_predict. */
DLDEF dl_layer *dl_constant_for(dl_layer *x, int ndim, const int *shape, const float *data);
DLDEF dl_layer *dl_matmul(dl_layer *a, dl_layer *b);          /* per sample: (..,M,K) x (..,K,P) */

/* A user-defined layer. Callbacks run on the CPU with the batch laid out as
   everywhere else; backward must ADD into din[i] (when not NULL) and into
   dparams[j] (when not NULL). Return 0 on success, non-zero to fail the call. */
typedef struct dl_custom_args {
    int n;                              /* batch size */
    int train;                          /* forward was in training mode */
    int n_in;
    const float *const *in;             /* n_in inputs, n * in_size[i] floats each */
    const int *in_size;                 /* per-sample sizes */
    float *out;                         /* n * out_size */
    int out_size;
    float *const *din;                  /* backward only; entries may be NULL */
    const float *dout;                  /* backward only */
    float *const *params;               /* the layer's parameters */
    float *const *dparams;              /* their gradients (backward; NULL when frozen) */
    void *user;
} dl_custom_args;

typedef struct dl_custom_desc {
    const char *name;                   /* optional layer name */
    int ndim, shape[3];                 /* per-sample output shape */
    int (*forward)(const dl_custom_args *a);
    int (*backward)(const dl_custom_args *a);
    void *user;
    int n_params;                       /* up to 4 */
    struct { const char *name; int size; float init_value; } params[4];
} dl_custom_desc;
DLDEF dl_layer *dl_custom(dl_layer *const *inputs, int n_in, const dl_custom_desc *d);

/* Layer introspection. Names are unique in a net; defaults are "conv2d_3". */
DLDEF int         dl_layer_set_name(dl_layer *l, const char *name);
DLDEF const char *dl_layer_name(const dl_layer *l);
DLDEF int         dl_layer_op(const dl_layer *l);
DLDEF int         dl_layer_shape(const dl_layer *l, int shape[3]); /* returns ndim */
DLDEF int         dl_layer_size(const dl_layer *l);                /* floats per sample */
/* The last forward's output and the last backward's gradient wrt the output
   of l, on the net's context. After dl_predict every computed layer's output
   is there (NULL for one fused into another, and for all of them after a
   batch the CPU ran in chunks of samples: see dl__predict); a training pass
   (dl_forward, dl_train_step) reuses memory once a value is dead, so then
   only the output asked for is, and after backward the gradients of input
   layers (dl_net_set_input_grad); NULL for the others. */
DLDEF const float *dl_layer_output(const dl_layer *l);
DLDEF const float *dl_layer_grad(const dl_layer *l);

/* ---- parameters ----------------------------------------------------------- */
/* A view of one parameter tensor. Trainable parameters live in one flat
   buffer with a gradient buffer of the same layout; statistics (batchnorm
   running mean and variance) live in a second flat buffer and have no
   gradient. data and grad point into them (host memory) and stay valid until
   a layer with parameters is added or the net is freed. Users may read
   everything, write through data, and set frozen (the optimizer then skips
   it). On a GPU net call dl_net_sync first. */
typedef struct dl_param {
    char name[48];          /* "conv2d_1.weight", "batchnorm_1.running_mean", ... */
    dl_layer *layer;
    int ndim, shape[4], size;
    float *data, *grad;     /* grad NULL for statistics */
    int trainable;          /* 0 for batchnorm running statistics */
    int frozen;
    size_t offset;          /* in floats, into its flat buffer */
} dl_param;

DLDEF int       dl_net_param_count(const dl_net *net);
DLDEF dl_param *dl_net_param(dl_net *net, int i);
DLDEF dl_param *dl_net_find_param(dl_net *net, const char *name);   /* "layer.weight" */
DLDEF size_t    dl_net_param_floats(const dl_net *net);  /* trainable floats */
/* dl_predict keeps its weights prepared (packed, batchnorm folded) between
   calls and prepares them again after any call that changes parameters,
   including the three that hand out writable pointers (dl_net_param,
   dl_net_find_param, dl_net_params). Writing through a pointer kept from
   before the last prediction needs this call first. */
DLDEF void      dl_net_params_changed(dl_net *net);
DLDEF float    *dl_net_params(dl_net *net);     /* the flat host buffers */
DLDEF float    *dl_net_grads(dl_net *net);
DLDEF int       dl_param_init(dl_net *net, dl_param *p, int init);  /* refill from the generator */

/* ---- optimizers ----------------------------------------------------------- */
typedef enum dl_optim_kind { DL_SGD = 0, DL_ADAM = 1, DL_ADAMW = 2, DL_RMSPROP = 3 } dl_optim_kind;

typedef struct dl_optim_desc {  /* zero means default; semantics follow PyTorch */
    int kind;                   /* dl_optim_kind */
    float lr;                   /* 0: 0.01 for SGD and RMSProp, 0.001 for Adam(W) */
    float momentum;             /* SGD and RMSProp */
    int nesterov;               /* SGD */
    float beta1, beta2;         /* Adam(W): 0.9, 0.999 */
    float eps;                  /* Adam(W), RMSProp: 1e-8 */
    float alpha;                /* RMSProp smoothing: 0.99 */
    int centered;               /* RMSProp */
    float weight_decay;         /* L2 added to the gradient; AdamW: decoupled, default 0.01 */
    float clip_norm;            /* clip the global gradient norm to this; 0: off */
    float dampening;            /* SGD momentum: b = mu b + (1 - dampening) g after the first step */
} dl_optim_desc;

DLDEF dl_optim *dl_optim_new(dl_net *net, const dl_optim_desc *d);  /* owned by the net */
DLDEF dl_optim *dl_sgd(dl_net *net, float lr, float momentum);
DLDEF dl_optim *dl_adam(dl_net *net, float lr);
DLDEF dl_optim *dl_adamw(dl_net *net, float lr, float weight_decay);
DLDEF dl_optim *dl_rmsprop(dl_net *net, float lr);
DLDEF int       dl_optim_set_lr(dl_optim *opt, float lr);   /* DL_ERR_ARG unless finite and > 0 */
DLDEF float     dl_optim_lr(const dl_optim *opt);
DLDEF int       dl_optim_step(dl_optim *opt);       /* applies and keeps the gradients */
DLDEF long      dl_optim_steps(const dl_optim *opt); /* steps taken (a checkpoint keeps it) */
DLDEF void      dl_optim_free(dl_optim *opt);       /* optional: the net frees its optimizers */
/* Reading an optimizer's state, for inspection or transfer. Slot k of
   parameter p (p->size floats, in p's order): SGD 0 the momentum buffer;
   Adam(W) 0 the first moment, 1 the second; RMSProp 0 the square average,
   then the momentum buffer (with momentum), then the mean gradient
   (centered). NULL for a slot the optimizer does not keep or a parameter
   not trainable. The floats are host memory owned by the optimizer, valid
   until its next step or call. */
DLDEF int          dl_optim_state_slots(const dl_optim *opt);
DLDEF const float *dl_optim_state(dl_optim *opt, const dl_param *p, int slot);

/* ---- training and inference on the net's own context --------------------- */
/* x: n samples of the (single) input layer's size. labels: n ints in
   [0, classes). loss (may be NULL) receives the mean loss of the batch.
   On any error, including a non-finite loss or gradient, no parameter,
   statistic or optimizer state is changed. */
DLDEF int dl_train_step(dl_net *net, dl_optim *opt, dl_layer *logits,
                        const float *x, const int *labels, int n, float *loss);
DLDEF int dl_train_step_mse(dl_net *net, dl_optim *opt, dl_layer *out,
                            const float *x, const float *targets, int n, float *loss);
/* Negative log-likelihood of labels under log-probabilities (a dl_log_softmax
   output): with log_softmax in front it is the cross-entropy of
   dl_train_step, computed in two layers. */
DLDEF int dl_train_step_nll(dl_net *net, dl_optim *opt, dl_layer *logp,
                            const float *x, const int *labels, int n, float *loss);
/* Minimises the batch mean of a scalar (size 1 per sample) output: a loss
   written with layers (dl_reduce_mean of a layer-built error, a weighted sum
   of two heads) is differentiated like any other layer. */
DLDEF int dl_train_step_scalar(dl_net *net, dl_optim *opt, dl_layer *loss_layer, const float *x, int n, float *loss);

/* Returns n * dl_layer_size(out) floats owned by the net, valid until the
   next call on the net; NULL on error, a NULL out included (for the last
   layer added, pass dl_net_output(net)). */
DLDEF const float *dl_predict(dl_net *net, dl_layer *out, const float *x, int n);

/* Graphs with several input layers (two-stream and siamese nets, a target
   fed as an input of a layer-built loss): input layers[k] reads xs[k]
   (n samples of its size); every input the output depends on must be
   given. loss_kind is a dl_loss_kind with its targets (labels for SOFTMAX_CE
   and NLL, floats for MSE, NULL for MEAN, the scalar-output step). */
DLDEF const float *dl_predict_multi(dl_net *net, dl_layer *out, int n_inputs, dl_layer *const *inputs,
                                    const float *const *xs, int n);
DLDEF const float *dl_forward_multi(dl_net *net, dl_layer *out, int n_inputs, dl_layer *const *inputs,
                                    const float *const *xs, int n, int train);
DLDEF int dl_train_step_multi(dl_net *net, dl_optim *opt, dl_layer *out, int n_inputs, dl_layer *const *inputs,
                              const float *const *xs, int loss_kind, const void *targets, int n, float *loss);

/* The pieces of a step, for custom losses and loops: forward (train 1 for
   training mode, 0 for eval mode), then backward from a gradient wrt out
   (host memory, n * size floats), which ADDS into the parameter gradients.
   Backward may follow a forward in either mode. */
DLDEF const float *dl_forward(dl_net *net, dl_layer *out, const float *x, int n, int train);
DLDEF int          dl_backward(dl_net *net, dl_layer *out, const float *dout);
DLDEF void         dl_zero_grad(dl_net *net);

/* Loss functions on host arrays: return the mean loss, and when dlogits is
   not NULL write its gradient (n * classes floats). They return NaN, and
   write nothing, for NULL inputs, n or size not positive, or a label
   outside [0, classes). */
DLDEF float dl_softmax_cross_entropy(const float *logits, const int *labels, int n, int classes, float *dlogits);
DLDEF float dl_mse(const float *out, const float *targets, int n, int size, float *dout);
DLDEF float dl_nll(const float *logp, const int *labels, int n, int classes, float *dlogp);   /* -mean logp[label] */

/* ---- data-parallel training: one process (or GPU) per rank --------------- */
/* dl.h links no MPI or NCCL: the application hands it a collective, which
   must run the same operation on the same count on every rank and leave the
   same values on all of them (examples/dist/mpi.c and nccl.cu are adapters;
   docs/SCALING.md has the scheme).
     op DL_ALLREDUCE_MEAN: replace buf[0..count) by its element-wise mean
       over the ranks (sum, then divide by the rank count).
     op DL_BROADCAST: replace buf by rank 0's values.
     op DL_ALLREDUCE_SUM: replace buf by its element-wise sum over the
       ranks (only with dl_net_sync_batchnorm on).
   on_device is 1 when buf is the backend's memory (a CUDA pointer for
   dl_cuda), 0 for host memory. Return 0 on success; anything else fails the
   call with DL_ERR_BACKEND (in dl_optim_step and dl_train_step, with no
   parameter changed).
   With a collective set, dl_optim_step first replaces the gradients by their
   mean over the ranks (so dl_train_step(_mse) and loops that call
   dl_backward themselves all exchange gradients exactly once per step),
   then checks them and clips: every rank decides the same. dl_train_step
   also averages the loss (count 1, host) before checking it, so a
   non-finite loss on one rank fails the step on all. An argument error is
   found before any collective, on that rank only: the adapter's timeout
   must turn the others' wait into a failure. Each rank's gradient is the
   mean over its local batch, so with equal local batches the result is the
   global-batch mean, bit-identical on every rank; whether it is also
   identical for every rank count depends on the collective's summation
   order (MPI does not fix it; see docs/SCALING.md for an exact scheme).
   Batchnorm by default uses each rank's local batch statistics, and the
   running statistics stay per rank until dl_net_broadcast_params (see
   dl_net_sync_batchnorm for the alternative). Each dl_optim_step averages
   the whole gradient buffer, so use one optimizer per net. fn NULL turns
   exchange off. */
typedef enum dl_collective_op { DL_ALLREDUCE_MEAN = 0, DL_BROADCAST = 1, DL_ALLREDUCE_SUM = 2 } dl_collective_op;
typedef int (*dl_collective)(float *buf, size_t count, int op, int on_device, void *user);
DLDEF int dl_net_set_collective(dl_net *net, dl_collective fn, void *user);
/* Synchronised batchnorm (on 1; 0, the default, turns it off): while a
   collective is set, every batchnorm layer in training mode normalises
   with the mean and variance of the global batch, the union of all ranks'
   local batches, and its backward uses that batch's means of dy and
   dy*xhat. Each layer adds up per-channel sums over the ranks
   (DL_ALLREDUCE_SUM, in the backend's memory): in the forward its C sums
   and the sample count, then its C centred sums of squares; in the
   backward 2C gradient sums and the count. The running statistics then
   move identically on every rank, and a run on P ranks of local batch b
   matches a one-process run at batch P*b to float rounding (the sums
   travel as floats, so not bit for bit; docs/SCALING.md has the measured
   difference). Local batches may differ in size, but the gradient mean
   (DL_ALLREDUCE_MEAN) weighs ranks equally, so keep them equal. Every
   rank must run the same forward and backward calls, since each one now
   calls the collective. Costs 3 collectives of about C floats per
   batchnorm layer per step, latency-bound. The CPU and dl_cuda support
   it; on a backend whose batchnorm never calls dl_exec.allreduce_sum the
   step fails with DL_ERR_UNSUPPORTED, nothing changed, rather than
   training on local statistics. */
DLDEF int dl_net_sync_batchnorm(dl_net *net, int on);
/* Rank 0's parameters and statistics to every rank (DL_BROADCAST on each
   flat buffer): call once after building, before training. stats_only 1:
   the batchnorm running statistics alone, e.g. after each step. */
DLDEF int dl_net_broadcast_params(dl_net *net, int stats_only);

/* ---- execution contexts for concurrent inference ------------------------- */
DLDEF dl_ctx      *dl_ctx_new(dl_net *net);       /* NULL on failure (see dl_net_error) */
DLDEF void         dl_ctx_free(dl_ctx *ctx);
DLDEF const float *dl_ctx_predict(dl_ctx *ctx, dl_layer *out, const float *x, int n); /* owned by ctx */
DLDEF const char  *dl_ctx_error(const dl_ctx *ctx);
/* Bytes of the one working buffer a training step to out at batch n uses
   on the net's backend: activations, gradients and what backward needs,
   placed by liveness (a buffer is reused once its value is dead), and
   scratch. Parameters, their gradients and optimizer state are apart (nw
   floats each). Plans without allocating that buffer; 0 with a message on
   bad arguments. */
DLDEF size_t       dl_net_train_bytes(dl_net *net, dl_layer *out, int n);

/* ---- files: little-endian, versioned, checksummed, written atomically ---- */
DLDEF int     dl_net_save(dl_net *net, const char *path);   /* the message names path and errno's reason */
DLDEF dl_net *dl_net_load(const char *path, dl_status *st);
DLDEF dl_net *dl_net_load_mem(const void *data, size_t len, dl_status *st);
DLDEF int     dl_net_load_weights(dl_net *net, const char *path); /* into an identical graph */
DLDEF int     dl_checkpoint_save(dl_net *net, dl_optim *opt, const char *path);
DLDEF dl_net *dl_checkpoint_load(const char *path, dl_optim **opt, dl_status *st);
DLDEF dl_net *dl_checkpoint_load_mem(const void *data, size_t len, dl_optim **opt, dl_status *st);
DLDEF int     dl_net_save_mem(dl_net *net, dl_optim *opt, void **data, size_t *len); /* DL_FREE it */
DLDEF const char *dl_op_name(int op);

/* ---- fit: summary, schedules, datasets, the training loop (>>fit) ---------- */
/* Everything here is built on the calls above; DL_NO_FIT leaves it out.

   SUMMARY: dl_net_summary writes a table like Keras's model.summary(): per
   layer its name, op, output shape, parameters (trainable, frozen), multiply-
   adds per sample (dense, conv2d, matmul; batchnorm counts one per value,
   other ops none) and output memory per sample (views cost nothing), then
   totals. The _str form writes into buf (always terminated when cap > 0) and
   returns the length the whole table needs, like snprintf; -1 for NULLs. */
#ifndef DL_NO_FIT
#include <stdio.h>
DLDEF int dl_net_summary(dl_net *net, FILE *f);                    /* DL_OK, DL_ERR_ARG, DL_ERR_IO */
DLDEF int dl_net_summary_str(dl_net *net, char *buf, size_t cap);

/* SCHEDULES: a learning rate as data. dl_schedule_lr gives the rate for step
   or epoch t (counted from 0: the rate used during t); the values follow
   torch.optim.lr_scheduler (tests/fixtures/schedules.txt compares them):
     CONSTANT     lr
     STEP         lr * gamma^(t / step_size)                         StepLR
     MULTISTEP    lr * gamma^(milestones <= t)                       MultiStepLR
     EXPONENTIAL  lr * gamma^t                                       ExponentialLR
     COSINE       min_lr + (lr - min_lr)(1 + cos(pi t / period)) / 2 CosineAnnealingLR
                  restart_mult >= 1: restarts (SGDR) after period,
                  period * mult, ...                                 CosineAnnealingWarmRestarts
     ONECYCLE     lr / div up to lr at pct_start, down to
                  lr / div / final_div at total - 1 (cosine)         OneCycleLR
     PLATEAU      lr, times gamma (not below min_lr) when the metric
                  given to dl_schedule_observe has not improved by a
                  relative threshold for more than patience calls    ReduceLROnPlateau
   warmup > 0 puts a linear ramp in front of any of them: from
   lr * warmup_start to lr over `warmup` steps, then the schedule starts at
   its t = 0 (LinearLR then SequentialLR). Zero means default: gamma 0.1,
   step_size 1, warmup_start 1/3, pct_start 0.3, div 25, final_div 1e4,
   threshold 1e-4; patience is a count, and 0 lowers the rate after every
   call without improvement (PyTorch's default is 10: say so). A NaN or
   infinite metric never improves. lr 0 gives multipliers (lr 1); dl_fit puts in
   the optimizer's rate, and for period and total 0 the whole run. The
   plateau fields at the end are state (zero to start); fit's checkpoint
   keeps them. */
typedef enum dl_schedule_kind {
    DL_SCHED_CONSTANT = 0, DL_SCHED_STEP = 1, DL_SCHED_MULTISTEP = 2, DL_SCHED_EXPONENTIAL = 3,
    DL_SCHED_COSINE = 4, DL_SCHED_ONECYCLE = 5, DL_SCHED_PLATEAU = 6
} dl_schedule_kind;

typedef struct dl_schedule {
    int kind;                   /* dl_schedule_kind */
    int per_epoch;              /* dl_fit: t counts epochs (1) or optimizer steps (0) */
    float lr;                   /* base rate; the peak for one-cycle */
    float gamma;                /* step, multistep, exponential, plateau factor */
    int step_size;              /* step */
    int milestones[8];          /* multistep: ascending, unused entries 0 */
    int period;                 /* cosine: T_max, or T_0 with restarts */
    int restart_mult;           /* cosine: 0 no restarts, else T_mult */
    float min_lr;               /* cosine eta_min, plateau min_lr */
    int total;                  /* one-cycle: total steps */
    float pct_start, div, final_div;   /* one-cycle */
    int patience, cooldown;     /* plateau: calls without improvement (0 is 0), then calls to wait */
    float threshold;            /* plateau: relative */
    int maximize;               /* plateau: 1 when a larger metric is better (accuracy) */
    int warmup;                 /* linear warm-up steps (or epochs) before the schedule */
    float warmup_start;         /* warm-up's first factor */
    /* plateau state */
    int seen, bad, cool_left, reductions;
    double best, plateau_lr;    /* plateau_lr 0: not reduced yet */
} dl_schedule;

DLDEF float dl_schedule_lr(const dl_schedule *s, long t);          /* NaN for NULL or a bad field */
DLDEF int   dl_schedule_observe(dl_schedule *s, double metric);   /* plateau: 1 when it lowered the rate */

/* DATASETS: a view of samples in memory (nothing is copied): count samples of
   c*h*w floats, NCHW, with integer labels (softmax cross-entropy) or
   target_size floats each (MSE). c 0 takes the shape of the net's input
   layer in dl_fit. Instead of x, fill(user, index, n, x, labels, targets)
   may write the n samples index[0..n) itself (0 on success): for data that
   does not fit in memory. Augmentation is done per batch while it is
   filled, from a generator state (dl_rand): same state, same images.
     shift       translate by up to shift pixels each way, zeros coming in
                 (= a random crop of the image padded by shift)
     flip        mirror left-right half of the time
     contrast    scale around the sample's mean by U(1-c, 1+c)
     brightness  add U(-b, b)
     cutout      zero a cutout x cutout square centred anywhere (clipped)
   in that order. One draw per sample does shift and flip (dy, dx from bits
   0 and 16, flip bit 32), one more each for the jitter and for cutout, only
   when they are on. */
typedef struct dl_dataset {
    const float *x;
    const int *labels;          /* or NULL */
    const float *targets;       /* or NULL */
    int target_size;
    int count;
    int c, h, w;                /* per-sample shape */
    int (*fill)(void *user, const int *index, int n, float *x, int *labels, float *targets);
    void *user;
} dl_dataset;

typedef struct dl_augment {
    int shift, flip, cutout;
    float brightness, contrast;
} dl_augment;

DLDEF uint64_t dl_rand(uint64_t *state);                       /* splitmix64 */
DLDEF void     dl_shuffle(int *order, int n, uint64_t *state); /* Fisher-Yates from the end */
/* Samples index[0..n) into x (n*c*h*w floats) and labels or targets (either
   may be NULL); aug NULL or all zero: plain copies. DL_ERR_ARG for a bad
   index or dataset, or a fill callback that failed. */
DLDEF int dl_dataset_batch(const dl_dataset *d, const int *index, int n, const dl_augment *aug, uint64_t *rng,
                           float *x, int *labels, float *targets);

/* EVALUATION over a whole dataset, batch samples at a time (0: 64), so the
   memory needed is fixed. confusion (classes*classes ints, [true][predicted])
   and class_acc (classes doubles) are the caller's, or NULL. */
typedef struct dl_eval {
    double loss;                /* mean: cross-entropy of the softmax of logits, or MSE */
    double accuracy, topk;      /* NaN for MSE */
    int k;                      /* top-k's k: 0 asks for 5 (at most classes) */
    long count;
    int *confusion;
    double *class_acc;
} dl_eval;
DLDEF int dl_evaluate(dl_net *net, dl_layer *logits, const dl_dataset *d, int batch, dl_eval *ev);
/* out's outputs for every sample into dst (count * dl_layer_size(out)). */
DLDEF int dl_predict_dataset(dl_net *net, dl_layer *out, const dl_dataset *d, int batch, float *dst);
/* A confusion matrix ([true][predicted], from dl_eval or dl_fit_history) as
   a table: a row per true class with its counts and accuracy; names NULL:
   numbers, else column heads are their first 5 characters. DL_OK,
   DL_ERR_ARG, DL_ERR_IO. */
DLDEF int dl_print_confusion(FILE *f, const int *confusion, int classes, const char *const *names);

/* FIT: epochs of shuffled, augmented batches through dl_train_step (labels)
   or dl_train_step_mse (targets) with any optimizer, the schedule applied
   before each step (or epoch), evaluation after each epoch, a history, early
   stopping, checkpoints, callbacks and progress. Nothing is allocated per
   step. A last batch of a single sample is dropped (batchnorm needs two).
   Data order (reshuffled each epoch) and augmentation come from a dl_rand
   state that starts at seed * 0x2545f4914f6cdd1d + 1; seed 0 takes one
   draw of the net's generator (dl_net_rand) instead, so dl_net_seed alone
   fixes the whole run. Checkpoints keep both generators.

   Checkpoints (every checkpoint_every steps and after each epoch, written
   atomically) hold dl_net_save_mem's checkpoint plus fit's position: epoch,
   step in it, running loss, generator, order, schedule state, history and
   best weights. dl_fit_load gives the net, its optimizer and a history that
   makes dl_fit continue exactly where the file was written: the same data
   and options then give the same weights, bit for bit, as a run never
   stopped. */
typedef struct dl_fit_epoch {
    int epoch;                  /* from 1 */
    double train_loss;          /* mean over the epoch's samples */
    double train_acc;           /* from the training batches' logits (NaN: MSE or a GPU net) */
    double val_loss, val_acc, val_topk;   /* NaN without validation data */
    float lr;                   /* the last step's */
    long images;
    double seconds;             /* training time (not reproducible) */
} dl_fit_epoch;

typedef struct dl_fit_history {
    dl_fit_epoch *epochs;       /* n_epochs records */
    int n_epochs, cap_epochs;
    int best_epoch;             /* by the monitored metric; 0: none */
    long step;                  /* optimizer steps so far */
    int stopped_early;          /* 1 by patience, 2 by a callback */
    int classes;
    int *confusion;             /* the last validation's, classes*classes */
    double *class_acc;
    void *pos;                  /* fit's position: private, from dl_fit_load or a run */
    char error[256];            /* why dl_fit failed ("" after success) */
} dl_fit_history;

enum { DL_FIT_TRAINING = 0, DL_FIT_EVALUATING = 1, DL_FIT_EPOCH_DONE = 2 };
typedef struct dl_fit_progress {
    int phase;                  /* DL_FIT_* */
    int epoch, epochs;
    long done, total;           /* samples this epoch */
    double seconds, img_per_s, eta, loss;   /* loss: the epoch's running mean */
    const dl_fit_epoch *last;   /* EPOCH_DONE: the record just added */
    int bar;                    /* 0: the options' quiet is 2, no bar was drawn to clear */
} dl_fit_progress;

typedef struct dl_fit_options {     /* zero means default */
    int epochs;                 /* 10 */
    int batch;                  /* 32 */
    uint64_t seed;              /* the data's generator; 0: from the net's (dl_net_rand) */
    dl_schedule schedule;       /* constant at the optimizer's rate */
    dl_augment augment;
    float val_split;            /* no val set: this fraction of train, from its end */
    int topk;                   /* 5 */
    int eval_batch;             /* batch */
    int patience;               /* early stopping after this many epochs without a better
                                   validation metric, restoring the best weights; 0 off */
    int monitor_acc;            /* the metric: 0 validation loss, 1 validation accuracy (not
                                   for MSE); a NaN or infinite one never counts as better */
    const char *checkpoint;     /* path or NULL */
    int checkpoint_every;       /* steps; 0: only at epoch ends */
    const char *report;         /* HTML report path, rewritten after each epoch; NULL none */
    const char *const *class_names;   /* for the report; NULL: numbers */
    int quiet;                  /* 1: no progress at all; 2: only each epoch's end (no bar) */
    void (*progress)(void *user, const dl_fit_progress *p);   /* NULL: dl_fit_print_progress */
    int (*on_step)(void *user, const dl_fit_history *h, float loss);  /* non-zero stops */
    int (*on_epoch)(void *user, const dl_fit_history *h);             /* non-zero stops */
    void *user;
} dl_fit_options;

/* DL_OK; DL_ERR_ARG (NULLs, a dataset that does not fit the net, a history
   from another run), a step's or a file's error, with the message in
   h->error. The history is the caller's: zero it, or fill it with
   dl_fit_load; dl_fit_history_free releases it. A history that went through
   a run (or dl_fit_load) continues from where it stopped: more epochs train
   on. Early stopping keeps the best weights on the host: on a net on
   another backend (GPU) they are not restored. The checkpoint's own fields
   are in the host's byte order and sizes: resume on the same kind of
   machine. */
DLDEF int  dl_fit(dl_net *net, dl_optim *opt, dl_layer *logits, const dl_dataset *train, const dl_dataset *val,
                  const dl_fit_options *o, dl_fit_history *h);
DLDEF void dl_fit_history_free(dl_fit_history *h);
DLDEF dl_net *dl_fit_load(const char *path, dl_optim **opt, dl_fit_history *h, dl_status *st);
/* The default progress: the bar on stdout ("epoch 1/3 [====>   ] ... img/s
   loss ETA"), then one line per epoch. */
DLDEF void dl_fit_print_progress(void *user, const dl_fit_progress *p);
#endif /* DL_NO_FIT */

/* ---- embedding: frozen nets, exact memory, C source (zone >>emit) -------- */
#ifndef DL_NO_EMIT
/* A frozen net is an inference-only program: the steps (kernel calls) of
   one forward pass to one output layer, over the weights they read. It is
   a separate object, not a dl_net: a dl_net is a training graph (gradients,
   optimizers, contexts), a frozen net is what remains for inference, and it
   is exactly what dl_emit_c writes out as C.
   dl_freeze makes the same fusion decisions as dl_predict (a conv or dense
   layer absorbs a following batchnorm as a per-channel scale and shift,
   and a following relu, leaky relu or prelu), drops dropout and views
   (reshape, flatten), and plans one arena for the activations and the
   kernels' scratch, reusing memory once a value is dead. Batchnorm is kept
   as the conv's scale-and-shift epilogue rather than multiplied into the
   weights: that keeps the result bit-identical to dl_predict (folding into
   the weights changes the rounding). dl_frozen_run calls no allocator,
   opens no file and starts no thread: it runs on the caller's memory. */
typedef struct dl_frozen {
    const int32_t *code; size_t code_len;   /* the steps (format: >>emit) */
    const float *w; size_t w_len;           /* every float the steps read */
    const int8_t *q; size_t q_len;          /* int8 weights (dl_quantize) */
    void *owned;                            /* dl_freeze's allocation; NULL in emitted C */
} dl_frozen;

/* What a frozen net needs at batch n. work_bytes is exact: the arena that
   dl_frozen_run lays out (and NAME_WORK_BYTES in emitted C for n = 1). */
typedef struct dl_memory {
    size_t weight_bytes;    /* const data: weights (floats and int8) */
    size_t code_bytes;      /* const data: the step table */
    size_t work_bytes;      /* read-write arena = act_bytes + scratch_bytes */
    size_t act_bytes;       /* activations between steps (input and output are the caller's) */
    size_t scratch_bytes;   /* the kernels' scratch (GEMM packing) */
    int in_size, out_size;  /* floats per sample */
    int steps;
} dl_memory;

/* NULL on failure, with the reason in st: DL_ERR_ARG (NULL net, a layer of
   another net), DL_ERR_UNSUPPORTED (custom layers, two input layers, a net
   on a GPU backend, more than 16 inputs to one layer), DL_ERR_NUMERIC (a
   parameter not finite), DL_ERR_NOMEM; out NULL is an error (the last
   layer is dl_net_output(net)), as in dl_predict. The net is
   not changed; the result owns its memory (dl_frozen_free). */
DLDEF dl_frozen *dl_freeze(const dl_net *net, dl_layer *out, dl_status *st);
DLDEF void       dl_frozen_free(dl_frozen *f);
DLDEF int        dl_frozen_memory(const dl_frozen *f, int n, dl_memory *m);
/* The same numbers for a net: freezes it (allocating) and measures. */
DLDEF int        dl_net_memory(const dl_net *net, dl_layer *out, int n, dl_memory *m);
/* y = the output for n samples x (n * in_size floats; y n * out_size, not
   overlapping x). work: dl_frozen_memory(f, n).work_bytes, float-aligned.
   Single-threaded; bit-identical to dl_predict on the net it came from.
   DL_ERR_ARG for NULLs, n < 1 or unaligned work, DL_ERR_FORMAT for a step
   table from another version of dl.h. */
DLDEF int        dl_frozen_run(const dl_frozen *f, const float *x, float *y, int n, void *work);

/* int8 post-training quantization of a frozen float net: each conv and
   dense step gets int8 weights (batchnorm folded in; per output channel by
   default) and a u8 input with one range per tensor, found by running the
   n calibration samples x (a few hundred are plenty) through the net. The
   other steps stay float (and conv or dense layers summing over more than
   32768 inputs); int8 steps take and give floats. Integer sums are
   exact, so results are the same on every kernel (AVX-512 VNNI,
   AVX-VNNI, AVX2, NEON dot product, NEON, C).
   dl_frozen_run takes an int8 net through all its steps a chunk of
   samples at a time (as many as keep its activations within about 1 MB,
   1 to 64; 8 for the reference CNN), so its work memory stops growing
   there, and a sample gives the same bits in any batch.
   Before calibrating, where a conv or dense layer feeds an int8 one (and
   nothing else, perhaps through pooling or relu), the channels between
   them are equalized: each channel of the first one's output divided by
   a power of 2 and the second one's weights that read it multiplied by
   it, so that channels of very different scales (a depthwise
   convolution's outputs) no longer share one input range badly; the
   float net computes the same. DL_CALIB_ENTROPY (TensorRT's) clips more
   than the other methods; on tests/test_quant.c's depthwise-separable
   net it lost up to 1.1 points where min/max and percentile lost 0.5
   (6.6 before equalization).
   NULL on failure (st): DL_ERR_ARG (NULLs, n < 1, an already quantized
   net, a keep_float index out of range), DL_ERR_NUMERIC (non-finite
   calibration output), DL_ERR_NOMEM. Zero options mean default. */
typedef enum dl_calib {
    DL_CALIB_MINMAX = 0,        /* the range of the calibration values */
    DL_CALIB_PERCENTILE = 1,    /* |x| clipped at a percentile */
    DL_CALIB_ENTROPY = 2        /* |x| clipped where the KL divergence of the quantized histogram is least (TensorRT's method) */
} dl_calib;
typedef struct dl_quant_desc {
    int calib;                  /* dl_calib */
    float percentile;           /* DL_CALIB_PERCENTILE: share of |x| kept, in percent; default 99.99 */
    int per_tensor_weights;     /* 1: one weight scale per layer instead of per output channel */
    const int *keep_float;      /* conv and dense layers to leave in float, counted in net order */
    int n_keep_float;           /* from 0 (the first); negative counts from the end (-1: the last) */
    int no_equalize;            /* 1: no channel equalization (see above; off anyway with per_tensor_weights) */
} dl_quant_desc;
DLDEF dl_frozen *dl_quantize(const dl_frozen *f, const float *x, int n, const dl_quant_desc *d, dl_status *st);

/* Writes dir/name.h and dir/name.c (name a C identifier): the weights and
   steps as const arrays, NAME_IN_SIZE, NAME_OUT_SIZE, NAME_WORK_BYTES (the
   exact arena for one sample), NAME_WORK_BYTES_N(n) (enough for n; NAME is
   name in capitals), and
     void name_predict(const float *in, float *out, void *work);
     int  name_predict_n(const float *in, float *out, int n, void *work);
   which call dl_frozen_run (float or int8, as dl_quantize left it): link
   dl.h's implementation (DL_IMPLEMENTATION
   in one file of the program; -DDL_NO_THREADS needs no pthreads). The
   files compile warning-free as C99 and C++. Zero options mean default. */
typedef struct dl_emit_desc {
    const char *include;    /* how NAME.c includes the header: default "dl.h" */
    int implementation;     /* 1: NAME.c also defines DL_IMPLEMENTATION (one-file builds) */
} dl_emit_desc;
DLDEF int dl_emit_c(const dl_frozen *f, const char *name, const char *dir, const dl_emit_desc *d, dl_status *st);
#endif /* DL_NO_EMIT */

/* ---- ONNX (the >>onnx zone; DL_NO_ONNX leaves it out) ---------------------- */
/* Import: an ordinary net. Layers are named after the ONNX values they
   compute (dl_onnx_output finds one by its ONNX name, graph outputs
   included), parameters come from the initializers, the one graph input is
   the input layer (batch dim symbolic or fixed). A graph whose input has a
   fixed first dim and that mixes across it (transposes, reshapes, softmax or
   constants along it: ONNX's node tests do) imports with that whole tensor
   as one sample: predict it with a batch of 1. Such a whole tensor may be
   5-d: 3-d Conv, ConvTranspose and pools become 2-d layers (a convolution
   one per output depth, each with its copy of the weights). A graph output
   that folds to a constant (a Shape) is a dl_constant_for layer fed by the
   input, as is a Dropout's mask; a graph with no input gets an input
   layer of one float that nothing reads, so that they run (predict with a
   batch of 1). Opsets 1 to 21; local functions are
   inlined. A model with ops, attributes or cases dl.h cannot compute
   exactly fails with DL_ERR_UNSUPPORTED naming every such node; external
   data is read (next to the file) only by dl_onnx_load. Export: opset 13,
   IR version 7, of the ancestors of outputs; DL_ERR_UNSUPPORTED for custom
   layers. A constant is an initializer [1, dims], or, when a Concat reads
   it or it is a dl_constant_for, Expanded to the batch. */
DLDEF dl_net   *dl_onnx_load(const char *path, dl_status *st);
DLDEF dl_net   *dl_onnx_load_mem(const void *data, size_t len, dl_status *st);
DLDEF dl_layer *dl_onnx_output(const dl_net *net, const char *onnx_name);
DLDEF int       dl_onnx_save(dl_net *net, dl_layer *const *outputs, int n_outputs, const char *path);
DLDEF int       dl_onnx_save_mem(dl_net *net, dl_layer *const *outputs, int n_outputs, void **data, size_t *len); /* DL_FREE it */

/* ---- CUDA: defined in dl_cuda.cu, so only when you link dl_cuda.o ---------- */
/* A backend on CUDA device `device`, for dl_net_to_backend; NULL when there
   is no such device or it cannot start, with the CUDA message in st (may be
   NULL). dl_cuda_use does both steps; when it fails the net stays where it
   was, usable, and dl_net_error says why. (dl_cuda.o calls dl.h's functions,
   so it needs them extern: not with DL_STATIC.) */
#ifndef DL_STATIC
DLDEF dl_backend *dl_cuda_backend_new(int device, dl_status *st);
DLDEF int         dl_cuda_use(dl_net *net, int device);
/* Opt-in TF32 for the GEMMs of dense, conv2d, conv2d_transpose and matmul
   (on 1, off 0; off by default): tensor cores read the operands with 10 of
   float's 23 mantissa bits (relative error 2^-11 each) and sum in float, so
   results move by about 1e-3 of their scale (docs/GPU.md). b: a CUDA
   backend (dl_net_backend(net) after dl_cuda_use); DL_ERR_ARG otherwise. */
DLDEF int         dl_cuda_set_tf32(dl_backend *b, int on);
#endif

/* ---- backends ------------------------------------------------------------- */
/* The interface a compute backend implements (dl_cuda.cu is one). The CPU
   backend built into dl.h implements the same table. Everything below is for
   backend writers; applications call dl_net_to_backend (or dl_cuda_use). */

/* Layer hyperparameters; which fields an op uses is said at each op. */
typedef struct dl_attrs {
    int units;              /* dense: outputs; conv2d: filters */
    int kernel[2], stride[2], dilation[2];
    int pad[4];             /* top, left, bottom, right (ONNX's order); resolved when auto_pad is set */
    int auto_pad;           /* dl_pad_mode */
    int ceil_mode;          /* pooling */
    int count_include_pad;  /* average pooling */
    int output_padding[2];  /* conv2d_transpose */
    int mode;               /* pad: dl_pad_kind; upsample: 1 bilinear; maxpool2d_argmax: DL_ARGMAX_* flags */
    float value;            /* pad: the constant */
    int perm[3];            /* transpose */
    int scale[2];           /* upsample */
    int align_corners;      /* upsample */
    int range[2];           /* slice: start, end */
    int axes[3];            /* reduce: 1 for each per-sample axis reduced */
    int keepdims;           /* reduce */
    int groups;
    int bias;               /* dense, conv2d: 1 if a bias is added */
    int ndim, shape[3];     /* reshape, custom: the per-sample output shape */
    float alpha;            /* leaky_relu slope, elu alpha, dropout p, clip min, hard_sigmoid alpha, selu alpha */
    float beta;             /* clip max, hard_sigmoid beta, selu gamma */
    int approximate;        /* gelu: 1 for the tanh form */
    float eps, momentum;    /* batchnorm */
} dl_attrs;

struct dl_layer {           /* read-only outside dl.h */
    dl_net *net;
    int op;                 /* dl_op */
    int index;              /* position in creation (= topological) order */
    char name[32];
    int n_in;
    dl_layer **in;
    int ndim, shape[3], size;  /* per-sample output shape, size = product */
    dl_attrs a;
    int first_param, n_params; /* range in the net's parameter table */
    dl_custom_desc custom;  /* DL_OP_CUSTOM only */
};

/* One layer's buffers for one forward or backward call. Pointers are in the
   backend's memory. in/out are n * size floats, din/dout likewise (din[i]
   NULL when that input needs no gradient). w are the layer's parameters in
   declaration order (forward in training mode updates batchnorm running
   statistics in place), dw their gradients (NULL when frozen or not
   trainable); both backward passes ADD into din and dw. saved carries what
   forward leaves for backward; ws is scratch space. allreduce_sum is set
   for a batchnorm layer in training with dl_net_sync_batchnorm on: it
   replaces buf[0..count), in this backend's memory, by its sum over the
   ranks (after waiting for the backend's queued work, if the collective
   needs that), and returns DL_OK or a status with the message in the
   backend's error; NULL means each rank's own batch. */
typedef struct dl_exec {
    int n, train;
    int first;              /* the index of sample 0 in the caller's batch (dl_predict runs chunks of it) */
    const float *const *in;
    float *out;
    float *const *din;
    const float *dout;
    float *const *w;
    float *const *dw;
    float *saved;
    float *ws;
    uint64_t seed;          /* dropout: mask bit i = dl_dropout_keep(seed, i, p) */
    const void *cpu;        /* the CPU backend's threads and scratch; NULL elsewhere */
    int (*allreduce_sum)(const struct dl_exec *e, float *buf, size_t count);
    dl_net *net;            /* whose collective allreduce_sum calls */
    const struct dl_fused *fused;   /* conv2d, dense: NULL, or what this forward also applies (dl_backend.fuse) */
} dl_exec;

/* Inference fusion, for a backend whose fuse is 1 (the CPU fuses in its own
   way): in a forward no backward can follow (dl_predict), a conv2d or dense
   layer absorbs the eval batchnorm and then the activation (relu,
   leaky_relu, prelu, clip, hard_swish) that are the sole readers of its
   output, as on the CPU. dl_exec.fused names them; the layer writes
   act(batchnorm(its output)) to dl_exec.out, which is then the last absorbed
   layer's buffer, and the absorbed layers do not run. */
typedef struct dl_fused {
    const dl_layer *bn;     /* NULL, or an eval batchnorm; bn_w: gamma, beta, running mean, running variance */
    float *const *bn_w;
    const dl_layer *act;    /* NULL, or the activation; act_w: prelu's slope */
    float *const *act_w;
} dl_fused;

/* One optimizer step as a backend sees it: flat buffers in its memory and
   the ranges of floats to update (trainable, not frozen). */
typedef struct dl_optim_job {
    const dl_optim_desc *d;
    float lr;
    long step;              /* 1 for the first step */
    float *w, *g;           /* parameters and gradients */
    float *s[3];            /* optimizer state: SGD momentum; Adam m, v; RMSProp v, momentum, mean grad */
    int n_ranges;
    const size_t *range_off, *range_len;   /* host arrays */
    size_t n_floats;        /* all trainable floats */
} dl_optim_job;

typedef enum dl_copy_dir { DL_TO_DEVICE = 0, DL_TO_HOST = 1, DL_ON_DEVICE = 2 } dl_copy_dir;
typedef enum dl_loss_kind { DL_LOSS_SOFTMAX_CE = 0, DL_LOSS_MSE = 1, DL_LOSS_NLL = 2, DL_LOSS_MEAN = 3 } dl_loss_kind;   /* MEAN: no targets */

struct dl_backend {
    const char *name;
    /* NULL on failure. A backend without alloc could not start: dl_net_to_backend
       then fails with DL_ERR_BACKEND and error as the net's message. */
    void *(*alloc)(dl_backend *b, size_t bytes);
    void  (*release)(dl_backend *b, void *p);
    int   (*copy)(dl_backend *b, void *dst, const void *src, size_t bytes, int dir);
    int   (*zero)(dl_backend *b, void *p, size_t bytes);
    int   (*forward)(dl_backend *b, const dl_layer *l, const dl_exec *e);
    int   (*backward)(dl_backend *b, const dl_layer *l, const dl_exec *e);
    /* mean loss of out against targets (int labels or floats, already on the
       device); writes dout; *loss is valid after the next sync */
    int   (*loss)(dl_backend *b, int kind, const float *out, const void *targets,
                  int n, int size, float *dout, float *loss);
    /* one optimizer step (see dl_optim_job); DL_ERR_NUMERIC and no change
       when a gradient is not finite */
    int   (*optim_step)(dl_backend *b, const dl_optim_job *job);
    int   (*sync)(dl_backend *b);                                  /* may be NULL */
    void  (*destroy)(dl_backend *b);                               /* may be NULL */
    /* May be NULL. Queues a check on the device that the loss just queued and
       the n floats at stats are finite, and arms the training step: until the
       next sync, optim_step neither waits nor reports, and changes nothing
       when that check or its own verdict fails; the sync then returns
       DL_ERR_NUMERIC, b->error empty for the check, the optimizer's reason
       otherwise. dl_train_step then waits for the device once per step. */
    int   (*guard)(dl_backend *b, const float *stats, size_t n);
    char  error[256];       /* the message behind the last failure */
    void *user;
    int   fuse;             /* 1: conv2d and dense forwards apply dl_exec.fused (see dl_fused) */
    /* May be NULL. slot 0: a training step starts queuing (after its plan),
       1: a prediction; the backend may hold the work back and launch it as
       one graph when it next waits or copies to the host. -1: launch what
       is held now (a failed step's cleanup). */
    int   (*graph)(dl_backend *b, int slot);
};

/* Moves the net's parameters, gradients and optimizer state to a backend
   (NULL: back to the CPU). The net takes ownership of the backend. */
DLDEF int dl_net_to_backend(dl_net *net, dl_backend *b);
DLDEF int dl_net_sync(dl_net *net);               /* device parameters -> host views */
DLDEF dl_backend *dl_net_backend(const dl_net *net);

/* What backends need from the core, so every backend computes the same thing. */
DLDEF int  dl_dropout_keep(uint64_t seed, uint64_t i, float p);   /* 1 if element i is kept */
DLDEF size_t dl_layer_saved_floats(const dl_layer *l, int n);
DLDEF size_t dl_layer_ws_floats(const dl_layer *l, int n);
DLDEF int  dl_layer_out_hw(const dl_layer *l, int *c, int *h, int *w); /* output as C,H,W */
/* A convolution's geometry, as every backend lowers it to GEMM. For
   conv2d_transpose it is the geometry of the convolution it is the adjoint
   of: that convolution's input (C, H, W) is the layer's output and its
   output (M, OH, OW) the layer's input. */
typedef struct dl_conv_geom {
    int C, H, W;            /* input channels and size */
    int M, OH, OW;          /* filters and output size */
    int KH, KW, sh, sw, ph, pw, dh, dw;   /* kernel, stride, padding before (top, left), dilation */
    int G, Cg, Mg;          /* groups; input channels and filters per group */
    int K, P;               /* GEMM depth Cg*KH*KW; output pixels OH*OW */
} dl_conv_geom;
DLDEF dl_conv_geom dl_layer_conv_geom(const dl_layer *l);
DLDEF int  dl_layer_in_hw(const dl_layer *l, int i, int *c, int *h, int *w);
/* The CPU optimizer step, which backends can use as their reference. */
DLDEF int  dl_optim_step_cpu(const dl_optim_job *job);

#ifdef __cplusplus
}
#endif
#endif /* DL_H_INCLUDED */

/* ======================================================================== */
/*                   >>impl  IMPLEMENTATION                                 */
/* ======================================================================== */
#ifdef DL_IMPLEMENTATION
#ifndef DL_IMPLEMENTATION_INCLUDED
#define DL_IMPLEMENTATION_INCLUDED

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <limits.h>
#include <errno.h>
/* Threads: Win32 on Windows, POSIX elsewhere where they exist, with any
   compiler; DL_NO_THREADS builds without them. */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#define DL__WIN32 1
#endif
#if !defined(DL_NO_THREADS) && (defined(DL__WIN32) || defined(__unix__) || defined(__APPLE__))
#define DL__THREADS 1
#ifndef DL__WIN32
#include <pthread.h>
#include <unistd.h>
#endif
#endif
#if defined(DL_MALLOC) != defined(DL_FREE)
#error "dl.h: define both DL_MALLOC and DL_FREE, or neither"
#endif
#ifndef DL_MALLOC
#define DL_MALLOC(sz) malloc(sz)
#define DL_FREE(p) free(p)
#endif
#ifndef DL_ASSERT
#include <assert.h>
#define DL_ASSERT(x) assert(x)
#endif
/* Compile time: code that runs once per net, file or model (constructors,
   files, fit, freezing, ONNX) is half of dl.h but runs outside the hot
   loops, so it is built with little optimisation (gcc -Og, clang -O0): that
   halves the time to compile the implementation. The kernels, the executor,
   the optimizers and the frozen executor keep the command line's level. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(DL_OPTIMIZE_ALL) && !defined(__OPTIMIZE_SIZE__) && defined(__OPTIMIZE__)
#define DL__COLD_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"Og\")")
#define DL__COLD_END _Pragma("GCC pop_options")
#elif defined(__clang__) && !defined(DL_OPTIMIZE_ALL)
#define DL__COLD_BEGIN _Pragma("clang optimize off")
#define DL__COLD_END _Pragma("clang optimize on")
#else
#define DL__COLD_BEGIN
#define DL__COLD_END
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The few thread calls the pool (and anything else) needs, on Win32 or POSIX. */
#ifdef DL__THREADS
#ifdef DL__WIN32
typedef SRWLOCK dl__mutex;
typedef CONDITION_VARIABLE dl__cond;
typedef HANDLE dl__thread;
static int dl__mutex_init(dl__mutex *m) { InitializeSRWLock(m); return 0; }
static void dl__mutex_destroy(dl__mutex *m) { (void)m; }
static void dl__mutex_lock(dl__mutex *m) { AcquireSRWLockExclusive(m); }
static void dl__mutex_unlock(dl__mutex *m) { ReleaseSRWLockExclusive(m); }
static int dl__cond_init(dl__cond *c) { InitializeConditionVariable(c); return 0; }
static void dl__cond_destroy(dl__cond *c) { (void)c; }
static void dl__cond_wait(dl__cond *c, dl__mutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static void dl__cond_broadcast(dl__cond *c) { WakeAllConditionVariable(c); }
static long dl__cpu_count(void) { SYSTEM_INFO si; GetSystemInfo(&si); return (long)si.dwNumberOfProcessors; }
static void dl__pool_main(void *arg);
static DWORD WINAPI dl__thread_main(LPVOID arg) { dl__pool_main(arg); return 0; }
static int dl__thread_start(dl__thread *t, void *arg) { return (*t = CreateThread(NULL, 0, dl__thread_main, arg, 0, NULL)) ? 0 : -1; }
static void dl__thread_join(dl__thread t) { WaitForSingleObject(t, INFINITE); CloseHandle(t); }
#else
typedef pthread_mutex_t dl__mutex;
typedef pthread_cond_t dl__cond;
typedef pthread_t dl__thread;
static int dl__mutex_init(dl__mutex *m) { return pthread_mutex_init(m, NULL); }
static void dl__mutex_destroy(dl__mutex *m) { pthread_mutex_destroy(m); }
static void dl__mutex_lock(dl__mutex *m) { pthread_mutex_lock(m); }
static void dl__mutex_unlock(dl__mutex *m) { pthread_mutex_unlock(m); }
static int dl__cond_init(dl__cond *c) { return pthread_cond_init(c, NULL); }
static void dl__cond_destroy(dl__cond *c) { pthread_cond_destroy(c); }
static void dl__cond_wait(dl__cond *c, dl__mutex *m) { pthread_cond_wait(c, m); }
static void dl__cond_broadcast(dl__cond *c) { pthread_cond_broadcast(c); }
static long dl__cpu_count(void) { return sysconf(_SC_NPROCESSORS_ONLN); }
static void dl__pool_main(void *arg);
static void *dl__thread_main(void *arg) { dl__pool_main(arg); return NULL; }
static int dl__thread_start(dl__thread *t, void *arg) { return pthread_create(t, NULL, dl__thread_main, arg); }
static void dl__thread_join(dl__thread t) { pthread_join(t, NULL); }
#endif
#endif

/* ==== >>types: private types and small helpers ============================ */
/* ---- private types ------------------------------------------------------- */
/* What CPU kernels get besides their buffers: the kernel table, how to run
   tasks in parallel, and scratch (shared, and one slice per thread). */
/* Inference fusion: what a GEMM applies to each finished row i of its
   output, while the tile is in L1: y = act(y * scale[i] + shift[i]). */
enum { DL__ACT_NONE, DL__ACT_RELU, DL__ACT_LEAKY, DL__ACT_PRELU, DL__ACT_CLIP, DL__ACT_HARD_SWISH };
typedef struct dl__epilogue {
    const float *scale, *shift;     /* NULL: 1 and 0 */
    int act;
    float alpha, beta;              /* leaky slope; clip min, max; hard swish alpha, beta */
    const float *slope;             /* prelu: per row */
    const dl_layer *bn, *act_layer; /* what was absorbed, for a backend's dl_fused */
} dl__epilogue;

/* The op table (>>ops): everything about an op except its kernels' insides. */
typedef int (*dl__kernel)(const dl_layer *l, const dl_exec *e);
enum { DL__A_INT = 1, DL__A_FLOAT = 2 };
typedef struct dl__attr_spec {
    const char *name;           /* ONNX's where the meaning is the same; NULL ends a list */
    int type, count;            /* DL__A_*; values */
    size_t offset;              /* into dl_attrs */
    float def;                  /* the value when a file does not have it */
} dl__attr_spec;
enum {
    DL__F_SOURCE = 1,           /* input: data comes from the caller */
    DL__F_VIEW = 2,             /* reshape: shares its input's buffers */
    DL__F_RNG = 4,              /* dropout: draws a seed per training forward */
    DL__F_BATCH_STATS = 8,      /* batchnorm: batch statistics in training; folds into a GEMM in inference */
    DL__F_FUSE_HEAD = 16,       /* conv, dense: a GEMM whose epilogue can absorb what follows */
    DL__F_FUSE_ACT = 32,        /* an activation that epilogue can apply (act says which) */
    DL__F_USER = 64,            /* custom: callbacks, so not loadable from a file */
    DL__F_BWD_NO_IN = 128,      /* backward reads no input's values (on every backend): */
    DL__F_BWD_NO_OUT = 256,     /* nor its output, so the plan need not keep them (dl__liveness) */
    DL__F_REPLAY = 512          /* forward with train 2 recomputes the output from the inputs and saved values alone */
};
struct dl__simd;
typedef struct dl__op_info {
    int op;
    const char *name;
    int min_in, max_in;
    unsigned flags;             /* DL__F_* */
    int act;                    /* DL__F_FUSE_ACT: the DL__ACT_* it is */
    int (*infer)(dl_layer *l, char *why);                /* check attributes, set the output shape */
    int (*params)(dl_net *net, dl_layer *l, int init);   /* declare parameters; order = file order */
    size_t (*saved)(const dl_layer *l, int n);           /* floats forward keeps for backward */
    size_t (*ws)(const dl_layer *l, int n);              /* scratch for an im2col backend */
    void (*cpu_ws)(const struct dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread);
    const dl__attr_spec *attrs;
    dl__kernel forward, backward;
} dl__op_info;
static const dl__op_info *dl__op(int op);   /* the table sits after the kernels */
#define DL__HAS(l, f) ((dl__op((l)->op)->flags & (f)) != 0)

typedef struct dl__cpu {
    const struct dl__simd *simd;
    dl_net *net;                /* for its pool or parallel hook */
    const dl__epilogue *epi;    /* set while a fused layer runs */
    const float *wpack;         /* set while a layer with prepared (packed) weights runs */
    int threads;
    float *shared;
    float *thread_ws;
    size_t thread_floats;
} dl__cpu;

struct dl_optim {
    dl_net *net;
    dl_optim *next;         /* the net's list of optimizers */
    dl_optim_desc d;
    long step;
    float *s[3];            /* state in the backend's memory, n floats each */
    size_t n;
    size_t *ranges;         /* host: offsets then lengths of the runs to update, kept between steps */
    int ranges_cap;         /* parameters the table was sized for */
    float *host;            /* dl_optim_state on a GPU net: a host copy */
    size_t host_cap;
};

/* One buffer of a plan (dl__liveness): floats, where it starts in the
   arena, and the first and last step of the pass that use it. */
typedef struct dl__val { size_t floats, off; int def, last; } dl__val;
#define DL__VALS 4          /* per layer: output, its gradient, saved, the output recomputed for backward */

struct dl_ctx {
    dl_net *net;
    dl_backend *b;          /* backend the plan was made for */
    int version, cap_n, train_plan;
    int plan_out;           /* training plans: the output the layout is for; -1 for inference */
    float *arena;           /* one backend allocation holding every buffer */
    size_t arena_floats, plan_floats;   /* allocated; used by the current layout */
    size_t ws_off, t_off, b_off, ws_used[3];    /* scratch, targets, statistics backup; scratch floats used */
    dl__val *vals;          /* DL__VALS per layer (host tables: one block) */
    int *order, layers;     /* placement order of the values; layers the tables were made for */
    float **out, **dout, **saved; /* per layer */
    float *ws, *targets, *stats_backup;
    uint64_t *seed;         /* per layer: dropout seed of the last forward */
    unsigned char *needed, *rg;   /* per layer: computed by the last forward (2: fused into another); gets a gradient (|2: zeroed) */
    unsigned char *mayg, *keep;   /* per layer: can get a gradient; valid after the pass (1 output, 2 gradient) */
    unsigned char *replay;  /* per layer: its output is recomputed for backward (dl__liveness) */
    int *cons;              /* per layer: how many needed layers read it */
    float *fuse;            /* inference fusion: a folded batchnorm's scale and shift */
    float **prep;           /* per layer, prepared for inference once per parameter change: a conv or
                               dense layer's packed weights, a batchnorm's folded scale and shift */
    int prep_version;       /* the net's version and pgen prep was made for */
    unsigned prep_pgen;
    dl_ctx *workers;        /* dl__predict's contexts for threads 1.. (n_workers), planned single-threaded */
    int n_workers;
    dl_ctx *owner;          /* a worker's: the context whose prepared weights it reads (built before the region) */
    int n, train;           /* the last forward */
    int first;              /* its first sample's index in the caller's batch (dl_exec's) */
    dl_layer *last;
    float *host_out;        /* GPU nets: the downloaded output */
    size_t host_out_cap;
    char *err;              /* where messages go: the net's for its own context */
    char own_err[256];
    dl_ctx *next;           /* the net's list of user contexts */
    dl__cpu cpu;            /* CPU backend: threads (the net's for its own context, 1 for others) and scratch */
};

struct dl_net {
    dl_layer **layers;
    int n_layers, cap_layers;
    dl_param *params;
    int n_params, cap_params;
    float *w, *g, *s;       /* host: trainable, their gradients, statistics */
    size_t nw, ns, capw, caps;
    float *dw, *dg, *ds;    /* working copies: the host ones on the CPU, else the backend's */
    uint64_t rng;
    char err[256];
    int last_rc;            /* the code behind err when a layer or optimizer failed (loaders pass NOMEM on) */
    int version;            /* bumped by anything that invalidates a plan */
    unsigned pgen;          /* bumped by anything that may change parameter values (prepared inference follows it) */
    int input_grad;
    int name_count[DL_OP_COUNT];
    dl_ctx *ctx;            /* the net's own context */
    dl_ctx *ctxs;           /* contexts made by dl_ctx_new */
    size_t param_limit;     /* loaders: most floats the file can hold; 0 = none */
    dl_optim *optims;
    dl_backend cpu;         /* the built-in backend, one per net: no global state */
    dl_backend *b;          /* the backend in use: &cpu or one given by the user */
    const struct dl__simd *simd;   /* the CPU's micro-kernels, found at dl_net_new */
    int threads;
    double par_min_work;    /* ops with less work run on the calling thread (tests set 0 to split everything) */
    int plan_unshared;      /* tests: every buffer of a training plan its own memory (dl__layout) */
    int conv_direct;        /* tests: 1 every convolution dl__conv_direct can take goes direct, -1 none; 0 by the shapes */
    struct dl__pool *pool;  /* made at the first parallel region */
    dl_parallel_for par_fn; /* or the user's job system */
    void *par_user;
    dl_collective coll;     /* data-parallel exchange, NULL when alone */
    void *coll_user;
    int sync_bn;            /* dl_net_sync_batchnorm: batch statistics over all ranks */
    unsigned sync_calls;    /* allreduce_sum calls, to catch a backend that makes none */
#ifdef DL__THREADS
    dl__mutex lock;         /* guards ctxs: threads make and free contexts while others predict */
#endif
};

/* ---- small helpers --------------------------------------------------------- */
static void dl__vfail(char *err, const char *fmt, va_list ap) {
    if (err) vsnprintf(err, 256, fmt, ap);
}
static int dl__fail(char *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    dl__vfail(err, fmt, ap);
    va_end(ap);
    return code;
}
/* dl_net_error's rule: a call that runs, trains, saves, loads, moves or
   configures the net clears the message when it succeeds (see ERRORS). */
static int dl__ok(dl_net *net) { net->err[0] = 0; return DL_OK; }
static int dl__done(dl_net *net, int rc) { return rc || !net ? rc : dl__ok(net); }
static void *dl__calloc(size_t n, size_t sz) {   /* zeroed, overflow-checked */
    void *p;
    size_t bytes;
    if (sz && n > (size_t)-1 / sz) return NULL;
    bytes = n * sz;
    p = DL_MALLOC(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}
/* Grows *p from old to new elements of sz bytes; the tail is zeroed. */
static int dl__grow(void **p, size_t old_n, size_t new_n, size_t sz) {
    void *q = dl__calloc(new_n, sz);
    if (!q) return 0;
    if (*p && old_n) memcpy(q, *p, old_n * sz);
    DL_FREE(*p);
    *p = q;
    return 1;
}
/* Finite, read from the bits: -ffast-math lets a compiler assume no NaN or
   infinity and fold x != x, isfinite(x) or !(x <= FLT_MAX) to a constant.
   Every decision about finiteness goes through these. */
static int dl__finite(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return (u & 0x7f800000u) != 0x7f800000u; }
static int dl__finite_d(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL;
}
static int dl__nan(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return (u & 0x7fffffffu) > 0x7f800000u; }
static int dl__nan_d(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return (u & 0x7fffffffffffffffULL) > 0x7ff0000000000000ULL; }
/* Index of the first NaN or infinity in f, or n. */
static int dl__inf_nan(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return (u & 0x7f800000u) == 0x7f800000u; }
static size_t dl__nonfinite(const float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) if (!dl__finite(f[i])) break;
    return i;
}
static int dl__zero(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return (u & 0x7fffffffu) == 0; }  /* fast-math: NaN == 0 */
/* v where keep, else +0, by masking its bits: relu's test as a branch
   mispredicts on about half of real activations. */
static float dl__keep(float v, int keep) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u &= 0u - (uint32_t)(keep != 0);
    memcpy(&v, &u, sizeof v);
    return v;
}
static size_t dl__align(size_t floats) { return (floats + 15) & ~(size_t)15; }   /* 64 bytes */
static void dl__shape_str(char *buf, size_t len, int ndim, const int *shape) {
    int i, k = 0;
    buf[0] = 0;
    for (i = 0; i < ndim && k < (int)len; i++)
        k += snprintf(buf + k, len - (size_t)k, i ? "x%d" : "%d", shape[i]);
}

/* ---- the generator: PCG-style 64-bit LCG with an output permutation ------ */
static uint32_t dl__rand32(dl_net *net) {
    uint64_t x = net->rng;
    uint32_t r;
    net->rng = x * 6364136223846793005ULL + 1442695040888963407ULL;
    r = (uint32_t)(((x >> 18) ^ x) >> 27);
    return (r >> (uint32_t)(x >> 59)) | (r << ((32u - (uint32_t)(x >> 59)) & 31u));
}
static uint64_t dl__rand64(dl_net *net) {
    uint64_t hi = dl__rand32(net);
    return (hi << 32) | dl__rand32(net);
}
static float dl__uniform(dl_net *net) {     /* [0, 1) */
    return (float)(dl__rand32(net) >> 8) * (1.0f / 16777216.0f);
}
static float dl__normal(dl_net *net) {      /* Box-Muller */
    float u = dl__uniform(net), v = dl__uniform(net);
    return (float)(sqrt(-2.0 * log(1.0 - (double)u)) * cos(6.283185307179586 * (double)v));
}
uint64_t dl_net_rand(dl_net *net) { return net ? dl__rand64(net) : 0; }
void dl_net_seed(dl_net *net, uint64_t seed) {
    if (!net) return;
    net->rng = 0;
    dl__rand32(net);
    net->rng += seed;
    dl__rand32(net);
}

/* Dropout masks are a hash of (seed, element), not a stream: every backend
   and every thread count draws the same mask, and backward needs no copy. */
int dl_dropout_keep(uint64_t seed, uint64_t i, float p) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}

/* ==== >>net: nets, parameters ============================================= */
DL__COLD_BEGIN
/* ---- net ------------------------------------------------------------------- */
static void dl__cpu_init(dl_backend *b);
static void dl__ctx_release(dl_ctx *c);
static const struct dl__simd *dl__simd_detect(void);
static int dl__default_threads(void);
static void dl__pool_free(struct dl__pool *p);

#define DL__PAR_MIN_WORK 1.5e7         /* about 100 us on one core: see dl__parallel_if */
#define DL__PER_FLOAT 16.0

/* The net's lock, held only while its list of user contexts changes: the one
   thing dl_ctx_new and dl_ctx_free touch on a net that others use. dl__mutex
   is Win32's or POSIX's; without threads there is nothing to guard against. */
#ifdef DL__THREADS
static int dl__lock_init(dl_net *net) { return dl__mutex_init(&net->lock) == 0; }
static void dl__lock_free(dl_net *net) { dl__mutex_destroy(&net->lock); }
static void dl__lock(dl_net *net) { dl__mutex_lock(&net->lock); }
static void dl__unlock(dl_net *net) { dl__mutex_unlock(&net->lock); }
#else
static int dl__lock_init(dl_net *net) { (void)net; return 1; }
static void dl__lock_free(dl_net *net) { (void)net; }
static void dl__lock(dl_net *net) { (void)net; }
static void dl__unlock(dl_net *net) { (void)net; }
#endif

dl_net *dl_net_new(void) {
    dl_net *net = (dl_net *)dl__calloc(1, sizeof(dl_net));
    if (!net) return NULL;
    if (!dl__lock_init(net)) { DL_FREE(net); return NULL; }
    dl__cpu_init(&net->cpu);
    net->b = &net->cpu;
    net->simd = dl__simd_detect();
    net->threads = dl__default_threads();
    net->par_min_work = DL__PAR_MIN_WORK;
    dl_net_seed(net, 42);
    return net;
}

int dl_net_set_threads(dl_net *net, int n) {
    if (!net) return DL_ERR_ARG;
    if (n < 0 || n > 256) return dl__fail(net->err, DL_ERR_ARG, "dl_net_set_threads: %d is not in 0..256", n);
    if (n == 0) n = dl__default_threads();
#ifndef DL__THREADS
    if (!net->par_fn) n = 1;
#endif
    if (n != net->threads) {
        dl__pool_free(net->pool);
        net->pool = NULL;
        net->threads = n;
        net->version++;             /* scratch is planned per thread */
    }
    return dl__ok(net);
}
int dl_net_threads(const dl_net *net) { return net ? net->threads : 0; }
int dl_net_set_parallel(dl_net *net, dl_parallel_for run, void *user, int n_threads) {
    if (!net) return DL_ERR_ARG;
    if (run && (n_threads < 1 || n_threads > 256))
        return dl__fail(net->err, DL_ERR_ARG, "dl_net_set_parallel: %d threads is not in 1..256", n_threads);
    net->par_fn = run;
    net->par_user = user;
    return dl_net_set_threads(net, run ? n_threads : 0);
}

void dl_net_free(dl_net *net) {
    int i;
    if (!net) return;
    while (net->optims) dl_optim_free(net->optims);
    if (net->ctx) { dl__ctx_release(net->ctx); DL_FREE(net->ctx); }
    dl__pool_free(net->pool);
    dl__lock(net);                      /* every walk of ctxs holds the lock */
    while (net->ctxs) {                 /* the user frees them; they no longer work */
        dl_ctx *c = net->ctxs;
        dl__ctx_release(c);
        net->ctxs = c->next;
        c->net = NULL;
    }
    dl__unlock(net);
    if (net->b != &net->cpu) {
        net->b->release(net->b, net->dw); net->b->release(net->b, net->dg); net->b->release(net->b, net->ds);
        if (net->b->destroy) net->b->destroy(net->b);
    }
    for (i = 0; i < net->n_layers; i++) { DL_FREE(net->layers[i]->in); DL_FREE(net->layers[i]); }
    DL_FREE(net->layers);
    DL_FREE(net->params);
    DL_FREE(net->w); DL_FREE(net->g); DL_FREE(net->s);
    dl__lock_free(net);
    DL_FREE(net);
}

const char *dl_net_error(const dl_net *net) { return net ? net->err : "net is NULL"; }
int dl_net_layer_count(const dl_net *net) { return net ? net->n_layers : 0; }
dl_layer *dl_net_layer(const dl_net *net, int i) {
    if (!net) return NULL;
    if (i < 0) i += net->n_layers;
    return i >= 0 && i < net->n_layers ? net->layers[i] : NULL;
}
static dl_layer *dl__find(const dl_net *net, const char *name) {
    int i;
    for (i = 0; i < net->n_layers; i++)
        if (!strcmp(net->layers[i]->name, name)) return net->layers[i];
    return NULL;
}
dl_layer *dl_net_find(dl_net *net, const char *name) {
    dl_layer *l;
    if (!net) return NULL;
    if (!name) { dl__fail(net->err, DL_ERR_ARG, "dl_net_find: name is NULL"); return NULL; }
    if (!(l = dl__find(net, name))) dl__fail(net->err, DL_ERR_ARG, "dl_net_find: no layer named '%.200s'", name);
    return l;
}
dl_layer *dl_net_output(dl_net *net) {
    if (!net) return NULL;
    if (!net->n_layers) { dl__fail(net->err, DL_ERR_ARG, "dl_net_output: the net has no layers"); return NULL; }
    return net->layers[net->n_layers - 1];
}
void dl_net_set_input_grad(dl_net *net, int on) {
    if (net && net->input_grad != (on != 0)) { net->input_grad = on != 0; net->version++; }   /* plans keep an input's gradient */
}
DL__COLD_END

/* ---- parameters ------------------------------------------------------------ */
static void dl__param_views(dl_net *net) {   /* after the flat buffers move */
    int i;
    for (i = 0; i < net->n_params; i++) {
        dl_param *p = &net->params[i];
        p->data = (p->trainable ? net->w : net->s) + p->offset;
        p->grad = p->trainable ? net->g + p->offset : NULL;
    }
    if (net->b == &net->cpu) { net->dw = net->w; net->dg = net->g; net->ds = net->s; }
}

/* Appends a parameter of the given shape; its data starts at zero. */
static int dl__add_param(dl_net *net, dl_layer *l, const char *name, int ndim, const int *shape, int trainable) {
    dl_param *p;
    size_t size = 1, *used = trainable ? &net->nw : &net->ns, *cap = trainable ? &net->capw : &net->caps;
    int i;
    for (i = 0; i < ndim; i++) {
        size *= (size_t)shape[i];
        if (size > INT_MAX) return dl__fail(net->err, DL_ERR_ARG, "%s '%s': parameter %s is too large", dl_op_name(l->op), l->name, name);
    }
    if (net->param_limit && net->nw + net->ns + size > net->param_limit)
        return dl__fail(net->err, DL_ERR_FORMAT, "%s '%s': parameter %s needs more floats than the file holds",
                        dl_op_name(l->op), l->name, name);
    if (net->n_params == net->cap_params) {
        int nc = net->cap_params ? 2 * net->cap_params : 16;
        if (!dl__grow((void **)&net->params, (size_t)net->cap_params, (size_t)nc, sizeof(dl_param))) goto nomem;
        net->cap_params = nc;
    }
    if (*used + size > *cap) {
        size_t nc = *cap ? *cap : 1024;
        while (nc < *used + size) nc *= 2;
        if (trainable) {
            if (!dl__grow((void **)&net->w, *used, nc, sizeof(float))) goto nomem;
            if (!dl__grow((void **)&net->g, *used, nc, sizeof(float))) goto nomem;
        } else if (!dl__grow((void **)&net->s, *used, nc, sizeof(float))) goto nomem;
        *cap = nc;
    }
    p = &net->params[net->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", l->name, name);
    p->layer = l;
    p->ndim = ndim;
    for (i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->size = (int)size;
    p->trainable = trainable;
    p->offset = *used;
    *used += size;
    l->n_params++;
    dl__param_views(net);
    return DL_OK;
nomem:
    dl__param_views(net);
    return dl__fail(net->err, DL_ERR_NOMEM, "%s '%s': out of memory for parameter %s", dl_op_name(l->op), l->name, name);
}

/* Fan-in and fan-out as PyTorch counts them: dims 1.. and dim 0 times the receptive field. */
int dl_param_init(dl_net *net, dl_param *p, int init) {
    int i, fan_in = 1, fan_out = p ? p->shape[0] : 1;
    double scale;
    if (!net) return DL_ERR_ARG;
    if (!p) return dl__fail(net->err, DL_ERR_ARG, "dl_param_init: the parameter is NULL");
    if ((uintptr_t)p < (uintptr_t)net->params || (uintptr_t)p >= (uintptr_t)(net->params + net->n_params))
        return dl__fail(net->err, DL_ERR_ARG, "dl_param_init: parameter '%s' belongs to another net", p->name);
    if (p->ndim > 1) for (i = 1; i < p->ndim; i++) fan_in *= p->shape[i];
    for (i = 2; i < p->ndim; i++) fan_out *= p->shape[i];
    if (init == DL_INIT_DEFAULT) init = DL_INIT_HE_UNIFORM;
    net->pgen++;
    switch (init) {
    case DL_INIT_HE_UNIFORM:     scale = sqrt(6.0 / fan_in); break;
    case DL_INIT_HE_NORMAL:      scale = sqrt(2.0 / fan_in); break;
    case DL_INIT_GLOROT_UNIFORM: scale = sqrt(6.0 / (fan_in + fan_out)); break;
    case DL_INIT_GLOROT_NORMAL:  scale = sqrt(2.0 / (fan_in + fan_out)); break;
    case DL_INIT_ZEROS:          scale = 0; break;
    case DL_INIT_TORCH_UNIFORM:  scale = sqrt(1.0 / fan_in); break;
    default: return dl__fail(net->err, DL_ERR_ARG, "dl_param_init: unknown init %d for %s", init, p->name);
    }
    for (i = 0; i < p->size; i++)
        p->data[i] = (float)(scale * (init == DL_INIT_HE_NORMAL || init == DL_INIT_GLOROT_NORMAL
                                      ? dl__normal(net) : 2.0f * dl__uniform(net) - 1.0f));
    return dl__ok(net);
}

int dl_net_param_count(const dl_net *net) { return net ? net->n_params : 0; }
/* The calls that hand out writable parameters count as changing them:
   dl_predict prepares its weights again after any of them. */
dl_param *dl_net_param(dl_net *net, int i) {
    if (!net || i < 0 || i >= net->n_params) return NULL;
    net->pgen++;
    return &net->params[i];
}
dl_param *dl_net_find_param(dl_net *net, const char *name) {
    int i;
    if (!net || !name) return NULL;
    for (i = 0; i < net->n_params; i++) if (!strcmp(net->params[i].name, name)) { net->pgen++; return &net->params[i]; }
    return NULL;
}
void dl_net_params_changed(dl_net *net) { if (net) net->pgen++; }
size_t dl_net_param_floats(const dl_net *net) { return net ? net->nw : 0; }
float *dl_net_params(dl_net *net) { if (net) net->pgen++; return net ? net->w : NULL; }
float *dl_net_grads(dl_net *net) { return net ? net->g : NULL; }

/* ==== >>layers: shapes, each op's infer and params hooks, constructors ===== */
/* ---- shapes ---------------------------------------------------------------- */
/* Spatial ops read a per-sample shape as (C, H, W), missing dims being 1. */
static void dl__chw(int ndim, const int *shape, int *c, int *h, int *w) {
    *c = shape[0];
    *h = ndim > 1 ? shape[1] : 1;
    *w = ndim > 2 ? shape[2] : 1;
}
int dl_layer_out_hw(const dl_layer *l, int *c, int *h, int *w) {
    if (!l || !c || !h || !w) return 0;
    dl__chw(l->ndim, l->shape, c, h, w);
    return l->ndim;
}
int dl_layer_in_hw(const dl_layer *l, int i, int *c, int *h, int *w) {
    const dl_layer *x;
    if (!l || i < 0 || i >= l->n_in || !c || !h || !w) return 0;
    x = l->in[i];
    dl__chw(x->ndim, x->shape, c, h, w);
    return x->ndim;
}
static void dl__in_str(const dl_layer *l, int i, char *buf) { dl__shape_str(buf, 48, l->in[i]->ndim, l->in[i]->shape); }
static void dl__set_shape(dl_layer *l, int ndim, const int *shape) {
    int i;
    l->ndim = ndim;
    for (i = 0; i < 3; i++) l->shape[i] = i < ndim ? shape[i] : 0;
}

/* Output size along one axis; 64-bit so absurd attributes cannot overflow.
   0 when the window does not fit once (C division truncates toward zero,
   which made a window up to a stride larger than the input give size 1).
   ceil: PyTorch's ceil_mode, whose last window must start inside the input
   or the padding before it. */
static long long dl__window_out(int in, int k, int s, int p0, int p1, int d, int ceil) {
    long long span = (long long)in + p0 + p1 - (long long)d * (k - 1) - 1, out;   /* last window start */
    if (span < 0) return 0;
    out = (ceil ? (span + s - 1) / s : span / s) + 1;
    if (ceil && (out - 1) * s >= (long long)in + p0) out--;
    return out;
}
/* SAME_UPPER / SAME_LOWER: the pads that give ceil(in / s) outputs. */
static void dl__same_pads(int in, int k, int s, int d, int mode, int *p0, int *p1) {
    long long out = ((long long)in + s - 1) / s, total = (out - 1) * s + (long long)d * (k - 1) + 1 - in;
    if (total < 0) total = 0;
    if (total > INT_MAX / 2) total = INT_MAX / 2;
    *p0 = (int)(mode == DL_PAD_SAME_UPPER ? total / 2 : total - total / 2);
    *p1 = (int)total - *p0;
}
/* Resolves auto_pad into the pads, then checks the spatial attributes shared
   by convolution and pooling and computes the output size. */
static int dl__window_infer(dl_layer *l, int ceil, char *why) {
    dl_attrs *a = &l->a;
    long long oh, ow;
    int c, h, w, i;
    char s0[48];
    dl__in_str(l, 0, s0);
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &c, &h, &w);
    if (l->in[0]->ndim != 3) return dl__fail(why, DL_ERR_SHAPE, "needs a CxHxW input, got %s", s0);
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->stride[0] <= 0 || a->stride[1] <= 0 || a->dilation[0] <= 0 || a->dilation[1] <= 0)
        return dl__fail(why, DL_ERR_ARG, "kernel %dx%d, stride %dx%d, dilation %dx%d must be positive", a->kernel[0], a->kernel[1],
                        a->stride[0], a->stride[1], a->dilation[0], a->dilation[1]);
    if (a->auto_pad < 0 || a->auto_pad > DL_PAD_SAME_LOWER) return dl__fail(why, DL_ERR_ARG, "auto_pad %d is not a dl_pad_mode", a->auto_pad);
    if (a->auto_pad) {
        dl__same_pads(h, a->kernel[0], a->stride[0], a->dilation[0], a->auto_pad, &a->pad[0], &a->pad[2]);
        dl__same_pads(w, a->kernel[1], a->stride[1], a->dilation[1], a->auto_pad, &a->pad[1], &a->pad[3]);
    }
    for (i = 0; i < 4; i++)
        if (a->pad[i] < 0) return dl__fail(why, DL_ERR_ARG, "pads (top %d, left %d, bottom %d, right %d) must not be negative",
                                           a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    oh = dl__window_out(h, a->kernel[0], a->stride[0], a->pad[0], a->pad[2], a->dilation[0], ceil);
    ow = dl__window_out(w, a->kernel[1], a->stride[1], a->pad[1], a->pad[3], a->dilation[1], ceil);
    if (oh <= 0 || ow <= 0 || oh > INT_MAX || ow > INT_MAX)
        return dl__fail(why, DL_ERR_SHAPE, "input %s does not fit kernel %dx%d, dilation %dx%d, pads (top %d, left %d, bottom %d, right %d)",
                        s0, a->kernel[0], a->kernel[1], a->dilation[0], a->dilation[1], a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    l->shape[1] = (int)oh; l->shape[2] = (int)ow;
    return DL_OK;
}

DL__COLD_BEGIN
/* ---- per-op hooks: shape inference and parameters --------------------------
   infer: l->in, l->n_in and l->a are set and l's shape starts as its first
   input's; the hook checks the attributes, writes the output shape, or says
   why it cannot (the caller adds the layer's name and input shape).
   params: declares the parameters in order (the order is part of the file). */
/* The shape a layer declares itself (input, custom): 1 to 3 positive dims. */
static int dl__declared_shape(dl_layer *l, char *why, const char *what) {
    int i;
    if (l->a.ndim < 1 || l->a.ndim > 3) return dl__fail(why, DL_ERR_ARG, "%s ndim %d must be 1..3", what, l->a.ndim);
    for (i = 0; i < l->a.ndim; i++)
        if (l->a.shape[i] <= 0) return dl__fail(why, DL_ERR_ARG, "%s dim %d is %d", what, i, l->a.shape[i]);
    dl__set_shape(l, l->a.ndim, l->a.shape);
    return DL_OK;
}
static int dl__input_infer(dl_layer *l, char *why) { return dl__declared_shape(l, why, "input"); }

static int dl__constant_params(dl_net *net, dl_layer *l, int init) {
    (void)init;
    return dl__add_param(net, l, "value", l->ndim, l->shape, 0);
}

static int dl__dense_infer(dl_layer *l, char *why) {
    if (l->a.units <= 0) return dl__fail(why, DL_ERR_ARG, "units must be positive, got %d", l->a.units);
    dl__set_shape(l, 1, &l->a.units);
    return DL_OK;
}
static int dl__dense_params(dl_net *net, dl_layer *l, int init) {
    int rc, shp[2];
    shp[0] = l->a.units; shp[1] = l->in[0]->size;
    if ((rc = dl__add_param(net, l, "weight", 2, shp, 1))) return rc;
    if ((rc = dl_param_init(net, &net->params[net->n_params - 1], init))) return rc;
    return l->a.bias ? dl__add_param(net, l, "bias", 1, shp, 1) : DL_OK;
}

static int dl__conv2d_infer(dl_layer *l, char *why) {
    const dl_attrs *a = &l->a;
    int rc, c = l->in[0]->shape[0];
    if ((rc = dl__window_infer(l, 0, why))) return rc;
    if (a->units <= 0 || a->groups <= 0)
        return dl__fail(why, DL_ERR_ARG, "filters %d and groups %d must be positive", a->units, a->groups);
    if (c % a->groups || a->units % a->groups)
        return dl__fail(why, DL_ERR_SHAPE, "groups %d must divide input channels %d and filters %d", a->groups, c, a->units);
    l->shape[0] = a->units;
    return DL_OK;
}
/* Output (H-1) s - pads + d (k-1) + 1 + output_padding per axis. */
static int dl__conv2d_transpose_infer(dl_layer *l, char *why) {
    dl_attrs *a = &l->a;
    int c, h, w, i;
    long long oh, ow;
    char s0[48];
    dl__in_str(l, 0, s0);
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &c, &h, &w);
    if (l->in[0]->ndim != 3) return dl__fail(why, DL_ERR_SHAPE, "needs a CxHxW input, got %s", s0);
    if (a->units <= 0 || a->groups <= 0 || a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->stride[0] <= 0 || a->stride[1] <= 0 ||
        a->dilation[0] <= 0 || a->dilation[1] <= 0)
        return dl__fail(why, DL_ERR_ARG, "filters %d, kernel %dx%d, stride %dx%d, dilation %dx%d, groups %d must be positive",
                        a->units, a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->dilation[0], a->dilation[1], a->groups);
    if (a->auto_pad) return dl__fail(why, DL_ERR_UNSUPPORTED, "auto_pad %d: give the pads", a->auto_pad);
    for (i = 0; i < 4; i++)
        if (a->pad[i] < 0) return dl__fail(why, DL_ERR_ARG, "pads (top %d, left %d, bottom %d, right %d) must not be negative",
                                           a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
    for (i = 0; i < 2; i++)
        if (a->output_padding[i] < 0 || (a->output_padding[i] >= a->stride[i] && a->output_padding[i] >= a->dilation[i]))
            return dl__fail(why, DL_ERR_ARG, "output_padding %dx%d must be less than the stride %dx%d or the dilation %dx%d",
                            a->output_padding[0], a->output_padding[1], a->stride[0], a->stride[1], a->dilation[0], a->dilation[1]);
    if (c % a->groups || a->units % a->groups)
        return dl__fail(why, DL_ERR_SHAPE, "groups %d must divide input channels %d and filters %d", a->groups, c, a->units);
    oh = (long long)(h - 1) * a->stride[0] - a->pad[0] - a->pad[2] + (long long)a->dilation[0] * (a->kernel[0] - 1) + 1 + a->output_padding[0];
    ow = (long long)(w - 1) * a->stride[1] - a->pad[1] - a->pad[3] + (long long)a->dilation[1] * (a->kernel[1] - 1) + 1 + a->output_padding[1];
    if (oh <= 0 || ow <= 0 || oh > INT_MAX / 4 || ow > INT_MAX / 4)
        return dl__fail(why, DL_ERR_SHAPE, "input %s with kernel %dx%d, stride %dx%d, pads (top %d, left %d, bottom %d, right %d) "
                        "gives an output of %lldx%lld", s0, a->kernel[0], a->kernel[1], a->stride[0], a->stride[1],
                        a->pad[0], a->pad[1], a->pad[2], a->pad[3], oh, ow);
    l->shape[0] = a->units; l->shape[1] = (int)oh; l->shape[2] = (int)ow;
    return DL_OK;
}
static int dl__conv2d_transpose_params(dl_net *net, dl_layer *l, int init) {
    int rc, shp[4];
    shp[0] = l->in[0]->shape[0]; shp[1] = l->a.units / l->a.groups; shp[2] = l->a.kernel[0]; shp[3] = l->a.kernel[1];
    if ((rc = dl__add_param(net, l, "weight", 4, shp, 1))) return rc;
    if ((rc = dl_param_init(net, &net->params[net->n_params - 1], init))) return rc;
    shp[0] = l->a.units;
    return l->a.bias ? dl__add_param(net, l, "bias", 1, shp, 1) : DL_OK;
}
static int dl__pad_infer(dl_layer *l, char *why) {
    const dl_attrs *a = &l->a;
    int c, h, w, i;
    char s0[48];
    dl__in_str(l, 0, s0);
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &c, &h, &w);
    if (l->in[0]->ndim != 3) return dl__fail(why, DL_ERR_SHAPE, "needs a CxHxW input, got %s", s0);
    if (a->mode < 0 || a->mode > DL_PAD_EDGE) return dl__fail(why, DL_ERR_ARG, "mode %d is not a dl_pad_kind", a->mode);
    if (!dl__finite(a->value)) return dl__fail(why, DL_ERR_ARG, "value must be finite");
    for (i = 0; i < 4; i++)
        if (a->pad[i] < 0 || a->pad[i] > (1 << 20) || (a->mode == DL_PAD_REFLECT && a->pad[i] >= (i & 1 ? w : h)))
            return dl__fail(why, DL_ERR_ARG, "pads (top %d, left %d, bottom %d, right %d) must not be negative%s on %s",
                            a->pad[0], a->pad[1], a->pad[2], a->pad[3], a->mode == DL_PAD_REFLECT ? " and, to reflect, less than the size" : "", s0);
    l->shape[1] = h + a->pad[0] + a->pad[2]; l->shape[2] = w + a->pad[1] + a->pad[3];
    return DL_OK;
}
static int dl__transpose_infer(dl_layer *l, char *why) {
    int i, seen = 0;
    for (i = 0; i < l->in[0]->ndim; i++) {
        int p = l->a.perm[i];
        if (p < 0 || p >= l->in[0]->ndim || (seen & (1 << p)))
            return dl__fail(why, DL_ERR_ARG, "perm (%d, %d, %d) is not a permutation of the input's %d dims",
                            l->a.perm[0], l->a.perm[1], l->a.perm[2], l->in[0]->ndim);
        seen |= 1 << p;
        l->shape[i] = l->in[0]->shape[p];
    }
    for (; i < 3; i++) if (l->a.perm[i]) return dl__fail(why, DL_ERR_ARG, "perm entry %d is %d past the input's %d dims", i, l->a.perm[i], l->in[0]->ndim);
    return DL_OK;
}
static int dl__upsample_infer(dl_layer *l, char *why) {
    const dl_attrs *a = &l->a;
    char s0[48];
    dl__in_str(l, 0, s0);
    if (l->in[0]->ndim != 3) return dl__fail(why, DL_ERR_SHAPE, "needs a CxHxW input, got %s", s0);
    if (a->scale[0] <= 0 || a->scale[1] <= 0 || a->scale[0] > 4096 || a->scale[1] > 4096 || a->mode < 0 || a->mode > 1 ||
        a->align_corners < 0 || a->align_corners > 1)
        return dl__fail(why, DL_ERR_ARG, "scale %dx%d must be 1..4096, bilinear %d and align_corners %d 0 or 1",
                        a->scale[0], a->scale[1], a->mode, a->align_corners);
    if ((long long)l->in[0]->shape[1] * a->scale[0] > INT_MAX / 4 || (long long)l->in[0]->shape[2] * a->scale[1] > INT_MAX / 4)
        return dl__fail(why, DL_ERR_SHAPE, "%s scaled %dx%d is too large", s0, a->scale[0], a->scale[1]);
    l->shape[1] = l->in[0]->shape[1] * a->scale[0]; l->shape[2] = l->in[0]->shape[2] * a->scale[1];
    return DL_OK;
}
static int dl__slice_infer(dl_layer *l, char *why) {
    char s0[48];
    dl__in_str(l, 0, s0);
    if (l->a.range[0] < 0 || l->a.range[1] <= l->a.range[0] || l->a.range[1] > l->in[0]->shape[0])
        return dl__fail(why, DL_ERR_ARG, "channels %d..%d are not a range of the %d channels of %s",
                        l->a.range[0], l->a.range[1], l->in[0]->shape[0], s0);
    l->shape[0] = l->a.range[1] - l->a.range[0];
    return DL_OK;
}

/* reduce: mode 0 sum, 1 mean over the axes flagged in axes[] */
static int dl__reduce_infer(dl_layer *l, char *why) {
    int i, nd = 0, shape[3];
    if (l->a.mode < 0 || l->a.mode > 1 || l->a.keepdims < 0 || l->a.keepdims > 1)
        return dl__fail(why, DL_ERR_ARG, "mode %d and keepdims %d must be 0 or 1", l->a.mode, l->a.keepdims);
    for (i = 0; i < 3; i++) {
        if (l->a.axes[i] != 0 && l->a.axes[i] != 1) return dl__fail(why, DL_ERR_ARG, "axes flags must be 0 or 1");
        if (i >= l->in[0]->ndim) { if (l->a.axes[i]) return dl__fail(why, DL_ERR_ARG, "axis %d is past the input's %d dims", i, l->in[0]->ndim); continue; }
        if (!l->a.axes[i]) shape[nd++] = l->in[0]->shape[i];
        else if (l->a.keepdims) shape[nd++] = 1;
    }
    if (!nd) shape[nd++] = 1;
    dl__set_shape(l, nd, shape);
    return DL_OK;
}

static int dl__conv2d_params(dl_net *net, dl_layer *l, int init) {
    int rc, shp[4];
    shp[0] = l->a.units; shp[1] = l->in[0]->shape[0] / l->a.groups; shp[2] = l->a.kernel[0]; shp[3] = l->a.kernel[1];
    if ((rc = dl__add_param(net, l, "weight", 4, shp, 1))) return rc;
    if ((rc = dl_param_init(net, &net->params[net->n_params - 1], init))) return rc;
    return l->a.bias ? dl__add_param(net, l, "bias", 1, shp, 1) : DL_OK;
}

/* Pooling: a window may hang over the padding but must touch the input, so
   each pad is less than the (dilated) kernel; average pooling is not dilated. */
static int dl__pool_infer(dl_layer *l, char *why) {      /* maxpool2d, avgpool2d */
    const dl_attrs *a = &l->a;
    int rc, i;
    if ((rc = dl__window_infer(l, a->ceil_mode, why))) return rc;
    if (a->ceil_mode < 0 || a->ceil_mode > 1 || a->count_include_pad < 0 || a->count_include_pad > 1)
        return dl__fail(why, DL_ERR_ARG, "ceil_mode %d and count_include_pad %d must be 0 or 1", a->ceil_mode, a->count_include_pad);
    if (l->op == DL_OP_AVGPOOL2D && (a->dilation[0] != 1 || a->dilation[1] != 1))
        return dl__fail(why, DL_ERR_ARG, "dilation %dx%d: average pooling is not dilated", a->dilation[0], a->dilation[1]);
    for (i = 0; i < 4; i++)
        if (a->pad[i] > a->dilation[i & 1] * (a->kernel[i & 1] - 1))
            return dl__fail(why, DL_ERR_ARG, "pads (top %d, left %d, bottom %d, right %d) must be less than the %dx%d window",
                            a->pad[0], a->pad[1], a->pad[2], a->pad[3], a->dilation[0] * (a->kernel[0] - 1) + 1,
                            a->dilation[1] * (a->kernel[1] - 1) + 1);
    return DL_OK;
}

/* maxpool2d_argmax: float indices are exact up to 2^24 */
static int dl__argmax_infer(dl_layer *l, char *why) {
    int rc = dl__pool_infer(l, why), C, H, W;
    if (rc) return rc;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (l->a.mode & ~(DL_ARGMAX_COLUMN_MAJOR | DL_ARGMAX_FLAT)) return dl__fail(why, DL_ERR_ARG, "flags %d: only DL_ARGMAX_COLUMN_MAJOR and DL_ARGMAX_FLAT", l->a.mode);
    if ((double)((l->a.mode & DL_ARGMAX_FLAT) ? C : 1) * H * W > 16777216.0)
        return dl__fail(why, DL_ERR_ARG, "a %dx%d plane%s: float indices are exact up to 2^24 cells", H, W, (l->a.mode & DL_ARGMAX_FLAT) ? " times the channels" : "");
    return DL_OK;
}

static int dl__global_pool_infer(dl_layer *l, char *why) {   /* global avg and max pooling */
    char s0[48];
    dl__in_str(l, 0, s0);
    if (l->in[0]->ndim < 2) return dl__fail(why, DL_ERR_SHAPE, "needs a CxHxW or CxL input, got %s", s0);
    dl__set_shape(l, 1, l->in[0]->shape);
    return DL_OK;
}

static int dl__batchnorm_infer(dl_layer *l, char *why) {
    if (!dl__finite(l->a.eps) || !(l->a.eps > 0) || !dl__finite(l->a.momentum) || !(l->a.momentum >= 0 && l->a.momentum <= 1))
        return dl__fail(why, DL_ERR_ARG, "eps %g must be positive and finite, momentum %g in [0,1]", l->a.eps, l->a.momentum);
    return DL_OK;
}
static int dl__batchnorm_params(dl_net *net, dl_layer *l, int init) {
    int rc, c = l->in[0]->shape[0], i;
    (void)init;
    if ((rc = dl__add_param(net, l, "weight", 1, &c, 1))) return rc;
    for (i = 0; i < c; i++) net->params[net->n_params - 1].data[i] = 1.0f;
    if ((rc = dl__add_param(net, l, "bias", 1, &c, 1))) return rc;
    if ((rc = dl__add_param(net, l, "running_mean", 1, &c, 0))) return rc;
    if ((rc = dl__add_param(net, l, "running_var", 1, &c, 0))) return rc;
    for (i = 0; i < c; i++) net->params[net->n_params - 1].data[i] = 1.0f;
    return DL_OK;
}

static int dl__dropout_infer(dl_layer *l, char *why) {
    if (!dl__finite(l->a.alpha) || !(l->a.alpha >= 0 && l->a.alpha < 1)) return dl__fail(why, DL_ERR_ARG, "p %g must be in [0, 1)", l->a.alpha);
    return DL_OK;
}

/* reshape: one dim may be -1, inferred from the size; it is stored resolved. */
static int dl__reshape_infer(dl_layer *l, char *why) {
    dl_attrs *a = &l->a;
    int infer = -1, i;
    long long prod = 1, size = l->in[0]->size;     /* dims <= INT_MAX, prod <= size: no overflow */
    char s0[48], s1[48];
    dl__in_str(l, 0, s0);
    if (a->ndim < 1 || a->ndim > 3) return dl__fail(why, DL_ERR_ARG, "ndim %d must be 1..3", a->ndim);
    for (i = 0; i < a->ndim; i++) {
        if (a->shape[i] == -1 && infer < 0) infer = i;
        else if (a->shape[i] <= 0) return dl__fail(why, DL_ERR_ARG, "dim %d is %d; dims must be positive or one -1", i, a->shape[i]);
        else if ((prod *= a->shape[i]) > size) break;
    }
    if (infer >= 0 && prod <= size) {
        if (size % prod) return dl__fail(why, DL_ERR_SHAPE, "cannot reshape %s (%lld floats) with -1 and the rest %lld", s0, size, prod);
        a->shape[infer] = (int)(size / prod);
        prod = size;
    }
    if (prod != size) {
        dl__shape_str(s1, sizeof s1, a->ndim, a->shape);
        return dl__fail(why, DL_ERR_SHAPE, "cannot reshape %s into %s", s0, s1);
    }
    dl__set_shape(l, a->ndim, a->shape);
    return DL_OK;
}

static int dl__alpha_infer(dl_layer *l, char *why) {    /* leaky_relu, elu */
    if (!dl__finite(l->a.alpha)) return dl__fail(why, DL_ERR_ARG, "alpha must be finite");
    return DL_OK;
}

static int dl__alpha_beta_infer(dl_layer *l, char *why) {   /* clip, hard_sigmoid, hard_swish, selu */
    if (!dl__finite(l->a.alpha) || !dl__finite(l->a.beta))
        return dl__fail(why, DL_ERR_ARG, "alpha %g and beta %g must be finite", l->a.alpha, l->a.beta);
    if (l->op == DL_OP_CLIP && !(l->a.alpha <= l->a.beta))
        return dl__fail(why, DL_ERR_ARG, "min %g is above max %g", l->a.alpha, l->a.beta);
    return DL_OK;
}
static int dl__gelu_infer(dl_layer *l, char *why) {
    if (l->a.approximate != 0 && l->a.approximate != 1) return dl__fail(why, DL_ERR_ARG, "approximate %d must be 0 or 1", l->a.approximate);
    return DL_OK;
}

static int dl__prelu_params(dl_net *net, dl_layer *l, int init) {
    int rc, c = l->in[0]->shape[0], i;
    (void)init;
    if ((rc = dl__add_param(net, l, "weight", 1, &c, 1))) return rc;
    for (i = 0; i < c; i++) net->params[net->n_params - 1].data[i] = 0.25f;
    return DL_OK;
}

/* add, sub, mul, div: NumPy broadcasting, shapes aligned at their last dim. */
static int dl__broadcast_infer(dl_layer *l, char *why) {
    int i, d, nd = 0, shape[3] = { 1, 1, 1 };
    char s0[48], s1[48];
    for (i = 0; i < l->n_in; i++) if (l->in[i]->ndim > nd) nd = l->in[i]->ndim;
    for (i = 0; i < l->n_in; i++)
        for (d = 0; d < l->in[i]->ndim; d++) {
            int at = nd - l->in[i]->ndim + d, v = l->in[i]->shape[d];
            if (v != 1 && shape[at] != 1 && v != shape[at]) {
                dl__in_str(l, 0, s0);
                dl__in_str(l, i, s1);
                return dl__fail(why, DL_ERR_SHAPE, "input '%s' is %s but input '%s' is %s; shapes must match or broadcast "
                                "(a dim of 1 repeats)", l->in[0]->name, s0, l->in[i]->name, s1);
            }
            if (v != 1) shape[at] = v;
        }
    dl__set_shape(l, nd, shape);
    return DL_OK;
}

static int dl__concat_infer(dl_layer *l, char *why) {
    int i;
    char s0[48], s1[48];
    dl__in_str(l, 0, s0);
    for (i = 1; i < l->n_in; i++) {
        if (l->shape[0] > INT_MAX - l->in[i]->shape[0]) return dl__fail(why, DL_ERR_SHAPE, "too many channels");
        if (l->in[i]->ndim != l->in[0]->ndim || memcmp(l->in[i]->shape + 1, l->in[0]->shape + 1, 2 * sizeof(int))) {
            dl__in_str(l, i, s1);
            return dl__fail(why, DL_ERR_SHAPE, "input '%s' is %s but input '%s' is %s; all dims but the first must match",
                            l->in[0]->name, s0, l->in[i]->name, s1);
        }
        l->shape[0] += l->in[i]->shape[0];
    }
    return DL_OK;
}

static int dl__matmul_infer(dl_layer *l, char *why) {
    const dl_layer *x = l->in[0], *y = l->in[1];
    int r = x->ndim;
    char s0[48], s1[48];
    dl__in_str(l, 0, s0);
    dl__in_str(l, 1, s1);
    if (r < 2 || y->ndim != r || (r == 3 && x->shape[0] != y->shape[0]) || x->shape[r - 1] != y->shape[r - 2])
        return dl__fail(why, DL_ERR_SHAPE, "cannot multiply %s by %s: need (..,M,K) x (..,K,P) with equal leading dims", s0, s1);
    l->shape[r - 1] = y->shape[r - 1];
    return DL_OK;
}

static int dl__custom_infer(dl_layer *l, char *why) { return dl__declared_shape(l, why, "output"); }
static int dl__custom_params(dl_net *net, dl_layer *l, int init) {
    int rc, i, j;
    (void)init;
    for (j = 0; j < l->custom.n_params; j++) {
        dl_param *p;
        if ((rc = dl__add_param(net, l, l->custom.params[j].name ? l->custom.params[j].name : "param", 1,
                                &l->custom.params[j].size, 1))) return rc;
        p = &net->params[net->n_params - 1];
        for (i = 0; i < p->size; i++) p->data[i] = l->custom.params[j].init_value;
    }
    return DL_OK;
}

/* The one way a layer enters a net: checks, infers its shape, names it,
   declares its parameters. On failure the net is as it was, generator
   included, and last_rc says why. */
static dl_layer *dl__add(dl_net *net, int op, dl_layer *const *in, int n_in, const dl_attrs *attrs, int init,
                         const dl_custom_desc *custom, const char *name) {
    dl_layer *l;
    char why[256], auto_name[32];
    int i, rc, np0;
    size_t nw0, ns0;
    uint64_t rng0;
    if (!net) return NULL;
    rng0 = net->rng;
    if (op < 0 || op >= DL_OP_COUNT || n_in < dl__op(op)->min_in || n_in > dl__op(op)->max_in) {
        net->last_rc = dl__fail(net->err, DL_ERR_ARG, "%s: %d inputs is not a valid count for this op", dl_op_name(op), n_in);
        return NULL;
    }
    for (i = 0; i < n_in; i++) {
        if (!in[i]) return NULL;                      /* an earlier error, already recorded */
        if (in[i]->net != net) {
            net->last_rc = dl__fail(net->err, DL_ERR_ARG, "%s: input '%s' belongs to another net", dl_op_name(op), in[i]->name);
            return NULL;
        }
    }
    if (net->b != &net->cpu) {
        net->last_rc = dl__fail(net->err, DL_ERR_UNSUPPORTED, "%s: add layers before moving the net to the %s backend",
                                dl_op_name(op), net->b->name);
        return NULL;
    }
    snprintf(auto_name, sizeof auto_name, "%s_%d", dl_op_name(op), net->name_count[op] + 1);
    if (!name) name = auto_name;
    if (net->n_layers == net->cap_layers) {
        int nc = net->cap_layers ? 2 * net->cap_layers : 16;
        if (!dl__grow((void **)&net->layers, (size_t)net->cap_layers, (size_t)nc, sizeof(dl_layer *))) l = NULL;
        else net->cap_layers = nc;
    }
    l = net->n_layers < net->cap_layers ? (dl_layer *)dl__calloc(1, sizeof(dl_layer)) : NULL;
    if (l) l->in = (dl_layer **)dl__calloc((size_t)n_in, sizeof(dl_layer *));
    if (!l || !l->in) {
        if (l) DL_FREE(l->in);
        DL_FREE(l);
        net->last_rc = dl__fail(net->err, DL_ERR_NOMEM, "%s '%s': out of memory", dl_op_name(op), name);
        return NULL;
    }
    l->net = net;
    l->op = op;
    l->index = net->n_layers;
    l->n_in = n_in;
    for (i = 0; i < n_in; i++) l->in[i] = in[i];
    l->a = *attrs;
    if (custom) l->custom = *custom;
    if (strlen(name) >= sizeof l->name || dl__find(net, name)) {
        dl__fail(net->err, DL_ERR_ARG, "%s: layer name '%s' is %s", dl_op_name(op), name,
                 strlen(name) >= sizeof l->name ? "longer than 31 characters" : "already taken");
        rc = DL_ERR_ARG;
        goto fail;
    }
    strcpy(l->name, name);
    if (n_in) { l->ndim = in[0]->ndim; memcpy(l->shape, in[0]->shape, sizeof l->shape); }
    if (dl__op(op)->infer && (rc = dl__op(op)->infer(l, why)) != DL_OK) {
        char s0[48];
        if (n_in) dl__shape_str(s0, sizeof s0, in[0]->ndim, in[0]->shape);
        if (n_in) dl__fail(net->err, rc, "%s '%s' on '%s' (%s): %s", dl_op_name(op), l->name, in[0]->name, s0, why);
        else dl__fail(net->err, rc, "%s '%s': %s", dl_op_name(op), l->name, why);
        goto fail;
    }
    {
        long size = 1;
        for (i = 0; i < l->ndim; i++) {
            size *= l->shape[i];
            if (size > INT_MAX / 4) {
                dl__fail(net->err, DL_ERR_SHAPE, "%s '%s': output too large", dl_op_name(op), l->name);
                rc = DL_ERR_SHAPE;
                goto fail;
            }
        }
        l->size = (int)size;
    }
    np0 = net->n_params; nw0 = net->nw; ns0 = net->ns;
    l->first_param = net->n_params;
    if (dl__op(op)->params && (rc = dl__op(op)->params(net, l, init)) != DL_OK) {
        net->n_params = np0; net->nw = nw0; net->ns = ns0;
        goto fail;
    }
    net->layers[net->n_layers++] = l;
    if (name == auto_name) net->name_count[op]++;
    net->version++;
    return l;
fail:
    net->last_rc = rc;
    net->rng = rng0;
    DL_FREE(l->in);
    DL_FREE(l);
    return NULL;
}

static dl_attrs dl__attrs0(void) { dl_attrs a; memset(&a, 0, sizeof a); return a; }

dl_layer *dl_input(dl_net *net, int c, int h, int w) {
    dl_attrs a = dl__attrs0();
    if (!net) return NULL;
    if (c <= 0 || h < 0 || w < 0 || (h == 0 && w > 0)) {
        dl__fail(net->err, DL_ERR_ARG, "input: shape %dx%dx%d: channels must be positive; h, w positive or 0 to drop them", c, h, w);
        return NULL;
    }
    a.ndim = w > 0 ? 3 : h > 0 ? 2 : 1;
    a.shape[0] = c; a.shape[1] = h; a.shape[2] = w;
    return dl__add(net, DL_OP_INPUT, NULL, 0, &a, 0, NULL, NULL);
}

dl_layer *dl_dense_ex(dl_layer *x, const dl_dense_desc *d) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    if (!d) { dl__fail(x->net->err, DL_ERR_ARG, "dense: desc is NULL"); return NULL; }
    a.units = d->units;
    a.bias = !d->no_bias;
    return dl__add(x->net, DL_OP_DENSE, &x, 1, &a, d->init, NULL, NULL);
}
dl_layer *dl_dense(dl_layer *x, int units) {
    dl_dense_desc d;
    memset(&d, 0, sizeof d);
    d.units = units;
    return dl_dense_ex(x, &d);
}

/* One axis of a geometry field: its own value if set, else the both-axes one, else def. */
static int dl__axis(int axis, int both, int def) { return axis ? axis : both ? both : def; }
/* The four pads of an options struct: per side when any side is set, else per axis. */
static void dl__pads(dl_attrs *a, int both, int ph, int pw, int top, int left, int bottom, int right, int mode) {
    if (top || left || bottom || right) { a->pad[0] = top; a->pad[1] = left; a->pad[2] = bottom; a->pad[3] = right; }
    else { a->pad[0] = a->pad[2] = dl__axis(ph, both, 0); a->pad[1] = a->pad[3] = dl__axis(pw, both, 0); }
    a->auto_pad = mode;
}

/* conv2d and conv2d_transpose read one desc: output_padding matters only to the second. */
static dl_layer *dl__conv_ex(dl_layer *x, const dl_conv_desc *d, int op) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    if (!d) { dl__fail(x->net->err, DL_ERR_ARG, "%s: desc is NULL", dl_op_name(op)); return NULL; }
    a.units = d->filters;
    a.kernel[0] = dl__axis(d->kernel_h, d->kernel, 0); a.kernel[1] = dl__axis(d->kernel_w, d->kernel, 0);
    a.stride[0] = dl__axis(d->stride_h, d->stride, 1); a.stride[1] = dl__axis(d->stride_w, d->stride, 1);
    dl__pads(&a, d->pad, d->pad_h, d->pad_w, d->pad_top, d->pad_left, d->pad_bottom, d->pad_right, d->auto_pad);
    a.dilation[0] = dl__axis(d->dilation_h, d->dilation, 1); a.dilation[1] = dl__axis(d->dilation_w, d->dilation, 1);
    if (op == DL_OP_CONV2D_TRANSPOSE) {
        a.output_padding[0] = dl__axis(d->output_padding_h, d->output_padding, 0);
        a.output_padding[1] = dl__axis(d->output_padding_w, d->output_padding, 0);
    }
    a.groups = d->groups ? d->groups : 1;
    a.bias = !d->no_bias;
    return dl__add(x->net, op, &x, 1, &a, d->init, NULL, NULL);
}
dl_layer *dl_conv2d_ex(dl_layer *x, const dl_conv_desc *d) { return dl__conv_ex(x, d, DL_OP_CONV2D); }
dl_layer *dl_conv2d_transpose_ex(dl_layer *x, const dl_conv_desc *d) { return dl__conv_ex(x, d, DL_OP_CONV2D_TRANSPOSE); }
dl_layer *dl_conv2d_transpose(dl_layer *x, int filters, int kernel, int stride, int pad) {
    dl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.filters = filters; d.kernel = kernel; d.stride = stride; d.pad = pad;
    if (x && stride <= 0) { dl__fail(x->net->err, DL_ERR_ARG, "conv2d_transpose on '%s': stride %d must be positive", x->name, stride); return NULL; }
    return dl_conv2d_transpose_ex(x, &d);
}
dl_layer *dl_conv2d(dl_layer *x, int filters, int kernel, int stride, int pad) {
    dl_conv_desc d;
    memset(&d, 0, sizeof d);
    d.filters = filters; d.kernel = kernel; d.stride = stride; d.pad = pad;
    if (x && stride <= 0) { dl__fail(x->net->err, DL_ERR_ARG, "conv2d on '%s': stride %d must be positive", x->name, stride); return NULL; }
    return dl_conv2d_ex(x, &d);
}

static dl_layer *dl__pool(int op, dl_layer *x, const dl_pool_desc *d, int mode) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    if (!d) { dl__fail(x->net->err, DL_ERR_ARG, "%s: desc is NULL", dl_op_name(op)); return NULL; }
    a.kernel[0] = dl__axis(d->kernel_h, d->kernel, 0); a.kernel[1] = dl__axis(d->kernel_w, d->kernel, 0);
    a.stride[0] = dl__axis(d->stride_h, d->stride, a.kernel[0]); a.stride[1] = dl__axis(d->stride_w, d->stride, a.kernel[1]);
    dl__pads(&a, d->pad, d->pad_h, d->pad_w, d->pad_top, d->pad_left, d->pad_bottom, d->pad_right, d->auto_pad);
    a.dilation[0] = dl__axis(d->dilation_h, d->dilation, 1); a.dilation[1] = dl__axis(d->dilation_w, d->dilation, 1);
    a.ceil_mode = d->ceil_mode;
    a.count_include_pad = !d->exclude_pad;
    a.mode = mode;
    return dl__add(x->net, op, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_maxpool2d_ex(dl_layer *x, const dl_pool_desc *d) { return dl__pool(DL_OP_MAXPOOL2D, x, d, 0); }
dl_layer *dl_avgpool2d_ex(dl_layer *x, const dl_pool_desc *d) { return dl__pool(DL_OP_AVGPOOL2D, x, d, 0); }
dl_layer *dl_maxpool2d_argmax(dl_layer *x, const dl_pool_desc *d, int flags) {
    return dl__pool(DL_OP_MAXPOOL2D_ARGMAX, x, d, flags);
}
static dl_layer *dl__pool_short(int op, dl_layer *x, int kernel, int stride) {
    dl_pool_desc d;
    memset(&d, 0, sizeof d);
    d.kernel = kernel; d.stride = stride;
    if (x && (kernel <= 0 || stride <= 0)) {
        dl__fail(x->net->err, DL_ERR_ARG, "%s on '%s': kernel %d and stride %d must be positive", dl_op_name(op), x->name, kernel, stride);
        return NULL;
    }
    return dl__pool(op, x, &d, 0);
}
dl_layer *dl_maxpool2d(dl_layer *x, int kernel, int stride) { return dl__pool_short(DL_OP_MAXPOOL2D, x, kernel, stride); }
dl_layer *dl_avgpool2d(dl_layer *x, int kernel, int stride) { return dl__pool_short(DL_OP_AVGPOOL2D, x, kernel, stride); }

static dl_layer *dl__unary(int op, dl_layer *x, float alpha) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    a.alpha = alpha;
    return dl__add(x->net, op, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_global_avgpool(dl_layer *x) { return dl__unary(DL_OP_GLOBAL_AVGPOOL, x, 0); }
dl_layer *dl_global_maxpool(dl_layer *x) { return dl__unary(DL_OP_GLOBAL_MAXPOOL, x, 0); }
dl_layer *dl_batchnorm_ex(dl_layer *x, float eps, float momentum) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    a.eps = eps; a.momentum = momentum;
    return dl__add(x->net, DL_OP_BATCHNORM, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_batchnorm(dl_layer *x) { return dl_batchnorm_ex(x, 1e-5f, 0.1f); }
dl_layer *dl_dropout(dl_layer *x, float p) { return dl__unary(DL_OP_DROPOUT, x, p); }
dl_layer *dl_relu(dl_layer *x) { return dl__unary(DL_OP_RELU, x, 0); }
dl_layer *dl_leaky_relu(dl_layer *x, float slope) { return dl__unary(DL_OP_LEAKY_RELU, x, slope); }
dl_layer *dl_elu(dl_layer *x, float alpha) { return dl__unary(DL_OP_ELU, x, alpha); }
dl_layer *dl_prelu(dl_layer *x) { return dl__unary(DL_OP_PRELU, x, 0); }
dl_layer *dl_sigmoid(dl_layer *x) { return dl__unary(DL_OP_SIGMOID, x, 0); }
dl_layer *dl_tanh(dl_layer *x) { return dl__unary(DL_OP_TANH, x, 0); }
static dl_layer *dl__unary2(int op, dl_layer *x, float alpha, float beta, int approximate) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    a.alpha = alpha; a.beta = beta; a.approximate = approximate;
    return dl__add(x->net, op, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_clip(dl_layer *x, float lo, float hi) { return dl__unary2(DL_OP_CLIP, x, lo, hi, 0); }
dl_layer *dl_hard_sigmoid(dl_layer *x, float alpha, float beta) { return dl__unary2(DL_OP_HARD_SIGMOID, x, alpha, beta, 0); }
dl_layer *dl_hard_swish(dl_layer *x) { return dl__unary2(DL_OP_HARD_SWISH, x, 1.0f / 6.0f, 0.5f, 0); }
dl_layer *dl_selu(dl_layer *x) { return dl__unary2(DL_OP_SELU, x, 1.67326324235437728f, 1.05070098735548049f, 0); }
dl_layer *dl_gelu(dl_layer *x, int tanh_approx) { return dl__unary2(DL_OP_GELU, x, 0, 0, tanh_approx); }
dl_layer *dl_silu(dl_layer *x) { return dl__unary(DL_OP_SILU, x, 0); }
dl_layer *dl_softplus(dl_layer *x) { return dl__unary(DL_OP_SOFTPLUS, x, 0); }
dl_layer *dl_sqrt(dl_layer *x) { return dl__unary(DL_OP_SQRT, x, 0); }
dl_layer *dl_log_softmax(dl_layer *x) { return dl__unary(DL_OP_LOG_SOFTMAX, x, 0); }
dl_layer *dl_softmax(dl_layer *x) { return dl__unary(DL_OP_SOFTMAX, x, 0); }

dl_layer *dl_reshape(dl_layer *x, int ndim, const int *shape) {
    dl_attrs a = dl__attrs0();
    int i;
    if (!x) return NULL;
    if (!shape || ndim < 1 || ndim > 3) {
        dl__fail(x->net->err, DL_ERR_ARG, "reshape on '%s': need 1 to 3 dims, got %d%s", x->name, ndim, shape ? "" : " (shape NULL)");
        return NULL;
    }
    a.ndim = ndim;
    for (i = 0; i < ndim; i++) a.shape[i] = shape[i];
    return dl__add(x->net, DL_OP_RESHAPE, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_flatten(dl_layer *x) {
    int shape[1] = { -1 };
    return dl_reshape(x, 1, shape);
}

static dl_layer *dl__nary(int op, dl_layer *const *xs, int n, int min_n, int max_n) {
    dl_attrs a = dl__attrs0();
    int i;
    if (!xs || n < 1) return NULL;
    for (i = 0; i < n; i++) if (!xs[i]) return NULL;
    if (n < min_n || n > max_n) {
        dl__fail(xs[0]->net->err, DL_ERR_ARG, "%s: takes %d to %d inputs, got %d", dl_op_name(op), min_n, max_n, n);
        return NULL;
    }
    return dl__add(xs[0]->net, op, xs, n, &a, 0, NULL, NULL);
}
dl_layer *dl_add_n(dl_layer *const *xs, int n) { return dl__nary(DL_OP_ADD, xs, n, 2, 64); }
dl_layer *dl_concat(dl_layer *const *xs, int n) { return dl__nary(DL_OP_CONCAT, xs, n, 1, 64); }
dl_layer *dl_add(dl_layer *a, dl_layer *b) { dl_layer *xs[2]; xs[0] = a; xs[1] = b; return dl__nary(DL_OP_ADD, xs, 2, 2, 2); }
dl_layer *dl_mul(dl_layer *a, dl_layer *b) { dl_layer *xs[2]; xs[0] = a; xs[1] = b; return dl__nary(DL_OP_MUL, xs, 2, 2, 2); }
dl_layer *dl_sub(dl_layer *a, dl_layer *b) { dl_layer *xs[2]; xs[0] = a; xs[1] = b; return dl__nary(DL_OP_SUB, xs, 2, 2, 2); }
dl_layer *dl_div(dl_layer *a, dl_layer *b) { dl_layer *xs[2]; xs[0] = a; xs[1] = b; return dl__nary(DL_OP_DIV, xs, 2, 2, 2); }
dl_layer *dl_pad_ex(dl_layer *x, const dl_pad_desc *d) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    if (!d) { dl__fail(x->net->err, DL_ERR_ARG, "pad: desc is NULL"); return NULL; }
    a.pad[0] = d->top; a.pad[1] = d->left; a.pad[2] = d->bottom; a.pad[3] = d->right;
    a.mode = d->mode; a.value = d->value;
    return dl__add(x->net, DL_OP_PAD, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_pad(dl_layer *x, int pad, int mode) {
    dl_pad_desc d;
    memset(&d, 0, sizeof d);
    d.top = d.bottom = d.left = d.right = pad; d.mode = mode;
    return dl_pad_ex(x, &d);
}
dl_layer *dl_transpose(dl_layer *x, const int *perm) {
    dl_attrs a = dl__attrs0();
    int i;
    if (!x) return NULL;
    if (!perm) { dl__fail(x->net->err, DL_ERR_ARG, "transpose on '%s': perm is NULL", x->name); return NULL; }
    for (i = 0; i < x->ndim; i++) a.perm[i] = perm[i];
    return dl__add(x->net, DL_OP_TRANSPOSE, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_upsample_ex(dl_layer *x, const dl_upsample_desc *d) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    if (!d) { dl__fail(x->net->err, DL_ERR_ARG, "upsample: desc is NULL"); return NULL; }
    a.scale[0] = d->scale_h; a.scale[1] = d->scale_w; a.mode = d->bilinear; a.align_corners = d->align_corners;
    return dl__add(x->net, DL_OP_UPSAMPLE, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_upsample(dl_layer *x, int scale, int bilinear) {
    dl_upsample_desc d;
    memset(&d, 0, sizeof d);
    d.scale_h = d.scale_w = scale; d.bilinear = bilinear;
    return dl_upsample_ex(x, &d);
}
dl_layer *dl_slice_channels(dl_layer *x, int start, int end) {
    dl_attrs a = dl__attrs0();
    if (!x) return NULL;
    a.range[0] = start; a.range[1] = end;
    return dl__add(x->net, DL_OP_SLICE, &x, 1, &a, 0, NULL, NULL);
}
static dl_layer *dl__reduce(dl_layer *x, const int *axes, int n_axes, int keepdims, int mean) {
    dl_attrs a = dl__attrs0();
    int i;
    if (!x) return NULL;
    if (n_axes < 0 || n_axes > 3 || (n_axes && !axes)) {
        dl__fail(x->net->err, DL_ERR_ARG, "reduce on '%s': %d axes%s; give 0 to 3", x->name, n_axes, n_axes && !axes ? " but axes NULL" : "");
        return NULL;
    }
    for (i = 0; i < 3; i++) a.axes[i] = n_axes == 0 && i < x->ndim;
    for (i = 0; i < n_axes; i++) {
        if (axes[i] < 0 || axes[i] >= x->ndim) {
            dl__fail(x->net->err, DL_ERR_ARG, "reduce on '%s': axis %d is not one of its %d dims", x->name, axes[i], x->ndim);
            return NULL;
        }
        a.axes[axes[i]] = 1;
    }
    a.keepdims = keepdims != 0; a.mode = mean;
    return dl__add(x->net, DL_OP_REDUCE, &x, 1, &a, 0, NULL, NULL);
}
dl_layer *dl_reduce_sum(dl_layer *x, const int *axes, int n_axes, int keepdims) { return dl__reduce(x, axes, n_axes, keepdims, 0); }
dl_layer *dl_reduce_mean(dl_layer *x, const int *axes, int n_axes, int keepdims) { return dl__reduce(x, axes, n_axes, keepdims, 1); }
static dl_layer *dl__constant(dl_net *net, dl_layer *x, int ndim, const int *shape, const float *data) {
    dl_attrs a = dl__attrs0();
    dl_layer *l;
    int i;
    if (!net) return NULL;
    if (!shape || !data || ndim < 1 || ndim > 3) {
        dl__fail(net->err, DL_ERR_ARG, "constant: need 1 to 3 dims, a shape and data, got %d dims%s%s", ndim,
                 shape ? "" : ", shape NULL", data ? "" : ", data NULL");
        return NULL;
    }
    a.ndim = ndim;
    for (i = 0; i < ndim; i++) a.shape[i] = shape[i];
    if (!(l = dl__add(net, DL_OP_CONSTANT, x ? &x : NULL, x != NULL, &a, 0, NULL, NULL))) return NULL;
    memcpy(net->params[l->first_param].data, data, (size_t)l->size * sizeof(float));
    return l;
}
dl_layer *dl_constant(dl_net *net, int ndim, const int *shape, const float *data) { return dl__constant(net, NULL, ndim, shape, data); }
dl_layer *dl_constant_for(dl_layer *x, int ndim, const int *shape, const float *data) {
    return x ? dl__constant(x->net, x, ndim, shape, data) : NULL;
}
dl_layer *dl_matmul(dl_layer *a, dl_layer *b) { dl_layer *xs[2]; xs[0] = a; xs[1] = b; return dl__nary(DL_OP_MATMUL, xs, 2, 2, 2); }

dl_layer *dl_custom(dl_layer *const *inputs, int n_in, const dl_custom_desc *d) {
    dl_attrs a = dl__attrs0();
    int i;
    if (!inputs || n_in < 1 || !inputs[0]) return NULL;
    if (n_in > 64) {        /* the executor binds at most 64 inputs per layer */
        dl__fail(inputs[0]->net->err, DL_ERR_ARG, "custom: takes 1 to 64 inputs, got %d", n_in);
        return NULL;
    }
    if (!d || !d->forward || d->n_params < 0 || d->n_params > 4) {
        dl__fail(inputs[0]->net->err, DL_ERR_ARG, "custom: need a desc with a forward callback and 0..4 params");
        return NULL;
    }
    for (i = 0; i < d->n_params; i++)
        if (d->params[i].size <= 0) {
            dl__fail(inputs[0]->net->err, DL_ERR_ARG, "custom: param %d has size %d", i, d->params[i].size);
            return NULL;
        }
    a.ndim = d->ndim;
    for (i = 0; i < 3; i++) a.shape[i] = d->shape[i];
    return dl__add(inputs[0]->net, DL_OP_CUSTOM, inputs, n_in, &a, 0, d, d->name);
}

int dl_layer_set_name(dl_layer *l, const char *name) {
    int i;
    if (!l) return DL_ERR_ARG;
    if (!name || !*name || strlen(name) >= sizeof l->name || strchr(name, '.'))
        return dl__fail(l->net->err, DL_ERR_ARG, "dl_layer_set_name: '%s' must be 1 to 31 characters without '.'", name ? name : "(null)");
    if (dl__find(l->net, name) && dl__find(l->net, name) != l)
        return dl__fail(l->net->err, DL_ERR_ARG, "dl_layer_set_name: name '%s' is already taken", name);
    strcpy(l->name, name);
    for (i = 0; i < l->n_params; i++) {
        dl_param *p = &l->net->params[l->first_param + i];
        const char *dot = strchr(p->name, '.');
        char suffix[16];        /* "weight", "running_mean", ...: all short */
        snprintf(suffix, sizeof suffix, "%s", dot ? dot + 1 : "");
        snprintf(p->name, sizeof p->name, "%s.%s", name, suffix);
    }
    return DL_OK;
}
const char *dl_layer_name(const dl_layer *l) { return l ? l->name : ""; }
int dl_layer_op(const dl_layer *l) { return l ? l->op : -1; }
int dl_layer_shape(const dl_layer *l, int shape[3]) {
    if (!l) return 0;
    if (shape) memcpy(shape, l->shape, sizeof l->shape);
    return l->ndim;
}
int dl_layer_size(const dl_layer *l) { return l ? l->size : 0; }
DL__COLD_END

/* ======================================================================== */
/*  >>compute  CPU compute: SIMD micro-kernels chosen at run time, a thread pool, and  */
/*  a packed GEMM. Work is split into tasks fixed by the shapes and every   */
/*  sum runs in an order fixed by the shapes, so results are bit-identical  */
/*  whatever the number of threads.                                         */
/* ======================================================================== */

/* ---- what this compiler can build. GNU C (gcc, clang) gets vector
   extensions and, on x86-64, AVX2 and AVX-512 code behind target
   attributes, chosen at run time with __builtin_cpu_supports; aarch64 gets
   NEON. Every other compiler (tcc, MSVC), and DL_NO_SIMD, gets portable C. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(DL_NO_SIMD)
#define DL__VEC 1
typedef float dl__vf __attribute__((vector_size(64)));
typedef int32_t dl__vi __attribute__((vector_size(64)));
/* A vector of 16 copies of x, as an initializer: mixing a scalar into vector
   arithmetic fails where floats are evaluated wider (i686, s390x). */
#define DL__SPLAT(x) { x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x }
/* The row kernels are written once and inlined into one wrapper per ISA. */
#define DL__INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__)
#define DL__X86 1
#include <immintrin.h>
#if defined(__clang__)
#include <cpuid.h>
#endif
#endif
#else
#define DL__INLINE static
#endif
#if defined(__aarch64__) && defined(__ARM_NEON) && !defined(DL_NO_SIMD)
#define DL__NEON 1
#include <arm_neon.h>
#endif

/* Clip and hard swish, shared by their kernels and the GEMM epilogue so fused
   inference computes the same thing. */
static float dl__clip_value(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
static float dl__hard_swish_value(float x, float a, float b) {
    float t = a * x + b;
    return t <= 0.0f ? 0.0f : t >= 1.0f ? x : x * t;
}

/* ---- row kernels: the hot elementwise loops of batchnorm, activations and
   GEMM epilogues. Compilers at -O2 leave such loops scalar, so they are
   written with vector extensions (16 floats; each ISA splits them as it can)
   and compiled once per ISA into a table, chosen with the micro-kernels.
   Sums use 16 lanes added in a fixed order, so every path gives the same bits.
   Where floats are evaluated wider (i686, s390x in ISO C mode) a scalar
   x * sc + sh rounds once, a vector one twice; the cast rounds the product,
   so a row gives the same bits however it splits into vectors and a tail
   (a fused epilogue's rows are tile-wide, batchnorm's are planes).
   The product and the sum are separate statements: clang contracts a * b + c
   within one expression into a fused multiply-add (-ffp-contract=on), which
   would round differently from the micro-kernels' in-register epilogue. */
/* y = x sc + sh */
DL__INLINE void dl__row_affine(float *y, const float *x, int S, float sc, float sh) {
    int s = 0;
#ifdef DL__VEC
    const dl__vf vsc = DL__SPLAT(sc), vsh = DL__SPLAT(sh);
    for (; s + 16 <= S; s += 16) { dl__vf v; memcpy(&v, x + s, 64); v *= vsc; v += vsh; memcpy(y + s, &v, 64); }
#endif
    for (; s < S; s++) { float p = x[s] * sc; y[s] = p + sh; }
}
/* y += x */
DL__INLINE void dl__row_add(float *y, const float *x, int S) {
    int s = 0;
#ifdef DL__VEC
    for (; s + 16 <= S; s += 16) { dl__vf u, v; memcpy(&u, y + s, 64); memcpy(&v, x + s, 64); u += v; memcpy(y + s, &u, 64); }
#endif
    for (; s < S; s++) y[s] += x[s];
}
/* y = x > 0 ? x : a x */
DL__INLINE void dl__row_prelu(float *y, const float *x, int S, float a) {
    int s = 0;
#ifdef DL__VEC
    const dl__vf va = DL__SPLAT(a);
    for (; s + 16 <= S; s += 16) {
        dl__vf v, r;
        dl__vi m;
        memcpy(&v, x + s, 64);
        m = v > 0;
        r = (dl__vf)(((dl__vi)v & m) | ((dl__vi)(v * va) & ~m));
        memcpy(y + s, &r, 64);
    }
#endif
    for (; s < S; s++) y[s] = x[s] > 0 ? x[s] : a * x[s];
}
/* relu: y = x > 0 ? x : +0 (NaN gives 0); backward dx += x > 0 ? dy : +0 */
DL__INLINE void dl__row_relu(float *y, const float *x, int S) {
    int s = 0;
#ifdef DL__VEC
    for (; s + 16 <= S; s += 16) {
        dl__vf v;
        memcpy(&v, x + s, 64);
        v = (dl__vf)((dl__vi)v & (v > 0));
        memcpy(y + s, &v, 64);
    }
#endif
    for (; s < S; s++) y[s] = dl__keep(x[s], x[s] > 0);
}
DL__INLINE void dl__row_relu_back(float *dx, const float *dy, const float *x, int S) {
    int s = 0;
#ifdef DL__VEC
    for (; s + 16 <= S; s += 16) {
        dl__vf v, g, d;
        memcpy(&v, x + s, 64);
        memcpy(&g, dy + s, 64);
        memcpy(&d, dx + s, 64);
        d += (dl__vf)((dl__vi)g & (v > 0));
        memcpy(dx + s, &d, 64);
    }
#endif
    for (; s < S; s++) dx[s] += dl__keep(dy[s], x[s] > 0);
}
/* dx += x > 0 ? dy : a dy (dx may be NULL); returns sum over x <= 0 of dy x */
DL__INLINE double dl__row_prelu_back(float *dx, const float *dy, const float *x, int S, float a) {
    float lane[16] = { 0 };
    double total = 0;
    int s = 0, k;
#ifdef DL__VEC
    const dl__vf va = DL__SPLAT(a);
    dl__vf acc = { 0 };
    for (; s + 16 <= S; s += 16) {
        dl__vf v, g, d;
        dl__vi m;
        memcpy(&v, x + s, 64);
        memcpy(&g, dy + s, 64);
        m = v > 0;
        acc += (dl__vf)((dl__vi)(g * v) & ~m);
        if (dx) { memcpy(&d, dx + s, 64); d += (dl__vf)(((dl__vi)g & m) | ((dl__vi)(g * va) & ~m)); memcpy(dx + s, &d, 64); }
    }
    memcpy(lane, &acc, 64);
#else
    for (; s + 16 <= S; s += 16)
        for (k = 0; k < 16; k++) {
            lane[k] += x[s + k] > 0 ? 0.0f : dy[s + k] * x[s + k];
            if (dx) dx[s + k] += x[s + k] > 0 ? dy[s + k] : a * dy[s + k];
        }
#endif
    for (; s < S; s++) {
        total += x[s] > 0 ? 0.0 : (double)(dy[s] * x[s]);
        if (dx) dx[s] += x[s] > 0 ? dy[s] : a * dy[s];
    }
    for (k = 0; k < 16; k++) total += lane[k];
    return total;
}
/* sum of (x - m), or of (x - m)^2 */
/* Sums of x - m and, where squares is not NULL, of its squares (the one
   pass costs what a pass for either does: it is memory-bound), over n rows
   of S floats, ld apart (a channel's planes over a batch): each row in 16
   float lanes, the lanes added into 16 doubles per row (an
   elementwise add that vectorises), the doubles added up once at the end,
   so short rows (4x4 planes) do not pay 16 dependent double adds each. */
DL__INLINE double dl__row_sum(const float *x, size_t ld, int n, int S, float m, double *squares) {
    double lanes[16] = { 0 }, lanes2[16] = { 0 }, total = 0, total2 = 0;
    int i, s, k;
    for (i = 0; i < n; i++, x += ld) {
        float lane[16] = { 0 }, lane2[16] = { 0 };
#ifdef DL__VEC
        const dl__vf vm = DL__SPLAT(m);
        dl__vf acc = { 0 }, acc2 = { 0 };
        for (s = 0; s + 16 <= S; s += 16) { dl__vf d; memcpy(&d, x + s, 64); d -= vm; acc += d; acc2 += d * d; }
        memcpy(lane, &acc, 64);
        memcpy(lane2, &acc2, 64);
#else
        for (s = 0; s + 16 <= S; s += 16)
            for (k = 0; k < 16; k++) { float d = x[s + k] - m; lane[k] += d; lane2[k] += d * d; }
#endif
        for (; s < S; s++) { float d = x[s] - m; total += d; total2 += (double)(d * d); }
        for (k = 0; k < 16; k++) { lanes[k] += lane[k]; lanes2[k] += lane2[k]; }
    }
    for (k = 0; k < 16; k++) { total += lanes[k]; total2 += lanes2[k]; }
    if (squares) *squares = total2;
    return total;
}
/* sums of dy and of dy (x - m) over n rows, as dl__row_sum */
DL__INLINE void dl__row_sums2(const float *dy, const float *x, size_t ld, int n, int S, float m, double *sdy, double *sdyx) {
    double d1[16] = { 0 }, d2[16] = { 0 };
    int i, s, k;
    for (i = 0; i < n; i++, dy += ld, x += ld) {
        float l1[16] = { 0 }, l2[16] = { 0 };
#ifdef DL__VEC
        const dl__vf vm = DL__SPLAT(m);
        dl__vf a1 = { 0 }, a2 = { 0 };
        for (s = 0; s + 16 <= S; s += 16) { dl__vf g, v; memcpy(&g, dy + s, 64); memcpy(&v, x + s, 64); a1 += g; a2 += g * (v - vm); }
        memcpy(l1, &a1, 64);
        memcpy(l2, &a2, 64);
#else
        for (s = 0; s + 16 <= S; s += 16)
            for (k = 0; k < 16; k++) { l1[k] += dy[s + k]; l2[k] += dy[s + k] * (x[s + k] - m); }
#endif
        for (; s < S; s++) { *sdy += dy[s]; *sdyx += (double)(dy[s] * (x[s] - m)); }
        for (k = 0; k < 16; k++) { d1[k] += l1[k]; d2[k] += l2[k]; }
    }
    for (k = 0; k < 16; k++) { *sdy += d1[k]; *sdyx += d2[k]; }
}
/* dx += g (dy - k1 - (x - m) k2) */
DL__INLINE void dl__row_bn_dx(float *dx, const float *dy, const float *x, int S, float g, float k1, float m, float k2) {
    int s = 0;
#ifdef DL__VEC
    const dl__vf vg = DL__SPLAT(g), vk1 = DL__SPLAT(k1), vm = DL__SPLAT(m), vk2 = DL__SPLAT(k2);
    for (; s + 16 <= S; s += 16) {
        dl__vf d, gy, v;
        memcpy(&d, dx + s, 64); memcpy(&gy, dy + s, 64); memcpy(&v, x + s, 64);
        d += vg * (gy - vk1 - (v - vm) * vk2);
        memcpy(dx + s, &d, 64);
    }
#endif
    for (; s < S; s++) dx[s] += g * (dy[s] - k1 - (x[s] - m) * k2);
}

/* out[r] = sum_i w[r ldw + i] x[i] for the rows r < rows (at most 4), each
   in 16 lanes added in a fixed order. Rows go side by side only so their
   chains overlap: a row's arithmetic is the same whatever its neighbours. */
DL__INLINE void dl__rows_dot(const float *w, size_t ldw, int rows, const float *x, int n, float *out) {
    float lane[4][16], total;
    const float *wr[4];
    int s = 0, k, r;
    memset(lane, 0, sizeof lane);
    for (r = 0; r < 4; r++) wr[r] = w + (r < rows ? (size_t)r * ldw : 0);      /* missing rows repeat row 0 */
#ifdef DL__VEC
    {
        dl__vf acc0 = { 0 }, acc1 = { 0 }, acc2 = { 0 }, acc3 = { 0 };
        for (; s + 16 <= n; s += 16) {
            dl__vf a, b;
            memcpy(&b, x + s, 64);
            memcpy(&a, wr[0] + s, 64); acc0 += a * b;
            memcpy(&a, wr[1] + s, 64); acc1 += a * b;
            memcpy(&a, wr[2] + s, 64); acc2 += a * b;
            memcpy(&a, wr[3] + s, 64); acc3 += a * b;
        }
        memcpy(lane[0], &acc0, 64); memcpy(lane[1], &acc1, 64); memcpy(lane[2], &acc2, 64); memcpy(lane[3], &acc3, 64);
    }
#else
    for (; s + 16 <= n; s += 16)
        for (r = 0; r < 4; r++)
            for (k = 0; k < 16; k++) lane[r][k] += wr[r][s + k] * x[s + k];
#endif
    for (r = 0; r < rows; r++) {
        total = 0;
        for (k = s; k < n; k++) total += wr[r][k] * x[k];
        for (k = 0; k < 16; k++) total += lane[r][k];
        out[r] = total;
    }
}

/* y = act(y sc + sh) over one row of a finished GEMM tile */
DL__INLINE void dl__row_epilogue(float *y, int n, float sc, float sh, int act, float slope, float beta) {
    int s = 0;
    if (act == DL__ACT_CLIP || act == DL__ACT_HARD_SWISH) {     /* rare: plain C */
        for (; s < n; s++) {
            float v = y[s] * sc;
            v += sh;
            y[s] = act == DL__ACT_CLIP ? dl__clip_value(v, slope, beta) : dl__hard_swish_value(v, slope, beta);
        }
        return;
    }
#ifdef DL__VEC
    const float neg = act == DL__ACT_RELU ? 0.0f : slope;
    const dl__vf vsc = DL__SPLAT(sc), vsh = DL__SPLAT(sh), vneg = DL__SPLAT(neg);
    for (; s + 16 <= n; s += 16) {
        dl__vf v;
        dl__vi m;
        memcpy(&v, y + s, 64);
        v *= vsc;
        v += vsh;
        if (act != DL__ACT_NONE) {
            m = v > 0;
            v = (dl__vf)(((dl__vi)v & m) | ((dl__vi)(v * vneg) & ~m));
        }
        memcpy(y + s, &v, 64);
    }
#endif
    for (; s < n; s++) {
        float v = y[s] * sc;
        v += sh;
        y[s] = act == DL__ACT_NONE || v > 0 ? v : (act == DL__ACT_RELU ? 0.0f : slope * v);
    }
}

typedef struct dl__rowk {
    void (*affine)(float *y, const float *x, int S, float sc, float sh);
    void (*add)(float *y, const float *x, int S);
    void (*prelu)(float *y, const float *x, int S, float a);
    void (*relu)(float *y, const float *x, int S);
    void (*relu_back)(float *dx, const float *dy, const float *x, int S);
    double (*prelu_back)(float *dx, const float *dy, const float *x, int S, float a);
    double (*sum)(const float *x, size_t ld, int n, int S, float m, double *squares);
    void (*sums2)(const float *dy, const float *x, size_t ld, int n, int S, float m, double *sdy, double *sdyx);
    void (*bn_dx)(float *dx, const float *dy, const float *x, int S, float g, float k1, float m, float k2);
    void (*dot)(const float *w, size_t ldw, int rows, const float *x, int n, float *out);
    void (*epilogue)(float *y, int n, float sc, float sh, int act, float slope, float beta);
} dl__rowk;
/* The table for one ISA: wrappers that inline the kernels above, compiled
   with the given target attribute (empty: the compiler's baseline). */
#define DL__ROWK(isa, target) \
    target static void dl__row_affine_##isa(float *y, const float *x, int S, float sc, float sh) { dl__row_affine(y, x, S, sc, sh); } \
    target static void dl__row_add_##isa(float *y, const float *x, int S) { dl__row_add(y, x, S); } \
    target static void dl__row_prelu_##isa(float *y, const float *x, int S, float a) { dl__row_prelu(y, x, S, a); } \
    target static void dl__row_relu_##isa(float *y, const float *x, int S) { dl__row_relu(y, x, S); } \
    target static void dl__row_relu_back_##isa(float *dx, const float *dy, const float *x, int S) { \
        dl__row_relu_back(dx, dy, x, S); } \
    target static double dl__row_prelu_back_##isa(float *dx, const float *dy, const float *x, int S, float a) { \
        return dl__row_prelu_back(dx, dy, x, S, a); } \
    target static double dl__row_sum_##isa(const float *x, size_t ld, int n, int S, float m, double *squares) { \
        return dl__row_sum(x, ld, n, S, m, squares); } \
    target static void dl__row_sums2_##isa(const float *dy, const float *x, size_t ld, int n, int S, float m, double *sdy, \
                                           double *sdyx) { dl__row_sums2(dy, x, ld, n, S, m, sdy, sdyx); } \
    target static void dl__row_bn_dx_##isa(float *dx, const float *dy, const float *x, int S, float g, float k1, float m, float k2) { \
        dl__row_bn_dx(dx, dy, x, S, g, k1, m, k2); } \
    target static void dl__rows_dot_##isa(const float *w, size_t ldw, int rows, const float *x, int n, float *out) { \
        dl__rows_dot(w, ldw, rows, x, n, out); } \
    target static void dl__row_epilogue_##isa(float *y, int n, float sc, float sh, int act, float slope, float beta) { \
        dl__row_epilogue(y, n, sc, sh, act, slope, beta); } \
    static const dl__rowk dl__rowk_##isa = { dl__row_affine_##isa, dl__row_add_##isa, dl__row_prelu_##isa, \
        dl__row_relu_##isa, dl__row_relu_back_##isa, \
        dl__row_prelu_back_##isa, dl__row_sum_##isa, dl__row_sums2_##isa, dl__row_bn_dx_##isa, dl__rows_dot_##isa, \
        dl__row_epilogue_##isa };
DL__ROWK(base, )
#ifdef DL__X86
DL__ROWK(avx2, __attribute__((target("avx2"))))
DL__ROWK(avx512, __attribute__((target("avx512f"))))
#endif

/* ---- micro-kernels: c[MR x NR] = (load ? c : 0) + (bias ? bias[row] : 0) + sum_k a[k][0..MR) * b[k][0..NR),
   then, with epi, each row i: v = v scale[i] + shift[i]; v > 0 ? v : v neg (neg: slope[i], or neg when slope
   is NULL), the arithmetic of dl__row_epilogue's vectors, applied in registers before the store ---- */
typedef struct dl__kepi {
    const float *scale, *shift, *slope;     /* the tile's first row; scale, shift NULL: 1 and 0 */
    float neg;
    int act;                                /* DL__ACT_NONE: no activation */
} dl__kepi;
typedef void (*dl__ukernel)(int kc, const float *a, const float *b, float *c, size_t ldc, int load, const float *bias,
                            const dl__kepi *epi);
/* The same, with row k of b at b + koff[k] instead of packed NR apart: a
   convolution's B read in place (dl__direct). One body per ISA makes both. */
typedef void (*dl__ukernel_off)(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                                const float *bias, const dl__kepi *epi);
struct dl__mat;
struct dl__piece;
struct dl__krow;
struct dl__run;
typedef struct dl__simd {
    const char *name;
    int mr, nr;
    dl__ukernel kernel;
    void (*pairs_max)(float *m, int32_t *odd, const float *x, int k);   /* see dl__pairs_max_c */
    void (*rows_max)(float *y, int32_t *arg, const float *a, const float *b, const int32_t *oa, const int32_t *ob,
                     int n, int32_t at, int32_t W);                       /* see dl__rows_max_c */
    const dl__rowk *row;
    int kepi;                   /* the kernel applies epi; else the GEMM calls dl__epilogue_rows */
    /* dl__pack_b_same's rows, vectorised (NULL: dl__im2col_same per piece) */
    void (*pack_same)(const struct dl__mat *B, const struct dl__piece *pc, int n_pc, const int32_t *cols, int k0, int kc,
                      int nr, float *dst);
    /* dl__depthwise_task's planes directly (NULL: im2col rows and axpy): nch channels of one sample from
       y, x, w, bias (NULL: none); tmp: dl__depthwise_floats */
    void (*depthwise)(float *y, const float *x, const float *w, const float *bias, int nch, const dl_conv_geom *g, float *tmp);
    /* y += a x with the micro-kernel's arithmetic (fused where it fuses):
       a direct kernel built on it computes what the GEMM would */
    void (*axpy)(float *y, const float *x, int n, float a);
    /* dl__im2col_row of a stride-2 convolution into a contiguous row (NULL: dl__im2col_row) */
    void (*im2col_s2)(const struct dl__mat *B, const struct dl__krow *kr, const struct dl__run *runs, int n_runs, float *dst);
    /* dst[c ld + r] = src[r lds + c] for r < rows, c < cols (at most 16 each); lanes rows..lanes-1
       of each dst row get zeros (NULL: loops). Every packing transpose goes through it (dl__transpose_k) */
    void (*transpose16)(float *dst, size_t ld, const float *src, size_t lds, int rows, int cols, int lanes);
    dl__ukernel_off kernel_off;     /* NULL: no direct convolutions (dl__conv_direct) */
    /* rows r < m of a tile t (ld nr) and of c (ld ldc): store puts t's columns set in mask side by side
       in c, load the reverse (zeros elsewhere) (NULL: loops). The direct GEMM's output columns */
    void (*cols)(float *c, size_t ldc, float *t, int nr, int m, uint32_t mask, int store);
    /* the depthwise backward directly (NULL: im2col rows, col2im): see dl__depthwise_dw_avx512, _dx_avx512 */
    void (*depthwise_dw)(float *dw, const float *dy, size_t ldy, const float *x, size_t ldx, int n, const dl_conv_geom *g, float *acc);
    void (*depthwise_dx)(float *dx, const float *dy, const float *w, int nch, const dl_conv_geom *g);
} dl__simd;
static void dl__pairs_max_c(float *m, int32_t *odd, const float *x, int k);
static void dl__rows_max_c(float *y, int32_t *arg, const float *a, const float *b, const int32_t *oa,
                           const int32_t *ob, int n, int32_t at, int32_t W);
#define DL__MAX_MR 16
#define DL__MAX_NR 64

/* Each kernel is a body inlined twice: koff NULL (b packed) and not. */
DL__INLINE void dl__ukernel_scalar_body(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc,
                                        int load, const float *bias) {
    float acc[4][8];
    int i, j, k;
    for (i = 0; i < 4; i++) for (j = 0; j < 8; j++) acc[i][j] = bias ? bias[i] : 0.0f;
    for (k = 0; k < kc; k++, a += 4) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * 8;
        for (i = 0; i < 4; i++)
            for (j = 0; j < 8; j++) acc[i][j] += a[i] * bk[j];
    }
    for (i = 0; i < 4; i++)
        for (j = 0; j < 8; j++) c[i * ldc + j] = (load ? c[i * ldc + j] : 0.0f) + acc[i][j];
}
static void dl__ukernel_scalar(int kc, const float *a, const float *b, float *c, size_t ldc, int load, const float *bias,
                               const dl__kepi *epi) {
    (void)epi;
    dl__ukernel_scalar_body(kc, a, b, NULL, c, ldc, load, bias);
}
static void dl__ukernel_scalar_off(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                                   const float *bias, const dl__kepi *epi) {
    (void)epi;
    dl__ukernel_scalar_body(kc, a, b, koff, c, ldc, load, bias);
}
static void dl__axpy_scalar(float *y, const float *x, int n, float a) { int s; for (s = 0; s < n; s++) y[s] += a * x[s]; }
static const dl__simd dl__simd_scalar = { "scalar", 4, 8, dl__ukernel_scalar, dl__pairs_max_c, dl__rows_max_c, &dl__rowk_base,
                                         0, NULL, NULL, dl__axpy_scalar, NULL, NULL, dl__ukernel_scalar_off, NULL, NULL, NULL };

#ifdef DL__X86
/* The accumulators are named, not an array: compilers at -O2 keep an array
   of vectors in memory. ROW(i) is one row of the tile. */
/* AVX2 + FMA, 6 x 16: 12 accumulators, 2 loads of b and 6 broadcasts of a per k. */
__attribute__((target("avx2,fma"))) DL__INLINE
void dl__ukernel_avx2_body(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                           const float *bias, const dl__kepi *epi) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, b0, b1, ai;
    int k;
#define DL__ROW(i) c##i##0 = c##i##1 = _mm256_set1_ps(bias[i]);
    if (bias) { DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) }
#undef DL__ROW
#define DL__ROW(i) ai = _mm256_broadcast_ss(a + i); c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);
    for (k = 0; k < kc; k++, a += 6) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * 16;
        b0 = _mm256_loadu_ps(bk);
        b1 = _mm256_loadu_ps(bk + 8);
        DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5)
    }
#undef DL__ROW
#define DL__ROW(i) if (load) { c##i##0 = _mm256_add_ps(_mm256_loadu_ps(c + i * ldc), c##i##0); \
                              c##i##1 = _mm256_add_ps(_mm256_loadu_ps(c + i * ldc + 8), c##i##1); }
    DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5)
#undef DL__ROW
    if (epi) {
        const __m256 zero = _mm256_setzero_ps();
        __m256 sc, sh, ng;
#define DL__ROW(i) sc = _mm256_set1_ps(epi->scale ? epi->scale[i] : 1.0f); sh = _mm256_set1_ps(epi->shift ? epi->shift[i] : 0.0f); \
                   c##i##0 = _mm256_add_ps(_mm256_mul_ps(c##i##0, sc), sh); c##i##1 = _mm256_add_ps(_mm256_mul_ps(c##i##1, sc), sh); \
                   if (epi->act != DL__ACT_NONE) { \
                       ng = _mm256_set1_ps(epi->slope ? epi->slope[i] : epi->neg); \
                       c##i##0 = _mm256_blendv_ps(_mm256_mul_ps(c##i##0, ng), c##i##0, _mm256_cmp_ps(c##i##0, zero, _CMP_GT_OQ)); \
                       c##i##1 = _mm256_blendv_ps(_mm256_mul_ps(c##i##1, ng), c##i##1, _mm256_cmp_ps(c##i##1, zero, _CMP_GT_OQ)); }
        DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5)
#undef DL__ROW
    }
#define DL__ROW(i) _mm256_storeu_ps(c + i * ldc, c##i##0); _mm256_storeu_ps(c + i * ldc + 8, c##i##1);
    DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5)
#undef DL__ROW
}
__attribute__((target("avx2,fma")))
static void dl__ukernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc, int load, const float *bias,
                             const dl__kepi *epi) {
    dl__ukernel_avx2_body(kc, a, b, NULL, c, ldc, load, bias, epi);
}
__attribute__((target("avx2,fma")))
static void dl__ukernel_avx2_off(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                                 const float *bias, const dl__kepi *epi) {
    dl__ukernel_avx2_body(kc, a, b, koff, c, ldc, load, bias, epi);
}
__attribute__((target("avx2,fma")))
static void dl__axpy_avx2(float *y, const float *x, int n, float a) {
    __m256 va = _mm256_set1_ps(a);
    int s = 0;
    for (; s + 8 <= n; s += 8) _mm256_storeu_ps(y + s, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + s), _mm256_loadu_ps(y + s)));
    for (; s < n; s++) _mm_store_ss(y + s, _mm_fmadd_ss(_mm256_castps256_ps128(va), _mm_load_ss(x + s), _mm_load_ss(y + s)));
}
static const dl__simd dl__simd_avx2 = { "avx2", 6, 16, dl__ukernel_avx2, dl__pairs_max_c, dl__rows_max_c, &dl__rowk_avx2,
                                       1, NULL, NULL, dl__axpy_avx2, NULL, NULL, dl__ukernel_avx2_off, NULL, NULL, NULL };

/* AVX-512, 8 x 32: 16 accumulators, 2 loads of b and 8 broadcasts of a per k. */
__attribute__((target("avx512f"))) DL__INLINE
void dl__ukernel_avx512_body(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                             const float *bias, const dl__kepi *epi) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00, b0, b1, ai;
    int k;
#define DL__ROW(i) c##i##0 = c##i##1 = _mm512_set1_ps(bias[i]);
    if (bias) { DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) DL__ROW(6) DL__ROW(7) }
#undef DL__ROW
#define DL__ROW(i) ai = _mm512_set1_ps(a[i]); c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);
    for (k = 0; k < kc; k++, a += 8) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * 32;
        b0 = _mm512_loadu_ps(bk);
        b1 = _mm512_loadu_ps(bk + 16);
        DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) DL__ROW(6) DL__ROW(7)
    }
#undef DL__ROW
#define DL__ROW(i) if (load) { c##i##0 = _mm512_add_ps(_mm512_loadu_ps(c + i * ldc), c##i##0); \
                              c##i##1 = _mm512_add_ps(_mm512_loadu_ps(c + i * ldc + 16), c##i##1); }
    DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) DL__ROW(6) DL__ROW(7)
#undef DL__ROW
    if (epi) {
        const __m512 zero = _mm512_setzero_ps();
        __m512 sc, sh, ng;
#define DL__ROW(i) sc = _mm512_set1_ps(epi->scale ? epi->scale[i] : 1.0f); sh = _mm512_set1_ps(epi->shift ? epi->shift[i] : 0.0f); \
                   c##i##0 = _mm512_add_ps(_mm512_mul_ps(c##i##0, sc), sh); c##i##1 = _mm512_add_ps(_mm512_mul_ps(c##i##1, sc), sh); \
                   if (epi->act != DL__ACT_NONE) { \
                       ng = _mm512_set1_ps(epi->slope ? epi->slope[i] : epi->neg); \
                       c##i##0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c##i##0, zero, _CMP_GT_OQ), _mm512_mul_ps(c##i##0, ng), c##i##0); \
                       c##i##1 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c##i##1, zero, _CMP_GT_OQ), _mm512_mul_ps(c##i##1, ng), c##i##1); }
        DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) DL__ROW(6) DL__ROW(7)
#undef DL__ROW
    }
#define DL__ROW(i) _mm512_storeu_ps(c + i * ldc, c##i##0); _mm512_storeu_ps(c + i * ldc + 16, c##i##1);
    DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3) DL__ROW(4) DL__ROW(5) DL__ROW(6) DL__ROW(7)
#undef DL__ROW
}
__attribute__((target("avx512f")))
static void dl__ukernel_avx512(int kc, const float *a, const float *b, float *c, size_t ldc, int load, const float *bias,
                               const dl__kepi *epi) {
    dl__ukernel_avx512_body(kc, a, b, NULL, c, ldc, load, bias, epi);
}
__attribute__((target("avx512f")))
static void dl__ukernel_avx512_off(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                                   const float *bias, const dl__kepi *epi) {
    dl__ukernel_avx512_body(kc, a, b, koff, c, ldc, load, bias, epi);
}
/* dl__simd's cols: per row, each 16-lane half compressed (or expanded) in a register, masked moves */
__attribute__((target("avx512f")))
static void dl__cols_avx512(float *c, size_t ldc, float *t, int nr, int m, uint32_t mask, int store) {
    __mmask16 m0 = (__mmask16)(mask & 0xffff), m1 = (__mmask16)(mask >> 16);
    int n0 = __builtin_popcount(m0), n1 = __builtin_popcount(m1), i;
    __mmask16 s0 = (__mmask16)((1u << n0) - 1), s1 = (__mmask16)((1u << n1) - 1);
    for (i = 0; i < m; i++, c += ldc, t += nr) {
        if (store) {
            _mm512_mask_storeu_ps(c, s0, _mm512_maskz_compress_ps(m0, _mm512_loadu_ps(t)));
            _mm512_mask_storeu_ps(c + n0, s1, _mm512_maskz_compress_ps(m1, _mm512_loadu_ps(t + 16)));
        } else {
            _mm512_storeu_ps(t, _mm512_maskz_expand_ps(m0, _mm512_maskz_loadu_ps(s0, c)));
            _mm512_storeu_ps(t + 16, _mm512_maskz_expand_ps(m1, _mm512_maskz_loadu_ps(s1, c + n0)));
        }
    }
}
static void dl__pairs_max_avx512(float *m, int32_t *odd, const float *x, int k);
static void dl__rows_max_avx512(float *y, int32_t *arg, const float *a, const float *b, const int32_t *oa,
                                const int32_t *ob, int n, int32_t at, int32_t W);
__attribute__((target("avx512f")))
static void dl__axpy_avx512(float *y, const float *x, int n, float a) {
    __m512 va = _mm512_set1_ps(a);
    int s = 0;
    for (; s + 16 <= n; s += 16) _mm512_storeu_ps(y + s, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + s), _mm512_loadu_ps(y + s)));
    if (s < n) {
        __mmask16 m = (__mmask16)((1u << (n - s)) - 1);
        _mm512_mask_storeu_ps(y + s, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + s), _mm512_maskz_loadu_ps(m, y + s)));
    }
}
static void dl__pack_same_avx512(const struct dl__mat *B, const struct dl__piece *pc, int n_pc, const int32_t *cols, int k0,
                                 int kc, int nr, float *dst);
static void dl__im2col_s2_avx512(const struct dl__mat *B, const struct dl__krow *kr, const struct dl__run *runs, int n_runs,
                                 float *dst);
/* The values dl__im2col_row gives for one tap and 16 outputs of a row
   starting at ow0: from column c0 = ow0 sw - pw + kw dw of an x row on,
   every sw-th column, zeros outside x and past lanes (masked loads, two
   loads and a permute for stride 2, gathers otherwise). The masks depend on
   the tap and ow0 only: set up once, then loaded from each row. */
typedef struct { __m512i col; __mmask16 m, ma, mb; int c0; } dl__dw_tap;
#define DL__AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))
DL__AVX512_INLINE dl__dw_tap dl__dw_tap_setup(int c0, int ow0, __mmask16 lanes, const dl_conv_geom *g) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), W = _mm512_set1_epi32(g->W);
    const __m512i e = _mm512_add_epi32(_mm512_set1_epi32(c0), iota);
    int two_n = 2 * (g->OW - ow0 < 16 ? g->OW - ow0 : 16);
    dl__dw_tap t;
    t.c0 = c0;
    t.col = _mm512_add_epi32(_mm512_set1_epi32(c0), _mm512_mullo_epi32(iota, _mm512_set1_epi32(g->sw)));
    t.m = lanes & _mm512_cmplt_epu32_mask(t.col, W);
    t.ma = _mm512_cmplt_epu32_mask(e, W) & (__mmask16)(two_n >= 16 ? 0xffff : (1u << two_n) - 1);
    t.mb = _mm512_cmplt_epu32_mask(_mm512_add_epi32(e, _mm512_set1_epi32(16)), W)
           & (__mmask16)(two_n >= 32 ? 0xffff : two_n > 16 ? (1u << (two_n - 16)) - 1 : 0);
    return t;
}
DL__AVX512_INLINE __m512 dl__dw_tap_load(const float *row, const dl__dw_tap *t, int sw) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    if (sw == 1) return _mm512_maskz_loadu_ps(t->m, row + t->c0);
    if (sw == 2 && t->m)                /* 32 columns in two loads, then the even ones */
        return _mm512_maskz_mov_ps(t->m, _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(t->ma, row + t->c0), _mm512_add_epi32(iota, iota),
                                                                _mm512_maskz_loadu_ps(t->mb, row + t->c0 + 16)));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), t->m, t->col, row, 4);
}
/* 16 partial sums added in a fixed order (not _mm512_reduce_add_ps: g++ 12 warns inside it) */
static float dl__sum16(const float *a) {
    float s = 0;
    int k;
    for (k = 0; k < 16; k++) s += a[k];
    return s;
}
static __mmask16 dl__lanes16(int left) { return (__mmask16)(left >= 16 ? 0xffff : left <= 0 ? 0 : (1u << left) - 1); }
/* One depthwise plane, y (OH x OW) = bias + sum over taps k of w[k] times the
   tap's view of x (H x W), 16 outputs of a row at a time: the values
   dl__im2col_row gives, zeros where it gives zeros (rows outside x too), and
   the same fused multiply-adds in the same tap order as dl__axpy_avx512
   over those rows: the same bits. */
__attribute__((target("avx512f")))
static void dl__depthwise_rows_avx512(float *y, const float *x, const float *w, float bias, const dl_conv_geom *g) {
    int oh, ow0, kh, kw;
    for (oh = 0; oh < g->OH; oh++)
        for (ow0 = 0; ow0 < g->OW; ow0 += 16) {
            __mmask16 lanes = dl__lanes16(g->OW - ow0);
            __m512 acc = _mm512_set1_ps(bias);
            for (kh = 0; kh < g->KH; kh++) {
                int ih = oh * g->sh - g->ph + kh * g->dh;
                for (kw = 0; kw < g->KW; kw++) {
                    dl__dw_tap t = dl__dw_tap_setup(ow0 * g->sw - g->pw + kw * g->dw, ow0, lanes, g);
                    __m512 v = (unsigned)ih < (unsigned)g->H ? dl__dw_tap_load(x + (ptrdiff_t)ih * g->W, &t, g->sw) : _mm512_setzero_ps();
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[kh * g->KW + kw]), v, acc);
                }
            }
            _mm512_mask_storeu_ps(y + (size_t)oh * g->OW + ow0, lanes, acc);
        }
}
/* Depthwise weight gradient of one channel over n samples (dy and x of
   sample i at dy + i ldy, x + i ldx): dw[k] += sum of dy times the tap's
   view of x. Per tap a vector of 16 partial sums runs over every sample and
   row in order (acc: K x 16 floats), then is added up: the order depends on
   the shapes only. No im2col rows are built; one sample's planes stay in
   L1 while every tap reads them; the rows oh that read x are found once. */
__attribute__((target("avx512f")))
static void dl__depthwise_dw_rows_avx512(float *dw, const float *dy, size_t ldy, const float *x, size_t ldx, int n,
                                         const dl_conv_geom *g, float *acc) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), W = _mm512_set1_epi32(g->W);
    int KK = g->KH * g->KW, i, k, oh, ow0, lo[256], hi[256];        /* taps: at most DL__KC (dl__conv_is_depthwise) */
    size_t step = (size_t)g->sh * g->W;
    for (k = 0; k < KK; k++) {
        int kh = k / g->KW;
        _mm512_storeu_ps(acc + 16 * k, _mm512_setzero_ps());
        for (lo[k] = 0; lo[k] < g->OH && (unsigned)(lo[k] * g->sh - g->ph + kh * g->dh) >= (unsigned)g->H; lo[k]++) {}
        for (hi[k] = g->OH; hi[k] > lo[k] && (unsigned)((hi[k] - 1) * g->sh - g->ph + kh * g->dh) >= (unsigned)g->H; hi[k]--) {}
    }
    for (i = 0; i < n; i++, dy += ldy, x += ldx)
        for (k = 0; k < KK; k++) {
            int kh = k / g->KW, kw = k % g->KW;
            __m512 a = _mm512_loadu_ps(acc + 16 * k);
            for (ow0 = 0; ow0 < g->OW; ow0 += 16) {
                __mmask16 lanes = dl__lanes16(g->OW - ow0);
                int c0 = ow0 * g->sw - g->pw + kw * g->dw;
                const float *xr = x + (ptrdiff_t)(lo[k] * g->sh - g->ph + kh * g->dh) * g->W, *d = dy + (size_t)lo[k] * g->OW + ow0;
                if (g->sw == 1) {               /* the common case: masked loads at a fixed shift */
                    __mmask16 m = lanes & _mm512_cmplt_epu32_mask(_mm512_add_epi32(_mm512_set1_epi32(c0), iota), W);
                    for (oh = lo[k]; oh < hi[k]; oh++, xr += step, d += g->OW)
                        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, d), _mm512_maskz_loadu_ps(m, xr + c0), a);
                } else {
                    dl__dw_tap t = dl__dw_tap_setup(c0, ow0, lanes, g);
                    for (oh = lo[k]; oh < hi[k]; oh++, xr += step, d += g->OW)
                        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, d), dl__dw_tap_load(xr, &t, g->sw), a);
                }
            }
            _mm512_storeu_ps(acc + 16 * k, a);
        }
    for (k = 0; k < KK; k++) dw[k] += dl__sum16(acc + 16 * k);
}
static __mmask16 *dl__dw_flat(const dl_conv_geom *g, float *tmp, int *shift, size_t *plane);
static void dl__dw_phases_avx512(float *ph, const float *x, int H, int W, int PH, int PW);
/* The same sums on flattened planes where the forward has them (16
   consecutive outputs per vector whatever OW, the forward's masks; stride 2
   on phase planes), else by rows. tmp: 16 K floats of sums, then
   dl__depthwise_floats for the planes and masks. */
__attribute__((target("avx512f")))
static void dl__depthwise_dw_avx512(float *dw, const float *dy, size_t ldy, const float *x, size_t ldx, int n,
                                    const dl_conv_geom *g, float *tmp) {
    int s = g->sh, PH = (g->H + s - 1) / s, PW = (g->W + s - 1) / s, P = g->OH * g->OW;
    int KK = g->KH * g->KW, nv = (P + 15) / 16, i, k, v, shift[256];
    size_t plane[256];
    float *acc = tmp, *ph = tmp + 16 * 256;            /* 16 sums for each of at most DL__KC taps */
    const __mmask16 *mask = dl__dw_flat(g, ph, shift, plane);
    if (!mask) { dl__depthwise_dw_rows_avx512(dw, dy, ldy, x, ldx, n, g, acc); return; }
    for (k = 0; k < KK; k++) _mm512_storeu_ps(acc + 16 * k, _mm512_setzero_ps());
    for (i = 0; i < n; i++, dy += ldy, x += ldx) {
        const float *base = x;
        if (s == 2) { dl__dw_phases_avx512(ph, x, g->H, g->W, PH, PW); base = ph; }
        for (k = 0; k < KK; k++) {      /* two chains of multiply-adds: even and odd vectors */
            const float *p = base + plane[k] + shift[k];
            const __mmask16 *m = mask + k;
            __m512 a = _mm512_loadu_ps(acc + 16 * k), b = _mm512_setzero_ps();
            for (v = 0; v + 1 < nv; v += 2) {
                a = _mm512_fmadd_ps(_mm512_loadu_ps(dy + 16 * v), _mm512_maskz_loadu_ps(m[(size_t)v * KK], p + 16 * v), a);
                b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(dl__lanes16(P - 16 * v - 16), dy + 16 * v + 16),
                                    _mm512_maskz_loadu_ps(m[(size_t)(v + 1) * KK], p + 16 * v + 16), b);
            }
            if (v < nv)
                a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(dl__lanes16(P - 16 * v), dy + 16 * v),
                                    _mm512_maskz_loadu_ps(m[(size_t)v * KK], p + 16 * v), a);
            _mm512_storeu_ps(acc + 16 * k, _mm512_add_ps(a, b));
        }
    }
    for (k = 0; k < KK; k++) dw[k] += dl__sum16(acc + 16 * k);
}
/* Depthwise input gradient of nch planes (dx H x W, dy OH x OW, w K each):
   dx[ih][iw] += sum over the taps that read it of w[k] dy[oh][ow], 16
   columns of an input row at a time, read from dy (oh sh = ih + ph - kh dh,
   ow sw = iw + pw - kw dw), so no col buffer is scattered back and each dx
   value is written once (a masked store read back soon after would stall).
   Which dy column each lane takes for tap column kw is found once per 16
   columns (a permute for OW <= 16, else a gather; a masked load at a shift
   for stride 1). (Stride 1 goes through the forward's kernel where it can:
   dl__depthwise_dx_turned.) */
__attribute__((target("avx512f")))
static void dl__depthwise_dx_avx512(float *dx, const float *dy, const float *w, int nch, const dl_conv_geom *g) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sw = _mm512_set1_epi32(g->sw), span = _mm512_set1_epi32(g->sw * g->OW);
    const __mmask16 row_lanes = dl__lanes16(g->OW), all = 0xffff;
    int P = g->OH * g->OW, HW = g->H * g->W, KK = g->KH * g->KW, c, ih, iw0, kh, kw;
    __m512i q[256];                     /* per tap column (KW <= DL__KC): dy's column per lane, and which lanes take one */
    __mmask16 m[256];
    for (iw0 = 0; iw0 < g->W; iw0 += 16) {
        __mmask16 lanes = dl__lanes16(g->W - iw0);
        for (kw = 0; kw < g->KW; kw++) {
            __m512i u = _mm512_add_epi32(_mm512_set1_epi32(iw0 + g->pw - kw * g->dw), iota);     /* sw ow per lane */
            m[kw] = lanes & _mm512_cmplt_epu32_mask(u, span);
            q[kw] = g->sw == 1 ? u : g->sw == 2 ? _mm512_maskz_srai_epi32(all, u, 1)     /* zero-masking forms: see transpose16 */
                  : _mm512_maskz_cvttps_epi32(all, _mm512_maskz_div_ps(all, _mm512_maskz_cvtepi32_ps(all, u), _mm512_maskz_cvtepi32_ps(all, sw)));
            if (g->sw != 1) m[kw] &= _mm512_cmpeq_epi32_mask(_mm512_maskz_mullo_epi32(all, q[kw], sw), u);
        }
        for (c = 0; c < nch; c++)
            for (ih = 0; ih < g->H; ih++) {
                float *d = dx + (size_t)c * HW + (size_t)ih * g->W + iw0;
                __m512 s = _mm512_setzero_ps();
                for (kh = 0; kh < g->KH; kh++) {
                    int t = ih + g->ph - kh * g->dh, oh;      /* oh sh = t: shifts for strides 1 and 2, not divisions */
                    const float *row, *wk = w + (size_t)c * KK + kh * g->KW;
                    __m512 rowv;
                    if (t < 0 || (g->sh == 2 ? t & 1 : g->sh > 2 && t % g->sh)) continue;
                    oh = g->sh == 1 ? t : g->sh == 2 ? t >> 1 : t / g->sh;
                    if (oh >= g->OH) continue;
                    row = dy + (size_t)c * P + (size_t)oh * g->OW;
                    if (g->sw == 1)
                        for (kw = 0; kw < g->KW; kw++)
                            s = _mm512_fmadd_ps(_mm512_set1_ps(wk[kw]), _mm512_maskz_loadu_ps(m[kw], row + iw0 + g->pw - kw * g->dw), s);
                    else if (g->OW <= 16)
                        for (kw = 0, rowv = _mm512_maskz_loadu_ps(row_lanes, row); kw < g->KW; kw++)
                            s = _mm512_fmadd_ps(_mm512_set1_ps(wk[kw]), _mm512_maskz_permutexvar_ps(m[kw], q[kw], rowv), s);
                    else
                        for (kw = 0; kw < g->KW; kw++)
                            s = _mm512_fmadd_ps(_mm512_set1_ps(wk[kw]), _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m[kw], q[kw], row, 4), s);
                }
                _mm512_mask_storeu_ps(d, lanes, _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, d), s));
            }
    }
}
/* Stride 2: the four phase planes of x, plane (py, px) row i column j =
   x[2i + py][2j + px], PH x PW each, zeros past x (odd H or W). One pass
   over x (row r gives row r/2 of two planes), by whole-vector stores
   whose spill past PW lands on the plane's next rows, written later; only
   a store that would cross into the next plane is masked. The kernels read
   the planes right away, and a masked store does not forward to the loads
   that follow it. */
__attribute__((target("avx512f")))
static void dl__dw_phases_avx512(float *ph, const float *x, int H, int W, int PH, int PW) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i even = _mm512_add_epi32(iota, iota), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int r, j;
    for (r = 0; r < 2 * PH; r++) {      /* row r of x: row r/2 of the even- and odd-column planes of its row parity */
        float *d0 = ph + ((size_t)(r & 1) * 2 * PH + (size_t)(r >> 1)) * PW, *d1 = d0 + (size_t)PH * PW;
        for (j = 0; j < PW; j += 16) {
            int left = (PH - (r >> 1)) * PW - j;    /* floats to the plane's end: past it, the next plane is written already */
            __mmask16 ma = dl__lanes16(W - 2 * j), mb = dl__lanes16(W - 2 * j - 16);
            const float *xr = x + (size_t)r * W + 2 * j;
            __m512 a = r < H ? _mm512_maskz_loadu_ps(ma, xr) : _mm512_setzero_ps();
            __m512 b = r < H ? _mm512_maskz_loadu_ps(mb, xr + 16) : _mm512_setzero_ps();
            if (left < 16) {
                __mmask16 mo = dl__lanes16(left);
                _mm512_mask_storeu_ps(d0 + j, mo, _mm512_permutex2var_ps(a, even, b));
                _mm512_mask_storeu_ps(d1 + j, mo, _mm512_permutex2var_ps(a, odd, b));
            } else {    /* whole vectors: past the row's end they reach the plane's next rows, written after this one */
                _mm512_storeu_ps(d0 + j, _mm512_permutex2var_ps(a, even, b));
                _mm512_storeu_ps(d1 + j, _mm512_permutex2var_ps(a, odd, b));
            }
        }
    }
}
/* The flattened planes' setup (dl__depthwise_avx512): per tap k its shift
   and phase plane, per vector v of 16 outputs and tap the mask [v][k], in
   tmp after the phase planes. NULL where the shapes do not allow it. */
__attribute__((target("avx512f")))
static __mmask16 *dl__dw_flat(const dl_conv_geom *g, float *tmp, int *shift, size_t *plane) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int s = g->sh, PH = (g->H + s - 1) / s, PW = (g->W + s - 1) / s, P = g->OH * g->OW;
    int KK = g->KH * g->KW, nv = (P + 15) / 16, k, kh, kw, v, col;
    __mmask16 *mask = (__mmask16 *)(void *)(tmp + (s == 2 ? 4 * (size_t)PH * PW + 16 : 0));     /* [vector][tap] */
    if (s != g->sw || s > 2 || PW != g->OW || KK > 256) return NULL;
    for (kh = 0, k = 0; kh < g->KH; kh++)       /* tap k reads a plane at a fixed shift (no divisions: planes are small) */
        for (kw = 0; kw < g->KW; kw++, k++) {
            int oy = kh * g->dh - g->ph, ox = kw * g->dw - g->pw, py = s == 2 ? oy & 1 : 0, px = s == 2 ? ox & 1 : 0;
            int qx = s == 2 ? (ox - px) / 2 : ox;
            const __m512i vqx = _mm512_set1_epi32(qx), vpw = _mm512_set1_epi32(PW), vhw = _mm512_set1_epi32(PH * PW);
            shift[k] = (s == 2 ? (oy - py) / 2 : oy) * PW + qx;
            plane[k] = (size_t)(py * s + px) * PH * PW;
            for (v = 0, col = 0; v < nv; v++) {     /* lane l: output 16 v + l, at column col + l of the plane */
                __m512i cv = _mm512_add_epi32(_mm512_set1_epi32(col), iota), pv = _mm512_set1_epi32(16 * v + shift[k]);
                int t, left = P - 16 * v;
                for (t = col + 15; t >= PW; t -= PW) cv = _mm512_mask_sub_epi32(cv, _mm512_cmpge_epi32_mask(cv, vpw), cv, vpw);
                mask[(size_t)v * KK + k] = (__mmask16)((left >= 16 ? 0xffff : (1u << left) - 1)
                                                       & _mm512_cmplt_epu32_mask(_mm512_add_epi32(pv, iota), vhw)
                                                       & _mm512_cmplt_epu32_mask(_mm512_add_epi32(cv, vqx), vpw));
                for (col += 16; col >= PW; col -= PW) {}
            }
        }
    return mask;
}
__attribute__((target("avx512f")))
static void dl__depthwise_avx512(float *y, const float *x, const float *w, const float *bias, int nch, const dl_conv_geom *g,
                                 float *tmp) {
    int s = g->sh, PH = (g->H + s - 1) / s, PW = (g->W + s - 1) / s, P = g->OH * g->OW, HW = g->H * g->W;
    int KK = g->KH * g->KW, nv = (P + 15) / 16, c, k;
    int shift[256];                     /* taps: at most DL__KC (dl__conv_is_depthwise) */
    size_t plane[256];
    __mmask16 *mask = dl__dw_flat(g, tmp, shift, plane);
    if (!mask) {
        for (c = 0; c < nch; c++)
            dl__depthwise_rows_avx512(y + (size_t)c * P, x + (size_t)c * HW, w + (size_t)c * KK, bias ? bias[c] : 0.0f, g);
        return;
    }
    for (c = 0; c < nch; c++, y += P, x += HW, w += KK) {
        const float *base = x;
        int q0;
        if (s == 2) { dl__dw_phases_avx512(tmp, x, g->H, g->W, PH, PW); base = tmp; }
        for (q0 = 0; q0 < P; q0 += 64) {
            const __mmask16 *m = mask + (size_t)(q0 / 16) * KK;
            int vs = nv - q0 / 16;
            const size_t mv = (size_t)KK;
            __m512 a0 = _mm512_set1_ps(bias ? bias[c] : 0.0f), a1 = a0, a2 = a0, a3 = a0;
            if (vs >= 4)
                for (k = 0; k < KK; k++) {
                    const __m512 wk = _mm512_set1_ps(w[k]);
                    const float *p = base + plane[k] + (ptrdiff_t)(q0 + shift[k]);
                    a0 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[k], p), a0);
                    a1 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[mv + k], p + 16), a1);
                    a2 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[2 * mv + k], p + 32), a2);
                    a3 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[3 * mv + k], p + 48), a3);
                }
            else                        /* the last 1 to 3 vectors */
                for (k = 0; k < KK; k++) {
                    const __m512 wk = _mm512_set1_ps(w[k]);
                    const float *p = base + plane[k] + (ptrdiff_t)(q0 + shift[k]);
                    a0 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[k], p), a0);
                    if (vs > 1) a1 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[mv + k], p + 16), a1);
                    if (vs > 2) a2 = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(m[2 * mv + k], p + 32), a2);
                }
            _mm512_mask_storeu_ps(y + q0, (__mmask16)(P - q0 >= 16 ? 0xffff : (1u << (P - q0)) - 1), a0);
            if (vs > 1) _mm512_mask_storeu_ps(y + q0 + 16, (__mmask16)(P - q0 >= 32 ? 0xffff : (1u << (P - q0 - 16)) - 1), a1);
            if (vs > 2) _mm512_mask_storeu_ps(y + q0 + 32, (__mmask16)(P - q0 >= 48 ? 0xffff : (1u << (P - q0 - 32)) - 1), a2);
            if (vs > 3) _mm512_mask_storeu_ps(y + q0 + 48, (__mmask16)(P - q0 >= 64 ? 0xffff : (1u << (P - q0 - 48)) - 1), a3);
        }
    }
}
/* A 16 x 16 block transposed in registers: unpacks of floats, then of
   pairs, then two rounds of 128-bit lane shuffles. A copy: the same bits. */
__attribute__((target("avx512f")))
static void dl__transpose16_avx512(float *dst, size_t ld, const float *src, size_t lds, int rows, int cols, int lanes) {
    __m512 r[16], t[16];
    __mmask16 mc = (__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1), ml = (__mmask16)(lanes >= 16 ? 0xffff : (1u << lanes) - 1);
    const __mmask16 all = 0xffff;       /* the zero-masking forms: g++ 12 warns on the plain ones' undefined source */
    const __mmask8 all8 = 0xff;
    int i, j;
    for (i = 0; i < 16; i++) r[i] = i < rows ? _mm512_maskz_loadu_ps(mc, src + (size_t)i * lds) : _mm512_setzero_ps();
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
        t[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4)         /* r[i + j], 128-bit lane L: column 4 L + j of rows i..i+3 */
        for (j = 0; j < 2; j++) {
            r[i + 2 * j] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all8, _mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
            r[i + 2 * j + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all8, _mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
        }
    for (j = 0; j < 4; j++) {           /* column 4 L + j: lane L of r[j], r[4 + j], r[8 + j], r[12 + j] */
        __m512 x0 = _mm512_maskz_shuffle_f32x4(all, r[j], r[4 + j], 0x88), x1 = _mm512_maskz_shuffle_f32x4(all, r[j], r[4 + j], 0xdd);
        __m512 y0 = _mm512_maskz_shuffle_f32x4(all, r[8 + j], r[12 + j], 0x88), y1 = _mm512_maskz_shuffle_f32x4(all, r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_maskz_shuffle_f32x4(all, x0, y0, 0x88); t[8 + j] = _mm512_maskz_shuffle_f32x4(all, x0, y0, 0xdd);
        t[4 + j] = _mm512_maskz_shuffle_f32x4(all, x1, y1, 0x88); t[12 + j] = _mm512_maskz_shuffle_f32x4(all, x1, y1, 0xdd);
    }
    for (i = 0; i < cols; i++) _mm512_mask_storeu_ps(dst + (size_t)i * ld, ml, t[i]);
}
static const dl__simd dl__simd_avx512 = { "avx512", 8, 32, dl__ukernel_avx512, dl__pairs_max_avx512, dl__rows_max_avx512,
                                         &dl__rowk_avx512, 1, dl__pack_same_avx512, dl__depthwise_avx512, dl__axpy_avx512,
                                         dl__im2col_s2_avx512, dl__transpose16_avx512, dl__ukernel_avx512_off, dl__cols_avx512,
                                         dl__depthwise_dw_avx512, dl__depthwise_dx_avx512 };
#endif

#ifdef DL__NEON
/* NEON, 8 x 8: 16 accumulators. */
DL__INLINE void dl__ukernel_neon_body(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc,
                                      int load, const float *bias) {
    float32x4_t acc[8][2];
    int i, k;
    for (i = 0; i < 8; i++) acc[i][0] = acc[i][1] = vdupq_n_f32(bias ? bias[i] : 0.0f);
    for (k = 0; k < kc; k++, a += 8) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * 8;
        float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4);
        for (i = 0; i < 8; i++) {
            acc[i][0] = vfmaq_n_f32(acc[i][0], b0, a[i]);
            acc[i][1] = vfmaq_n_f32(acc[i][1], b1, a[i]);
        }
    }
    for (i = 0; i < 8; i++) {
        float *ci = c + i * ldc;
        if (load) { acc[i][0] = vaddq_f32(vld1q_f32(ci), acc[i][0]); acc[i][1] = vaddq_f32(vld1q_f32(ci + 4), acc[i][1]); }
        vst1q_f32(ci, acc[i][0]);
        vst1q_f32(ci + 4, acc[i][1]);
    }
}
static void dl__ukernel_neon(int kc, const float *a, const float *b, float *c, size_t ldc, int load, const float *bias,
                             const dl__kepi *epi) {
    (void)epi;
    dl__ukernel_neon_body(kc, a, b, NULL, c, ldc, load, bias);
}
static void dl__ukernel_neon_off(int kc, const float *a, const float *b, const int32_t *koff, float *c, size_t ldc, int load,
                                 const float *bias, const dl__kepi *epi) {
    (void)epi;
    dl__ukernel_neon_body(kc, a, b, koff, c, ldc, load, bias);
}
static void dl__axpy_neon(float *y, const float *x, int n, float a) {
    int s = 0;
    for (; s + 4 <= n; s += 4) vst1q_f32(y + s, vfmaq_n_f32(vld1q_f32(y + s), vld1q_f32(x + s), a));
    if (s < n) {                        /* the tail through a padded vector: fused like the rest */
        float ty[4] = { 0 }, tx[4] = { 0 };
        memcpy(ty, y + s, (size_t)(n - s) * sizeof(float));
        memcpy(tx, x + s, (size_t)(n - s) * sizeof(float));
        vst1q_f32(ty, vfmaq_n_f32(vld1q_f32(ty), vld1q_f32(tx), a));
        memcpy(y + s, ty, (size_t)(n - s) * sizeof(float));
    }
}
static const dl__simd dl__simd_neon = { "neon", 8, 8, dl__ukernel_neon, dl__pairs_max_c, dl__rows_max_c, &dl__rowk_base,
                                       0, NULL, NULL, dl__axpy_neon, NULL, NULL, dl__ukernel_neon_off, NULL, NULL, NULL };
#endif

/* The fastest kernel this CPU runs (checked at run time, so one binary fits all). */
static const dl__simd *dl__simd_detect(void) {
#if defined(DL__X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return &dl__simd_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &dl__simd_avx2;
#elif defined(DL__NEON)
    return &dl__simd_neon;
#endif
    return &dl__simd_scalar;
}

/* ---- int8 kernels: the steps dl_quantize makes (run by >>emit) ----
   u8 activations times s8 weights, summed exactly in int32, so every
   kernel here and any split of the work give the same bits. Both come in
   words of 4 bytes (4 consecutive k): a weight row is K4 words, and B holds
   for each k4 one word per column at b + koff[k4] + 4 j; the offsets let a
   convolution read its padded input in place, one offset per tap. Only
   the >>emit zone calls them, so DL_NO_EMIT leaves them out too (unused
   static functions would warn). */
#ifndef DL_NO_EMIT
/* No product here may be fused with a sum into an FMA, or the kernels of
   an ISA with FMA would round unlike the others: statements apart keep
   clang (-ffp-contract=on) from fusing; gcc fuses across statements
   wherever it may (-ffp-contract=fast: GNU C and C++ modes), so the
   pragma turns that off for these functions. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
#define DL__Q8_NB 64            /* columns of one tile */
#define DL__Q8_SLACK 16         /* int32 sums readable past the last (dl__q8_row_out) */
/* The output stage's numbers, per channel c: y = act((acc - z wsum[c]) scale[c] + bias[c]),
   act's slope slope[c] (prelu) or alpha (leaky relu). */
typedef struct dl__q8_epi { const float *scale, *bias, *wsum, *slope; int32_t z; int act; float alpha; } dl__q8_epi;
typedef struct dl__q8k {
    const char *name;
    /* c[i][j] = sum over k4 < K4, t < 4 of w[i][4 k4 + t] b[koff[k4] + 4 j + t]: 4 rows, 64 columns */
    void (*tile)(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c);
    /* c[i] = sum over k < 4 K4 of w[i][k] u[k]: 4 rows, one column (a few samples of a dense layer) */
    void (*dot)(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c);
    void (*quantize)(uint8_t *u, const float *x, size_t count, float inv, float z);     /* dl__q8_quantize */
    void (*words)(uint8_t *d, const float *const *x, int count, float inv, float z);    /* dl__q8_words */
    /* rows i < m (channels ch + i): n sums at acc + i as to y + i rs, cs apart (dl__q8_row_out) */
    void (*rows_out)(float *y, size_t rs, size_t cs, const int32_t *acc, size_t as, int m, int n, const dl__q8_epi *e, int ch);
} dl__q8k;

static void dl__q8_tile_c(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) {
    int i, j, k, t;
    for (i = 0; i < 4 * DL__Q8_NB; i++) c[i] = 0;
    for (i = 0; i < 4; i++)
        for (k = 0; k < K4; k++)
            for (t = 0; t < 4; t++) {
                const uint8_t *bk = b + koff[k] + t;
                int32_t wv = w[i][4 * k + t], *ci = c + i * DL__Q8_NB;
                for (j = 0; j < DL__Q8_NB; j++) ci[j] += wv * (int32_t)bk[4 * j];
            }
}
static void dl__q8_dot_c(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) {
    int i, k;
    for (i = 0; i < 4; i++)
        for (c[i] = 0, k = 0; k < 4 * K4; k++) c[i] += (int32_t)w[i][k] * (int32_t)u[k];
}
#if defined(DL__X86)
/* AVX-512 VNNI: vpdpbusd adds 4 u8 x s8 products into each int32 lane. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void dl__q8_tile_vnni(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00,
            c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00, b0, b1, b2, b3, a;
    int k;
    int32_t wv;
#define DL__ROW(i) memcpy(&wv, w[i] + 4 * k, 4); a = _mm512_set1_epi32(wv); \
    c##i##0 = _mm512_dpbusd_epi32(c##i##0, b0, a); c##i##1 = _mm512_dpbusd_epi32(c##i##1, b1, a); \
    c##i##2 = _mm512_dpbusd_epi32(c##i##2, b2, a); c##i##3 = _mm512_dpbusd_epi32(c##i##3, b3, a);
    for (k = 0; k < K4; k++) {
        const uint8_t *bk = b + koff[k];
        b0 = _mm512_loadu_si512((const void *)bk); b1 = _mm512_loadu_si512((const void *)(bk + 64));
        b2 = _mm512_loadu_si512((const void *)(bk + 128)); b3 = _mm512_loadu_si512((const void *)(bk + 192));
        DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3)
    }
#undef DL__ROW
#define DL__ROW(i) _mm512_storeu_si512((void *)(c + i * 64), c##i##0); _mm512_storeu_si512((void *)(c + i * 64 + 16), c##i##1); \
    _mm512_storeu_si512((void *)(c + i * 64 + 32), c##i##2); _mm512_storeu_si512((void *)(c + i * 64 + 48), c##i##3);
    DL__ROW(0) DL__ROW(1) DL__ROW(2) DL__ROW(3)
#undef DL__ROW
}
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void dl__q8_dot_vnni(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, x;
    int k;
    for (k = 0; k < K4; k += 16) {          /* masked loads past K4: nothing read, zeros summed */
        __mmask16 m = (__mmask16)(K4 - k >= 16 ? 0xFFFFu : (1u << (K4 - k)) - 1);
        x = _mm512_maskz_loadu_epi32(m, u + 4 * (size_t)k);
        a0 = _mm512_dpbusd_epi32(a0, x, _mm512_maskz_loadu_epi32(m, w[0] + 4 * (size_t)k));
        a1 = _mm512_dpbusd_epi32(a1, x, _mm512_maskz_loadu_epi32(m, w[1] + 4 * (size_t)k));
        a2 = _mm512_dpbusd_epi32(a2, x, _mm512_maskz_loadu_epi32(m, w[2] + 4 * (size_t)k));
        a3 = _mm512_dpbusd_epi32(a3, x, _mm512_maskz_loadu_epi32(m, w[3] + 4 * (size_t)k));
    }
    {   /* the lanes added in C: g++ 12 warns inside _mm512_reduce_add_epi32 (its _mm256_undefined_si256) */
        int32_t l[4][16];
        int i, t;
        _mm512_storeu_si512((void *)l[0], a0); _mm512_storeu_si512((void *)l[1], a1);
        _mm512_storeu_si512((void *)l[2], a2); _mm512_storeu_si512((void *)l[3], a3);
        for (i = 0; i < 4; i++) for (c[i] = 0, t = 0; t < 16; t++) c[i] += l[i][t];
    }
}
/* AVX2: u8 and s8 widened to int16, vpmaddwd pairs them into int32 (exact,
   unlike vpmaddubsw, which saturates), vphaddd adds the pairs; the lanes
   come out as columns 0 1 4 5 2 3 6 7 and are put back in order. */
__attribute__((target("avx2")))
static void dl__q8_tile_avx2(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) {
    const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    int i, j, k;
    for (i = 0; i < 4; i++)
        for (j = 0; j < DL__Q8_NB; j += 8) {
            __m256i acc = _mm256_setzero_si256();
            for (k = 0; k < K4; k++) {
                const int8_t *q = w[i] + 4 * k;
                uint64_t pack = (uint64_t)(uint16_t)q[0] | (uint64_t)(uint16_t)q[1] << 16 | (uint64_t)(uint16_t)q[2] << 32 |
                                (uint64_t)(uint16_t)q[3] << 48;
                __m256i wv = _mm256_set1_epi64x((long long)pack);
                __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(b + koff[k] + 4 * (size_t)j));
                __m256i m0 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(x)), wv);
                __m256i m1 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(x, 1)), wv);
                acc = _mm256_add_epi32(acc, _mm256_hadd_epi32(m0, m1));
            }
            _mm256_storeu_si256((__m256i *)(void *)(c + i * DL__Q8_NB + j), _mm256_permutevar8x32_epi32(acc, order));
        }
}
__attribute__((target("avx2")))
static void dl__q8_dot_avx2(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) {
    __m256i acc[4];
    int32_t s[8];
    int i, k = 0, t;
    for (i = 0; i < 4; i++) acc[i] = _mm256_setzero_si256();
    for (; k + 4 <= K4; k += 4) {           /* 16 bytes at a time */
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(u + 4 * (size_t)k)));
        for (i = 0; i < 4; i++)
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(
                                                  _mm_loadu_si128((const __m128i *)(const void *)(w[i] + 4 * (size_t)k)))));
    }
    for (i = 0; i < 4; i++) {
        _mm256_storeu_si256((__m256i *)(void *)s, acc[i]);
        for (c[i] = 0, t = 0; t < 8; t++) c[i] += s[t];
        for (t = 4 * k; t < 4 * K4; t++) c[i] += (int32_t)w[i][t] * (int32_t)u[t];
    }
}
#endif

/* u = clamp(floor(x / s + (z + 1/2)), 0, 255), x times the stored 1/s; NaN
   gives 0. half = z + 1/2 as a float, as in the vectors, where floats are
   evaluated wider. */
DL__INLINE int32_t dl__q8_one(float x, float inv, float half) {
    float v = x * inv;
    v = v + half;
    return v >= 1.0f ? (v < 255.0f ? (int32_t)v : 255) : 0;
}
#ifdef DL__VEC
typedef uint32_t dl__vu __attribute__((vector_size(64)));
DL__INLINE void dl__q8_vec(dl__vi *q, const float *x, const float *inv, const float *half) {   /* the same steps, 16 at a time */
    const dl__vf top = DL__SPLAT(255.0f), one = DL__SPLAT(1.0f), vinv = DL__SPLAT(*inv), vhalf = DL__SPLAT(*half);
    dl__vf v;
    memcpy(&v, x, 64);
    v = v * vinv;
    v = v + vhalf;
    v = (dl__vf)((dl__vi)v & (v >= one));                         /* below 1 and NaN: 0 */
    v = (dl__vf)(((dl__vi)v & (v < top)) | ((dl__vi)top & ~(v < top)));
    *q = __builtin_convertvector(v, dl__vi);
}
#endif
DL__INLINE void dl__q8_quantize(uint8_t *u, const float *x, size_t count, float inv, float z) {
    size_t i = 0;
    const float half = z + 0.5f;
#ifdef DL__VEC
    for (; i + 16 <= count; i += 16) {
        dl__vi q;
        int t;
        dl__q8_vec(&q, x + i, &inv, &half);
        for (t = 0; t < 16; t++) u[i + (size_t)t] = (uint8_t)q[t];
    }
#endif
    for (; i < count; i++) u[i] = (uint8_t)dl__q8_one(x[i], inv, half);
}
/* count words d[j] of 4 bytes, byte t the quantized x[t][j] (z where x[t]
   is NULL): four channels of a row, interleaved. */
DL__INLINE void dl__q8_words(uint8_t *d, const float *const *x, int count, float inv, float z) {
    const float half = z + 0.5f;
    int j = 0, t;
#if defined(DL__VEC) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const dl__vi vz = DL__SPLAT((int32_t)z);
    const dl__vu s8 = DL__SPLAT(8u);
    for (; j + 16 <= count; j += 16) {
        dl__vu w = DL__SPLAT(0u);
        dl__vi q;
        for (t = 3; t >= 0; t--) {
            if (x[t]) dl__q8_vec(&q, x[t] + j, &inv, &half); else q = vz;
            w = (w << s8) | (dl__vu)q;
        }
        memcpy(d + 4 * (size_t)j, &w, 64);
    }
#endif
    for (; j < count; j++)
        for (t = 0; t < 4; t++) d[4 * (size_t)j + (size_t)t] = (uint8_t)(x[t] ? dl__q8_one(x[t][j], inv, half) : (int32_t)z);
}
/* y[j cs] = act((acc[j] - zw) sc + sh) for j < n: the int8 output row.
   acc is readable up to 16 past n (DL__Q8_SLACK), so a tail is one vector.
   Two statements, not one expression: clang contracts a*b+c into an FMA
   wherever the target has one (its default -ffp-contract=on, inside the
   AVX2/AVX-512 clones), which would make results depend on the compiler. */
DL__INLINE void dl__q8_row_out(float *y, size_t cs, const int32_t *acc, int n, int32_t zw, float sc, float sh, int act,
                               float slope) {
    int j = 0;
    if (act == DL__ACT_RELU) slope = 0.0f;
#ifdef DL__VEC
    if (cs == 1) {
        const dl__vf vsc = DL__SPLAT(sc), vsh = DL__SPLAT(sh), vslope = DL__SPLAT(slope);
        const dl__vi vzw = DL__SPLAT(zw);
        for (; j + 16 <= n; j += 16) {
            dl__vi a;
            dl__vf v, t;
            memcpy(&a, acc + j, 64);
            v = __builtin_convertvector(a - vzw, dl__vf) * vsc;
            v = v + vsh;
            if (act != DL__ACT_NONE) { t = v * vslope; v = (dl__vf)(((dl__vi)v & (v > 0)) | ((dl__vi)t & ~(v > 0))); }
            memcpy(y + j, &v, 64);
        }
        if (j < n) {            /* the tail through a whole vector (acc has the room): the same steps */
            dl__vi a;
            dl__vf v, t;
            memcpy(&a, acc + j, 64);
            v = __builtin_convertvector(a - vzw, dl__vf) * vsc;
            v = v + vsh;
            if (act != DL__ACT_NONE) { t = v * vslope; v = (dl__vf)(((dl__vi)v & (v > 0)) | ((dl__vi)t & ~(v > 0))); }
            for (; j < n; j++) y[j] = v[j % 16];       /* out of the one vector store: no call, no stall */
            return;
        }
    }
#endif
    for (; j < n; j++) {
        float v = (float)(acc[j] - zw) * sc;
        v = v + sh;
        y[(size_t)j * cs] = act == DL__ACT_NONE || v > 0 ? v : slope * v;
    }
}
DL__INLINE void dl__q8_rows_out(float *y, size_t rs, size_t cs, const int32_t *acc, size_t as, int m, int n, const dl__q8_epi *e,
                                int ch) {
    int i;
    for (i = 0; i < m; i++)
        dl__q8_row_out(y + (size_t)i * rs, cs, acc + (size_t)i * as, n, e->z * (int32_t)e->wsum[ch + i], e->scale[ch + i],
                       e->bias[ch + i], e->act, e->act == DL__ACT_PRELU ? e->slope[ch + i] : e->alpha);
}
/* The row functions, compiled per ISA like the float row kernels (dl__rowk). */
#define DL__Q8_ROWS(isa, target) \
    target static void dl__q8_quantize_##isa(uint8_t *u, const float *x, size_t count, float inv, float z) { \
        dl__q8_quantize(u, x, count, inv, z); } \
    target static void dl__q8_words_##isa(uint8_t *d, const float *const *x, int count, float inv, float z) { \
        dl__q8_words(d, x, count, inv, z); } \
    target static void dl__q8_rows_out_##isa(float *y, size_t rs, size_t cs, const int32_t *acc, size_t as, int m, int n, \
                                             const dl__q8_epi *e, int ch) { dl__q8_rows_out(y, rs, cs, acc, as, m, n, e, ch); }
DL__Q8_ROWS(base, )
static const dl__q8k dl__q8k_c = { "c", dl__q8_tile_c, dl__q8_dot_c, dl__q8_quantize_base, dl__q8_words_base, dl__q8_rows_out_base };
#ifdef DL__X86
DL__Q8_ROWS(avx2, __attribute__((target("avx2"))))
DL__Q8_ROWS(avx512, __attribute__((target("avx512f"))))
static const dl__q8k dl__q8k_avx2 = { "avx2", dl__q8_tile_avx2, dl__q8_dot_avx2, dl__q8_quantize_avx2, dl__q8_words_avx2,
                                      dl__q8_rows_out_avx2 };
/* dl__q8_row_out's steps with masked loads and stores: a convolution's
   rows are short (28, 14, 7 pixels), and a tail costs as much as a vector. */
__attribute__((target("avx512f")))
static void dl__q8_rows_out_masked(float *y, size_t rs, size_t cs, const int32_t *acc, size_t as, int m, int n,
                                   const dl__q8_epi *e, int ch) {
    int i, j;
    if (cs != 1) { dl__q8_rows_out_avx512(y, rs, cs, acc, as, m, n, e, ch); return; }
    for (i = 0; i < m; i++, y += rs, acc += as) {
        const __m512 vsc = _mm512_set1_ps(e->scale[ch + i]), vsh = _mm512_set1_ps(e->bias[ch + i]);
        const __m512 vslope = _mm512_set1_ps(e->act == DL__ACT_RELU ? 0.0f : e->act == DL__ACT_PRELU ? e->slope[ch + i] : e->alpha);
        const __m512i vzw = _mm512_set1_epi32(e->z * (int32_t)e->wsum[ch + i]);
        for (j = 0; j < n; j += 16) {
            __mmask16 k = (__mmask16)(n - j >= 16 ? 0xFFFFu : (1u << (n - j)) - 1);
            /* the maskz form: g++ 12 warns inside the plain one (its _mm512_undefined_ps) */
            __m512 v = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(k, _mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, acc + j), vzw)), vsc);
            v = _mm512_add_ps(v, vsh);
            if (e->act != DL__ACT_NONE)
                v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_mul_ps(v, vslope), v);
            _mm512_mask_storeu_ps(y + j, k, v);
        }
    }
}
static const dl__q8k dl__q8k_vnni = { "avx512vnni", dl__q8_tile_vnni, dl__q8_dot_vnni, dl__q8_quantize_avx512,
                                      dl__q8_words_avx512, dl__q8_rows_out_masked };
/* AVX-VNNI: vpdpbusd on 256 bits in its VEX form (Intel since Alder Lake).
   The kernels are written once (DL__Q8_VNNI256) and also compiled for
   AVX-512 VNNI + VL, whose EVEX form of the same 256-bit instruction
   computes the same: that instance is what tests/test_embed.c runs
   against the C kernels on a CPU without AVX-VNNI. 4 rows by 16 columns
   at a time: 8 accumulators, within AVX2's 16 registers. */
#define DL__Q8_V256(i) { int32_t wv; memcpy(&wv, w[i] + 4 * k, 4); a = _mm256_set1_epi32(wv); \
    a##i##0 = DL__DPBUSD(a##i##0, b0, a); a##i##1 = DL__DPBUSD(a##i##1, b1, a); }
#define DL__Q8_S256(i) _mm256_storeu_si256((__m256i *)(void *)(c + i * DL__Q8_NB + j), a##i##0); \
    _mm256_storeu_si256((__m256i *)(void *)(c + i * DL__Q8_NB + j + 8), a##i##1);
#define DL__Q8_VNNI256(isa, target) \
    target static void dl__q8_tile_##isa(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) { \
        int j, k; \
        for (j = 0; j < DL__Q8_NB; j += 16) {  /* the rows spelled out: gcc kept an array of them in memory */ \
            __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00; \
            for (k = 0; k < K4; k++) { \
                const uint8_t *bk = b + koff[k] + 4 * (size_t)j; \
                __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)bk), \
                        b1 = _mm256_loadu_si256((const __m256i *)(const void *)(bk + 32)), a; \
                DL__Q8_V256(0) DL__Q8_V256(1) DL__Q8_V256(2) DL__Q8_V256(3) \
            } \
            DL__Q8_S256(0) DL__Q8_S256(1) DL__Q8_S256(2) DL__Q8_S256(3) \
        } \
    } \
    target static void dl__q8_dot_##isa(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) { \
        __m256i acc[4]; \
        int32_t l[8]; \
        int i, k = 0, t; \
        for (i = 0; i < 4; i++) acc[i] = _mm256_setzero_si256(); \
        for (; k + 8 <= K4; k += 8) {           /* 8 words, 32 bytes, at a time */ \
            __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(u + 4 * (size_t)k)); \
            for (i = 0; i < 4; i++) \
                acc[i] = DL__DPBUSD(acc[i], x, _mm256_loadu_si256((const __m256i *)(const void *)(w[i] + 4 * (size_t)k))); \
        } \
        for (i = 0; i < 4; i++) { \
            _mm256_storeu_si256((__m256i *)(void *)l, acc[i]); \
            for (c[i] = 0, t = 0; t < 8; t++) c[i] += l[t]; \
            for (t = 4 * k; t < 4 * K4; t++) c[i] += (int32_t)w[i][t] * (int32_t)u[t]; \
        } \
    } \
    static const dl__q8k dl__q8k_##isa = { #isa, dl__q8_tile_##isa, dl__q8_dot_##isa, dl__q8_quantize_avx2, dl__q8_words_avx2, \
                                           dl__q8_rows_out_avx2 };
#define DL__DPBUSD _mm256_dpbusd_epi32
DL__Q8_VNNI256(avx512vnni256, __attribute__((target("avx2,avx512vnni,avx512vl"))))
#undef DL__DPBUSD
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)   /* that know avxvnni */
#define DL__AVXVNNI 1
#define DL__DPBUSD _mm256_dpbusd_avx_epi32
DL__Q8_VNNI256(avxvnni, __attribute__((target("avx2,avxvnni"))))
#undef DL__DPBUSD
/* gcc's __builtin_cpu_supports knows "avxvnni", clang's (14) does not:
   there, CPUID leaf 7, subleaf 1, EAX bit 4 (the AVX2 check before it
   also says the OS saves the ymm registers). */
static int dl__has_avxvnni(void) {
#ifdef __clang__
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 1, a, b, c, d);
    (void)b; (void)c; (void)d;
    return (a >> 4) & 1;
#else
    return __builtin_cpu_supports("avxvnni");
#endif
}
#endif
#undef DL__Q8_VNNI256
#undef DL__Q8_V256
#undef DL__Q8_S256
#endif
#ifdef DL__NEON
/* NEON (any aarch64): u8 and s8 widened to int16, whose products fit
   (255 x 127 < 2^15); vpadal adds pairs into int32, vpadd the two pairs
   of a column. Eight columns (two vectors of B) at a time. */
static void dl__q8_tile_neon(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) {
    int i, j, k, t;
    for (j = 0; j < DL__Q8_NB; j += 8) {
        int32x4_t acc[4][4];
        for (i = 0; i < 4; i++) for (t = 0; t < 4; t++) acc[i][t] = vdupq_n_s32(0);
        for (k = 0; k < K4; k++) {
            const uint8_t *bk = b + koff[k] + 4 * (size_t)j;
            uint8x16_t b0 = vld1q_u8(bk), b1 = vld1q_u8(bk + 16);
            int16x8_t x[4];
            x[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b0))); x[1] = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(b0)));
            x[2] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b1))); x[3] = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(b1)));
            for (i = 0; i < 4; i++) {
                int32_t wv;
                int16x8_t wp;
                memcpy(&wv, w[i] + 4 * k, 4);
                wp = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(wv)));       /* w0 w1 w2 w3 w0 w1 w2 w3 */
                for (t = 0; t < 4; t++) acc[i][t] = vpadalq_s16(acc[i][t], vmulq_s16(x[t], wp));
            }
        }
        for (i = 0; i < 4; i++) {
            vst1q_s32(c + i * DL__Q8_NB + j, vpaddq_s32(acc[i][0], acc[i][1]));
            vst1q_s32(c + i * DL__Q8_NB + j + 4, vpaddq_s32(acc[i][2], acc[i][3]));
        }
    }
}
static void dl__q8_dot_neon(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) {
    int32x4_t acc[4];
    int i, k = 0;
    for (i = 0; i < 4; i++) acc[i] = vdupq_n_s32(0);
    for (; k + 2 <= K4; k += 2) {               /* two words, 8 bytes, at a time */
        int16x8_t x = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(u + 4 * (size_t)k)));
        for (i = 0; i < 4; i++) acc[i] = vpadalq_s16(acc[i], vmulq_s16(x, vmovl_s8(vld1_s8(w[i] + 4 * (size_t)k))));
    }
    for (i = 0; i < 4; i++) {
        int t;
        c[i] = vaddvq_s32(acc[i]);
        for (t = 4 * k; t < 4 * K4; t++) c[i] += (int32_t)w[i][t] * (int32_t)u[t];
    }
}
static const dl__q8k dl__q8k_neon = { "neon", dl__q8_tile_neon, dl__q8_dot_neon, dl__q8_quantize_base, dl__q8_words_base,
                                      dl__q8_rows_out_base };
/* NEON dot product (armv8.2-a+dotprod, checked at run time): sdot adds 4
   s8 x s8 products into each int32 lane. The u8 input is read as s8 by
   flipping its top bit, u - 128, and the sums put back exactly with
   128 times the row's weight sum. GCC's arm_neon.h offers vdotq_s32 to a
   function compiled for dotprod; clang's (14) only to a build for it
   (-march=armv8.2-a+dotprod), and its target attribute does not take
   the architecture: clang has this row in such builds only. */
#if defined(__linux__) && (defined(__ARM_FEATURE_DOTPROD) || (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8))
#define DL__SDOT 1
#include <sys/auxv.h>
#ifdef __ARM_FEATURE_DOTPROD
#define DL__SDOT_TARGET
#else
#define DL__SDOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
DL__SDOT_TARGET static int32_t dl__q8_wsum_sdot(const int8_t *w, int n) {    /* sum of n weights */
    int32x4_t acc = vdupq_n_s32(0);
    int k = 0;
    int32_t s;
    for (; k + 16 <= n; k += 16) acc = vdotq_s32(acc, vld1q_s8(w + k), vdupq_n_s8(1));
    for (s = vaddvq_s32(acc); k < n; k++) s += w[k];
    return s;
}
DL__SDOT_TARGET static void dl__q8_tile_sdot(int K4, const int8_t *const *w, const uint8_t *b, const size_t *koff, int32_t *c) {
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int i, j, k, t;
    int32_t fix[4];
    for (i = 0; i < 4; i++) fix[i] = 128 * dl__q8_wsum_sdot(w[i], 4 * K4);
    for (j = 0; j < DL__Q8_NB; j += 16) {       /* 4 rows x 16 columns: 16 accumulators */
        int32x4_t acc[4][4];
        for (i = 0; i < 4; i++) for (t = 0; t < 4; t++) acc[i][t] = vdupq_n_s32(0);
        for (k = 0; k < K4; k++) {
            const uint8_t *bk = b + koff[k] + 4 * (size_t)j;
            int8x16_t x[4];
            for (t = 0; t < 4; t++) x[t] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(bk + 16 * t), flip));
            for (i = 0; i < 4; i++) {
                int32_t wv;
                int8x16_t a;
                memcpy(&wv, w[i] + 4 * k, 4);
                a = vreinterpretq_s8_s32(vdupq_n_s32(wv));
                for (t = 0; t < 4; t++) acc[i][t] = vdotq_s32(acc[i][t], x[t], a);
            }
        }
        for (i = 0; i < 4; i++)
            for (t = 0; t < 4; t++) vst1q_s32(c + i * DL__Q8_NB + j + 4 * t, vaddq_s32(acc[i][t], vdupq_n_s32(fix[i])));
    }
}
DL__SDOT_TARGET static void dl__q8_dot_sdot(int K4, const int8_t *const *w, const uint8_t *u, int32_t *c) {
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int32x4_t acc[4];
    int i, k = 0, n = 4 * K4;
    for (i = 0; i < 4; i++) acc[i] = vdupq_n_s32(0);
    for (; k + 16 <= n; k += 16) {
        int8x16_t x = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(u + k), flip));
        for (i = 0; i < 4; i++) acc[i] = vdotq_s32(acc[i], x, vld1q_s8(w[i] + k));
    }
    for (i = 0; i < 4; i++) {
        int t;
        c[i] = vaddvq_s32(acc[i]) + 128 * dl__q8_wsum_sdot(w[i], k);
        for (t = k; t < n; t++) c[i] += (int32_t)w[i][t] * (int32_t)u[t];
    }
}
static const dl__q8k dl__q8k_sdot = { "neon-dotprod", dl__q8_tile_sdot, dl__q8_dot_sdot, dl__q8_quantize_base, dl__q8_words_base,
                                      dl__q8_rows_out_base };
#endif
#endif
#undef DL__Q8_ROWS
/* The int8 kernels this CPU runs (at most DL__Q8K_ROWS), fastest first:
   dl_frozen_run uses the first, tests/test_embed.c checks them all. */
#define DL__Q8K_ROWS 6
static int dl__q8k_rows(const dl__q8k **k) {
    int n = 0;
#if defined(DL__X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) k[n++] = &dl__q8k_vnni;
#ifdef DL__AVXVNNI
    if (__builtin_cpu_supports("avx2") && dl__has_avxvnni()) k[n++] = &dl__q8k_avxvnni;
#endif
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl")) k[n++] = &dl__q8k_avx512vnni256;
    if (__builtin_cpu_supports("avx2")) k[n++] = &dl__q8k_avx2;
#elif defined(DL__NEON)
#ifdef DL__SDOT
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) k[n++] = &dl__q8k_sdot;
#endif
    k[n++] = &dl__q8k_neon;
#endif
    k[n++] = &dl__q8k_c;
    return n;
}
static const dl__q8k *dl__q8k_detect(void) {
    const dl__q8k *k[DL__Q8K_ROWS];
    dl__q8k_rows(k);
    return k[0];
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#endif /* DL_NO_EMIT */

/* ---- the thread pool ---- */

typedef void (*dl__task_fn)(void *arg, int task, int thread);

#ifdef DL__THREADS
struct dl__worker { struct dl__pool *pool; int id; };
struct dl__pool {
    int n;                          /* threads, the caller included */
    dl__thread *tid;
    dl__mutex mu;
    dl__cond cv;                    /* a new job (gen) */
    dl__cond done;                  /* the last worker left a closed job */
    dl__task_fn fn;
    void *arg;
    int n_tasks;
    long next;                      /* the next task to take (atomic) */
    long gen;                       /* bumped per job; workers wait for a change */
    long joined;                    /* workers inside the current job, plus DL__CLOSED once the caller is done */
    long stop;
    struct dl__worker *workers;
#if !defined(__GNUC__) && !defined(__clang__) && !defined(_MSC_VER)
    dl__mutex amu;                  /* stands in for atomic instructions */
#endif
};
/* Atomic longs in the pool: GNU builtins (gcc, clang, mingw), Interlocked
   calls on MSVC; any other compiler (tcc) takes a lock for each access. */
#if defined(__GNUC__) || defined(__clang__)
static long dl__atomic_add(struct dl__pool *p, long *x, long v) { (void)p; return __atomic_fetch_add(x, v, __ATOMIC_ACQ_REL); }
static long dl__atomic_load(struct dl__pool *p, long *x) { (void)p; return __atomic_load_n(x, __ATOMIC_ACQUIRE); }
static void dl__atomic_store(struct dl__pool *p, long *x, long v) { (void)p; __atomic_store_n(x, v, __ATOMIC_RELEASE); }
static int dl__atomic_cas(struct dl__pool *p, long *x, long old, long v) {
    (void)p;
    return __atomic_compare_exchange_n(x, &old, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#elif defined(_MSC_VER)
static long dl__atomic_add(struct dl__pool *p, long *x, long v) { (void)p; return InterlockedExchangeAdd(x, v); }
static long dl__atomic_load(struct dl__pool *p, long *x) { (void)p; return InterlockedCompareExchange(x, 0, 0); }
static void dl__atomic_store(struct dl__pool *p, long *x, long v) { (void)p; InterlockedExchange(x, v); }
static int dl__atomic_cas(struct dl__pool *p, long *x, long old, long v) { (void)p; return InterlockedCompareExchange(x, v, old) == old; }
#else
static long dl__atomic_add(struct dl__pool *p, long *x, long v) {
    long old;
    dl__mutex_lock(&p->amu);
    old = *x;
    *x += v;
    dl__mutex_unlock(&p->amu);
    return old;
}
static long dl__atomic_load(struct dl__pool *p, long *x) { return dl__atomic_add(p, x, 0); }
static void dl__atomic_store(struct dl__pool *p, long *x, long v) { dl__mutex_lock(&p->amu); *x = v; dl__mutex_unlock(&p->amu); }
static int dl__atomic_cas(struct dl__pool *p, long *x, long old, long v) {
    int ok;
    dl__mutex_lock(&p->amu);
    if ((ok = *x == old)) *x = v;
    dl__mutex_unlock(&p->amu);
    return ok;
}
#endif
static void dl__pause(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}
static void dl__pool_work(struct dl__pool *p, int id) {
    long t;
    while ((t = dl__atomic_add(p, &p->next, 1)) < p->n_tasks) p->fn(p->arg, (int)t, id);
}
/* A job never waits for a worker that has not started on it: a worker
   joins (joined + 1) only while the job is open, and the caller closes it
   (DL__CLOSED) when no task is left, then waits only for the joined. So a
   worker descheduled on a busy machine, or still waking up, costs the
   caller nothing: it runs the tasks itself. Only the claim of a task in
   dl__pool_work and the task ids decide what runs where, never timing. */
#define DL__CLOSED (1L << 20)
static int dl__pool_join(struct dl__pool *p) {
    long j;
    while (!((j = dl__atomic_load(p, &p->joined)) & DL__CLOSED))
        if (dl__atomic_cas(p, &p->joined, j, j + 1)) return 1;
    return 0;
}
/* Waits spin only briefly, then sleep on a condition variable: a spinning
   thread on a busy machine takes the core from the thread it waits for (or
   from the caller, when the two share a core), and a yielding loop is
   spinning too. A pause is 10-60 ns, so a spin is a few tens of us at
   most: about the cost of waking a sleeping thread. Which thread runs a
   task never changes its result, so none of this touches the bits. */
#ifndef DL__WORKER_SPINS
#define DL__WORKER_SPINS 600        /* a worker between jobs: a training step's regions come back to back */
#endif
#ifndef DL__CALLER_SPINS
#define DL__CALLER_SPINS 300        /* the caller, for the joined to finish their last tasks */
#endif
static void dl__pool_main(void *arg) {
    struct dl__worker *w = (struct dl__worker *)arg;
    struct dl__pool *p = w->pool;
    long seen = 0;
    for (;;) {
        long g;
        int spins = 0;
        while ((g = dl__atomic_load(p, &p->gen)) == seen && spins++ < DL__WORKER_SPINS) dl__pause();
        if (g == seen) {
            dl__mutex_lock(&p->mu);
            while ((g = dl__atomic_load(p, &p->gen)) == seen) dl__cond_wait(&p->cv, &p->mu);
            dl__mutex_unlock(&p->mu);
        }
        seen = g;
        if (dl__atomic_load(p, &p->stop)) return;
        if (!dl__pool_join(p)) continue;
        dl__pool_work(p, w->id);
        if (dl__atomic_add(p, &p->joined, -1) == DL__CLOSED + 1) {   /* the last out of a closed job */
            dl__mutex_lock(&p->mu);
            dl__cond_broadcast(&p->done);
            dl__mutex_unlock(&p->mu);
        }
    }
}
static void dl__pool_free(struct dl__pool *p) {
    int i;
    if (!p) return;
    dl__mutex_lock(&p->mu);
    dl__atomic_store(p, &p->stop, 1);
    dl__atomic_add(p, &p->gen, 1);
    dl__cond_broadcast(&p->cv);
    dl__mutex_unlock(&p->mu);
    for (i = 1; i < p->n; i++) dl__thread_join(p->tid[i]);
    dl__cond_destroy(&p->done);
    dl__cond_destroy(&p->cv);
    dl__mutex_destroy(&p->mu);
#if !defined(__GNUC__) && !defined(__clang__) && !defined(_MSC_VER)
    dl__mutex_destroy(&p->amu);
#endif
    DL_FREE(p->tid);
    DL_FREE(p->workers);
    DL_FREE(p);
}
static struct dl__pool *dl__pool_new(int n) {
    struct dl__pool *p = (struct dl__pool *)dl__calloc(1, sizeof(struct dl__pool));
    int i;
    if (!p) return NULL;
    p->tid = (dl__thread *)dl__calloc((size_t)n, sizeof(dl__thread));
    p->workers = (struct dl__worker *)dl__calloc((size_t)n, sizeof(struct dl__worker));
    if (!p->tid || !p->workers || dl__mutex_init(&p->mu)) { DL_FREE(p->tid); DL_FREE(p->workers); DL_FREE(p); return NULL; }
    if (dl__cond_init(&p->cv)) { dl__mutex_destroy(&p->mu); DL_FREE(p->tid); DL_FREE(p->workers); DL_FREE(p); return NULL; }
    if (dl__cond_init(&p->done)) {
        dl__cond_destroy(&p->cv); dl__mutex_destroy(&p->mu); DL_FREE(p->tid); DL_FREE(p->workers); DL_FREE(p);
        return NULL;
    }
#if !defined(__GNUC__) && !defined(__clang__) && !defined(_MSC_VER)
    if (dl__mutex_init(&p->amu)) {
        dl__cond_destroy(&p->done); dl__cond_destroy(&p->cv); dl__mutex_destroy(&p->mu); DL_FREE(p->tid); DL_FREE(p->workers); DL_FREE(p);
        return NULL;
    }
#endif
    p->joined = DL__CLOSED;         /* no job yet */
    p->n = 1;
    for (i = 1; i < n; i++) {
        p->workers[i].pool = p;
        p->workers[i].id = i;
        if (dl__thread_start(&p->tid[i], &p->workers[i])) break;
        p->n++;
    }
    if (p->n < n) { dl__pool_free(p); return NULL; }
    return p;
}
static void dl__pool_run(struct dl__pool *p, int n_tasks, dl__task_fn fn, void *arg) {
    int spins;
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    dl__atomic_store(p, &p->next, 0);
    dl__atomic_store(p, &p->joined, 0);            /* open: the fields above are what joiners see */
    dl__mutex_lock(&p->mu);
    dl__atomic_add(p, &p->gen, 1);
    dl__cond_broadcast(&p->cv);
    dl__mutex_unlock(&p->mu);
    dl__pool_work(p, 0);
    dl__atomic_add(p, &p->joined, DL__CLOSED);     /* no task left: nobody joins any more */
    /* the joined are running their last task: spin briefly, then sleep, so that on a busy
       machine a worker descheduled mid-task can move to this core */
    for (spins = 0; dl__atomic_load(p, &p->joined) != DL__CLOSED && spins < DL__CALLER_SPINS; spins++) dl__pause();
    if (dl__atomic_load(p, &p->joined) != DL__CLOSED) {
        dl__mutex_lock(&p->mu);
        while (dl__atomic_load(p, &p->joined) != DL__CLOSED) dl__cond_wait(&p->done, &p->mu);
        dl__mutex_unlock(&p->mu);
    }
}
static int dl__default_threads(void) {
    const char *s = getenv("DL_THREADS");
    long n = s ? strtol(s, NULL, 10) : dl__cpu_count();
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}
#else
struct dl__pool { int unused; };
static void dl__pool_free(struct dl__pool *p) { (void)p; }
static int dl__default_threads(void) { return 1; }
#endif


static void dl__parallel(const dl__cpu *cpu, int n_tasks, dl__task_fn fn, void *arg);
/* Splitting pays only when an op's work is well above the cost of waking
   another thread and of moving the op's operands to its core: below
   net->par_min_work (DL__PAR_MIN_WORK FLOPs; a memory-bound op counts
   DL__PER_FLOAT per float it touches) all tasks run on the calling thread.
   Measured on 2 cores: ops of 5-7 MFLOP (a batch-1 convolution of the
   reference CNN or the residual net) gained nothing from a second thread on
   an idle machine and lost 10-15% on a busy one; 26 MFLOP gained 1.2x. The
   decision comes from the shapes and the tasks are the same either way, so
   results do not depend on it. */
static void dl__parallel_if(const dl__cpu *cpu, double work, int n_tasks, dl__task_fn fn, void *arg) {
    int t;
    if (cpu->threads > 1 && work >= cpu->net->par_min_work) { dl__parallel(cpu, n_tasks, fn, arg); return; }
    for (t = 0; t < n_tasks; t++) fn(arg, t, 0);
}
static float *dl__scratch(const dl__cpu *cpu, int thread) { return cpu->thread_ws + (size_t)thread * cpu->thread_floats; }
static const dl__rowk *dl__rows(const dl_exec *e) { return ((const dl__cpu *)e->cpu)->simd->row; }

/* Horizontal half of a 2x2 max pool over k pairs: m[i] = max(x[2i], x[2i+1]),
   odd[i] = 1 where the second won (only when strictly greater, or a NaN the
   first is not): the first maximum in scan order. */
static void dl__pairs_max_c(float *m, int32_t *odd, const float *x, int k) {
    int i;
    for (i = 0; i < k; i++) {
        float e = x[2 * i], o = x[2 * i + 1];
        int t = !(o <= e) & (e == e);
        m[i] = t ? o : e;
        odd[i] = t;
    }
}
/* Vertical half of a 2x2 max pool: y[i] = the first of a[i], b[i] in the
   same sense as dl__pairs_max_c; with arg, also the input index of the
   winner: rows a and b start at at and at + W, oa/ob say which of a pair won. */
static void dl__rows_max_c(float *y, int32_t *arg, const float *a, const float *b, const int32_t *oa,
                           const int32_t *ob, int n, int32_t at, int32_t W) {
    int i;
    for (i = 0; i < n; i++) {
        int t = !(b[i] <= a[i]) & (a[i] == a[i]);
        y[i] = t ? b[i] : a[i];
        if (arg) arg[i] = at + t * W + 2 * i + (t ? ob[i] : oa[i]);
    }
}
#ifdef DL__X86
/* Masked, so a row of any length (the reference CNN's are 14 and 7) is one or
   two vector operations instead of a scalar loop with a branch per element. */
__attribute__((target("avx512f")))
static void dl__rows_max_avx512(float *y, int32_t *arg, const float *a, const float *b, const int32_t *oa,
                                const int32_t *ob, int n, int32_t at, int32_t W) {
    const __m512i two_i = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int i;
    for (i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 u = _mm512_maskz_loadu_ps(k, a + i), v = _mm512_maskz_loadu_ps(k, b + i);
        __mmask16 t = _mm512_cmp_ps_mask(v, u, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(u, u, _CMP_EQ_OQ);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mask_blend_ps(t, u, v));
        if (arg) {
            __m512i odd = _mm512_mask_blend_epi32(t, _mm512_maskz_loadu_epi32(k, oa + i), _mm512_maskz_loadu_epi32(k, ob + i));
            __m512i base = _mm512_mask_blend_epi32(t, _mm512_set1_epi32(at + 2 * i), _mm512_set1_epi32(at + W + 2 * i));
            _mm512_mask_storeu_epi32(arg + i, k, _mm512_add_epi32(_mm512_add_epi32(base, two_i), odd));
        }
    }
}
/* Written with intrinsics: GCC scalarizes vector-extension compares of shuffles. */
__attribute__((target("avx512f")))
static void dl__pairs_max_avx512(float *m, int32_t *odd, const float *x, int k) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 a = _mm512_loadu_ps(x + 2 * i), b = _mm512_loadu_ps(x + 2 * i + 16);
        __m512 e = _mm512_permutex2var_ps(a, ie, b), o = _mm512_permutex2var_ps(a, io, b);
        __mmask16 t = _mm512_cmp_ps_mask(o, e, _CMP_NLE_UQ) & _mm512_cmp_ps_mask(e, e, _CMP_EQ_OQ);
        _mm512_storeu_ps(m + i, _mm512_mask_blend_ps(t, e, o));
        _mm512_storeu_si512((void *)(odd + i), _mm512_maskz_mov_epi32(t, _mm512_set1_epi32(1)));
    }
    dl__pairs_max_c(m + i, odd + i, x + 2 * i, k - i);
}
#endif

/* A 2x2, stride-2 max pool of one H x W plane with W even: the horizontal
   pairs of all rows in one flat pass, then the rows two by two. */
static void dl__plane_maxpool2(const dl__simd *s, float *y, int32_t *arg, const float *x, int W, int OH) {
    float hm[2048];
    int32_t odd[2048];
    int OW = W / 2, rows = 2048 / W, r0, oh;               /* row pairs per block */
    if (rows < 1) rows = 1;
    for (r0 = 0; r0 < OH; r0 += rows) {
        int nr = OH - r0 < rows ? OH - r0 : rows;
        s->pairs_max(hm, odd, x + (size_t)2 * r0 * W, nr * W);      /* nr row pairs: nr * W input pairs */
        for (oh = 0; oh < nr; oh++) {
            const float *a = hm + (size_t)2 * oh * OW, *b = a + OW;
            const int32_t *oa = odd + (size_t)2 * oh * OW, *ob = oa + OW;
            float *yo = y + (size_t)(r0 + oh) * OW;
            s->rows_max(yo, arg ? arg + (size_t)(r0 + oh) * OW : NULL, a, b, oa, ob, OW, 2 * (r0 + oh) * W, W);
        }
    }
}

static void dl__epilogue_rows(const dl__simd *s, const dl__epilogue *e, float *c, size_t ldc, int i0, int m, int n) {
    int i;
    for (i = 0; i < m; i++)
        s->row->epilogue(c + (size_t)i * ldc, n, e->scale ? e->scale[i0 + i] : 1.0f, e->shift ? e->shift[i0 + i] : 0.0f,
                         e->act, e->act == DL__ACT_PRELU ? e->slope[i0 + i] : e->alpha, e->beta);
}

/* ---- GEMM ---- */
#define DL__KC 256              /* depth of one packed block: part of the sum order */
#define DL__NC 192              /* most columns in one task's packed B panel */
#define DL__MC 128              /* rows of packed A swept per B sliver */
#define DL__BPACK ((size_t)DL__KC * DL__NC)

typedef struct dl__krow { size_t base; int dy, dx; } dl__krow;
typedef dl_conv_geom dl__conv;
/* A stride-1 convolution's B read in place, without packing (dl__conv_direct).
   Its output is computed on the padded width Wp = W + 2 pw: column q of a
   sample is (q / Wp, q % Wp), the columns ow >= OW are computed and dropped,
   and then im2col row k = (c, kh, kw) is the zero-padded input shifted by a
   constant, B[k][q] = xp[c][q + kh dh Wp + kw dw]. Where OW is a multiple
   of 32 (so of every NR) the columns are instead the outputs themselves
   (Wc = OW, nothing dropped): no tile then crosses an output row, and a
   tile's B is linear within it, which is all the kernel needs. The GEMM's
   columns are tasks of nc (a multiple of 32) per sample, tps per sample; a
   task copies the padded input rows its columns read (Hs per channel, the
   slab) into its scratch once, and the micro-kernel reads row k of a tile
   at koff[k] from the tile's first column. The sums are the packed path's,
   in the same order: the same bits. */
typedef struct dl__direct {
    int Wp, Wc, Q, nc, tps, Hs; /* Q = OH Wc columns per sample, Wc = Wp or OW */
    const int32_t *koff;        /* K entries */
} dl__direct;

/* An operand: element (i, j) is at p + off(i, Pr, rs, rbs) + off(j, Pc, cs, cbs)
   with off(i, P, s, bs) = (i / P) bs + (i % P) s. P splits an index into
   batches (the samples of an NCHW tensor); a plain matrix has P = INT_MAX.
   With conv set it is instead the im2col matrix of a convolution input:
   rows (c, kh, kw), columns (n, oh, ow), samples cbs apart. */
typedef struct dl__mat {
    const float *p;
    size_t rs, cs, rbs, cbs;
    int Pr, Pc;
    const dl__conv *conv;
    const dl__krow *krows;      /* im2col: per row, found once per call (dl__conv_krows) */
    const dl__direct *direct;   /* im2col read in place: N = n tps nc columns (see dl__direct) */
} dl__mat;

static dl__mat dl__plain(const float *p, size_t rs, size_t cs) {
    dl__mat m;
    memset(&m, 0, sizeof m);
    m.p = p; m.rs = rs; m.cs = cs; m.Pr = m.Pc = INT_MAX;
    return m;
}
static dl__mat dl__batched(const float *p, size_t rs, int P, size_t bs) {   /* columns in batches of P */
    dl__mat m = dl__plain(p, rs, 1);
    m.Pc = P; m.cbs = bs;
    return m;
}
static size_t dl__row_at(const dl__mat *m, int i) { return (size_t)(i / m->Pr) * m->rbs + (size_t)(i % m->Pr) * m->rs; }
static size_t dl__col_at(const dl__mat *m, int j) { return (size_t)(j / m->Pc) * m->cbs + (size_t)(j % m->Pc) * m->cs; }
static size_t dl__at(const dl__mat *m, int i, int j) { return dl__row_at(m, i) + dl__col_at(m, j); }

/* C (M x N) = A (M x K) B (K x N) (+ C when accumulate, or + bias[i] per row when not). */
typedef struct dl__gemm {
    int M, N, K, accumulate;
    dl__mat A, B, C;            /* C.p is written through */
    const float *bias;
    const dl__epilogue *epi;    /* rows indexed from 0, like bias */
    const float *apacked;       /* A already packed (dl__pack_a_all's layout), or NULL */
} dl__gemm;

static int dl__round_up(int x, int m) { return (x + m - 1) / m * m; }
static size_t dl__apack_floats(const dl__simd *s, int M, int K) { return (size_t)dl__round_up(M, s->mr) * (size_t)K; }
/* Columns per task: fixed by N alone (or by the direct B's shapes), so the split never depends on threads. */
static int dl__gemm_nc(const dl__simd *s, const dl__gemm *g) {
    int nc = dl__round_up((g->N + 7) / 8, s->nr);
    if (g->B.direct) return g->B.direct->nc;
    return nc > DL__NC / s->nr * s->nr ? DL__NC / s->nr * s->nr : nc;
}

/* The columns j0..j0+len of the im2col matrix are output pixels; they split
   into runs along one output row of one sample. Every row of the matrix
   shares the runs, so they are found once per packed block. */
typedef struct dl__run { int at, len, n, oy, ox; } dl__run;
static int dl__im2col_runs(const dl__conv *g, int j0, int len, dl__run *runs) {
    int p = j0 % g->P, n = j0 / g->P, oh = p / g->OW, ow = p % g->OW, at = 0, k = 0;
    while (at < len) {
        int run = g->OW - ow < len - at ? g->OW - ow : len - at;
        runs[k].at = at; runs[k].len = run; runs[k].n = n;
        runs[k].oy = oh * g->sh; runs[k].ox = ow * g->sw;
        k++;
        at += run;
        ow = 0;
        if (++oh == g->OH) { oh = 0; n++; }
    }
    return k;
}
/* Row r = (c, kh, kw) of the im2col matrix: where it starts in x and its
   offsets. Found for all rows once per call, into scratch (K entries). */
static const dl__krow *dl__conv_krows(const dl__conv *g, dl__krow *table) {
    int r, KK = g->KH * g->KW;
    for (r = 0; r < g->K; r++) {
        table[r].base = (size_t)(r / KK) * g->H * g->W;
        table[r].dy = r % KK / g->KW * g->dh - g->ph;
        table[r].dx = r % g->KW * g->dw - g->pw;
    }
    return table;
}
static size_t dl__krows_floats(const dl__conv *g) { return ((size_t)g->K * sizeof(dl__krow) + sizeof(float) - 1) / sizeof(float); }
/* A piece of one im2col row (c, ky, kx) of a stride-1 convolution whose output
   is as wide as its input: len outputs from plane position p (column col) of
   the sample's plane x read x[p + shift], shift = dy*W + dx, because the next
   output row reads the next input row. So: a copy, zeros where p + shift left
   the plane, and zeros where the column x = col + dx wrapped around an edge. */
static inline void dl__im2col_same(float *d, size_t stride, const float *x, int p, int col, int len, int shift, int dx,
                                   int HW, int W) {
    int s0 = p + shift, lo = s0 < 0 ? (-s0 < len ? -s0 : len) : 0, hi = HW - s0 < len ? HW - s0 : len, t, t0;
    int a = dx < 0 ? 0 : W - dx, b = dx < 0 ? -dx : W;   /* the output columns a..b-1 wrap */
    if (hi < lo) hi = lo;
    if (stride == 1) {
        for (t = 0; t < lo; t++) d[t] = 0.0f;
        if (hi > lo) {                            /* formed only when inside the plane */
            const float *src = x + s0 + lo;
            float *dd = d + lo;
            for (t = 0; t + 8 <= hi - lo; t += 8) memcpy(dd + t, src + t, 8 * sizeof(float));   /* one vector move */
            for (; t < hi - lo; t++) dd[t] = src[t];
        }
        for (t = hi; t < len; t++) d[t] = 0.0f;
    } else
        for (t = 0; t < len; t++) d[(size_t)t * stride] = t >= lo && t < hi ? x[s0 + t] : 0.0f;
    if (!dx) return;
    if (a < 0) a = 0;
    if (b > W) b = W;
    for (t0 = a - col; t0 < len; t0 += W)         /* where each output row's column a falls */
        for (t = t0 < 0 ? 0 : t0; t < t0 + b - a && t < len; t++) d[(size_t)t * stride] = 0.0f;
}

/* One row of the im2col matrix over the given runs, to dst with the given
   stride. A stride-1 convolution reads each run contiguously. */
static void dl__im2col_row(const dl__mat *B, dl__krow kr, const dl__run *runs, int n_runs, float *dst, int stride) {
    const dl__conv *g = B->conv;
    const float *xc = B->p + kr.base;
    int k, t;
    if (g->sh == 1 && g->sw == 1 && g->OW == g->W) {      /* consecutive runs of one sample: one piece */
        for (k = 0; k < n_runs;) {
            const dl__run *u = &runs[k];
            int len = 0;
            while (k < n_runs && runs[k].n == u->n) len += runs[k++].len;
            dl__im2col_same(dst + (size_t)u->at * stride, (size_t)stride, xc + (size_t)u->n * B->cbs,
                            u->oy * g->W + u->ox, u->ox, len, kr.dy * g->W + kr.dx, kr.dx, g->H * g->W, g->W);
        }
        return;
    }
    for (k = 0; k < n_runs; k++) {
        const dl__run *u = &runs[k];
        int y = u->oy + kr.dy, x0 = u->ox + kr.dx;
        const float *row;
        float *d = dst + (size_t)u->at * stride;
        if ((unsigned)y >= (unsigned)g->H) { for (t = 0; t < u->len; t++) d[t * stride] = 0.0f; continue; }
        row = xc + (size_t)u->n * B->cbs + (size_t)y * g->W;    /* formed only when y is inside */
        if (g->sw == 1) {          /* zeros left of x = 0, a copy, zeros right of W */
            int a = x0 < 0 ? (-x0 < u->len ? -x0 : u->len) : 0, b = g->W - x0 < u->len ? g->W - x0 : u->len;
            if (b < a) b = a;
            for (t = 0; t < a; t++) d[t * stride] = 0.0f;
            if (stride == 1) {
                for (t = a; t + 8 <= b; t += 8) memcpy(d + t, row + x0 + t, 8 * sizeof(float));   /* one vector move */
                for (; t < b; t++) d[t] = row[x0 + t];
            } else
                for (t = a; t < b; t++) d[t * stride] = row[x0 + t];
            for (t = b; t < u->len; t++) d[t * stride] = 0.0f;
        } else
            for (t = 0; t < u->len; t++) {
                int x = x0 + t * g->sw;
                d[t * stride] = (unsigned)x < (unsigned)g->W ? row[x] : 0.0f;
            }
    }
}

/* dst[k ldd + r] = src[r lds + k] for r < rows (at most 16), k < kc, through the
   16 x 16 block kernel; lanes rows..lanes-1 of each dst row get zeros. */
static void dl__transpose_k(const dl__simd *s, float *dst, size_t ldd, const float *src, size_t lds, int rows, int kc,
                            int lanes) {
    int k;
    for (k = 0; k < kc; k += 16)
        s->transpose16(dst + (size_t)k * ldd, ldd, src + k, lds, rows, kc - k < 16 ? kc - k : 16, lanes);
}
/* An im2col A (the weight gradient's): its rows formed contiguous, where
   they are vector moves, then transposed to dst[k][mr]; zeros past M. */
static void dl__pack_a_im2col(const dl__simd *s, const dl__mat *A, int M, int i0, int k0, int kc, float *dst) {
    float rows[DL__MAX_MR * DL__KC];
    dl__run runs[DL__KC];
    int n_runs = dl__im2col_runs(A->conv, k0, kc, runs), ii, kk, mr = s->mr;
    for (ii = 0; ii < mr; ii++)
        if (i0 + ii >= M) memset(rows + (size_t)ii * kc, 0, (size_t)kc * sizeof(float));
        else dl__im2col_row(A, A->krows[i0 + ii], runs, n_runs, rows + (size_t)ii * kc, 1);
    if (s->transpose16) { dl__transpose_k(s, dst, (size_t)mr, rows, (size_t)kc, mr, kc, mr); return; }
    for (kk = 0; kk < kc; kk++, dst += mr)
        for (ii = 0; ii < mr; ii++) dst[ii] = rows[(size_t)ii * kc + kk];
}
/* Packs rows i0..i0+mr, columns k0..k0+kc of A as dst[k][mr], zeros past M. */
static void dl__pack_a(const dl__simd *s, const dl__mat *A, int M, int i0, int k0, int kc, float *dst) {
    size_t koff[DL__KC];
    int ii, kk, mr = s->mr;
    const float *row[DL__MAX_MR];
    if (A->conv) { dl__pack_a_im2col(s, A, M, i0, k0, kc, dst); return; }
    for (ii = 0; ii < mr; ii++) {
        if (i0 + ii >= M) { for (kk = 0; kk < kc; kk++) dst[kk * mr + ii] = 0.0f; row[ii] = NULL; }
        else row[ii] = A->p + dl__row_at(A, i0 + ii);
    }
    if (A->rs == 1 && A->Pr == INT_MAX && i0 + mr <= M) {  /* columns contiguous in i (a transposed operand): mr floats per k */
        for (kk = 0; kk < kc; kk++, dst += mr) memcpy(dst, row[0] + dl__col_at(A, k0 + kk), (size_t)mr * sizeof(float));
        return;
    }
    if (A->cs == 1 && k0 % A->Pc + kc <= A->Pc) {          /* rows contiguous in k */
        size_t off = dl__col_at(A, k0);
        if (i0 + mr <= M && s->transpose16 && A->Pr == INT_MAX) {   /* rows rs apart: in registers */
            dl__transpose_k(s, dst, (size_t)mr, row[0] + off, A->rs, mr, kc, mr);
            return;
        }
        if (i0 + mr <= M) {                                 /* all rows there: no test per element */
            for (kk = 0; kk < kc; kk++, dst += mr)
                for (ii = 0; ii < mr; ii++) dst[ii] = row[ii][off + kk];
            return;
        }
        for (kk = 0; kk < kc; kk++, dst += mr)
            for (ii = 0; ii < mr; ii++) if (row[ii]) dst[ii] = row[ii][off + kk];
        return;
    }
    for (kk = 0; kk < kc; kk++) koff[kk] = dl__col_at(A, k0 + kk);
    for (kk = 0; kk < kc; kk++, dst += mr)
        for (ii = 0; ii < mr; ii++) if (row[ii]) dst[ii] = row[ii][koff[kk]];
}

/* pack_b for an im2col B of a stride-1, same-width convolution: each sliver
   row is dl__im2col_same pieces, split at slivers and samples once per call. */
typedef struct dl__piece { int p, col, len, jj; size_t x, d; } dl__piece;   /* within one sliver and one sample */
static void dl__pack_b_same(const dl__simd *s, const dl__mat *B, int N, int k0, int kc, int j0, int nc, int nr, float *dst) {
    const dl__conv *g = B->conv;
    dl__piece pc[DL__NC];
    int32_t cols[DL__NC];
    int end = j0 + nc < N ? j0 + nc : N, n_pc = 0, i, kk, j;
    for (j = j0; j < end; n_pc++) {              /* the split is the same for every row: found once */
        int jj = j - j0, p = j % g->P, q = jj % nr, len = nr - q;
        if (len > end - j) len = end - j;
        if (len > g->P - p) len = g->P - p;
        pc[n_pc].p = p; pc[n_pc].col = p % g->W; pc[n_pc].len = len; pc[n_pc].jj = jj;
        pc[n_pc].x = (size_t)(j / g->P) * B->cbs;
        pc[n_pc].d = (size_t)(jj / nr) * nr * kc + (size_t)q;
        for (i = 0, kk = pc[n_pc].col; i < len; i++, kk = kk + 1 < g->W ? kk + 1 : 0) cols[jj + i] = kk;
        j += len;
    }
    if (s->pack_same) s->pack_same(B, pc, n_pc, cols, k0, kc, nr, dst);
    else for (kk = 0; kk < kc; kk++) {
        dl__krow kr = B->krows[k0 + kk];
        const float *xk = B->p + kr.base;
        float *dk = dst + (size_t)kk * nr;
        int W = g->W, HW = g->H * g->W, shift = kr.dy * W + kr.dx;
        for (i = 0; i < n_pc; i++)
            dl__im2col_same(dk + pc[i].d, 1, xk + pc[i].x, pc[i].p, pc[i].col, pc[i].len, shift, kr.dx, HW, W);
    }
    for (j = end - j0; j < (nc + nr - 1) / nr * nr; j++)    /* past N: zeros */
        for (kk = 0; kk < kc; kk++) dst[(size_t)(j / nr) * nr * kc + (size_t)kk * nr + j % nr] = 0.0f;
}

#ifdef DL__X86
/* dl__im2col_same over all pieces and rows, 16 columns per masked load: a
   column is read when its plane position p + shift is inside the plane and
   its image column cols[j] + dx did not wrap; the other lanes are zeros.
   Masked-off lanes are never read (the load's address may lie outside x). */
__attribute__((target("avx512f")))
static void dl__pack_same_avx512(const dl__mat *B, const dl__piece *pc, int n_pc, const int32_t *cols, int k0, int kc, int nr,
                                 float *dst) {
    const dl__conv *g = B->conv;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i W = _mm512_set1_epi32(g->W), HW = _mm512_set1_epi32(g->H * g->W);
    int kk, i, h;
    for (kk = 0; kk < kc; kk++) {
        dl__krow kr = B->krows[k0 + kk];
        const float *xk = B->p + kr.base;
        float *dk = dst + (size_t)kk * nr;
        int shift = kr.dy * g->W + kr.dx;
        const __m512i dx = _mm512_set1_epi32(kr.dx);
        for (i = 0; i < n_pc; i++) {
            const dl__piece *u = &pc[i];
            for (h = 0; h < u->len; h += 16) {
                int n = u->len - h < 16 ? u->len - h : 16;
                __mmask16 m = (__mmask16)((1u << n) - 1);
                __m512i pos = _mm512_add_epi32(_mm512_set1_epi32(u->p + h + shift), iota);
                __m512i col = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, cols + u->jj + h), dx);
                m &= _mm512_cmplt_epu32_mask(pos, HW) & _mm512_cmplt_epu32_mask(col, W);
                _mm512_mask_storeu_ps(dk + u->d + h, (__mmask16)((1u << n) - 1),
                                      _mm512_maskz_loadu_ps(m, xk + u->x + (ptrdiff_t)(u->p + h + shift)));
            }
        }
    }
}
#endif

#ifdef DL__X86
/* dl__im2col_row of a stride-2 convolution into a contiguous row: per 16
   outputs, their 32 input columns in two masked loads (lanes left of the
   row, right of it or past the run are never read), the even ones kept.
   The same values and zeros. */
__attribute__((target("avx512f")))
static void dl__im2col_s2_avx512(const dl__mat *B, const dl__krow *kr, const dl__run *runs, int n_runs, float *dst) {
    const dl__conv *g = B->conv;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), W = _mm512_set1_epi32(g->W);
    const __m512i even = _mm512_add_epi32(iota, iota), sixteen = _mm512_set1_epi32(16);
    int k, t;
    for (k = 0; k < n_runs; k++) {
        const dl__run *u = &runs[k];
        int y = u->oy + kr->dy, x0 = u->ox + kr->dx;
        const float *row = B->p + kr->base + (size_t)u->n * B->cbs;
        float *d = dst + u->at;
        if ((unsigned)y >= (unsigned)g->H) { memset(d, 0, (size_t)u->len * sizeof(float)); continue; }
        row += (size_t)y * g->W;            /* formed only when y is inside */
        for (t = 0; t < u->len; t += 16) {
            int n = u->len - t < 16 ? u->len - t : 16, c = x0 + 2 * t;
            __m512i ca = _mm512_add_epi32(_mm512_set1_epi32(c), iota), end = _mm512_set1_epi32(c + 2 * n);
            __mmask16 ma = _mm512_cmplt_epu32_mask(ca, W) & _mm512_cmplt_epi32_mask(ca, end);
            __mmask16 mb = _mm512_cmplt_epu32_mask(_mm512_add_epi32(ca, sixteen), W) & _mm512_cmplt_epi32_mask(_mm512_add_epi32(ca, sixteen), end);
            __m512 a = _mm512_maskz_loadu_ps(ma, row + c), b = _mm512_maskz_loadu_ps(mb, row + c + 16);
            _mm512_mask_storeu_ps(d + t, (__mmask16)((1u << n) - 1), _mm512_permutex2var_ps(a, even, b));
        }
    }
}
#endif

/* Packs rows k0..k0+kc, columns j0..j0+nc of B as nc/nr slivers dst[k][nr],
   zeros past N. For im2col the row table and the runs are found once. */
static void dl__pack_b(const dl__simd *s, const dl__mat *B, int N, int k0, int kc, int j0, int nc, int nr, float *dst) {
    int jj, kk, jr;
    size_t joff[DL__MAX_NR];
    if (B->conv && B->conv->sh == 1 && B->conv->sw == 1 && B->conv->OW == B->conv->W) {
        dl__pack_b_same(s, B, N, k0, kc, j0, nc, nr, dst);
        return;
    }
    if (B->conv) {
        dl__run runs[DL__NC / 8][DL__MAX_NR];           /* slivers are at least 8 wide */
        int n_runs[DL__NC / 8], slivers = (nc + nr - 1) / nr, sv;
        for (sv = 0; sv < slivers; sv++) {
            int j = j0 + sv * nr, valid = N - j < nr ? N - j : nr;
            n_runs[sv] = valid > 0 ? dl__im2col_runs(B->conv, j, valid, runs[sv]) : 0;
        }
        for (kk = 0; kk < kc; kk++) {
            dl__krow kr = B->krows[k0 + kk];
            for (sv = 0; sv < slivers; sv++) {
                int valid = N - (j0 + sv * nr) < nr ? N - (j0 + sv * nr) : nr;
                float *d = dst + (size_t)sv * nr * kc + (size_t)kk * nr;
                if (valid < 0) valid = 0;
                if (s->im2col_s2 && B->conv->sw == 2) s->im2col_s2(B, &kr, runs[sv], n_runs[sv], d);
                else dl__im2col_row(B, kr, runs[sv], n_runs[sv], d, 1);
                for (jj = valid; jj < nr; jj++) d[jj] = 0.0f;
            }
        }
        return;
    }
    for (jr = 0; jr < nc; jr += nr) {
        int valid = N - (j0 + jr) < nr ? N - (j0 + jr) : nr, tr = 0, seg;
        float *d = dst + (size_t)jr * kc;
        if (valid < 0) valid = 0;
        if (valid && s->transpose16 && B->rs == 1 && B->cs != 1 && B->Pc == INT_MAX) {
            /* rows contiguous (within blocks of Pr), columns strided: a transposed operand (a dense
               layer's input, the weight gradient's dy^T), 16 columns at a time, zeros after valid */
            for (kk = 0, tr = 1; kk < kc; kk += seg) {
                seg = B->Pr - (k0 + kk) % B->Pr < kc - kk ? B->Pr - (k0 + kk) % B->Pr : kc - kk;
                for (jj = 0; jj < valid; jj += 16)
                    dl__transpose_k(s, d + (size_t)kk * nr + jj, (size_t)nr, B->p + dl__at(B, k0 + kk, j0 + jr + jj), B->cs,
                                    valid - jj < 16 ? valid - jj : 16, seg, nr - jj < 16 ? nr - jj : 16);
            }
        }
        for (kk = 0; kk < kc && tr; kk++, d += nr)     /* past the last block's zeros */
            for (jj = (valid + 15) / 16 * 16; jj < nr; jj++) d[jj] = 0.0f;
        for (kk = 0; kk < kc && !tr; kk++, d += nr) {
            if (valid && B->cs == 1 && (j0 + jr) % B->Pc + valid <= B->Pc)        /* contiguous */
                memcpy(d, B->p + dl__at(B, k0 + kk, j0 + jr), (size_t)valid * sizeof(float));
            else if (valid) {
                const float *row = B->p + dl__row_at(B, k0 + kk);
                if (kk == 0) for (jj = 0; jj < valid; jj++) joff[jj] = dl__col_at(B, j0 + jr + jj);
                for (jj = 0; jj < valid; jj++) d[jj] = row[joff[jj]];
            }
            for (jj = valid; jj < nr; jj++) d[jj] = 0.0f;
        }
    }
}

/* Packs all of A: per block of DL__KC columns, its MR-row slivers in turn. */
static void dl__pack_a_all(const dl__simd *s, const dl__gemm *g, float *ap) {
    int pc, ir;
    for (pc = 0; pc < g->K; pc += DL__KC) {
        int kc = g->K - pc < DL__KC ? g->K - pc : DL__KC;
        for (ir = 0; ir < g->M; ir += s->mr, ap += (size_t)kc * s->mr) dl__pack_a(s, &g->A, g->M, ir, pc, kc, ap);
    }
}

/* One MR x NR tile of C. Tiles that are partial or not contiguous in C go
   through a local copy, so every element sees the same arithmetic. The
   bias starts the sum of the first k block. coff is column j0's offset in C,
   whole says whether the tile's columns are all there and contiguous in C
   (found once per sliver: small-K tiles are short, divisions are not). */
/* A direct B's tile (koff set) goes through t too, its output columns (mask) moved by dl__cols;
   coff is then the first one's offset in C. */
static void dl__cols(const dl__simd *s, float *c, size_t ldc, float *t, int nr, int m, uint32_t mask, int store) {
    int i, j, v;
    if (s->cols) { s->cols(c, ldc, t, nr, m, mask, store); return; }
    for (i = 0; i < m; i++, c += ldc, t += nr)
        for (j = 0, v = 0; j < nr; j++)
            if (mask >> j & 1) { if (store) c[v] = t[j]; else t[j] = c[v]; v++; }
            else if (!store) t[j] = 0.0f;
}
static void dl__gemm_tile(const dl__simd *s, const dl__gemm *g, const float *a, const float *b, const int32_t *koff, int kc,
                          int i0, int j0, int load, int first, int last, size_t coff, int whole, uint32_t mask) {
    const dl__mat *C = &g->C;
    int mr = s->mr, nr = s->nr, m = g->M - i0 < mr ? g->M - i0 : mr, n = g->N - j0 < nr ? g->N - j0 : nr, i, j;
    float *c = (float *)C->p + (C->Pr == INT_MAX ? (size_t)i0 * C->rs : dl__row_at(C, i0)) + coff;
    float t[DL__MAX_MR * DL__MAX_NR], bias[DL__MAX_MR], pad[3][DL__MAX_MR];
    const float *bp = first && g->bias ? g->bias + i0 : NULL;
    const dl__epilogue *e = last ? g->epi : NULL;
    dl__kepi ke, *kp = NULL;
    if (e && s->kepi && e->act <= DL__ACT_PRELU) {      /* in the kernel: clip and hard swish are rare */
        kp = &ke;
        ke.scale = e->scale ? e->scale + i0 : NULL;
        ke.shift = e->shift ? e->shift + i0 : NULL;
        ke.slope = e->act == DL__ACT_PRELU ? e->slope + i0 : NULL;
        ke.neg = e->act == DL__ACT_RELU ? 0.0f : e->alpha;
        ke.act = e->act;
        e = NULL;
        if (m < mr) {                   /* the rows past M read padding */
            for (i = 0; i < mr; i++) {
                pad[0][i] = i < m && ke.scale ? ke.scale[i] : 1.0f;
                pad[1][i] = i < m && ke.shift ? ke.shift[i] : 0.0f;
                pad[2][i] = i < m && ke.slope ? ke.slope[i] : 0.0f;
            }
            ke.scale = pad[0]; ke.shift = pad[1]; ke.slope = ke.slope ? pad[2] : NULL;
        }
    }
    if (koff) {                         /* C is plain in rows here (a convolution's output) */
        c = (float *)C->p + (size_t)i0 * C->rs + coff;
        if (m == mr && mask == (uint32_t)((2ull << (nr - 1)) - 1)) {   /* all nr columns: contiguous in C */
            s->kernel_off(kc, a, b, koff, c, C->rs, load, bp, kp);
            if (e) dl__epilogue_rows(s, e, c, C->rs, i0, m, nr);
            return;
        }
        if (bp && m < mr) { for (i = 0; i < mr; i++) bias[i] = i < m ? bp[i] : 0.0f; bp = bias; }
        if (load) {
            dl__cols(s, c, C->rs, t, nr, m, mask, 0);
            if (m < mr) memset(t + (size_t)m * nr, 0, (size_t)(mr - m) * nr * sizeof(float));
        }
        s->kernel_off(kc, a, b, koff, t, (size_t)nr, load, bp, kp);
        if (e) dl__epilogue_rows(s, e, t, (size_t)nr, i0, m, nr);
        dl__cols(s, c, C->rs, t, nr, m, mask, 1);
        return;
    }
    if (m == mr && whole && (C->Pr == INT_MAX || i0 % C->Pr + mr <= C->Pr)) {
        s->kernel(kc, a, b, c, C->rs, load, bp, kp);
        if (e) dl__epilogue_rows(s, e, c, C->rs, i0, m, n);
        return;
    }
    /* An edge tile, or one that straddles two samples of a batched C: through
       t, with the offsets found once (no divisions per element). */
    {
        size_t ro[DL__MAX_MR], co[DL__MAX_NR];
        float *cp = (float *)C->p;
        for (i = 0; i < m; i++) ro[i] = dl__row_at(C, i0 + i);
        for (j = 0; j < n; j++) co[j] = dl__col_at(C, j0 + j);
        if (bp) { for (i = 0; i < mr; i++) bias[i] = i < m ? bp[i] : 0.0f; bp = bias; }
        if (load) for (i = 0; i < m; i++) for (j = 0; j < n; j++) t[i * nr + j] = cp[ro[i] + co[j]];
        s->kernel(kc, a, b, t, (size_t)nr, load, bp, kp);
        if (e) dl__epilogue_rows(s, e, t, (size_t)nr, i0, m, n);
        for (i = 0; i < m; i++) for (j = 0; j < n; j++) cp[ro[i] + co[j]] = t[i * nr + j];
    }
}

/* A direct task's slab (dl__direct): Hs rows per channel of sample n's zero-padded
   input from padded row q0 / Wp on, then zeros for the dropped columns' reads past
   the end. */
static void dl__direct_slab(const dl__mat *B, int n, int q0, float *slab) {
    const dl__conv *g = B->conv;
    const dl__direct *d = B->direct;
    int r0 = q0 / d->Wc, c, r, t, y, pw = g->pw, W = g->W < d->Wp - pw ? g->W : d->Wp - pw;   /* columns read */
    float *dst = slab;
    for (c = 0; c < g->Cg; c++)
        for (r = 0; r < d->Hs; r++, dst += d->Wp) {
            const float *src = B->p + (size_t)n * B->cbs + (size_t)c * B->rs;
            y = r0 + r - g->ph;
            if (y < 0 || y >= g->H) { memset(dst, 0, (size_t)d->Wp * sizeof(float)); continue; }
            src += (size_t)y * g->W;         /* formed only when y is inside */
            for (t = 0; t < pw; t++) dst[t] = 0.0f;
            for (t = 0; t + 8 <= W; t += 8) memcpy(dst + pw + t, src + t, 8 * sizeof(float));   /* one vector move */
            for (; t < W; t++) dst[pw + t] = src[t];
            for (t = pw + W; t < d->Wp; t++) dst[t] = 0.0f;
        }
    memset(dst, 0, (size_t)(g->KW - 1) * g->dw * sizeof(float));
}
/* The tile at column q (q < Q) of a task from q0: which of its nr columns are outputs, the first
   one's index in the output plane, and where the tile reads row k = 0 of the task's slab. */
static uint32_t dl__direct_tile(const dl__conv *g, const dl__direct *d, int q0, int q, int nr, size_t *first, size_t *at) {
    int ow = q % d->Wc, j;
    uint32_t m = 0;
    *first = (size_t)(q / d->Wc) * g->OW + (size_t)(ow < g->OW ? ow : g->OW);
    *at = (size_t)(q / d->Wc - q0 / d->Wc) * d->Wp + (size_t)ow;
    for (j = 0; j < nr && q + j < d->Q; j++, ow = ow + 1 < d->Wc ? ow + 1 : 0) if (ow < g->OW) m |= 1u << j;
    return m;
}

/* Columns j0..j0+nc of C, all rows, the whole sum: k blocks in order. */
static void dl__gemm_block(const dl__simd *s, const dl__gemm *g, const float *ap, int j0, int nc, float *bp) {
    const dl__direct *d = g->B.direct;
    int mp = dl__round_up(g->M, s->mr), mc = DL__MC / s->mr * s->mr, pc, ic, ir, jr, n = 0, q0 = 0, end = nc;
    if (d) {            /* sample n's columns q0..q0+end: the slab once for all k blocks */
        n = j0 / nc / d->tps; q0 = j0 / nc % d->tps * nc;
        end = d->Q - q0 < nc ? d->Q - q0 : nc;
        dl__direct_slab(&g->B, n, q0, bp);
    }
    for (pc = 0; pc < g->K; pc += DL__KC) {
        int kc = g->K - pc < DL__KC ? g->K - pc : DL__KC, last = pc + kc >= g->K;
        if (!d) dl__pack_b(s, &g->B, g->N, pc, kc, j0, nc, s->nr, bp);
        /* a B sliver stays in L1 while a block of A slivers streams from L2 */
        for (ic = 0; ic < g->M; ic += mc)
            for (jr = 0; jr < end && j0 + jr < g->N; jr += s->nr) {
                int j = j0 + jr, whole = g->N - j >= s->nr && g->C.cs == 1 && j % g->C.Pc + s->nr <= g->C.Pc;
                size_t coff, at = (size_t)jr * kc;
                uint32_t mask = 0;
                if (d) {
                    mask = dl__direct_tile(g->B.conv, d, q0, q0 + jr, s->nr, &coff, &at);
                    coff += (size_t)n * g->C.cbs;
                    if (!mask) continue;
                } else coff = dl__col_at(&g->C, j);
                for (ir = ic; ir < ic + mc && ir < g->M; ir += s->mr)
                    dl__gemm_tile(s, g, ap + (size_t)pc * mp + (size_t)ir * kc, bp + at,
                                  d ? d->koff + pc : NULL, kc, ir, j, pc > 0 || g->accumulate, pc == 0, last, coff, whole, mask);
            }
    }
}

/* In one thread: scratch holds DL__BPACK floats, then the packed A unless ap is given. */
static void dl__gemm_serial(const dl__simd *s, const dl__gemm *g, const float *ap, float *scratch) {
    int nc = dl__gemm_nc(s, g), j0;
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return;
    if (!ap) { dl__pack_a_all(s, g, scratch + DL__BPACK); ap = scratch + DL__BPACK; }
    for (j0 = 0; j0 < g->N; j0 += nc) dl__gemm_block(s, g, ap, j0, g->N - j0 < nc ? g->N - j0 : nc, scratch);
}

typedef struct { const dl__cpu *cpu; const dl__gemm *g; const float *ap; int nc; } dl__gemm_job;
static void dl__gemm_task(void *arg, int t, int thread) {
    const dl__gemm_job *j = (const dl__gemm_job *)arg;
    int j0 = t * j->nc;
    dl__gemm_block(j->cpu->simd, j->g, j->ap, j0, j->g->N - j0 < j->nc ? j->g->N - j0 : j->nc, dl__scratch(j->cpu, thread));
}
/* On all threads, column blocks as tasks; A is packed once into ap (shared scratch). */
static void dl__gemm_parallel(const dl__cpu *cpu, const dl__gemm *g, float *ap) {
    dl__gemm_job j;
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return;
    if (g->apacked) ap = (float *)(uintptr_t)g->apacked;
    else dl__pack_a_all(cpu->simd, g, ap);
    j.cpu = cpu; j.g = g; j.ap = ap; j.nc = dl__gemm_nc(cpu->simd, g);
    dl__parallel_if(cpu, 2.0 * g->M * g->N * g->K, (g->N + j.nc - 1) / j.nc, dl__gemm_task, &j);
}

/* ======================================================================== */
/*  >>ops  CPU kernels. Each layer: forward and backward side by side, formula and */
/*  shapes in a comment. Backward ADDS into din and dw.                     */
/* ======================================================================== */

/* ---- dense: y[n,o] = sum_i W[o,i] x[n,i] + b[o];  x (N,I), W (O,I), b (O).
   Computed as Y^T = W X^T so the long side (the batch) is GEMM's N. ---- */
/* A few samples: dot products (a GEMM would pad the batch to a whole tile). */
typedef struct { const dl_layer *l; const dl_exec *e; const dl__epilogue *epi; } dl__dense_job;
static void dl__dense_dot_task(void *arg, int t, int thread) {            /* 4 outputs of one sample */
    const dl__dense_job *j = (const dl__dense_job *)arg;
    int O = j->l->a.units, I = j->l->in[0]->size, blocks = (O + 3) / 4, n = t / blocks, o = t % blocks * 4, r;
    int rows = O - o < 4 ? O - o : 4;
    float *y = j->e->out + (size_t)n * O + o;
    const dl__simd *s = ((const dl__cpu *)j->e->cpu)->simd;
    (void)thread;
    s->row->dot(j->e->w[0] + (size_t)o * I, (size_t)I, rows, j->e->in[0] + (size_t)n * I, I, y);
    for (r = 0; r < rows; r++) y[r] += j->l->a.bias ? j->e->w[1][o + r] : 0.0f;
    if (j->epi) dl__epilogue_rows(s, j->epi, y, 1, o, rows, 1);
}
/* y (n x O) = the transpose of yt (O x n), in 16 x 16 blocks, a block row of y per task. */
typedef struct { const dl__simd *s; float *y; const float *yt; int n, O; } dl__transpose_job;
static void dl__transpose_task(void *arg, int t, int thread) {
    const dl__transpose_job *j = (const dl__transpose_job *)arg;
    int i0 = t * 16, i1 = i0 + 16 < j->n ? i0 + 16 : j->n, o0, i, o;
    (void)thread;
    if (j->s->transpose16) {
        for (o0 = 0; o0 < j->O; o0 += 16)
            j->s->transpose16(j->y + (size_t)i0 * j->O + o0, (size_t)j->O, j->yt + (size_t)o0 * j->n + i0, (size_t)j->n,
                              j->O - o0 < 16 ? j->O - o0 : 16, i1 - i0, j->O - o0 < 16 ? j->O - o0 : 16);
        return;
    }
    for (o0 = 0; o0 < j->O; o0 += 16)
        for (i = i0; i < i1; i++)
            for (o = o0; o < o0 + 16 && o < j->O; o++) j->y[(size_t)i * j->O + o] = j->yt[(size_t)o * j->n + i];
}
static int dl__dense_forward(const dl_layer *l, const dl_exec *e) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    int O = l->a.units, I = l->in[0]->size;
    float *yt = cpu->shared + dl__align(dl__apack_floats(cpu->simd, O, I));
    dl__transpose_job t;
    dl__gemm g;
    if (e->n < 4) {                     /* fixed by the batch size, never by the threads */
        dl__dense_job j;
        j.l = l; j.e = e; j.epi = cpu->epi;
        dl__parallel_if(cpu, 2.0 * e->n * O * I, e->n * ((O + 3) / 4), dl__dense_dot_task, &j);
        return DL_OK;
    }
    memset(&g, 0, sizeof g);
    g.M = O; g.N = e->n; g.K = I;
    g.A = dl__plain(e->w[0], (size_t)I, 1);
    g.B = dl__plain(e->in[0], 1, (size_t)I);
    g.C = dl__plain(yt, (size_t)e->n, 1);        /* contiguous rows: whole tiles go straight to C */
    g.bias = l->a.bias ? e->w[1] : NULL;
    g.epi = cpu->epi;
    g.apacked = cpu->wpack;
    dl__gemm_parallel(cpu, &g, cpu->shared);
    t.s = cpu->simd; t.y = e->out; t.yt = yt; t.n = e->n; t.O = O;
    dl__parallel_if(cpu, 2 * DL__PER_FLOAT * e->n * O, (e->n + 15) / 16, dl__transpose_task, &t);
    return DL_OK;
}
static int dl__dense_backward(const dl_layer *l, const dl_exec *e) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    int O = l->a.units, I = l->in[0]->size, n, o;
    dl__gemm g;
    memset(&g, 0, sizeof g);
    g.accumulate = 1;
    if (e->din[0]) {            /* dx (N,I) += dy (N,O) W (O,I) */
        g.M = e->n; g.N = I; g.K = O;
        g.A = dl__plain(e->dout, (size_t)O, 1);
        g.B = dl__plain(e->w[0], (size_t)I, 1);
        g.C = dl__plain(e->din[0], (size_t)I, 1);
        dl__gemm_parallel(cpu, &g, cpu->shared);
    }
    if (e->dw[0]) {             /* dW (O,I) += dy^T (O,N) x (N,I) */
        g.M = O; g.N = I; g.K = e->n;
        g.A = dl__plain(e->dout, 1, (size_t)O);
        g.B = dl__plain(e->in[0], (size_t)I, 1);
        g.C = dl__plain(e->dw[0], (size_t)I, 1);
        dl__gemm_parallel(cpu, &g, cpu->shared);
    }
    if (l->a.bias && e->dw[1])
        for (n = 0; n < e->n; n++) for (o = 0; o < O; o++) e->dw[1][o] += e->dout[(size_t)n * O + o];
    return DL_OK;
}

/* ---- conv2d: y[n,m,oh,ow] = b[m] + sum_{c,kh,kw} W[m,c,kh,kw] x[n,g*C/G+c, oh*s-p+kh*d, ow*s-p+kw*d]
   x (N,C,H,W), W (M,C/G,KH,KW), y (N,M,OH,OW). Per group, one GEMM over the
   whole batch: Y_g (M/G x N*OH*OW) = W_g (M/G x C/G*KH*KW) im2col(x_g),
   with im2col done while packing. ---- */
dl_conv_geom dl_layer_conv_geom(const dl_layer *l) {
    dl_conv_geom g;
    memset(&g, 0, sizeof g);
    if (!l || (l->op != DL_OP_CONV2D && l->op != DL_OP_CONV2D_TRANSPOSE)) return g;   /* all zero: not a convolution */
    if (l->op == DL_OP_CONV2D) {
        dl__chw(l->in[0]->ndim, l->in[0]->shape, &g.C, &g.H, &g.W);
        g.M = l->shape[0]; g.OH = l->shape[1]; g.OW = l->shape[2];
    } else {                                        /* the adjoint: input and output swap */
        dl__chw(l->in[0]->ndim, l->in[0]->shape, &g.M, &g.OH, &g.OW);
        g.C = l->shape[0]; g.H = l->shape[1]; g.W = l->shape[2];
    }
    g.KH = l->a.kernel[0]; g.KW = l->a.kernel[1];
    g.sh = l->a.stride[0]; g.sw = l->a.stride[1];
    g.ph = l->a.pad[0]; g.pw = l->a.pad[1];
    g.dh = l->a.dilation[0]; g.dw = l->a.dilation[1];
    g.G = l->a.groups; g.Cg = g.C / g.G; g.Mg = g.M / g.G;
    g.K = g.Cg * g.KH * g.KW;
    g.P = g.OH * g.OW;
    return g;
}
/* A 1x1, stride-1, unpadded convolution reads x as its own col matrix. */
static int dl__conv_is_pointwise(const dl__conv *g) {
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->OH == g->H && g->OW == g->W;
}
/* Samples per chunk of the weight gradient: its partial sums are added in
   chunk order, and the chunk size depends on the shapes only. */
static int dl__conv_chunk(const dl__conv *g, int n) {
    int ch = (1024 + g->P - 1) / g->P;
    return ch > n ? n : ch;
}
/* x of one group as the im2col operand; a pointwise conv reads x directly. */
static dl__mat dl__conv_input(const dl__conv *g, const dl__krow *krows, const float *x, int grp) {
    dl__mat m = dl__batched(x + (size_t)grp * g->Cg * g->H * g->W, (size_t)g->H * g->W, g->P, (size_t)g->C * g->H * g->W);
    if (!dl__conv_is_pointwise(g)) { m.conv = g; m.krows = krows; }
    return m;
}

/* Whether a convolution's GEMM reads its input in place (dl__direct), and
   how: a function of the shapes and the batch (force: net->conv_direct;
   either way the bits are the same). Tasks are whole samples when the batch
   has 8 or more, else about an eighth of all columns, and a slab stays
   within DL__DIRECT_SLAB floats (in L1: measured 1.23x against 1.18x with
   four times as much on the residual net's 16-channel layer). nc is a
   multiple of 32, so of every NR: the slab is the same on every ISA
   (dl__fz_scratch counts it).
   It pays when packing costs more than the dropped columns: packing B
   costs about 4/M of the kernel's time (each packed float serves M/8
   kernel calls), the dropped columns their share of the columns computed.
   Measured on AVX-512 (Zen 5), one layer at batch 64, direct / packed:
   1.14-1.23x for M = 16 on 32x32 planes (6% dropped), 0.98-1.01x for M = 32
   on 16x16 and 5x5 on 32x32 (12%), 0.92x for M = 64 on 14x14, 0.68x on 8x8
   (33%: 80 columns rounded to 96 for 64 outputs); (1 + 4/M) / computed
   share predicts each within 0.02. Direct when that is above 1.05. */
#define DL__DIRECT_SLAB 8192
static size_t dl__direct_floats(const dl__conv *g, const dl__direct *d) {
    return (size_t)g->Cg * d->Hs * d->Wp + (size_t)(g->KW - 1) * g->dw;
}
static int dl__conv_direct(const dl__conv *g, int n, int force, dl__direct *d) {
    long long want;
    double computed;
    memset(d, 0, sizeof *d);
    if (force < 0 || g->sh != 1 || g->sw != 1 || dl__conv_is_pointwise(g) || g->OH < 1 || g->OW < 1 || n < 1) return 0;
    d->Wp = g->OW + (g->KW - 1) * g->dw;        /* W + 2 pw, or with the right padding pad_right gives */
    if (d->Wp < g->pw) return 0;
    d->Wc = g->OW % 32 ? d->Wp : g->OW;
    d->Q = g->OH * d->Wc;
    d->nc = dl__round_up(d->Q, 32);
    want = ((long long)n * d->Q + 7) / 8;
    if (want < d->nc) d->nc = dl__round_up((int)want, 32);
    for (;; d->nc -= 32) {
        d->Hs = (d->nc + d->Wc - 2) / d->Wc + 1 + (g->KH - 1) * g->dh;
        if (dl__direct_floats(g, d) <= DL__DIRECT_SLAB || d->nc == 32) break;
    }
    d->tps = (d->Q + d->nc - 1) / d->nc;
    computed = (double)(d->tps - 1) * d->nc + dl__round_up(d->Q - (d->tps - 1) * d->nc, 32);
    if (!force && (1.0 + 4.0 / g->Mg) * g->P < 1.05 * computed) return 0;
    return dl__direct_floats(g, d) <= DL__DIRECT_SLAB;
}
/* Row k = (c, kh, kw) of a direct B: its offset in a slab. */
static const int32_t *dl__direct_koff(const dl__conv *g, const dl__direct *d, int32_t *koff) {
    int r, KK = g->KH * g->KW;
    for (r = 0; r < g->K; r++) koff[r] = r / KK * d->Hs * d->Wp + r % KK / g->KW * g->dh * d->Wp + r % g->KW * g->dw;
    return koff;
}

/* A depthwise convolution (one filter per channel) directly, a block of
   channels of one sample per task (sized by the shapes, so the split never
   depends on threads): per plane the bias, then per tap its im2col row of
   the plane (the values the GEMM would pack) and y += w t over the whole
   plane with the micro-kernel's arithmetic, in the GEMM's order: the same
   bits as a GEMM per channel, which would pad its single row to a whole
   tile. (K <= DL__KC: one block, as the GEMM sums it.) */
typedef struct { const dl__cpu *cpu; const dl_layer *l; const dl_exec *e; dl__conv cg; const dl__krow *krows; int cb; } dl__dw_job;
static void dl__depthwise_task(void *arg, int t, int thread) {
    const dl__dw_job *j = (const dl__dw_job *)arg;
    const dl__conv *cg = &j->cg;
    const dl__simd *s = j->cpu->simd;
    int blocks = (cg->C + j->cb - 1) / j->cb, n = t / blocks, c0 = t % blocks * j->cb, nch = cg->C - c0 < j->cb ? cg->C - c0 : j->cb;
    int c, k, n_runs;
    float *tmp = dl__scratch(j->cpu, thread), *y0 = j->e->out + ((size_t)n * cg->C + c0) * cg->P;
    const float *bias = j->l->a.bias ? j->e->w[1] + c0 : NULL;
    if (s->depthwise)
        s->depthwise(y0, j->e->in[0] + ((size_t)n * cg->C + c0) * cg->H * cg->W, j->e->w[0] + (size_t)c0 * cg->K, bias, nch, cg, tmp);
    else for (c = c0; c < c0 + nch; c++) {
        dl__run *runs = (dl__run *)(void *)(tmp + dl__align((size_t)cg->P));     /* dl__depthwise_floats in all */
        dl__mat B = dl__conv_input(cg, j->krows, j->e->in[0], c);
        float *y = y0 + (size_t)(c - c0) * cg->P;
        const float *w = j->e->w[0] + (size_t)c * cg->K;
        n_runs = dl__im2col_runs(cg, n * cg->P, cg->P, runs);
        for (k = 0; k < cg->P; k++) y[k] = bias ? bias[c - c0] : 0.0f;
        for (k = 0; k < cg->K; k++) {
            dl__im2col_row(&B, j->krows[k], runs, n_runs, tmp, 1);
            s->axpy(y, tmp, cg->P, w[k]);
        }
    }
    if (j->cpu->epi) dl__epilogue_rows(s, j->cpu->epi, y0, (size_t)cg->P, c0, nch, cg->P);
}
static int dl__conv_is_depthwise(const dl__conv *g) { return g->G == g->C && g->Mg == 1 && g->K <= DL__KC && !dl__conv_is_pointwise(g); }
/* Channels per task: about 16K multiply-adds each. */
static int dl__depthwise_block(const dl__conv *g) {
    int cb = 16384 / (g->K * g->P > 0 ? g->K * g->P : 1);
    return cb < 1 ? 1 : cb > g->C ? g->C : cb;
}
/* Work for dl__parallel_if: a depthwise convolution does few multiply-adds
   per float it moves (9 for 3x3), so it counts as memory-bound when that is
   more: x and y once each. */
static double dl__depthwise_work(const dl__conv *g, int n) {
    double flops = 2.0 * n * g->M * g->K * g->P, moved = DL__PER_FLOAT * n * ((double)g->C * g->H * g->W + (double)g->M * g->P);
    return flops > moved ? flops : moved;
}
/* per thread: a plane and its runs, or x's phase planes and the masks of one block of taps */
static size_t dl__depthwise_floats(const dl__conv *g) {
    size_t plane = dl__align((size_t)g->P) + ((size_t)g->OH * sizeof(dl__run) + sizeof(float) - 1) / sizeof(float);
    size_t flat = (size_t)(g->H + 1) * (size_t)(g->W + 1) + 16 + ((size_t)(g->P + 15) / 16 * (size_t)g->K + 1) / 2;
    return plane > flat ? plane : flat;
}

static int dl__conv_forward_run(const dl_layer *l, const dl_exec *e, int accumulate);
static int dl__conv2d_forward(const dl_layer *l, const dl_exec *e) { return dl__conv_forward_run(l, e, 0); }
/* accumulate: out += the convolution (no bias, no epilogue), for conv2d_transpose's backward */
static int dl__conv_forward_run(const dl_layer *l, const dl_exec *e, int accumulate) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    dl__conv cg = dl_layer_conv_geom(l);
    dl__epilogue epi;
    dl__direct dd;
    int grp, direct;
    void *table = cpu->shared + dl__align(dl__apack_floats(cpu->simd, cg.Mg, cg.K));    /* krows, or a direct B's koff */
    const dl__krow *krows = dl__conv_krows(&cg, (dl__krow *)table);
    if (!accumulate && dl__conv_is_depthwise(&cg)) {
        dl__dw_job j;
        j.cpu = cpu; j.l = l; j.e = e; j.cg = cg; j.krows = krows; j.cb = dl__depthwise_block(&cg);
        dl__parallel_if(cpu, dl__depthwise_work(&cg, e->n), e->n * ((cg.C + j.cb - 1) / j.cb), dl__depthwise_task, &j);
        return DL_OK;
    }
    direct = cpu->simd->kernel_off && 32 % cpu->simd->nr == 0 && dl__conv_direct(&cg, e->n, cpu->net ? cpu->net->conv_direct : 0, &dd);
    if (direct) dd.koff = dl__direct_koff(&cg, &dd, (int32_t *)table);     /* the krows are not used */
    for (grp = 0; grp < cg.G; grp++) {
        dl__gemm g;
        memset(&g, 0, sizeof g);
        g.M = cg.Mg; g.N = direct ? e->n * dd.tps * dd.nc : e->n * cg.P; g.K = cg.K;
        g.A = dl__plain(e->w[0] + (size_t)grp * cg.Mg * cg.K, (size_t)cg.K, 1);
        g.B = dl__conv_input(&cg, direct ? NULL : krows, e->in[0], grp);
        g.B.direct = direct ? &dd : NULL;
        g.C = dl__batched(e->out + (size_t)grp * cg.Mg * cg.P, (size_t)cg.P, cg.P, (size_t)cg.M * cg.P);
        g.bias = l->a.bias && !accumulate ? e->w[1] + grp * cg.Mg : NULL;
        g.accumulate = accumulate;
        if (cpu->wpack && !accumulate) g.apacked = cpu->wpack + (size_t)grp * dl__apack_floats(cpu->simd, cg.Mg, cg.K);
        if (cpu->epi && !accumulate) {  /* the group's rows of the epilogue */
            epi = *cpu->epi;
            if (epi.scale) epi.scale += grp * cg.Mg;
            if (epi.shift) epi.shift += grp * cg.Mg;
            if (epi.slope) epi.slope += grp * cg.Mg;
            g.epi = &epi;
        }
        dl__gemm_parallel(cpu, &g, cpu->shared);
    }
    return DL_OK;
}

/* The adjoint of im2col for one sample and group: x += col scattered back.
   col is scratch, and is clobbered. */
static void dl__col2im(const dl__rowk *rk, const dl__conv *g, float *col, float *x) {
    int c, kh, kw, oh, ow;
    for (c = 0; c < g->Cg; c++)
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                float *row = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * g->P;
                int dx = kw * g->dw - g->pw, lo = dx < 0 ? -dx : 0, hi = g->W - dx < g->OW ? g->W - dx : g->OW;
                if (g->sh == 1 && g->sw == 1 && g->OW == g->W) {
                    /* same width: output p = oh*W + ow adds to x[p + dy*W + dx], so the valid rows are one
                       long add from their first valid column to their last; the columns in between that
                       wrapped around an edge are zeroed in col first and add nothing (short rows one by
                       one ran scalar) */
                    int dy = kh * g->dh - g->ph, o0 = dy < 0 ? -dy : 0, o1 = g->H - dy < g->OH ? g->H - dy : g->OH, t;
                    size_t a, b;
                    if (o1 <= o0 || hi <= lo) continue;
                    if (dx)
                        for (oh = o0; oh < o1; oh++) {
                            for (t = 0; t < lo; t++) row[(size_t)oh * g->W + t] = 0.0f;
                            for (t = hi; t < g->W; t++) row[(size_t)oh * g->W + t] = 0.0f;
                        }
                    a = (size_t)o0 * g->W + lo; b = (size_t)(o1 - 1) * g->W + hi;
                    rk->add(x + (size_t)c * g->H * g->W + (ptrdiff_t)a + dy * g->W + dx, row + a, (int)(b - a));
                    continue;
                }
                for (oh = 0; oh < g->OH; oh++) {
                    int ih = oh * g->sh - g->ph + kh * g->dh;
                    const float *r = row + (size_t)oh * g->OW;
                    float *xr;
                    if (ih < 0 || ih >= g->H) continue;
                    xr = x + ((size_t)c * g->H + ih) * g->W;   /* only in range: a negative ih would wrap */
                    if (g->sw == 1) {                          /* the valid columns, found once */
                        for (ow = lo; ow < hi; ow++) xr[ow + dx] += r[ow];
                        continue;
                    }
                    for (ow = 0; ow < g->OW; ow++) {
                        int iw = ow * g->sw + dx;
                        if (iw >= 0 && iw < g->W) xr[iw] += r[ow];
                    }
                }
            }
}

typedef struct { const dl__cpu *cpu; const dl_layer *l; const dl_exec *e; dl__conv cg; const float *ap; int chunk; float *partial; const dl__krow *krows; } dl__conv_job;

/* dx_n = col2im(W_g^T dy_n,g), one sample per task; W^T is packed once. */
static void dl__conv2d_dx_task(void *arg, int n, int thread) {
    const dl__conv_job *j = (const dl__conv_job *)arg;
    const dl__conv *cg = &j->cg;
    float *scratch = dl__scratch(j->cpu, thread), *dcol = scratch + DL__BPACK;
    int grp, pointwise = dl__conv_is_pointwise(cg);
    for (grp = 0; grp < cg->G; grp++) {
        float *dx = j->e->din[0] + ((size_t)n * cg->C + (size_t)grp * cg->Cg) * cg->H * cg->W;
        dl__gemm g;
        memset(&g, 0, sizeof g);
        g.M = cg->K; g.N = cg->P; g.K = cg->Mg;
        g.A = dl__plain(j->e->w[0] + (size_t)grp * cg->Mg * cg->K, 1, (size_t)cg->K);
        g.B = dl__plain(j->e->dout + ((size_t)n * cg->M + (size_t)grp * cg->Mg) * cg->P, (size_t)cg->P, 1);
        g.C = dl__plain(pointwise ? dx : dcol, (size_t)cg->P, 1);
        g.accumulate = pointwise;
        dl__gemm_serial(j->cpu->simd, &g, j->ap + (size_t)grp * dl__apack_floats(j->cpu->simd, cg->K, cg->Mg), scratch);
        if (!pointwise) dl__col2im(j->cpu->simd->row, cg, dcol, dx);
    }
}
/* Partial dW and db of one chunk of samples, as dW_g^T (K x M/G) = im2col(x_g) dy_g^T:
   im2col is read along its rows, where stride-1 convolutions are contiguous. */
static void dl__conv2d_dw_task(void *arg, int t, int thread) {
    const dl__conv_job *j = (const dl__conv_job *)arg;
    const dl__conv *cg = &j->cg;
    int n0 = t * j->chunk, nn = j->e->n - n0 < j->chunk ? j->e->n - n0 : j->chunk, grp, m;
    float *part = j->partial + (size_t)t * ((size_t)cg->M * cg->K + cg->M);
    for (grp = 0; grp < cg->G; grp++) {
        dl__gemm g;
        memset(&g, 0, sizeof g);
        g.M = cg->K; g.N = cg->Mg; g.K = nn * cg->P;
        g.A = dl__conv_input(cg, j->krows, j->e->in[0] + (size_t)n0 * cg->C * cg->H * cg->W, grp);
        if (!g.A.conv) { g.A.rs = (size_t)cg->H * cg->W; }       /* pointwise: rows c, columns (n, p) */
        g.B = dl__plain(j->e->dout + ((size_t)n0 * cg->M + (size_t)grp * cg->Mg) * cg->P, 1, (size_t)cg->P);
        g.B.Pr = cg->P; g.B.rbs = (size_t)cg->M * cg->P;      /* rows (n, p), columns m */
        g.C = dl__plain(part + (size_t)grp * cg->Mg * cg->K, (size_t)cg->Mg, 1);
        dl__gemm_serial(j->cpu->simd, &g, NULL, dl__scratch(j->cpu, thread));
    }
    for (m = 0; m < cg->M; m++)         /* db partial */
        part[(size_t)cg->M * cg->K + m] =
            (float)j->cpu->simd->row->sum(j->e->dout + ((size_t)n0 * cg->M + m) * cg->P, (size_t)cg->M * cg->P, nn, cg->P, 0.0f, NULL);
}
/* Adds the chunks' partials in chunk order, one slice of dW per task;
   partials hold dW_g transposed. */
static void dl__conv2d_reduce_task(void *arg, int t, int thread) {
    const dl__conv_job *j = (const dl__conv_job *)arg;
    const dl__conv *cg = &j->cg;
    size_t MK = (size_t)cg->M * cg->K, per = MK + cg->M, lo = (size_t)t * 4096, hi = lo + 4096 < per ? lo + 4096 : per, i;
    int c, chunks = (j->e->n + j->chunk - 1) / j->chunk;
    (void)thread;
    for (i = lo; i < hi; i++) {
        float s = 0;
        size_t src = i;
        if (i < MK) {                   /* W index (g, m, k) -> partial index (g, k, m) */
            size_t grp = i / ((size_t)cg->Mg * cg->K), r = i % ((size_t)cg->Mg * cg->K);
            src = grp * cg->Mg * cg->K + (r % cg->K) * cg->Mg + r / cg->K;
        }
        for (c = 0; c < chunks; c++) s += j->partial[(size_t)c * per + src];
        if (i < MK) { if (j->e->dw[0]) j->e->dw[0][i] += s; }
        else if (j->l->a.bias && j->e->dw[1]) j->e->dw[1][i - MK] += s;
    }
}
/* Stride 1: dx is the forward's depthwise convolution of dy with the filter
   turned by 180 degrees, padded by (K - 1) d - p (the adjoint of reading x
   at a shift is writing at the opposite one), so the forward's flattened
   kernel computes nch planes into scratch (turned filters first), then they
   are added. 0 (nothing done) where the shapes do not allow it. */
static int dl__depthwise_dx_turned(const dl__conv_job *j, float *dx, const float *dy, const float *w, int nch, int thread) {
    const dl__conv *cg = &j->cg;
    dl__conv f = *cg;
    float *wt = dl__scratch(j->cpu, thread), *y = wt + (size_t)nch * cg->K;
    size_t room = (size_t)cg->K * cg->P > dl__depthwise_floats(cg) ? (size_t)cg->K * cg->P : dl__depthwise_floats(cg);
    int c, k;
    f.H = cg->OH; f.W = cg->OW; f.OH = cg->H; f.OW = cg->W; f.P = cg->H * cg->W;
    f.ph = (cg->KH - 1) * cg->dh - cg->ph; f.pw = (cg->KW - 1) * cg->dw - cg->pw;
    if (!j->cpu->simd->depthwise || cg->sh != 1 || cg->sw != 1 || f.ph < 0 || f.pw < 0 ||
        (size_t)nch * (cg->K + f.P) > DL__BPACK || dl__depthwise_floats(&f) > room)
        return 0;
    for (c = 0; c < nch; c++) for (k = 0; k < cg->K; k++) wt[c * cg->K + k] = w[c * cg->K + cg->K - 1 - k];
    j->cpu->simd->depthwise(y, dy, wt, NULL, nch, &f, wt + DL__BPACK);
    j->cpu->simd->row->add(dx, y, nch * f.P);
    return 1;
}
/* Depthwise backward directly, as the forward runs (a GEMM per channel
   would pad its single row or column to a whole tile). dx of a block of
   channels of one sample per task (j->chunk channels, from the shapes): a
   direct kernel, or per plane its col rows w[k] dy scattered back. */
static void dl__depthwise_dx_task(void *arg, int t, int thread) {
    const dl__conv_job *j = (const dl__conv_job *)arg;
    const dl__conv *cg = &j->cg;
    const dl__simd *s = j->cpu->simd;
    float *dcol = dl__scratch(j->cpu, thread) + DL__BPACK;
    int blocks = (cg->C + j->chunk - 1) / j->chunk, n = t / blocks, c0 = t % blocks * j->chunk;
    int nch = cg->C - c0 < j->chunk ? cg->C - c0 : j->chunk, c, k;
    size_t plane = (size_t)n * cg->C + c0;
    float *dx = j->e->din[0] + plane * cg->H * cg->W;
    const float *dy = j->e->dout + plane * cg->P, *w = j->e->w[0] + (size_t)c0 * cg->K;
    if (s->depthwise_dx && dl__depthwise_dx_turned(j, dx, dy, w, nch, thread)) return;
    if (s->depthwise_dx) { s->depthwise_dx(dx, dy, w, nch, cg); return; }
    for (c = 0; c < nch; c++, dx += cg->H * cg->W, dy += cg->P, w += cg->K) {
        for (k = 0; k < cg->K; k++) s->row->affine(dcol + (size_t)k * cg->P, dy, cg->P, w[k], 0.0f);
        dl__col2im(s->row, cg, dcol, dx);
    }
}
/* dW and db of one channel: per sample in order, the plane's im2col rows
   dotted with dy, so the sums never depend on the threads. */
static void dl__depthwise_dw_task(void *arg, int c, int thread) {
    const dl__conv_job *j = (const dl__conv_job *)arg;
    const dl__conv *cg = &j->cg;
    const dl__rowk *rk = j->cpu->simd->row;
    float *scratch = dl__scratch(j->cpu, thread), *col = scratch + DL__BPACK, acc[DL__KC], out[4];
    dl__run *runs = (dl__run *)(void *)scratch;          /* OH runs: far below DL__BPACK floats */
    dl__mat B = dl__conv_input(cg, j->krows, j->e->in[0], c);
    double db = 0;
    int n, k, r;
    db = rk->sum(j->e->dout + (size_t)c * cg->P, (size_t)cg->C * cg->P, j->e->n, cg->P, 0.0f, NULL);
    if (j->l->a.bias && j->e->dw[1]) j->e->dw[1][c] += (float)db;
    if (!j->e->dw[0]) return;
    if (j->cpu->simd->depthwise_dw) {
        j->cpu->simd->depthwise_dw(j->e->dw[0] + (size_t)c * cg->K, j->e->dout + (size_t)c * cg->P, (size_t)cg->C * cg->P,
                                   j->e->in[0] + (size_t)c * cg->H * cg->W, (size_t)cg->C * cg->H * cg->W, j->e->n, cg, scratch);     /* 16 K floats */
        return;
    }
    for (k = 0; k < cg->K; k++) acc[k] = 0.0f;
    for (n = 0; n < j->e->n; n++) {
        const float *dy = j->e->dout + ((size_t)n * cg->C + c) * cg->P;
        int n_runs = dl__im2col_runs(cg, n * cg->P, cg->P, runs);
        for (k = 0; k < cg->K; k++) dl__im2col_row(&B, j->krows[k], runs, n_runs, col + (size_t)k * cg->P, 1);
        for (k = 0; k < cg->K; k += 4) {
            rk->dot(col + (size_t)k * cg->P, (size_t)cg->P, cg->K - k < 4 ? cg->K - k : 4, dy, cg->P, out);
            for (r = 0; r < 4 && k + r < cg->K; r++) acc[k + r] += out[r];
        }
    }
    for (k = 0; k < cg->K; k++) j->e->dw[0][(size_t)c * cg->K + k] += acc[k];
}
static int dl__depthwise_backward(const dl_layer *l, const dl_exec *e) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    dl__conv_job j;
    double work;
    memset(&j, 0, sizeof j);
    j.cpu = cpu; j.l = l; j.e = e; j.cg = dl_layer_conv_geom(l);
    work = dl__depthwise_work(&j.cg, e->n);
    j.chunk = dl__depthwise_block(&j.cg);
    if (e->din[0]) dl__parallel_if(cpu, work, e->n * ((j.cg.C + j.chunk - 1) / j.chunk), dl__depthwise_dx_task, &j);
    if (e->dw[0] || (l->a.bias && e->dw[1])) {
        j.krows = dl__conv_krows(&j.cg, (dl__krow *)(void *)cpu->shared);
        dl__parallel_if(cpu, work, j.cg.C, dl__depthwise_dw_task, &j);
    }
    return DL_OK;
}
static int dl__conv2d_backward(const dl_layer *l, const dl_exec *e) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    dl__conv_job j;
    memset(&j, 0, sizeof j);
    j.cpu = cpu; j.l = l; j.e = e; j.cg = dl_layer_conv_geom(l);
    if (dl__conv_is_depthwise(&j.cg)) return dl__depthwise_backward(l, e);
    if (e->din[0]) {
        int grp;
        size_t per = dl__apack_floats(cpu->simd, j.cg.K, j.cg.Mg);
        for (grp = 0; grp < j.cg.G; grp++) {     /* pack W_g^T once for all samples */
            dl__gemm g;
            memset(&g, 0, sizeof g);
            g.M = j.cg.K; g.K = j.cg.Mg;
            g.A = dl__plain(e->w[0] + (size_t)grp * j.cg.Mg * j.cg.K, 1, (size_t)j.cg.K);
            dl__pack_a_all(cpu->simd, &g, cpu->shared + grp * per);
        }
        j.ap = cpu->shared;
        dl__parallel_if(cpu, 2.0 * e->n * j.cg.M * j.cg.K * j.cg.P, e->n, dl__conv2d_dx_task, &j);
    }
    if (e->dw[0] || (l->a.bias && e->dw[1])) {
        size_t per = (size_t)j.cg.M * j.cg.K + j.cg.M;
        j.chunk = dl__conv_chunk(&j.cg, e->n);
        j.krows = dl__conv_krows(&j.cg, (dl__krow *)(void *)cpu->shared);
        j.partial = cpu->shared + dl__align(dl__krows_floats(&j.cg));
        dl__parallel_if(cpu, 2.0 * e->n * j.cg.M * j.cg.K * j.cg.P, (e->n + j.chunk - 1) / j.chunk, dl__conv2d_dw_task, &j);
        dl__parallel_if(cpu, DL__PER_FLOAT * (double)per * ((e->n + j.chunk - 1) / j.chunk), (int)((per + 4095) / 4096),
                        dl__conv2d_reduce_task, &j);
    }
    return DL_OK;
}

/* ---- conv2d_transpose: the adjoint of conv2d on the geometry
   dl_layer_conv_geom gives (that convolution's input is this layer's output):
   forward = conv2d's input gradient of x, then the bias; backward: dx =
   conv2d's forward of dy, dW = conv2d's weight gradient with x and dy in
   each other's place, db = dy summed per output channel.
   x (N,Cin,H,W), W (Cin,Cout/G,KH,KW), y (N,Cout,OH,OW).
   CUDA: dlc__conv2d_transpose_* ---- */
static void dl__zero_parallel(const dl__cpu *cpu, float *p, size_t n);
static void dl__bias_planes(float *y, const float *b, int n, int C, size_t P) {
    int i, c;
    size_t p;
    for (i = 0; i < n; i++)
        for (c = 0; c < C; c++) for (p = 0; p < P; p++) y[((size_t)i * C + c) * P + p] += b[c];
}
static int dl__conv2d_transpose_forward(const dl_layer *l, const dl_exec *e) {
    const dl__cpu *cpu = (const dl__cpu *)e->cpu;
    float *din[1], *dw[2] = { NULL, NULL };
    dl_exec a = *e;
    int C = l->shape[0];
    size_t P = (size_t)l->shape[1] * l->shape[2];
    din[0] = e->out;
    a.dout = e->in[0]; a.din = din; a.dw = dw;
    dl__zero_parallel(cpu, e->out, (size_t)e->n * l->size);
    dl__conv2d_backward(l, &a);
    if (l->a.bias) dl__bias_planes(e->out, e->w[1], e->n, C, P);
    return DL_OK;
}
static int dl__conv2d_transpose_backward(const dl_layer *l, const dl_exec *e) {
    const float *in[1];
    float *din[1] = { NULL }, *dw[2];
    dl_exec a = *e;
    int C = l->shape[0], c;
    size_t P = (size_t)l->shape[1] * l->shape[2];
    in[0] = e->dout;
    if (e->din[0]) { a.in = in; a.out = e->din[0]; dl__conv_forward_run(l, &a, 1); }
    if (e->dw[0]) {
        a = *e;
        dw[0] = e->dw[0]; dw[1] = NULL;
        a.in = in; a.dout = e->in[0]; a.din = din; a.dw = dw;
        dl__conv2d_backward(l, &a);
    }
    if (l->a.bias && e->dw[1])
        for (c = 0; c < C; c++) e->dw[1][c] += (float)dl__rows(e)->sum(e->dout + (size_t)c * P, (size_t)C * P, e->n, (int)P, 0.0f, NULL);
    return DL_OK;
}

/* Per-plane ops run as tasks over blocks of (sample, channel) planes. */
typedef struct { const dl_layer *l; const dl_exec *e; int planes_per_task; } dl__plane_job;
static void dl__planes(const dl_layer *l, const dl_exec *e, int planes, dl__task_fn fn) {
    dl__plane_job j;
    j.l = l; j.e = e;
    j.planes_per_task = planes < 64 ? 1 : planes / 64;      /* fixed by the shape */
    dl__parallel_if((const dl__cpu *)e->cpu, DL__PER_FLOAT * e->n * l->in[0]->size, (planes + j.planes_per_task - 1) / j.planes_per_task,
                    fn, &j);
}

/* ---- maxpool2d: y[n,c,oh,ow] = max over the window of x (padding is -inf);
   saved: the index in x's plane of each output's maximum (the first, in scan
   order; NaN wins). (N,C,H,W) -> (N,C,OH,OW) ---- */
/* The first maximum of output (oh, ow)'s window in plane x (H x W): its
   index in the plane, its value in *m (NaN wins). */
static int dl__max_window(const dl_layer *l, const float *x, int H, int W, int oh, int ow, float *m) {
    int h0 = oh * l->a.stride[0] - l->a.pad[0], w0 = ow * l->a.stride[1] - l->a.pad[1], best = -1, a, b, i, j;
    *m = -INFINITY;
    for (a = 0; a < l->a.kernel[0] && *m == *m; a++) {
        i = h0 + a * l->a.dilation[0];
        if (i < 0 || i >= H) continue;
        for (b = 0; b < l->a.kernel[1]; b++) {
            j = w0 + b * l->a.dilation[1];
            if (j >= 0 && j < W && (best < 0 || x[i * W + j] > *m || x[i * W + j] != x[i * W + j])) {
                *m = x[i * W + j];
                best = i * W + j;
                if (*m != *m) break;        /* NaN: stop (the outer loop tests m too) */
            }
        }
    }
    return best;
}
static void dl__maxpool2d_forward_task(void *arg, int t, int thread) {
    const dl__plane_job *j = (const dl__plane_job *)arg;
    const dl_layer *l = j->l;
    const dl_exec *e = j->e;
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow, hi = (t + 1) * j->planes_per_task;
    int kh = l->a.kernel[0], kw = l->a.kernel[1], sh = l->a.stride[0], sw = l->a.stride[1];
    int dh = l->a.dilation[0], dw = l->a.dilation[1], fast;
    int32_t *arg0 = (int32_t *)e->saved;
    (void)thread;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (hi > e->n * C) hi = e->n * C;
    fast = kh == 2 && kw == 2 && sh == 2 && sw == 2 && dh == 1 && dw == 1 && !l->a.pad[0] && !l->a.pad[1] &&
           2 * OH <= H && 2 * OW == W && W <= 2048;
    for (nc = t * j->planes_per_task; nc < hi; nc++) {
        const float *x = e->in[0] + (size_t)nc * H * W;
        float *y = e->out + (size_t)nc * OH * OW;
        int32_t *arg = arg0 ? arg0 + (size_t)nc * OH * OW : NULL;
        if (fast) {
            dl__plane_maxpool2(((const dl__cpu *)e->cpu)->simd, y, arg, x, W, OH);    /* the common case, vectorized */
            continue;
        }
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                float m;
                int best = dl__max_window(l, x, H, W, oh, ow, &m);
                y[oh * OW + ow] = m;
                if (arg) arg[oh * OW + ow] = best;
            }
    }
}
static int dl__maxpool2d_forward(const dl_layer *l, const dl_exec *e) {
    dl__planes(l, e, e->n * l->shape[0], dl__maxpool2d_forward_task);
    return DL_OK;
}
static void dl__maxpool2d_backward_task(void *arg, int t, int thread) {
    const dl__plane_job *j = (const dl__plane_job *)arg;
    const dl_layer *l = j->l;
    const dl_exec *e = j->e;
    int C, H, W, P = l->shape[1] * l->shape[2], nc, p, hi = (t + 1) * j->planes_per_task;
    (void)thread;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (hi > e->n * C) hi = e->n * C;
    for (nc = t * j->planes_per_task; nc < hi; nc++) {
        const int32_t *arg = (const int32_t *)e->saved + (size_t)nc * P;
        const float *dy = e->dout + (size_t)nc * P;
        float *dx = e->din[0] + (size_t)nc * H * W;
        for (p = 0; p < P; p++) dx[arg[p]] += dy[p];
    }
}
static int dl__maxpool2d_backward(const dl_layer *l, const dl_exec *e) {
    if (e->din[0]) dl__planes(l, e, e->n * l->shape[0], dl__maxpool2d_backward_task);
    return DL_OK;
}

/* ---- maxpool2d_argmax: y = the index in x's plane of maxpool2d's maximum
   (dl__max_window), h W + w, or w H + h (DL_ARGMAX_COLUMN_MAJOR); plus
   (first + n) C H W + c H W with DL_ARGMAX_FLAT. Piecewise constant:
   backward adds nothing. ---- */
static void dl__maxpool2d_argmax_task(void *arg, int t, int thread) {
    const dl__plane_job *j = (const dl__plane_job *)arg;
    const dl_layer *l = j->l;
    const dl_exec *e = j->e;
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow, best, hi = (t + 1) * j->planes_per_task;
    int64_t before;
    float m;
    (void)thread;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (hi > e->n * C) hi = e->n * C;
    for (nc = t * j->planes_per_task; nc < hi; nc++) {
        before = (l->a.mode & DL_ARGMAX_FLAT) ? ((int64_t)e->first * C + nc) * H * W : 0;
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                best = dl__max_window(l, e->in[0] + (size_t)nc * H * W, H, W, oh, ow, &m);
                e->out[((size_t)nc * OH + oh) * OW + ow] = (float)(before + ((l->a.mode & DL_ARGMAX_COLUMN_MAJOR) ? best % W * H + best / W : best));
            }
    }
}
static int dl__maxpool2d_argmax_forward(const dl_layer *l, const dl_exec *e) {
    dl__planes(l, e, e->n * l->shape[0], dl__maxpool2d_argmax_task);
    return DL_OK;
}
static int dl__maxpool2d_argmax_backward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }

/* ---- avgpool2d: y = mean over the window. Windows are clipped to the padded
   input (a ceil_mode window can hang over it); the divisor counts the padding
   inside (count_include_pad, PyTorch's default) or only the input cells. ---- */
static int dl__avgpool_window(const dl_layer *l, int H, int W, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
    int hs = oh * l->a.stride[0] - l->a.pad[0], ws = ow * l->a.stride[1] - l->a.pad[1];
    int he = hs + l->a.kernel[0], we = ws + l->a.kernel[1], count;
    if (he > H + l->a.pad[2]) he = H + l->a.pad[2];
    if (we > W + l->a.pad[3]) we = W + l->a.pad[3];
    count = (he - hs) * (we - ws);
    *h0 = hs < 0 ? 0 : hs; *w0 = ws < 0 ? 0 : ws;
    *h1 = he > H ? H : he; *w1 = we > W ? W : we;
    return l->a.count_include_pad ? count : (*h1 - *h0) * (*w1 - *w0);
}
static int dl__avgpool2d_forward(const dl_layer *l, const dl_exec *e) {
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow, i, j, h0, h1, w0, w1;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    for (nc = 0; nc < e->n * C; nc++) {
        const float *x = e->in[0] + (size_t)nc * H * W;
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                int count = dl__avgpool_window(l, H, W, oh, ow, &h0, &h1, &w0, &w1);
                float s = 0;
                for (i = h0; i < h1; i++) for (j = w0; j < w1; j++) s += x[i * W + j];
                e->out[((size_t)nc * OH + oh) * OW + ow] = s / (float)count;
            }
    }
    return DL_OK;
}
static int dl__avgpool2d_backward(const dl_layer *l, const dl_exec *e) {
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow, i, j, h0, h1, w0, w1;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (!e->din[0]) return DL_OK;
    for (nc = 0; nc < e->n * C; nc++) {
        float *dx = e->din[0] + (size_t)nc * H * W;
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                int count = dl__avgpool_window(l, H, W, oh, ow, &h0, &h1, &w0, &w1);
                float d = e->dout[((size_t)nc * OH + oh) * OW + ow] / (float)count;
                for (i = h0; i < h1; i++) for (j = w0; j < w1; j++) dx[i * W + j] += d;
            }
    }
    return DL_OK;
}

/* ---- global_avgpool: y[n,c] = mean_s x[n,c,s]; (N,C,S) -> (N,C) ---- */
static int dl__global_avgpool_forward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C, i, s;
    for (i = 0; i < e->n * C; i++) {
        float acc = 0;
        for (s = 0; s < S; s++) acc += e->in[0][(size_t)i * S + s];
        e->out[i] = acc / (float)S;
    }
    return DL_OK;
}
static int dl__global_avgpool_backward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C, i, s;
    if (!e->din[0]) return DL_OK;
    for (i = 0; i < e->n * C; i++)
        for (s = 0; s < S; s++) e->din[0][(size_t)i * S + s] += e->dout[i] / (float)S;
    return DL_OK;
}

/* ---- global_maxpool: y[n,c] = max_s x[n,c,s]; saved: the index s of the
   maximum (the first; NaN wins, as in maxpool2d). (N,C,S) -> (N,C) ---- */
static int dl__global_maxpool_forward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C, nc, s;
    int32_t *arg = (int32_t *)e->saved;
    for (nc = 0; nc < e->n * C; nc++) {
        const float *x = e->in[0] + (size_t)nc * S;
        int best = 0;
        for (s = 1; s < S && x[best] == x[best]; s++) if (x[s] > x[best] || x[s] != x[s]) best = s;
        e->out[nc] = x[best];
        if (arg) arg[nc] = best;
    }
    return DL_OK;
}
static int dl__global_maxpool_backward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->in[0]->size / C, nc;
    const int32_t *arg = (const int32_t *)e->saved;
    if (!e->din[0]) return DL_OK;
    for (nc = 0; nc < e->n * C; nc++) e->din[0][(size_t)nc * S + arg[nc]] += e->dout[nc];
    return DL_OK;
}
/* CUDA: dlc__global_maxpool_*, dlk__global_maxpool_* */

/* Per-channel ops run as tasks over channels: a channel's sums stay in one
   task. passes: the floats an op reads and writes per element (batchnorm's
   forward reads x three times and writes y: 4), its work for dl__parallel_if. */
typedef struct { const dl_layer *l; const dl_exec *e; } dl__chan_job;
static void dl__channels(const dl_layer *l, const dl_exec *e, dl__task_fn fn, int passes) {
    dl__chan_job j;
    j.l = l; j.e = e;
    dl__parallel_if((const dl__cpu *)e->cpu, DL__PER_FLOAT * passes * (double)e->n * l->size, l->shape[0], fn, &j);
}

/* ---- batchnorm over channel c (dim 0) of (N,C,S):
   training: y = gamma (x - mean_c) / sqrt(var_c + eps) + beta with the batch's
   biased variance; running = (1-momentum) running + momentum batch (the
   running variance unbiased). Eval: the running statistics.
   w = gamma, beta, running_mean, running_var; saved = mean[C], invstd[C].
   Synchronised (e->allreduce_sum): the same formulas over every rank's
   batch. The sums go through the collective between the passes, in the
   CPU scratch: st = sums[C], sample count, centred squares[C]. ---- */
static float *dl__bn_st(const dl_exec *e) { return ((const dl__cpu *)e->cpu)->shared; }
/* sum of x - centre over channel c, or of its squares */
static double dl__bn_sum(const dl_exec *e, int C, int S, int c, float centre, int squares) {
    double sq, s = dl__rows(e)->sum(e->in[0] + (size_t)c * S, (size_t)C * S, e->n, S, centre, &sq);
    return squares ? sq : s;
}
/* Channel c with its statistics: moves the running ones (training; M values
   behind mean and var), keeps mean and invstd for backward, normalises. A
   replay (train 2) takes invstd from saved and moves nothing. */
static void dl__bn_apply(const dl_layer *l, const dl_exec *e, int c, double mean, double var, double M) {
    const dl__rowk *rk = dl__rows(e);
    int C = l->shape[0], S = l->size / C, n;
    float inv, sc, sh;
    if (e->train == 1) {
        e->w[2][c] = (float)((1.0 - l->a.momentum) * e->w[2][c] + l->a.momentum * mean);
        e->w[3][c] = (float)((1.0 - l->a.momentum) * e->w[3][c] + l->a.momentum * var * M / (M - 1));
    }
    inv = e->train == 2 ? e->saved[C + c] : (float)(1.0 / sqrt(var + l->a.eps));
    if (e->saved && e->train != 2) { e->saved[c] = (float)mean; e->saved[C + c] = inv; }
    sc = e->w[0][c] * inv;
    sh = e->w[1][c] - (float)mean * sc;
    for (n = 0; n < e->n; n++)
        rk->affine(e->out + ((size_t)n * C + c) * S, e->in[0] + ((size_t)n * C + c) * S, S, sc, sh);
}
static void dl__batchnorm_forward_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const dl_layer *l = j->l;
    const dl_exec *e = j->e;
    int C = l->shape[0], S = l->size / C;
    double M = (double)e->n * S, mean, var;
    (void)thread;
    if (e->train == 2) {            /* replay (dl__backward): the saved statistics, nothing moves */
        mean = e->saved[c];
        var = 0;
    } else if (e->train) {          /* one pass: sums around the first sample's mean k, near the batch's, so
                                       var = E(x - k)^2 - (E(x - k))^2 loses little to cancellation */
        const float *x0 = e->in[0] + (size_t)c * S;
        double k = dl__rows(e)->sum(x0, 0, 1, S, 0.0f, NULL) / S, sq, s1;
        s1 = dl__rows(e)->sum(x0, (size_t)C * S, e->n, S, (float)k, &sq) / M;
        mean = (float)k + s1;
        var = sq / M - s1 * s1;
        if (var < 0) var = 0;
    } else {
        mean = e->w[2][c];
        var = e->w[3][c];
    }
    dl__bn_apply(l, e, c, mean, var, M);
}
static void dl__bn_sync_sums_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    int C = j->l->shape[0];
    (void)thread;
    dl__bn_st(j->e)[c] = (float)dl__bn_sum(j->e, C, j->l->size / C, c, 0.0f, 0);
}
static void dl__bn_sync_squares_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const float *st = dl__bn_st(j->e);
    int C = j->l->shape[0], S = j->l->size / C;
    (void)thread;
    dl__bn_st(j->e)[C + 1 + c] = (float)dl__bn_sum(j->e, C, S, c, (float)(st[c] / ((double)st[C] * S)), 1);
}
static void dl__bn_sync_apply_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const float *st = dl__bn_st(j->e);
    int C = j->l->shape[0];
    double M = (double)st[C] * (j->l->size / C);
    (void)thread;
    dl__bn_apply(j->l, j->e, c, st[c] / M, st[C + 1 + c] / M, M);
}
static int dl__batchnorm_forward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], rc;
    float *st;
    if (e->train != 1 || !e->allreduce_sum) {     /* a replay (train 2) uses the saved statistics: no collective */
        dl__channels(l, e, dl__batchnorm_forward_task, e->train == 1 ? 4 : 2);
        return DL_OK;
    }
    dl__channels(l, e, dl__bn_sync_sums_task, 1);
    st = dl__bn_st(e);
    st[C] = (float)e->n;
    if ((rc = e->allreduce_sum(e, st, (size_t)C + 1))) return rc;
    dl__channels(l, e, dl__bn_sync_squares_task, 1);
    if ((rc = e->allreduce_sum(e, st + C + 1, (size_t)C))) return rc;
    dl__channels(l, e, dl__bn_sync_apply_task, 2);
    return DL_OK;
}
/* dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)) in training,
   gamma*invstd*dy in eval; dgamma = sum dy*xhat, dbeta = sum dy (this rank's:
   the gradient all-reduce adds the ranks). Synchronised, the means are over
   every rank's batch: st = sum dy[C], sum dy*xhat[C], sample count. */
static void dl__bn_grad_sums(const dl_layer *l, const dl_exec *e, int c, double *sdy, double *sdyx) {
    const dl__rowk *rk = dl__rows(e);
    int C = l->shape[0], S = l->size / C;
    *sdy = *sdyx = 0;
    rk->sums2(e->dout + (size_t)c * S, e->in[0] + (size_t)c * S, (size_t)C * S, e->n, S, e->saved[c], sdy, sdyx);
    *sdyx *= e->saved[C + c];           /* sum dy * xhat */
    if (e->dw[0]) e->dw[0][c] += (float)*sdyx;
    if (e->dw[1]) e->dw[1][c] += (float)*sdy;
}
static void dl__bn_dx(const dl_layer *l, const dl_exec *e, int c, double sdy, double sdyx, double M) {
    const dl__rowk *rk = dl__rows(e);
    int C = l->shape[0], S = l->size / C, n;
    float mean = e->saved[c], inv = e->saved[C + c];
    float k1 = e->train ? (float)(sdy / M) : 0.0f, k2 = e->train ? (float)(sdyx / M) * inv : 0.0f;
    for (n = 0; n < e->n; n++)
        rk->bn_dx(e->din[0] + ((size_t)n * C + c) * S, e->dout + ((size_t)n * C + c) * S, e->in[0] + ((size_t)n * C + c) * S,
                      S, e->w[0][c] * inv, k1, mean, k2);
}
static void dl__batchnorm_backward_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    double sdy, sdyx;
    (void)thread;
    dl__bn_grad_sums(j->l, j->e, c, &sdy, &sdyx);
    if (j->e->din[0]) dl__bn_dx(j->l, j->e, c, sdy, sdyx, (double)j->e->n * (j->l->size / j->l->shape[0]));
}
static void dl__bn_sync_grad_sums_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    double sdy, sdyx;
    (void)thread;
    dl__bn_grad_sums(j->l, j->e, c, &sdy, &sdyx);
    dl__bn_st(j->e)[c] = (float)sdy;
    dl__bn_st(j->e)[j->l->shape[0] + c] = (float)sdyx;
}
static void dl__bn_sync_dx_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const float *st = dl__bn_st(j->e);
    int C = j->l->shape[0];
    (void)thread;
    dl__bn_dx(j->l, j->e, c, st[c], st[C + c], (double)st[2 * C] * (j->l->size / C));
}
static int dl__batchnorm_backward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], rc;
    float *st;
    if (!e->train || !e->allreduce_sum || !e->din[0]) {     /* din is NULL on every rank alike: same graph */
        dl__channels(l, e, dl__batchnorm_backward_task, e->din[0] ? 5 : 2);
        return DL_OK;
    }
    dl__channels(l, e, dl__bn_sync_grad_sums_task, 2);
    st = dl__bn_st(e);
    st[2 * C] = (float)e->n;
    if ((rc = e->allreduce_sum(e, st, 2 * (size_t)C + 1))) return rc;
    dl__channels(l, e, dl__bn_sync_dx_task, 3);
    return DL_OK;
}
/* CPU scratch: the synchronised passes' sums (2C + 1 floats). */
static void dl__batchnorm_cpu_ws(const struct dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    (void)s; (void)n;
    *shared = 2 * (size_t)l->shape[0] + 1;
    *thread = 0;
}

/* ---- dropout: y = x * keep / (1 - p) in training, y = x in eval ---- */
static int dl__dropout_forward(const dl_layer *l, const dl_exec *e) {
    size_t i, total = (size_t)e->n * l->size;
    float p = l->a.alpha, scale = 1.0f / (1.0f - p);
    for (i = 0; i < total; i++)
        e->out[i] = !e->train ? e->in[0][i] : dl_dropout_keep(e->seed, i, p) ? e->in[0][i] * scale : 0.0f;
    return DL_OK;
}
static int dl__dropout_backward(const dl_layer *l, const dl_exec *e) {
    size_t i, total = (size_t)e->n * l->size;
    float p = l->a.alpha, scale = 1.0f / (1.0f - p);
    if (!e->din[0]) return DL_OK;
    for (i = 0; i < total; i++)
        e->din[0][i] += !e->train ? e->dout[i] : dl_dropout_keep(e->seed, i, p) ? e->dout[i] * scale : 0.0f;
    return DL_OK;
}

/* ---- reshape: a view; the executor aliases its buffers to its input's ---- */
static int dl__reshape_forward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }
static int dl__reshape_backward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }

/* ---- elementwise activations: forward from x, backward from x or y ---- */
#define DL__ELEMENTWISE(name, fwd, bwd)                                               \
    static int dl__##name##_forward(const dl_layer *l, const dl_exec *e) {            \
        size_t i, total = (size_t)e->n * l->size;                                     \
        float a = l->a.alpha, b = l->a.beta;                                          \
        (void)a; (void)b;                                                             \
        for (i = 0; i < total; i++) { float x = e->in[0][i]; e->out[i] = (fwd); }     \
        return DL_OK;                                                                 \
    }                                                                                 \
    static int dl__##name##_backward(const dl_layer *l, const dl_exec *e) {           \
        size_t i, total = (size_t)e->n * l->size;                                     \
        float a = l->a.alpha, b = l->a.beta;                                          \
        (void)a; (void)b;                                                             \
        if (!e->din[0]) return DL_OK;                                                 \
        for (i = 0; i < total; i++) {                                                 \
            float x = e->in[0][i], y = e->out[i], dy = e->dout[i];                    \
            (void)x; (void)y;                                                         \
            e->din[0][i] += (bwd);                                                    \
        }                                                                             \
        return DL_OK;                                                                 \
    }
/* relu, max(0, x) as x > 0 ? x : 0: vector row kernels, since it follows
   most layers in training (the executor fuses it away in inference) */
/* relu in pieces of 16K floats, a piece per task (elementwise: any split
   gives the same values). Backward reads y, not x (y > 0 exactly where
   x > 0), so a batchnorm before it need not keep or replay its output. */
typedef struct { const dl_exec *e; size_t total; } dl__relu_job;
static void dl__relu_task(void *arg, int t, int thread) {
    const dl__relu_job *j = (const dl__relu_job *)arg;
    size_t i = (size_t)t << 14, len = j->total - i < 16384 ? j->total - i : 16384;
    (void)thread;
    dl__rows(j->e)->relu(j->e->out + i, j->e->in[0] + i, (int)len);
}
static void dl__relu_back_task(void *arg, int t, int thread) {
    const dl__relu_job *j = (const dl__relu_job *)arg;
    size_t i = (size_t)t << 14, len = j->total - i < 16384 ? j->total - i : 16384;
    (void)thread;
    dl__rows(j->e)->relu_back(j->e->din[0] + i, j->e->dout + i, j->e->out + i, (int)len);
}
static void dl__relu_run(const dl_exec *e, size_t total, int floats_per, dl__task_fn fn) {
    dl__relu_job j;
    j.e = e; j.total = total;
    dl__parallel_if((const dl__cpu *)e->cpu, DL__PER_FLOAT * floats_per * (double)total, (int)((total + 16383) >> 14), fn, &j);
}
static int dl__relu_forward(const dl_layer *l, const dl_exec *e) {
    dl__relu_run(e, (size_t)e->n * l->size, 2, dl__relu_task);
    return DL_OK;
}
static int dl__relu_backward(const dl_layer *l, const dl_exec *e) {
    if (e->din[0]) dl__relu_run(e, (size_t)e->n * l->size, 3, dl__relu_back_task);
    return DL_OK;
}
DL__ELEMENTWISE(leaky_relu, x > 0 ? x : a * x, x > 0 ? dy : a * dy)           /* x > 0 ? x : a x */
DL__ELEMENTWISE(elu, x > 0 ? x : a * expm1f(x), x > 0 ? dy : dy * (y + a))    /* x > 0 ? x : a (e^x - 1) */
DL__ELEMENTWISE(sigmoid, 1.0f / (1.0f + expf(-x)), dy * y * (1.0f - y))       /* 1 / (1 + e^-x) */
DL__ELEMENTWISE(tanh, tanhf(x), dy * (1.0f - y * y))                          /* tanh x */
/* CUDA: dlk__<name>_forward / _backward from the same formulas (DLC_ELEMENTWISE). */

/* ---- the activations of exported models (op 22 on): a = alpha, b = beta ---- */
/* Constants of the smooth ones, as float so every backend rounds alike. */
#define DL__SQRT1_2 0.70710678118654752f            /* 1 / sqrt(2) */
#define DL__INV_SQRT_2PI 0.39894228040143268f       /* 1 / sqrt(2 pi) */
#define DL__SQRT_2_PI 0.79788456080286536f          /* sqrt(2 / pi) */
#define DL__GELU_C 0.044715f
static float dl__gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * DL__SQRT1_2)); }
static float dl__gelu_erf_grad(float x) { return 0.5f * (1.0f + erff(x * DL__SQRT1_2)) + x * DL__INV_SQRT_2PI * expf(-0.5f * x * x); }
static float dl__gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(DL__SQRT_2_PI * (x + DL__GELU_C * x * x * x))); }
static float dl__gelu_tanh_grad(float x) {
    float t = tanhf(DL__SQRT_2_PI * (x + DL__GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * DL__SQRT_2_PI * (1.0f + 3.0f * DL__GELU_C * x * x);
}
static float dl__sigmoid_value(float x) { return 1.0f / (1.0f + expf(-x)); }
DL__ELEMENTWISE(clip, dl__clip_value(x, a, b), x > a && x < b ? dy : 0.0f)    /* min(max(x, a), b) */
DL__ELEMENTWISE(hard_sigmoid, dl__clip_value(a * x + b, 0.0f, 1.0f),           /* clip(a x + b, 0, 1) */
                a * x + b > 0.0f && a * x + b < 1.0f ? a * dy : 0.0f)
DL__ELEMENTWISE(hard_swish, dl__hard_swish_value(x, a, b),                     /* x clip(a x + b, 0, 1) */
                a * x + b <= 0.0f ? 0.0f : a * x + b >= 1.0f ? dy : dy * (2.0f * a * x + b))
DL__ELEMENTWISE(selu, x > 0 ? b * x : b * a * expm1f(x), x > 0 ? b * dy : dy * (y + b * a))   /* b (x > 0 ? x : a (e^x - 1)) */
DL__ELEMENTWISE(gelu, l->a.approximate ? dl__gelu_tanh(x) : dl__gelu_erf(x),   /* x Phi(x), or its tanh form */
                dy * (l->a.approximate ? dl__gelu_tanh_grad(x) : dl__gelu_erf_grad(x)))
DL__ELEMENTWISE(silu, x * dl__sigmoid_value(x),                                 /* x sigmoid(x) */
                dy * dl__sigmoid_value(x) * (1.0f + x * (1.0f - dl__sigmoid_value(x))))
DL__ELEMENTWISE(softplus, x > 20.0f ? x : log1pf(expf(x)), dy * dl__sigmoid_value(x))   /* log(1 + e^x) */
DL__ELEMENTWISE(sqrt, sqrtf(x), dy * 0.5f / sqrtf(x))                          /* sqrt x */

/* ---- prelu: y = x > 0 ? x : a[c] x, one slope per channel (dim 0) ---- */
static void dl__prelu_forward_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const dl_exec *e = j->e;
    const dl__rowk *rk = dl__rows(e);
    int C = j->l->shape[0], S = j->l->size / C, n;
    (void)thread;
    for (n = 0; n < e->n; n++) rk->prelu(e->out + ((size_t)n * C + c) * S, e->in[0] + ((size_t)n * C + c) * S, S, e->w[0][c]);
}
static int dl__prelu_forward(const dl_layer *l, const dl_exec *e) {
    dl__channels(l, e, dl__prelu_forward_task, 2);
    return DL_OK;
}
static void dl__prelu_backward_task(void *arg, int c, int thread) {
    const dl__chan_job *j = (const dl__chan_job *)arg;
    const dl_exec *e = j->e;
    const dl__rowk *rk = dl__rows(e);
    int C = j->l->shape[0], S = j->l->size / C, n;
    double da = 0;
    (void)thread;
    for (n = 0; n < e->n; n++) {
        size_t o = ((size_t)n * C + c) * S;
        da += rk->prelu_back(e->din[0] ? e->din[0] + o : NULL, e->dout + o, e->in[0] + o, S, e->w[0][c]);
    }
    if (e->dw[0]) e->dw[0][c] += (float)da;
}
static int dl__prelu_backward(const dl_layer *l, const dl_exec *e) {
    dl__channels(l, e, dl__prelu_backward_task, 3);
    return DL_OK;
}

/* ---- softmax over channels: y_c = e^(x_c - max) / sum_k e^(x_k - max) at each
   position s of (N,C,S); dx_c = y_c (dy_c - sum_k dy_k y_k) ---- */
static int dl__softmax_forward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, n, c, s;
    for (n = 0; n < e->n; n++)
        for (s = 0; s < S; s++) {
            const float *x = e->in[0] + (size_t)n * l->size + s;
            float *y = e->out + (size_t)n * l->size + s, m = x[0], sum = 0;
            for (c = 1; c < C; c++) if (x[(size_t)c * S] > m) m = x[(size_t)c * S];
            for (c = 0; c < C; c++) { y[(size_t)c * S] = expf(x[(size_t)c * S] - m); sum += y[(size_t)c * S]; }
            for (c = 0; c < C; c++) y[(size_t)c * S] /= sum;
        }
    return DL_OK;
}
static int dl__softmax_backward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, n, c, s;
    if (!e->din[0]) return DL_OK;
    for (n = 0; n < e->n; n++)
        for (s = 0; s < S; s++) {
            size_t o = (size_t)n * l->size + s;
            float dot = 0;
            for (c = 0; c < C; c++) dot += e->dout[o + (size_t)c * S] * e->out[o + (size_t)c * S];
            for (c = 0; c < C; c++) e->din[0][o + (size_t)c * S] += e->out[o + (size_t)c * S] * (e->dout[o + (size_t)c * S] - dot);
        }
    return DL_OK;
}

/* ---- log_softmax over channels: y_c = x_c - max - log sum_k e^(x_k - max) at
   each position s of (N,C,S); dx_c = dy_c - e^(y_c) sum_k dy_k.
   CUDA: dlc__log_softmax_*, dlk__log_softmax_* ---- */
static int dl__log_softmax_forward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, n, c, s;
    for (n = 0; n < e->n; n++)
        for (s = 0; s < S; s++) {
            const float *x = e->in[0] + (size_t)n * l->size + s;
            float *y = e->out + (size_t)n * l->size + s, m = x[0], sum = 0, lse;
            for (c = 1; c < C; c++) if (x[(size_t)c * S] > m) m = x[(size_t)c * S];
            for (c = 0; c < C; c++) sum += expf(x[(size_t)c * S] - m);
            lse = m + logf(sum);
            for (c = 0; c < C; c++) y[(size_t)c * S] = x[(size_t)c * S] - lse;
        }
    return DL_OK;
}
static int dl__log_softmax_backward(const dl_layer *l, const dl_exec *e) {
    int C = l->shape[0], S = l->size / C, n, c, s;
    if (!e->din[0]) return DL_OK;
    for (n = 0; n < e->n; n++)
        for (s = 0; s < S; s++) {
            size_t o = (size_t)n * l->size + s;
            float sum = 0;
            for (c = 0; c < C; c++) sum += e->dout[o + (size_t)c * S];
            for (c = 0; c < C; c++) e->din[0][o + (size_t)c * S] += e->dout[o + (size_t)c * S] - expf(e->out[o + (size_t)c * S]) * sum;
        }
    return DL_OK;
}

/* ---- add: y = sum_i x_i;  dx_i += dy ---- */
static int dl__bcast_forward(const dl_layer *l, const dl_exec *e);
static int dl__bcast_backward(const dl_layer *l, const dl_exec *e);
static int dl__same_shapes(const dl_layer *l);
static int dl__add_forward(const dl_layer *l, const dl_exec *e) {
    size_t j, total = (size_t)e->n * l->size;
    int i;
    if (!dl__same_shapes(l)) return dl__bcast_forward(l, e);
    for (j = 0; j < total; j++) e->out[j] = e->in[0][j] + e->in[1][j];
    for (i = 2; i < l->n_in; i++) for (j = 0; j < total; j++) e->out[j] += e->in[i][j];
    return DL_OK;
}
static int dl__add_backward(const dl_layer *l, const dl_exec *e) {
    size_t j, total = (size_t)e->n * l->size;
    int i;
    if (!dl__same_shapes(l)) return dl__bcast_backward(l, e);
    for (i = 0; i < l->n_in; i++)
        if (e->din[i]) for (j = 0; j < total; j++) e->din[i][j] += e->dout[j];
    return DL_OK;
}

/* ---- mul: y = a * b;  da += dy b, db += dy a ---- */
static int dl__mul_forward(const dl_layer *l, const dl_exec *e) {
    size_t j, total = (size_t)e->n * l->size;
    if (!dl__same_shapes(l)) return dl__bcast_forward(l, e);
    for (j = 0; j < total; j++) e->out[j] = e->in[0][j] * e->in[1][j];
    return DL_OK;
}
static int dl__mul_backward(const dl_layer *l, const dl_exec *e) {
    size_t j, total = (size_t)e->n * l->size;
    if (!dl__same_shapes(l)) return dl__bcast_backward(l, e);
    if (e->din[0]) for (j = 0; j < total; j++) e->din[0][j] += e->dout[j] * e->in[1][j];
    if (e->din[1]) for (j = 0; j < total; j++) e->din[1][j] += e->dout[j] * e->in[0][j];
    return DL_OK;
}

/* ---- broadcasting add, sub, mul, div: y = a op b with a and b read at the
   output position, a broadcast (size-1) axis at index 0; backward adds each
   output's gradient into the position it read (so repeated positions sum).
   Inputs of the output's shape take the plain loops above.
   CUDA: dlc__bcast_*, dlk__bcast_* ---- */
/* Input i's (C,H,W) in the output's frame: its shape aligned at the last dim. */
static void dl__bcast_dims(const dl_layer *l, int i, int d[3]) {
    int full[3] = { 1, 1, 1 }, k, off = l->ndim - l->in[i]->ndim;
    for (k = 0; k < l->in[i]->ndim; k++) full[off + k] = l->in[i]->shape[k];
    dl__chw(l->ndim, full, &d[0], &d[1], &d[2]);
}
static size_t dl__bcast_at(const int d[3], int c, int h, int w) {
    return ((size_t)(d[0] > 1 ? c : 0) * d[1] + (d[1] > 1 ? h : 0)) * d[2] + (d[2] > 1 ? w : 0);
}
static int dl__same_shapes(const dl_layer *l) {
    int i;
    for (i = 0; i < l->n_in; i++) if (l->in[i]->size != l->size) return 0;
    return 1;
}
static float dl__binary(int op, float a, float b) {
    return op == DL_OP_SUB ? a - b : op == DL_OP_MUL ? a * b : op == DL_OP_DIV ? a / b : a + b;
}
/* d(a op b)/da and /db times dy */
static float dl__binary_grad(int op, int which, float a, float b, float dy) {
    if (op == DL_OP_ADD) return dy;
    if (op == DL_OP_SUB) return which ? -dy : dy;
    if (op == DL_OP_MUL) return which ? dy * a : dy * b;
    return which ? -dy * a / (b * b) : dy / b;
}
static int dl__bcast_forward(const dl_layer *l, const dl_exec *e) {
    int d[64][3], C, H, W, n, c, h, w, i;
    size_t o = 0;
    dl__chw(l->ndim, l->shape, &C, &H, &W);
    for (i = 0; i < l->n_in; i++) dl__bcast_dims(l, i, d[i]);
    for (n = 0; n < e->n; n++)
        for (c = 0; c < C; c++)
            for (h = 0; h < H; h++)
                for (w = 0; w < W; w++, o++) {
                    float y = e->in[0][(size_t)n * l->in[0]->size + dl__bcast_at(d[0], c, h, w)];
                    for (i = 1; i < l->n_in; i++)
                        y = dl__binary(l->op, y, e->in[i][(size_t)n * l->in[i]->size + dl__bcast_at(d[i], c, h, w)]);
                    e->out[o] = y;
                }
    return DL_OK;
}
static int dl__bcast_backward(const dl_layer *l, const dl_exec *e) {   /* add (any inputs) or a binary op */
    int d[64][3], C, H, W, n, c, h, w, i;
    size_t o = 0;
    dl__chw(l->ndim, l->shape, &C, &H, &W);
    for (i = 0; i < l->n_in; i++) dl__bcast_dims(l, i, d[i]);
    for (n = 0; n < e->n; n++)
        for (c = 0; c < C; c++)
            for (h = 0; h < H; h++)
                for (w = 0; w < W; w++, o++) {
                    size_t ia = (size_t)n * l->in[0]->size + dl__bcast_at(d[0], c, h, w);
                    size_t ib = l->n_in > 1 ? (size_t)n * l->in[1]->size + dl__bcast_at(d[1], c, h, w) : 0;
                    float a = e->in[0][ia], b = l->n_in > 1 ? e->in[1][ib] : 0.0f;
                    if (l->op == DL_OP_ADD) {
                        for (i = 0; i < l->n_in; i++)
                            if (e->din[i]) e->din[i][(size_t)n * l->in[i]->size + dl__bcast_at(d[i], c, h, w)] += e->dout[o];
                        continue;
                    }
                    if (e->din[0]) e->din[0][ia] += dl__binary_grad(l->op, 0, a, b, e->dout[o]);
                    if (e->din[1]) e->din[1][ib] += dl__binary_grad(l->op, 1, a, b, e->dout[o]);
                }
    return DL_OK;
}
static int dl__sub_forward(const dl_layer *l, const dl_exec *e) { return dl__bcast_forward(l, e); }
static int dl__sub_backward(const dl_layer *l, const dl_exec *e) { return dl__bcast_backward(l, e); }
static int dl__div_forward(const dl_layer *l, const dl_exec *e) { return dl__bcast_forward(l, e); }
static int dl__div_backward(const dl_layer *l, const dl_exec *e) { return dl__bcast_backward(l, e); }

/* ---- pad: y[c, oh, ow] = x[c, src(oh - top), src(ow - left)], src by the mode;
   outside the input a constant pad reads value. Backward adds dy into the
   position it read, outputs in order. CUDA: dlc__pad_*, one thread a plane. ---- */
static int dl__pad_src(int i, int n, int mode) {      /* -1: the constant */
    if (i >= 0 && i < n) return i;
    if (mode == DL_PAD_CONSTANT) return -1;
    if (mode == DL_PAD_EDGE) return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i;               /* reflect: pads < n */
}
static int dl__pad_forward(const dl_layer *l, const dl_exec *e) {
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    for (nc = 0; nc < e->n * C; nc++) {
        const float *x = e->in[0] + (size_t)nc * H * W;
        float *y = e->out + (size_t)nc * OH * OW;
        for (oh = 0; oh < OH; oh++) {
            int ih = dl__pad_src(oh - l->a.pad[0], H, l->a.mode);
            for (ow = 0; ow < OW; ow++) {
                int iw = dl__pad_src(ow - l->a.pad[1], W, l->a.mode);
                y[oh * OW + ow] = ih < 0 || iw < 0 ? l->a.value : x[ih * W + iw];
            }
        }
    }
    return DL_OK;
}
static int dl__pad_backward(const dl_layer *l, const dl_exec *e) {
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow;
    if (!e->din[0]) return DL_OK;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    for (nc = 0; nc < e->n * C; nc++) {
        float *dx = e->din[0] + (size_t)nc * H * W;
        const float *dy = e->dout + (size_t)nc * OH * OW;
        for (oh = 0; oh < OH; oh++) {
            int ih = dl__pad_src(oh - l->a.pad[0], H, l->a.mode);
            for (ow = 0; ow < OW; ow++) {
                int iw = dl__pad_src(ow - l->a.pad[1], W, l->a.mode);
                if (ih >= 0 && iw >= 0) dx[ih * W + iw] += dy[oh * OW + ow];
            }
        }
    }
    return DL_OK;
}

/* ---- transpose: y[i0, i1, i2] = x at the index whose dim perm[k] is i_k ---- */
static size_t dl__transpose_src(const dl_layer *l, size_t o) {
    int idx[3] = { 0, 0, 0 }, in_idx[3] = { 0, 0, 0 }, k, nd = l->ndim;
    size_t s = 0;
    for (k = nd - 1; k >= 0; k--) { idx[k] = (int)(o % (size_t)l->shape[k]); o /= (size_t)l->shape[k]; }
    for (k = 0; k < nd; k++) in_idx[l->a.perm[k]] = idx[k];
    for (k = 0; k < nd; k++) s = s * (size_t)l->in[0]->shape[k] + (size_t)in_idx[k];
    return s;
}
static int dl__transpose_forward(const dl_layer *l, const dl_exec *e) {
    size_t o, S = (size_t)l->size;
    int n;
    for (n = 0; n < e->n; n++)
        for (o = 0; o < S; o++) e->out[n * S + o] = e->in[0][n * S + dl__transpose_src(l, o)];
    return DL_OK;
}
static int dl__transpose_backward(const dl_layer *l, const dl_exec *e) {
    size_t o, S = (size_t)l->size;
    int n;
    if (!e->din[0]) return DL_OK;
    for (n = 0; n < e->n; n++)
        for (o = 0; o < S; o++) e->din[0][n * S + dl__transpose_src(l, o)] += e->dout[n * S + o];
    return DL_OK;
}

/* ---- upsample by integer factors: nearest reads x[oh / s]; bilinear
   interpolates from src = (oh + 0.5) / s - 0.5 clamped at 0, or with
   align_corners src = oh (H - 1) / (OH - 1): PyTorch's rules. Backward
   adds each output's gradient into what it read, outputs in order. ---- */
static void dl__lerp_src(int o, int in, int out, int s, const dl_attrs *a, int *i0, int *i1, float *t) {
    float src;
    if (!a->mode) { *i0 = *i1 = o / s; *t = 0; return; }
    src = a->align_corners ? (out > 1 ? (float)o * (float)(in - 1) / (float)(out - 1) : 0.0f) : ((float)o + 0.5f) / (float)s - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *t = src - (float)*i0;
}
static int dl__upsample_run(const dl_layer *l, const dl_exec *e, int backward) {
    int C, H, W, OH = l->shape[1], OW = l->shape[2], nc, oh, ow, h0, h1, w0, w1;
    float th, tw;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    if (backward && !e->din[0]) return DL_OK;
    for (nc = 0; nc < e->n * C; nc++)
        for (oh = 0; oh < OH; oh++) {
            dl__lerp_src(oh, H, OH, l->a.scale[0], &l->a, &h0, &h1, &th);
            for (ow = 0; ow < OW; ow++) {
                size_t o = ((size_t)nc * OH + oh) * OW + ow, b = (size_t)nc * H * W;
                dl__lerp_src(ow, W, OW, l->a.scale[1], &l->a, &w0, &w1, &tw);
                if (!backward) {
                    const float *x = e->in[0] + b;
                    float top = x[h0 * W + w0] + tw * (x[h0 * W + w1] - x[h0 * W + w0]);
                    float bot = x[h1 * W + w0] + tw * (x[h1 * W + w1] - x[h1 * W + w0]);
                    e->out[o] = top + th * (bot - top);
                } else {
                    float *dx = e->din[0] + b, g = e->dout[o];
                    dx[h0 * W + w0] += g * (1 - th) * (1 - tw);
                    dx[h0 * W + w1] += g * (1 - th) * tw;
                    dx[h1 * W + w0] += g * th * (1 - tw);
                    dx[h1 * W + w1] += g * th * tw;
                }
            }
        }
    return DL_OK;
}
static int dl__upsample_forward(const dl_layer *l, const dl_exec *e) { return dl__upsample_run(l, e, 0); }
static int dl__upsample_backward(const dl_layer *l, const dl_exec *e) { return dl__upsample_run(l, e, 1); }

/* ---- slice along channels: y = x[start:end] per sample ---- */
static int dl__slice_forward(const dl_layer *l, const dl_exec *e) {
    size_t S = (size_t)(l->in[0]->size / l->in[0]->shape[0]);
    int n;
    for (n = 0; n < e->n; n++)
        memcpy(e->out + (size_t)n * l->size, e->in[0] + (size_t)n * l->in[0]->size + l->a.range[0] * S, (size_t)l->size * sizeof(float));
    return DL_OK;
}
static int dl__slice_backward(const dl_layer *l, const dl_exec *e) {
    size_t S = (size_t)(l->in[0]->size / l->in[0]->shape[0]), j;
    int n;
    if (!e->din[0]) return DL_OK;
    for (n = 0; n < e->n; n++) {
        float *dx = e->din[0] + (size_t)n * l->in[0]->size + l->a.range[0] * S;
        for (j = 0; j < (size_t)l->size; j++) dx[j] += e->dout[(size_t)n * l->size + j];
    }
    return DL_OK;
}

/* ---- reduce: y = sum (or mean) of x over the flagged axes; dx += dy (/count).
   Each output sums its inputs in index order. CUDA: dlc__reduce_* ---- */
static void dl__reduce_dims(const dl_layer *l, int d[3], int r[3], int *count) {   /* input dims, 1 if reduced */
    int k;
    *count = 1;
    for (k = 0; k < 3; k++) {
        d[k] = k < l->in[0]->ndim ? l->in[0]->shape[k] : 1;
        r[k] = l->a.axes[k];
        if (r[k]) *count *= d[k];
    }
}
static int dl__reduce_forward(const dl_layer *l, const dl_exec *e) {
    int d[3], r[3], count, n, i0, i1, i2;
    dl__reduce_dims(l, d, r, &count);
    memset(e->out, 0, (size_t)e->n * l->size * sizeof(float));
    for (n = 0; n < e->n; n++) {
        const float *x = e->in[0] + (size_t)n * l->in[0]->size;
        float *y = e->out + (size_t)n * l->size;
        for (i0 = 0; i0 < d[0]; i0++)
            for (i1 = 0; i1 < d[1]; i1++)
                for (i2 = 0; i2 < d[2]; i2++)
                    y[((size_t)(r[0] ? 0 : i0) * (r[1] ? 1 : d[1]) + (r[1] ? 0 : i1)) * (r[2] ? 1 : d[2]) + (r[2] ? 0 : i2)] +=
                        x[((size_t)i0 * d[1] + i1) * d[2] + i2];
        if (l->a.mode) for (i0 = 0; i0 < l->size; i0++) y[i0] /= (float)count;
    }
    return DL_OK;
}
static int dl__reduce_backward(const dl_layer *l, const dl_exec *e) {
    int d[3], r[3], count, n, i0, i1, i2;
    if (!e->din[0]) return DL_OK;
    dl__reduce_dims(l, d, r, &count);
    for (n = 0; n < e->n; n++) {
        float *dx = e->din[0] + (size_t)n * l->in[0]->size;
        const float *dy = e->dout + (size_t)n * l->size;
        for (i0 = 0; i0 < d[0]; i0++)
            for (i1 = 0; i1 < d[1]; i1++)
                for (i2 = 0; i2 < d[2]; i2++) {
                    float g = dy[((size_t)(r[0] ? 0 : i0) * (r[1] ? 1 : d[1]) + (r[1] ? 0 : i1)) * (r[2] ? 1 : d[2]) + (r[2] ? 0 : i2)];
                    dx[((size_t)i0 * d[1] + i1) * d[2] + i2] += l->a.mode ? g / (float)count : g;
                }
    }
    return DL_OK;
}

/* ---- constant: every sample's output is the value parameter (an input,
   if any, gives only the batch: its gradient stays zero) ---- */
static int dl__constant_forward(const dl_layer *l, const dl_exec *e) {
    int n;
    for (n = 0; n < e->n; n++) memcpy(e->out + (size_t)n * l->size, e->w[0], (size_t)l->size * sizeof(float));
    return DL_OK;
}
static int dl__constant_backward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }

/* ---- concat along channels: per sample, the inputs' blocks one after another ---- */
static int dl__concat_forward(const dl_layer *l, const dl_exec *e) {
    int n, i;
    for (n = 0; n < e->n; n++) {
        float *y = e->out + (size_t)n * l->size;
        for (i = 0; i < l->n_in; i++) {
            size_t k = (size_t)l->in[i]->size;
            memcpy(y, e->in[i] + (size_t)n * k, k * sizeof(float));
            y += k;
        }
    }
    return DL_OK;
}
static int dl__concat_backward(const dl_layer *l, const dl_exec *e) {
    int n, i;
    size_t j;
    for (n = 0; n < e->n; n++) {
        const float *dy = e->dout + (size_t)n * l->size;
        for (i = 0; i < l->n_in; i++) {
            size_t k = (size_t)l->in[i]->size;
            if (e->din[i]) for (j = 0; j < k; j++) e->din[i][(size_t)n * k + j] += dy[j];
            dy += k;
        }
    }
    return DL_OK;
}

/* ---- matmul per sample: C (B,M,P) = A (B,M,K) x B (B,K,P); dA += dC B^T, dB += A^T dC.
   One small GEMM per sample and batch entry, those as tasks. ---- */
static void dl__matmul_dims(const dl_layer *l, int *batch, int *M, int *K, int *P) {
    int r = l->ndim;
    *batch = r == 3 ? l->shape[0] : 1;
    *M = l->shape[r - 2]; *P = l->shape[r - 1]; *K = l->in[0]->shape[r - 1];
}
typedef struct { const dl__cpu *cpu; const dl_layer *l; const dl_exec *e; int backward; } dl__matmul_job;
static void dl__matmul_task(void *arg, int i, int thread) {
    const dl__matmul_job *j = (const dl__matmul_job *)arg;
    const dl_exec *e = j->e;
    float *scratch = dl__scratch(j->cpu, thread);
    int batch, M, K, P;
    const float *a, *b;
    dl__gemm g;
    dl__matmul_dims(j->l, &batch, &M, &K, &P);
    a = e->in[0] + (size_t)i * M * K;
    b = e->in[1] + (size_t)i * K * P;
    memset(&g, 0, sizeof g);
    if (!j->backward) {
        g.M = M; g.N = P; g.K = K;
        g.A = dl__plain(a, (size_t)K, 1); g.B = dl__plain(b, (size_t)P, 1); g.C = dl__plain(e->out + (size_t)i * M * P, (size_t)P, 1);
        dl__gemm_serial(j->cpu->simd, &g, NULL, scratch);
        return;
    }
    g.accumulate = 1;
    if (e->din[0]) {            /* dA (M,K) += dC (M,P) B^T (P,K) */
        g.M = M; g.N = K; g.K = P;
        g.A = dl__plain(e->dout + (size_t)i * M * P, (size_t)P, 1); g.B = dl__plain(b, 1, (size_t)P);
        g.C = dl__plain(e->din[0] + (size_t)i * M * K, (size_t)K, 1);
        dl__gemm_serial(j->cpu->simd, &g, NULL, scratch);
    }
    if (e->din[1]) {            /* dB (K,P) += A^T (K,M) dC (M,P) */
        g.M = K; g.N = P; g.K = M;
        g.A = dl__plain(a, 1, (size_t)K); g.B = dl__plain(e->dout + (size_t)i * M * P, (size_t)P, 1);
        g.C = dl__plain(e->din[1] + (size_t)i * K * P, (size_t)P, 1);
        dl__gemm_serial(j->cpu->simd, &g, NULL, scratch);
    }
}
static int dl__matmul_run(const dl_layer *l, const dl_exec *e, int backward) {
    dl__matmul_job j;
    int batch, M, K, P;
    dl__matmul_dims(l, &batch, &M, &K, &P);
    j.cpu = (const dl__cpu *)e->cpu; j.l = l; j.e = e; j.backward = backward;
    dl__parallel_if(j.cpu, 2.0 * (backward ? 2 : 1) * e->n * batch * M * K * P, e->n * batch, dl__matmul_task, &j);
    return DL_OK;
}
static int dl__matmul_forward(const dl_layer *l, const dl_exec *e) { return dl__matmul_run(l, e, 0); }
static int dl__matmul_backward(const dl_layer *l, const dl_exec *e) { return dl__matmul_run(l, e, 1); }

/* ---- custom: the user's callbacks ---- */
static int dl__custom_call(const dl_layer *l, const dl_exec *e, int backward) {
    dl_custom_args a;
    int sizes[64], i;
    if (l->n_in > 64) return DL_ERR_UNSUPPORTED;
    if (backward && !l->custom.backward) return DL_OK;   /* nothing flows back through it */
    for (i = 0; i < l->n_in; i++) sizes[i] = l->in[i]->size;
    memset(&a, 0, sizeof a);
    a.n = e->n; a.train = e->train; a.n_in = l->n_in; a.in = e->in; a.in_size = sizes;
    a.out = e->out; a.out_size = l->size; a.din = e->din; a.dout = e->dout;
    a.params = e->w; a.dparams = e->dw; a.user = l->custom.user;
    return (backward ? l->custom.backward(&a) : l->custom.forward(&a)) ? DL_ERR_ARG : DL_OK;
}
static int dl__custom_forward(const dl_layer *l, const dl_exec *e) { return dl__custom_call(l, e, 0); }
static int dl__custom_backward(const dl_layer *l, const dl_exec *e) { return dl__custom_call(l, e, 1); }

static int dl__input_forward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }
static int dl__input_backward(const dl_layer *l, const dl_exec *e) { (void)l; (void)e; return DL_OK; }

/* ---- what ops keep from forward for backward, and their scratch ---- */
static size_t dl__maxpool2d_saved(const dl_layer *l, int n) { return (size_t)n * l->size; }   /* argmax indices */
static size_t dl__global_maxpool_saved(const dl_layer *l, int n) { return (size_t)n * l->size; }   /* argmax */
static size_t dl__batchnorm_saved(const dl_layer *l, int n) { (void)n; return 2 * (size_t)l->shape[0]; }  /* mean, invstd */
/* Scratch for backends that lower convolution to an explicit im2col. */
static size_t dl__conv2d_ws(const dl_layer *l, int n) {
    dl__conv g = dl_layer_conv_geom(l);
    (void)n;
    return dl__conv_is_pointwise(&g) ? 0 : 2 * (size_t)g.K * g.P;   /* col and dcol */
}
/* Scratch of the CPU kernels: shared by all threads, and per thread. */
static size_t dl__max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }
static void dl__dense_cpu_ws(const dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    int O = l->a.units, I = l->in[0]->size;
    *shared = dl__max3(dl__align(dl__apack_floats(s, O, I)) + (size_t)O * n, dl__apack_floats(s, n, O), dl__apack_floats(s, O, n));
    *thread = DL__BPACK;
}
static void dl__conv2d_cpu_ws(const dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    dl__conv g = dl_layer_conv_geom(l);
    int ch = dl__conv_chunk(&g, n), chunks = (n + ch - 1) / ch;
    *shared = dl__max3(dl__align(dl__apack_floats(s, g.Mg, g.K)) + dl__krows_floats(&g), (size_t)g.G * dl__apack_floats(s, g.K, g.Mg),
                       dl__align(dl__krows_floats(&g)) + (size_t)chunks * ((size_t)g.M * g.K + g.M));
    *thread = DL__BPACK + dl__max3((size_t)g.K * g.P, dl__apack_floats(s, g.K, ch * g.P), dl__depthwise_floats(&g));
}
static void dl__matmul_cpu_ws(const dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    int batch, M, K, P;
    (void)n;
    dl__matmul_dims(l, &batch, &M, &K, &P);
    *shared = 0;
    *thread = DL__BPACK + dl__max3(dl__apack_floats(s, M, K), dl__apack_floats(s, M, P), dl__apack_floats(s, K, M));
}

/* ---- attributes: each op's list, by ONNX's name where the meaning is the
   same. The file (format 2), its range check and the importers walk these. */
#define DL__ATTR(name, type, count, field, def) { name, type, count, offsetof(dl_attrs, field), def }
#define DL__ATTR_END { NULL, 0, 0, 0, 0 }
static const dl__attr_spec dl__no_attrs[] = { DL__ATTR_END };
static const dl__attr_spec dl__shape_attrs[] = {        /* input, reshape, custom */
    DL__ATTR("ndim", DL__A_INT, 1, ndim, 0), DL__ATTR("shape", DL__A_INT, 3, shape, 0), DL__ATTR_END };
static const dl__attr_spec dl__dense_attrs[] = {
    DL__ATTR("units", DL__A_INT, 1, units, 0), DL__ATTR("bias", DL__A_INT, 1, bias, 1), DL__ATTR_END };
static const dl__attr_spec dl__conv2d_attrs[] = {
    DL__ATTR("filters", DL__A_INT, 1, units, 0), DL__ATTR("kernel_shape", DL__A_INT, 2, kernel, 0),
    DL__ATTR("strides", DL__A_INT, 2, stride, 1), DL__ATTR("pads", DL__A_INT, 4, pad, 0),
    DL__ATTR("auto_pad", DL__A_INT, 1, auto_pad, 0), DL__ATTR("dilations", DL__A_INT, 2, dilation, 1),
    DL__ATTR("group", DL__A_INT, 1, groups, 1), DL__ATTR("bias", DL__A_INT, 1, bias, 1), DL__ATTR_END };
static const dl__attr_spec dl__conv2d_transpose_attrs[] = {
    DL__ATTR("filters", DL__A_INT, 1, units, 0), DL__ATTR("kernel_shape", DL__A_INT, 2, kernel, 0),
    DL__ATTR("strides", DL__A_INT, 2, stride, 1), DL__ATTR("pads", DL__A_INT, 4, pad, 0),
    DL__ATTR("output_padding", DL__A_INT, 2, output_padding, 0), DL__ATTR("dilations", DL__A_INT, 2, dilation, 1),
    DL__ATTR("group", DL__A_INT, 1, groups, 1), DL__ATTR("bias", DL__A_INT, 1, bias, 1), DL__ATTR_END };
static const dl__attr_spec dl__pad_attrs[] = {
    DL__ATTR("pads", DL__A_INT, 4, pad, 0), DL__ATTR("mode", DL__A_INT, 1, mode, 0), DL__ATTR("value", DL__A_FLOAT, 1, value, 0),
    DL__ATTR_END };
static const dl__attr_spec dl__transpose_attrs[] = { DL__ATTR("perm", DL__A_INT, 3, perm, 0), DL__ATTR_END };
static const dl__attr_spec dl__upsample_attrs[] = {
    DL__ATTR("scales", DL__A_INT, 2, scale, 1), DL__ATTR("mode", DL__A_INT, 1, mode, 0),
    DL__ATTR("align_corners", DL__A_INT, 1, align_corners, 0), DL__ATTR_END };
static const dl__attr_spec dl__slice_attrs[] = { DL__ATTR("range", DL__A_INT, 2, range, 0), DL__ATTR_END };
static const dl__attr_spec dl__reduce_attrs[] = {
    DL__ATTR("mode", DL__A_INT, 1, mode, 0), DL__ATTR("axes", DL__A_INT, 3, axes, 0),
    DL__ATTR("keepdims", DL__A_INT, 1, keepdims, 0), DL__ATTR_END };
static const dl__attr_spec dl__maxpool2d_attrs[] = {
    DL__ATTR("kernel_shape", DL__A_INT, 2, kernel, 0), DL__ATTR("strides", DL__A_INT, 2, stride, 1),
    DL__ATTR("pads", DL__A_INT, 4, pad, 0), DL__ATTR("auto_pad", DL__A_INT, 1, auto_pad, 0),
    DL__ATTR("ceil_mode", DL__A_INT, 1, ceil_mode, 0), DL__ATTR("dilations", DL__A_INT, 2, dilation, 1), DL__ATTR_END };
static const dl__attr_spec dl__maxpool2d_argmax_attrs[] = {
    DL__ATTR("kernel_shape", DL__A_INT, 2, kernel, 0), DL__ATTR("strides", DL__A_INT, 2, stride, 1),
    DL__ATTR("pads", DL__A_INT, 4, pad, 0), DL__ATTR("auto_pad", DL__A_INT, 1, auto_pad, 0),
    DL__ATTR("ceil_mode", DL__A_INT, 1, ceil_mode, 0), DL__ATTR("dilations", DL__A_INT, 2, dilation, 1),
    DL__ATTR("flags", DL__A_INT, 1, mode, 0), DL__ATTR_END };    /* dl_maxpool2d_argmax's */
static const dl__attr_spec dl__avgpool2d_attrs[] = {
    DL__ATTR("kernel_shape", DL__A_INT, 2, kernel, 0), DL__ATTR("strides", DL__A_INT, 2, stride, 1),
    DL__ATTR("pads", DL__A_INT, 4, pad, 0), DL__ATTR("auto_pad", DL__A_INT, 1, auto_pad, 0),
    DL__ATTR("ceil_mode", DL__A_INT, 1, ceil_mode, 0), DL__ATTR("count_include_pad", DL__A_INT, 1, count_include_pad, 1),
    DL__ATTR("dilations", DL__A_INT, 2, dilation, 1), DL__ATTR_END };
static const dl__attr_spec dl__batchnorm_attrs[] = {
    DL__ATTR("epsilon", DL__A_FLOAT, 1, eps, 1e-5f), DL__ATTR("momentum", DL__A_FLOAT, 1, momentum, 0.1f), DL__ATTR_END };
static const dl__attr_spec dl__dropout_attrs[] = { DL__ATTR("ratio", DL__A_FLOAT, 1, alpha, 0.5f), DL__ATTR_END };
static const dl__attr_spec dl__alpha_attrs[] = { DL__ATTR("alpha", DL__A_FLOAT, 1, alpha, 0), DL__ATTR_END };
static const dl__attr_spec dl__clip_attrs[] = {
    DL__ATTR("min", DL__A_FLOAT, 1, alpha, 0), DL__ATTR("max", DL__A_FLOAT, 1, beta, 6), DL__ATTR_END };
static const dl__attr_spec dl__hard_sigmoid_attrs[] = {      /* hard_swish too */
    DL__ATTR("alpha", DL__A_FLOAT, 1, alpha, 0.2f), DL__ATTR("beta", DL__A_FLOAT, 1, beta, 0.5f), DL__ATTR_END };
static const dl__attr_spec dl__selu_attrs[] = {
    DL__ATTR("alpha", DL__A_FLOAT, 1, alpha, 1.67326324f), DL__ATTR("gamma", DL__A_FLOAT, 1, beta, 1.05070098f), DL__ATTR_END };
static const dl__attr_spec dl__gelu_attrs[] = { DL__ATTR("approximate", DL__A_INT, 1, approximate, 0), DL__ATTR_END };

/* ==== >>optable =========================================================== */
/* ---- the op table: one row per op, in DL_OP order --------------------------
   Everything the core knows about an op but its kernels' insides: inputs,
   flags for the planner and executor, hooks (NULL: nothing to do), the
   attribute list, the CPU kernels. dl_cuda.cu's dlc__ops[] mirrors it. */
static const dl__op_info dl__ops[] = {
    { DL_OP_INPUT, "input", 0, 0, DL__F_SOURCE, 0, dl__input_infer, NULL, NULL, NULL, NULL,
      dl__shape_attrs, dl__input_forward, dl__input_backward },
    { DL_OP_DENSE, "dense", 1, 1, DL__F_FUSE_HEAD | DL__F_BWD_NO_OUT, 0, dl__dense_infer, dl__dense_params, NULL, NULL, dl__dense_cpu_ws,
      dl__dense_attrs, dl__dense_forward, dl__dense_backward },
    { DL_OP_CONV2D, "conv2d", 1, 1, DL__F_FUSE_HEAD | DL__F_BWD_NO_OUT, 0, dl__conv2d_infer, dl__conv2d_params, NULL, dl__conv2d_ws,
      dl__conv2d_cpu_ws, dl__conv2d_attrs, dl__conv2d_forward, dl__conv2d_backward },
    { DL_OP_MAXPOOL2D, "maxpool2d", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__pool_infer, NULL, dl__maxpool2d_saved, NULL, NULL,
      dl__maxpool2d_attrs, dl__maxpool2d_forward, dl__maxpool2d_backward },
    { DL_OP_AVGPOOL2D, "avgpool2d", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__pool_infer, NULL, NULL, NULL, NULL,
      dl__avgpool2d_attrs, dl__avgpool2d_forward, dl__avgpool2d_backward },
    { DL_OP_GLOBAL_AVGPOOL, "global_avgpool", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__global_pool_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__global_avgpool_forward, dl__global_avgpool_backward },
    { DL_OP_BATCHNORM, "batchnorm", 1, 1, DL__F_BATCH_STATS | DL__F_BWD_NO_OUT | DL__F_REPLAY, 0, dl__batchnorm_infer, dl__batchnorm_params,
      dl__batchnorm_saved, NULL, dl__batchnorm_cpu_ws, dl__batchnorm_attrs, dl__batchnorm_forward, dl__batchnorm_backward },
    { DL_OP_DROPOUT, "dropout", 1, 1, DL__F_RNG | DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__dropout_infer, NULL, NULL, NULL, NULL,
      dl__dropout_attrs, dl__dropout_forward, dl__dropout_backward },
    { DL_OP_RESHAPE, "reshape", 1, 1, DL__F_VIEW, 0, dl__reshape_infer, NULL, NULL, NULL, NULL,
      dl__shape_attrs, dl__reshape_forward, dl__reshape_backward },
    { DL_OP_RELU, "relu", 1, 1, DL__F_FUSE_ACT | DL__F_BWD_NO_IN, DL__ACT_RELU, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__relu_forward, dl__relu_backward },
    { DL_OP_LEAKY_RELU, "leaky_relu", 1, 1, DL__F_FUSE_ACT | DL__F_BWD_NO_OUT, DL__ACT_LEAKY, dl__alpha_infer, NULL, NULL, NULL, NULL,
      dl__alpha_attrs, dl__leaky_relu_forward, dl__leaky_relu_backward },
    { DL_OP_ELU, "elu", 1, 1, 0, 0, dl__alpha_infer, NULL, NULL, NULL, NULL,
      dl__alpha_attrs, dl__elu_forward, dl__elu_backward },
    { DL_OP_PRELU, "prelu", 1, 1, DL__F_FUSE_ACT | DL__F_BWD_NO_OUT, DL__ACT_PRELU, NULL, dl__prelu_params, NULL, NULL, NULL,
      dl__no_attrs, dl__prelu_forward, dl__prelu_backward },
    { DL_OP_SIGMOID, "sigmoid", 1, 1, DL__F_BWD_NO_IN, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__sigmoid_forward, dl__sigmoid_backward },
    { DL_OP_TANH, "tanh", 1, 1, DL__F_BWD_NO_IN, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__tanh_forward, dl__tanh_backward },
    { DL_OP_SOFTMAX, "softmax", 1, 1, DL__F_BWD_NO_IN, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__softmax_forward, dl__softmax_backward },
    { DL_OP_ADD, "add", 2, 64, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__broadcast_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__add_forward, dl__add_backward },
    { DL_OP_CONCAT, "concat", 1, 64, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__concat_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__concat_forward, dl__concat_backward },
    { DL_OP_MUL, "mul", 2, 2, DL__F_BWD_NO_OUT, 0, dl__broadcast_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__mul_forward, dl__mul_backward },
    { DL_OP_MATMUL, "matmul", 2, 2, DL__F_BWD_NO_OUT, 0, dl__matmul_infer, NULL, NULL, NULL, dl__matmul_cpu_ws,
      dl__no_attrs, dl__matmul_forward, dl__matmul_backward },
    { DL_OP_CUSTOM, "custom", 1, 64, DL__F_USER, 0, dl__custom_infer, dl__custom_params, NULL, NULL, NULL,
      dl__shape_attrs, dl__custom_forward, dl__custom_backward },
    { DL_OP_GLOBAL_MAXPOOL, "global_maxpool", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__global_pool_infer, NULL, dl__global_maxpool_saved, NULL, NULL,
      dl__no_attrs, dl__global_maxpool_forward, dl__global_maxpool_backward },
    { DL_OP_CLIP, "clip", 1, 1, DL__F_FUSE_ACT | DL__F_BWD_NO_OUT, DL__ACT_CLIP, dl__alpha_beta_infer, NULL, NULL, NULL, NULL,
      dl__clip_attrs, dl__clip_forward, dl__clip_backward },
    { DL_OP_HARD_SIGMOID, "hard_sigmoid", 1, 1, DL__F_BWD_NO_OUT, 0, dl__alpha_beta_infer, NULL, NULL, NULL, NULL,
      dl__hard_sigmoid_attrs, dl__hard_sigmoid_forward, dl__hard_sigmoid_backward },
    { DL_OP_HARD_SWISH, "hard_swish", 1, 1, DL__F_FUSE_ACT | DL__F_BWD_NO_OUT, DL__ACT_HARD_SWISH, dl__alpha_beta_infer, NULL, NULL, NULL, NULL,
      dl__hard_sigmoid_attrs, dl__hard_swish_forward, dl__hard_swish_backward },
    { DL_OP_SELU, "selu", 1, 1, 0, 0, dl__alpha_beta_infer, NULL, NULL, NULL, NULL,
      dl__selu_attrs, dl__selu_forward, dl__selu_backward },
    { DL_OP_GELU, "gelu", 1, 1, DL__F_BWD_NO_OUT, 0, dl__gelu_infer, NULL, NULL, NULL, NULL,
      dl__gelu_attrs, dl__gelu_forward, dl__gelu_backward },
    { DL_OP_SILU, "silu", 1, 1, DL__F_BWD_NO_OUT, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__silu_forward, dl__silu_backward },
    { DL_OP_SOFTPLUS, "softplus", 1, 1, DL__F_BWD_NO_OUT, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__softplus_forward, dl__softplus_backward },
    { DL_OP_LOG_SOFTMAX, "log_softmax", 1, 1, DL__F_BWD_NO_IN, 0, NULL, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__log_softmax_forward, dl__log_softmax_backward },
    { DL_OP_SUB, "sub", 2, 2, DL__F_BWD_NO_OUT, 0, dl__broadcast_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__sub_forward, dl__sub_backward },
    { DL_OP_DIV, "div", 2, 2, DL__F_BWD_NO_OUT, 0, dl__broadcast_infer, NULL, NULL, NULL, NULL,
      dl__no_attrs, dl__div_forward, dl__div_backward },
    { DL_OP_CONSTANT, "constant", 0, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__input_infer, dl__constant_params, NULL, NULL, NULL,
      dl__shape_attrs, dl__constant_forward, dl__constant_backward },
    { DL_OP_CONV2D_TRANSPOSE, "conv2d_transpose", 1, 1, DL__F_BWD_NO_OUT, 0, dl__conv2d_transpose_infer, dl__conv2d_transpose_params, NULL,
      dl__conv2d_ws, dl__conv2d_cpu_ws, dl__conv2d_transpose_attrs, dl__conv2d_transpose_forward, dl__conv2d_transpose_backward },
    { DL_OP_PAD, "pad", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__pad_infer, NULL, NULL, NULL, NULL, dl__pad_attrs, dl__pad_forward, dl__pad_backward },
    { DL_OP_TRANSPOSE, "transpose", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__transpose_infer, NULL, NULL, NULL, NULL,
      dl__transpose_attrs, dl__transpose_forward, dl__transpose_backward },
    { DL_OP_UPSAMPLE, "upsample", 1, 1, DL__F_BWD_NO_OUT, 0, dl__upsample_infer, NULL, NULL, NULL, NULL,
      dl__upsample_attrs, dl__upsample_forward, dl__upsample_backward },
    { DL_OP_SLICE, "slice", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__slice_infer, NULL, NULL, NULL, NULL, dl__slice_attrs, dl__slice_forward, dl__slice_backward },
    { DL_OP_REDUCE, "reduce", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__reduce_infer, NULL, NULL, NULL, NULL, dl__reduce_attrs, dl__reduce_forward, dl__reduce_backward },
    { DL_OP_SQRT, "sqrt", 1, 1, DL__F_BWD_NO_OUT, 0, NULL, NULL, NULL, NULL, NULL, dl__no_attrs, dl__sqrt_forward, dl__sqrt_backward },
    { DL_OP_MAXPOOL2D_ARGMAX, "maxpool2d_argmax", 1, 1, DL__F_BWD_NO_IN | DL__F_BWD_NO_OUT, 0, dl__argmax_infer, NULL, NULL, NULL, NULL,
      dl__maxpool2d_argmax_attrs, dl__maxpool2d_argmax_forward, dl__maxpool2d_argmax_backward },
};
/* A forgotten row stops the build; test_core checks each row's op is its index. */
typedef char dl__ops_has_every_op[sizeof dl__ops / sizeof dl__ops[0] == DL_OP_COUNT ? 1 : -1];

static const dl__op_info *dl__op(int op) { return &dl__ops[op]; }   /* op checked by the caller */
const char *dl_op_name(int op) { return op >= 0 && op < DL_OP_COUNT ? dl__ops[op].name : "unknown"; }

size_t dl_layer_saved_floats(const dl_layer *l, int n) {
    return l && n >= 0 && dl__op(l->op)->saved ? dl__op(l->op)->saved(l, n) : 0;
}
size_t dl_layer_ws_floats(const dl_layer *l, int n) {
    return l && dl__op(l->op)->ws ? dl__op(l->op)->ws(l, n) : 0;
}
static void dl__cpu_ws(const dl__simd *s, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    *shared = *thread = 0;
    if (dl__op(l->op)->cpu_ws) dl__op(l->op)->cpu_ws(s, l, n, shared, thread);
}

/* Zeroes a buffer in 16K-float tasks. */
typedef struct { float *p; size_t n; } dl__zero_job;
static void dl__zero_task(void *arg, int t, int thread) {
    const dl__zero_job *j = (const dl__zero_job *)arg;
    size_t lo = (size_t)t << 14, n = j->n - lo < ((size_t)1 << 14) ? j->n - lo : ((size_t)1 << 14);
    (void)thread;
    memset(j->p + lo, 0, n * sizeof(float));
}
static void dl__parallel(const dl__cpu *cpu, int n_tasks, dl__task_fn fn, void *arg);
static void dl__zero_parallel(const dl__cpu *cpu, float *p, size_t n) {
    dl__zero_job j;
    j.p = p; j.n = n;
    if (n) dl__parallel_if(cpu, 4.0 * (double)n, (int)((n + ((size_t)1 << 14) - 1) >> 14), dl__zero_task, &j);
}

/* Runs fn for tasks 0..n_tasks-1 on the net's threads (or the caller's job
   system); thread ids index the per-thread scratch. */
static void dl__parallel(const dl__cpu *cpu, int n_tasks, dl__task_fn fn, void *arg) {
    dl_net *net = cpu->net;
    int t;
    if (cpu->threads > 1 && n_tasks > 1) {
        if (net->par_fn) { net->par_fn(net->par_user, n_tasks, fn, arg); return; }
#ifdef DL__THREADS
        if (net->pool || (net->pool = dl__pool_new(cpu->threads)) != NULL) { dl__pool_run(net->pool, n_tasks, fn, arg); return; }
#endif
    }
    for (t = 0; t < n_tasks; t++) fn(arg, t, 0);
}

/* ======================================================================== */
/*  >>losses                                                                */
/* ======================================================================== */
/* loss = mean_n -log softmax(logits_n)[label_n];  dlogits = (softmax - onehot) / n */
float dl_softmax_cross_entropy(const float *logits, const int *labels, int n, int classes, float *dlogits) {
    double total = 0;
    int i, c;
    if (!logits || !labels || n <= 0 || classes <= 0) return NAN;
    for (i = 0; i < n; i++) if (labels[i] < 0 || labels[i] >= classes) return NAN;    /* before writing anything */
    for (i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        float m = z[0];
        double sum = 0;
        for (c = 1; c < classes; c++) if (z[c] > m) m = z[c];
        for (c = 0; c < classes; c++) sum += exp((double)z[c] - m);
        total += log(sum) - ((double)z[labels[i]] - m);
        if (dlogits)
            for (c = 0; c < classes; c++)
                dlogits[(size_t)i * classes + c] = (float)((exp((double)z[c] - m) / sum - (c == labels[i])) / n);
    }
    return (float)(total / n);
}
/* loss = -mean_i logp[i, label_i];  dlogp[i, c] = -(c == label_i) / n */
float dl_nll(const float *logp, const int *labels, int n, int classes, float *dlogp) {
    double total = 0;
    int i, c;
    if (!logp || !labels || n <= 0 || classes <= 0) return NAN;
    for (i = 0; i < n; i++) if (labels[i] < 0 || labels[i] >= classes) return NAN;    /* before writing anything */
    for (i = 0; i < n; i++) {
        total -= logp[(size_t)i * classes + labels[i]];
        if (dlogp)
            for (c = 0; c < classes; c++) dlogp[(size_t)i * classes + c] = c == labels[i] ? -1.0f / (float)n : 0.0f;
    }
    return (float)(total / n);
}
/* loss = mean over all elements of (out - target)^2;  dout = 2 (out - target) / (n * size) */
float dl_mse(const float *out, const float *targets, int n, int size, float *dout) {
    double total = 0;
    size_t i, count = (size_t)n * size;
    if (!out || !targets || n <= 0 || size <= 0) return NAN;
    for (i = 0; i < count; i++) {
        float d = out[i] - targets[i];
        total += (double)d * d;
        if (dout) dout[i] = 2.0f * d / (float)count;
    }
    return (float)(total / (double)count);
}

/* ======================================================================== */
/*  >>optim  Optimizers (PyTorch's update rules)                            */
/* ======================================================================== */
static int dl__optim_state_count(const dl_optim_desc *d) {
    switch (d->kind) {
    case DL_SGD: return d->momentum > 0 ? 1 : 0;            /* momentum buffer */
    case DL_ADAM: case DL_ADAMW: return 2;                  /* m, v */
    default: return 1 + (d->momentum > 0) + (d->centered != 0);  /* v, momentum buffer, mean gradient */
    }
}

/* The update's formulas on 16 floats at a time, for a prefix of a range
   (multiples of 16; the scalar loop below does the rest). Each operation is
   one intrinsic, in the scalar loop's order, unfused, and sqrt and division
   are exact in both: the same bits as the scalar loop. Adam(W) and SGD,
   whose updates are most of a small net's training step. */
typedef struct dl__optim_k {
    float clip, lr, wd, mu, keep, b1, b2, c1, c2, step_size, bc2_sqrt, eps, decay;
    int kind, nesterov, commit;
} dl__optim_k;
#ifdef DL__X86
__attribute__((target("avx512f")))
static size_t dl__optim_avx512(const dl__optim_k *o, size_t len, float *w, float *g, float *s0, float *s1, int *bad) {
    const __m512 clip = _mm512_set1_ps(o->clip), wd = _mm512_set1_ps(o->wd), lr = _mm512_set1_ps(o->lr);
    const __m512i expo = _mm512_set1_epi32(0x7f800000);
    __mmask16 nonfinite = 0;
    size_t i;
#define DL__BAD(x) (nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(x), expo), expo))
    for (i = 0; i + 16 <= len; i += 16) {
        __m512 gc = _mm512_mul_ps(_mm512_loadu_ps(g + i), clip), wi = _mm512_loadu_ps(w + i), gi = gc;
        if (o->kind == DL_SGD) {
            __m512 bi = _mm512_setzero_ps();
            gi = _mm512_add_ps(gc, _mm512_mul_ps(wd, wi));
            if (s0) {
                bi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(o->mu), _mm512_loadu_ps(s0 + i)), _mm512_mul_ps(_mm512_set1_ps(o->keep), gi));
                gi = o->nesterov ? _mm512_add_ps(gi, _mm512_mul_ps(_mm512_set1_ps(o->mu), bi)) : bi;
            }
            wi = _mm512_sub_ps(wi, _mm512_mul_ps(lr, gi));
            if (!o->commit) { DL__BAD(wi); DL__BAD(bi); continue; }
            if (s0) _mm512_storeu_ps(s0 + i, bi);
        } else {
            __m512 mi, vi, den;
            if (o->kind == DL_ADAMW) wi = _mm512_mul_ps(wi, _mm512_set1_ps(o->decay));
            else gi = _mm512_add_ps(gi, _mm512_mul_ps(wd, wi));
            mi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(o->b1), _mm512_loadu_ps(s0 + i)), _mm512_mul_ps(_mm512_set1_ps(o->c1), gi));
            vi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(o->b2), _mm512_loadu_ps(s1 + i)),
                               _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(o->c2), gi), gi));
            den = _mm512_add_ps(_mm512_div_ps(_mm512_maskz_sqrt_ps((__mmask16)0xffff, vi), _mm512_set1_ps(o->bc2_sqrt)), _mm512_set1_ps(o->eps));
            wi = _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(o->step_size), mi), den));
            if (!o->commit) { DL__BAD(wi); DL__BAD(mi); DL__BAD(vi); continue; }
            _mm512_storeu_ps(s0 + i, mi);
            _mm512_storeu_ps(s1 + i, vi);
        }
        if (o->clip != 1.0f) _mm512_storeu_ps(g + i, gc);
        _mm512_storeu_ps(w + i, wi);
    }
#undef DL__BAD
    *bad |= nonfinite != 0;
    return i;
}
/* sum += the squares of x[0..n) in double, over a prefix of 16s; returns its length */
__attribute__((target("avx512f")))
static size_t dl__sumsq_avx512(const float *x, size_t n, double *sum) {
    __m512d a = _mm512_setzero_pd(), b = a;
    double lane[8];
    size_t i;
    int k;
    for (i = 0; i + 16 <= n; i += 16) {
        __m512d u = _mm512_maskz_cvtps_pd((__mmask8)0xff, _mm256_loadu_ps(x + i)), v = _mm512_maskz_cvtps_pd((__mmask8)0xff, _mm256_loadu_ps(x + i + 8));
        a = _mm512_add_pd(a, _mm512_mul_pd(u, u));
        b = _mm512_add_pd(b, _mm512_mul_pd(v, v));
    }
    _mm512_storeu_pd(lane, _mm512_add_pd(a, b));
    for (k = 0; k < 8; k++) *sum += lane[k];
    return i;
}
#endif

/* One pass of the update over every range. With commit 0 it computes the
   new parameters and state without storing them and returns whether all
   are finite; with commit 1 it stores them and the clipped gradients. Both
   passes run the same expressions, so a checked step commits the values
   checked. */
static int dl__optim_pass(const dl_optim_job *job, float clip, int commit) {
    const dl_optim_desc *d = job->d;
    const float lr = job->lr, wd = d->weight_decay, mu = d->momentum;
    const int has_mom = mu > 0;
    float *mom_buf = d->kind == DL_SGD ? job->s[0] : job->s[1], *mean_g = job->s[has_mom ? 2 : 1];
    int r, bad = 0;
    size_t i;
    dl__optim_k o;
#ifdef DL__X86
    const int vec = dl__simd_detect() == &dl__simd_avx512 && d->kind != DL_RMSPROP;
#endif
    memset(&o, 0, sizeof o);
    o.kind = d->kind; o.clip = clip; o.lr = lr; o.wd = wd; o.mu = mu; o.nesterov = d->nesterov; o.commit = commit;
    o.keep = job->step > 1 ? 1.0f - d->dampening : 1.0f;
    o.b1 = d->beta1; o.b2 = d->beta2; o.c1 = 1.0f - d->beta1; o.c2 = 1.0f - d->beta2; o.eps = d->eps;
    o.decay = 1.0f - lr * wd;
    if (d->kind == DL_ADAM || d->kind == DL_ADAMW) {
        o.step_size = (float)(lr / (1.0 - pow(d->beta1, (double)job->step)));
        o.bc2_sqrt = (float)sqrt(1.0 - pow(d->beta2, (double)job->step));
    }
    for (r = 0; r < job->n_ranges; r++) {
        size_t off = job->range_off[r], len = job->range_len[r], start = 0;
        float *w = job->w + off, *g = job->g + off;
#ifdef DL__X86
        if (vec) start = dl__optim_avx512(&o, len, w, g, d->kind == DL_SGD ? (has_mom ? mom_buf + off : NULL) : job->s[0] + off,
                                          d->kind == DL_SGD ? NULL : job->s[1] + off, &bad);
#endif
        switch (d->kind) {
        case DL_SGD: {      /* b = mu b + (1 - dampening) g (g at step 1);  w -= lr (nesterov ? g + mu b : b) */
            float *b = has_mom ? mom_buf + off : NULL, keep = o.keep;
            for (i = start; i < len; i++) {
                float gc = g[i] * clip, gi = gc + wd * w[i], bi = 0, wi;
                if (b) { bi = mu * b[i] + keep * gi; gi = d->nesterov ? gi + mu * bi : bi; }
                wi = w[i] - lr * gi;
                if (!commit) { bad |= dl__inf_nan(wi) | dl__inf_nan(bi); continue; }
                if (clip != 1.0f) g[i] = gc;
                if (b) b[i] = bi;
                w[i] = wi;
            }
            break;
        }
        case DL_ADAM: case DL_ADAMW: { /* m, v moments; w -= lr/bc1 m / (sqrt(v)/sqrt(bc2) + eps) */
            float *m = job->s[0] + off, *v = job->s[1] + off;
            const float b1 = d->beta1, b2 = d->beta2, step_size = o.step_size, bc2_sqrt = o.bc2_sqrt;
            for (i = start; i < len; i++) {
                float gc = g[i] * clip, gi = gc, wi = w[i], mi, vi;
                if (d->kind == DL_ADAMW) wi *= 1.0f - lr * wd;
                else gi += wd * wi;
                mi = b1 * m[i] + (1.0f - b1) * gi;
                vi = b2 * v[i] + (1.0f - b2) * gi * gi;
                wi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + d->eps);
                if (!commit) { bad |= dl__inf_nan(wi) | dl__inf_nan(mi) | dl__inf_nan(vi); continue; }
                if (clip != 1.0f) g[i] = gc;
                m[i] = mi; v[i] = vi; w[i] = wi;
            }
            break;
        }
        default: {          /* RMSProp: v = a v + (1-a) g^2;  w -= lr g / (sqrt(v [- mean_g^2]) + eps) */
            float *v = job->s[0] + off, *b = has_mom ? mom_buf + off : NULL;
            float *mg = d->centered ? mean_g + off : NULL;
            const float a = d->alpha;
            for (i = 0; i < len; i++) {
                float gc = g[i] * clip, gi = gc + wd * w[i], vi, mgi = 0, bi = 0, avg, wi = w[i];
                vi = a * v[i] + (1.0f - a) * gi * gi;
                if (mg) { mgi = a * mg[i] + (1.0f - a) * gi; avg = sqrtf(vi - mgi * mgi) + d->eps; }
                else avg = sqrtf(vi) + d->eps;
                if (b) { bi = mu * b[i] + gi / avg; wi -= lr * bi; }
                else wi -= lr * gi / avg;
                if (!commit) { bad |= dl__inf_nan(wi) | dl__inf_nan(vi) | dl__inf_nan(mgi) | dl__inf_nan(bi); continue; }
                if (clip != 1.0f) g[i] = gc;
                v[i] = vi; w[i] = wi;
                if (mg) mg[i] = mgi;
                if (b) b[i] = bi;
            }
            break;
        }
        }
    }
    return !bad;
}

/* A step changes nothing, and returns DL_ERR_NUMERIC, when a gradient is
   not finite or when a parameter or state value would not be: the update
   is computed twice, first only to check it (cheap next to a forward and
   backward pass, and no copy of the state is needed to undo it). */
int dl_optim_step_cpu(const dl_optim_job *job) {
    float clip = 1.0f;
    double sq = 0;
    int r;
    size_t i;
    if (!job || !job->d || (job->n_ranges && (!job->range_off || !job->range_len || !job->w || !job->g))) return DL_ERR_ARG;
    for (r = 0; r < job->n_ranges; r++) {
        const float *g = job->g + job->range_off[r];
        i = 0;
#ifdef DL__X86
        if (dl__simd_detect() == &dl__simd_avx512) i = dl__sumsq_avx512(g, job->range_len[r], &sq);
#endif
        for (; i < job->range_len[r]; i++) sq += (double)g[i] * g[i];
    }
    if (!dl__finite_d(sq)) return DL_ERR_NUMERIC;
    if (job->d->clip_norm > 0 && sqrt(sq) > job->d->clip_norm) clip = (float)(job->d->clip_norm / (sqrt(sq) + 1e-6));
    if (!dl__optim_pass(job, clip, 0)) return DL_ERR_NUMERIC;
    dl__optim_pass(job, clip, 1);
    return DL_OK;
}

/* ======================================================================== */
/*  >>cpu  The CPU backend                                                  */
/* ======================================================================== */
static void *dl__cpu_alloc(dl_backend *b, size_t bytes) { (void)b; return DL_MALLOC(bytes ? bytes : 1); }
static void dl__cpu_release(dl_backend *b, void *p) { (void)b; DL_FREE(p); }
static int dl__cpu_copy(dl_backend *b, void *dst, const void *src, size_t bytes, int dir) {
    (void)b; (void)dir;
    if (bytes) memmove(dst, src, bytes);
    return DL_OK;
}
static int dl__cpu_zero(dl_backend *b, void *p, size_t bytes) { (void)b; if (bytes) memset(p, 0, bytes); return DL_OK; }
static int dl__cpu_forward(dl_backend *b, const dl_layer *l, const dl_exec *e) { (void)b; return dl__op(l->op)->forward(l, e); }
static int dl__cpu_backward(dl_backend *b, const dl_layer *l, const dl_exec *e) { (void)b; return dl__op(l->op)->backward(l, e); }
static int dl__cpu_loss(dl_backend *b, int kind, const float *out, const void *targets, int n, int size, float *dout, float *loss) {
    (void)b;
    if (kind == DL_LOSS_MEAN) {          /* the batch mean of a scalar output */
        double s = 0;
        int i;
        for (i = 0; i < n; i++) { s += out[i]; dout[i] = 1.0f / (float)n; }
        *loss = (float)(s / n);
        (void)size;
        return DL_OK;
    }
    *loss = kind == DL_LOSS_SOFTMAX_CE ? dl_softmax_cross_entropy(out, (const int *)targets, n, size, dout)
          : kind == DL_LOSS_NLL ? dl_nll(out, (const int *)targets, n, size, dout)
                                : dl_mse(out, (const float *)targets, n, size, dout);
    return DL_OK;
}
static int dl__cpu_optim_step(dl_backend *b, const dl_optim_job *job) { (void)b; return dl_optim_step_cpu(job); }

static void dl__cpu_init(dl_backend *b) {
    memset(b, 0, sizeof *b);
    b->name = "cpu";
    b->alloc = dl__cpu_alloc;
    b->release = dl__cpu_release;
    b->copy = dl__cpu_copy;
    b->zero = dl__cpu_zero;
    b->forward = dl__cpu_forward;
    b->backward = dl__cpu_backward;
    b->loss = dl__cpu_loss;
    b->optim_step = dl__cpu_optim_step;
}

/* ======================================================================== */
/*  >>exec  Execution contexts: buffers planned once, then forward, backward */
/* ======================================================================== */

/* Under AddressSanitizer every buffer of a plan is followed by a poisoned
   red zone and only the floats a buffer was planned for are addressable,
   so a kernel that strays out of its buffer is caught even though all of
   them share one allocation. Other builds lay out exactly as before. */
#if defined(__SANITIZE_ADDRESS__)
#define DL__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL__ASAN 1
#endif
#endif
#ifdef DL__ASAN
#include <sanitizer/asan_interface.h>
#define DL__RZ ((size_t)16)
#define DL__POISON(p, floats, on) do { if (on) ASAN_POISON_MEMORY_REGION(p, (floats) * sizeof(float)); \
                                       else ASAN_UNPOISON_MEMORY_REGION(p, (floats) * sizeof(float)); } while (0)
#else
#define DL__RZ ((size_t)0)
#define DL__POISON(p, floats, on) ((void)(p), (void)(floats), (void)(on))
#endif

static void dl__ctx_release(dl_ctx *c) {
    int i;
    if (c->arena && c->b == &c->net->cpu) DL__POISON(c->arena, c->arena_floats, 0);
    if (c->arena) c->b->release(c->b, c->arena);
    DL_FREE(c->vals);                   /* the host tables' one block */
    DL_FREE(c->prep);                   /* the prepared weights' one block */
    c->prep = NULL;
    for (i = 0; i < c->n_workers; i++) dl__ctx_release(&c->workers[i]);
    DL_FREE(c->workers);
    c->workers = NULL; c->n_workers = 0;
    DL_FREE(c->host_out);
    c->arena = NULL; c->vals = NULL; c->out = NULL; c->host_out = NULL; c->host_out_cap = 0;
    c->arena_floats = 0; c->cap_n = 0; c->last = NULL; c->layers = 0;
}

/* The host tables, one block per graph, strictest alignment first: the
   values, seeds, 3 pointer tables, the placement order, consumer counts,
   5 flag arrays. */
static int dl__ctx_tables(dl_ctx *c) {
    int L = c->net->n_layers;
    char *host;
    if (c->vals && c->layers == L) return 1;
    DL_FREE(c->vals);
    host = (char *)dl__calloc((size_t)L, DL__VALS * sizeof(dl__val) + sizeof(uint64_t) + 3 * sizeof(float *) + (DL__VALS + 1) * sizeof(int) + 5);
    c->vals = (dl__val *)(void *)host;
    if (!host) { c->out = NULL; c->layers = 0; return 0; }
    c->seed = (uint64_t *)(void *)(c->vals + DL__VALS * (size_t)L);
    c->out = (float **)(void *)(c->seed + L);
    c->dout = c->out + L;
    c->saved = c->dout + L;
    c->order = (int *)(void *)(c->saved + L);
    c->cons = c->order + DL__VALS * (size_t)L;
    c->needed = (unsigned char *)(c->cons + L);
    c->rg = c->needed + L;
    c->mayg = c->rg + L;
    c->keep = c->mayg + L;
    c->replay = c->keep + L;
    c->layers = L;
    return 1;
}

/* Views (reshape, flatten) share their input's buffers: the layer that owns them. */
static int dl__root(const dl_net *net, int i) {
    while (DL__HAS(net->layers[i], DL__F_VIEW)) i = net->layers[i]->in[0]->index;
    return i;
}

/* Liveness over one training pass to out, in steps: inputs are copied at
   0, layer i runs forward at i + 1, the loss at out + 2, layer i's backward
   at 2 out + 3 - i, and the caller reads the results at 2 out + 4. Each
   value (a layer's output, the gradient of that output, what forward saves
   for it) lives from the step that first writes it to the last that reads
   it. A gradient is first written by the backward of its latest consumer
   (zeroed just before, dl__backward) and last read by its own layer's
   backward, so it may take memory an activation no longer needs. Backward
   reads a layer's inputs and output unless its op says otherwise
   (DL__F_BWD_NO_IN, _NO_OUT). mayg: the layers that can get a gradient
   whatever is frozen later (freezing needs no new plan).
   Replay (DL__F_REPLAY, CPU, shared plans): the output of a batchnorm that
   later backward passes read (a prelu's, say) is not kept through the
   middle of the pass but recomputed, bit for bit, from its input and saved
   statistics into a second value just before the first of them runs
   (dl__backward); its input stays anyway for its own backward. */
static void dl__liveness(dl_ctx *c, int n, int out, int replay) {
    dl_net *net = c->net;
    dl__val *v = c->vals;
    int i, k, T = 2 * out + 4, ro = dl__root(net, out);
    memset(c->needed, 0, (size_t)net->n_layers);
    memset(c->replay, 0, (size_t)net->n_layers);
    c->needed[out] = 1;
    for (i = out; i >= 0; i--)
        if (c->needed[i]) for (k = 0; k < net->layers[i]->n_in; k++) c->needed[net->layers[i]->in[k]->index] = 1;
    for (i = 0; i <= out; i++) {
        const dl_layer *l = net->layers[i];
        c->mayg[i] = DL__HAS(l, DL__F_SOURCE) && net->input_grad;
        for (k = 0; k < l->n_params; k++) c->mayg[i] |= net->params[l->first_param + k].trainable;
        for (k = 0; k < l->n_in; k++) c->mayg[i] |= c->mayg[l->in[k]->index];
        /* what a replay reads must not be replayed itself */
        c->replay[i] = (unsigned char)(replay && c->needed[i] && DL__HAS(l, DL__F_REPLAY) && c->mayg[i] && i != ro);
        for (k = 0; k < l->n_in; k++) if (c->replay[dl__root(net, l->in[k]->index)]) c->replay[i] = 0;
    }
    for (i = 0; i <= out; i++) {
        const dl_layer *l = net->layers[i];
        int fwd = DL__HAS(l, DL__F_SOURCE) ? 0 : i + 1, bwd = 2 * out + 3 - i, src = DL__HAS(l, DL__F_SOURCE);
        dl__val *y = v + DL__VALS * i;
        if (!c->needed[i] || DL__HAS(l, DL__F_VIEW)) continue;
        y[0].floats = (size_t)n * l->size;
        y[0].def = y[0].last = fwd;
        if (c->mayg[i] && !src && !DL__HAS(l, DL__F_BWD_NO_OUT)) y[0].last = bwd;
        if (c->mayg[i]) {
            y[1].floats = (size_t)n * l->size;
            y[1].def = T;
            y[1].last = src ? T : bwd;
        }
        if ((y[2].floats = dl_layer_saved_floats(l, n)) != 0) {
            y[2].def = fwd;
            y[2].last = c->mayg[i] ? bwd : fwd;
        }
        for (k = 0; k < l->n_in; k++) {
            int r = dl__root(net, l->in[k]->index);
            dl__val *x = v + DL__VALS * r;
            if (x->last < fwd) x->last = fwd;
            if (c->mayg[i] && !DL__HAS(l, DL__F_BWD_NO_IN)) {
                if (!c->replay[r]) { if (x->last < bwd) x->last = bwd; }
                else if (!x[3].floats) { x[3].floats = x->floats; x[3].def = x[3].last = bwd; }
                else { if (x[3].def > bwd) x[3].def = bwd; if (x[3].last < bwd) x[3].last = bwd; }
            }
            if (x[1].floats && x[1].def > bwd) x[1].def = bwd;
        }
    }
    v[DL__VALS * ro].last = T;
    if (v[DL__VALS * ro + 1].floats) v[DL__VALS * ro + 1].def = out + 2;
    for (i = 0; i <= out; i++) c->replay[i] = v[DL__VALS * i + 3].floats != 0;
}

/* First fit, largest area (floats x steps alive) first: each value at
   the lowest offset that no value placed before it and alive at the same
   time uses. On the bench nets this is within 0.1% of the largest sum of
   values alive at one step (by size alone: up to 4% over). Returns the floats. */
static double dl__area(const dl__val *v) { return (double)v->floats * ((double)v->last - v->def + 1); }
static size_t dl__place(dl__val *v, int *order, int count) {
    size_t top = 0;
    int a, b, moved;
    for (a = 1; a < count; a++)                     /* insertion sort: by area, then by index */
        for (b = a; b > 0 && dl__area(&v[order[b]]) > dl__area(&v[order[b - 1]]); b--) {
            int t = order[b]; order[b] = order[b - 1]; order[b - 1] = t;
        }
    for (a = 0; a < count; a++) {
        dl__val *x = v + order[a];
        size_t size = dl__align(x->floats) + DL__RZ;
        x->off = 0;
        do {
            moved = 0;
            for (b = 0; b < a; b++) {
                const dl__val *u = v + order[b];
                size_t end = u->off + dl__align(u->floats) + DL__RZ;
                if (u->def <= x->last && x->def <= u->last && x->off < end && u->off < x->off + size) { x->off = end; moved = 1; }
            }
        } while (moved);
        if (x->off + size > top) top = x->off + size;
    }
    return top;
}

/* Lays out every buffer for batches of up to n in one backend allocation.
   Inference plans give each layer its own output, so any layer's output
   can be read after a forward to any other. Training plans are made for
   one output: activations, gradients and what forward saves for backward
   share memory wherever their lifetimes over that pass do not overlap
   (dl__liveness), and the plan also holds targets and a copy of the
   statistics to restore after a failed step. net->plan_unshared (tests)
   gives every value its own memory. The layout is redone in the same
   allocation when the output or mode changes and it fits. */
static int dl__layout(dl_ctx *c, int n, int out, int train, int threads) {
    dl_net *net = c->net;
    dl__val *v = c->vals;
    int i, count = 0, L = net->n_layers;
    size_t total, ws = 0, max_size = 1, ws_shared = 0, ws_thread = 0, fuse_floats = 0;
    double need = (double)net->ns;      /* the same sums in floating point: sizes that wrap size_t are refused */
    memset(v, 0, DL__VALS * (size_t)L * sizeof *v);
    if (train) dl__liveness(c, n, out, !net->plan_unshared && net->b == &net->cpu);
    else for (i = 0; i < L; i++) {
        c->replay[i] = 0;
        if (!DL__HAS(net->layers[i], DL__F_VIEW)) v[DL__VALS * i].floats = (size_t)n * net->layers[i]->size;
    }
    for (i = 0; i < DL__VALS * L; i++) {
        need += (double)v[i].floats + 64;
        if (!v[i].floats) continue;
        if (!train || net->plan_unshared) { v[i].def = 0; v[i].last = INT_MAX / 2; }
        c->order[count++] = i;
    }
    for (i = 0; i < L; i++) {
        const dl_layer *l = net->layers[i];
        if ((size_t)l->size > max_size) max_size = (size_t)l->size;
        if (DL__HAS(l, DL__F_BATCH_STATS) && 2 * (size_t)l->shape[0] > fuse_floats) fuse_floats = 2 * (size_t)l->shape[0];
        if (net->b == &net->cpu) {
            size_t sh, th;
            dl__cpu_ws(net->simd, l, n, &sh, &th);
            if (sh > ws_shared) ws_shared = sh;
            if (th > ws_thread) ws_thread = th;
        } else if (dl_layer_ws_floats(l, n) > ws) ws = dl_layer_ws_floats(l, n);
    }
    c->ws_used[0] = ws_shared; c->ws_used[1] = ws_thread; c->ws_used[2] = fuse_floats;
    if (net->b == &net->cpu) ws = dl__align(ws_shared) + DL__RZ + (size_t)threads * (dl__align(ws_thread) + DL__RZ) + dl__align(fuse_floats);
    need += (double)ws + (double)n * max_size;
    if (need > (double)((size_t)-1 / 8))
        return dl__fail(c->err, DL_ERR_NOMEM, "out of memory: batch %d needs more buffer space than can be addressed", n);
    total = dl__place(v, c->order, count);
    c->ws_off = total; total += dl__align(ws) + DL__RZ;
    c->t_off = total; total += train ? dl__align((size_t)n * net->layers[out]->size) + DL__RZ : 0;
    c->b_off = total; total += train ? dl__align(net->ns) : 0;
    c->plan_floats = total ? total : 1;
    return DL_OK;
}

/* Points the outputs at their memory in forward (backward 0) or backward:
   a replayed output has a second value for backward (dl__liveness). */
static void dl__bind_outputs(dl_ctx *c, int backward) {
    int i;
    for (i = 0; i < c->net->n_layers; i++) {
        const dl__val *v = c->vals + DL__VALS * dl__root(c->net, i);
        c->out[i] = !v[0].floats ? NULL : c->arena + (backward && v[3].floats ? v[3].off : v[0].off);
    }
}

/* Points the tables into the arena and opens, under AddressSanitizer, what the layout uses. */
static void dl__layout_bind(dl_ctx *c, int n, int out, int train, int threads) {
    dl_net *net = c->net;
    int i, L = net->n_layers;
    size_t ws_shared = dl__align(c->ws_used[0]) + DL__RZ, ws_thread = dl__align(c->ws_used[1]) + DL__RZ;
    dl__bind_outputs(c, 0);
    for (i = 0; i < L; i++) {
        int r = dl__root(net, i);
        const dl__val *v = c->vals + DL__VALS * r;
        c->dout[i] = v[1].floats ? c->arena + v[1].off : NULL;
        c->saved[i] = i == r && v[2].floats ? c->arena + v[2].off : NULL;
        /* what stays valid after the pass: 1 the output, 2 the gradient */
        c->keep[i] = (unsigned char)((v[0].floats && (!train || v[0].last >= 2 * out + 4)) | (v[1].floats && v[1].last >= 2 * out + 4 ? 2 : 0));
    }
    c->ws = c->arena + c->ws_off;
    c->targets = train ? c->arena + c->t_off : NULL;
    c->stats_backup = train ? c->arena + c->b_off : NULL;
    if (DL__RZ && net->b == &net->cpu) {       /* poison all, then open each buffer as planned */
        DL__POISON(c->arena, c->arena_floats, 1);
        for (i = 0; i < DL__VALS * L; i++) if (c->vals[i].floats) DL__POISON(c->arena + c->vals[i].off, c->vals[i].floats, 0);
        DL__POISON(c->ws, c->ws_used[0], 0);
        for (i = 0; i < threads; i++) DL__POISON(c->ws + ws_shared + (size_t)i * ws_thread, c->ws_used[1], 0);
        DL__POISON(c->ws + ws_shared + (size_t)threads * ws_thread, c->ws_used[2], 0);
        if (train) { DL__POISON(c->targets, (size_t)n * net->layers[out]->size, 0); DL__POISON(c->stats_backup, net->ns, 0); }
    }
    c->cpu.simd = net->simd;
    c->cpu.net = net;
    c->cpu.threads = threads;
    c->cpu.shared = c->ws;
    c->cpu.thread_ws = c->ws + ws_shared;
    c->cpu.thread_floats = ws_thread;
    c->fuse = net->b == &net->cpu ? c->ws + ws_shared + (size_t)threads * ws_thread : NULL;
}

/* Plans c for a pass to out at batch n (train: with gradients). The
   allocation is kept while the graph and backend stay and it is large
   enough: it only grows, so passes that alternate allocate nothing. */
static int dl__plan(dl_ctx *c, int n, const dl_layer *out, int train) {
    dl_net *net = c->net;
    int rc, key = train ? out->index : -1, same = c->arena && c->version == net->version && c->b == net->b;
    int threads = c == net->ctx ? net->threads : 1;
    if (same && n <= c->cap_n && c->train_plan == train && c->plan_out == key) return DL_OK;
    if (!same) dl__ctx_release(c);
    else if (n < c->cap_n) n = c->cap_n;
    if (!dl__ctx_tables(c)) return dl__fail(c->err, DL_ERR_NOMEM, "out of memory planning buffers for batch %d", n);
    c->cap_n = 0;           /* the tables no longer describe the arena: no plan is valid until this one is done */
    c->last = NULL;
    if ((rc = dl__layout(c, n, out->index, train, threads))) return rc;
    if (c->arena && c->plan_floats > c->arena_floats) {
        if (c->b == &net->cpu) DL__POISON(c->arena, c->arena_floats, 0);
        c->b->release(c->b, c->arena);
        c->arena = NULL;
    }
    if (!c->arena) {
        c->arena = (float *)net->b->alloc(net->b, c->plan_floats * sizeof(float));
        if (!c->arena)
            return dl__fail(c->err, DL_ERR_NOMEM, "out of memory: %lu MB of buffers for batch %d on %s",
                            (unsigned long)(c->plan_floats * sizeof(float) >> 20), n, net->b->name);
        c->arena_floats = c->plan_floats;
    }
    c->b = net->b;
    c->version = net->version;
    c->cap_n = n;
    c->train_plan = train;
    c->plan_out = key;
    dl__layout_bind(c, n, out->index, train, threads);
    return DL_OK;
}

/* Synchronised batchnorm's sums through the application's collective. The
   message goes to the backend's error, which the failing layer's message
   quotes (cleared first, so it never outlives the next call). */
static int dl__exec_allreduce_sum(const dl_exec *e, float *buf, size_t count) {
    dl_net *net = e->net;
    int r = net->coll(buf, count, DL_ALLREDUCE_SUM, net->b != &net->cpu, net->coll_user);
    net->sync_calls++;
    net->b->error[0] = 0;
    if (!r) return DL_OK;
    snprintf(net->b->error, sizeof net->b->error, "all-reduce (sum) of the synchronised batchnorm sums (%lu floats): "
             "the collective returned %d", (unsigned long)count, r);
    return DL_ERR_BACKEND;
}

/* The buffers of layer l for one call, in the working memory. */
typedef struct dl__bind {
    dl_exec e;
    const float *in[64];
    float *din[64], *w[8], *dw[8];
} dl__bind;

static void dl__bind_layer(dl_ctx *c, const dl_layer *l, int backward, dl__bind *b) {
    dl_net *net = c->net;
    int i;
    memset(&b->e, 0, sizeof b->e);
    for (i = 0; i < l->n_in; i++) {
        b->in[i] = c->out[l->in[i]->index];
        b->din[i] = backward && c->rg[l->in[i]->index] ? c->dout[l->in[i]->index] : NULL;
    }
    for (i = 0; i < l->n_params; i++) {
        const dl_param *p = &net->params[l->first_param + i];
        b->w[i] = (p->trainable ? net->dw : net->ds) + p->offset;
        b->dw[i] = backward && p->trainable && !p->frozen ? net->dg + p->offset : NULL;
    }
    b->e.n = c->n;
    b->e.first = c->first;
    b->e.train = c->train;
    b->e.in = b->in;
    b->e.out = c->out[l->index];
    b->e.din = b->din;
    b->e.dout = backward ? c->dout[l->index] : NULL;
    b->e.w = b->w;
    b->e.dw = b->dw;
    b->e.saved = c->saved[l->index];
    b->e.ws = c->ws;
    b->e.seed = c->seed[l->index];
    b->e.cpu = c->b == &net->cpu ? &c->cpu : NULL;
    if (c->train && net->sync_bn && net->coll && DL__HAS(l, DL__F_BATCH_STATS)) {
        b->e.allreduce_sum = dl__exec_allreduce_sum;
        b->e.net = net;
    }
}

/* A batch is refused before anything runs (or is read) when one layer's
   activations would pass 2^30 floats (4 GiB): kernels count tasks, planes
   and GEMM columns in int, and no batch of small CNNs comes close. */
#define DL__MAX_BATCH_FLOATS ((size_t)1 << 30)
static int dl__check_batch(const dl_net *net, const dl_layer *out, int n, const char *call, char *err) {
    int i;
    if (n <= 0) return dl__fail(err, DL_ERR_ARG, "%s: forward to '%s': batch size %d must be positive", call, out->name, n);
    for (i = 0; i < net->n_layers; i++) {
        const dl_layer *l = net->layers[i];
        if ((size_t)n > DL__MAX_BATCH_FLOATS / (size_t)l->size)
            return dl__fail(err, DL_ERR_ARG, "%s: batch %d is too large: layer '%s' would hold %.0f floats, more than 2^30",
                            call, n, l->name, (double)n * l->size);
        if (l->op == DL_OP_MAXPOOL2D_ARGMAX && (l->a.mode & DL_ARGMAX_FLAT) && (double)n * l->in[0]->size > 16777216.0)
            return dl__fail(err, DL_ERR_ARG, "%s: batch %d is too large for '%s': its flat indices pass 2^24, where floats stop being exact",
                            call, n, l->name);
    }
    return DL_OK;
}

static int dl__check_layer(dl_net *net, const dl_layer *l, const char *call, char *err) {
    if (!l) {           /* err may be net->err: copy the earlier message first */
        char prev[200];
        snprintf(prev, sizeof prev, "%.199s", net->err);
        return dl__fail(err, DL_ERR_ARG, "%s: layer is NULL (did dl_net_find or building it fail?%s%s; "
                        "dl_net_output(net) is the last layer)", call, prev[0] ? " last error: " : "", prev);
    }
    if (l->net != net) return dl__fail(err, DL_ERR_ARG, "%s: layer '%s' belongs to another net", call, l->name);
    return DL_OK;
}

/* grad: plan gradient buffers too, so that dl_backward may follow even an
   eval-mode forward (train 0). */
/* The one needed layer that reads l, when l has exactly one reader, is not
   the requested output, and is that reader's only input; else NULL. */
static dl_layer *dl__sole_reader(const dl_net *net, const unsigned char *needed, const int *cons, const dl_layer *l,
                                 const dl_layer *out) {
    int i;
    if (l == out || cons[l->index] != 1) return NULL;
    for (i = l->index + 1; i <= out->index; i++) {
        dl_layer *r = net->layers[i];
        if (needed[i] && r->n_in == 1 && r->in[0] == l) return r;
    }
    return NULL;
}
/* An eval-mode batchnorm as a per-channel scale and shift (C each, in to). */
static void dl__bn_fold(const dl_net *net, const dl_layer *r, float *to) {
    const float *g = net->dw + net->params[r->first_param].offset, *b = net->dw + net->params[r->first_param + 1].offset;
    const float *mean = net->ds + net->params[r->first_param + 2].offset, *var = net->ds + net->params[r->first_param + 3].offset;
    int C = r->shape[0], k;
    for (k = 0; k < C; k++) {       /* the same arithmetic as dl__batchnorm_forward in eval */
        float inv = (float)(1.0 / sqrt((double)var[k] + r->a.eps)), sc = g[k] * inv;
        to[k] = sc;
        to[C + k] = b[k] - mean[k] * sc;
    }
}
/* Inference on the CPU prepares once per parameter change (net->pgen) and
   graph (net->version), not per call: every conv and dense layer's weights
   packed as its forward GEMM's A (what dl__pack_a_all would write each
   call: the same floats, so the same results), every batchnorm folded. One
   block; DL_ERR_NOMEM (the message in err, for call) when it cannot be had. */
static int dl__prepare(dl_ctx *c, char *err, const char *call) {
    dl_net *net = c->net;
    size_t floats = 0, at;
    int i;
    if (c->prep && c->prep_version == net->version && c->prep_pgen == net->pgen) return DL_OK;
    DL_FREE(c->prep);
    c->prep = NULL;
    for (i = 0; i < net->n_layers; i++) {
        const dl_layer *l = net->layers[i];
        dl__conv g = dl_layer_conv_geom(l);
        if (l->op == DL_OP_CONV2D) floats += dl__align((size_t)g.G * dl__apack_floats(net->simd, g.Mg, g.K));
        else if (l->op == DL_OP_DENSE) floats += dl__align(dl__apack_floats(net->simd, l->a.units, l->in[0]->size));
        else if (DL__HAS(l, DL__F_BATCH_STATS)) floats += dl__align(2 * (size_t)l->shape[0]);
    }
    at = dl__align((size_t)net->n_layers * sizeof(float *) / sizeof(float) + 1);
    if (!(c->prep = (float **)dl__calloc(at + floats, sizeof(float))))
        return dl__fail(err, DL_ERR_NOMEM, "%s: out of memory preparing the weights for inference", call);
    for (i = 0; i < net->n_layers; i++) {
        const dl_layer *l = net->layers[i];
        float *p = (float *)(void *)c->prep + at;
        dl__gemm gm;
        int grp;
        memset(&gm, 0, sizeof gm);
        if (l->op == DL_OP_CONV2D) {
            dl__conv g = dl_layer_conv_geom(l);
            size_t per = dl__apack_floats(net->simd, g.Mg, g.K);
            gm.M = g.Mg; gm.K = g.K;
            for (grp = 0; grp < g.G; grp++) {
                gm.A = dl__plain(net->dw + net->params[l->first_param].offset + (size_t)grp * g.Mg * g.K, (size_t)g.K, 1);
                dl__pack_a_all(net->simd, &gm, p + (size_t)grp * per);
            }
            at += dl__align((size_t)g.G * per);
        } else if (l->op == DL_OP_DENSE) {
            gm.M = l->a.units; gm.K = l->in[0]->size;
            gm.A = dl__plain(net->dw + net->params[l->first_param].offset, (size_t)gm.K, 1);
            dl__pack_a_all(net->simd, &gm, p);
            at += dl__align(dl__apack_floats(net->simd, gm.M, gm.K));
        } else if (DL__HAS(l, DL__F_BATCH_STATS)) {
            dl__bn_fold(net, l, p);
            at += dl__align(2 * (size_t)l->shape[0]);
        } else continue;
        c->prep[i] = p;
    }
    c->prep_version = net->version;
    c->prep_pgen = net->pgen;
    return DL_OK;
}

/* Inference fusion on the CPU: a conv or dense layer absorbs a following
   batchnorm (eval: a per-channel scale and shift: prep's fold when given,
   else folded into fuse[0..2C)) and activation, which then never touch
   memory. needed and cons describe the pass (dl__forward); absorbed layers
   are marked 2 in needed. Returns the last layer of the chain, whose buffer
   receives the result. dl_freeze makes the same decisions through this
   function, so a frozen net computes what dl_predict does, bit for bit. */
static dl_layer *dl__fuse_chain(const dl_net *net, unsigned char *needed, const int *cons, dl_layer *l,
                                const dl_layer *out, float *const *prep, float *fuse, dl__epilogue *epi) {
    dl_layer *last = l, *r = dl__sole_reader(net, needed, cons, l, out);
    int C = l->shape[0];
    memset(epi, 0, sizeof *epi);
    if (r && DL__HAS(r, DL__F_BATCH_STATS)) {
        const float *f = prep ? prep[r->index] : fuse;
        if (!prep && fuse) dl__bn_fold(net, r, fuse);   /* no fuse: another backend folds it (dl_fused) */
        epi->scale = f;
        epi->shift = f ? f + C : NULL;
        epi->bn = r;
        needed[r->index] = 2;
        last = r;
        r = dl__sole_reader(net, needed, cons, r, out);
    }
    if (r && DL__HAS(r, DL__F_FUSE_ACT)) {
        epi->act = dl__op(r->op)->act;
        epi->alpha = r->a.alpha;
        epi->beta = r->a.beta;
        if (epi->act == DL__ACT_PRELU) epi->slope = net->dw + net->params[r->first_param].offset;
        epi->act_layer = r;
        needed[r->index] = 2;
        last = r;
    }
    return last;
}

/* What a forward reads: n == 0 means the graph's one input layer reads
   xs[0]; else input layers[k] reads xs[k]. */
typedef struct dl__feed { int n; dl_layer *const *layers; const float *const *xs; int first; } dl__feed;   /* first: dl_exec's */
static const float *dl__feed_data(const dl__feed *f, const dl_layer *l) {
    int k;
    if (!f->n) return f->xs[0];
    for (k = 0; k < f->n; k++) if (f->layers[k] == l) return f->xs[k];
    return NULL;
}
/* Checks what the caller passed: layers of this net that are inputs, data not NULL. */
static int dl__feed_check(dl_ctx *c, const dl__feed *f, const dl_layer *out, const char *call) {
    int k;
    if (f->n < 0 || (f->n && (!f->layers || !f->xs)) || !f->xs)
        return dl__fail(c->err, DL_ERR_ARG, "%s: forward to '%s': %d inputs%s", call, out->name, f->n, f->xs ? ", layers NULL" : ", data NULL");
    if (!f->n && !f->xs[0]) return dl__fail(c->err, DL_ERR_ARG, "%s: forward to '%s': input data is NULL", call, out->name);
    for (k = 0; k < f->n; k++) {
        const dl_layer *l = f->layers[k];
        if (!l || l->net != c->net || !DL__HAS(l, DL__F_SOURCE))
            return dl__fail(c->err, DL_ERR_ARG, "%s: input %d %s%s%s", call, k, !l ? "is NULL" : l->net != c->net ? "belongs to another net: '" :
                            "is not an input layer: '", l ? l->name : "", l ? "'" : "");
        if (!f->xs[k]) return dl__fail(c->err, DL_ERR_ARG, "%s: forward to '%s': data of input '%s' is NULL", call, out->name, l->name);
    }
    return DL_OK;
}
/* In training mode a NaN would reach the batchnorm statistics: refused before anything runs. */
static int dl__feed_finite(dl_ctx *c, const dl_layer *in, const float *x, int n, const dl_layer *out, const char *call) {
    size_t k, count = (size_t)n * in->size;
    for (k = 0; k < count; k++)
        if (!dl__finite(x[k]))
            return dl__fail(c->err, DL_ERR_NUMERIC, "%s: forward to '%s' in training mode: input '%s' sample %lu holds %g at "
                            "index %lu; nothing was changed", call, out->name, in->name, (unsigned long)(k / (size_t)in->size),
                            (double)x[k], (unsigned long)(k % (size_t)in->size));
    return DL_OK;
}

/* needed[i] = 1 for the layers a pass to out runs, else 0. */
static void dl__mark_needed(const dl_net *net, const dl_layer *out, unsigned char *needed) {
    int i, j;
    memset(needed, 0, (size_t)net->n_layers);
    needed[out->index] = 1;
    for (i = out->index; i >= 0; i--)
        if (needed[i]) for (j = 0; j < net->layers[i]->n_in; j++) needed[net->layers[i]->in[j]->index] = 1;
}
static int dl__forward(dl_ctx *c, dl_layer *out, const dl__feed *f, int n, int train, int grad, const char *call) {
    dl_net *net = c->net;
    dl_ctx *pc = c->owner ? c->owner : c;      /* whose prepared weights: a worker of dl__predict uses its owner's */
    dl_layer *input = NULL;
    int i, j, rc, fuse;
    unsigned sync_calls = 0;
    if ((rc = dl__check_layer(net, out, call, c->err))) return rc;
    if ((rc = dl__feed_check(c, f, out, call))) return rc;
    if ((rc = dl__check_batch(net, out, n, call, c->err))) return rc;
    if ((rc = dl__plan(c, n, out, train || grad))) return rc;
    if (!train && !grad && net->b->graph && (rc = net->b->graph(net->b, 1)))   /* dl_predict: ends at the copy of its result */
        return dl__fail(c->err, rc, "%s: %s", call, net->b->error);
    dl__bind_outputs(c, 0);         /* a backward may have pointed replayed outputs elsewhere */
    dl__mark_needed(net, out, c->needed);
    for (i = out->index; i >= 0; i--)
        if (c->needed[i]) {
            dl_layer *l = net->layers[i];
            if (DL__HAS(l, DL__F_SOURCE)) {
                if (!f->n && input) return dl__fail(c->err, DL_ERR_UNSUPPORTED, "%s: forward to '%s': it reads two inputs, '%s' and '%s'; "
                                                    "give each its data with the _multi calls", call, out->name, l->name, input->name);
                if (!dl__feed_data(f, l)) return dl__fail(c->err, DL_ERR_ARG, "%s: forward to '%s' reads input '%s', which was not given",
                                                          call, out->name, l->name);
                if (train && (rc = dl__feed_finite(c, l, dl__feed_data(f, l), n, out, call))) return rc;
                input = l;
            }
            if (DL__HAS(l, DL__F_BATCH_STATS) && train && (size_t)n * (l->size / l->shape[0]) < 2)   /* before anything runs */
                return dl__fail(c->err, DL_ERR_SHAPE, "%s: batchnorm '%s': training needs more than one value per channel, "
                                "got batch %d of %d values per sample", call, l->name, n, l->size / l->shape[0]);
        }
    if (!input) return dl__fail(c->err, DL_ERR_ARG, "%s: forward to '%s': it reads no input layer (only constants)", call, out->name);
    fuse = !train && !grad && (net->b == &net->cpu || net->b->fuse);   /* nothing will go backward */
    if (train) net->pgen++;                             /* batchnorm statistics move */
    if (fuse) {
        if (net->b == &net->cpu && (rc = dl__prepare(pc, c->err, call)) != DL_OK) return rc;
        memset(c->cons, 0, (size_t)net->n_layers * sizeof(int));
        for (i = 0; i <= out->index; i++)
            if (c->needed[i]) for (j = 0; j < net->layers[i]->n_in; j++) c->cons[net->layers[i]->in[j]->index]++;
    }
    c->n = n;
    c->first = f->first;
    c->train = train;
    c->last = NULL;
    for (i = 0; i <= out->index; i++) {
        const dl_layer *l = net->layers[i];
        if (c->needed[i] && DL__HAS(l, DL__F_SOURCE) &&
            (rc = net->b->copy(net->b, c->out[i], dl__feed_data(f, l), (size_t)n * l->size * sizeof(float), DL_TO_DEVICE)))
            return dl__fail(c->err, rc, "%s: copying input '%s' to %s failed: %s", call, l->name, net->b->name, net->b->error);
    }
    for (i = 0; i <= out->index; i++) {
        dl_layer *l = net->layers[i];
        dl__bind b, bb, ba;
        dl__epilogue epi;
        dl_fused fz;
        if (c->needed[i] != 1 || DL__HAS(l, DL__F_SOURCE)) continue;
        if (DL__HAS(l, DL__F_RNG) && train) c->seed[i] = dl__rand64(net);
        dl__bind_layer(c, l, 0, &b);
        if (fuse && DL__HAS(l, DL__F_FUSE_HEAD)) {
            b.e.out = c->out[dl__fuse_chain(net, c->needed, c->cons, l, out, pc->prep, c->fuse, &epi)->index];
            if (net->b == &net->cpu) {
                c->cpu.epi = &epi;
                c->cpu.wpack = pc->prep ? pc->prep[i] : NULL;
            } else if (epi.bn || epi.act_layer) {   /* the absorbed layers' parameters, in the backend's memory */
                if (epi.bn) dl__bind_layer(c, epi.bn, 0, &bb);
                if (epi.act_layer) dl__bind_layer(c, epi.act_layer, 0, &ba);
                fz.bn = epi.bn; fz.bn_w = epi.bn ? bb.e.w : NULL;
                fz.act = epi.act_layer; fz.act_w = epi.act_layer ? ba.e.w : NULL;
                b.e.fused = &fz;
            }
        }
        if (b.e.allreduce_sum) sync_calls = net->sync_calls;
        rc = net->b->forward(net->b, l, &b.e);
        c->cpu.epi = NULL;
        c->cpu.wpack = NULL;
        if (!rc && b.e.allreduce_sum && net->sync_calls == sync_calls) {  /* else it would train on local statistics, silently */
            snprintf(net->b->error, sizeof net->b->error, "the backend's batchnorm does not call dl_exec.allreduce_sum, "
                     "so it cannot synchronise batchnorm (dl_net_sync_batchnorm)");
            rc = DL_ERR_UNSUPPORTED;
        }
        if (rc)
            return dl__fail(c->err, rc, "%s: forward: %s '%s' failed on %s%s%s", call, dl_op_name(l->op), l->name, net->b->name,
                            net->b->error[0] ? ": " : "", net->b->error);
    }
    c->last = out;
    return DL_OK;
}

/* Marks which layers get a gradient (dl__backward zeroes each when first written). */
static int dl__backward_prepare(dl_ctx *c) {
    dl_net *net = c->net;
    int i, j;
    for (i = 0; i <= c->last->index; i++) {
        dl_layer *l = net->layers[i];
        c->rg[i] = 0;
        if (!c->needed[i]) continue;
        if (DL__HAS(l, DL__F_SOURCE)) c->rg[i] = (unsigned char)net->input_grad;
        for (j = 0; j < l->n_params; j++) {
            const dl_param *p = &net->params[l->first_param + j];
            if (p->trainable && !p->frozen) c->rg[i] = 1;
        }
        for (j = 0; j < l->n_in; j++) if (c->rg[l->in[j]->index]) c->rg[i] = 1;
    }
    return DL_OK;
}

/* Backward adds into gradients, so each is zeroed just before the first
   layer adds into it: its memory may have held other values until then
   (dl__liveness). The output's gradient is written whole by the loss or
   the caller. rg[i] |= 2 marks a zeroed one (on the layer that owns it). */
static int dl__grad_ready(dl_ctx *c, int r) {
    dl_net *net = c->net;
    size_t floats = (size_t)c->n * net->layers[r]->size;
    int rc;
    if ((c->rg[r] & 3) != 1) return DL_OK;
    c->rg[r] |= 2;
    if (c->b == &net->cpu) dl__zero_parallel(&c->cpu, c->dout[r], floats);
    else if ((rc = net->b->zero(net->b, c->dout[r], floats * sizeof(float))))
        return dl__fail(c->err, rc, "backward: %s", net->b->error);
    return DL_OK;
}

/* A replayed output (dl__liveness) recomputed into its backward memory
   before the first backward that reads it; replay[i] |= 2 marks it done. */
static int dl__replay(dl_ctx *c, int r) {
    dl_net *net = c->net;
    dl_layer *l = net->layers[r];
    dl__bind b;
    int rc;
    if (c->replay[r] != 1) return DL_OK;
    c->replay[r] |= 2;
    dl__bind_layer(c, l, 0, &b);
    b.e.train = 2;
    if ((rc = net->b->forward(net->b, l, &b.e)))
        return dl__fail(c->err, rc, "backward: recomputing %s '%s' failed on %s%s%s", dl_op_name(l->op), l->name, net->b->name,
                        net->b->error[0] ? ": " : "", net->b->error);
    return DL_OK;
}

static int dl__backward(dl_ctx *c) {
    dl_net *net = c->net;
    int i, k, rc;
    for (i = 0; i <= c->last->index; i++) c->replay[i] &= 1;
    if (c->rg[dl__root(net, c->last->index)]) c->rg[dl__root(net, c->last->index)] |= 2;
    dl__bind_outputs(c, 1);
    for (i = c->last->index; i >= 0; i--) {
        dl_layer *l = net->layers[i];
        dl__bind b;
        if (!c->needed[i] || !c->rg[i] || DL__HAS(l, DL__F_SOURCE)) continue;
        for (k = 0; k < l->n_in && !DL__HAS(l, DL__F_VIEW); k++) {
            int r = dl__root(net, l->in[k]->index);
            if ((rc = dl__grad_ready(c, r)) || (!DL__HAS(l, DL__F_BWD_NO_IN) && (rc = dl__replay(c, r)))) return rc;
        }
        dl__bind_layer(c, l, 1, &b);
        if ((rc = net->b->backward(net->b, l, &b.e)))
            return dl__fail(c->err, rc, "backward: %s '%s' failed on %s%s%s", dl_op_name(l->op), l->name, net->b->name,
                            net->b->error[0] ? ": " : "", net->b->error);
    }
    return DL_OK;
}

static dl_ctx *dl__ctx_init(dl_ctx *c, dl_net *net, char *err) {
    memset(c, 0, sizeof *c);
    c->net = net;
    c->b = net->b;
    c->err = err ? err : c->own_err;
    return c;
}
static dl_ctx *dl__own_ctx(dl_net *net) {
    if (!net->ctx) {
        dl_ctx *c = (dl_ctx *)DL_MALLOC(sizeof(dl_ctx));
        if (!c) { dl__fail(net->err, DL_ERR_NOMEM, "out of memory for the net's context"); return NULL; }
        net->ctx = dl__ctx_init(c, net, net->err);
    }
    return net->ctx;
}

/* Brings the output of the last forward to the host. */
/* GPU nets: host memory for what comes back from the device, kept and grown. */
static float *dl__host_buf(dl_ctx *c, size_t bytes, const char *what) {
    if (c->host_out_cap < bytes) {
        DL_FREE(c->host_out);
        c->host_out = (float *)DL_MALLOC(bytes);
        c->host_out_cap = c->host_out ? bytes : 0;
        if (!c->host_out) { dl__fail(c->err, DL_ERR_NOMEM, "out of memory for %s", what); return NULL; }
    }
    return c->host_out;
}
static const float *dl__host_output(dl_ctx *c) {
    dl_net *net = c->net;
    size_t bytes = (size_t)c->n * c->last->size * sizeof(float);
    if (c->b == &net->cpu) return c->out[c->last->index];
    if (!dl__host_buf(c, bytes, "the output")) return NULL;
    if (c->b->copy(c->b, c->host_out, c->out[c->last->index], bytes, DL_TO_HOST)) {
        dl__fail(c->err, DL_ERR_BACKEND, "copying the output from %s failed: %s", c->b->name, c->b->error);
        return NULL;
    }
    return c->host_out;
}

/* A successful forward's output; the call's message is cleared (ERRORS). */
static const float *dl__result(dl_ctx *c) {
    const float *p = dl__host_output(c);
    if (p) c->err[0] = 0;
    return p;
}
static dl__feed dl__feed1(const float *const *x) { dl__feed f; f.n = 0; f.layers = NULL; f.xs = x; f.first = 0; return f; }
static dl__feed dl__feedn(int n_inputs, dl_layer *const *inputs, const float *const *xs) {
    dl__feed f;
    f.n = n_inputs; f.layers = inputs; f.xs = xs; f.first = 0;
    return f;
}
/* Inference on the CPU runs large batches in chunks of samples, each chunk
   through the whole graph, so a layer's output is still in cache when the
   next layer reads it. Every kernel computes a sample's outputs with the
   same arithmetic whatever the batch (a GEMM's columns are samples), so the
   results are those of one pass, bit for bit; no chunk is below 4 samples,
   where dense layers switch to dot products. The chunk comes from the
   shapes: about 64K floats of the largest activation, and 256 samples at
   least when a dense layer's weights (1MB or more) would be read again per
   chunk (such a GEMM wants the whole batch as its columns); per thread, as
   each core's cache holds its share, and a chunk's ops must be large enough
   to split (dl__parallel_if). Custom layers see the whole batch. 0: no chunks. */
static int dl__predict_chunk(const dl_net *net, const dl_layer *out, int threads) {
    int i, chunk, need = 4, most = 1;
    if (net->b != &net->cpu) return 0;
    for (i = 0; i <= out->index; i++) {
        const dl_layer *l = net->layers[i];
        if (DL__HAS(l, DL__F_USER)) return 0;
        if (l->size > most) most = l->size;
        if (l->op == DL_OP_DENSE && (size_t)l->a.units * l->in[0]->size >= ((size_t)1 << 18)) need = 256;
    }
    chunk = (int)(((size_t)1 << 16) * (size_t)threads / (size_t)most);
    return chunk < need ? need : chunk;
}
/* The inputs of samples at.. of feed f (in: the one input layer when f->n is 0). */
static void dl__feed_at(const dl__feed *f, const dl_layer *in, int at, const float **xs) {
    int k;
    if (!f->n) xs[0] = f->xs[0] + (in ? (size_t)at * in->size : 0);
    for (k = 0; k < f->n; k++) xs[k] = f->xs[k] && f->layers[k] ? f->xs[k] + (size_t)at * f->layers[k]->size : f->xs[k];
}
/* Chunk t of count over n samples into y, on thread's context: the owner's
   for thread 0, else a worker's (dl__predict_parallel). */
typedef struct dl__chunks {
    dl_ctx *c;
    dl_layer *out;
    const dl__feed *f;
    const dl_layer *in;
    int n, count;
    float *y;
    const char *call;
    int rc[256];                /* per thread (dl_net_set_threads: 256 at most) */
} dl__chunks;
static int dl__chunk_at(const dl__chunks *j, int t) { return (int)((long long)j->n * t / j->count); }
static void dl__chunk_task(void *arg, int t, int thread) {
    dl__chunks *j = (dl__chunks *)arg;
    dl_ctx *w = thread ? &j->c->workers[thread - 1] : j->c;
    const float *xs[64];
    dl__feed g = *j->f;
    int at = dl__chunk_at(j, t), nn = dl__chunk_at(j, t + 1) - at;
    if (j->rc[thread]) return;
    dl__feed_at(j->f, j->in, at, xs);
    g.xs = xs;
    g.first = at;
    if (!(j->rc[thread] = dl__forward(w, j->out, &g, nn, 0, 0, j->call)))
        memcpy(j->y + (size_t)at * j->out->size, w->out[j->out->index], (size_t)nn * j->out->size * sizeof(float));
}
/* A batch of at least 2 single-thread chunks per thread: each thread runs
   whole chunks through the whole graph on its own context, one op after
   another, instead of every op split over the threads (most of a small
   net's ops are below net->par_min_work, so they would run on one thread).
   Workers share the owner's prepared weights, built here before the
   region, and their buffers are chunk-sized. The chunks are equal to a
   sample and a multiple of the thread count, each of at least `one`
   samples, so every sample's result is that of one pass (dl__predict_chunk).
   Every context is planned for 2 `one` - 1 samples whatever the batch, as
   the serial path plans for its chunks: repeated calls allocate nothing. */
static int dl__predict_parallel(dl__chunks *j, int one) {
    dl_ctx *c = j->c;
    dl_net *net = c->net;
    dl__cpu pool = c->cpu;
    int t, T = net->threads, rc = DL_OK;
    j->count = j->n / (one * T) * T;        /* 2 or more per thread: chunks under 1.5 `one`, so the plans below always fit */
    if ((rc = dl__prepare(c, c->err, j->call)) != DL_OK) return rc;
    if (c->n_workers != T - 1) {
        if (!(c->workers = (dl_ctx *)dl__calloc((size_t)T - 1, sizeof(dl_ctx))))
            return dl__fail(c->err, DL_ERR_NOMEM, "%s: out of memory for %d thread contexts", j->call, T - 1);
        for (t = 0; t < T - 1; t++) dl__ctx_init(&c->workers[t], net, NULL)->owner = c;
        c->n_workers = T - 1;
    }
    for (t = 0; t < T - 1; t++)
        if ((rc = dl__plan(&c->workers[t], 2 * one - 1, j->out, 0))) return dl__fail(c->err, rc, "%s", c->workers[t].err);
    memset(j->rc, 0, sizeof j->rc);
    c->cpu.threads = 1;         /* each chunk on one thread: no region inside the region */
    dl__parallel(&pool, j->count, dl__chunk_task, j);
    c->cpu.threads = pool.threads;
    for (t = 0; t < T; t++)
        if (j->rc[t]) return t ? dl__fail(c->err, j->rc[t], "%s", c->workers[t - 1].err) : j->rc[t];
    return DL_OK;
}
/* dl__forward over chunks of samples; the output gathered in host_out. The
   layers' own outputs then hold only the last chunk: dl_layer_output offers
   none of them (c->last NULL). */
static const float *dl__predict(dl_ctx *c, dl_layer *out, const dl__feed *f, int n, const char *call) {
    dl_net *net = c->net;
    int chunk, one, par, at, k, rc, threads = c == net->ctx ? net->threads : 1;
    const float *xs[64];
    dl__chunks j;
    if ((rc = dl__check_layer(net, out, call, c->err)) || (rc = dl__check_batch(net, out, n, call, c->err))) return NULL;
    chunk = f->n > 64 ? 0 : dl__predict_chunk(net, out, threads);
    one = threads > 1 && chunk ? dl__predict_chunk(net, out, 1) : chunk;
    par = threads > 1 && chunk && n >= 2 * threads * one;
    if (!par && (!chunk || n < 2 * chunk)) return dl__forward(c, out, f, n, 0, 0, call) ? NULL : dl__result(c);
    if ((rc = dl__plan(c, par ? 2 * one - 1 : 2 * chunk - 1, out, 0))) return NULL;     /* every chunk fits: host_out stays */
    if (!(j.y = dl__host_buf(c, (size_t)n * out->size * sizeof(float), "the output"))) return NULL;
    j.c = c; j.out = out; j.f = f; j.in = NULL; j.n = n; j.call = call;
    dl__mark_needed(net, out, c->needed);
    for (k = 0; k <= out->index; k++)
        if (c->needed[k] && DL__HAS(net->layers[k], DL__F_SOURCE)) j.in = net->layers[k];
    if (par) {
        if (dl__predict_parallel(&j, one)) return NULL;
    } else for (at = 0; at < n; at += chunk) {
        dl__feed g = *f;
        int nn = n - at < 2 * chunk ? n - at : chunk;        /* the last chunk takes the rest */
        dl__feed_at(f, j.in, at, xs);
        g.xs = xs;
        g.first = at;
        if (dl__forward(c, out, &g, nn, 0, 0, call)) return NULL;
        memcpy(j.y + (size_t)at * out->size, c->out[out->index], (size_t)nn * out->size * sizeof(float));
        at += nn - chunk;
    }
    c->last = NULL;
    c->err[0] = 0;
    return j.y;
}
const float *dl_forward(dl_net *net, dl_layer *out, const float *x, int n, int train) {
    dl__feed f = dl__feed1(&x);
    dl_ctx *c;
    if (!net || !(c = dl__own_ctx(net))) return NULL;
    if (dl__forward(c, out, &f, n, train != 0, 1, "dl_forward")) return NULL;
    return dl__result(c);
}
const float *dl_predict(dl_net *net, dl_layer *out, const float *x, int n) {
    dl__feed f = dl__feed1(&x);
    dl_ctx *c;
    if (!net || !(c = dl__own_ctx(net))) return NULL;
    return dl__predict(c, out, &f, n, "dl_predict");
}
const float *dl_forward_multi(dl_net *net, dl_layer *out, int n_inputs, dl_layer *const *inputs, const float *const *xs, int n, int train) {
    dl__feed f = dl__feedn(n_inputs, inputs, xs);
    dl_ctx *c;
    if (!net || !(c = dl__own_ctx(net))) return NULL;
    if (n_inputs < 1) { dl__fail(net->err, DL_ERR_ARG, "dl_forward_multi: %d inputs", n_inputs); return NULL; }
    if (dl__forward(c, out, &f, n, train != 0, 1, "dl_forward_multi")) return NULL;
    return dl__result(c);
}
const float *dl_predict_multi(dl_net *net, dl_layer *out, int n_inputs, dl_layer *const *inputs, const float *const *xs, int n) {
    dl__feed f = dl__feedn(n_inputs, inputs, xs);
    dl_ctx *c;
    if (!net || !(c = dl__own_ctx(net))) return NULL;
    if (n_inputs < 1) { dl__fail(net->err, DL_ERR_ARG, "dl_predict_multi: %d inputs", n_inputs); return NULL; }
    return dl__predict(c, out, &f, n, "dl_predict_multi");
}

int dl_backward(dl_net *net, dl_layer *out, const float *dout) {
    dl_ctx *c;
    int rc;
    if (!net) return DL_ERR_ARG;
    if (!(c = dl__own_ctx(net))) return DL_ERR_NOMEM;
    if ((rc = dl__check_layer(net, out, "dl_backward", net->err))) return rc;
    if (!c->last || c->last != out || !c->train_plan || c->version != net->version)
        return dl__fail(net->err, DL_ERR_ARG, "dl_backward: call dl_forward to '%s' first", out->name);
    if (!dout) return dl__fail(net->err, DL_ERR_ARG, "dl_backward: dout is NULL");
    if ((rc = dl__backward_prepare(c))) return rc;
    if (!c->rg[out->index]) return dl__ok(net);          /* nothing trainable behind out */
    if ((rc = net->b->copy(net->b, c->dout[out->index], dout, (size_t)c->n * out->size * sizeof(float), DL_TO_DEVICE)))
        return dl__fail(net->err, rc, "dl_backward: copy to %s failed: %s", net->b->name, net->b->error);
    return dl__done(net, dl__backward(c));
}

void dl_zero_grad(dl_net *net) {
    if (net && net->nw) net->b->zero(net->b, net->dg, net->nw * sizeof(float));
}

const float *dl_layer_output(const dl_layer *l) {
    dl_ctx *c = l ? l->net->ctx : NULL;
    if (!c || !c->last || c->version != l->net->version || c->needed[l->index] != 1 || !(c->keep[l->index] & 1) ||
        c->b != &l->net->cpu) return NULL;
    return c->out[l->index];
}
const float *dl_layer_grad(const dl_layer *l) {
    dl_ctx *c = l ? l->net->ctx : NULL;
    if (!c || !c->last || !c->train_plan || c->version != l->net->version || !c->rg[l->index] || !(c->keep[l->index] & 2) ||
        c->b != &l->net->cpu) return NULL;
    return c->dout[l->index];
}

size_t dl_net_train_bytes(dl_net *net, dl_layer *out, int n) {
    dl_ctx c;
    size_t bytes = 0;
    if (!net || dl__check_layer(net, out, "dl_net_train_bytes", net->err) || dl__check_batch(net, out, n, "dl_net_train_bytes", net->err))
        return 0;
    dl__ctx_init(&c, net, net->err);
    if (dl__ctx_tables(&c) && dl__layout(&c, n, out->index, 1, net->threads) == DL_OK) bytes = c.plan_floats * sizeof(float);
    DL_FREE(c.vals);
    return bytes;
}

/* ---- user contexts ---- */
dl_ctx *dl_ctx_new(dl_net *net) {
    dl_ctx *c;
    if (!net) return NULL;
    c = (dl_ctx *)DL_MALLOC(sizeof(dl_ctx));
    dl__lock(net);
    if (!c) dl__fail(net->err, DL_ERR_NOMEM, "dl_ctx_new: out of memory");
    else {
        dl__ctx_init(c, net, NULL);
        c->next = net->ctxs;
        net->ctxs = c;
    }
    dl__unlock(net);
    return c;
}
void dl_ctx_free(dl_ctx *c) {
    dl_ctx **pp;
    if (!c) return;
    if (c->net) {
        dl__lock(c->net);
        for (pp = &c->net->ctxs; *pp; pp = &(*pp)->next)
            if (*pp == c) { *pp = c->next; break; }
        dl__unlock(c->net);
    }
    dl__ctx_release(c);
    DL_FREE(c);
}
const float *dl_ctx_predict(dl_ctx *c, dl_layer *out, const float *x, int n) {
    if (!c) return NULL;
    if (!c->net) { dl__fail(c->err, DL_ERR_ARG, "dl_ctx_predict: the net of this context was freed"); return NULL; }
    {
        dl__feed f = dl__feed1(&x);
        return dl__predict(c, out, &f, n, "dl_ctx_predict");
    }
}
const char *dl_ctx_error(const dl_ctx *c) { return c ? c->err : "context is NULL"; }

/* ======================================================================== */
/*  >>train  Training                                                       */
/* ======================================================================== */
/* ---- data-parallel exchange ---- */
int dl_net_set_collective(dl_net *net, dl_collective fn, void *user) {
    if (!net) return DL_ERR_ARG;
    net->coll = fn;
    net->coll_user = fn ? user : NULL;
    return dl__ok(net);
}
/* Runs the application's collective on one of the net's buffers; on_device
   follows from where the buffer lives. An empty buffer is skipped on every
   rank alike, since all ranks hold the same graph. */
static int dl__collective(dl_net *net, float *buf, size_t count, int op, int on_device, const char *what) {
    int r;
    if (!count) return DL_OK;
    if ((r = net->coll(buf, count, op, on_device, net->coll_user)) != 0)
        return dl__fail(net->err, DL_ERR_BACKEND, "%s of the %s (%lu floats): the collective returned %d",
                        op == DL_BROADCAST ? "broadcast" : "all-reduce", what, (unsigned long)count, r);
    return DL_OK;
}
int dl_net_sync_batchnorm(dl_net *net, int on) {
    if (!net) return DL_ERR_ARG;
    if (on != 0 && on != 1) return dl__fail(net->err, DL_ERR_ARG, "dl_net_sync_batchnorm: on is %d, not 0 or 1", on);
    net->sync_bn = on;
    return dl__ok(net);
}
int dl_net_broadcast_params(dl_net *net, int stats_only) {
    int rc, dev;
    if (!net) return DL_ERR_ARG;
    if (!net->coll) return dl__fail(net->err, DL_ERR_ARG, "dl_net_broadcast_params: no collective (dl_net_set_collective)");
    dev = net->b != &net->cpu;
    net->pgen++;
    if ((!stats_only && (rc = dl__collective(net, net->dw, net->nw, DL_BROADCAST, dev, "parameters"))) ||
        (rc = dl__collective(net, net->ds, net->ns, DL_BROADCAST, dev, "statistics")))
        return rc;
    return dl__ok(net);
}

long dl_optim_steps(const dl_optim *opt) { return opt ? opt->step : 0; }

static int dl__optim_fit(dl_optim *opt) {   /* state covers every trainable float */
    dl_net *net = opt->net;
    dl_backend *b = net->b;
    int k, count = dl__optim_state_count(&opt->d);
    if (opt->n >= net->nw) return DL_OK;
    for (k = 0; k < count; k++) {
        float *s = (float *)b->alloc(b, net->nw * sizeof(float));
        if (!s || b->zero(b, s, net->nw * sizeof(float)) ||
            (opt->n && b->copy(b, s, opt->s[k], opt->n * sizeof(float), DL_ON_DEVICE))) {
            if (s) b->release(b, s);
            return dl__fail(net->err, DL_ERR_NOMEM, "optimizer: out of memory for its state (%lu floats)", (unsigned long)net->nw);
        }
        if (opt->s[k]) b->release(b, opt->s[k]);
        opt->s[k] = s;
    }
    opt->n = net->nw;
    return DL_OK;
}

static int dl__optim_refused(dl_net *net) {     /* a device optimizer's DL_ERR_NUMERIC */
    return dl__fail(net->err, DL_ERR_NUMERIC, "optimizer step on %s: %s; nothing was changed", net->b->name, net->b->error);
}

int dl_optim_step(dl_optim *opt) {
    dl_net *net;
    dl_optim_job job;
    size_t *ranges;
    int i, rc;
    if (!opt) return DL_ERR_ARG;
    net = opt->net;
    if ((rc = dl__optim_fit(opt))) return rc;
    if (opt->ranges_cap < net->n_params + 1) {         /* no allocation per step once sized */
        size_t *r = (size_t *)dl__calloc(2 * (size_t)(net->n_params + 1), sizeof(size_t));
        if (!r) return dl__fail(net->err, DL_ERR_NOMEM, "optimizer: out of memory");
        DL_FREE(opt->ranges);
        opt->ranges = r;
        opt->ranges_cap = net->n_params + 1;
    }
    ranges = opt->ranges;
    memset(&job, 0, sizeof job);
    job.range_off = ranges;
    job.range_len = ranges + net->n_params + 1;
    for (i = 0; i < net->n_params; i++) {   /* contiguous runs of trainable, unfrozen floats */
        const dl_param *p = &net->params[i];
        if (!p->trainable || p->frozen) continue;
        if (job.n_ranges && ranges[job.n_ranges - 1] + ranges[net->n_params + 1 + job.n_ranges - 1] == p->offset)
            ranges[net->n_params + 1 + job.n_ranges - 1] += (size_t)p->size;
        else { ranges[job.n_ranges] = p->offset; ranges[net->n_params + 1 + job.n_ranges] = (size_t)p->size; job.n_ranges++; }
    }
    job.d = &opt->d;
    job.lr = opt->d.lr;
    job.step = opt->step + 1;
    job.w = net->dw;
    job.g = net->dg;
    for (i = 0; i < 3; i++) job.s[i] = opt->s[i];
    job.n_floats = net->nw;
    /* Last, after everything that can fail on one rank alone: every rank then
       checks and clips the same mean gradient. */
    if (net->coll && (rc = dl__collective(net, net->dg, net->nw, DL_ALLREDUCE_MEAN, net->b != &net->cpu, "gradients")))
        return rc;
    rc = net->b->optim_step(net->b, &job);
    net->pgen++;
    if (rc == DL_ERR_NUMERIC && net->b != &net->cpu) return dl__optim_refused(net);
    if (rc == DL_ERR_NUMERIC) {         /* name the gradient: they are at hand */
        size_t k;
        for (i = 0; i < net->n_params; i++)
            for (k = 0; k < (size_t)net->params[i].size && net->params[i].trainable; k++)
                if (!dl__finite(net->g[net->params[i].offset + k]))
                    return dl__fail(net->err, rc, "optimizer step: a gradient of %s is not finite; nothing was changed",
                                    net->params[i].name);
        return dl__fail(net->err, rc, "optimizer step: the update would make a parameter or the optimizer's state "
                        "infinite or NaN (diverged? a smaller learning rate may help); nothing was changed");
    }
    if (rc) return dl__fail(net->err, rc, "optimizer step failed on %s: %s", net->b->name, net->b->error);
    opt->step++;
    return dl__ok(net);
}

/* Training-mode batchnorm has moved the running statistics: a step that
   would leave one infinite or NaN fails like a diverged loss. */
static int dl__check_stats(dl_ctx *c, const char *call) {
    dl_net *net = c->net;
    const float *s = net->ds;
    int i;
    if (!net->ns) return DL_OK;
    if (net->b != &net->cpu) {          /* a few floats per channel */
        if (!(s = dl__host_buf(c, net->ns * sizeof(float), "the statistics"))) return DL_ERR_NOMEM;
        if (net->b->copy(net->b, c->host_out, net->ds, net->ns * sizeof(float), DL_TO_HOST))
            return dl__fail(c->err, DL_ERR_BACKEND, "%s: reading the statistics from %s failed: %s", call, net->b->name, net->b->error);
    }
    if (dl__nonfinite(s, net->ns) == net->ns) return DL_OK;
    for (i = 0; i < net->n_params; i++) {
        const dl_param *p = &net->params[i];
        size_t k = p->trainable ? (size_t)p->size : dl__nonfinite(s + p->offset, (size_t)p->size);
        if (k < (size_t)p->size)
            return dl__fail(c->err, DL_ERR_NUMERIC, "%s: %s would become %g (diverged? a smaller learning rate may help); "
                            "nothing was changed", call, p->name, (double)s[p->offset + k]);
    }
    return dl__fail(c->err, DL_ERR_NUMERIC, "%s: a statistic would become infinite or NaN; nothing was changed", call);
}

/* After the loss: statistics, then the loss itself, as every rank sees it. */
static int dl__step_checks(dl_ctx *c, const dl_layer *out, float *loss, const char *call) {
    dl_net *net = c->net;
    int rc, stats_rc = dl__check_stats(c, call);
    if (stats_rc && stats_rc != DL_ERR_NUMERIC) return stats_rc;
    /* Statistics that diverged on this rank make its loss NaN before the
       loss is shared, so that every rank fails the step alike. */
    if (stats_rc) *loss = NAN;
    /* The mean over the ranks, so that a NaN on one fails the step on all. */
    if (net->coll && (rc = dl__collective(net, loss, 1, DL_ALLREDUCE_MEAN, 0, "loss"))) return rc;
    if (stats_rc) return stats_rc;
    if (!dl__finite(*loss))
        return dl__fail(net->err, DL_ERR_NUMERIC, "%s: the loss of '%s' is %g with finite inputs (diverged? a smaller learning "
                        "rate may help); no parameter was changed", call, out->name, *loss);
    return DL_OK;
}

static int dl__train_step(dl_net *net, dl_optim *opt, dl_layer *out, const dl__feed *f, const void *targets,
                          int kind, int n, float *loss_out) {
    const char *call = kind == DL_LOSS_SOFTMAX_CE ? "dl_train_step" : kind == DL_LOSS_NLL ? "dl_train_step_nll"
                     : kind == DL_LOSS_MEAN ? "dl_train_step_scalar" : "dl_train_step_mse";
    int labeled = kind == DL_LOSS_SOFTMAX_CE || kind == DL_LOSS_NLL;
    dl_backend *b;
    dl_ctx *c;
    float loss = 0;
    int rc, i, trainable = 0, armed = 0, custom = 0;
    uint64_t rng0;
    if (!net) return DL_ERR_ARG;
    rng0 = net->rng;
    b = net->b;
    if (!(c = dl__own_ctx(net))) return DL_ERR_NOMEM;
    if ((rc = dl__check_layer(net, out, call, net->err))) return rc;
    if (kind == DL_LOSS_SOFTMAX_CE && out->op == DL_OP_SOFTMAX)     /* it would train on probabilities and learn nothing */
        return dl__fail(net->err, DL_ERR_ARG, "%s: the loss expects logits; '%s' is a softmax: pass its input '%s'",
                        call, out->name, out->in[0]->name);
    if (kind == DL_LOSS_NLL && out->op == DL_OP_SOFTMAX)            /* NLL wants log-probabilities */
        return dl__fail(net->err, DL_ERR_ARG, "%s: the loss expects log-probabilities; '%s' is a softmax: use dl_log_softmax",
                        call, out->name);
    if (!opt || opt->net != net) return dl__fail(net->err, DL_ERR_ARG, "%s: the optimizer is %s", call, opt ? "another net's" : "NULL");
    if (!targets && kind != DL_LOSS_MEAN) return dl__fail(net->err, DL_ERR_ARG, "%s: %s NULL", call, labeled ? "labels are" : "targets are");
    if (kind == DL_LOSS_MEAN && out->size != 1)
        return dl__fail(net->err, DL_ERR_SHAPE, "%s: '%s' has %d values per sample; the loss must be one (dl_reduce_sum or _mean)",
                        call, out->name, out->size);
    if ((rc = dl__check_batch(net, out, n, call, net->err))) return rc;
    if (!f->n && !f->xs[0]) return dl__fail(net->err, DL_ERR_ARG, "%s to '%s': input data is NULL", call, out->name);
    if (kind < DL_LOSS_SOFTMAX_CE || kind > DL_LOSS_MEAN) return dl__fail(net->err, DL_ERR_ARG, "%s: loss kind %d is not a dl_loss_kind", call, kind);
    if (kind == DL_LOSS_MSE) {
        const float *t = (const float *)targets;
        size_t k, count = (size_t)n * out->size;
        for (k = 0; k < count; k++)
            if (!dl__finite(t[k]))
                return dl__fail(net->err, DL_ERR_NUMERIC, "%s: target %lu of sample %lu for '%s' is %g; nothing was changed", call,
                                (unsigned long)(k % (size_t)out->size), (unsigned long)(k / (size_t)out->size), out->name, (double)t[k]);
    }
    if (labeled)
        for (i = 0; i < n; i++)
            if (((const int *)targets)[i] < 0 || ((const int *)targets)[i] >= out->size)
                return dl__fail(net->err, DL_ERR_ARG, "%s: label %d of sample %d is out of range for '%s' with %d classes",
                                call, ((const int *)targets)[i], i, out->name, out->size);
    if ((rc = dl__plan(c, n, out, 1))) return rc;
    if (b->graph && (rc = b->graph(b, 0))) return dl__fail(net->err, rc, "%s: %s", call, b->error);
    if (net->ns && (rc = b->copy(b, c->stats_backup, net->ds, net->ns * sizeof(float), DL_ON_DEVICE))) {
        if (b->graph) b->graph(b, -1);
        return dl__fail(net->err, rc, "%s: %s", call, b->error);
    }
    dl_zero_grad(net);
    if ((rc = dl__forward(c, out, f, n, 1, 1, call)) || (rc = dl__backward_prepare(c))) goto fail;
    for (i = 0; i <= out->index; i++) {
        const dl_layer *l = net->layers[i];
        int j;
        custom |= l->op == DL_OP_CUSTOM && c->needed[i];
        for (j = 0; j < l->n_params && c->needed[i]; j++)
            if (net->params[l->first_param + j].trainable && !net->params[l->first_param + j].frozen) trainable = 1;
    }
    if (!trainable) {   /* an inference-only graph: a step would only move statistics */
        rc = dl__fail(net->err, DL_ERR_ARG, "%s: no trainable, unfrozen parameter leads to '%s'; nothing to train "
                      "(dl_forward with train 1 updates batchnorm statistics alone)", call, out->name);
        goto fail;
    }
    if ((targets && (rc = b->copy(b, c->targets, targets, (size_t)n * (labeled ? sizeof(int) : out->size * sizeof(float)), DL_TO_DEVICE))) ||
        (rc = b->loss(b, kind, c->out[out->index], c->targets, n, out->size, c->dout[out->index], &loss))) {
        dl__fail(net->err, rc, "%s: loss on %s failed: %s", call, b->name, b->error);
        goto fail;
    }
    /* A device that checks the step itself (guard) runs it to the end and
       is asked once: the checks below then only find which one failed, for
       the message. Not with a collective, which needs the loss here, nor
       with custom layers, whose backward callbacks would see a NaN loss's
       gradients. */
    armed = b->guard && b->sync && !net->coll && !custom;
    if (armed && (rc = b->guard(b, net->ds, net->ns))) { armed = 0; dl__fail(net->err, rc, "%s: %s", call, b->error); goto fail; }
    if (!armed) {
        if (b->sync && (rc = b->sync(b))) { dl__fail(net->err, rc, "%s: %s", call, b->error); goto fail; }
        if ((rc = dl__step_checks(c, out, &loss, call))) goto fail;
    }
    if (c->rg[out->index] && (rc = dl__backward(c))) goto fail;
    if ((rc = dl_optim_step(opt))) goto fail;
    if (armed) {
        armed = 0;
        if ((rc = b->sync(b)) == DL_ERR_NUMERIC) {
            opt->step--;                /* counted by dl_optim_step, which did not know */
            if (!(rc = dl__step_checks(c, out, &loss, call))) rc = dl__optim_refused(net);
            goto fail;
        }
        if (rc) { dl__fail(net->err, rc, "%s: %s", call, b->error); goto fail; }
    }
    if (loss_out) *loss_out = loss;
    return DL_OK;
fail:
    if (b->graph) b->graph(b, -1);      /* runs what a capture holds, so the restore below follows it */
    if (armed) b->sync(b);              /* disarms; the step has failed already */
    if (net->ns) b->copy(b, net->ds, c->stats_backup, net->ns * sizeof(float), DL_ON_DEVICE);
    net->rng = rng0;        /* so a retried step draws the same dropout masks */
    return rc;
}

int dl_train_step(dl_net *net, dl_optim *opt, dl_layer *logits, const float *x, const int *labels, int n, float *loss) {
    dl__feed f = dl__feed1(&x);
    return dl__done(net, dl__train_step(net, opt, logits, &f, labels, DL_LOSS_SOFTMAX_CE, n, loss));
}
int dl_train_step_mse(dl_net *net, dl_optim *opt, dl_layer *out, const float *x, const float *targets, int n, float *loss) {
    dl__feed f = dl__feed1(&x);
    return dl__done(net, dl__train_step(net, opt, out, &f, targets, DL_LOSS_MSE, n, loss));
}
int dl_train_step_nll(dl_net *net, dl_optim *opt, dl_layer *logp, const float *x, const int *labels, int n, float *loss) {
    dl__feed f = dl__feed1(&x);
    return dl__done(net, dl__train_step(net, opt, logp, &f, labels, DL_LOSS_NLL, n, loss));
}
int dl_train_step_scalar(dl_net *net, dl_optim *opt, dl_layer *loss_layer, const float *x, int n, float *loss) {
    dl__feed f = dl__feed1(&x);
    return dl__done(net, dl__train_step(net, opt, loss_layer, &f, NULL, DL_LOSS_MEAN, n, loss));
}
int dl_train_step_multi(dl_net *net, dl_optim *opt, dl_layer *out, int n_inputs, dl_layer *const *inputs, const float *const *xs,
                        int loss_kind, const void *targets, int n, float *loss) {
    dl__feed f = dl__feedn(n_inputs, inputs, xs);
    if (net && n_inputs < 1) return dl__fail(net->err, DL_ERR_ARG, "dl_train_step_multi: %d inputs", n_inputs);
    return dl__done(net, dl__train_step(net, opt, out, &f, targets, loss_kind, n, loss));
}

/* ---- optimizer objects ---- */
static int dl__in01(float x) { return dl__finite(x) && x >= 0 && x < 1; }      /* [0, 1) */
/* The first rule d breaks, named with its value, as call's message in err;
   DL_OK when it keeps them all. */
static int dl__optim_rules(const dl_optim_desc *d, const char *call, char *err) {
    if (!dl__finite(d->lr) || !(d->lr > 0)) return dl__fail(err, DL_ERR_ARG, "%s: learning rate %g must be positive and finite", call, d->lr);
    if (!dl__in01(d->momentum)) return dl__fail(err, DL_ERR_ARG, "%s: momentum %g must be in [0, 1)", call, d->momentum);
    if (d->nesterov && !(d->momentum > 0)) return dl__fail(err, DL_ERR_ARG, "%s: Nesterov needs a momentum above 0", call);
    if (!dl__in01(d->beta1)) return dl__fail(err, DL_ERR_ARG, "%s: beta1 %g must be in [0, 1)", call, d->beta1);
    if (!dl__in01(d->beta2)) return dl__fail(err, DL_ERR_ARG, "%s: beta2 %g must be in [0, 1)", call, d->beta2);
    if (!dl__finite(d->eps) || !(d->eps > 0)) return dl__fail(err, DL_ERR_ARG, "%s: eps %g must be positive and finite", call, d->eps);
    if (!dl__in01(d->alpha) || !(d->alpha > 0)) return dl__fail(err, DL_ERR_ARG, "%s: alpha %g must be in (0, 1)", call, d->alpha);
    if (!dl__finite(d->weight_decay) || !(d->weight_decay >= 0))
        return dl__fail(err, DL_ERR_ARG, "%s: weight decay %g must be finite and not negative", call, d->weight_decay);
    if (dl__nan(d->clip_norm) || !(d->clip_norm >= 0)) return dl__fail(err, DL_ERR_ARG, "%s: clip norm %g must not be negative", call, d->clip_norm);
    if (!dl__finite(d->dampening) || !(d->dampening >= 0 && d->dampening <= 1))
        return dl__fail(err, DL_ERR_ARG, "%s: dampening %g must be in [0, 1]", call, d->dampening);
    if (d->nesterov && !dl__zero(d->dampening)) return dl__fail(err, DL_ERR_ARG, "%s: Nesterov needs no dampening", call);
    return DL_OK;
}
/* dl_optim_new as `call` (the function the user called); a zero lr means
   the default only in a desc. */
static dl_optim *dl__optim_new(dl_net *net, const dl_optim_desc *desc, const char *call, int lr_default) {
    dl_optim *opt;
    dl_optim_desc d;
    if (!net) return NULL;
    net->last_rc = DL_ERR_ARG;
    if (!desc) { dl__fail(net->err, DL_ERR_ARG, "%s: desc is NULL", call); return NULL; }
    d = *desc;
    if (d.kind < DL_SGD || d.kind > DL_RMSPROP) { dl__fail(net->err, DL_ERR_ARG, "%s: unknown kind %d", call, d.kind); return NULL; }
    if (dl__zero(d.lr) && lr_default) d.lr = d.kind == DL_ADAM || d.kind == DL_ADAMW ? 1e-3f : 1e-2f;
    if (dl__zero(d.beta1)) d.beta1 = 0.9f;
    if (dl__zero(d.beta2)) d.beta2 = 0.999f;
    if (dl__zero(d.eps)) d.eps = 1e-8f;
    if (dl__zero(d.alpha)) d.alpha = 0.99f;
    if (d.kind == DL_ADAMW && dl__zero(d.weight_decay)) d.weight_decay = 1e-2f;
    if (dl__optim_rules(&d, call, net->err)) return NULL;
    net->last_rc = DL_ERR_NOMEM;
    opt = (dl_optim *)dl__calloc(1, sizeof(dl_optim));
    if (!opt) { dl__fail(net->err, DL_ERR_NOMEM, "%s: out of memory", call); return NULL; }
    opt->net = net;
    opt->d = d;
    if (dl__optim_fit(opt)) {       /* the buffers made before the one that failed */
        int k;
        for (k = 0; k < 3; k++) if (opt->s[k]) net->b->release(net->b, opt->s[k]);
        DL_FREE(opt);
        return NULL;
    }
    opt->next = net->optims;
    net->optims = opt;
    return opt;
}
dl_optim *dl_optim_new(dl_net *net, const dl_optim_desc *desc) { return dl__optim_new(net, desc, "dl_optim_new", 1); }
static dl_optim *dl__optim_short(dl_net *net, int kind, float lr, float momentum, float wd, const char *call) {
    dl_optim_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind; d.lr = lr; d.momentum = momentum; d.weight_decay = wd;
    return dl__optim_new(net, &d, call, 0);
}
dl_optim *dl_sgd(dl_net *net, float lr, float momentum) { return dl__optim_short(net, DL_SGD, lr, momentum, 0, "dl_sgd"); }
dl_optim *dl_adam(dl_net *net, float lr) { return dl__optim_short(net, DL_ADAM, lr, 0, 0, "dl_adam"); }
dl_optim *dl_adamw(dl_net *net, float lr, float weight_decay) { return dl__optim_short(net, DL_ADAMW, lr, 0, weight_decay, "dl_adamw"); }
dl_optim *dl_rmsprop(dl_net *net, float lr) { return dl__optim_short(net, DL_RMSPROP, lr, 0, 0, "dl_rmsprop"); }
int dl_optim_set_lr(dl_optim *opt, float lr) {
    if (!opt) return DL_ERR_ARG;
    if (!dl__finite(lr) || !(lr > 0)) return dl__fail(opt->net->err, DL_ERR_ARG, "dl_optim_set_lr: %g must be positive and finite; the rate stays %g", lr, opt->d.lr);
    opt->d.lr = lr;
    return dl__ok(opt->net);
}
float dl_optim_lr(const dl_optim *opt) { return opt ? opt->d.lr : 0; }
void dl_optim_free(dl_optim *opt) {
    dl_optim **pp;
    int k;
    if (!opt) return;
    for (pp = &opt->net->optims; *pp; pp = &(*pp)->next)
        if (*pp == opt) { *pp = opt->next; break; }
    for (k = 0; k < 3; k++) if (opt->s[k]) opt->net->b->release(opt->net->b, opt->s[k]);
    DL_FREE(opt->ranges);
    DL_FREE(opt->host);
    DL_FREE(opt);
}

int dl_optim_state_slots(const dl_optim *opt) { return opt ? dl__optim_state_count(&opt->d) : 0; }
const float *dl_optim_state(dl_optim *opt, const dl_param *p, int slot) {
    dl_net *net;
    size_t bytes;
    if (!opt || !p) return NULL;
    net = opt->net;
    if ((uintptr_t)p < (uintptr_t)net->params || (uintptr_t)p >= (uintptr_t)(net->params + net->n_params) || !p->trainable ||
        slot < 0 || slot >= dl__optim_state_count(&opt->d)) {
        dl__fail(net->err, DL_ERR_ARG, "dl_optim_state: %s slot %d: not a trainable parameter of this net or not one of the %d slots",
                 p->name, slot, dl__optim_state_count(&opt->d));
        return NULL;
    }
    if (dl__optim_fit(opt)) return NULL;
    if (net->b == &net->cpu) return opt->s[slot] + p->offset;
    bytes = (size_t)p->size * sizeof(float);
    if (opt->host_cap < bytes) {
        DL_FREE(opt->host);
        opt->host_cap = (opt->host = (float *)DL_MALLOC(bytes)) ? bytes : 0;
        if (!opt->host) { dl__fail(net->err, DL_ERR_NOMEM, "dl_optim_state: out of memory"); return NULL; }
    }
    if (net->b->copy(net->b, opt->host, opt->s[slot] + p->offset, bytes, DL_TO_HOST) || (net->b->sync && net->b->sync(net->b))) {
        dl__fail(net->err, DL_ERR_BACKEND, "dl_optim_state: %s", net->b->error);
        return NULL;
    }
    return opt->host;
}

DL__COLD_BEGIN
/* ======================================================================== */
/*  >>backend  Backends: moving a net                                       */
/* ======================================================================== */
dl_backend *dl_net_backend(const dl_net *net) { return net ? net->b : NULL; }

/* A copy of n floats: to_host 1 from the device b to a new host buffer,
   0 from the host to a new buffer on b. NULL on failure, counted in
   *nomem when it was the allocation. */
static float *dl__clone(dl_backend *b, const float *src, size_t n, int to_host, int *nomem) {
    float *dst = to_host ? (float *)DL_MALLOC((n ? n : 1) * sizeof(float)) : (float *)b->alloc(b, (n ? n : 1) * sizeof(float));
    if (!dst) (*nomem)++;
    if (dst && n && b->copy(b, dst, src, n * sizeof(float), to_host ? DL_TO_HOST : DL_TO_DEVICE)) {
        if (to_host) DL_FREE(dst); else b->release(b, dst);
        return NULL;
    }
    return dst;
}

/* Moving is two-phase: every buffer is copied first, and only when all
   copies succeed are the old ones released, so a failure leaves the net
   where it was. */
int dl_net_to_backend(dl_net *net, dl_backend *b) {
    dl_backend *dev;
    dl_optim *o;
    float *w, *g, *s, **moved;
    int n_opt = 0, i, k, ok, to_host, nomem = 0, rc;
    if (!net) return DL_ERR_ARG;
    if (!b) b = &net->cpu;
    if (b == net->b) return dl__ok(net);
    if (net->b != &net->cpu && b != &net->cpu)
        return dl__fail(net->err, DL_ERR_ARG, "dl_net_to_backend: move the net back to the CPU before moving it to %s", b->name);
    if (!b->alloc) {        /* a backend that could not start: its message says why */
        rc = dl__fail(net->err, DL_ERR_BACKEND, "%s; the net stays on %s", b->error[0] ? b->error : "dl_net_to_backend: the backend "
                      "cannot start", net->b->name);
        if (b->destroy) b->destroy(b);
        return rc;
    }
    to_host = b == &net->cpu;
    dev = to_host ? net->b : b;
    for (o = net->optims; o; o = o->next) n_opt++;
    moved = (float **)dl__calloc((size_t)n_opt * 3 + 1, sizeof(float *));
    if (!moved) nomem++;
    if (to_host) {      /* the host views exist already: refresh them */
        w = net->w; g = net->g; s = net->s;
        ok = moved && !(net->nw && (dev->copy(dev, w, net->dw, net->nw * sizeof(float), DL_TO_HOST) ||
                                    dev->copy(dev, g, net->dg, net->nw * sizeof(float), DL_TO_HOST))) &&
             !(net->ns && dev->copy(dev, s, net->ds, net->ns * sizeof(float), DL_TO_HOST));
    } else {
        w = dl__clone(dev, net->w, net->nw, 0, &nomem);
        g = dl__clone(dev, net->g, net->nw, 0, &nomem);
        s = dl__clone(dev, net->s, net->ns, 0, &nomem);
        ok = moved && w && g && s;
    }
    for (o = net->optims, i = 0; o; o = o->next, i++)
        for (k = 0; k < 3 && ok; k++)
            if (o->s[k] && !(moved[3 * i + k] = dl__clone(dev, o->s[k], o->n, to_host, &nomem))) ok = 0;
    if (!ok) {          /* release the copies; the net stays where it was */
        for (o = net->optims, i = 0; moved && o; o = o->next, i++)
            for (k = 0; k < 3; k++)
                if (moved[3 * i + k]) { if (to_host) DL_FREE(moved[3 * i + k]); else dev->release(dev, moved[3 * i + k]); }
        if (!to_host) {
            if (w) dev->release(dev, w);
            if (g) dev->release(dev, g);
            if (s) dev->release(dev, s);
        }
        DL_FREE(moved);
        rc = nomem ? DL_ERR_NOMEM : DL_ERR_BACKEND;
        dl__fail(net->err, rc, "dl_net_to_backend: moving the net %s %s failed: %s%s%s%s; it stays on %s", to_host ? "back from" : "to",
                 dev->name, nomem ? "out of memory" : "a copy failed", dev->error[0] ? " (" : "", dev->error, dev->error[0] ? ")" : "",
                 net->b->name);
        if (!to_host && b->destroy) b->destroy(b);
        return rc;
    }
    if (net->ctx) dl__ctx_release(net->ctx);
    {
        dl_ctx *c;
        dl__lock(net);
        for (c = net->ctxs; c; c = c->next) dl__ctx_release(c);
        dl__unlock(net);
    }
    for (o = net->optims, i = 0; o; o = o->next, i++)
        for (k = 0; k < 3; k++)
            if (o->s[k]) {
                net->b->release(net->b, o->s[k]);
                o->s[k] = moved[3 * i + k];
            }
    DL_FREE(moved);
    if (to_host) {
        dev->release(dev, net->dw); dev->release(dev, net->dg); dev->release(dev, net->ds);
        net->b = &net->cpu;
        dl__param_views(net);
        if (dev->destroy) dev->destroy(dev);
    } else {
        net->dw = w; net->dg = g; net->ds = s;
        net->b = b;
    }
    net->version++;
    return dl__ok(net);
}

int dl_net_sync(dl_net *net) {
    dl_backend *b;
    if (!net) return DL_ERR_ARG;
    b = net->b;
    if (b == &net->cpu) return dl__ok(net);
    if ((net->nw && (b->copy(b, net->w, net->dw, net->nw * sizeof(float), DL_TO_HOST) ||
                     b->copy(b, net->g, net->dg, net->nw * sizeof(float), DL_TO_HOST))) ||
        (net->ns && b->copy(b, net->s, net->ds, net->ns * sizeof(float), DL_TO_HOST)))
        return dl__fail(net->err, DL_ERR_BACKEND, "dl_net_sync: %s", b->error);
    return dl__ok(net);
}

/* ======================================================================== */
/*  >>files  Files. Layout, all little-endian:                              */
/*    magic 89 'D' 'L' 'H' 0d 0a 1a 0a | u32 format | u32 kind (0 model,     */
/*    1 checkpoint) | u64 body bytes | body | u32 CRC-32 of all before it    */
/*  body: u32 layers, each: u32 op, name[32], u32 n_in, u32 in[n_in],       */
/*        u32 attrs, each: u32 length, name, u32 type (1 int, 2 float),     */
/*        u32 count, count x (i32 or f32);  u32 params, each: name[48],     */
/*        u32 ndim, u32 shape[4], u32 trainable, u32 frozen, f32 data[size] */
/*  checkpoint adds: u64 generator, u32 has_optim, and if 1: the optimizer  */
/*        desc (u32 kind, f32 lr momentum, u32 nesterov, f32 beta1 beta2 eps */
/*        alpha, u32 centered, f32 weight_decay clip_norm dampening (not in */
/*        format 1)), u64 step,                                             */
/*        u64 floats, u32 buffers, f32 state[buffers][floats]               */
/*  Format 1 stored 16 x i32 and 3 x f32 per layer in place of the named    */
/*  attributes; it is still read (dl__get_attrs_v1).                        */
/* ======================================================================== */
#define DL__FORMAT 2
static const unsigned char dl__magic[8] = { 0x89, 'D', 'L', 'H', 0x0d, 0x0a, 0x1a, 0x0a };

DL__COLD_END    /* the loops over every byte and float of a file stay optimised */
static uint32_t dl__crc32(uint32_t crc, const unsigned char *p, size_t n) {   /* IEEE, 4 bits at a time */
    static const uint32_t t[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
        0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c };
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

/* ---- writing: into a growing memory buffer ---- */
typedef struct dl__wbuf { unsigned char *p; size_t len, cap; int oom; } dl__wbuf;
static void dl__put(dl__wbuf *w, const void *src, size_t n) {
    if (w->oom) return;
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc < w->len + n) nc *= 2;
        if (!dl__grow((void **)&w->p, w->len, nc, 1)) { w->oom = 1; return; }
        w->cap = nc;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}
static void dl__put_u32(dl__wbuf *w, uint32_t v) {
    unsigned char b[4];
    b[0] = (unsigned char)v; b[1] = (unsigned char)(v >> 8); b[2] = (unsigned char)(v >> 16); b[3] = (unsigned char)(v >> 24);
    dl__put(w, b, 4);
}
static void dl__put_u64(dl__wbuf *w, uint64_t v) { dl__put_u32(w, (uint32_t)v); dl__put_u32(w, (uint32_t)(v >> 32)); }
static void dl__put_f32(dl__wbuf *w, float f) { uint32_t v; memcpy(&v, &f, 4); dl__put_u32(w, v); }
static void dl__put_floats(dl__wbuf *w, const float *f, size_t n) { size_t i; for (i = 0; i < n; i++) dl__put_f32(w, f[i]); }
DL__COLD_BEGIN
/* Files hold finite numbers only: a diverged net must not replace the last good file. */

/* A layer's attributes by name, as its op's list declares them. */
static void dl__put_attrs(dl__wbuf *w, int op, const dl_attrs *a) {
    const dl__attr_spec *s;
    uint32_t n = 0;
    int k;
    for (s = dl__op(op)->attrs; s->name; s++) n++;
    dl__put_u32(w, n);
    for (s = dl__op(op)->attrs; s->name; s++) {
        const char *p = (const char *)a + s->offset;
        dl__put_u32(w, (uint32_t)strlen(s->name));
        dl__put(w, s->name, strlen(s->name));
        dl__put_u32(w, (uint32_t)s->type);
        dl__put_u32(w, (uint32_t)s->count);
        for (k = 0; k < s->count; k++) {
            if (s->type == DL__A_INT) { int v; memcpy(&v, p + k * sizeof(int), sizeof v); dl__put_u32(w, (uint32_t)v); }
            else { float v; memcpy(&v, p + k * sizeof(float), sizeof v); dl__put_f32(w, v); }
        }
    }
}

int dl_net_save_mem(dl_net *net, dl_optim *opt, void **data, size_t *len) {
    dl__wbuf w;
    int i, j, k, rc;
    uint32_t crc;
    if (!net) return DL_ERR_ARG;
    if (!data || !len) return dl__fail(net->err, DL_ERR_ARG, "save: data or len is NULL");
    if (opt && opt->net != net) return dl__fail(net->err, DL_ERR_ARG, "save: the optimizer belongs to another net");
    if ((rc = dl_net_sync(net))) return rc;
    memset(&w, 0, sizeof w);
    dl__put(&w, dl__magic, 8);
    dl__put_u32(&w, DL__FORMAT);
    dl__put_u32(&w, opt ? 1 : 0);
    dl__put_u64(&w, 0);                 /* body length, patched below */
    dl__put_u32(&w, (uint32_t)net->n_layers);
    for (i = 0; i < net->n_layers; i++) {
        const dl_layer *l = net->layers[i];
        dl__put_u32(&w, (uint32_t)l->op);
        dl__put(&w, l->name, sizeof l->name);
        dl__put_u32(&w, (uint32_t)l->n_in);
        for (j = 0; j < l->n_in; j++) dl__put_u32(&w, (uint32_t)l->in[j]->index);
        dl__put_attrs(&w, l->op, &l->a);
    }
    dl__put_u32(&w, (uint32_t)net->n_params);
    for (i = 0; i < net->n_params; i++) {
        const dl_param *p = &net->params[i];
        size_t bad = dl__nonfinite(p->data, (size_t)p->size);
        if (bad < (size_t)p->size) {
            DL_FREE(w.p);
            return dl__fail(net->err, DL_ERR_NUMERIC, "save: parameter '%s' holds %g at index %lu; nothing was written",
                            p->name, (double)p->data[bad], (unsigned long)bad);
        }
        dl__put(&w, p->name, sizeof p->name);
        dl__put_u32(&w, (uint32_t)p->ndim);
        for (j = 0; j < 4; j++) dl__put_u32(&w, (uint32_t)(j < p->ndim ? p->shape[j] : 0));
        dl__put_u32(&w, (uint32_t)p->trainable);
        dl__put_u32(&w, (uint32_t)p->frozen);
        dl__put_floats(&w, p->data, (size_t)p->size);
    }
    if (opt) {
        int count = dl__optim_state_count(&opt->d);
        const dl_optim_desc *d = &opt->d;
        if ((rc = dl__optim_fit(opt))) { DL_FREE(w.p); return rc; }
        dl__put_u64(&w, net->rng);
        dl__put_u32(&w, 1);
        dl__put_u32(&w, (uint32_t)d->kind); dl__put_f32(&w, d->lr); dl__put_f32(&w, d->momentum);
        dl__put_u32(&w, (uint32_t)d->nesterov); dl__put_f32(&w, d->beta1); dl__put_f32(&w, d->beta2);
        dl__put_f32(&w, d->eps); dl__put_f32(&w, d->alpha); dl__put_u32(&w, (uint32_t)d->centered);
        dl__put_f32(&w, d->weight_decay); dl__put_f32(&w, d->clip_norm);
        dl__put_f32(&w, d->dampening);      /* format 2 on */
        dl__put_u64(&w, (uint64_t)opt->step);
        dl__put_u64(&w, (uint64_t)opt->n);
        dl__put_u32(&w, (uint32_t)count);
        for (k = 0; k < count; k++) {
            int nomem = 0;
            float *h = net->b == &net->cpu ? opt->s[k] : dl__clone(net->b, opt->s[k], opt->n, 1, &nomem);
            size_t bad;
            if (!h) { w.oom = 1; break; }
            if ((bad = dl__nonfinite(h, opt->n)) < opt->n) {
                float v = h[bad];
                if (h != opt->s[k]) DL_FREE(h);
                DL_FREE(w.p);
                return dl__fail(net->err, DL_ERR_NUMERIC, "save: optimizer state %d holds %g at index %lu; nothing was written",
                                k, (double)v, (unsigned long)bad);
            }
            dl__put_floats(&w, h, opt->n);
            if (h != opt->s[k]) DL_FREE(h);
        }
    }
    if (!w.oom) {                       /* patch the body length, then the checksum */
        uint64_t body = w.len - 24;
        for (k = 0; k < 8; k++) w.p[16 + k] = (unsigned char)(body >> (8 * k));
        crc = dl__crc32(0, w.p, w.len);
        dl__put_u32(&w, crc);
    }
    if (w.oom) { DL_FREE(w.p); return dl__fail(net->err, DL_ERR_NOMEM, "save: out of memory"); }
    *data = w.p;
    *len = w.len;
    return dl__ok(net);
}

/* Writes a temporary file next to path, flushes it to disk, then renames
   it over path, so the old file survives any crash before the rename. */
static int dl__write_atomic(char *err, const char *call, const char *path, const void *data, size_t len);

static int dl__save(dl_net *net, dl_optim *opt, const char *path, const char *call) {
    void *data;
    size_t len;
    int rc;
    if (!net) return DL_ERR_ARG;
    if (!path) return dl__fail(net->err, DL_ERR_ARG, "%s: path is NULL", call);
    if ((rc = dl_net_save_mem(net, opt, &data, &len))) return rc;
    rc = dl__write_atomic(net->err, call, path, data, len);
    DL_FREE(data);
    return dl__done(net, rc);
}
int dl_net_save(dl_net *net, const char *path) { return dl__save(net, NULL, path, "dl_net_save"); }
int dl_checkpoint_save(dl_net *net, dl_optim *opt, const char *path) {
    if (net && !opt) return dl__fail(net->err, DL_ERR_ARG, "dl_checkpoint_save: the optimizer is NULL");
    return dl__save(net, opt, path, "dl_checkpoint_save");
}

/* ---- reading: every length checked against what is left ---- */
DL__COLD_END
typedef struct dl__rbuf { const unsigned char *p, *end; } dl__rbuf;
static int dl__get(dl__rbuf *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    return 1;
}
static int dl__get_u32(dl__rbuf *r, uint32_t *v) {
    unsigned char b[4];
    if (!dl__get(r, b, 4)) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}
static int dl__get_u64(dl__rbuf *r, uint64_t *v) {
    uint32_t lo, hi;
    if (!dl__get_u32(r, &lo) || !dl__get_u32(r, &hi)) return 0;
    *v = (uint64_t)hi << 32 | lo;
    return 1;
}
static int dl__get_f32(dl__rbuf *r, float *f) { uint32_t v; if (!dl__get_u32(r, &v)) return 0; memcpy(f, &v, 4); return 1; }
static int dl__get_i32(dl__rbuf *r, int *v) { uint32_t u; if (!dl__get_u32(r, &u)) return 0; *v = (int)(int32_t)u; return 1; }
static int dl__get_floats(dl__rbuf *r, float *f, size_t n) {
    size_t i;
    if ((size_t)(r->end - r->p) / 4 < n) return 0;
    for (i = 0; i < n; i++) dl__get_f32(r, &f[i]);
    return 1;
}
DL__COLD_BEGIN
/* Format 1's fixed record: symmetric pads, pooling undilated and counting
   the padding, no later attribute. */
static int dl__get_attrs_v1(dl__rbuf *r, int op, dl_attrs *a) {
    int v[16], i;
    for (i = 0; i < 16; i++) if (!dl__get_i32(r, &v[i])) return 0;
    memset(a, 0, sizeof *a);
    a->units = v[0]; a->kernel[0] = v[1]; a->kernel[1] = v[2]; a->stride[0] = v[3]; a->stride[1] = v[4];
    a->pad[0] = a->pad[2] = v[5]; a->pad[1] = a->pad[3] = v[6]; a->dilation[0] = v[7]; a->dilation[1] = v[8]; a->groups = v[9];
    if (op == DL_OP_MAXPOOL2D || op == DL_OP_AVGPOOL2D) { a->dilation[0] = a->dilation[1] = 1; a->count_include_pad = 1; }
    a->bias = v[10]; a->ndim = v[11]; a->shape[0] = v[12]; a->shape[1] = v[13]; a->shape[2] = v[14];
    return dl__get_f32(r, &a->alpha) && dl__get_f32(r, &a->eps) && dl__get_f32(r, &a->momentum);
}

/* Format 2: attributes by name. Those the file lacks keep their defaults; a
   name the op does not declare, or another type or count, is an error. */
static int dl__get_attrs(dl__rbuf *r, int op, dl_attrs *a, char *why) {
    const dl__attr_spec *s;
    uint32_t n, i, len, type, count, k;
    memset(a, 0, sizeof *a);
    for (s = dl__op(op)->attrs; s->name; s++)
        for (k = 0; k < (uint32_t)s->count; k++) {
            char *p = (char *)a + s->offset;
            if (s->type == DL__A_INT) { int v = (int)s->def; memcpy(p + k * sizeof(int), &v, sizeof v); }
            else memcpy(p + k * sizeof(float), &s->def, sizeof(float));
        }
    if (!dl__get_u32(r, &n) || n > 64) return dl__fail(why, DL_ERR_FORMAT, "truncated attributes");
    for (i = 0; i < n; i++) {
        char name[32];
        if (!dl__get_u32(r, &len) || len == 0 || len > 31 || !dl__get(r, name, len)) return dl__fail(why, DL_ERR_FORMAT, "truncated attribute");
        name[len] = 0;
        for (s = dl__op(op)->attrs; s->name && strcmp(s->name, name); s++) {}
        if (!s->name) return dl__fail(why, DL_ERR_FORMAT, "attribute '%s' is unknown to %s (a newer dl.h?)", name, dl_op_name(op));
        if (!dl__get_u32(r, &type) || !dl__get_u32(r, &count)) return dl__fail(why, DL_ERR_FORMAT, "truncated attribute '%s'", name);
        if (type != (uint32_t)s->type || count != (uint32_t)s->count)
            return dl__fail(why, DL_ERR_FORMAT, "attribute '%s' has type %u and %u values, not %d and %d", name, type, count, s->type, s->count);
        for (k = 0; k < count; k++) {
            uint32_t v;
            if (!dl__get_u32(r, &v)) return dl__fail(why, DL_ERR_FORMAT, "truncated attribute '%s'", name);
            memcpy((char *)a + s->offset + k * 4, &v, 4);       /* int and float are both 4 bytes here */
        }
    }
    return DL_OK;
}

/* No real layer has a dimension, kernel or stride beyond 2^24. */
static int dl__attrs_sane(const dl_attrs *a) {
    const int v[35] = { a->units, a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1],
                        a->dilation[0], a->dilation[1], a->groups, a->bias, a->ndim, a->shape[0], a->shape[1], a->shape[2],
                        a->pad[2], a->pad[3], a->auto_pad, a->ceil_mode, a->count_include_pad, a->output_padding[0],
                        a->output_padding[1], a->mode, a->perm[0], a->perm[1], a->perm[2], a->scale[0], a->scale[1],
                        a->align_corners, a->range[0], a->range[1], a->axes[0], a->axes[1], a->axes[2], a->keepdims };
    int i;
    for (i = 0; i < 35; i++) if (v[i] < -1 || v[i] > (1 << 24)) return 0;
    return dl__finite(a->alpha) && dl__finite(a->beta) && dl__finite(a->value) && dl__finite(a->eps) && dl__finite(a->momentum) &&
           a->approximate >= 0 && a->approximate <= 1;
}

/* Parses a file image. With into NULL it builds a new net through the same
   constructors the API uses (so every check applies); with into given it
   requires the same graph and loads the parameters into it. */
static int dl__parse(const unsigned char *data, size_t len, dl_net *into, dl_net **out, dl_optim **opt_out, char *err) {
    dl__rbuf r;
    dl_net *net = into;
    uint32_t format = 0, kind = 0, n_layers, n_params, u, i, j;
    uint64_t body = 0;
    int rc = DL_ERR_FORMAT;
    float *tmp = NULL;
#define DL__BAD(...) do { rc = dl__fail(err, DL_ERR_FORMAT, __VA_ARGS__); goto fail; } while (0)
    if (out) *out = NULL;
    if (opt_out) *opt_out = NULL;
    if (!data) return dl__fail(err, DL_ERR_ARG, "load: data is NULL");
    r.p = data; r.end = data + len;
    if (len < 28 || memcmp(data, dl__magic, 8)) return dl__fail(err, DL_ERR_FORMAT, "not a dl.h model file (bad magic)");
    r.p += 8;
    dl__get_u32(&r, &format); dl__get_u32(&r, &kind); dl__get_u64(&r, &body);
    if (format > DL__FORMAT || format == 0)
        return dl__fail(err, DL_ERR_FORMAT, "model file format %u; this dl.h reads format %d", format, DL__FORMAT);
    if (kind > 1) return dl__fail(err, DL_ERR_FORMAT, "unknown file kind %u", kind);
    if (body != len - 28) return dl__fail(err, DL_ERR_FORMAT, "file is %lu bytes but its header says %lu: truncated or extended",
                                          (unsigned long)len, (unsigned long)(body + 28));
    {
        uint32_t want = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 | (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
        if (dl__crc32(0, data, len - 4) != want) return dl__fail(err, DL_ERR_FORMAT, "checksum mismatch: the file is corrupt");
    }
    r.end = data + len - 4;
    if (!net) {
        if (!(net = dl_net_new())) return dl__fail(err, DL_ERR_NOMEM, "load: out of memory");
        net->param_limit = len / 4;
    }
    if (!dl__get_u32(&r, &n_layers)) DL__BAD("truncated layer count");
    if (into && n_layers != (uint32_t)into->n_layers) DL__BAD("the file has %u layers, the net %d", n_layers, into->n_layers);
    if (n_layers > len / 32) DL__BAD("implausible layer count %u", n_layers);
    for (i = 0; i < n_layers; i++) {
        uint32_t op, n_in, idx[64];
        char name[33], why[256];
        dl_attrs a;
        dl_layer *ins[64], *l;
        name[32] = 0;
        if (!dl__get_u32(&r, &op) || !dl__get(&r, name, 32) || !dl__get_u32(&r, &n_in)) DL__BAD("layer %u: truncated", i);
        if (op >= DL_OP_COUNT) DL__BAD("layer %u: unknown op %u (a newer dl.h?)", i, op);
        if (!memchr(name, 0, 32) || !name[0]) DL__BAD("layer %u: bad name", i);
        if (n_in < (uint32_t)dl__op((int)op)->min_in || n_in > (uint32_t)dl__op((int)op)->max_in) DL__BAD("layer %u '%s': %u inputs", i, name, n_in);
        for (j = 0; j < n_in; j++) {
            if (!dl__get_u32(&r, &idx[j])) DL__BAD("layer %u '%s': truncated", i, name);
            if (idx[j] >= i) DL__BAD("layer %u '%s': input %u is not an earlier layer", i, name, idx[j]);
            ins[j] = net->layers[idx[j]];
        }
        if (format == 1 ? !dl__get_attrs_v1(&r, (int)op, &a) : dl__get_attrs(&r, (int)op, &a, why) != DL_OK)
            DL__BAD("layer %u '%s': %s", i, name, format == 1 ? "truncated attributes" : why);
        if (!dl__attrs_sane(&a)) DL__BAD("layer %u '%s': attribute out of range", i, name);
        if (into) {
            l = into->layers[i];
            if ((uint32_t)l->op != op || (uint32_t)l->n_in != n_in) DL__BAD("layer %u: the file has %s '%s', the net %s '%s'",
                                                                        i, dl_op_name((int)op), name, dl_op_name(l->op), l->name);
            for (j = 0; j < n_in; j++) if ((uint32_t)l->in[j]->index != idx[j]) DL__BAD("layer %u '%s': inputs differ", i, name);
            continue;
        }
        if (dl__op((int)op)->flags & DL__F_USER) {
            rc = dl__fail(err, DL_ERR_UNSUPPORTED, "layer %u '%s' is a custom layer: build the net in code and use dl_net_load_weights", i, name);
            goto fail;
        }
        if (dl__op((int)op)->flags & DL__F_SOURCE) {
            if (a.ndim < 1 || a.ndim > 3) DL__BAD("layer %u '%s': input with %d dims", i, name, a.ndim);
            l = dl_input(net, a.shape[0], a.ndim > 1 ? a.shape[1] : 0, a.ndim > 2 ? a.shape[2] : 0);
            if (l && dl_layer_set_name(l, name)) l = NULL;
        } else {
            if ((dl__op((int)op)->flags & DL__F_VIEW) && a.ndim >= 1 && a.ndim <= 3) for (j = 0; j < (uint32_t)a.ndim; j++) if (a.shape[j] == -1) a.shape[j] = 0;
            l = dl__add(net, (int)op, ins, (int)n_in, &a, DL_INIT_ZEROS, NULL, name);
        }
        if (!l) {           /* out of memory is not a corrupt file */
            rc = dl__fail(err, net->last_rc == DL_ERR_NOMEM ? DL_ERR_NOMEM : DL_ERR_FORMAT, "layer %u: %s", i, net->err);
            goto fail;
        }
    }
    if (!dl__get_u32(&r, &n_params)) DL__BAD("truncated parameter count");
    if (n_params != (uint32_t)net->n_params) DL__BAD("the file has %u parameters, the graph %d", n_params, net->n_params);
    for (i = 0; i < n_params; i++) {
        dl_param *p = &net->params[i];
        char name[49];
        uint32_t ndim, shape[4], trainable, frozen;
        name[48] = 0;
        if (!dl__get(&r, name, 48) || !dl__get_u32(&r, &ndim)) DL__BAD("parameter %u: truncated", i);
        for (j = 0; j < 4; j++) if (!dl__get_u32(&r, &shape[j])) DL__BAD("parameter %u: truncated", i);
        if (!dl__get_u32(&r, &trainable) || !dl__get_u32(&r, &frozen)) DL__BAD("parameter %u: truncated", i);
        if (ndim != (uint32_t)p->ndim || trainable != (uint32_t)p->trainable) DL__BAD("parameter %u '%.48s' does not match '%s'", i, name, p->name);
        for (j = 0; j < ndim; j++) if (shape[j] != (uint32_t)p->shape[j]) DL__BAD("parameter '%s': shapes differ", p->name);
        if (!dl__get_floats(&r, p->data, (size_t)p->size)) DL__BAD("parameter '%s': truncated data", p->name);
        if (dl__nonfinite(p->data, (size_t)p->size) < (size_t)p->size) DL__BAD("parameter '%s': a value is not finite", p->name);
        p->frozen = frozen != 0;
    }
    if (kind == 1 && opt_out) {
        uint32_t has, count, k;
        uint64_t step, n;
        dl_optim_desc d;
        dl_optim *opt;
        memset(&d, 0, sizeof d);
        if (!dl__get_u64(&r, &net->rng) || !dl__get_u32(&r, &has)) DL__BAD("checkpoint: truncated");
        if (has) {
            if (!dl__get_u32(&r, &u)) DL__BAD("optimizer: truncated");
            d.kind = (int)u;
            if (!dl__get_f32(&r, &d.lr) || !dl__get_f32(&r, &d.momentum) || !dl__get_u32(&r, &u)) DL__BAD("optimizer: truncated");
            d.nesterov = (int)u;
            if (!dl__get_f32(&r, &d.beta1) || !dl__get_f32(&r, &d.beta2) || !dl__get_f32(&r, &d.eps) ||
                !dl__get_f32(&r, &d.alpha) || !dl__get_u32(&r, &u)) DL__BAD("optimizer: truncated");
            d.centered = (int)u;
            if (!dl__get_f32(&r, &d.weight_decay) || !dl__get_f32(&r, &d.clip_norm) ||
                (format >= 2 && !dl__get_f32(&r, &d.dampening)) || !dl__get_u64(&r, &step) ||
                !dl__get_u64(&r, &n) || !dl__get_u32(&r, &count)) DL__BAD("optimizer: truncated");
            if (!(opt = dl_optim_new(net, &d))) {
                rc = dl__fail(err, net->last_rc == DL_ERR_NOMEM ? DL_ERR_NOMEM : DL_ERR_FORMAT, "%s", net->err);
                goto fail;
            }
            if (n != net->nw || count != (uint32_t)dl__optim_state_count(&opt->d) || step >= (uint64_t)LONG_MAX)
                DL__BAD("optimizer: state of %lu x %u floats does not fit the net", (unsigned long)n, count);
            opt->step = (long)step;
            for (k = 0; k < count; k++) {
                if (net->b == &net->cpu) {
                    if (!dl__get_floats(&r, opt->s[k], net->nw)) DL__BAD("optimizer: truncated state");
                    if (dl__nonfinite(opt->s[k], net->nw) < net->nw) DL__BAD("optimizer: a state value is not finite");
                } else {
                    if (!tmp && !(tmp = (float *)dl__calloc(net->nw, sizeof(float)))) { rc = dl__fail(err, DL_ERR_NOMEM, "load: out of memory"); goto fail; }
                    if (!dl__get_floats(&r, tmp, net->nw)) DL__BAD("optimizer: truncated state");
                    if (dl__nonfinite(tmp, net->nw) < net->nw) DL__BAD("optimizer: a state value is not finite");
                    if (net->b->copy(net->b, opt->s[k], tmp, net->nw * sizeof(float), DL_TO_DEVICE)) DL__BAD("optimizer: %s", net->b->error);
                }
            }
            *opt_out = opt;
        }
    }
    if (!opt_out && kind == 1) r.p = r.end;       /* a checkpoint read as a model */
    if (r.p != r.end) DL__BAD("%lu unexpected bytes after the data", (unsigned long)(r.end - r.p));
    if (into && into->b != &into->cpu) {           /* refresh the device copies */
        if ((into->nw && into->b->copy(into->b, into->dw, into->w, into->nw * sizeof(float), DL_TO_DEVICE)) ||
            (into->ns && into->b->copy(into->b, into->ds, into->s, into->ns * sizeof(float), DL_TO_DEVICE)))
            { rc = dl__fail(err, DL_ERR_BACKEND, "load: %s", into->b->error); goto fail; }
    }
    DL_FREE(tmp);
    net->param_limit = 0;
    net->err[0] = 0;
    if (out) *out = net;
    return DL_OK;
fail:
    DL_FREE(tmp);
    if (!into) dl_net_free(net);
    if (opt_out) *opt_out = NULL;
    return rc;
#undef DL__BAD
}

static dl_net *dl__load_mem(const void *data, size_t len, dl_optim **opt, dl_status *st) {
    dl_net *net = NULL;
    char err[256];
    int rc = dl__parse((const unsigned char *)data, len, NULL, &net, opt, err);
    if (st) { st->code = rc; if (rc) snprintf(st->msg, sizeof st->msg, "%s", err); else st->msg[0] = 0; }
    return net;
}
dl_net *dl_net_load_mem(const void *data, size_t len, dl_status *st) { return dl__load_mem(data, len, NULL, st); }
dl_net *dl_checkpoint_load_mem(const void *data, size_t len, dl_optim **opt, dl_status *st) {
    dl_optim *dummy;
    return dl__load_mem(data, len, opt ? opt : &dummy, st);
}

/* Reads a whole file into memory (the caller frees *data); defined with
   the platform's file calls at the end. */
static int dl__read_file(const char *path, unsigned char **data, size_t *len, char *err);

static dl_net *dl__load_path(const char *path, dl_optim **opt, dl_status *st) {
    unsigned char *data;
    size_t len = 0;
    char err[256];
    dl_net *net;
    int rc = dl__read_file(path, &data, &len, err);
    if (rc) {
        if (st) { st->code = rc; snprintf(st->msg, sizeof st->msg, "%s", err); }
        return NULL;
    }
    net = dl__load_mem(data, len, opt, st);
    DL_FREE(data);
    if (!net && st) {           /* name the file in the message */
        char msg[256];
        snprintf(msg, sizeof msg, "%.80s: %.170s", path, st->msg);
        memcpy(st->msg, msg, sizeof msg);
    }
    return net;
}
dl_net *dl_net_load(const char *path, dl_status *st) { return dl__load_path(path, NULL, st); }
dl_net *dl_checkpoint_load(const char *path, dl_optim **opt, dl_status *st) {
    dl_optim *dummy;
    return dl__load_path(path, opt ? opt : &dummy, st);
}

int dl_net_load_weights(dl_net *net, const char *path) {
    unsigned char *data;
    size_t len = 0;
    char err[256];
    float *backup;
    int rc, i;
    if (!net) return DL_ERR_ARG;
    if ((rc = dl__read_file(path, &data, &len, net->err))) return rc;
    /* parse into the live net, restoring the old values (and frozen flags,
       kept as 0/1 after them) if the file is bad */
    if (!(backup = (float *)dl__calloc(net->nw + net->ns + (size_t)net->n_params + 1, sizeof(float)))) {
        DL_FREE(data);
        return dl__fail(net->err, DL_ERR_NOMEM, "%s: out of memory", path);
    }
    if (net->nw) memcpy(backup, net->w, net->nw * sizeof(float));
    if (net->ns) memcpy(backup + net->nw, net->s, net->ns * sizeof(float));
    for (i = 0; i < net->n_params; i++) backup[net->nw + net->ns + (size_t)i] = (float)net->params[i].frozen;
    rc = dl__parse(data, len, net, NULL, NULL, err);
    net->pgen++;
    if (rc) {
        if (net->nw) memcpy(net->w, backup, net->nw * sizeof(float));
        if (net->ns) memcpy(net->s, backup + net->nw, net->ns * sizeof(float));
        for (i = 0; i < net->n_params; i++) net->params[i].frozen = backup[net->nw + net->ns + (size_t)i] != 0;
        dl__fail(net->err, rc, "%s: %s", path, err);
    }
    DL_FREE(backup);
    DL_FREE(data);
    return dl__done(net, rc);
}

/* ==== >>platform: the platform's file calls ================================ */
#if defined(__unix__) || defined(__APPLE__)
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#ifdef O_CLOEXEC
#define DL__O_CLOEXEC O_CLOEXEC
#else
#define DL__O_CLOEXEC 0
#endif
/* The size comes from fstat, and only regular files qualify: a folder or a
   device has no size to trust. A file that changes while it is read is
   caught by the length and checksum checks. */
static int dl__read_file(const char *path, unsigned char **data, size_t *len, char *err) {
    struct stat st;
    size_t size, got = 0;
    int fd;
    *data = NULL;
    *len = 0;
    if (!path) return dl__fail(err, DL_ERR_ARG, "load: path is NULL");
    if ((fd = open(path, O_RDONLY | DL__O_CLOEXEC)) < 0) return dl__fail(err, DL_ERR_IO, "%s: cannot open for reading", path);
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 0 || (unsigned long long)st.st_size >= (size_t)-1) {
        close(fd);
        return dl__fail(err, DL_ERR_IO, "%s: not a regular file", path);
    }
    size = (size_t)st.st_size;
    if (!(*data = (unsigned char *)DL_MALLOC(size + 1))) { close(fd); return dl__fail(err, DL_ERR_NOMEM, "%s: out of memory", path); }
    while (got < size) {
        ssize_t k = read(fd, *data + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    if (got != size) {
        DL_FREE(*data);
        *data = NULL;
        return dl__fail(err, DL_ERR_IO, "%s: read error", path);
    }
    *len = size;
    return DL_OK;
}
/* Creates tmp (never an existing file: 0 then, with *exists set), writes
   it and flushes it to the disk. */
static int dl__write_file(const char *tmp, const void *data, size_t len, int *exists) {
    const char *p = (const char *)data;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | DL__O_CLOEXEC, 0644), ok = fd >= 0;
    *exists = fd < 0 && errno == EEXIST;
    while (ok && len) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) ok = 0;
        else { p += k; len -= (size_t)k; }
    }
    if (ok && fsync(fd)) ok = 0;
    if (fd >= 0 && close(fd)) ok = 0;
    return ok;
}
static void dl__sync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd;
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if ((fd = open(dir, O_RDONLY | DL__O_CLOEXEC)) >= 0) { fsync(fd); close(fd); }
}
static unsigned long dl__pid(void) { return (unsigned long)getpid(); }
/* A save replaces a regular file only: renaming over a device, a FIFO or a
   folder (say /dev/null, saved to as root) would put a file in its place. */
static int dl__special(const char *path) { struct stat st; return stat(path, &st) == 0 && !S_ISREG(st.st_mode); }
#else
static int dl__read_file(const char *path, unsigned char **data, size_t *len, char *err) {
    FILE *f;
    long size;
    *data = NULL;
    *len = 0;
    if (!path) return dl__fail(err, DL_ERR_ARG, "load: path is NULL");
    if (!(f = fopen(path, "rb"))) return dl__fail(err, DL_ERR_IO, "%s: cannot open for reading", path);
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || size == LONG_MAX || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return dl__fail(err, DL_ERR_IO, "%s: cannot find its size", path);
    }
    if (!(*data = (unsigned char *)DL_MALLOC((size_t)size + 1))) { fclose(f); return dl__fail(err, DL_ERR_NOMEM, "%s: out of memory", path); }
    if (fread(*data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        DL_FREE(*data);
        *data = NULL;
        return dl__fail(err, DL_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    *len = (size_t)size;
    return DL_OK;
}
#ifdef DL__WIN32
/* CREATE_NEW never opens an existing file; FlushFileBuffers puts the data
   on the disk before the rename can make it the file. */
static int dl__write_file(const char *tmp, const void *data, size_t len, int *exists) {
    HANDLE h = CreateFileA(tmp, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    const char *p = (const char *)data;
    int ok = h != INVALID_HANDLE_VALUE;
    *exists = !ok && GetLastError() == ERROR_FILE_EXISTS;
    while (ok && len) {
        DWORD done = 0;
        if (!WriteFile(h, p, len > 0x40000000 ? 0x40000000 : (DWORD)len, &done, NULL) || !done) ok = 0;
        else { p += done; len -= done; }
    }
    if (ok && !FlushFileBuffers(h)) ok = 0;
    if (h != INVALID_HANDLE_VALUE && !CloseHandle(h)) ok = 0;
    return ok;
}
/* rename does not replace a file on Windows; MoveFileEx does, in one step,
   and with write-through returns only once the move is on the disk. */
static int dl__replace(const char *tmp, const char *path) {
    return MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) != 0;
}
static unsigned long dl__pid(void) { return (unsigned long)GetCurrentProcessId(); }
static int dl__special(const char *path) {     /* a folder or a device (NUL, CON): never replaced */
    DWORD at = GetFileAttributesA(path);
    return at != INVALID_FILE_ATTRIBUTES && (at & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) != 0;
}
#else
static int dl__write_file(const char *tmp, const void *data, size_t len, int *exists) {
    FILE *f = fopen(tmp, "wb");
    int ok;
    *exists = 0;
    if (!f) return 0;
    ok = fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    return fclose(f) == 0 && ok;
}
static unsigned long dl__pid(void) { return 0; }
static int dl__special(const char *path) { (void)path; return 0; }   /* plain C cannot tell */
#endif
static void dl__sync_dir(const char *path) { (void)path; }
#endif
#ifndef DL__WIN32
static int dl__replace(const char *tmp, const char *path) { return rename(tmp, path) == 0; }
#endif
/* The temporary file is named after the process and the buffer being
   written, so concurrent saves to one path (threads or processes) never
   share it: each renames a complete file of its own over path. A process
   killed mid-save may leave a "path.*.tmp" behind; path itself is intact.
   Messages name the destination and the system's reason (errno), which
   the temporary file shares with it. */
static int dl__write_atomic(char *err, const char *call, const char *path, const void *data, size_t len) {
    char tmp[4096];
    int attempt, exists = 1, e;
    if (strlen(path) + 64 > sizeof tmp) return dl__fail(err, DL_ERR_ARG, "%s: path too long (%lu bytes)", call, (unsigned long)strlen(path));
    if (dl__special(path)) return dl__fail(err, DL_ERR_IO, "%s: %s exists and is not a regular file", call, path);
    for (attempt = 0; exists && attempt < 16; attempt++) {
        snprintf(tmp, sizeof tmp, "%s.%lu-%lx-%d.tmp", path, dl__pid(), (unsigned long)(uintptr_t)data, attempt);
        errno = 0;
        if (dl__write_file(tmp, data, len, &exists)) break;
        if (!exists) {
            e = errno;
            remove(tmp);
            return dl__fail(err, DL_ERR_IO, "%s: cannot write %s: %s", call, path, e ? strerror(e) : "write error");
        }
    }
    if (exists) return dl__fail(err, DL_ERR_IO, "%s: cannot create a temporary file next to %s", call, path);
    errno = 0;
    if (!dl__replace(tmp, path)) {
        e = errno;
        remove(tmp);
        return dl__fail(err, DL_ERR_IO, "%s: cannot replace %s: %s", call, path, e ? strerror(e) : "rename failed");
    }
    dl__sync_dir(path);
    return DL_OK;
}

/* ==== >>fit: summary, schedules, datasets, fit, checkpoints, report ========= */
/* Built only on the public API above, so the core can change underneath. */
#ifndef DL_NO_FIT
#include <float.h>
#include <time.h>

/* ---- output to a FILE or a caller's buffer (snprintf-like length) ---- */
typedef struct dl__fout { FILE *f; char *buf; size_t cap, len; int err; } dl__fout;

static void dl__fwrite(dl__fout *o, const char *s, size_t k) {
    if (o->f) {
        if (k && fwrite(s, 1, k, o->f) != k) o->err = 1;
    } else if (o->buf && o->len + 1 < o->cap) {   /* the part that fits, always terminated */
        size_t room = o->cap - 1 - o->len, m = k < room ? k : room;
        memcpy(o->buf + o->len, s, m);
        o->buf[o->len + m] = '\0';
    }
    o->len += k;
}
static void dl__fputs(dl__fout *o, const char *s) { dl__fwrite(o, s, strlen(s)); }
static void dl__fprintf(dl__fout *o, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    int k;
    va_start(ap, fmt);
    k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) { o->err = 1; return; }
    dl__fwrite(o, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* ---- summary ---- */
/* 1234567 -> "1,234,567" */
static const char *dl__commas(double v, char *out) {
    char d[32];
    int n, i, k = 0;
    n = snprintf(d, sizeof d, "%.0f", v);
    for (i = 0; i < n; i++) {
        out[k++] = d[i];
        if (d[i] != '-' && (n - 1 - i) % 3 == 0 && i < n - 1) out[k++] = ',';
    }
    out[k] = '\0';
    return out;
}
static const char *dl__bytes(double b, char *out) {
    if (b < 1024) snprintf(out, 24, "%.0f B", b);
    else if (b < 1048576) snprintf(out, 24, "%.1f KB", b / 1024);
    else snprintf(out, 24, "%.1f MB", b / 1048576);
    return out;
}

/* multiply-adds per sample: the GEMM ops, and batchnorm's scale and shift */
static double dl__layer_macs(const dl_layer *l) {
    if (l->op == DL_OP_DENSE) return (double)l->in[0]->size * l->size;
    if (l->op == DL_OP_CONV2D) {
        dl_conv_geom g = dl_layer_conv_geom(l);
        return (double)g.M * g.P * g.K;
    }
    if (l->op == DL_OP_MATMUL) return (double)l->size * l->in[0]->shape[l->in[0]->ndim - 1];
    if (l->op == DL_OP_BATCHNORM) return l->size;
    return 0;
}

static void dl__summary(dl_net *net, dl__fout *o) {
    double tot_p = 0, tot_t = 0, tot_f = 0, tot_m = 0, tot_a = 0;
    char a[32], b[32], c[32], d[32], e[32], shape[32];
    int i, j, np = dl_net_param_count(net);
    dl__fprintf(o, "%-26s %-14s %12s %12s %10s %14s %12s\n", "Layer (op)", "Output shape", "Params", "Trainable", "Frozen",
                "MACs/sample", "Memory/sample");
    for (i = 0; i < 104; i++) dl__fwrite(o, "=", 1);
    dl__fwrite(o, "\n", 1);
    for (i = 0; i < dl_net_layer_count(net); i++) {
        dl_layer *l = dl_net_layer(net, i);
        double p = 0, t = 0, f = 0, m = dl__layer_macs(l), mem = l->op == DL_OP_RESHAPE ? 0 : 4.0 * l->size;
        int dims[3], nd = dl_layer_shape(l, dims), k = 0;
        char name[64];
        for (j = 0; j < np; j++) {
            dl_param *q = dl_net_param(net, j);
            if (q->layer != l) continue;
            p += q->size;
            if (q->trainable && !q->frozen) t += q->size;
            if (q->trainable && q->frozen) f += q->size;
        }
        for (j = 0; j < nd; j++) k += snprintf(shape + k, sizeof shape - (size_t)k, j ? "x%d" : "%d", dims[j]);
        snprintf(name, sizeof name, "%s (%s)", dl_layer_name(l), dl_op_name(l->op));
        dl__fprintf(o, "%-26s %-14s %12s %12s %10s %14s %12s\n", name, shape, dl__commas(p, a), dl__commas(t, b),
                    dl__commas(f, c), dl__commas(m, d), dl__bytes(mem, e));
        tot_p += p, tot_t += t, tot_f += f, tot_m += m, tot_a += mem;
    }
    for (i = 0; i < 104; i++) dl__fwrite(o, "=", 1);
    dl__fprintf(o, "\nTotal params: %s (%s)\n", dl__commas(tot_p, a), dl__bytes(4 * tot_p, b));
    dl__fprintf(o, "Trainable params: %s\nFrozen params: %s\nNon-trainable params (statistics): %s\n",
                dl__commas(tot_t, a), dl__commas(tot_f, b), dl__commas(tot_p - tot_t - tot_f, c));
    dl__fprintf(o, "Multiply-adds per sample: %s\nActivation memory per sample: %s\n", dl__commas(tot_m, a),
                dl__bytes(tot_a, b));
}

int dl_net_summary(dl_net *net, FILE *f) {
    dl__fout o;
    if (!net || !f) return DL_ERR_ARG;
    memset(&o, 0, sizeof o);
    o.f = f;
    dl__summary(net, &o);
    return o.err ? DL_ERR_IO : DL_OK;
}
int dl_net_summary_str(dl_net *net, char *buf, size_t cap) {
    dl__fout o;
    if (!net || (!buf && cap)) return -1;
    memset(&o, 0, sizeof o);
    o.buf = buf, o.cap = cap;
    if (cap) buf[0] = '\0';
    dl__summary(net, &o);
    return (int)o.len;
}

/* ---- schedules ---- */
#define DL__PI 3.14159265358979323846

/* Computed in float, as (lr - min) times the factor, so that a cosine from
   lr to 0 is lr * 0.5f * (1 + (float)cos(...)) exactly. */
static float dl__sched_cosine(const dl_schedule *s, float base, long t) {
    long T = s->period, tc = t;
    float c;
    if (T < 1) return NAN;
    if (s->restart_mult == 1) tc %= T;
    else if (s->restart_mult > 1)
        while (tc >= T) tc -= T, T *= s->restart_mult;
    c = 0.5f * (1.0f + (float)cos(DL__PI * (double)tc / (double)T));
    return s->min_lr + (base - s->min_lr) * c;
}

static float dl__sched_onecycle(const dl_schedule *s, double base, long t) {
    double pct = s->pct_start > 0 ? s->pct_start : 0.3, div = s->div > 0 ? s->div : 25;
    double fdiv = s->final_div > 0 ? s->final_div : 1e4, lo = base / div, end1, a, b, x;
    if (s->total < 2) return NAN;
    end1 = pct * s->total - 1;
    if (t > s->total - 1) t = s->total - 1;
    if (t <= end1) a = lo, b = base, x = t / end1;
    else a = base, b = lo / fdiv, x = (t - end1) / (s->total - 1 - end1);
    return (float)(b + (a - b) / 2 * (cos(DL__PI * x) + 1));
}

/* Lengths, factors and the plateau state in range (also for a schedule read
   from a file). Finiteness by bits: under -ffast-math a NaN field would pass
   the comparisons. */
static int dl__sched_ok(const dl_schedule *s) {
    const float f[8] = { s->lr, s->gamma, s->min_lr, s->pct_start, s->div, s->final_div, s->threshold, s->warmup_start };
    int i;
    for (i = 0; i < 8; i++) if (!dl__finite(f[i]) || f[i] < 0) return 0;
    return s->kind >= DL_SCHED_CONSTANT && s->kind <= DL_SCHED_PLATEAU && s->step_size >= 0 && s->period >= 0 &&
           s->restart_mult >= 0 && s->restart_mult <= 1000 && s->total >= 0 && s->warmup >= 0 && s->pct_start < 1 &&
           s->patience >= 0 && s->cooldown >= 0 && s->bad >= 0 && s->cool_left >= 0 && dl__finite_d(s->best) &&
           dl__finite_d(s->plateau_lr) && s->plateau_lr >= 0;
}

float dl_schedule_lr(const dl_schedule *s, long t) {
    double g, base;
    int k = 0;
    if (!s || t < 0 || !dl__sched_ok(s)) return NAN;
    base = s->lr > 0 ? s->lr : 1;
    g = s->gamma > 0 ? s->gamma : 0.1;
    if (s->warmup > 0) {
        double f0 = s->warmup_start > 0 ? s->warmup_start : 1.0 / 3;
        if (t < s->warmup) return (float)(base * (f0 + (1 - f0) * (double)t / s->warmup));
        t -= s->warmup;
    }
    switch (s->kind) {
    case DL_SCHED_CONSTANT: return (float)base;
    case DL_SCHED_STEP: return (float)(base * pow(g, (double)(t / (s->step_size > 0 ? s->step_size : 1))));
    case DL_SCHED_MULTISTEP:
        while (k < 8 && s->milestones[k] > 0 && s->milestones[k] <= t) k++;
        return (float)(base * pow(g, k));
    case DL_SCHED_EXPONENTIAL: return (float)(base * pow(g, (double)t));
    case DL_SCHED_COSINE: return dl__sched_cosine(s, (float)base, t);
    case DL_SCHED_ONECYCLE: return dl__sched_onecycle(s, base, t);
    case DL_SCHED_PLATEAU: return (float)(s->plateau_lr > 0 ? s->plateau_lr : base);
    default: return NAN;
    }
}

/* ReduceLROnPlateau.step(metric), relative threshold */
int dl_schedule_observe(dl_schedule *s, double m) {
    double thr, old, lo;
    int better;
    if (!s || s->kind != DL_SCHED_PLATEAU || !dl__sched_ok(s)) return 0;
    thr = s->threshold > 0 ? s->threshold : 1e-4;
    /* NaN or infinity never improves (as in PyTorch, where best starts at
       inf); tested by bits, since -ffast-math folds comparisons with NaN */
    better = dl__finite_d(m) && (!s->seen || (s->maximize ? m > s->best * (1 + thr) : m < s->best * (1 - thr)));
    if (better) s->best = m, s->seen = 1, s->bad = 0;
    else s->bad++;
    if (s->cool_left > 0) s->cool_left--, s->bad = 0;
    if (s->bad <= s->patience) return 0;
    old = s->plateau_lr > 0 ? s->plateau_lr : (s->lr > 0 ? s->lr : 1);
    lo = old * (s->gamma > 0 ? s->gamma : 0.1);
    if (lo < s->min_lr) lo = s->min_lr;
    s->cool_left = s->cooldown;
    s->bad = 0;
    if (old - lo <= 1e-8) return 0;
    s->plateau_lr = lo;
    s->reductions++;
    return 1;
}

/* ---- data ---- */
uint64_t dl_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dl_shuffle(int *order, int n, uint64_t *s) {
    int i;
    if (!order || !s) return;
    for (i = n - 1; i > 0; i--) {
        int j = (int)(dl_rand(s) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static size_t dl__sample_floats(const dl_dataset *d) {
    return (size_t)d->c * (size_t)(d->h > 0 ? d->h : 1) * (size_t)(d->w > 0 ? d->w : 1);
}
static float dl__unit(uint64_t u) { return (float)(u & 0xffffff) * (1.0f / 16777216.0f); }

/* dst[r][c] = src[r - dy][c - dx], zeros coming in; in place, per plane */
static void dl__shift_plane(float *p, int H, int W, int dy, int dx, int flip) {
    int r, c;
    if (dy > 0) memmove(p + (size_t)dy * W, p, sizeof(float) * (size_t)(H - dy) * W);
    if (dy < 0) memmove(p, p + (size_t)(-dy) * W, sizeof(float) * (size_t)(H + dy) * W);
    for (r = 0; r < (dy > 0 ? dy : -dy) && r < H; r++) memset(p + (size_t)(dy > 0 ? r : H - 1 - r) * W, 0, sizeof(float) * W);
    for (r = 0; r < H; r++) {
        float *row = p + (size_t)r * W;
        int s = flip ? -dx : dx;   /* mirrored first: src[W-1-c-dx] is the mirror's [c+dx] */
        for (c = 0; flip && c < W / 2; c++) { float t = row[c]; row[c] = row[W - 1 - c]; row[W - 1 - c] = t; }
        if (s > 0) memmove(row + s, row, sizeof(float) * (size_t)(W - s > 0 ? W - s : 0));
        if (s < 0) memmove(row, row - s, sizeof(float) * (size_t)(W + s > 0 ? W + s : 0));
        for (c = 0; c < (s > 0 ? s : -s) && c < W; c++) row[s > 0 ? c : W - 1 - c] = 0;
    }
}

static void dl__augment(float *x, int C, int H, int W, const dl_augment *a, uint64_t *rng) {
    size_t plane = (size_t)H * W, n = plane * C, i;
    int ch;
    if (a->shift > 0 || a->flip) {
        uint64_t u = dl_rand(rng);
        int s = a->shift > 0 ? a->shift : 0, span = 2 * s + 1;
        int dy = (int)(u % (unsigned)span) - s, dx = (int)((u >> 16) % (unsigned)span) - s;
        int flip = a->flip ? (int)(u >> 32) & 1 : 0;
        for (ch = 0; ch < C; ch++) dl__shift_plane(x + plane * ch, H, W, dy, dx, flip);
    }
    if (a->contrast > 0 || a->brightness != 0) {
        uint64_t u = dl_rand(rng);
        float cf = 1 + a->contrast * (2 * dl__unit(u >> 40) - 1), br = a->brightness * (2 * dl__unit(u >> 16) - 1);
        double mean = 0;
        for (i = 0; i < n; i++) mean += x[i];
        mean /= (double)n;
        for (i = 0; i < n; i++) x[i] = ((x[i] - (float)mean) * cf + (float)mean) + br;
    }
    if (a->cutout > 0) {
        uint64_t u = dl_rand(rng);
        int cy = (int)(u % (unsigned)H) - a->cutout / 2, cx = (int)((u >> 32) % (unsigned)W) - a->cutout / 2, r, c;
        for (ch = 0; ch < C; ch++)
            for (r = cy < 0 ? 0 : cy; r < cy + a->cutout && r < H; r++)
                for (c = cx < 0 ? 0 : cx; c < cx + a->cutout && c < W; c++) x[plane * ch + (size_t)r * W + c] = 0;
    }
}

/* Sizes >= 0 and finite factors (by bits, so that -ffast-math cannot let a
   NaN through); contrast at most 1 keeps the factor >= 0. */
static int dl__augment_ok(const dl_augment *a) {
    return !a || (a->shift >= 0 && a->cutout >= 0 && dl__finite(a->brightness) && dl__finite(a->contrast) &&
                  a->contrast >= 0 && a->contrast <= 1);
}

int dl_dataset_batch(const dl_dataset *d, const int *index, int n, const dl_augment *aug, uint64_t *rng, float *x,
                     int *labels, float *targets) {
    size_t sz;
    int i;
    if (!d || !index || n < 0 || !x || d->c < 1 || d->count < 0 || (!d->x && !d->fill) || !dl__augment_ok(aug))
        return DL_ERR_ARG;
    sz = dl__sample_floats(d);
    for (i = 0; i < n; i++)
        if (index[i] < 0 || index[i] >= d->count) return DL_ERR_ARG;
    if (d->fill) {
        if (d->fill(d->user, index, n, x, labels, targets)) return DL_ERR_ARG;
    } else {
        for (i = 0; i < n; i++) {
            memcpy(x + sz * i, d->x + sz * (size_t)index[i], sz * sizeof(float));
            if (labels && d->labels) labels[i] = d->labels[index[i]];
            if (targets && d->targets)
                memcpy(targets + (size_t)d->target_size * i, d->targets + (size_t)d->target_size * index[i],
                       sizeof(float) * (size_t)d->target_size);
        }
    }
    if (aug && rng && (aug->shift > 0 || aug->flip || aug->cutout > 0 || aug->contrast > 0 || aug->brightness != 0))
        for (i = 0; i < n; i++)
            dl__augment(x + sz * i, d->c, d->h > 0 ? d->h : 1, d->w > 0 ? d->w : 1, aug, rng);
    return DL_OK;
}

/* ---- evaluation ---- */
/* Buffers sized once, for fit (no allocation per step) and dl_evaluate. */
typedef struct dl__fit_bufs { float *x, *t; int *y, *idx; int cap; } dl__fit_bufs;

static int dl__bufs_new(dl__fit_bufs *b, int cap, size_t sample, int tsize) {
    b->cap = cap;
    b->x = (float *)DL_MALLOC(sizeof(float) * sample * (size_t)cap + 1);
    b->t = (float *)DL_MALLOC(sizeof(float) * (size_t)tsize * (size_t)cap + 1);
    b->y = (int *)DL_MALLOC(sizeof(int) * (size_t)cap);
    b->idx = (int *)DL_MALLOC(sizeof(int) * (size_t)cap);
    return b->x && b->t && b->y && b->idx ? DL_OK : DL_ERR_NOMEM;
}
static void dl__bufs_free(dl__fit_bufs *b) {
    DL_FREE(b->x); DL_FREE(b->t); DL_FREE(b->y); DL_FREE(b->idx);
    memset(b, 0, sizeof *b);
}

/* The most confident mistakes, for the report */
#define DL__MISTAKES 8
typedef struct dl__mistake { int index, label, top[3]; float p[3]; } dl__mistake;

static void dl__note_mistake(dl__mistake *m, const float *z, int classes, int index, int label) {
    double mx = z[0], sum = 0;
    int c, k, j, slot = -1;
    dl__mistake cand;
    for (c = 1; c < classes; c++) if (z[c] > mx) mx = z[c];
    for (c = 0; c < classes; c++) sum += exp(z[c] - mx);
    if (!dl__finite_d(sum)) return;   /* NaN logits rank nothing */
    cand.index = index, cand.label = label;
    for (k = 0; k < 3; k++) cand.top[k] = -1, cand.p[k] = -1;
    for (c = 0; c < classes; c++) {
        float p = (float)(exp(z[c] - mx) / sum);
        for (k = 0; k < 3 && !(p > cand.p[k]); k++) {}
        if (k == 3) continue;
        for (j = 2; j > k; j--) cand.top[j] = cand.top[j - 1], cand.p[j] = cand.p[j - 1];
        cand.top[k] = c, cand.p[k] = p;
    }
    for (k = 0; k < DL__MISTAKES; k++)
        if (m[k].index < 0 || cand.p[0] > m[k].p[0]) { slot = k; break; }
    if (slot < 0) return;
    for (j = DL__MISTAKES - 1; j > slot; j--) m[j] = m[j - 1];
    m[slot] = cand;
}

/* one batch of predictions into ev's sums */
static void dl__eval_batch(const float *z, int n, int classes, const int *y, const float *t, dl_eval *ev,
                           double *loss, long *top1, long *topk, int first, dl__mistake *mist) {
    int i, c;
    for (i = 0; i < n; i++, z += classes) {
        if (t) {
            for (c = 0; c < classes; c++) *loss += ((double)z[c] - t[(size_t)i * classes + c]) * ((double)z[c] - t[(size_t)i * classes + c]) / classes;
        } else {
            double mx = z[0], s = 0;
            int best = 0, above = 0;
            for (c = 1; c < classes; c++) if (z[c] > z[best]) best = c;
            mx = z[best];
            for (c = 0; c < classes; c++) {
                s += exp((double)z[c] - mx);
                above += z[c] > z[y[i]];
            }
            *loss += log(s) + mx - z[y[i]];
            *top1 += best == y[i];
            *topk += above < ev->k;
            if (ev->confusion) ev->confusion[y[i] * classes + best]++;
            if (mist && best != y[i]) dl__note_mistake(mist, z, classes, first + i, y[i]);
        }
    }
}

static int dl__eval(dl_net *net, dl_layer *logits, const dl_dataset *d, dl__fit_bufs *b, int batch, dl_eval *ev,
                    dl__mistake *mist) {
    int classes = dl_layer_size(logits), mse = d->target_size > 0, i, j, n, rc;
    double loss = 0;
    long top1 = 0, topk = 0;
    if (!ev->k) ev->k = 5;
    if (ev->k > classes) ev->k = classes;
    if (ev->confusion) memset(ev->confusion, 0, sizeof(int) * (size_t)classes * classes);
    if (mist) for (i = 0; i < DL__MISTAKES; i++) mist[i].index = -1;
    for (i = 0; i < d->count; i += n) {
        const float *z;
        n = d->count - i < batch ? d->count - i : batch;
        for (j = 0; j < n; j++) b->idx[j] = i + j;
        if ((rc = dl_dataset_batch(d, b->idx, n, NULL, NULL, b->x, mse ? NULL : b->y, mse ? b->t : NULL)))
            return rc;
        if (!mse) for (j = 0; j < n; j++) if (b->y[j] < 0 || b->y[j] >= classes) return DL_ERR_ARG;
        if (!(z = dl_predict(net, logits, b->x, n))) return DL_ERR_ARG;
        dl__eval_batch(z, n, classes, b->y, mse ? b->t : NULL, ev, &loss, &top1, &topk, i, mist);
    }
    ev->count = d->count;
    ev->loss = d->count ? loss / d->count : NAN;
    ev->accuracy = mse || !d->count ? NAN : (double)top1 / d->count;
    ev->topk = mse || !d->count ? NAN : (double)topk / d->count;
    if (ev->class_acc && ev->confusion)
        for (i = 0; i < classes; i++) {
            long row = 0;
            for (j = 0; j < classes; j++) row += ev->confusion[i * classes + j];
            ev->class_acc[i] = row ? (double)ev->confusion[i * classes + i] / row : NAN;
        }
    return DL_OK;
}

static int dl__check_data(dl_net *net, dl_layer *out, const dl_dataset *d, int need_labels) {
    int i;
    dl_layer *in = NULL;
    for (i = 0; i < dl_net_layer_count(net) && !in; i++)
        if (dl_layer_op(dl_net_layer(net, i)) == DL_OP_INPUT) in = dl_net_layer(net, i);
    if (!d || !in || !out || d->count < 0 || (!d->x && !d->fill) || (d->c && dl__sample_floats(d) != (size_t)dl_layer_size(in)))
        return DL_ERR_ARG;
    if (need_labels && !d->fill && (d->target_size > 0 ? !d->targets || d->target_size != dl_layer_size(out) : !d->labels))
        return DL_ERR_ARG;
    return DL_OK;
}

/* the dataset with c, h, w filled in from the input layer */
static dl_dataset dl__shaped(dl_net *net, const dl_dataset *d) {
    dl_dataset s = *d;
    int i;
    for (i = 0; i < dl_net_layer_count(net) && !s.c; i++)
        if (dl_layer_op(dl_net_layer(net, i)) == DL_OP_INPUT) dl_layer_out_hw(dl_net_layer(net, i), &s.c, &s.h, &s.w);
    return s;
}

int dl_evaluate(dl_net *net, dl_layer *logits, const dl_dataset *d, int batch, dl_eval *ev) {
    dl__fit_bufs b;
    dl_dataset s;
    int rc;
    if (!net || !ev || dl__check_data(net, logits, d, 1)) return DL_ERR_ARG;
    s = dl__shaped(net, d);
    if (batch < 1) batch = 64;
    if (dl__bufs_new(&b, batch, dl__sample_floats(&s), s.target_size) == DL_OK) rc = dl__eval(net, logits, &s, &b, batch, ev, NULL);
    else rc = DL_ERR_NOMEM;
    dl__bufs_free(&b);
    return rc;
}

int dl_predict_dataset(dl_net *net, dl_layer *out, const dl_dataset *d, int batch, float *dst) {
    dl__fit_bufs b;
    dl_dataset s;
    int rc = DL_OK, i, j, n, size;
    if (!net || !dst || dl__check_data(net, out, d, 0)) return DL_ERR_ARG;
    s = dl__shaped(net, d);
    size = dl_layer_size(out);
    if (batch < 1) batch = 64;
    if (dl__bufs_new(&b, batch, dl__sample_floats(&s), 0)) rc = DL_ERR_NOMEM;
    for (i = 0; !rc && i < s.count; i += n) {
        const float *z;
        n = s.count - i < batch ? s.count - i : batch;
        for (j = 0; j < n; j++) b.idx[j] = i + j;
        if ((rc = dl_dataset_batch(&s, b.idx, n, NULL, NULL, b.x, NULL, NULL))) break;
        if (!(z = dl_predict(net, out, b.x, n))) rc = DL_ERR_ARG;
        else memcpy(dst + (size_t)i * size, z, sizeof(float) * (size_t)n * size);
    }
    dl__bufs_free(&b);
    return rc;
}

int dl_print_confusion(FILE *f, const int *confusion, int classes, const char *const *names) {
    dl__fout o;
    char nb[16];
    int t, p;
    if (!f || !confusion || classes < 1) return DL_ERR_ARG;
    memset(&o, 0, sizeof o);
    o.f = f;
    dl__fprintf(&o, "per class (rows: true class, columns: predicted, then the row's accuracy)\n%-12s", "");
    for (p = 0; p < classes; p++) dl__fprintf(&o, " %5.5s", names ? names[p] : (snprintf(nb, sizeof nb, "%d", p), nb));
    dl__fputs(&o, "  accuracy\n");
    for (t = 0; t < classes; t++) {
        long total = 0;
        dl__fprintf(&o, "%-12.12s", names ? names[t] : (snprintf(nb, sizeof nb, "%d", t), nb));
        for (p = 0; p < classes; p++) dl__fprintf(&o, " %5d", confusion[t * classes + p]), total += confusion[t * classes + p];
        dl__fprintf(&o, "  %.4f\n", total ? (double)confusion[t * classes + t] / total : 0.0);
    }
    return o.err ? DL_ERR_IO : DL_OK;
}

/* ---- fit's position: what a checkpoint adds to dl_net_save_mem's file ---- */
typedef struct dl__fit_pos {
    int count, epoch, done;     /* training samples; the epoch in progress (from 0); samples done in it */
    double loss_sum, correct;   /* the epoch so far */
    int acc_ok;                 /* 0 once a batch's logits could not be read */
    uint64_t rng;
    int *order;
    dl_schedule sched;          /* lr and lengths filled in */
    double best_metric;
    int bad_epochs, has_best;
    size_t best_n;
    float *best;                /* every parameter, statistics included; NULL without early stopping */
    dl__mistake mist[DL__MISTAKES];   /* the last validation's, for the report */
} dl__fit_pos;

static void dl__pos_free(dl__fit_pos *p) {
    if (!p) return;
    DL_FREE(p->order);
    DL_FREE(p->best);
    DL_FREE(p);
}

void dl_fit_history_free(dl_fit_history *h) {
    if (!h) return;
    DL_FREE(h->epochs);
    DL_FREE(h->confusion);
    DL_FREE(h->class_acc);
    dl__pos_free((dl__fit_pos *)h->pos);
    memset(h, 0, sizeof *h);
}

/* Every parameter's values (statistics included), to or from buf. */
static size_t dl__params_copy(dl_net *net, float *buf, int restore) {
    size_t k = 0;
    int i;
    for (i = 0; i < dl_net_param_count(net); i++) {
        dl_param *p = dl_net_param(net, i);
        if (buf && restore) memcpy(p->data, buf + k, sizeof(float) * (size_t)p->size);
        else if (buf) memcpy(buf + k, p->data, sizeof(float) * (size_t)p->size);
        k += (size_t)p->size;
    }
    return k;
}

/* ---- the checkpoint file: "DLFIT\r\n\x1a", u32 version, fields, the net's
   checkpoint (length + bytes), then a 64-bit FNV-1a of all before it ---- */
typedef struct dl__wr { unsigned char *p; size_t len, cap; int bad; } dl__wr;  /* p NULL: reading (cap = size) */

static void dl__io(dl__wr *w, void *v, size_t n) {   /* little-endian hosts write their bytes as they are */
    if (w->bad) return;
    if (w->len + n > w->cap) { w->bad = 1; return; }
    if (w->p) memcpy(w->p + w->len, v, n);
    w->len += n;
}
static void dl__io_rd(dl__wr *w, const unsigned char *src, void *v, size_t n) {
    if (w->bad || w->len + n > w->cap) { w->bad = 1; return; }
    memcpy(v, src + w->len, n);
    w->len += n;
}
static uint64_t dl__fnv64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    while (n--) h = (h ^ *p++) * 0x100000001b3ull;
    return h;
}
static const char dl__fit_magic[8] = { 'D', 'L', 'F', 'I', 'T', '\r', '\n', 0x1a };

/* One list of fields for writing, sizing and reading: dir 0 writes into w
   (or counts, p NULL), 1 reads from src. */
static void dl__pos_fields(dl__wr *w, const unsigned char *src, int rd, dl__fit_pos *p, dl_fit_history *h) {
#define DL__F(ptr, n) (rd ? dl__io_rd(w, src, (ptr), (n)) : dl__io(w, (ptr), (n)))
    uint32_t version = 1;
    int32_t ne = h->n_epochs;
    uint64_t bn = p->best_n;
    DL__F(&version, 4);
    DL__F(&p->count, sizeof(int)); DL__F(&p->epoch, sizeof(int)); DL__F(&p->done, sizeof(int));
    DL__F(&p->loss_sum, 8); DL__F(&p->correct, 8); DL__F(&p->acc_ok, sizeof(int));
    DL__F(&p->rng, 8);
    DL__F(&p->sched, sizeof p->sched);
    DL__F(&p->best_metric, 8); DL__F(&p->bad_epochs, sizeof(int)); DL__F(&p->has_best, sizeof(int));
    DL__F(&p->mist, sizeof p->mist);
    DL__F(&h->best_epoch, sizeof(int)); DL__F(&h->step, sizeof(long)); DL__F(&h->classes, sizeof(int));
    DL__F(&ne, 4);
    DL__F(&bn, 8);
    if (rd && !w->bad) {
        if (version != 1 || ne < 0 || ne > 1 << 24 || p->count < 0 || bn > (w->cap - w->len) / 4 ||
            (size_t)p->count > (w->cap - w->len) / sizeof(int) || h->classes < 0 || h->classes > 1 << 15) { w->bad = 1; return; }
        p->best_n = (size_t)bn;
        h->n_epochs = h->cap_epochs = ne;
        h->epochs = (dl_fit_epoch *)DL_MALLOC(sizeof(dl_fit_epoch) * (size_t)ne + 1);
        p->order = (int *)DL_MALLOC(sizeof(int) * (size_t)p->count + 1);
        p->best = bn ? (float *)DL_MALLOC(sizeof(float) * (size_t)bn) : NULL;
        if (!h->epochs || !p->order || (bn && !p->best)) { w->bad = 2; return; }
    }
    if (ne) DL__F(h->epochs, sizeof(dl_fit_epoch) * (size_t)ne);
    if (p->count) DL__F(p->order, sizeof(int) * (size_t)p->count);
    if (bn) DL__F(p->best, sizeof(float) * (size_t)bn);
#undef DL__F
}

static int dl__fit_write_file(const char *path, const void *data, size_t len) {
    char tmp[1100];
    FILE *f;
    int ok;
    if (strlen(path) > 1000) return DL_ERR_ARG;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) return DL_ERR_IO;
    ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) || !ok || rename(tmp, path)) { remove(tmp); return DL_ERR_IO; }
    return DL_OK;
}

static int dl__fit_save(dl_net *net, dl_optim *opt, dl_fit_history *h, const char *path) {
    dl__fit_pos *p = (dl__fit_pos *)h->pos;
    dl__wr w;
    void *blob = NULL;
    size_t blen = 0;
    uint64_t b64, sum;
    int rc = dl_net_save_mem(net, opt, &blob, &blen);
    if (rc) return rc;
    memset(&w, 0, sizeof w);
    w.cap = (size_t)-1;
    dl__pos_fields(&w, NULL, 0, p, h);
    w.cap = 8 + w.len + 8 + blen + 8;
    w.len = 0;
    if (!(w.p = (unsigned char *)DL_MALLOC(w.cap))) { DL_FREE(blob); return DL_ERR_NOMEM; }
    dl__io(&w, (void *)dl__fit_magic, 8);
    dl__pos_fields(&w, NULL, 0, p, h);
    b64 = blen;
    dl__io(&w, &b64, 8);
    dl__io(&w, blob, blen);
    sum = dl__fnv64(w.p, w.len);
    dl__io(&w, &sum, 8);
    rc = w.bad ? DL_ERR_ARG : dl__fit_write_file(path, w.p, w.len);
    DL_FREE(w.p);
    DL_FREE(blob);
    return rc;
}

static dl_net *dl__fit_fail(dl_status *st, int code, const char *path, const char *why) {
    if (st) {
        st->code = code;
        snprintf(st->msg, sizeof st->msg, "dl_fit_load: %.150s: %s", path ? path : "(null)", why);
    }
    return NULL;
}

dl_net *dl_fit_load(const char *path, dl_optim **opt, dl_fit_history *h, dl_status *st) {
    FILE *f;
    unsigned char *data = NULL;
    long size;
    uint64_t blen = 0, sum;
    dl__wr w;
    dl__fit_pos *p;
    dl_net *net = NULL;
    if (!path || !opt || !h) return dl__fit_fail(st, DL_ERR_ARG, path, "a NULL argument");
    dl_fit_history_free(h);
    if (!(f = fopen(path, "rb"))) return dl__fit_fail(st, DL_ERR_IO, path, "cannot open for reading");
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 24 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return dl__fit_fail(st, DL_ERR_FORMAT, path, "too short for a dl_fit checkpoint");
    }
    if (!(data = (unsigned char *)DL_MALLOC((size_t)size)) || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        DL_FREE(data);
        return dl__fit_fail(st, data ? DL_ERR_IO : DL_ERR_NOMEM, path, data ? "read error" : "out of memory");
    }
    fclose(f);
    memcpy(&sum, data + size - 8, 8);
    if (memcmp(data, dl__fit_magic, 8) || dl__fnv64(data, (size_t)size - 8) != sum) {
        DL_FREE(data);
        return dl__fit_fail(st, DL_ERR_FORMAT, path, "not a dl_fit checkpoint, or corrupt");
    }
    if (!(p = (dl__fit_pos *)DL_MALLOC(sizeof *p))) { DL_FREE(data); return dl__fit_fail(st, DL_ERR_NOMEM, path, "out of memory"); }
    memset(p, 0, sizeof *p);
    h->pos = p;
    memset(&w, 0, sizeof w);
    w.cap = (size_t)size - 8;
    w.len = 8;
    dl__pos_fields(&w, data, 1, p, h);
    dl__io_rd(&w, data, &blen, 8);
    if (!w.bad && blen == w.cap - w.len) net = dl_checkpoint_load_mem(data + w.len, (size_t)blen, opt, st);
    else dl__fit_fail(st, w.bad == 2 ? DL_ERR_NOMEM : DL_ERR_FORMAT, path, w.bad == 2 ? "out of memory" : "a field out of range");
    DL_FREE(data);
    if (!net) dl_fit_history_free(h);
    else if (st) st->code = DL_OK, st->msg[0] = '\0';
    return net;
}

/* ---- progress ---- */
static double dl__fit_now(void) {
#if defined(DL__WIN32)      /* mingw declares clock_gettime only with winpthreads */
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
#elif defined(CLOCK_MONOTONIC)
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;   /* without POSIX: processor time */
#endif
}

void dl_fit_print_progress(void *user, const dl_fit_progress *p) {
    (void)user;
    if (p->phase == DL_FIT_TRAINING) {
        char bar[21];
        int k, fill = p->total ? (int)(20.0 * p->done / p->total) : 0;
        for (k = 0; k < 20; k++) bar[k] = k < fill ? '=' : k == fill ? '>' : ' ';
        bar[20] = '\0';
        printf("\repoch %d/%d [%s] %ld/%ld  %.0f img/s  loss %.4f  ETA %d:%02d  ", p->epoch, p->epochs, bar, p->done,
               p->total, p->img_per_s, p->loss, (int)p->eta / 60, (int)p->eta % 60);
    } else if (p->phase == DL_FIT_EVALUATING) {
        printf("\r%-79s", "validating...");
    } else if (p->last) {
        const dl_fit_epoch *e = p->last;
        if (p->bar) printf("\r%79s\r", "");
        printf("epoch %d/%d: %ld images in %.1f s, %.0f img/s, train loss %.4f", e->epoch, p->epochs, e->images,
               e->seconds, e->images / (e->seconds > 1e-9 ? e->seconds : 1e-9), e->train_loss);
        if (!dl__nan_d(e->val_loss)) printf(", val accuracy %.4f, val loss %.4f", e->val_acc, e->val_loss);
        printf("\n");
    }
    fflush(stdout);
}

/* ---- fit ---- */
typedef struct dl__fit {
    dl_net *net;
    dl_optim *opt;
    dl_layer *logits;
    const dl_fit_options *o;
    dl_fit_history *h;
    dl__fit_pos *p;
    dl_dataset train, val;      /* shaped; val.count 0: none */
    dl__fit_bufs b;
    int epochs, batch, eval_batch, classes, mse;
    long steps_per_epoch;
    double t0, last_draw;
} dl__fit;

static int dl__fit_err(dl_fit_history *h, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->error, sizeof h->error, fmt, ap);
    va_end(ap);
    return rc;
}

static void dl__fit_progress(dl__fit *F, int phase, const dl_fit_epoch *last) {
    dl_fit_progress pr;
    double now = dl__fit_now();
    if (F->o->quiet == 1 || (F->o->quiet && phase != DL_FIT_EPOCH_DONE)) return;
    memset(&pr, 0, sizeof pr);
    pr.phase = phase;
    pr.epoch = F->p->epoch + 1 - (phase == DL_FIT_EPOCH_DONE);
    pr.epochs = F->epochs;
    pr.done = F->p->done;
    pr.total = F->train.count;
    pr.seconds = now - F->t0;
    pr.img_per_s = pr.done / (pr.seconds > 1e-9 ? pr.seconds : 1e-9);
    pr.eta = (pr.total - pr.done) / (pr.img_per_s > 0 ? pr.img_per_s : 1);
    pr.loss = F->p->done ? F->p->loss_sum / F->p->done : 0;
    pr.last = last;
    pr.bar = !F->o->quiet;
    (F->o->progress ? F->o->progress : dl_fit_print_progress)(F->o->user, &pr);
    F->last_draw = now;
}

/* The rate for the next step (or epoch), given to the optimizer. */
static int dl__fit_set_lr(dl__fit *F, long t) {
    float lr = dl_schedule_lr(&F->p->sched, t);
    return dl_optim_set_lr(F->opt, lr == 0 ? FLT_MIN : lr);   /* a cosine's end is 0; optimizers want > 0 */
}

/* One optimizer step on the next batch of the epoch. */
static int dl__fit_step(dl__fit *F, int n, float *loss) {
    dl__fit_pos *p = F->p;
    const float *z;
    int rc, i, c;
    if (!p->sched.per_epoch && (rc = dl__fit_set_lr(F, F->h->step))) return rc;
    if ((rc = dl_dataset_batch(&F->train, p->order + p->done, n, &F->o->augment, &p->rng, F->b.x,
                               F->mse ? NULL : F->b.y, F->mse ? F->b.t : NULL)))
        return rc;
    rc = F->mse ? dl_train_step_mse(F->net, F->opt, F->logits, F->b.x, F->b.t, n, loss)
                : dl_train_step(F->net, F->opt, F->logits, F->b.x, F->b.y, n, loss);
    if (rc) return rc;
    p->loss_sum += (double)*loss * n;
    if (!F->mse && (z = dl_layer_output(F->logits)) != NULL) {
        for (i = 0; i < n; i++, z += F->classes) {
            int best = 0;
            for (c = 1; c < F->classes; c++) if (z[c] > z[best]) best = c;
            p->correct += best == F->b.y[i];
        }
    } else p->acc_ok = 0;
    p->done += n;
    F->h->step++;
    return DL_OK;
}

static int dl__fit_grow(dl_fit_history *h) {
    if (h->n_epochs == h->cap_epochs) {
        int cap = h->cap_epochs ? 2 * h->cap_epochs : 16;
        dl_fit_epoch *e = (dl_fit_epoch *)DL_MALLOC(sizeof *e * (size_t)cap);
        if (!e) return DL_ERR_NOMEM;
        if (h->n_epochs) memcpy(e, h->epochs, sizeof *e * (size_t)h->n_epochs);
        DL_FREE(h->epochs);
        h->epochs = e, h->cap_epochs = cap;
    }
    return DL_OK;
}

static int dl__fit_report(dl__fit *F);

/* After the last batch: the record, validation, schedule, early stopping,
   checkpoint and report. Returns a status; *stop 1 to end training. */
static int dl__fit_epoch_end(dl__fit *F, double secs, int *stop) {
    dl__fit_pos *p = F->p;
    dl_fit_history *h = F->h;
    dl_fit_epoch *e;
    dl_eval ev;
    double metric;
    int rc;
    if ((rc = dl__fit_grow(h))) return rc;
    e = &h->epochs[h->n_epochs];
    memset(e, 0, sizeof *e);
    e->epoch = p->epoch + 1;
    e->images = p->done;
    e->train_loss = p->done ? p->loss_sum / p->done : NAN;
    e->train_acc = p->acc_ok && p->done && !F->mse ? p->correct / p->done : NAN;
    e->lr = dl_optim_lr(F->opt);
    e->seconds = secs;
    e->val_loss = e->val_acc = e->val_topk = NAN;
    if (F->val.count) {
        dl__fit_progress(F, DL_FIT_EVALUATING, NULL);
        memset(&ev, 0, sizeof ev);
        ev.k = F->o->topk;
        ev.confusion = h->confusion, ev.class_acc = h->class_acc;
        if ((rc = dl__eval(F->net, F->logits, &F->val, &F->b, F->eval_batch, &ev, p->mist)))
            return dl__fit_err(h, rc, "dl_fit: validation after epoch %d: a label out of range, the fill callback or dl_predict failed (%s)",
                               p->epoch + 1, dl_net_error(F->net));
        e->val_loss = ev.loss, e->val_acc = ev.accuracy, e->val_topk = ev.topk;
    }
    h->n_epochs++;
    metric = F->val.count ? (F->o->monitor_acc && !F->mse ? -e->val_acc : e->val_loss) : e->train_loss;
    dl_schedule_observe(&p->sched, F->val.count ? (p->sched.maximize ? e->val_acc : e->val_loss) : e->train_loss);
    if (dl__finite_d(metric) && (!h->best_epoch || metric < p->best_metric)) {   /* NaN by bits: fast-math */
        p->best_metric = metric, p->bad_epochs = 0, h->best_epoch = e->epoch;
        if (p->best && !dl_net_sync(F->net)) dl__params_copy(F->net, p->best, 0), p->has_best = 1;
    } else if (++p->bad_epochs >= F->o->patience && F->o->patience > 0) {
        if (p->has_best) dl__params_copy(F->net, p->best, 1);
        h->stopped_early = 1, *stop = 1;
    }
    p->epoch++;
    p->done = 0;
    if (p->sched.per_epoch && p->epoch < F->epochs && (rc = dl__fit_set_lr(F, p->epoch))) return rc;
    if (F->o->checkpoint && (rc = dl__fit_save(F->net, F->opt, h, F->o->checkpoint)))
        return dl__fit_err(h, rc, "dl_fit: cannot write the checkpoint %s", F->o->checkpoint);
    if (F->o->report && (rc = dl__fit_report(F))) return dl__fit_err(h, rc, "dl_fit: cannot write the report %s", F->o->report);
    dl__fit_progress(F, DL_FIT_EPOCH_DONE, e);
    if (F->o->on_epoch && F->o->on_epoch(F->o->user, h)) h->stopped_early = 2, *stop = 1;
    return DL_OK;
}

static int dl__fit_epoch(dl__fit *F, int *stop) {
    dl__fit_pos *p = F->p;
    double t0 = dl__fit_now();
    int rc;
    F->t0 = t0;   /* a resumed epoch's speed counts from here */
    F->last_draw = 0;
    if (p->done == 0) {
        dl_shuffle(p->order, p->count, &p->rng);
        p->loss_sum = p->correct = 0, p->acc_ok = 1;
    }
    while (p->done < p->count) {
        int n = p->count - p->done < F->batch ? p->count - p->done : F->batch;
        float loss;
        if (n < 2 && F->batch > 1) break;   /* batchnorm needs two samples */
        if ((rc = dl__fit_step(F, n, &loss)))
            return dl__fit_err(F->h, rc, "dl_fit: epoch %d, step %ld: %s", p->epoch + 1, F->h->step + 1,
                               *dl_net_error(F->net) ? dl_net_error(F->net) : "a label out of range, or the fill callback failed");
        if (F->o->quiet != 1 && (dl__fit_now() - F->last_draw > 0.1 || p->done >= p->count - 1))
            dl__fit_progress(F, DL_FIT_TRAINING, NULL);
        if (F->o->checkpoint_every > 0 && F->h->step % F->o->checkpoint_every == 0 && p->done < p->count &&
            F->o->checkpoint && (rc = dl__fit_save(F->net, F->opt, F->h, F->o->checkpoint)))
            return dl__fit_err(F->h, rc, "dl_fit: cannot write the checkpoint %s", F->o->checkpoint);
        if (F->o->on_step && F->o->on_step(F->o->user, F->h, loss)) {
            F->h->stopped_early = 2, *stop = 1;
            return DL_OK;
        }
    }
    return dl__fit_epoch_end(F, dl__fit_now() - t0, stop);
}

/* Resolves the options, allocates everything the run needs, and makes or
   checks the position. */
static int dl__fit_setup(dl__fit *F, const dl_dataset *train, const dl_dataset *val) {
    const dl_fit_options *o = F->o;
    dl_fit_history *h = F->h;
    dl__fit_pos *p = (dl__fit_pos *)h->pos;
    int nval = 0, i, cap;
    F->train = dl__shaped(F->net, train);
    if (!dl__finite(o->val_split) || o->val_split < 0 || !dl__augment_ok(&o->augment))   /* by bits: fast-math */
        return dl__fit_err(h, DL_ERR_ARG, "dl_fit: val_split must be in [0, 1), augment's sizes >= 0 and its factors finite");
    if (val) F->val = dl__shaped(F->net, val);
    else if (o->val_split > 0 && !(o->val_split < 1 && train->x))
        return dl__fit_err(h, DL_ERR_ARG, "dl_fit: val_split needs a fraction below 1 and samples in memory (x), not a fill callback");
    else if (o->val_split > 0) {
        size_t sz = dl__sample_floats(&F->train);
        nval = (int)(train->count * (double)o->val_split);
        F->train.count -= nval;
        F->val = F->train;
        F->val.count = nval;
        F->val.x = train->x + sz * (size_t)F->train.count;
        if (train->labels) F->val.labels = train->labels + F->train.count;
        if (train->targets) F->val.targets = train->targets + (size_t)train->target_size * F->train.count;
    }
    F->epochs = o->epochs > 0 ? o->epochs : 10;
    F->batch = o->batch > 0 ? o->batch : 32;
    F->eval_batch = o->eval_batch > 0 ? o->eval_batch : F->batch;
    F->classes = dl_layer_size(F->logits);
    F->mse = train->target_size > 0;
    F->steps_per_epoch = (F->train.count + F->batch - 1) / F->batch;
    cap = F->batch > F->eval_batch ? F->batch : F->eval_batch;
    if (dl__bufs_new(&F->b, cap, dl__sample_floats(&F->train), F->mse ? F->classes : 0)) return DL_ERR_NOMEM;
    if (!h->confusion && !F->mse) {
        h->classes = F->classes;
        h->confusion = (int *)DL_MALLOC(sizeof(int) * (size_t)F->classes * F->classes);
        h->class_acc = (double *)DL_MALLOC(sizeof(double) * (size_t)F->classes);
        if (!h->confusion || !h->class_acc) return DL_ERR_NOMEM;
        memset(h->confusion, 0, sizeof(int) * (size_t)F->classes * F->classes);
        for (i = 0; i < F->classes; i++) h->class_acc[i] = NAN;
    }
    if (p && (p->count != F->train.count || (p->best_n && p->best_n != dl__params_copy(F->net, NULL, 0))))
        return dl__fit_err(h, DL_ERR_ARG, "dl_fit: the history continues a run on %d training samples, not %d, or on another net",
                           p->count, F->train.count);
    if (p) return dl__sched_ok(&p->sched) ? DL_OK : dl__fit_err(h, DL_ERR_ARG, "dl_fit: the history's schedule is out of range");
    if (!(p = (dl__fit_pos *)DL_MALLOC(sizeof *p))) return DL_ERR_NOMEM;
    memset(p, 0, sizeof *p);
    h->pos = p;
    p->count = F->train.count;
    p->rng = (o->seed ? o->seed : dl_net_rand(F->net)) * 0x2545f4914f6cdd1dull + 1;
    if (!(p->order = (int *)DL_MALLOC(sizeof(int) * (size_t)p->count + 1))) return DL_ERR_NOMEM;
    for (i = 0; i < p->count; i++) p->order[i] = i;
    if (o->patience > 0 && !strcmp(dl_net_backend(F->net)->name, "cpu")) {
        p->best_n = dl__params_copy(F->net, NULL, 0);
        if (!(p->best = (float *)DL_MALLOC(sizeof(float) * p->best_n + 1))) return DL_ERR_NOMEM;
    }
    for (i = 0; i < DL__MISTAKES; i++) p->mist[i].index = -1;
    p->sched = o->schedule;
    if (!dl__sched_ok(&p->sched)) return dl__fit_err(h, DL_ERR_ARG, "dl_fit: a schedule field is out of range");
    if (!(p->sched.lr > 0)) p->sched.lr = dl_optim_lr(F->opt);
    {   /* lengths 0: the whole run, after the warm-up */
        long run = (p->sched.per_epoch ? F->epochs : (long)F->epochs * F->steps_per_epoch) - p->sched.warmup;
        if (p->sched.period <= 0) p->sched.period = run > 0 ? (int)run : 1;
        if (p->sched.total <= 0) p->sched.total = run > 1 ? (int)run : 2;
    }
    return DL_OK;
}

int dl_fit(dl_net *net, dl_optim *opt, dl_layer *logits, const dl_dataset *train, const dl_dataset *val,
           const dl_fit_options *o, dl_fit_history *h) {
    dl_fit_options defaults;
    dl__fit F;
    int rc, stop = 0;
    if (!net || !opt || !logits || !h) return h ? dl__fit_err(h, DL_ERR_ARG, "dl_fit: NULL net, optimizer or logits") : DL_ERR_ARG;
    memset(&defaults, 0, sizeof defaults);
    if (!o) o = &defaults;
    h->error[0] = '\0';
    if (dl__check_data(net, logits, train, 1) || (val && dl__check_data(net, logits, val, 1)) ||
        (val && (val->target_size > 0) != (train->target_size > 0)) || train->count < 1)
        return dl__fit_err(h, DL_ERR_ARG, "dl_fit: a dataset does not fit: it needs samples (x or fill) of the input "
                                          "layer's size (c*h*w), and labels, or targets of the logits' size");
    memset(&F, 0, sizeof F);
    F.net = net, F.opt = opt, F.logits = logits, F.o = o, F.h = h;
    if ((rc = dl__fit_setup(&F, train, val)) && !h->error[0]) dl__fit_err(h, rc, "dl_fit: out of memory");
    F.p = (dl__fit_pos *)h->pos;
    if (!rc && F.p->sched.per_epoch && (rc = dl__fit_set_lr(&F, F.p->epoch)))
        dl__fit_err(h, rc, "dl_fit: the schedule gives %g for epoch %d", (double)dl_schedule_lr(&F.p->sched, F.p->epoch), F.p->epoch + 1);
    h->stopped_early = 0;
    while (!rc && !stop && F.p->epoch < F.epochs) rc = dl__fit_epoch(&F, &stop);
    dl__bufs_free(&F.b);
    return rc;
}

/* ---- the HTML report: one self-contained file (inline SVG and data: PNGs,
   no script, and a policy that forbids any request) ---- */
static uint32_t dl__png_crc(uint32_t c, const unsigned char *p, size_t n) {
    int k;
    c = ~c;
    while (n--) for (c ^= *p++, k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    return ~c;
}
static void dl__be32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v; }

static void dl__base64(dl__fout *o, const unsigned char *p, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    size_t i;
    for (i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = t[v >> 18], q[1] = t[(v >> 12) & 63];
        q[2] = i + 1 < n ? t[(v >> 6) & 63] : '=', q[3] = i + 2 < n ? t[v & 63] : '=';
        dl__fwrite(o, q, 4);
    }
}

/* A grayscale <img> of w x h floats mapped from [lo, hi] to [0, 255], shown
   `scale` times larger: a PNG whose zlib stream uses stored blocks. */
static void dl__png_img(dl__fout *o, const float *v, int w, int h, float lo, float hi, int scale, const char *title) {
    size_t raw = (size_t)h * (w + 1), blocks = raw / 65535 + 1, size = 8 + 25 + 12 + 2 + raw + 5 * blocks + 4 + 12, k = 0, i;
    unsigned char *png = (unsigned char *)DL_MALLOC(size), *idat;
    uint32_t a = 1, b = 0;
    int r, c;
    if (!png) { o->err = 1; return; }
    memcpy(png, "\x89PNG\r\n\x1a\n", 8), k = 8;
    dl__be32(png + k, 13), memcpy(png + k + 4, "IHDR", 4);
    dl__be32(png + k + 8, (uint32_t)w), dl__be32(png + k + 12, (uint32_t)h);
    png[k + 16] = 8, png[k + 17] = 0, png[k + 18] = png[k + 19] = png[k + 20] = 0;
    dl__be32(png + k + 21, dl__png_crc(0, png + k + 4, 17)), k += 25;
    idat = png + k;
    dl__be32(idat, (uint32_t)(2 + raw + 5 * blocks + 4)), memcpy(idat + 4, "IDAT", 4), k += 8;
    png[k++] = 0x78, png[k++] = 0x01;
    for (i = 0; i < raw; i++) {
        if (i % 65535 == 0) {
            size_t len = raw - i < 65535 ? raw - i : 65535;
            png[k++] = (unsigned char)(raw - i <= 65535);
            png[k++] = (unsigned char)len, png[k++] = (unsigned char)(len >> 8);
            png[k++] = (unsigned char)~len, png[k++] = (unsigned char)(~len >> 8);
        }
        r = (int)(i / (size_t)(w + 1)), c = (int)(i % (size_t)(w + 1)) - 1;
        if (c < 0) png[k] = 0;
        else {
            float t = hi > lo ? (v[(size_t)r * w + c] - lo) / (hi - lo) : 0.5f;
            png[k] = (unsigned char)(dl__nan(t) || t < 0 ? 0 : t > 1 ? 255 : (int)(t * 255 + 0.5f));
        }
        a = (a + png[k]) % 65521, b = (b + a) % 65521, k++;
    }
    dl__be32(png + k, b << 16 | a), k += 4;
    dl__be32(png + k, dl__png_crc(0, idat + 4, (size_t)(png + k - idat - 4))), k += 4;
    dl__be32(png + k, 0), memcpy(png + k + 4, "IEND", 4), dl__be32(png + k + 8, dl__png_crc(0, png + k + 4, 4)), k += 12;
    dl__fprintf(o, "<img width=%d height=%d title=\"%s\" src=\"data:image/png;base64,", w * scale, h * scale, title);
    dl__base64(o, png, k);
    dl__fputs(o, "\">");
    DL_FREE(png);
}

/* images about 84 pixels wide */
static int dl__scale(int w) { return w > 0 && w < 84 ? 84 / w : 1; }

static void dl__minmax(const float *v, size_t n, float *lo, float *hi) {
    size_t i;
    *lo = *hi = n ? v[0] : 0;
    for (i = 1; i < n; i++) { if (v[i] < *lo) *lo = v[i]; if (v[i] > *hi) *hi = v[i]; }
}

static void dl__html_text(dl__fout *o, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') dl__fputs(o, "&lt;");
        else if (*s == '>') dl__fputs(o, "&gt;");
        else if (*s == '&') dl__fputs(o, "&amp;");
        else if (*s == '"') dl__fputs(o, "&quot;");
        else dl__fwrite(o, s, 1);
    }
}
static const char *dl__class_name(const dl_fit_options *o, int c, char *buf) {
    if (o->class_names && o->class_names[c]) return o->class_names[c];
    snprintf(buf, 16, "%d", c);
    return buf;
}

static double dl__ep(const dl_fit_epoch *e, int which) {
    switch (which) {
    case 0: return e->train_loss;
    case 1: return e->val_loss;
    case 2: return e->train_acc;
    case 3: return e->val_acc;
    default: return e->lr;
    }
}

/* A line chart of history fields a (and b, when >= 0) over the epochs. */
static void dl__svg_chart(dl__fout *o, const dl_fit_history *h, const char *title, int a, int b) {
    const int W = 540, H = 220, L = 60, R = 20, T = 30, B = 30;
    const char *colors[2] = { "#1f77b4", "#d62728" }, *names[5] = { "train loss", "validation loss", "train accuracy", "validation accuracy", "learning rate" };
    double lo = 1e300, hi = -1e300;
    int s, i, n = h->n_epochs;
    for (s = 0; s < 2; s++)
        for (i = 0; i < n && (s ? b : a) >= 0; i++) {
            double v = dl__ep(&h->epochs[i], s ? b : a);
            if (dl__finite_d(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
        }
    if (lo > hi) lo = 0, hi = 1;
    if (hi - lo < 1e-12) hi = lo + (lo ? fabs(lo) * 0.1 : 1);
    dl__fprintf(o, "<svg class=chart width=%d height=%d viewBox=\"0 0 %d %d\"><text x=%d y=18 class=t>%s</text>", W, H, W, H, L, title);
    dl__fprintf(o, "<rect x=%d y=%d width=%d height=%d fill=none stroke=#999 />", L, T, W - L - R, H - T - B);
    dl__fprintf(o, "<text x=%d y=%d class=a text-anchor=end>%.4g</text><text x=%d y=%d class=a text-anchor=end>%.4g</text>",
                L - 4, T + 10, hi, L - 4, H - B, lo);
    dl__fprintf(o, "<text x=%d y=%d class=a>epoch 1</text><text x=%d y=%d class=a text-anchor=end>%d</text>", L, H - 10, W - R, H - 10, n);
    for (s = 0; s < 2; s++) {
        int which = s ? b : a;
        if (which < 0) continue;
        dl__fprintf(o, "<text x=%d y=18 fill=\"%s\" class=a>&#9632; %s</text>", L + 150 + 150 * s, colors[s], names[which]);
        dl__fprintf(o, "<polyline fill=none stroke=\"%s\" stroke-width=2 points=\"", colors[s]);
        for (i = 0; i < n; i++) {
            double v = dl__ep(&h->epochs[i], which);
            double x = L + (n > 1 ? (double)i / (n - 1) : 0.5) * (W - L - R), y = H - B - (v - lo) / (hi - lo) * (H - T - B);
            if (dl__finite_d(v)) dl__fprintf(o, "%.1f,%.1f ", x, y);
        }
        dl__fputs(o, "\"/>");
        for (i = 0; i < n; i++) {
            double v = dl__ep(&h->epochs[i], which);
            double x = L + (n > 1 ? (double)i / (n - 1) : 0.5) * (W - L - R), y = H - B - (v - lo) / (hi - lo) * (H - T - B);
            if (dl__finite_d(v)) dl__fprintf(o, "<circle cx=%.1f cy=%.1f r=3 fill=\"%s\"><title>epoch %d: %.5g</title></circle>", x, y, colors[s], i + 1, v);
        }
    }
    dl__fputs(o, "</svg>\n");
}

static void dl__svg_confusion(dl__fout *o, const dl__fit *F) {
    const dl_fit_history *h = F->h;
    int C = h->classes, t, p, cell = C <= 12 ? 36 : 420 / C, L = 110, T = 100;
    char nb[16];
    dl__fprintf(o, "<svg width=%d height=%d>", L + C * cell + 10, T + C * cell + 10);
    for (p = 0; p < C; p++) {
        dl__fprintf(o, "<text class=a transform=\"translate(%d,%d) rotate(-60)\">", L + p * cell + cell / 2, T - 4);
        dl__html_text(o, dl__class_name(F->o, p, nb));
        dl__fputs(o, "</text>");
    }
    for (t = 0; t < C; t++) {
        long row = 0;
        for (p = 0; p < C; p++) row += h->confusion[t * C + p];
        dl__fprintf(o, "<text class=a x=%d y=%d text-anchor=end>", L - 4, T + t * cell + cell / 2 + 4);
        dl__html_text(o, dl__class_name(F->o, t, nb));
        dl__fputs(o, "</text>");
        for (p = 0; p < C; p++) {
            int n = h->confusion[t * C + p];
            double f = row ? (double)n / row : 0;
            int shade = (int)(255 - 200 * f);
            dl__fprintf(o, "<rect x=%d y=%d width=%d height=%d fill=\"rgb(%d,%d,255)\" stroke=#fff><title>true %d, predicted %d: %d</title></rect>",
                        L + p * cell, T + t * cell, cell, cell, shade, shade, t, p, n);
            if (cell >= 24) dl__fprintf(o, "<text class=a x=%d y=%d text-anchor=middle fill=\"%s\">%d</text>", L + p * cell + cell / 2,
                                        T + t * cell + cell / 2 + 4, f > 0.5 ? "#fff" : "#000", n);
        }
    }
    dl__fputs(o, "</svg>\n");
}

static dl_layer *dl__first_conv(dl_net *net) {
    int i;
    for (i = 0; i < dl_net_layer_count(net); i++)
        if (dl_layer_op(dl_net_layer(net, i)) == DL_OP_CONV2D) return dl_net_layer(net, i);
    return NULL;
}

/* The first convolution's filters (first input channel), and its outputs for
   the first validation samples. */
static void dl__report_conv(dl__fout *o, dl__fit *F) {
    dl_layer *conv = dl__first_conv(F->net);
    dl_param *w = NULL;
    int i, j, n, M, C, H, W;
    float lo, hi;
    const float *z;
    if (!conv) return;
    for (i = 0; i < dl_net_param_count(F->net) && !w; i++)
        if (dl_net_param(F->net, i)->layer == conv && dl_net_param(F->net, i)->ndim == 4) w = dl_net_param(F->net, i);
    if (w && !dl_net_sync(F->net)) {
        size_t per = (size_t)w->shape[1] * w->shape[2] * w->shape[3];
        dl__fprintf(o, "<h2>First layer's filters</h2><p>%s: %d filters, input channel 0; gray is 0</p><div class=grid>", dl_layer_name(conv), w->shape[0]);
        for (i = 0; i < w->shape[0]; i++) {
            dl__minmax(w->data + per * i, (size_t)w->shape[2] * w->shape[3], &lo, &hi);
            hi = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
            dl__png_img(o, w->data + per * i, w->shape[3], w->shape[2], -hi, hi, 48 / (w->shape[3] > 0 ? w->shape[3] : 1), "filter");
        }
        dl__fputs(o, "</div>\n");
    }
    n = F->val.count < 3 ? F->val.count : 3;
    if (n > F->b.cap) n = F->b.cap;
    for (i = 0; i < n; i++) F->b.idx[i] = i;
    if (!n || dl_dataset_batch(&F->val, F->b.idx, n, NULL, NULL, F->b.x, NULL, NULL) ||
        !(z = dl_predict(F->net, conv, F->b.x, n)) || !dl_layer_out_hw(conv, &C, &H, &W))
        return;
    M = C < 8 ? C : 8;
    dl__fprintf(o, "<h2>Activation maps</h2><p>%s's first %d channels for the first %d validation samples</p>", dl_layer_name(conv), M, n);
    for (i = 0; i < n; i++) {
        const float *img = F->b.x + dl__sample_floats(&F->val) * i;
        size_t in_plane = (size_t)(F->val.h > 0 ? F->val.h : 1) * (F->val.w > 0 ? F->val.w : 1);
        dl__fputs(o, "<div class=grid>");
        dl__minmax(img, in_plane, &lo, &hi);
        dl__png_img(o, img, F->val.w > 0 ? F->val.w : 1, F->val.h > 0 ? F->val.h : 1, lo, hi, dl__scale(F->val.w), "input");
        for (j = 0; j < M; j++) {
            const float *map = z + (size_t)C * H * W * i + (size_t)H * W * j;
            dl__minmax(map, (size_t)H * W, &lo, &hi);
            dl__png_img(o, map, W, H, lo, hi, dl__scale(W), "channel");
        }
        dl__fputs(o, "</div>\n");
    }
}

static void dl__report_mistakes(dl__fout *o, dl__fit *F) {
    int i, k, n = 0;
    char nb[16];
    size_t plane = (size_t)(F->val.h > 0 ? F->val.h : 1) * (F->val.w > 0 ? F->val.w : 1);
    float lo, hi;
    dl__fputs(o, "<h2>Most confident mistakes</h2><div class=grid>");
    for (i = 0; i < DL__MISTAKES; i++) {
        const dl__mistake *m = &F->p->mist[i];
        if (m->index < 0 || dl_dataset_batch(&F->val, &m->index, 1, NULL, NULL, F->b.x, NULL, NULL)) continue;
        dl__minmax(F->b.x, plane, &lo, &hi);
        dl__fputs(o, "<figure>");
        dl__png_img(o, F->b.x, F->val.w > 0 ? F->val.w : 1, F->val.h > 0 ? F->val.h : 1, lo, hi, dl__scale(F->val.w), "sample");
        dl__fprintf(o, "<figcaption>#%d, true <b>", m->index);
        dl__html_text(o, dl__class_name(F->o, m->label, nb));
        dl__fputs(o, "</b>");
        for (k = 0; k < 3 && m->top[k] >= 0; k++) {
            dl__fputs(o, "<br>");
            dl__html_text(o, dl__class_name(F->o, m->top[k], nb));
            dl__fprintf(o, " %.3f", m->p[k]);
        }
        dl__fputs(o, "</figcaption></figure>");
        n++;
    }
    dl__fprintf(o, "</div>%s\n", n ? "" : "<p>none</p>");
}

static void dl__report_settings(dl__fout *o, dl__fit *F) {
    static const char *kinds[] = { "constant", "step", "multistep", "exponential", "cosine", "one-cycle", "plateau" };
    const dl_fit_options *x = F->o;
    const dl_schedule *s = &F->p->sched;
    dl__fprintf(o, "<h2>Settings</h2><table><tr><td>epochs<td>%d<tr><td>batch<td>%d<tr><td>seed<td>%llu", F->epochs, F->batch,
                (unsigned long long)x->seed);
    dl__fprintf(o, "<tr><td>training samples<td>%d<tr><td>validation samples<td>%d<tr><td>loss<td>%s", F->train.count,
                F->val.count, F->mse ? "mean squared error" : "softmax cross-entropy");
    dl__fprintf(o, "<tr><td>schedule<td>%s from %g%s, per %s%s", s->kind >= 0 && s->kind <= 6 ? kinds[s->kind] : "?",
                (double)s->lr, s->warmup ? " after a linear warm-up" : "", s->per_epoch ? "epoch" : "step",
                s->restart_mult ? " (restarts)" : "");
    dl__fprintf(o, "<tr><td>augmentation<td>shift %d, flip %d, cutout %d, brightness %g, contrast %g", x->augment.shift,
                x->augment.flip, x->augment.cutout, (double)x->augment.brightness, (double)x->augment.contrast);
    dl__fprintf(o, "<tr><td>early stopping<td>%s patience %d<tr><td>optimizer steps<td>%ld<tr><td>threads<td>%d</table>\n",
                x->monitor_acc ? "validation accuracy," : "validation loss,", x->patience, F->h->step, dl_net_threads(F->net));
}

static void dl__report(dl__fout *o, dl__fit *F) {
    const dl_fit_history *h = F->h;
    const dl_fit_epoch *e = h->n_epochs ? &h->epochs[h->n_epochs - 1] : NULL;
    int len = dl_net_summary_str(F->net, NULL, 0);
    char *sum = len >= 0 ? (char *)DL_MALLOC((size_t)len + 1) : NULL;
    dl__fputs(o, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n"
                  "<title>dl.h training report</title><style>body{font:14px sans-serif;margin:20px;max-width:1150px}"
                  "img{image-rendering:pixelated;border:1px solid #ccc;margin:2px}.grid{display:flex;flex-wrap:wrap;align-items:flex-start}"
                  "figure{margin:4px;font-size:12px}.t{font-size:14px;font-weight:bold}.a{font-size:11px}"
                  "td{padding:2px 10px}pre{font-size:11px;background:#f6f6f6;padding:8px}</style></head><body>\n");
    dl__fprintf(o, "<h1>Training report</h1><p>epoch %d of %d, %ld steps", h->n_epochs, F->epochs, h->step);
    if (e) dl__fprintf(o, "; last epoch: train loss %.4f, validation loss %.4f, accuracy %.4f, top-%d %.4f; best epoch %d%s",
                       e->train_loss, e->val_loss, e->val_acc, F->o->topk > 0 ? F->o->topk : 5, e->val_topk, h->best_epoch,
                       h->stopped_early == 1 ? " (stopped early, best weights restored)" : "");
    dl__fputs(o, "</p>\n<div class=grid>");
    dl__svg_chart(o, h, "Loss", 0, 1);
    dl__svg_chart(o, h, "Accuracy", 2, 3);
    dl__svg_chart(o, h, "Learning rate", 4, -1);
    dl__fputs(o, "</div>\n");
    if (h->confusion && F->val.count) {
        dl__fputs(o, "<h2>Confusion matrix</h2><p>rows: true class, columns: predicted; shade: share of the row</p>");
        dl__svg_confusion(o, F);
    }
    if (F->val.count) dl__report_conv(o, F);
    if (F->val.count && !F->mse) dl__report_mistakes(o, F);
    if (sum) {
        dl_net_summary_str(F->net, sum, (size_t)len + 1);
        dl__fputs(o, "<h2>Model</h2><pre>");
        dl__html_text(o, sum);
        dl__fputs(o, "</pre>\n");
        DL_FREE(sum);
    }
    dl__report_settings(o, F);
    dl__fputs(o, "</body></html>\n");
}

/* Written to path.tmp, then renamed over path: a reader sees a whole page. */
static int dl__fit_report(dl__fit *F) {
    char tmp[1100];
    dl__fout o;
    const char *path = F->o->report;
    if (strlen(path) > 1000) return DL_ERR_ARG;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    memset(&o, 0, sizeof o);
    if (!(o.f = fopen(tmp, "wb"))) return DL_ERR_IO;
    dl__report(&o, F);
    if (fclose(o.f) || o.err || rename(tmp, path)) { remove(tmp); return DL_ERR_IO; }
    return DL_OK;
}
#endif /* DL_NO_FIT */
DL__COLD_END
/* ======================================================================== */
/*  >>emit: frozen nets, exact memory, C source. Off with DL_NO_EMIT.       */
/*  It reuses the executor's fusion decisions (dl__fuse_chain) and the CPU  */
/*  kernels (dl__ops) on single-threaded, caller-owned memory.              */
/* ======================================================================== */
#ifndef DL_NO_EMIT
/* The step table, int32 throughout (floats as their bits):
     head: magic, version, steps, values, in_size, out_size, arena floats
           per sample; then per value its offset in floats per sample
           (DL__FZ_X: the caller's input, DL__FZ_Y: the caller's output)
     step: the fields DL__R_*, then n_w weights as (offset into w, floats),
           then per input its value and the shape it is read with (ndim, 3
           dims). Q >= 0 makes a conv or dense step int8 (>>emit's int8 part). */
#define DL__FZ_MAGIC 0x5A464C44
#define DL__FZ_VERSION 3        /* 2: the whole dl_attrs per step, and the epilogue's beta; 3: int8 convolution weights tap-major */
typedef char dl__attrs_are_words[sizeof(dl_attrs) % sizeof(int32_t) == 0 ? 1 : -1];   /* only ints and floats */
#define DL__FZ_MAX_IN 16
enum { DL__FZ_X = -1, DL__FZ_Y = -2, DL__FZ_HEAD = 7 };
enum { DL__R_LEN, DL__R_OP, DL__R_OUT, DL__R_NDIM, DL__R_SHAPE, DL__R_NIN = DL__R_SHAPE + 3,
       DL__R_ATTR, DL__R_ACT = DL__R_ATTR + (int)(sizeof(dl_attrs) / sizeof(int32_t)), DL__R_ALPHA, DL__R_BETA, DL__R_SCALE, DL__R_SHIFT, DL__R_SLOPE, DL__R_Q, DL__R_NW, DL__R_W };
typedef char dl__krow_fits_4_floats[sizeof(dl__krow) <= 4 * sizeof(float) ? 1 : -1];

static int32_t dl__f2i(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
static float dl__i2f(int32_t i) { float f; memcpy(&f, &i, 4); return f; }

/* A step as the kernels see it: a layer whose inputs are shapes only. */
typedef struct dl__fz_layer { dl_layer l, in[DL__FZ_MAX_IN]; dl_layer *inp[DL__FZ_MAX_IN]; } dl__fz_layer;
static void dl__fz_shape(dl_layer *l, const int32_t *dims) {   /* ndim, 3 dims */
    int i;
    l->ndim = dims[0];
    l->size = 1;
    for (i = 0; i < 3; i++) { l->shape[i] = i < l->ndim ? dims[1 + i] : 0; if (i < l->ndim) l->size *= l->shape[i]; }
}
static const int32_t *dl__fz_inputs(const int32_t *r) { return r + DL__R_W + 2 * r[DL__R_NW]; }
static void dl__fz_decode(const int32_t *r, dl__fz_layer *z) {
    const int32_t *a = r + DL__R_ATTR, *in = dl__fz_inputs(r);
    int i;
    memset(&z->l, 0, sizeof z->l);
    z->l.op = r[DL__R_OP];
    dl__fz_shape(&z->l, r + DL__R_NDIM);
    memcpy(&z->l.a, a, sizeof z->l.a);      /* every attribute, as the op table's kernels read them */
    z->l.n_in = r[DL__R_NIN];
    z->l.in = z->inp;
    for (i = 0; i < z->l.n_in; i++) {
        memset(&z->in[i], 0, sizeof z->in[i]);
        dl__fz_shape(&z->in[i], in + 5 * i + 1);
        z->inp[i] = &z->in[i];
    }
}
static void dl__fz_encode_attrs(int32_t *a, const dl_attrs *x) { memcpy(a, x, sizeof *x); }

/* ---- int8 steps (made by dl_quantize) ----
   The input is quantized per tensor to u8 with a zero point z,
     u = clamp(floor(x / s + (z + 1/2)), 0, 255)   (x times the stored 1/s);
   the weights, batchnorm folded in, per output channel to int8 in
   [-127, 127]; the sums are exact in int32, acc[c] = sum_k q[c,k] u[k], so
   every kernel (dl__q8k in >>compute) and any split of the work give the
   same bits; the output is float:
     y = act((acc[c] - z wsum[c]) * scale[c] + bias[c]),  wsum[c] = sum_k q[c,k],
   scale[c] = s s_w[c] (dl__q8_row_out).
   Weights of the step: scale[M], bias[M], wsum[M], then (1/s, z).
   A weight row is K4 words of 4 bytes (zeros fill the last): a dense
   layer's in the input's order; a convolution's tap by tap (ky, kx), each
   tap the group's channels in words of 4. The convolution's input is
   packed the same way: per sample, words of 4 channels, with the padding
   in place as z (which is x = 0). A stride-1 convolution then reads that
   as its B matrix as it is, with one offset per (tap, channel word): B's
   columns run over the padded width, and those past the output's width
   are dropped. A strided one first gathers its words into B. */
typedef struct dl__q8_geom {
    int C4, Hp, Wp, K4, implicit;   /* channel words per group, padded size, words per weight row, read in place */
    size_t plane, ldb;              /* bytes of one padded channel-word plane; of a gathered B row */
    size_t u_bytes, b_bytes;        /* the packed input (with the slack the last tile reads), the gathered B */
} dl__q8_geom;
static dl__q8_geom dl__q8_conv_geom(const dl__conv *g) {
    dl__q8_geom q;
    q.C4 = (g->Cg + 3) / 4;
    q.Hp = (g->OH - 1) * g->sh + g->dh * (g->KH - 1) + 1;
    q.Wp = (g->OW - 1) * g->sw + g->dw * (g->KW - 1) + 1;
    q.K4 = g->KH * g->KW * q.C4;
    q.implicit = g->sh == 1 && g->sw == 1;
    q.plane = 4 * (size_t)q.Hp * (size_t)q.Wp;
    q.ldb = 4 * (size_t)dl__round_up(g->P, DL__Q8_NB);
    q.u_bytes = (size_t)g->G * (size_t)q.C4 * q.plane + 4 * DL__Q8_NB;
    q.b_bytes = q.implicit ? 0 : (size_t)q.K4 * q.ldb;
    return q;
}
/* Bytes of one weight row. */
static size_t dl__q8_row_bytes(const dl_layer *l) {
    if (l->op == DL_OP_DENSE) return 4 * (((size_t)l->in[0]->size + 3) / 4);
    { dl__conv g = dl_layer_conv_geom(l); return 4 * (size_t)dl__q8_conv_geom(&g).K4; }
}
static size_t dl__q8_al(size_t bytes) { return (bytes + 63) & ~(size_t)63; }
/* Scratch bytes at batch n. Dense: the quantized rows of a block of up to
   64 samples, and (16 samples or more, else dot products) B and its
   offsets. Convolution: one sample packed, B when gathered, the offsets,
   one plane of words (dl__q8_pack). */
static size_t dl__q8_scratch(const dl_layer *l, int n) {
    if (l->op == DL_OP_DENSE) {
        size_t cols = (size_t)(n < DL__Q8_NB ? n : DL__Q8_NB), k4 = dl__q8_row_bytes(l) / 4;
        return dl__q8_al(cols * 4 * k4) + (cols >= 16 ? k4 * 4 * DL__Q8_NB + k4 * sizeof(size_t) : 0);
    }
    {
        dl__conv g = dl_layer_conv_geom(l);
        dl__q8_geom q = dl__q8_conv_geom(&g);
        return dl__q8_al(q.u_bytes) + dl__q8_al(q.b_bytes) + dl__q8_al((size_t)q.K4 * sizeof(size_t)) + 4 * (size_t)g.H * (size_t)g.W;
    }
}
/* One sample's input x (C x H x W floats) packed: U[G][C4][Hp][Wp] words.
   Four channels' planes are quantized into words in one call (tmp, H W
   words: long vectors, one tail), then copied row by row into place. */
static void dl__q8_pack(const dl__q8k *k, const dl__conv *g, const dl__q8_geom *q, const float *x, uint8_t *U, float inv,
                        float z, uint8_t *tmp) {
    int grp, c4, r, t, xn = g->W < q->Wp - g->pw ? g->W : q->Wp - g->pw;
    size_t row = 4 * (size_t)q->Wp, lpad = 4 * (size_t)g->pw, HW = (size_t)g->H * (size_t)g->W;
    for (grp = 0; grp < g->G; grp++)
        for (c4 = 0; c4 < q->C4; c4++) {
            uint8_t *d = U + ((size_t)grp * q->C4 + (size_t)c4) * q->plane;
            const float *src[4];
            for (t = 0; t < 4; t++) src[t] = 4 * c4 + t < g->Cg ? x + (size_t)(grp * g->Cg + 4 * c4 + t) * HW : NULL;
            k->words(tmp, src, (int)HW, inv, z);
            for (r = 0; r < q->Hp; r++, d += row) {
                int y = r - g->ph;
                if (y < 0 || y >= g->H || xn <= 0) { memset(d, (int)z, row); continue; }   /* z in all 4 bytes */
                memset(d, (int)z, lpad);
                memcpy(d + lpad, tmp + 4 * (size_t)y * (size_t)g->W, 4 * (size_t)xn);
                memset(d + lpad + 4 * (size_t)xn, (int)z, row - lpad - 4 * (size_t)xn);
            }
        }
}
/* B of a strided convolution from one group's packed input: row (tap, c4)
   holds the word each output pixel reads; columns past P are zeros. */
static void dl__q8_gather(const dl__conv *g, const dl__q8_geom *q, const uint8_t *U, uint8_t *B) {
    int tap, c4, oy, ox;
    for (tap = 0; tap < g->KH * g->KW; tap++)
        for (c4 = 0; c4 < q->C4; c4++) {
            uint8_t *d = B + (size_t)(tap * q->C4 + c4) * q->ldb;
            const uint8_t *s = U + (size_t)c4 * q->plane + 4 * ((size_t)(tap / g->KW * g->dh) * q->Wp + (size_t)(tap % g->KW * g->dw));
            for (oy = 0; oy < g->OH; oy++)
                for (ox = 0; ox < g->OW; ox++)
                    memcpy(d + 4 * ((size_t)oy * g->OW + ox), s + 4 * ((size_t)oy * g->sh * q->Wp + (size_t)ox * g->sw), 4);
            memset(d + 4 * (size_t)g->P, 0, q->ldb - 4 * (size_t)g->P);
        }
}
/* Where the sums go: row i (channel c0 + i) at y + i rs; B's column j is
   output pixel (j / wrow) ow + j % wrow, at cs apart, and is dropped where
   j % wrow >= ow (the padded width of a stride-1 convolution). */
typedef struct dl__q8_out {
    dl__q8_epi e;
    const dl__q8k *k;
    float *y;
    size_t rs, cs;
    int wrow, ow;
} dl__q8_out;
/* m rows (channels ch.., output rows i..) of sums for columns j0 .. j0 + n - 1, as apart */
static void dl__q8_put(const dl__q8_out *o, int ch, int i, int m, const int32_t *acc, size_t as, int j0, int n) {
    int j = j0, end = j0 + n;
    while (j < end) {
        int oy = j / o->wrow, ox = j % o->wrow, len = o->ow - ox;
        if (len <= 0) { j = (oy + 1) * o->wrow; continue; }
        if (len > end - j) len = end - j;
        o->k->rows_out(o->y + (size_t)i * o->rs + ((size_t)oy * (size_t)o->ow + (size_t)ox) * o->cs, o->rs, o->cs, acc + (j - j0),
                       as, m, len, &o->e, ch);
        j += len;
    }
}
/* M rows of A (rowb bytes each; channels c0..) times B's N columns. */
static void dl__q8_gemm(const dl__q8_out *o, const int8_t *A, size_t rowb, int M, const uint8_t *B, const size_t *koff, int N,
                        int c0) {
    int32_t c[4 * DL__Q8_NB + DL__Q8_SLACK];
    int i0, j0, i, K4 = (int)(rowb / 4);
    for (i0 = 0; i0 < M; i0 += 4) {
        const int8_t *rows[4];
        int m = M - i0 < 4 ? M - i0 : 4;
        for (i = 0; i < 4; i++) rows[i] = A + (size_t)(i0 + (i < m ? i : 0)) * rowb;   /* past M: row i0 again, unused */
        for (j0 = 0; j0 < N; j0 += DL__Q8_NB) {
            o->k->tile(K4, rows, B + 4 * (size_t)j0, koff, c);
            dl__q8_put(o, c0 + i0, i0, m, c, DL__Q8_NB, j0, N - j0 < DL__Q8_NB ? N - j0 : DL__Q8_NB);
        }
    }
}
/* Dense, blocks of up to 64 samples: a tile over B (sample j's word k4 in
   column j of row k4), or, under 16 samples, dot products on the rows. */
static void dl__q8_dense(const dl_layer *l, const dl_exec *e, const int8_t *q, dl__q8_out *o, uint8_t *u, float inv, float z) {
    int M = l->a.units, K = l->in[0]->size, j0, j, i0, i, k4, nb = e->n < DL__Q8_NB ? e->n : DL__Q8_NB;
    size_t rowb = dl__q8_row_bytes(l), K4 = rowb / 4, ldb = 4 * DL__Q8_NB;
    uint8_t *B = u + dl__q8_al((size_t)nb * rowb);
    size_t *koff = (size_t *)(void *)(B + K4 * ldb);
    int32_t c[4 + DL__Q8_SLACK];
    o->rs = 1; o->cs = (size_t)M; o->wrow = o->ow = INT_MAX;
    if (nb >= 16) for (k4 = 0; k4 < (int)K4; k4++) koff[k4] = (size_t)k4 * ldb;
    for (j0 = 0; j0 < e->n; j0 += DL__Q8_NB) {
        int N = e->n - j0 < DL__Q8_NB ? e->n - j0 : DL__Q8_NB;
        o->y = e->out + (size_t)j0 * M;
        for (j = 0; j < N; j++) {
            o->k->quantize(u + j * rowb, e->in[0] + (size_t)(j0 + j) * K, (size_t)K, inv, z);
            memset(u + j * rowb + K, 0, rowb - (size_t)K);
        }
        if (N >= 16) {
            for (k4 = 0; k4 < (int)K4; k4++) {
                uint8_t *d = B + (size_t)k4 * ldb;
                for (j = 0; j < N; j++) memcpy(d + 4 * (size_t)j, u + j * rowb + 4 * (size_t)k4, 4);
                memset(d + 4 * (size_t)N, 0, ldb - 4 * (size_t)N);
            }
            dl__q8_gemm(o, q, rowb, M, B, koff, N, 0);
            continue;
        }
        for (i0 = 0; i0 < M; i0 += 4) {
            const int8_t *rows[4];
            int m = M - i0 < 4 ? M - i0 : 4;
            for (i = 0; i < 4; i++) rows[i] = q + (size_t)(i0 + (i < m ? i : 0)) * rowb;
            for (j = 0; j < N; j++) {
                o->k->dot((int)K4, rows, u + j * rowb, c);
                dl__q8_put(o, i0, i0, m, c, 1, j, 1);
            }
        }
    }
}
static int dl__q8_forward(const dl_layer *l, const dl_exec *e, const int8_t *q, const dl__epilogue *epi, void *scratch) {
    dl__q8_out o;
    uint8_t *u = (uint8_t *)scratch;
    float inv = e->w[3][0], z = e->w[3][1];
    o.k = dl__q8k_detect();
    o.e.scale = e->w[0]; o.e.bias = e->w[1]; o.e.wsum = e->w[2]; o.e.slope = epi->slope; o.e.z = (int32_t)z;
    o.e.act = epi->act; o.e.alpha = epi->alpha;
    if (l->op == DL_OP_DENSE) dl__q8_dense(l, e, q, &o, u, inv, z);
    else {
        dl__conv g = dl_layer_conv_geom(l);
        dl__q8_geom qg = dl__q8_conv_geom(&g);
        uint8_t *B = u + dl__q8_al(qg.u_bytes);
        size_t *koff = (size_t *)(void *)(B + dl__q8_al(qg.b_bytes)), rowb = 4 * (size_t)qg.K4;
        int i, grp, tap, c4, N = qg.implicit ? (g.OH - 1) * qg.Wp + g.OW : g.P;
        for (tap = 0; tap < g.KH * g.KW; tap++)
            for (c4 = 0; c4 < qg.C4; c4++)
                koff[tap * qg.C4 + c4] = qg.implicit ? (size_t)c4 * qg.plane + 4 * ((size_t)(tap / g.KW * g.dh) * qg.Wp + (size_t)(tap % g.KW * g.dw))
                                                     : (size_t)(tap * qg.C4 + c4) * qg.ldb;
        o.rs = (size_t)g.P; o.cs = 1; o.wrow = qg.implicit ? qg.Wp : g.OW; o.ow = g.OW;
        for (i = 0; i < e->n; i++) {
            dl__q8_pack(o.k, &g, &qg, e->in[0] + (size_t)i * g.C * g.H * g.W, u, inv, z,
                        (uint8_t *)koff + dl__q8_al((size_t)qg.K4 * sizeof(size_t)));
            for (grp = 0; grp < g.G; grp++) {
                const uint8_t *Ug = u + (size_t)grp * qg.C4 * qg.plane;
                if (!qg.implicit) dl__q8_gather(&g, &qg, Ug, B);
                o.y = e->out + ((size_t)i * g.M + (size_t)grp * g.Mg) * g.P;
                dl__q8_gemm(&o, q + (size_t)grp * g.Mg * rowb, rowb, g.Mg, qg.implicit ? Ug : B, koff, N, grp * g.Mg);
            }
        }
    }
    return DL_OK;
}

/* ---- memory: one arena, activations then the scratch of the largest step ---- */
/* The scratch bounds hold for every micro-kernel dl.h has (tiles 4, 6 or 8
   rows by 8 to 32 columns), so one number fits the x86 and the ARM build;
   a new micro-kernel must fit them too (dl__fz_run refuses one that does not). */
static size_t dl__fz_apack(int M, int K) {
    int r4 = dl__round_up(M, 4), r6 = dl__round_up(M, 6), r8 = dl__round_up(M, 8);
    int r = r4 > r6 ? r4 : r6;
    return (size_t)(r > r8 ? r : r8) * (size_t)K;
}
static size_t dl__fz_bpack(int K, long long N) {        /* one packed B panel (dl__gemm_block) */
    long long nc = ((N + 7) / 8 + 31) / 32 * 32;
    return (size_t)(K < DL__KC ? K : DL__KC) * (size_t)(nc < DL__NC ? nc : DL__NC);
}
/* A step's forward scratch at batch n: shared (packed A, convolution row
   table) and the one thread's (packed B). Mirrors the kernels' use. */
static void dl__fz_scratch(const int32_t *r, const dl_layer *l, int n, size_t *shared, size_t *thread) {
    *shared = *thread = 0;
    if (r[DL__R_Q] >= 0) *shared = (dl__q8_scratch(l, n) + sizeof(float) - 1) / sizeof(float);
    else if (l->op == DL_OP_DENSE && n >= 4) {       /* below 4 samples: dot products, no scratch */
        *shared = dl__align(dl__fz_apack(l->a.units, l->in[0]->size)) + (size_t)l->a.units * n;   /* + y transposed */
        *thread = dl__fz_bpack(l->in[0]->size, n);
    } else if (l->op == DL_OP_CONV2D) {
        dl__conv g = dl_layer_conv_geom(l);
        *shared = dl__align(dl__fz_apack(g.Mg, g.K)) + 4 * (size_t)g.K;
        dl__direct d;
        *thread = dl__conv_is_depthwise(&g) ? dl__depthwise_floats(&g) : dl__fz_bpack(g.K, (long long)n * g.P);
        if (!dl__conv_is_depthwise(&g) && dl__conv_direct(&g, n, 0, &d) && dl__direct_floats(&g, &d) > *thread)
            *thread = dl__direct_floats(&g, &d);
    } else if (l->op == DL_OP_MATMUL) {
        int batch, M, K, P;
        dl__matmul_dims(l, &batch, &M, &K, &P);
        *thread = DL__BPACK + dl__fz_apack(M, K);
    } else if (l->op == DL_OP_CONV2D_TRANSPOSE) {   /* conv2d's input gradient: W^T packed per group; B panel and dcol */
        dl__conv g = dl_layer_conv_geom(l);
        *shared = (size_t)g.G * dl__fz_apack(g.K, g.Mg);
        *thread = DL__BPACK + (size_t)g.K * g.P;
    }
}

/* An int8 step's weights are where and as large as its shape says. */
static int dl__q8_step_ok(const dl_frozen *f, const int32_t *r) {
    dl__fz_layer z;
    size_t M, k;
    if (r[DL__R_OP] != DL_OP_CONV2D && r[DL__R_OP] != DL_OP_DENSE) return 0;
    if (r[DL__R_NW] != 4 || r[DL__R_SCALE] >= 0 || r[DL__R_SHIFT] >= 0 || r[DL__R_NIN] != 1) return 0;
    dl__fz_decode(r, &z);
    if (z.l.op == DL_OP_DENSE) M = (size_t)z.l.a.units;
    else { dl__conv g = dl_layer_conv_geom(&z.l); M = (size_t)g.M; if (g.G < 1) return 0; }
    for (k = 0; k < 3; k++) if ((size_t)r[DL__R_W + 2 * k + 1] != M) return 0;
    return r[DL__R_W + 7] == 2 && (size_t)r[DL__R_Q] + M * dl__q8_row_bytes(&z.l) <= f->q_len;
}

/* Checks the table's framing; *steps points at the first step. */
static int dl__fz_check(const dl_frozen *f, const int32_t **steps) {
    const int32_t *c = f->code, *r;
    size_t at, len = f->code_len;
    int i, k, vals;
    if (len < DL__FZ_HEAD || c[0] != DL__FZ_MAGIC || c[1] != DL__FZ_VERSION) return DL_ERR_FORMAT;
    vals = c[3];
    if (vals < 1 || (size_t)vals > len - DL__FZ_HEAD || c[2] < 0) return DL_ERR_FORMAT;
    *steps = c + DL__FZ_HEAD + vals;
    for (i = 0, at = DL__FZ_HEAD + (size_t)vals; i < c[2]; i++) {
        if (at + DL__R_W > len) return DL_ERR_FORMAT;
        r = c + at;
        if (r[DL__R_LEN] < DL__R_W || at + (size_t)r[DL__R_LEN] > len || r[DL__R_OP] <= 0 || r[DL__R_OP] >= DL_OP_COUNT ||
            r[DL__R_NIN] < dl__op(r[DL__R_OP])->min_in || r[DL__R_NIN] > DL__FZ_MAX_IN || (dl__op(r[DL__R_OP])->flags & DL__F_SOURCE) || r[DL__R_NW] < 0 || r[DL__R_NW] > 8 ||
            r[DL__R_LEN] != DL__R_W + 2 * r[DL__R_NW] + 5 * r[DL__R_NIN] || r[DL__R_OUT] < 0 || r[DL__R_OUT] >= vals ||
            (dl__op(r[DL__R_OP])->flags & DL__F_USER) || (r[DL__R_Q] >= 0 && !dl__q8_step_ok(f, r)))
            return DL_ERR_FORMAT;
        for (k = 0; k < r[DL__R_NW]; k++)
            if (r[DL__R_W + 2 * k] < 0 || r[DL__R_W + 2 * k + 1] < 0 || (size_t)r[DL__R_W + 2 * k] + (size_t)r[DL__R_W + 2 * k + 1] > f->w_len)
                return DL_ERR_FORMAT;
        for (k = 0; k < r[DL__R_NIN]; k++) if (dl__fz_inputs(r)[5 * k] < 0 || dl__fz_inputs(r)[5 * k] >= vals) return DL_ERR_FORMAT;
        at += (size_t)r[DL__R_LEN];
    }
    return at == len ? DL_OK : DL_ERR_FORMAT;
}

/* An int8 net runs a chunk of samples at a time through all its steps:
   as many as keep the activations between steps within about 1 MB (the
   cache), from 1 to 64 (a dense layer's tile is 64 samples wide); its
   sums do not depend on the batch. A float net runs the whole batch per
   step, as dl_predict does, whose bits it must give. */
#define DL__FZ_CACHE ((size_t)1 << 20)
static int dl__fz_chunk(const dl_frozen *f, int n) {
    size_t per = (size_t)f->code[6] * sizeof(float), c = per ? DL__FZ_CACHE / per : DL__Q8_NB;
    c = c < 1 ? 1 : c > DL__Q8_NB ? DL__Q8_NB : c;
    return f->q_len && (size_t)n > c ? (int)c : n;
}

int dl_frozen_memory(const dl_frozen *f, int n, dl_memory *m) {
    const int32_t *r;
    dl__fz_layer z;
    size_t sh, th, scratch = 0;
    int i, rc;
    if (!f || !m || n < 1) return DL_ERR_ARG;
    if ((rc = dl__fz_check(f, &r))) return rc;
    memset(m, 0, sizeof *m);
    n = dl__fz_chunk(f, n);
    for (i = 0; i < f->code[2]; i++, r += r[DL__R_LEN]) {
        dl__fz_decode(r, &z);
        dl__fz_scratch(r, &z.l, n, &sh, &th);
        if (dl__align(sh) + th > scratch) scratch = dl__align(sh) + th;
    }
    m->steps = f->code[2];
    m->in_size = f->code[4];
    m->out_size = f->code[5];
    m->act_bytes = (size_t)n * (size_t)f->code[6] * sizeof(float);
    m->scratch_bytes = scratch * sizeof(float);
    m->work_bytes = m->act_bytes + m->scratch_bytes;
    m->weight_bytes = f->w_len * sizeof(float) + f->q_len;
    m->code_bytes = f->code_len * sizeof(int32_t);
    return DL_OK;
}

/* ---- the executor: the steps in order, each one kernel call ---- */
/* hook (calibration) sees each step's first input before the step runs */
typedef void (*dl__fz_hook)(void *user, int step, const float *in, size_t count);
static int dl__fz_steps(const dl_frozen *f, const float *x, float *y, int n, int first, void *work, dl__fz_hook hook, void *user) {
    const int32_t *r, *head;
    float *arena = (float *)work, *scratch;
    dl__cpu cpu;
    dl_memory m;
    int i, k, rc;
    if (!f || !x || !y || n < 1 || (uintptr_t)work % sizeof(float)) return DL_ERR_ARG;
    if ((rc = dl_frozen_memory(f, n, &m))) return rc;
    if (!work && m.work_bytes) return DL_ERR_ARG;
    dl__fz_check(f, &r);
    head = f->code;
    if (head[2] == 0) { memcpy(y, x, (size_t)n * (size_t)head[5] * sizeof(float)); return DL_OK; }
    scratch = arena + (size_t)n * (size_t)head[6];
    memset(&cpu, 0, sizeof cpu);
    cpu.simd = dl__simd_detect();
    cpu.threads = 1;                            /* dl__parallel then runs every task here */
    if (cpu.simd->mr > 8 || 24 % cpu.simd->mr || cpu.simd->nr > 32) return DL_ERR_UNSUPPORTED;   /* beyond dl__fz_apack's bounds */
    for (i = 0; i < head[2]; i++, r += r[DL__R_LEN]) {
        dl__fz_layer z;
        dl_exec e;
        dl__epilogue epi;
        const float *in[DL__FZ_MAX_IN];
        float *w[8];
        size_t sh, th;
        int32_t v;
        dl__fz_decode(r, &z);
        for (k = 0; k < z.l.n_in; k++) {
            v = head[DL__FZ_HEAD + dl__fz_inputs(r)[5 * k]];
            in[k] = v == DL__FZ_X ? x : arena + (size_t)n * (size_t)v;
        }
        /* the kernels take w as writable (training updates batchnorm
           statistics); in eval mode nothing writes through it */
        for (k = 0; k < r[DL__R_NW]; k++) w[k] = (float *)(uintptr_t)(f->w + r[DL__R_W + 2 * k]);
        v = head[DL__FZ_HEAD + r[DL__R_OUT]];
        memset(&e, 0, sizeof e);
        e.n = n;
        e.first = first;
        e.in = in;
        e.out = v == DL__FZ_Y ? y : arena + (size_t)n * (size_t)v;
        e.w = w;
        e.cpu = &cpu;
        memset(&epi, 0, sizeof epi);
        epi.act = r[DL__R_ACT];
        epi.alpha = dl__i2f(r[DL__R_ALPHA]);
        epi.beta = dl__i2f(r[DL__R_BETA]);
        epi.scale = r[DL__R_SCALE] >= 0 ? f->w + r[DL__R_SCALE] : NULL;
        epi.shift = r[DL__R_SHIFT] >= 0 ? f->w + r[DL__R_SHIFT] : NULL;
        epi.slope = r[DL__R_SLOPE] >= 0 ? f->w + r[DL__R_SLOPE] : NULL;
        cpu.epi = epi.scale || epi.act ? &epi : NULL;
        dl__fz_scratch(r, &z.l, n, &sh, &th);
        cpu.shared = scratch;
        cpu.thread_ws = scratch + dl__align(sh);
        cpu.thread_floats = th;
        if (hook && z.l.n_in) hook(user, i, in[0], (size_t)n * (size_t)z.in[0].size);   /* a constant reads nothing */
        rc = r[DL__R_Q] >= 0 ? dl__q8_forward(&z.l, &e, f->q + r[DL__R_Q], &epi, scratch) : dl__op(z.l.op)->forward(&z.l, &e);
        if (rc) return rc;
    }
    return DL_OK;
}

static int dl__fz_run(const dl_frozen *f, const float *x, float *y, int n, void *work, dl__fz_hook hook, void *user) {
    const int32_t *r;
    int i, nb, rc;
    if (!f || !x || !y || n < 1) return DL_ERR_ARG;
    if ((rc = dl__fz_check(f, &r))) return rc;
    nb = dl__fz_chunk(f, n);
    for (i = 0; i < n && !rc; i += nb)
        rc = dl__fz_steps(f, x + (size_t)i * (size_t)f->code[4], y + (size_t)i * (size_t)f->code[5], n - i < nb ? n - i : nb, i, work, hook, user);
    return rc;
}

int dl_frozen_run(const dl_frozen *f, const float *x, float *y, int n, void *work) {
    return dl__fz_run(f, x, y, n, work, NULL, NULL);
}

DL__COLD_BEGIN
/* ---- freezing ---- */
typedef struct dl__fz_build {
    const dl_net *net;
    dl__wbuf code, w;               /* the steps, the weights */
    int *val, n_vals;               /* per layer: its value; values are step outputs (0: the input) */
    int *vsize, *def, *last;        /* per value: floats per sample, defining and last reading step */
    int steps;
    char *err;
} dl__fz_build;

static int32_t dl__fz_put_floats(dl__fz_build *b, const float *p, int count, const char *what, int *bad) {
    int32_t at = (int32_t)(b->w.len / sizeof(float));
    int i;
    for (i = 0; i < count; i++) if (!dl__finite(p[i])) *bad = 1;
    if (*bad) dl__fail(b->err, DL_ERR_NUMERIC, "dl_freeze: %s holds a value that is not finite", what);
    dl__put(&b->w, p, (size_t)count * sizeof(float));
    return at;
}
static void dl__fz_put_i32(dl__wbuf *w, int32_t v) { dl__put(w, &v, sizeof v); }

/* One step: layer l computes value `last`'s output (a fused chain when
   l != last), with the epilogue's scale and shift in fuse. */
static int dl__fz_step(dl__fz_build *b, const dl_layer *l, const dl_layer *last, const dl__epilogue *epi) {
    int32_t rec[DL__R_W + 8];
    int k, v = b->n_vals++, bad = 0, C = l->shape[0];
    memset(rec, 0, sizeof rec);
    if (l->n_in > DL__FZ_MAX_IN)
        return dl__fail(b->err, DL_ERR_UNSUPPORTED, "dl_freeze: %s '%s' reads %d layers; at most %d can be frozen",
                        dl_op_name(l->op), l->name, l->n_in, DL__FZ_MAX_IN);
    rec[DL__R_OP] = l->op;
    rec[DL__R_OUT] = v;
    rec[DL__R_NDIM] = l->ndim;
    for (k = 0; k < 3; k++) rec[DL__R_SHAPE + k] = l->shape[k];
    rec[DL__R_NIN] = l->n_in;
    dl__fz_encode_attrs(rec + DL__R_ATTR, &l->a);
    rec[DL__R_ACT] = epi->act;
    rec[DL__R_ALPHA] = dl__f2i(epi->alpha);
    rec[DL__R_BETA] = dl__f2i(epi->beta);
    rec[DL__R_SCALE] = epi->scale ? dl__fz_put_floats(b, epi->scale, C, "a batchnorm's statistics", &bad) : -1;
    rec[DL__R_SHIFT] = epi->shift ? dl__fz_put_floats(b, epi->shift, C, "a batchnorm's statistics", &bad) : -1;
    rec[DL__R_SLOPE] = epi->slope ? dl__fz_put_floats(b, epi->slope, C, "a prelu's slope", &bad) : -1;
    rec[DL__R_Q] = -1;
    rec[DL__R_NW] = l->n_params;
    for (k = 0; k < l->n_params; k++) {
        const dl_param *p = &b->net->params[l->first_param + k];
        rec[DL__R_W + 2 * k] = dl__fz_put_floats(b, p->data, p->size, p->name, &bad);
        rec[DL__R_W + 2 * k + 1] = p->size;
    }
    rec[DL__R_LEN] = DL__R_W + 2 * l->n_params + 5 * l->n_in;
    if (bad) return DL_ERR_NUMERIC;
    dl__put(&b->code, rec, (size_t)(DL__R_W + 2 * l->n_params) * sizeof(int32_t));
    for (k = 0; k < l->n_in; k++) {
        const dl_layer *x = l->in[k];
        int u = b->val[x->index], d;
        dl__fz_put_i32(&b->code, u);
        dl__fz_put_i32(&b->code, x->ndim);
        for (d = 0; d < 3; d++) dl__fz_put_i32(&b->code, x->shape[d]);
        b->last[u] = b->steps;
    }
    b->vsize[v] = last->size;
    b->def[v] = b->last[v] = b->steps++;
    b->val[last->index] = v;
    return DL_OK;
}

/* First fit: each value at the lowest offset (floats per sample, 64-byte
   aligned) that no value alive at the same time uses. Returns the arena. */
static int32_t dl__fz_layout(const dl__fz_build *b, int32_t *off, int out_val) {
    int32_t arena = 0;
    int v, u, moved;
    for (v = 1; v < b->n_vals; v++) {
        int32_t at = 0, size = (int32_t)dl__align((size_t)b->vsize[v]);
        if (v == out_val) { off[v] = DL__FZ_Y; continue; }
        do {
            moved = 0;
            for (u = 1; u < v; u++)
                if (u != out_val && b->def[u] <= b->last[v] && b->def[v] <= b->last[u] &&
                    at < off[u] + (int32_t)dl__align((size_t)b->vsize[u]) && off[u] < at + size) {
                    at = off[u] + (int32_t)dl__align((size_t)b->vsize[u]);
                    moved = 1;
                }
        } while (moved);
        off[v] = at;
        if (at + size > arena) arena = at + size;
    }
    off[0] = DL__FZ_X;
    return arena;
}

/* The layers the forward pass to out computes (dl__forward's rule), checked. */
static int dl__fz_mark(const dl_net *net, const dl_layer *out, unsigned char *needed, int *cons, char *err) {
    const dl_layer *input = NULL;
    int i, j;
    needed[out->index] = 1;
    for (i = out->index; i >= 0; i--) {
        const dl_layer *l = net->layers[i];
        if (!needed[i]) continue;
        for (j = 0; j < l->n_in; j++) { needed[l->in[j]->index] = 1; cons[l->in[j]->index]++; }
        if (l->op == DL_OP_CUSTOM)
            return dl__fail(err, DL_ERR_UNSUPPORTED, "dl_freeze: custom layer '%s' cannot be frozen: its callbacks are "
                            "code that dl.h cannot copy into a frozen net or C source", l->name);
        if (l->op == DL_OP_INPUT) {
            if (input) return dl__fail(err, DL_ERR_UNSUPPORTED, "dl_freeze: '%s' reads two inputs, '%s' and '%s'",
                                       out->name, l->name, input->name);
            input = l;
        }
    }
    return DL_OK;
}

static int dl__fz_build_steps(dl__fz_build *b, const dl_layer *out, unsigned char *needed, int *cons, float *fuse) {
    const dl_net *net = b->net;
    int i, rc;
    for (i = 0; i <= out->index; i++) {
        dl_layer *l = net->layers[i];
        dl__epilogue epi;
        memset(&epi, 0, sizeof epi);
        if (needed[i] != 1) continue;
        if (l->op == DL_OP_INPUT) b->val[i] = 0;
        else if (l->op == DL_OP_RESHAPE || l->op == DL_OP_DROPOUT) b->val[i] = b->val[l->in[0]->index];  /* eval: identity */
        else if ((rc = dl__fz_step(b, l, DL__HAS(l, DL__F_FUSE_HEAD)
                                   ? dl__fuse_chain(net, needed, cons, l, out, NULL, fuse, &epi) : l, &epi)))
            return rc;
    }
    return DL_OK;
}

dl_frozen *dl_freeze(const dl_net *net, dl_layer *out, dl_status *st) {
    dl__fz_build b;
    dl_status local;
    dl_frozen *f = NULL;
    unsigned char *needed = NULL;
    int *cons = NULL, rc = DL_OK, i, L, C = 1;
    float *fuse = NULL;
    char *err = st ? st->msg : local.msg;
    memset(&b, 0, sizeof b);
    if (st) { st->code = DL_OK; st->msg[0] = 0; }
    if (!net) { rc = dl__fail(err, DL_ERR_ARG, "dl_freeze: net is NULL"); goto done; }
    if (!out || out->net != net) {
        rc = dl__fail(err, DL_ERR_ARG, "dl_freeze: the output layer is %s", out ? "of another net" : "NULL (dl_net_output(net) is the last layer)");
        goto done;
    }
    if (net->b != &net->cpu) {
        rc = dl__fail(err, DL_ERR_UNSUPPORTED, "dl_freeze: the net is on %s; move it to the CPU first (dl_net_to_backend(net, NULL))", net->b->name);
        goto done;
    }
    L = net->n_layers;
    for (i = 0; i < L; i++) if (net->layers[i]->shape[0] > C) C = net->layers[i]->shape[0];
    needed = (unsigned char *)dl__calloc((size_t)L, 1);
    cons = (int *)dl__calloc((size_t)L * 5 + 1, sizeof(int));       /* cons, val, vsize, def, last */
    fuse = (float *)dl__calloc(2 * (size_t)C, sizeof(float));
    if (!needed || !cons || !fuse) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_freeze: out of memory"); goto done; }
    b.net = net; b.err = err;
    b.val = cons + L; b.vsize = b.val + L; b.def = b.vsize + L; b.last = b.def + L;
    b.n_vals = 1;
    if ((rc = dl__fz_mark(net, out, needed, cons, err)) || (rc = dl__fz_build_steps(&b, out, needed, cons, fuse))) goto done;
    {   /* head, value offsets, steps in one block with the weights and the dl_frozen */
        int32_t head[DL__FZ_HEAD], *off;
        size_t code_len, wbytes = b.w.len;
        char *blk;
        int out_val = b.val[out->index];
        if (b.code.oom || b.w.oom) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_freeze: out of memory"); goto done; }
        code_len = DL__FZ_HEAD + (size_t)b.n_vals + b.code.len / sizeof(int32_t);
        blk = (char *)DL_MALLOC(sizeof(dl_frozen) + code_len * sizeof(int32_t) + wbytes + 1);
        if (!blk) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_freeze: out of memory"); goto done; }
        f = (dl_frozen *)(void *)blk;
        memset(f, 0, sizeof *f);
        off = (int32_t *)(void *)(blk + sizeof(dl_frozen));
        head[0] = DL__FZ_MAGIC; head[1] = DL__FZ_VERSION; head[2] = b.steps; head[3] = b.n_vals;
        head[4] = 0;
        for (i = 0; i <= out->index; i++) if (needed[i] && net->layers[i]->op == DL_OP_INPUT) head[4] = net->layers[i]->size;
        head[5] = out->size;
        head[6] = dl__fz_layout(&b, off + DL__FZ_HEAD, out_val == 0 ? -1 : out_val);
        memcpy(off, head, sizeof head);
        if (b.code.len) memcpy(off + DL__FZ_HEAD + b.n_vals, b.code.p, b.code.len);
        f->code = off; f->code_len = code_len;
        f->w = (const float *)(void *)(off + code_len); f->w_len = wbytes / sizeof(float);
        if (wbytes) memcpy((void *)(off + code_len), b.w.p, wbytes);
        f->owned = blk;
    }
done:
    DL_FREE(needed); DL_FREE(cons); DL_FREE(fuse); DL_FREE(b.code.p); DL_FREE(b.w.p);
    if (st) st->code = rc;
    return rc ? NULL : f;
}
void dl_frozen_free(dl_frozen *f) { if (f && f->owned) DL_FREE(f->owned); }

int dl_net_memory(const dl_net *net, dl_layer *out, int n, dl_memory *m) {
    dl_frozen *f;
    dl_status st;
    int rc;
    if (!net || !m || n < 1) return DL_ERR_ARG;
    if (!(f = dl_freeze(net, out, &st))) return st.code;
    rc = dl_frozen_memory(f, n, m);
    dl_frozen_free(f);
    return rc;
}

/* ---- quantization: calibrate, fold, quantize ---- */
#define DL__HIST 2048
typedef struct dl__calib {
    int *slot;                  /* per step: its index among the steps calibrated, or -1 */
    double *lo, *hi;            /* per calibrated step: range of its input */
    double *hist;               /* per calibrated step: DL__HIST bins of |x| over [0, max |x|], zeros left out */
    struct dl__eq *eq;          /* pass 2 (dl__equalize): per step, the channels of its input */
    double *chmax;              /* pass 2: their max |x| */
    int pass, bad;
} dl__calib;
static void dl__calib_channels(dl__calib *c, int step, const float *in, size_t count);
static void dl__calib_hook(void *user, int step, const float *in, size_t count) {
    dl__calib *c = (dl__calib *)user;
    int s = c->slot[step];
    size_t i;
    if (c->pass == 2) { dl__calib_channels(c, step, in, count); return; }
    if (s < 0) return;
    for (i = 0; i < count; i++) {
        double v = in[i];
        if (!dl__finite(in[i])) { c->bad = 1; return; }
        if (c->pass == 0) { if (v < c->lo[s]) c->lo[s] = v; if (v > c->hi[s]) c->hi[s] = v; }
        else if (v != 0) {      /* exact zeros (relu, padding) quantize exactly whatever the range: left out */
            double amax = c->hi[s] > -c->lo[s] ? c->hi[s] : -c->lo[s];
            int bin = amax > 0 ? (int)(fabs(v) / amax * DL__HIST) : 0;
            c->hist[(size_t)s * DL__HIST + (bin < DL__HIST ? bin : DL__HIST - 1)] += 1;
        }
    }
}
/* KL(p || q) of histogram h cut at i bins (the rest folded into the last)
   against its quantization to `levels` levels. */
static double dl__kl(const double *h, int i, int levels) {
    double p[DL__HIST], total = 0, qtotal = 0, kl = 0;
    int j, b;
    for (j = 0; j < i; j++) { p[j] = h[j]; qtotal += h[j]; }
    for (j = i; j < DL__HIST; j++) p[i - 1] += h[j];
    for (j = 0; j < i; j++) total += p[j];
    if (qtotal <= 0) return 0;
    for (b = 0; b < levels; b++) {
        int a = b * i / levels, e = (b + 1) * i / levels, nz = 0;
        double sum = 0;
        for (j = a; j < e; j++) { sum += h[j]; nz += h[j] > 0; }
        for (j = a; j < e; j++)
            if (p[j] > 0) {
                double q = nz ? sum / nz : 0;
                kl += p[j] / total * log((p[j] / total) / (q > 0 ? q / qtotal : 1e-12));
            }
    }
    return kl;
}
/* The clipping threshold for |x| of one calibrated step. KL: the
   divergence of a cut j dips sharply where the histogram's fine structure
   (the values an 8-bit image's pixels lead to are comb-like) happens to
   line up with the bins merged into one level; such a dip, a bin or two
   wide, says nothing about the threshold, yet it was the minimum (one cut
   at a fifth of the range cost a depthwise net 30 points). The cut taken
   minimizes the median of the divergences of 2 DL__KL_MED + 1 neighbouring cuts. */
#define DL__KL_MED 16
static double dl__calib_clip(const dl__calib *c, int s, const dl_quant_desc *d) {
    const double *h = c->hist + (size_t)s * DL__HIST;
    double amax = c->hi[s] > -c->lo[s] ? c->hi[s] : -c->lo[s], total = 0, run = 0, best = 0, bk = 0, kl[DL__HIST];
    float pct = d->percentile > 0 ? d->percentile : 99.99f;
    int j, levels = c->lo[s] < 0 ? 128 : 255;      /* u8 spends all its levels on [0, T] when nothing is negative */
    if (d->calib == DL_CALIB_MINMAX || amax <= 0) return amax;
    for (j = 0; j < DL__HIST; j++) total += h[j];
    if (d->calib == DL_CALIB_PERCENTILE) {
        for (j = 0; j < DL__HIST && run < total * pct / 100.0; j++) run += h[j];
        return amax * j / DL__HIST;
    }
    for (j = levels; j <= DL__HIST; j++) kl[j - levels] = dl__kl(h, j, levels);
    for (j = levels; j <= DL__HIST; j++) {      /* the median of 2 DL__KL_MED + 1 neighbouring cuts */
        double win[2 * DL__KL_MED + 1];
        int a = j - DL__KL_MED < levels ? levels : j - DL__KL_MED, e = j + DL__KL_MED > DL__HIST ? DL__HIST : j + DL__KL_MED, k, t;
        for (k = a; k <= e; k++) {              /* insertion sort: at most 33 values */
            double v = kl[k - levels];
            for (t = k - a; t > 0 && win[t - 1] > v; t--) win[t] = win[t - 1];
            win[t] = v;
        }
        if (!bk || win[(e - a) / 2] < best) { best = win[(e - a) / 2]; bk = j; }   /* no sentinel: the tail folded in can make kl < 0 */
    }
    return amax * (bk + 0.5) / DL__HIST;
}
/* Runs the calibration samples through f in batches of 32: passes 0
   (ranges) and 1 (histograms), or only pass 2 (dl__equalize's channels). */
static int dl__calibrate(const dl_frozen *f, const float *x, int n, dl__calib *c, int channels, char *err) {
    dl_memory m;
    int b = n < 32 ? n : 32, i, rc = DL_OK;
    float *work, *y;
    dl_frozen_memory(f, b, &m);
    work = (float *)DL_MALLOC(m.work_bytes + (size_t)b * m.out_size * sizeof(float) + sizeof(float));
    if (!work) return dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory");
    y = work + m.work_bytes / sizeof(float);
    for (c->pass = channels ? 2 : 0; c->pass < (channels ? 3 : 2) && !rc; c->pass++)
        for (i = 0; i < n && !rc; i += b)
            rc = dl__fz_run(f, x + (size_t)i * m.in_size, y, n - i < b ? n - i : b, work, dl__calib_hook, c);
    DL_FREE(work);
    if (!rc && c->bad) rc = dl__fail(err, DL_ERR_NUMERIC, "dl_quantize: a calibration sample gives a value that is not finite");
    return rc;
}

/* ---- cross-layer equalization ----
   One input range per tensor serves a tensor whose channels differ widely
   in scale badly (a depthwise convolution's ReLU outputs feeding a
   pointwise one): min/max leaves the small channels a few levels, and
   percentile or KL clip the large ones. So, before calibrating, where a
   conv or dense step P feeds an int8 conv or dense step Q and nothing
   else (through channel-wise pooling or relu steps), P's output channel c
   is divided by s[c] (its batchnorm scale and shift, else its weight row
   and bias) and Q's weights that read channel c are multiplied by s[c]
   (Nagel et al. 2019, "Data-Free Quantization"). P's activation (none,
   relu, leaky relu, prelu) and the steps between are positively
   homogeneous, so the net computes the same function; s[c] being powers
   of 2, it computes the same floats (subnormals aside). s[c] balances
   the channel's range a[c] (max |x| over the calibration data) against
   how far Q's weights on it stay below their row's maximum, w[c] (per-row
   weights lose precision on small columns): s ~ a^alpha / w^(1 - alpha)
   (SmoothQuant, Xiao et al. 2022); alpha 1 would give every channel the
   same range. On tests/test_quant.c's depthwise net trained from seeds 1
   to 4 (gcc build; the worst loss against float over the seeds, in
   points, for min/max, percentile, KL): alpha 1/2 0.3, 0.6, 5.2; 3/4
   0.2, 0.5, 1.1; 7/8 0.7, 0.6, 1.6; 1 1.1, 1.3, 1.2; none 0.6, 0.4, 6.6
   (with dl__calib_clip's median). The largest channel keeps its range. */
#define DL__EQ_ALPHA 0.75
typedef struct dl__eq { int prod, C, per, size; size_t at; } dl__eq;   /* per int8 step: producer, channels, their layout, chmax offset */
static int dl__eq_homogeneous(const int32_t *r) {
    int op = r[DL__R_OP];
    return r[DL__R_NIN] == 1 && r[DL__R_Q] < 0 && (op == DL_OP_MAXPOOL2D || op == DL_OP_AVGPOOL2D || op == DL_OP_GLOBAL_AVGPOOL ||
                                                   op == DL_OP_GLOBAL_MAXPOOL || op == DL_OP_RELU);
}
static void dl__calib_channels(dl__calib *c, int step, const float *in, size_t count) {
    const dl__eq *e = c->eq + step;
    double *a = c->chmax + e->at;
    size_t i;
    if (e->prod < 0) return;
    for (i = 0; i < count; i++) {           /* NaN compares false here; pass 0 rejects it */
        double v = fabs(in[i]);
        size_t ch = i % (size_t)e->size / (size_t)e->per;
        if (v > a[ch]) a[ch] = v;
    }
}
/* For step j (to be int8): the conv or dense step whose output channels it reads, or -1. */
static int dl__eq_find(const dl_frozen *f, const int32_t *const *rec, const int *readers, int j, dl__eq *e) {
    const int32_t *q = rec[j], *p;
    dl__fz_layer z;
    int v = dl__fz_inputs(q)[0], i, C;
    dl__fz_decode(q, &z);
    if ((q[DL__R_OP] != DL_OP_CONV2D && q[DL__R_OP] != DL_OP_DENSE) || q[DL__R_NIN] != 1) return -1;
    for (;;) {      /* back through the value's one writer while it is a pooling or relu step */
        if (f->code[DL__FZ_HEAD + v] < 0 || readers[v] != 1) return -1;    /* the net's input or output, or read twice */
        for (i = 0; i < j && rec[i][DL__R_OUT] != v; i++) {}
        if (i == j) return -1;
        p = rec[i];
        if (!dl__eq_homogeneous(p)) break;
        v = dl__fz_inputs(p)[0];
    }
    if ((p[DL__R_OP] != DL_OP_CONV2D && p[DL__R_OP] != DL_OP_DENSE) || p[DL__R_NIN] != 1 || p[DL__R_NW] < 1 ||
        (p[DL__R_ACT] != DL__ACT_NONE && p[DL__R_ACT] != DL__ACT_RELU && p[DL__R_ACT] != DL__ACT_LEAKY && p[DL__R_ACT] != DL__ACT_PRELU))
        return -1;
    e->C = C = p[DL__R_SHAPE];
    e->size = z.in[0].size;
    if (C < 1 || e->size % C || (q[DL__R_OP] == DL_OP_CONV2D && (z.in[0].ndim != 3 || z.in[0].shape[0] != C))) return -1;
    e->per = e->size / C;
    return e->prod = i;
}
/* Channel c of the input of step Q's weight element (m, k). */
static int dl__eq_chan(const dl__fz_layer *z, const dl__eq *e, size_t m, size_t k) {
    if (z->l.op == DL_OP_DENSE) return (int)(k / (size_t)e->per);
    {
        dl__conv g = dl_layer_conv_geom(&z->l);
        return (int)(m / (size_t)g.Mg) * g.Cg + (int)(k / ((size_t)g.KH * (size_t)g.KW));
    }
}
/* s for one pair from the channel maxima a (C of them), into s; w scratch (C). */
static void dl__eq_scales(const float *W, const dl__fz_layer *z, const dl__eq *e, const double *a, double *s, double *w) {
    size_t M = z->l.op == DL_OP_DENSE ? (size_t)z->l.a.units : (size_t)z->l.shape[0], K, m, k;
    double top = 0, most = 0, f;
    int c;
    K = (z->l.op == DL_OP_DENSE ? (size_t)e->size : (size_t)dl_layer_conv_geom(&z->l).K);
    for (c = 0; c < e->C; c++) w[c] = 0;
    for (m = 0; m < M; m++) {
        double rmax = 0;
        for (k = 0; k < K; k++) if (fabs(W[m * K + k]) > rmax) rmax = fabs(W[m * K + k]);
        for (k = 0; k < K && rmax > 0; k++) {
            double v = fabs(W[m * K + k]) / rmax;
            c = dl__eq_chan(z, e, m, k);
            if (v > w[c]) w[c] = v;
        }
    }
    for (c = 0; c < e->C; c++) {
        s[c] = a[c] > 0 && w[c] > 0 ? pow(a[c], DL__EQ_ALPHA) / pow(w[c], 1 - DL__EQ_ALPHA) : 0;
        if (s[c] > 0 && a[c] / s[c] > most) most = a[c] / s[c];
        if (a[c] > top) top = a[c];
    }
    f = most > 0 ? most / top : 1;      /* the largest channel keeps its range: a[c] / s[c] <= max a */
    for (c = 0; c < e->C; c++) {
        int ex = 0;
        if (s[c] <= 0) { s[c] = 1; continue; }   /* always 0, or never read: as it is */
        frexp(s[c] * f * 0.70710678118654752, &ex);     /* the nearest power of 2 (in log) */
        s[c] = ldexp(1.0, ex < -30 ? -30 : ex > 30 ? 30 : ex);
    }
}
/* Applies s (C) to the pair: P's channels divided, Q's weights multiplied. */
static void dl__eq_apply(float *w, const int32_t *p, const int32_t *q, const dl__fz_layer *zq, const dl__eq *e, const double *s) {
    size_t M = (size_t)q[DL__R_W + 1] / (zq->l.op == DL_OP_DENSE ? (size_t)e->size : (size_t)dl_layer_conv_geom(&zq->l).K);
    size_t K = (size_t)q[DL__R_W + 1] / M, Kp = (size_t)p[DL__R_W + 1] / (size_t)e->C, m, k;
    float *Wq = w + q[DL__R_W], *Wp = w + p[DL__R_W];
    int c;
    for (m = 0; m < M; m++) for (k = 0; k < K; k++) Wq[m * K + k] *= (float)s[dl__eq_chan(zq, e, m, k)];
    for (c = 0; c < e->C; c++) {
        float d = (float)(1.0 / s[c]);
        if (p[DL__R_SCALE] >= 0) w[p[DL__R_SCALE] + c] *= d;
        else {
            for (k = 0; k < Kp; k++) Wp[(size_t)c * Kp + k] *= d;
            if (p[DL__R_NW] > 1) w[p[DL__R_W + 2] + c] *= d;
        }
        if (p[DL__R_SHIFT] >= 0) w[p[DL__R_SHIFT] + c] *= d;
    }
}
/* Measures the channels of every pairable int8 step's input on f and
   returns the equalized copy of f's floats in *w (NULL: no pair). */
static int dl__equalize(const dl_frozen *f, const float *x, int n, dl__calib *c, float **w, char *err) {
    int S = f->code[2], V = f->code[3], i, k, pairs = 0, maxC = 1, rc = DL_OK;
    const int32_t **rec = (const int32_t **)dl__calloc((size_t)S + 1, sizeof *rec), *r;
    int *readers = (int *)dl__calloc((size_t)V + 1, sizeof(int));
    dl__eq *eq = (dl__eq *)dl__calloc((size_t)S + 1, sizeof(dl__eq));
    double *s = NULL;
    size_t at = 0;
    *w = NULL;
    if (!rec || !readers || !eq) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory"); goto done; }
    dl__fz_check(f, &r);
    for (i = 0; i < S; i++, r += r[DL__R_LEN]) {
        rec[i] = r;
        for (k = 0; k < r[DL__R_NIN]; k++) readers[dl__fz_inputs(r)[5 * k]]++;
    }
    for (i = 0; i < S; i++) {
        eq[i].prod = -1;
        if (c->slot[i] < 0 || dl__eq_find(f, rec, readers, i, &eq[i]) < 0) { eq[i].prod = -1; continue; }
        eq[i].at = at;
        at += (size_t)eq[i].C;
        if (eq[i].C > maxC) maxC = eq[i].C;
        pairs++;
    }
    if (!pairs) goto done;
    c->eq = eq;
    c->chmax = (double *)dl__calloc(at, sizeof(double));
    s = (double *)dl__calloc(2 * (size_t)maxC, sizeof(double));
    *w = (float *)DL_MALLOC(f->w_len * sizeof(float) + 1);
    if (!c->chmax || !s || !*w) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory"); goto done; }
    if ((rc = dl__calibrate(f, x, n, c, 2, err))) goto done;
    memcpy(*w, f->w, f->w_len * sizeof(float));
    for (i = 0; i < S; i++)
        if (eq[i].prod >= 0) {
            dl__fz_layer zq;
            dl__fz_decode(rec[i], &zq);
            dl__eq_scales(*w + rec[i][DL__R_W], &zq, &eq[i], c->chmax + eq[i].at, s, s + maxC);
            dl__eq_apply(*w, rec[eq[i].prod], rec[i], &zq, &eq[i], s);
        }
done:
    if (rc) { DL_FREE(*w); *w = NULL; }
    c->eq = NULL;
    DL_FREE(c->chmax); c->chmax = NULL;
    DL_FREE(rec); DL_FREE(readers); DL_FREE(eq); DL_FREE(s);
    return rc;
}
typedef struct dl__qbuild { dl__wbuf code, w, q; } dl__qbuild;
static int32_t dl__qput(dl__wbuf *w, const float *p, size_t count) {
    int32_t at = (int32_t)(w->len / sizeof(float));
    dl__put(w, p, count * sizeof(float));
    return at;
}
/* A float step copied, its weights moved into the new table. */
static void dl__q_copy_step(dl__qbuild *qb, const dl_frozen *f, const int32_t *r) {
    int32_t rec[DL__R_W + 8];
    int k, C = r[DL__R_SHAPE];
    memcpy(rec, r, sizeof(int32_t) * (size_t)(DL__R_W + 2 * r[DL__R_NW]));
    if (r[DL__R_SCALE] >= 0) rec[DL__R_SCALE] = dl__qput(&qb->w, f->w + r[DL__R_SCALE], (size_t)C);
    if (r[DL__R_SHIFT] >= 0) rec[DL__R_SHIFT] = dl__qput(&qb->w, f->w + r[DL__R_SHIFT], (size_t)C);
    if (r[DL__R_SLOPE] >= 0) rec[DL__R_SLOPE] = dl__qput(&qb->w, f->w + r[DL__R_SLOPE], (size_t)C);
    for (k = 0; k < r[DL__R_NW]; k++) rec[DL__R_W + 2 * k] = dl__qput(&qb->w, f->w + r[DL__R_W + 2 * k], (size_t)r[DL__R_W + 2 * k + 1]);
    dl__put(&qb->code, rec, sizeof(int32_t) * (size_t)(DL__R_W + 2 * r[DL__R_NW]));
    dl__put(&qb->code, dl__fz_inputs(r), sizeof(int32_t) * 5 * (size_t)r[DL__R_NIN]);
}
/* A conv or dense step as int8: batchnorm folded into W and b, W quantized
   per row (or per tensor), the input range [lo, hi] (0 inside) to u8. */
static int dl__q_int8_step(dl__qbuild *qb, const dl_frozen *f, const int32_t *r, double lo, double hi, int per_tensor) {
    dl__fz_layer z;
    int32_t rec[DL__R_W + 8];
    size_t M, K, rowb, m, k, KK = 1, C4 = 0;
    const float *W = f->w + r[DL__R_W], *bias = r[DL__R_NW] > 1 ? f->w + r[DL__R_W + 2] : NULL;
    const float *sc = r[DL__R_SCALE] >= 0 ? f->w + r[DL__R_SCALE] : NULL, *sh = r[DL__R_SHIFT] >= 0 ? f->w + r[DL__R_SHIFT] : NULL;
    float *out, xq[2];
    double s, all = 0;
    int8_t *q;
    dl__fz_decode(r, &z);
    if (z.l.op == DL_OP_DENSE) { M = (size_t)z.l.a.units; K = (size_t)z.in[0].size; }
    else {
        dl__conv g = dl_layer_conv_geom(&z.l);
        M = (size_t)g.M; K = (size_t)g.K; KK = (size_t)g.KH * (size_t)g.KW; C4 = (size_t)dl__q8_conv_geom(&g).C4;
    }
    rowb = dl__q8_row_bytes(&z.l);
    out = (float *)dl__calloc(3 * M + K, sizeof(float));      /* scale, bias, wsum, one folded row */
    q = (int8_t *)dl__calloc(M * rowb, 1);
    if (!out || !q) { DL_FREE(out); DL_FREE(q); return DL_ERR_NOMEM; }
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi - lo <= 0) hi = 1;
    s = (hi - lo) / 255.0;
    xq[0] = (float)(1.0 / s);
    xq[1] = (float)floor(-lo / s + 0.5);
    for (m = 0; m < M && per_tensor; m++)
        for (k = 0; k < K; k++) { double v = fabs((double)W[m * K + k] * (sc ? sc[m] : 1.0f)); if (v > all) all = v; }
    for (m = 0; m < M; m++) {
        float *row = out + 3 * M;
        double amax = all, sw, sum = 0;
        for (k = 0; k < K; k++) {
            row[k] = (float)((double)W[m * K + k] * (sc ? sc[m] : 1.0f));
            if (!per_tensor && fabs(row[k]) > amax) amax = fabs(row[k]);
        }
        sw = amax > 0 ? amax / 127.0 : 1.0;
        for (k = 0; k < K; k++) {       /* a convolution's k = c KK + tap goes to word (tap, c / 4), byte c % 4 */
            double v = floor(row[k] / sw + 0.5);
            size_t at = m * rowb + (C4 ? 4 * (k % KK * C4 + k / KK / 4) + k / KK % 4 : k);
            q[at] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            sum += q[at];
        }
        out[m] = (float)(s * sw);
        out[M + m] = (float)((bias ? (double)bias[m] : 0.0) * (sc ? sc[m] : 1.0f) + (sh ? sh[m] : 0.0f));
        out[2 * M + m] = (float)sum;
    }
    memcpy(rec, r, sizeof(int32_t) * DL__R_W);
    rec[DL__R_SCALE] = rec[DL__R_SHIFT] = -1;
    if (r[DL__R_SLOPE] >= 0) rec[DL__R_SLOPE] = dl__qput(&qb->w, f->w + r[DL__R_SLOPE], M);
    rec[DL__R_Q] = (int32_t)qb->q.len;
    rec[DL__R_NW] = 4;
    for (k = 0; k < 3; k++) { rec[DL__R_W + 2 * k] = dl__qput(&qb->w, out + k * M, M); rec[DL__R_W + 2 * k + 1] = (int32_t)M; }
    rec[DL__R_W + 6] = dl__qput(&qb->w, xq, 2); rec[DL__R_W + 7] = 2;
    rec[DL__R_LEN] = DL__R_W + 8 + 5;
    dl__put(&qb->q, q, M * rowb);
    dl__put(&qb->code, rec, sizeof(int32_t) * (DL__R_W + 8));
    dl__put(&qb->code, dl__fz_inputs(r), sizeof(int32_t) * 5);
    DL_FREE(out); DL_FREE(q);
    return DL_OK;
}
/* int32 sums of 255 x 127 products stay exact up to 2^31: longer rows stay float. */
static int dl__q_fits(const int32_t *r) {
    dl__fz_layer z;
    dl__fz_decode(r, &z);
    return (r[DL__R_OP] == DL_OP_DENSE ? z.in[0].size : dl_layer_conv_geom(&z.l).K) <= 32768;
}
/* Which steps become int8: conv and dense ones, less keep_float and dl__q_fits. */
static int dl__q_select(const dl_frozen *f, const dl_quant_desc *d, int *slot, char *err) {
    const int32_t *r;
    int i, k, count = 0, cand = 0;
    dl__fz_check(f, &r);
    for (i = 0; i < f->code[2]; i++, r += r[DL__R_LEN]) {
        slot[i] = -1;
        if (r[DL__R_Q] >= 0) return dl__fail(err, DL_ERR_ARG, "dl_quantize: the net is quantized already");
        if (r[DL__R_OP] == DL_OP_CONV2D || r[DL__R_OP] == DL_OP_DENSE) slot[i] = cand++;
    }
    for (k = 0; k < d->n_keep_float; k++) {
        int want = d->keep_float[k] < 0 ? cand + d->keep_float[k] : d->keep_float[k];
        if (want < 0 || want >= cand)
            return dl__fail(err, DL_ERR_ARG, "dl_quantize: keep_float[%d] = %d, but the net has %d conv and dense layers",
                            k, d->keep_float[k], cand);
        for (i = 0; i < f->code[2]; i++) if (slot[i] == want) slot[i] = -2;
    }
    dl__fz_check(f, &r);
    for (i = 0; i < f->code[2]; i++, r += r[DL__R_LEN]) slot[i] = slot[i] >= 0 && dl__q_fits(r) ? count++ : -1;
    return DL_OK;
}
dl_frozen *dl_quantize(const dl_frozen *f, const float *x, int n, const dl_quant_desc *d, dl_status *st) {
    dl_quant_desc d0;
    dl_status local;
    dl__calib c;
    dl__qbuild qb;
    dl_frozen *out = NULL, eqf;
    const int32_t *r;
    char *err = st ? st->msg : local.msg;
    float *eqw = NULL;
    int rc = DL_OK, i, steps, vals;
    memset(&d0, 0, sizeof d0);
    memset(&c, 0, sizeof c);
    memset(&qb, 0, sizeof qb);
    if (!d) d = &d0;
    if (st) { st->code = DL_OK; st->msg[0] = 0; }
    if (!f || !x || n < 1 || (d->n_keep_float > 0 && !d->keep_float)) { rc = dl__fail(err, DL_ERR_ARG, "dl_quantize: NULL or n < 1"); goto done; }
    if (dl__fz_check(f, &r)) { rc = dl__fail(err, DL_ERR_FORMAT, "dl_quantize: not a frozen net of this dl.h version"); goto done; }
    steps = f->code[2];
    vals = f->code[3];
    c.slot = (int *)dl__calloc((size_t)steps + 1, sizeof(int));
    c.lo = (double *)dl__calloc(2 * (size_t)steps + 2, sizeof(double));
    c.hist = (double *)dl__calloc((size_t)steps * DL__HIST + 1, sizeof(double));
    if (!c.slot || !c.lo || !c.hist) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory"); goto done; }
    c.hi = c.lo + steps + 1;
    if ((rc = dl__q_select(f, d, c.slot, err))) goto done;
    if (!d->per_tensor_weights && !d->no_equalize && (rc = dl__equalize(f, x, n, &c, &eqw, err))) goto done;
    if (eqw) { eqf = *f; eqf.w = eqw; eqf.owned = NULL; f = &eqf; }     /* the same steps over the equalized floats */
    if ((rc = dl__calibrate(f, x, n, &c, 0, err))) goto done;
    dl__put(&qb.code, f->code, sizeof(int32_t) * (size_t)(DL__FZ_HEAD + vals));
    for (i = 0; i < steps && !rc; i++, r += r[DL__R_LEN]) {
        int s = c.slot[i];
        double clip = s >= 0 ? dl__calib_clip(&c, s, d) : 0;
        if (s < 0) dl__q_copy_step(&qb, f, r);
        else rc = dl__q_int8_step(&qb, f, r, c.lo[s] > -clip ? c.lo[s] : -clip, c.hi[s] < clip ? c.hi[s] : clip, d->per_tensor_weights);
    }
    if (rc || qb.code.oom || qb.w.oom || qb.q.oom) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory"); goto done; }
    {
        size_t cb = qb.code.len, wb = qb.w.len, bytes = sizeof(dl_frozen) + cb + wb + qb.q.len;
        char *blk = (char *)DL_MALLOC(bytes);
        if (!blk) { rc = dl__fail(err, DL_ERR_NOMEM, "dl_quantize: out of memory"); goto done; }
        out = (dl_frozen *)(void *)blk;
        memset(out, 0, sizeof *out);
        memcpy(blk + sizeof(dl_frozen), qb.code.p, cb);
        if (wb) memcpy(blk + sizeof(dl_frozen) + cb, qb.w.p, wb);
        if (qb.q.len) memcpy(blk + sizeof(dl_frozen) + cb + wb, qb.q.p, qb.q.len);
        out->code = (const int32_t *)(void *)(blk + sizeof(dl_frozen)); out->code_len = cb / sizeof(int32_t);
        out->w = (const float *)(void *)(blk + sizeof(dl_frozen) + cb); out->w_len = wb / sizeof(float);
        out->q = (const int8_t *)(blk + sizeof(dl_frozen) + cb + wb); out->q_len = qb.q.len;
        out->owned = blk;
    }
done:
    DL_FREE(c.slot); DL_FREE(c.lo); DL_FREE(c.hist); DL_FREE(qb.code.p); DL_FREE(qb.w.p); DL_FREE(qb.q.p); DL_FREE(eqw);
    if (st) st->code = rc;
    return rc ? NULL : out;
}

/* ---- C source ---- */
static void dl__putf(dl__wbuf *w, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    int k;
    va_start(ap, fmt);
    k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (k > 0) dl__put(w, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}
static int dl__is_ident(const char *s) {
    int i;
    if (!s || !*s || strlen(s) > 64 || (*s >= '0' && *s <= '9')) return 0;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')) return 0;
    return 1;
}
/* The scratch of a large batch, and the first batch that needs it: the
   scratch grows with the batch until every packed panel is full. */
static size_t dl__fz_scratch_max(const dl_frozen *f, int *n_full) {
    dl_memory m, big;
    int lo = 1, hi = 4096;
    memset(&big, 0, sizeof big);      /* -O3 cannot see that dl_frozen_memory always fills it */
    dl_frozen_memory(f, hi, &big);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        dl_frozen_memory(f, mid, &m);
        if (m.scratch_bytes >= big.scratch_bytes) hi = mid; else lo = mid + 1;
    }
    *n_full = lo;
    return big.scratch_bytes;
}
static void dl__emit_header(dl__wbuf *w, const dl_frozen *f, const char *name) {
    char up[72];
    dl_memory m;
    int n_full;
    size_t smax = dl__fz_scratch_max(f, &n_full);
    int i;
    dl_frozen_memory(f, 1, &m);
    for (i = 0; name[i]; i++) up[i] = name[i] >= 'a' && name[i] <= 'z' ? (char)(name[i] - 'a' + 'A') : name[i];
    up[i] = 0;
    dl__putf(w, "/* %s.h: a frozen dl.h net, written by dl_emit_c (dl.h %d.%d.%d). Do not edit.\n", name,
             DL_VERSION_MAJOR, DL_VERSION_MINOR, DL_VERSION_PATCH);
    dl__putf(w, "   %d steps; const data: %lu bytes of weights, %lu bytes of step table. */\n", m.steps,
             (unsigned long)m.weight_bytes, (unsigned long)m.code_bytes);
    dl__putf(w, "#ifndef %s_H\n#define %s_H\n#include <stddef.h>\n\n", up, up);
    dl__putf(w, "#define %s_IN_SIZE %d     /* floats per sample */\n#define %s_OUT_SIZE %d\n", up, m.in_size, up, m.out_size);
    dl__putf(w, "/* The work memory of %s_predict (float-aligned: declare it as a float array):\n"
                "   exact for one sample (activations %lu + kernel scratch %lu bytes). */\n", name,
             (unsigned long)m.act_bytes, (unsigned long)m.scratch_bytes);
    dl__putf(w, "#define %s_WORK_BYTES ((size_t)%lu)\n", up, (unsigned long)m.work_bytes);
    dl__putf(w, "/* Enough for n samples (%s_predict_n); exact from n = %d on, below that at most\n"
                "   %lu bytes more than dl_frozen_memory says, since the scratch grows with n%s. */\n", name, n_full,
             (unsigned long)(smax - m.scratch_bytes), f->q_len ? " (this int8 net runs a chunk of samples at a time)" : "");
    if (f->q_len)
        dl__putf(w, "#define %s_WORK_BYTES_N(n) ((size_t)((n) < %d ? (n) : %d) * %luu + %luu)\n\n", up, dl__fz_chunk(f, INT_MAX),
                 dl__fz_chunk(f, INT_MAX), (unsigned long)(m.act_bytes), (unsigned long)smax);
    else
        dl__putf(w, "#define %s_WORK_BYTES_N(n) ((size_t)(n) * %luu + %luu)\n\n", up, (unsigned long)(m.act_bytes), (unsigned long)smax);
    dl__putf(w, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    dl__putf(w, "/* out = the net's output for in; no allocation, no files, no threads. */\n");
    dl__putf(w, "void %s_predict(const float *in, float *out, void *work);\n", name);
    dl__putf(w, "/* n samples; returns 0, or a dl.h status (DL_ERR_ARG: NULL, n < 1, unaligned work). */\n");
    dl__putf(w, "int %s_predict_n(const float *in, float *out, int n, void *work);\n", name);
    dl__putf(w, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
}
static void dl__emit_source(dl__wbuf *w, const dl_frozen *f, const char *name, const dl_emit_desc *d) {
    size_t i;
    dl__putf(w, "/* %s.c: a frozen dl.h net, written by dl_emit_c. Do not edit. */\n", name);
    if (d->implementation) dl__putf(w, "#define DL_IMPLEMENTATION\n");
    dl__putf(w, "#include \"%s\"\n#include \"%s.h\"\n\n", d->include ? d->include : "dl.h", name);
    dl__putf(w, "static const int32_t %s_code[%lu] = {", name, (unsigned long)f->code_len);
    for (i = 0; i < f->code_len; i++) dl__putf(w, "%s%ld", i % 12 ? ", " : i ? ",\n    " : "\n    ", (long)f->code[i]);
    dl__putf(w, "\n};\nstatic const float %s_w[%lu] = {", name, (unsigned long)(f->w_len ? f->w_len : 1));
    if (!f->w_len) dl__putf(w, " 0.0f");
    for (i = 0; i < f->w_len; i++) dl__putf(w, "%s%.9ef", i % 6 ? ", " : i ? ",\n    " : "\n    ", (double)f->w[i]);
    dl__putf(w, "\n};\n");
    if (f->q_len) {
        dl__putf(w, "static const int8_t %s_q[%lu] = {", name, (unsigned long)f->q_len);
        for (i = 0; i < f->q_len; i++) dl__putf(w, "%s%d", i % 24 ? ", " : i ? ",\n    " : "\n    ", (int)f->q[i]);
        dl__putf(w, "\n};\nstatic const dl_frozen %s_net = { %s_code, %lu, %s_w, %lu, %s_q, %lu, NULL };\n\n", name, name,
                 (unsigned long)f->code_len, name, (unsigned long)f->w_len, name, (unsigned long)f->q_len);
    } else
        dl__putf(w, "static const dl_frozen %s_net = { %s_code, %lu, %s_w, %lu, NULL, 0, NULL };\n\n", name, name,
                 (unsigned long)f->code_len, name, (unsigned long)f->w_len);
    dl__putf(w, "void %s_predict(const float *in, float *out, void *work) {\n"
                "    (void)dl_frozen_run(&%s_net, in, out, 1, work);\n}\n", name, name);
    dl__putf(w, "int %s_predict_n(const float *in, float *out, int n, void *work) {\n"
                "    return dl_frozen_run(&%s_net, in, out, n, work);\n}\n", name, name);
}
int dl_emit_c(const dl_frozen *f, const char *name, const char *dir, const dl_emit_desc *d, dl_status *st) {
    dl_emit_desc d0;
    dl_status local;
    dl__wbuf w;
    char path[4096], *err = st ? st->msg : local.msg;
    const int32_t *r;
    int rc = DL_OK, k;
    memset(&d0, 0, sizeof d0);
    if (!d) d = &d0;
    if (!dir) dir = ".";
    if (st) { st->code = DL_OK; st->msg[0] = 0; }
    if (!f) rc = dl__fail(err, DL_ERR_ARG, "dl_emit_c: the frozen net is NULL");
    else if (!dl__is_ident(name)) rc = dl__fail(err, DL_ERR_ARG, "dl_emit_c: the name must be a C identifier of at most 64 characters");
    else if (strlen(dir) + 80 > sizeof path) rc = dl__fail(err, DL_ERR_ARG, "dl_emit_c: the folder name is too long");
    else if (dl__fz_check(f, &r)) rc = dl__fail(err, DL_ERR_FORMAT, "dl_emit_c: not a frozen net of this dl.h version");
    for (k = 0; !rc && k < 2; k++) {
        memset(&w, 0, sizeof w);
        if (k == 0) dl__emit_header(&w, f, name); else dl__emit_source(&w, f, name, d);
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, k == 0 ? "h" : "c");
        rc = w.oom ? dl__fail(err, DL_ERR_NOMEM, "dl_emit_c: out of memory") : dl__write_atomic(err, "dl_emit_c", path, w.p, w.len);
        DL_FREE(w.p);
    }
    if (st) st->code = rc;
    return rc;
}
DL__COLD_END
#endif /* DL_NO_EMIT */

/* ==== >>onnx: ONNX import and export (define DL_NO_ONNX to leave it out) ======== */
#ifndef DL_NO_ONNX
DL__COLD_BEGIN
/* Built on the public API: the importer calls the layer constructors and
   fills parameters through dl_net_find_param; the exporter reads dl_layer and
   dl_param. Reused from >>files: dl__wbuf, dl__read_file, dl__write_atomic. */

/* ---- protobuf wire format: every length is checked against what is left
   of its parent, so a message can only be read inside its own bytes. ---- */
typedef struct dl__pb { const unsigned char *p, *end; } dl__pb;
typedef struct dl__pbf { uint32_t field; int wire; uint64_t v; const unsigned char *s; size_t n; } dl__pbf;
typedef struct dl__str { const char *p; size_t n; } dl__str;

static dl__pb dl__pb_of(const void *p, size_t n) {
    dl__pb b;
    b.p = (const unsigned char *)p; b.end = b.p + n;
    return b;
}
static int dl__pb_varint(dl__pb *b, uint64_t *v) {
    uint64_t r = 0;
    int sh;
    for (sh = 0; sh < 64 && b->p < b->end; sh += 7) {
        unsigned c = *b->p++;
        r |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) { *v = r; return 1; }
    }
    return 0;
}
static uint64_t dl__pb_le(const unsigned char *s, int n) {
    uint64_t v = 0;
    while (n--) v = (v << 8) | s[n];
    return v;
}
/* The next field: 1, 0 at the end of the message, -1 when malformed. */
static int dl__pb_next(dl__pb *b, dl__pbf *f) {
    uint64_t key, len;
    if (b->p >= b->end) return 0;
    if (!dl__pb_varint(b, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return -1;
    f->field = (uint32_t)(key >> 3); f->wire = (int)(key & 7); f->v = 0; f->s = b->p; f->n = 0;
    switch (f->wire) {
    case 0: return dl__pb_varint(b, &f->v) ? 1 : -1;
    case 1: case 5:
        f->n = f->wire == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < f->n) return -1;
        f->v = dl__pb_le(b->p, (int)f->n);
        b->p += f->n;
        return 1;
    case 2:
        if (!dl__pb_varint(b, &len) || len > (uint64_t)(b->end - b->p)) return -1;
        f->s = b->p; f->n = (size_t)len; b->p += len;
        return 1;
    default: return -1;         /* groups are not used by ONNX */
    }
}
/* Reads repeated numeric field `field` of a message, packed or not: kind 0
   varints (as int64), 4 fixed32 floats, 8 fixed64 doubles. out NULL only
   counts. Returns the count, -1 when malformed or of the wrong wire type. */
static long dl__pb_repeated(const unsigned char *m, size_t n, uint32_t field, int kind, void *out) {
    dl__pb b = dl__pb_of(m, n), in;
    dl__pbf f;
    long cnt = 0;
    int r;
    while ((r = dl__pb_next(&b, &f)) > 0) {
        if (f.field != field) continue;
        if (f.wire == 2) in = dl__pb_of(f.s, f.n);
        else if (f.wire == (kind == 0 ? 0 : kind == 4 ? 5 : 1)) { in.p = f.s; in.end = in.p; }
        else return -1;
        do {
            uint64_t v = f.v;
            if (f.wire == 2) {
                if (in.p >= in.end) break;
                if (kind == 0) { if (!dl__pb_varint(&in, &v)) return -1; }
                else if ((size_t)(in.end - in.p) < (size_t)kind) return -1;
                else { v = dl__pb_le(in.p, kind); in.p += kind; }
            }
            if (out) {
                if (kind == 0) ((int64_t *)out)[cnt] = (int64_t)v;
                else if (kind == 4) { uint32_t u = (uint32_t)v; memcpy((float *)out + cnt, &u, 4); }
                else memcpy((double *)out + cnt, &v, 8);
            }
            if (++cnt > 0x7fffffffL) return -1;
        } while (f.wire == 2);
    }
    return r < 0 ? -1 : cnt;
}
static int dl__str_is(dl__str s, const char *z) { return strlen(z) == s.n && !memcmp(s.p, z, s.n); }

/* The writer: a nested message is built in its own buffer, then copied in
   behind its length. */
static void dl__pw_varint(dl__wbuf *w, uint64_t v) {
    unsigned char b[10];
    int n = 0;
    do { b[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    dl__put(w, b, (size_t)n);
}
static void dl__pw_int(dl__wbuf *w, uint32_t field, int64_t v) { dl__pw_varint(w, (uint64_t)field << 3); dl__pw_varint(w, (uint64_t)v); }
static void dl__pw_bytes(dl__wbuf *w, uint32_t field, const void *p, size_t n) {
    dl__pw_varint(w, (uint64_t)field << 3 | 2);
    dl__pw_varint(w, n);
    dl__put(w, p, n);
}
static void dl__pw_str(dl__wbuf *w, uint32_t field, const char *s) { dl__pw_bytes(w, field, s, strlen(s)); }
static void dl__pw_float(dl__wbuf *w, uint32_t field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    dl__pw_varint(w, (uint64_t)field << 3 | 5);
    dl__put_u32(w, u);
}
static void dl__pw_msg(dl__wbuf *w, uint32_t field, dl__wbuf *sub) {   /* frees sub */
    if (sub->oom) w->oom = 1;
    dl__pw_bytes(w, field, sub->p, sub->len);
    DL_FREE(sub->p);
    memset(sub, 0, sizeof *sub);
}

/* ---- ONNX messages (onnx.proto field numbers) ---- */
enum { DL__OX_FLOAT = 1, DL__OX_UINT8 = 2, DL__OX_INT8 = 3, DL__OX_UINT16 = 4, DL__OX_INT16 = 5, DL__OX_INT32 = 6,
       DL__OX_INT64 = 7, DL__OX_STRING = 8, DL__OX_BOOL = 9, DL__OX_FLOAT16 = 10, DL__OX_DOUBLE = 11,
       DL__OX_UINT32 = 12, DL__OX_UINT64 = 13 };
#define DL__OX_MAXR 8           /* tensor rank */
#define DL__OX_MAXIO 64         /* inputs, outputs and attributes of one node */
#define DL__OX_SYM (-0x7ffffffffffffff0LL)   /* the batch size in a folded shape: unknown at import */
#define DL__OX_MAXCOUNT 0x7fffffffL          /* elements in one tensor */

typedef struct dl__ox_t {       /* a constant, owned: float or int64 values */
    int ndim, isint;
    int64_t dims[DL__OX_MAXR];
    size_t count;
    float *f;
    int64_t *i;
} dl__ox_t;

typedef struct dl__ox_node {
    dl__str op, name, domain;
    int n_in, n_out, n_attr;
    dl__str in[DL__OX_MAXIO], out[DL__OX_MAXIO];
    dl__str attr_name[DL__OX_MAXIO];
    const unsigned char *attr[DL__OX_MAXIO];
    size_t attr_len[DL__OX_MAXIO];
} dl__ox_node;

enum { DL__OX_NONE = 0, DL__OX_LAYER = 1, DL__OX_CONST = 2 };
typedef struct dl__ox_val {
    dl__str name;               /* into the model bytes */
    int kind;                   /* NONE: made by an unsupported node */
    dl_layer *l;                /* LAYER: ONNX dims are [batch, l->shape...], */
    int rank;                   /* LAYER: ONNX rank (rank 1 is per-sample (1)) */
    int whole;                  /* LAYER: ... or, when the batch is 1, wd: the sample is */
    int64_t wd[DL__OX_MAXR];    /* the whole tensor, l of any shape of its size */
    dl__ox_t t;                 /* CONST */
    const char *refused;        /* NONE: made by a supported node, but what reads it is refused, for this reason */
} dl__ox_val;

typedef struct dl__ox {
    dl_net *net;
    const char *dir;            /* the model's folder, for external data; NULL from memory */
    int opset;
    int64_t batch;              /* the input's first dim, or DL__OX_SYM; 1 when folded */
    int fold;                   /* the input's fixed first dim is taken into the sample */
    int can_fold;               /* a retry with fold set may map more */
    dl__ox_val *v;
    int nv, capv, *hash, hcap;
    int helpers;                /* layers named "~k" until the end */
    dl_layer *input;            /* the graph input's layer: feeds constants that take the batch */
    const dl__ox_node *node;    /* the node being imported */
    char why[160];              /* why the node is unsupported */
    struct { char op[24], first[24], why[96]; int count; } ug[16];   /* unsupported nodes, by op and reason */
    int n_ug, n_unsup;
    char err[256];
    const unsigned char **fn;   /* local functions (FunctionProto), for inlining */
    size_t *fn_len;
    int n_fn;
    void *arena;                /* names made while inlining, freed at the end */
    unsigned calls;
} dl__ox;

/* A call of a local function being inlined: its formal inputs and outputs
   are the caller's, its other values are renamed "~f<id>/name". */
typedef struct dl__ox_call {
    const dl__ox_node *caller;
    const unsigned char *fn;
    size_t fn_len;
    dl__str in[DL__OX_MAXIO], out[DL__OX_MAXIO];
    int n_in, n_out, depth;
    unsigned id;
} dl__ox_call;

static int dl__ox_failf(dl__ox *ox, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ox->err, sizeof ox->err, fmt, ap);
    va_end(ap);
    return code;
}
static int dl__ox_unsup(dl__ox *ox, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ox->why, sizeof ox->why, fmt, ap);
    va_end(ap);
    return DL_ERR_UNSUPPORTED;
}
static void dl__ox_t_free(dl__ox_t *t) { DL_FREE(t->f); DL_FREE(t->i); memset(t, 0, sizeof *t); }
static int dl__ox_t_alloc(dl__ox_t *t, int isint, int ndim, const int64_t *dims) {
    size_t c = 1;
    int k;
    memset(t, 0, sizeof *t);
    t->isint = isint; t->ndim = ndim;
    for (k = 0; k < ndim; k++) {
        if (dims[k] < 0 || (dims[k] && c > (size_t)DL__OX_MAXCOUNT / (size_t)dims[k])) return DL_ERR_FORMAT;
        t->dims[k] = dims[k];
        c *= (size_t)dims[k];
    }
    t->count = c;
    if (isint) t->i = (int64_t *)DL_MALLOC((c ? c : 1) * sizeof(int64_t));   /* every element is written next */
    else t->f = (float *)DL_MALLOC((c ? c : 1) * sizeof(float));
    return (isint ? (void *)t->i : (void *)t->f) ? DL_OK : DL_ERR_NOMEM;
}
static double dl__ox_get(const dl__ox_t *t, size_t k) { return t->isint ? (double)t->i[k] : (double)t->f[k]; }

/* IEEE half to float, subnormals, infinities and NaN included. */
static float dl__half(unsigned h) {
    unsigned e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), (int)e - 25);
    return (h & 0x8000) ? -v : v;
}

/* The payload of an external tensor: location relative to the model's
   folder, never absolute and never through "..". */
static int dl__ox_external(dl__ox *ox, const unsigned char *m, size_t n, size_t want, unsigned char **out) {
    dl__pb b = dl__pb_of(m, n);
    dl__pbf f;
    char loc[512] = "", path[1200], key[16];
    unsigned long long off = 0, len = (unsigned long long)want;
    FILE *fp;
    int r, ok;
    if (!ox->dir) return dl__ox_unsup(ox, "external data needs dl_onnx_load(path), not the memory loader");
    while ((r = dl__pb_next(&b, &f)) > 0) {
        dl__pb e;
        dl__pbf g;
        dl__str k = { NULL, 0 }, v = { NULL, 0 };
        char val[512];
        if (f.field != 13 || f.wire != 2) continue;
        e = dl__pb_of(f.s, f.n);
        while ((r = dl__pb_next(&e, &g)) > 0)
            if (g.wire == 2 && (g.field == 1 || g.field == 2)) {
                dl__str *d = g.field == 1 ? &k : &v;
                d->p = (const char *)g.s; d->n = g.n;
            }
        if (r < 0 || !k.p || !v.p || k.n >= sizeof key || v.n >= sizeof val) return dl__ox_failf(ox, DL_ERR_FORMAT, "bad external_data entry");
        memcpy(key, k.p, k.n); key[k.n] = 0;
        memcpy(val, v.p, v.n); val[v.n] = 0;
        if (!strcmp(key, "location")) memcpy(loc, val, v.n + 1);
        else if (!strcmp(key, "offset")) off = strtoull(val, NULL, 10);
        else if (!strcmp(key, "length")) len = strtoull(val, NULL, 10);
    }
    if (r < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "malformed tensor");
    if (!loc[0] || loc[0] == '/' || strchr(loc, '\\') || strchr(loc, ':') || !strcmp(loc, "..") || !strncmp(loc, "../", 3) ||
        strstr(loc, "/../") || (strlen(loc) >= 3 && !strcmp(loc + strlen(loc) - 3, "/..")))
        return dl__ox_failf(ox, DL_ERR_FORMAT, "external data location '%s' must be a relative path inside the model's folder", loc);
    if (len != want) return dl__ox_failf(ox, DL_ERR_FORMAT, "external data of %llu bytes for a tensor of %lu", len, (unsigned long)want);
    snprintf(path, sizeof path, "%s/%s", ox->dir, loc);
    if (!(fp = fopen(path, "rb"))) return dl__ox_failf(ox, DL_ERR_IO, "cannot open external data %s", path);
    if (fseek(fp, 0, SEEK_END) || ftell(fp) < 0 || off > (unsigned long long)ftell(fp) || len > (unsigned long long)ftell(fp) - off) {
        fclose(fp);
        return dl__ox_failf(ox, DL_ERR_FORMAT, "external data %s is shorter than offset %llu + %llu", path, off, len);
    }
    if (!(*out = (unsigned char *)DL_MALLOC(want ? want : 1))) { fclose(fp); return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory"); }
    ok = off <= (unsigned long long)LONG_MAX && !fseek(fp, (long)off, SEEK_SET) && fread(*out, 1, want, fp) == want;
    fclose(fp);
    if (!ok) { DL_FREE(*out); *out = NULL; return dl__ox_failf(ox, DL_ERR_FORMAT, "external data %s is shorter than offset %llu + %llu", path, off, len); }
    return DL_OK;
}

/* raw_data (little-endian, es bytes each) into t's floats or ints. */
static void dl__ox_decode_raw(dl__ox_t *t, int dtype, const unsigned char *raw, int es) {
    uint32_t one = 1;
    size_t k;
    if (dtype == DL__OX_FLOAT && *(const unsigned char *)&one) {
        memcpy(t->f, raw, t->count * 4);   /* a little-endian host: the bytes are the floats */
        return;
    }
    for (k = 0; k < t->count; k++) {
        uint64_t u = dl__pb_le(raw + k * (size_t)es, es);
        switch (dtype) {
        case DL__OX_FLOAT: { uint32_t w = (uint32_t)u; memcpy(&t->f[k], &w, 4); break; }
        case DL__OX_FLOAT16: t->f[k] = dl__half((unsigned)u); break;
        case DL__OX_DOUBLE: { double d; memcpy(&d, &u, 8); t->f[k] = (float)d; break; }
        case DL__OX_INT8: t->i[k] = (int8_t)u; break;
        case DL__OX_INT16: t->i[k] = (int16_t)u; break;
        case DL__OX_INT32: t->i[k] = (int32_t)u; break;
        default: t->i[k] = (int64_t)u; break;
        }
    }
}
/* The typed field (already counted) into t; DL_ERR_NOMEM for the scratch copy. */
static int dl__ox_decode_typed(dl__ox_t *t, int dtype, const unsigned char *m, size_t n, uint32_t field, int kind) {
    void *tmp;
    size_t k;
    if (dtype == DL__OX_FLOAT) { dl__pb_repeated(m, n, field, kind, t->f); return DL_OK; }
    if (t->isint && dtype != DL__OX_INT32 && dtype != DL__OX_INT16 && dtype != DL__OX_INT8) { dl__pb_repeated(m, n, field, kind, t->i); return DL_OK; }
    if (!(tmp = dl__calloc(t->count ? t->count : 1, 8))) return DL_ERR_NOMEM;
    dl__pb_repeated(m, n, field, kind, tmp);
    for (k = 0; k < t->count; k++) {    /* narrower types travel as varints or doubles */
        int64_t v = ((int64_t *)tmp)[k];
        if (dtype == DL__OX_DOUBLE) t->f[k] = (float)((double *)tmp)[k];
        else if (dtype == DL__OX_FLOAT16) t->f[k] = dl__half((unsigned)v & 0xffff);
        else t->i[k] = dtype == DL__OX_INT32 ? (int32_t)v : dtype == DL__OX_INT16 ? (int16_t)v : (int8_t)v;
    }
    DL_FREE(tmp);
    return DL_OK;
}

/* Decodes a TensorProto: sizes checked against dims and type; float16 and
   double become float, every integer type int64. */
static int dl__ox_tensor(dl__ox *ox, const unsigned char *m, size_t n, dl__ox_t *t, dl__str *name) {
    static const signed char esize[14] = { 0, 4, 1, 1, 2, 2, 4, 8, 0, 1, 2, 8, 4, 8 };
    dl__pb b = dl__pb_of(m, n);
    dl__pbf f;
    int64_t dims[DL__OX_MAXR];
    const unsigned char *raw = NULL;
    unsigned char *ext = NULL;
    size_t rawn = 0, k, cnt;
    long nd = dl__pb_repeated(m, n, 1, 0, NULL), nv = 0;
    int dtype = 0, external = 0, r, rc, isint, es, kind;
    uint32_t field;
    memset(t, 0, sizeof *t);
    if (name) { name->p = ""; name->n = 0; }
    while ((r = dl__pb_next(&b, &f)) > 0) {
        if (f.field == 2 && f.wire == 0) dtype = (int)f.v;
        else if (f.field == 8 && f.wire == 2 && name) { name->p = (const char *)f.s; name->n = f.n; }
        else if (f.field == 9 && f.wire == 2) { raw = f.s; rawn = f.n; }
        else if (f.field == 14 && f.wire == 0) external = f.v == 1;
        else if (f.field == 3) return dl__ox_unsup(ox, "segmented tensors");
    }
    if (r < 0 || nd < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "malformed tensor");
    if (nd > DL__OX_MAXR) return dl__ox_unsup(ox, "a tensor of rank %ld", nd);
    dl__pb_repeated(m, n, 1, 0, dims);
    if (dtype < 1 || dtype > 13 || !esize[dtype]) return dl__ox_unsup(ox, "tensor data type %d", dtype);
    isint = dtype != DL__OX_FLOAT && dtype != DL__OX_FLOAT16 && dtype != DL__OX_DOUBLE;
    es = esize[dtype];
    for (k = 0, cnt = 1; k < (size_t)nd; k++) {     /* sizes are checked before anything is allocated */
        if (dims[k] < 0 || (dims[k] && cnt > (size_t)DL__OX_MAXCOUNT / (size_t)dims[k]))
            return dl__ox_failf(ox, DL_ERR_FORMAT, "tensor dims negative or over 2^31 elements");
        cnt *= (size_t)dims[k];
    }
    if (external) {
        if ((rc = dl__ox_external(ox, m, n, cnt * (size_t)es, &ext)) != DL_OK) return rc;
        raw = ext; rawn = cnt * (size_t)es;
    }
    if (raw && rawn != cnt * (size_t)es)
        return dl__ox_failf(ox, DL_ERR_FORMAT, "raw_data holds %lu bytes for %lu elements of %d bytes",
                            (unsigned long)rawn, (unsigned long)cnt, es);
    field = dtype == DL__OX_FLOAT ? 4 : dtype == DL__OX_DOUBLE ? 10 : dtype == DL__OX_INT64 ? 7 :
            dtype == DL__OX_UINT32 || dtype == DL__OX_UINT64 ? 11 : 5;
    kind = dtype == DL__OX_FLOAT ? 4 : dtype == DL__OX_DOUBLE ? 8 : 0;
    if (!raw && ((nv = dl__pb_repeated(m, n, field, kind, NULL)) < 0 || (size_t)nv != cnt))
        return dl__ox_failf(ox, DL_ERR_FORMAT, "tensor holds %ld values for %lu elements", nv, (unsigned long)cnt);
    if ((rc = dl__ox_t_alloc(t, isint, (int)nd, dims)) != DL_OK) { DL_FREE(ext); return dl__ox_failf(ox, rc, "out of memory"); }
    if (raw) dl__ox_decode_raw(t, dtype, raw, es);
    else if ((rc = dl__ox_decode_typed(t, dtype, m, n, field, kind)) != DL_OK) { dl__ox_t_free(t); return dl__ox_failf(ox, rc, "out of memory"); }
    DL_FREE(ext);
    return DL_OK;
}

static dl__str dl__ox_intern(dl__ox *ox, const char *a, unsigned id, dl__str s) {
    dl__str r = { NULL, 0 };
    size_t len = s.n + 24;
    char *blk = (char *)DL_MALLOC(sizeof(void *) + len);
    if (!blk) return r;
    memcpy(blk, &ox->arena, sizeof(void *));
    ox->arena = blk;
    blk += sizeof(void *);
    snprintf(blk, len, "%s%u/%.*s", a, id, (int)s.n, s.p);
    r.p = blk; r.n = strlen(blk);
    return r;
}
/* A name inside an inlined function, as the graph knows it. */
static dl__str dl__ox_rename(dl__ox *ox, const dl__ox_call *c, dl__str s) {
    dl__str none = { "", 0 };
    int k;
    if (!c || !s.n) return s;
    for (k = 0; k < c->n_in; k++) if (c->in[k].n == s.n && !memcmp(c->in[k].p, s.p, s.n)) return k < c->caller->n_in ? c->caller->in[k] : none;
    for (k = 0; k < c->n_out; k++) if (c->out[k].n == s.n && !memcmp(c->out[k].p, s.p, s.n)) return k < c->caller->n_out ? c->caller->out[k] : none;
    return dl__ox_intern(ox, "~f", c->id, s);
}
/* An attribute that refers to the caller's (ref_attr_name): the caller's
   attribute, else the function's default, else none (NULL). */
static const unsigned char *dl__ox_ref_attr(const dl__ox_call *c, dl__str ref, size_t *len) {
    dl__pb b;
    dl__pbf f;
    int k;
    for (k = 0; k < c->caller->n_attr; k++)
        if (c->caller->attr_name[k].n == ref.n && !memcmp(c->caller->attr_name[k].p, ref.p, ref.n)) { *len = c->caller->attr_len[k]; return c->caller->attr[k]; }
    for (b = dl__pb_of(c->fn, c->fn_len); dl__pb_next(&b, &f) > 0;)
        if (f.field == 11 && f.wire == 2) {
            dl__pb a = dl__pb_of(f.s, f.n);
            dl__pbf g;
            while (dl__pb_next(&a, &g) > 0)
                if (g.field == 1 && g.wire == 2 && g.n == ref.n && !memcmp(g.s, ref.p, ref.n)) { *len = f.n; return f.s; }
        }
    return NULL;
}

/* A NodeProto into n (strings point into the model bytes, or the arena when
   inlined through call); every attribute message is checked here, so the
   getters below can trust them. */
static int dl__ox_node_parse(dl__ox *ox, const unsigned char *m, size_t len, dl__ox_node *n, const dl__ox_call *call) {
    dl__pb b = dl__pb_of(m, len);
    dl__pbf f;
    int r;
    memset(n, 0, sizeof *n);
    n->domain.p = n->name.p = n->op.p = "";
    while ((r = dl__pb_next(&b, &f)) > 0) {
        dl__str s;
        s.p = (const char *)f.s; s.n = f.n;
        if (f.wire != 2) continue;
        if (f.field == 1 || f.field == 2) {
            int *cnt = f.field == 1 ? &n->n_in : &n->n_out;
            if (*cnt == DL__OX_MAXIO) return dl__ox_unsup(ox, "more than %d inputs or outputs", DL__OX_MAXIO);
            s = dl__ox_rename(ox, call, s);
            if (!s.p) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
            (f.field == 1 ? n->in : n->out)[(*cnt)++] = s;
        } else if (f.field == 3) n->name = s;
        else if (f.field == 4) n->op = s;
        else if (f.field == 7) n->domain = s;
        else if (f.field == 5) {
            dl__pb a = dl__pb_of(f.s, f.n);
            dl__pbf g;
            dl__str ref = { NULL, 0 };
            const unsigned char *am = f.s;
            size_t alen = f.n;
            if (n->n_attr == DL__OX_MAXIO) return dl__ox_unsup(ox, "more than %d attributes", DL__OX_MAXIO);
            n->attr_name[n->n_attr].p = "";
            while ((r = dl__pb_next(&a, &g)) > 0) {
                if (g.field == 1 && g.wire == 2) { n->attr_name[n->n_attr].p = (const char *)g.s; n->attr_name[n->n_attr].n = g.n; }
                if (g.field == 21 && g.wire == 2) { ref.p = (const char *)g.s; ref.n = g.n; }
            }
            if (r < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "malformed attribute");
            if (ref.p && !call) return dl__ox_failf(ox, DL_ERR_FORMAT, "an attribute reference (ref_attr_name) outside a function");
            if (ref.p && !(am = dl__ox_ref_attr(call, ref, &alen))) continue;     /* not given, no default: absent */
            if (dl__pb_repeated(am, alen, 8, 0, NULL) < 0 || dl__pb_repeated(am, alen, 7, 4, NULL) < 0)
                return dl__ox_failf(ox, DL_ERR_FORMAT, "malformed attribute");
            n->attr[n->n_attr] = am; n->attr_len[n->n_attr++] = alen;
        }
    }
    return r < 0 ? dl__ox_failf(ox, DL_ERR_FORMAT, "malformed node") : DL_OK;
}

/* Attribute name's field `field` (wire 2 or scalar): 1 found, 0 absent. */
static int dl__ox_attr(const dl__ox_node *n, const char *name, uint32_t field, dl__pbf *out, int *idx) {
    int k;
    for (k = 0; k < n->n_attr; k++)
        if (dl__str_is(n->attr_name[k], name)) {
            dl__pb a = dl__pb_of(n->attr[k], n->attr_len[k]);
            dl__pbf g;
            if (idx) *idx = k;
            while (dl__pb_next(&a, &g) > 0)
                if (g.field == field) { *out = g; return 1; }
            if (!field) return 1;
        }
    return 0;
}
static int64_t dl__ox_ai(const dl__ox_node *n, const char *name, int64_t def) {
    dl__pbf f;
    return dl__ox_attr(n, name, 3, &f, NULL) && f.wire == 0 ? (int64_t)f.v : def;
}
static float dl__ox_af(const dl__ox_node *n, const char *name, float def) {
    dl__pbf f;
    float x;
    uint32_t u;
    if (!dl__ox_attr(n, name, 2, &f, NULL) || f.wire != 5) return def;
    u = (uint32_t)f.v;
    memcpy(&x, &u, 4);
    return x;
}
static dl__str dl__ox_as(const dl__ox_node *n, const char *name, const char *def) {
    dl__pbf f;
    dl__str s;
    if (dl__ox_attr(n, name, 4, &f, NULL) && f.wire == 2) { s.p = (const char *)f.s; s.n = f.n; }
    else { s.p = def; s.n = strlen(def); }
    return s;
}
/* ints attribute: the count (at most max are stored), -1 when absent. */
static int dl__ox_aints(const dl__ox_node *n, const char *name, int64_t *out, int max) {
    dl__pbf f;
    int k;
    long c;
    if (!dl__ox_attr(n, name, 0, &f, &k)) return -1;
    c = dl__pb_repeated(n->attr[k], n->attr_len[k], 8, 0, NULL);
    if (c > max) return (int)(c > 1000 ? 1000 : c);
    dl__pb_repeated(n->attr[k], n->attr_len[k], 8, 0, out);
    return (int)c;
}

/* ---- the value table: ONNX names to layers or constants ---- */
static uint32_t dl__fnv32(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    while (n--) h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}
static dl__ox_val *dl__ox_find(dl__ox *ox, dl__str name) {
    uint32_t h;
    if (!ox->hcap || !name.n) return NULL;
    for (h = dl__fnv32(name.p, name.n) & (uint32_t)(ox->hcap - 1); ox->hash[h] >= 0; h = (h + 1) & (uint32_t)(ox->hcap - 1)) {
        dl__ox_val *v = &ox->v[ox->hash[h]];
        if (v->name.n == name.n && !memcmp(v->name.p, name.p, name.n)) return v;
    }
    return NULL;
}
/* A new value (or the existing one of that name, emptied: ONNX names are
   assigned once, so that only happens in a broken model, caught later). */
static dl__ox_val *dl__ox_new(dl__ox *ox, dl__str name) {
    dl__ox_val *v = dl__ox_find(ox, name);
    int k;
    uint32_t h;
    if (v) { dl__ox_t_free(&v->t); v->kind = DL__OX_NONE; v->l = NULL; v->whole = 0; v->refused = NULL; return v; }
    if (ox->nv == ox->capv) {
        int nc = ox->capv ? 2 * ox->capv : 64;
        if (!dl__grow((void **)&ox->v, (size_t)ox->capv, (size_t)nc, sizeof *ox->v)) return NULL;
        ox->capv = nc;
    }
    if (2 * (ox->nv + 1) > ox->hcap) {      /* keep the table at most half full */
        int nh = ox->hcap ? 2 * ox->hcap : 128;
        int *nt = (int *)dl__calloc((size_t)nh, sizeof(int));
        if (!nt) return NULL;
        DL_FREE(ox->hash);
        ox->hash = nt; ox->hcap = nh;
        for (k = 0; k < nh; k++) nt[k] = -1;
        for (k = 0; k < ox->nv; k++) {
            for (h = dl__fnv32(ox->v[k].name.p, ox->v[k].name.n) & (uint32_t)(nh - 1); nt[h] >= 0; h = (h + 1) & (uint32_t)(nh - 1)) {}
            nt[h] = k;
        }
    }
    v = &ox->v[ox->nv];
    memset(v, 0, sizeof *v);
    v->name = name;
    if (name.n) {
        for (h = dl__fnv32(name.p, name.n) & (uint32_t)(ox->hcap - 1); ox->hash[h] >= 0; h = (h + 1) & (uint32_t)(ox->hcap - 1)) {}
        ox->hash[h] = ox->nv;
    }
    ox->nv++;
    return v;
}

/* The node's input i: NULL when absent (optional inputs are empty names). */
static dl__ox_val *dl__ox_in(dl__ox *ox, int i) {
    return i < ox->node->n_in && ox->node->in[i].n ? dl__ox_find(ox, ox->node->in[i]) : NULL;
}
static const dl__ox_t *dl__ox_cin(dl__ox *ox, int i) {
    dl__ox_val *v = dl__ox_in(ox, i);
    return v && v->kind == DL__OX_CONST ? &v->t : NULL;
}
/* ONNX dims of a value: a layer's first dim is the batch. */
static int dl__ox_dims(const dl__ox *ox, const dl__ox_val *v, int64_t *d) {
    int k;
    if (v->kind == DL__OX_CONST) { memcpy(d, v->t.dims, sizeof v->t.dims); return v->t.ndim; }
    if (v->whole) { memcpy(d, v->wd, sizeof v->wd); return v->rank; }
    d[0] = ox->batch;
    for (k = 1; k < v->rank; k++) d[k] = v->l->shape[k - 1];
    return v->rank;
}
/* Takes a new layer: named "~k" until the end, when layers get their ONNX names. */
static int dl__ox_take(dl__ox *ox, dl_layer *l) {
    char nm[16];
    if (!l) return dl__ox_failf(ox, DL_ERR_SHAPE, "%s", dl_net_error(ox->net));
    snprintf(nm, sizeof nm, "~%d", ++ox->helpers);
    dl_layer_set_name(l, nm);
    return DL_OK;
}
/* Binds output i of the node to layer l of ONNX rank r: [batch, l->shape]
   (wd NULL) or the whole tensor wd. */
static int dl__ox_bind(dl__ox *ox, int i, dl_layer *l, int r, const int64_t *wd) {
    int64_t w[DL__OX_MAXR];
    dl__ox_val *v;
    if (wd) memcpy(w, wd, (size_t)r * sizeof *wd);     /* wd may be in ox->v, which dl__ox_new may move */
    if (!(v = dl__ox_new(ox, ox->node->out[i]))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    v->kind = DL__OX_LAYER; v->l = l; v->rank = r; v->whole = wd != NULL;
    if (wd) memcpy(v->wd, w, (size_t)r * sizeof *wd);
    return DL_OK;
}
static int dl__ox_out_layer(dl__ox *ox, int i, dl_layer *l, int rank) {
    int rc = dl__ox_take(ox, l);
    return rc ? rc : dl__ox_bind(ox, i, l, rank, NULL);
}
/* A new layer of x's ONNX dims and form (elementwise ops). */
static int dl__ox_out_like(dl__ox *ox, int i, dl_layer *l, const dl__ox_val *x) {
    int rc = dl__ox_take(ox, l);
    return rc ? rc : dl__ox_bind(ox, i, l, x->rank, x->whole ? x->wd : NULL);
}
static int dl__ox_out_const(dl__ox *ox, int i, dl__ox_t *t) {   /* takes t */
    dl__ox_val *v = dl__ox_new(ox, ox->node->out[i]);
    if (!v) { dl__ox_t_free(t); return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory"); }
    v->kind = DL__OX_CONST; v->t = *t;
    return DL_OK;
}
static int dl__ox_alias(dl__ox *ox, int i, const dl__ox_val *src) {
    dl__ox_val s = *src, *v;
    if (s.kind == DL__OX_CONST) {
        dl__ox_t t;
        int rc = dl__ox_t_alloc(&t, s.t.isint, s.t.ndim, s.t.dims);
        if (rc) return dl__ox_failf(ox, rc, "out of memory");
        if (t.isint) memcpy(t.i, s.t.i, t.count * sizeof *t.i);
        else memcpy(t.f, s.t.f, t.count * sizeof *t.f);
        return dl__ox_out_const(ox, i, &t);
    }
    if (!(v = dl__ox_new(ox, ox->node->out[i]))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    v->kind = s.kind; v->l = s.l; v->rank = s.rank; v->whole = s.whole;
    memcpy(v->wd, s.wd, sizeof v->wd);
    return DL_OK;
}
/* Layer l as shape d[0..n-1] (1 to 3 dims of its size): a view unless it is already. */
static int dl__ox_shape_as(dl__ox *ox, dl_layer **l, int n, const int64_t *d) {
    int s[3], k;
    for (k = 0; k < n; k++) {
        if (d[k] < 1 || d[k] > INT_MAX) return dl__ox_unsup(ox, "a dim of %lld", (long long)d[k]);
        s[k] = (int)d[k];
    }
    if (n == (*l)->ndim && !memcmp(s, (*l)->shape, (size_t)n * sizeof(int))) return DL_OK;
    *l = dl_reshape(*l, n, s);
    return dl__ox_take(ox, *l);
}
/* Views layer l (per-sample size unchanged) with ONNX dims d of rank r. */
static int dl__ox_view(dl__ox *ox, dl_layer **l, int r, const int64_t *d) {
    static const int64_t one = 1;
    if (r - 1 > 3) return dl__ox_unsup(ox, "rank %d (dl.h has up to 3 dims per sample)", r);
    return dl__ox_shape_as(ox, l, r > 1 ? r - 1 : 1, r > 1 ? d + 1 : &one);
}
/* The two forms of a layer value. With the batch first it runs for any
   batch; whole (the batch is 1) it takes ops that mix across ONNX's first
   dim: a constant that varies along it, a transpose or reshape that moves
   it, softmax or concat along it. Either becomes the other by a view. */
static int dl__ox_batched(dl__ox *ox, dl__ox_val *v) {
    dl_layer *l = v->l;
    int rc;
    if (v->kind != DL__OX_LAYER || !v->whole) return DL_OK;
    if (v->rank < 1 || v->wd[0] != 1)
        return dl__ox_unsup(ox, "a first dim of %lld where this op wants the batch", v->rank ? (long long)v->wd[0] : 0LL);
    if ((rc = dl__ox_view(ox, &l, v->rank, v->wd))) return rc;
    v->l = l; v->whole = 0;
    return DL_OK;
}
/* why: what needs the whole tensor, said when the batch is not 1 */
static int dl__ox_whole(dl__ox *ox, dl__ox_val *v, const char *why) {
    if (v->kind != DL__OX_LAYER || v->whole) return DL_OK;
    if (ox->batch != 1) return dl__ox_unsup(ox, "%s", why);
    dl__ox_dims(ox, v, v->wd);
    v->whole = 1;
    return DL_OK;
}
/* Binds output i, of ONNX dims d (rank r), to l: whole, or viewed with the batch first. */
static int dl__ox_out_dims(dl__ox *ox, int i, dl_layer *l, int r, const int64_t *d, int whole) {
    int rc;
    if (!whole && (rc = dl__ox_view(ox, &l, r, d))) return rc;
    return dl__ox_bind(ox, i, l, r, whole ? d : NULL);
}
/* The dims one sample of v holds (whole: all; else those after the batch)
   and where ONNX axis a falls among them (-1: the batch). */
static int dl__ox_sample(const dl__ox *ox, const dl__ox_val *v, int64_t a, int64_t *s, int *ax) {
    int64_t d[DL__OX_MAXR];
    int r = dl__ox_dims(ox, v, d), o = v->kind == DL__OX_LAYER && !v->whole, k;
    for (k = o; k < r; k++) s[k - o] = d[k];
    *ax = (int)a - o;
    return r - o;
}
/* p: the products of s[0..n) before j0, from j0 to j1, and from j1 on */
static void dl__ox_split(const int64_t *s, int n, int j0, int j1, int64_t *p) {
    int k;
    p[0] = p[1] = p[2] = 1;
    for (k = 0; k < n; k++) p[k < j0 ? 0 : k < j1 ? 1 : 2] *= s[k];
}
/* l, a sample of (pre, mid, post) = p, as (mid, pre * post) (or as it is
   when it already starts with mid): an op along dim 0 (softmax, concat,
   slices) then acts along mid. */
static int dl__ox_front(dl__ox *ox, dl_layer **l, const int64_t *p) {
    static const int swap[3] = { 1, 0, 2 };
    int64_t d[2];
    int rc;
    d[0] = p[1]; d[1] = p[0] * p[2];
    if (p[0] == 1 && (*l)->shape[0] == p[1]) return DL_OK;
    if (p[0] > 1) {
        if ((rc = dl__ox_shape_as(ox, l, 3, p))) return rc;
        *l = dl_transpose(*l, swap);
        if ((rc = dl__ox_take(ox, *l))) return rc;
    }
    return dl__ox_shape_as(ox, l, 2, d);
}
/* back from (mid', pre * post) to (pre, mid', post), p = (pre, mid', post) */
static int dl__ox_unfront(dl__ox *ox, dl_layer **l, const int64_t *p) {
    static const int swap[3] = { 1, 0, 2 };
    int64_t d[3];
    int rc;
    if (p[0] == 1) return DL_OK;
    d[0] = p[1]; d[1] = p[0]; d[2] = p[2];
    if ((rc = dl__ox_shape_as(ox, l, 3, d))) return rc;
    *l = dl_transpose(*l, swap);
    return dl__ox_take(ox, *l);
}
/* Layer l's parameter `what`, which must hold count floats; NULL (and ox->err) if not. */
static float *dl__ox_param(dl__ox *ox, dl_layer *l, const char *what, size_t count) {
    char nm[64];
    dl_param *p;
    snprintf(nm, sizeof nm, "%s.%s", dl_layer_name(l), what);
    if (!(p = dl_net_find_param(ox->net, nm)) || (size_t)p->size != count) {
        dl__ox_failf(ox, DL_ERR_SHAPE, "parameter %s: %d floats for %lu", nm, p ? p->size : 0, (unsigned long)count);
        return NULL;
    }
    return p->data;
}
static int dl__ox_setp(dl__ox *ox, dl_layer *l, const char *what, const float *src, size_t count) {
    float *p = dl__ox_param(ox, l, what, count);
    if (!p) return DL_ERR_SHAPE;
    memcpy(p, src, count * sizeof(float));
    return DL_OK;
}
static int64_t dl__ox_norm_axis(int64_t a, int r) { return a < 0 ? a + r : a; }

/* Flat index into t (dims right-aligned, broadcast) of element `flat` of a tensor with dims d, rank r. */
static size_t dl__ox_bcast(const int64_t *d, int r, const dl__ox_t *t, size_t flat) {
    size_t idx = 0, stride = 1;
    int k;
    for (k = r - 1; k >= 0; k--) {
        size_t c = (size_t)(flat % (size_t)d[k]);
        int tk = k - (r - t->ndim);
        flat /= (size_t)d[k];
        if (tk >= 0) {
            if (t->dims[tk] != 1) idx += c * stride;
            stride *= (size_t)t->dims[tk];
        }
    }
    return idx;
}
/* The broadcast result of dims a and b: rank, or -1 when they do not broadcast. */
static int dl__ox_bdims(const int64_t *a, int ra, const int64_t *b, int rb, int64_t *o) {
    int r = ra > rb ? ra : rb, k;
    for (k = 0; k < r; k++) {
        int64_t x = k - (r - ra) >= 0 ? a[k - (r - ra)] : 1, y = k - (r - rb) >= 0 ? b[k - (r - rb)] : 1;
        if (x != y && x != 1 && y != 1) return -1;
        o[k] = x == 1 ? y : x;
    }
    return r;
}

/* ---- folding: shape arithmetic on constants ---- */
static int dl__ox_symcheck(dl__ox *ox, const dl__ox_t *t) {
    size_t k;
    if (t->isint) for (k = 0; k < t->count; k++)
        if (t->i[k] == DL__OX_SYM) return dl__ox_unsup(ox, "arithmetic on the batch size (known only at run time)");
    return DL_OK;
}
/* Add Sub Mul Div on constants, with broadcasting */
static int dl__ox_fold_binary(dl__ox *ox, const dl__ox_t *a, const dl__ox_t *b, int op) {
    int64_t d[DL__OX_MAXR];
    dl__ox_t t;
    size_t k;
    int r = dl__ox_bdims(a->dims, a->ndim, b->dims, b->ndim, d), rc;
    if (r < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "shapes do not broadcast");
    if (a->isint != b->isint) return dl__ox_unsup(ox, "mixed integer and float operands");
    if (dl__ox_symcheck(ox, a) || dl__ox_symcheck(ox, b)) return DL_ERR_UNSUPPORTED;
    if ((rc = dl__ox_t_alloc(&t, a->isint, r, d))) return dl__ox_failf(ox, rc, "folding: too large");
    for (k = 0; k < t.count; k++) {
        size_t i = dl__ox_bcast(d, r, a, k), j = dl__ox_bcast(d, r, b, k);
        if (t.isint) {
            int64_t x = a->i[i], y = b->i[j];
            if (op == 3 && (y == 0 || (x == INT64_MIN && y == -1))) { dl__ox_t_free(&t); return dl__ox_unsup(ox, "integer division by zero"); }
            t.i[k] = op == 0 ? (int64_t)((uint64_t)x + (uint64_t)y) : op == 1 ? (int64_t)((uint64_t)x - (uint64_t)y) :
                     op == 2 ? (int64_t)((uint64_t)x * (uint64_t)y) : x / y;
        } else {
            float x = a->f[i], y = b->f[j];
            t.f[k] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
        }
    }
    return dl__ox_out_const(ox, 0, &t);
}

/* ---- the op table: one row per ONNX op ---- */
typedef int (*dl__ox_fn)(dl__ox *ox, const dl__ox_node *n);
typedef struct dl__ox_op {
    const char *op;
    const char *attrs;          /* the attributes it understands: any other is UNSUPPORTED */
    dl__ox_fn fn;
} dl__ox_op;

/* Input i, a layer in either form (elementwise ops) */
static int dl__ox_any_in(dl__ox *ox, int i, dl__ox_val **v) {
    *v = dl__ox_in(ox, i);
    if (!*v) return dl__ox_unsup(ox, "input %d is missing", i);
    if ((*v)->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "input %d is a constant (this op takes a layer there)", i);
    return DL_OK;
}
static int dl__ox_combine(dl__ox *ox, dl__ox_val *a, dl__str an, dl__ox_val *b, dl__str bn, int op, dl__ox_val *o);
static int dl__ox_const_as(dl__ox *ox, const dl__ox_t *t, dl__str name, int n, const int64_t *d, dl_layer **l);
static int dl__ox_const_for(dl__ox *ox, const dl__ox_t *t, dl__str name, int n, const int64_t *d, dl_layer *feed, dl_layer **l);
/* Input i, a layer with the batch first */
static int dl__ox_layer_in(dl__ox *ox, int i, dl__ox_val **v) {
    int rc = dl__ox_any_in(ox, i, v);
    return rc ? rc : dl__ox_batched(ox, *v);
}

/* Relu Sigmoid Tanh LeakyRelu Elu HardSigmoid HardSwish Softplus Sqrt Selu: one layer each */
static int dl__ox_unary(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    dl_layer *l;
    int rc;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (dl__str_is(n->op, "Relu")) l = dl_relu(x->l);
    else if (dl__str_is(n->op, "Sigmoid")) l = dl_sigmoid(x->l);
    else if (dl__str_is(n->op, "Tanh")) l = dl_tanh(x->l);
    else if (dl__str_is(n->op, "LeakyRelu")) l = dl_leaky_relu(x->l, dl__ox_af(n, "alpha", 0.01f));
    else if (dl__str_is(n->op, "HardSigmoid")) l = dl_hard_sigmoid(x->l, dl__ox_af(n, "alpha", 0.2f), dl__ox_af(n, "beta", 0.5f));
    else if (dl__str_is(n->op, "HardSwish")) l = dl_hard_swish(x->l);
    else if (dl__str_is(n->op, "Softplus")) l = dl_softplus(x->l);
    else if (dl__str_is(n->op, "Sqrt")) l = dl_sqrt(x->l);
    else if (dl__str_is(n->op, "Selu"))      /* ONNX's alpha and gamma are the layer's alpha and beta */
        l = dl__unary2(DL_OP_SELU, x->l, dl__ox_af(n, "alpha", 1.67326319217681884765625f), dl__ox_af(n, "gamma", 1.05070102214813232421875f), 0);
    else l = dl_elu(x->l, dl__ox_af(n, "alpha", 1.0f));
    return dl__ox_out_like(ox, 0, l, x);
}

/* Clip: min and max are attributes before opset 11, constant inputs from it
   on; absent bounds are float's (as ONNX's defaults) */
static int dl__ox_clip(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    float b[2];
    int rc, k;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    b[0] = -FLT_MAX; b[1] = FLT_MAX;
    for (k = 0; k < 2; k++) {
        const dl__ox_t *t = dl__ox_cin(ox, k + 1);
        if (ox->opset < 11) b[k] = dl__ox_af(n, k ? "max" : "min", b[k]);
        else if (n->n_in > k + 1 && n->in[k + 1].n) {
            if (!t || t->count != 1) return dl__ox_unsup(ox, "a %s that is not a constant scalar", k ? "max" : "min");
            b[k] = (float)dl__ox_get(t, 0);
        }
    }
    if (!(b[0] <= b[1])) return dl__ox_unsup(ox, "min %g over max %g (or NaN)", (double)b[0], (double)b[1]);
    return dl__ox_out_like(ox, 0, dl_clip(x->l, b[0], b[1]), x);
}

/* Dropout's mask: all true (1), a constant fed by x, bound to output 1;
   in training mode with a ratio p, m = dropout(that) (0 or 1 / (1 - p))
   gives y = x m and the mask clip(m, 0, 1): one draw for both. */
static int dl__ox_dropout_mask(dl__ox *ox, const dl__ox_val *x, float p, int train) {
    dl__ox_t t;
    dl_layer *l = x->l, *m;
    dl__str none = { "", 0 };
    int64_t sh[3];
    size_t k;
    int rc, isc = x->kind == DL__OX_CONST;
    if (train && isc) return dl__ox_unsup(ox, "training mode on a constant");
    for (k = 0; !isc && k < (size_t)l->ndim; k++) sh[k] = l->shape[k];
    if ((rc = dl__ox_t_alloc(&t, 0, isc ? x->t.ndim : l->ndim, isc ? x->t.dims : sh))) return dl__ox_failf(ox, rc, "too large");
    for (k = 0; k < t.count; k++) t.f[k] = 1.0f;
    if (isc) return dl__ox_out_const(ox, 1, &t);
    rc = dl__ox_const_for(ox, &t, none, l->ndim, sh, x->l, &m);
    dl__ox_t_free(&t);
    if (!rc && train && !(rc = dl__ox_take(ox, m = dl_dropout(m, p))))
        rc = dl__ox_out_like(ox, 0, dl_mul(x->l, m), x);
    if (!rc && train && ox->node->n_out > 1 && ox->node->out[1].n) rc = dl__ox_take(ox, m = dl_clip(m, 0, 1));
    if (rc || ox->node->n_out < 2 || !ox->node->out[1].n) return rc;
    return dl__ox_bind(ox, 1, m, x->rank, x->whole ? x->wd : NULL);
}
/* Identity; Dropout becomes a dropout layer, so fine-tuning here trains
   with it as the original did. ONNX's training_mode is dl.h's train
   argument: a Dropout drops under dl_forward(.., 1) and training steps,
   whatever its training_mode, and never under dl_predict. Its mask output
   is all true outside training; with training_mode 1 and a ratio over 0 it
   is the mask drawn for y (dl__ox_dropout_mask). */
static int dl__ox_identity(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0), xv;        /* xv: a copy, as making the mask may move ox->v */
    const dl__ox_t *ratio = dl__ox_cin(ox, 1), *train = dl__ox_cin(ox, 2);
    float p;
    int rc, training = n->n_in > 2 && n->in[2].n && (!train || (train->count && dl__ox_get(train, 0) != 0));
    if (!x) return dl__ox_unsup(ox, "no input");
    if (!dl__str_is(n->op, "Dropout")) return dl__ox_alias(ox, 0, x);
    if (!dl__ox_ai(n, "is_test", 1)) return dl__ox_unsup(ox, "is_test 0 (training mode)");
    if (training && !train) return dl__ox_unsup(ox, "a training_mode that is not a constant");
    if (n->n_in > 1 && n->in[1].n && (!ratio || ratio->isint || ratio->count != 1)) return dl__ox_unsup(ox, "a ratio that is not a constant");
    p = ratio && n->n_in > 1 && n->in[1].n ? ratio->f[0] : dl__ox_af(n, "ratio", 0.5f);
    xv = *x;
    x = &xv;
    if (training && p > 0 && p < 1) return dl__ox_dropout_mask(ox, x, p, 1);
    if (n->n_out > 1 && n->out[1].n && (rc = dl__ox_dropout_mask(ox, x, p, 0))) return rc;
    if (training || x->kind != DL__OX_LAYER || !(p >= 0 && p < 1)) return dl__ox_alias(ox, 0, x);
    return dl__ox_out_like(ox, 0, dl_dropout(x->l, p), x);
}

/* (C,L) as (C,1,L), so 1-d convolution and pooling run as 2-d */
static int dl__ox_as2d(dl__ox *ox, dl__ox_val *x, dl_layer **l) {
    int64_t d[4];
    *l = x->l;
    if (x->rank == 4) return DL_OK;
    if (x->rank != 3) return dl__ox_unsup(ox, "%d-d input (1-d and 2-d only)", x->rank - 2);
    d[0] = 1; d[1] = x->l->shape[0]; d[2] = 1; d[3] = x->l->shape[1];
    return dl__ox_view(ox, l, 4, d);
}
/* strides, dilations, pads and auto_pad of Conv, ConvTranspose and the
   pools over sd spatial dims of sizes in[] (kernel k): pads as pb (the
   start of each dim) and pe (the end). SAME_* pads are resolved here
   (ONNX's rule: the odd one at the end for UPPER, the start for LOWER). */
static int dl__ox_window_nd(dl__ox *ox, const dl__ox_node *n, int sd, const int64_t *in, const int *k, int *s, int *pb, int *pe, int *dil) {
    int64_t v[8];
    int c, j;
    dl__str ap = dl__ox_as(n, "auto_pad", "NOTSET");
    for (j = 0; j < sd; j++) { s[j] = 1; pb[j] = pe[j] = 0; dil[j] = 1; }
    if ((c = dl__ox_aints(n, "strides", v, 8)) >= 0) { if (c != sd) return dl__ox_unsup(ox, "strides of length %d", c); for (j = 0; j < c; j++) s[j] = (int)v[j]; }
    if ((c = dl__ox_aints(n, "dilations", v, 8)) >= 0) { if (c != sd) return dl__ox_unsup(ox, "dilations of length %d", c); for (j = 0; j < c; j++) dil[j] = (int)v[j]; }
    for (j = 0; j < sd; j++)
        if (s[j] < 1 || dil[j] < 1 || k[j] < 1) return dl__ox_failf(ox, DL_ERR_FORMAT, "kernel, strides and dilations must be positive");
    if (dl__str_is(ap, "SAME_UPPER") || dl__str_is(ap, "SAME_LOWER")) {
        for (j = 0; j < sd; j++) {
            int64_t out = (in[j] + s[j] - 1) / s[j], tot = (out - 1) * s[j] + (int64_t)(k[j] - 1) * dil[j] + 1 - in[j];
            if (tot < 0) tot = 0;
            if (tot > 65536) return dl__ox_unsup(ox, "auto_pad total padding %lld", (long long)tot);
            pb[j] = (int)(dl__str_is(ap, "SAME_UPPER") ? tot / 2 : tot - tot / 2);
            pe[j] = (int)tot - pb[j];
        }
        return DL_OK;
    }
    if (!dl__str_is(ap, "NOTSET") && !dl__str_is(ap, "VALID")) return dl__ox_unsup(ox, "auto_pad %.*s", (int)ap.n, ap.p);
    if (dl__str_is(ap, "NOTSET") && (c = dl__ox_aints(n, "pads", v, 8)) >= 0) {
        if (c != 2 * sd) return dl__ox_unsup(ox, "pads of length %d", c);
        for (j = 0; j < 2 * sd; j++)
            if (v[j] < 0 || v[j] > 65536) return dl__ox_unsup(ox, "pads %lld", (long long)v[j]);
        for (j = 0; j < sd; j++) { pb[j] = (int)v[j]; pe[j] = (int)v[j + sd]; }
    }
    return DL_OK;
}
/* The same for 1-d and 2-d: k/s/dil hold (h, w), p dl.h's (top, left,
   bottom, right); kin the spatial sizes. */
static int dl__ox_window(dl__ox *ox, const dl__ox_node *n, int rank, const int64_t *kin, int *k, int *s, int *p, int *dil) {
    int sd = rank - 2, o = 2 - sd, ks[2], ss[2], pb[2], pe[2], dd[2], j, rc;
    for (j = 0; j < sd; j++) ks[j] = k[j + o];
    if (o == 1 && k[0] < 1) return dl__ox_failf(ox, DL_ERR_FORMAT, "kernel, strides and dilations must be positive");
    if ((rc = dl__ox_window_nd(ox, n, sd, kin, ks, ss, pb, pe, dd))) return rc;
    for (j = 0; j < 2; j++) { s[j] = dil[j] = 1; p[j] = p[j + 2] = 0; }
    for (j = 0; j < sd; j++) { s[j + o] = ss[j]; dil[j + o] = dd[j]; p[j + o] = pb[j]; p[j + o + 2] = pe[j]; }
    return DL_OK;
}
/* back from (C',1,L') to ONNX rank 3 after a 1-d op */
static int dl__ox_out_nd(dl__ox *ox, dl_layer *l, int rank) {
    int64_t d[4];
    int rc;
    if (!l) return dl__ox_take(ox, l);
    if (rank == 3) {
        d[0] = 1; d[1] = l->shape[0]; d[2] = l->shape[2];
        if ((rc = dl__ox_take(ox, l)) || (rc = dl__ox_view(ox, &l, 3, d))) return rc;
    }
    return dl__ox_out_layer(ox, 0, l, rank);
}

/* A 3-d Conv or ConvTranspose of a whole (N, C, D, H, W): each output
   depth is a 2-d one over the input depths its kernel reaches (the taps),
   their slices stacked as channels, sample by sample and group by group
   (B = N * groups blocks of (T, C/groups)), so one grouped 2-d layer with
   the weights taken to match makes it; the outputs (N*F, H', W') are
   stacked along D. The 2-d layers hold copies of the weights, so
   fine-tuning unties them. */
static int dl__ox_conv3d(dl__ox *ox, const dl__ox_node *n, dl__ox_val *x, const dl__ox_t *w, const dl__ox_t *b, int tr) {
    static const int p102[3] = { 1, 0, 2 };
    int64_t d[5], v[3], o[5], op[3] = { 0, 0, 0 }, Do, od, t, G = dl__ox_ai(n, "group", 1), N, C, F, Cg, Fg, B, kk;
    int k[3], s[3], pb[3], pe[3], dil[3], j, rc, T, tap[64];
    dl_layer *l = x->l, *outs[64], *h;
    dl_conv_desc cd;
    memcpy(d, x->wd, sizeof d);
    N = d[0]; C = d[1];
    if (G < 1 || C % G || w->dims[tr ? 0 : 1] != (tr ? C : C / G)) return dl__ox_failf(ox, DL_ERR_FORMAT, "group %lld and weights that do not fit %lld channels", (long long)G, (long long)C);
    Cg = C / G; F = tr ? w->dims[1] * G : w->dims[0]; Fg = F / G; B = N * G;
    if (F % G || B * F > INT_MAX / 64) return dl__ox_failf(ox, DL_ERR_FORMAT, "%lld filters for group %lld", (long long)F, (long long)G);
    if (tr && (dl__ox_aints(n, "output_shape", v, 3) >= 0 || !dl__str_is(dl__ox_as(n, "auto_pad", "NOTSET"), "NOTSET")))
        return dl__ox_unsup(ox, "output_shape or auto_pad on a 3-d ConvTranspose");
    if (tr && (j = dl__ox_aints(n, "output_padding", op, 3)) >= 0 && j != 3) return dl__ox_unsup(ox, "output_padding of length %d", j);
    if (b && b->count != (size_t)F) return dl__ox_failf(ox, DL_ERR_FORMAT, "bias of %lu for %lld filters", (unsigned long)b->count, (long long)F);
    for (j = 0; j < 3; j++) k[j] = w->dims[j + 2] > 65536 ? 0 : (int)w->dims[j + 2];
    if ((rc = dl__ox_window_nd(ox, n, 3, d + 2, k, s, pb, pe, dil))) return rc;
    Do = tr ? (d[2] - 1) * s[0] + op[0] + (int64_t)dil[0] * (k[0] - 1) + 1 - pb[0] - pe[0]
            : (d[2] + pb[0] + pe[0] - (int64_t)dil[0] * (k[0] - 1) - 1) / s[0] + 1;
    if (Do < 1 || Do > 64 || k[0] > 64) return dl__ox_unsup(ox, "an output depth of %lld or a kernel depth over 64", (long long)Do);
    kk = (int64_t)k[1] * k[2];
    v[0] = N * C; v[1] = d[2]; v[2] = d[3] * d[4];      /* (N*C, D, HW) -> (D, N*C*HW): a depth is a row */
    if (N * C > 1 && ((rc = dl__ox_shape_as(ox, &l, 3, v)) || (rc = dl__ox_take(ox, l = dl_transpose(l, p102))))) return rc;
    v[0] = d[2]; v[1] = N * C * d[3] * d[4];
    if ((rc = dl__ox_shape_as(ox, &l, 2, v))) return rc;
    for (od = 0; od < Do; od++) {
        dl__ox_t wt, bt;
        dl_layer *parts[64];
        int np = 0, a;
        int64_t wd[4], e, d0[64];
        for (T = 0, a = 0; a < k[0]; a++) {         /* the taps, by input depth */
            int64_t kd = tr ? k[0] - 1 - a : a, num = tr ? od + pb[0] - kd * dil[0] : od * s[0] - pb[0] + kd * dil[0];
            t = tr ? (num % s[0] ? -1 : num / s[0]) : num;
            if (num >= 0 && t >= 0 && t < d[2]) { d0[T] = t; tap[T++] = (int)kd; }
        }
        if (!T) return dl__ox_unsup(ox, "an output depth no input reaches");
        for (a = 0; a < T; a = j) {                 /* runs of consecutive input depths, as one slice each */
            for (j = a + 1; j < T && d0[j] == d0[a] + (j - a); j++) {}
            parts[np] = d0[a] == 0 && j - a == d[2] ? l : dl_slice_channels(l, (int)d0[a], (int)d0[a] + (j - a));
            if (parts[np] != l && (rc = dl__ox_take(ox, parts[np]))) return rc;
            np++;
        }
        h = parts[0];
        if (np > 1 && (rc = dl__ox_take(ox, h = dl_concat(parts, np)))) return rc;
        v[0] = T; v[1] = B; v[2] = Cg * d[3] * d[4];       /* (T, B, Cg*HW) -> (B, T, Cg*HW) */
        if (B > 1 && ((rc = dl__ox_shape_as(ox, &h, 3, v)) || (rc = dl__ox_take(ox, h = dl_transpose(h, p102))))) return rc;
        v[0] = B * T * Cg; v[1] = d[3]; v[2] = d[4];
        if ((rc = dl__ox_shape_as(ox, &h, 3, v))) return rc;
        wd[0] = tr ? B * T * Cg : N * F; wd[1] = tr ? Fg : T * Cg; wd[2] = k[1]; wd[3] = k[2];
        if ((rc = dl__ox_t_alloc(&wt, 0, 4, wd))) return dl__ox_failf(ox, rc, "too large");
        for (e = 0; e < (int64_t)wt.count; e++) {  /* from (F, Cg, kd, ..) or (C, Fg, kd, ..) */
            int64_t r = e / kk, tc = tr ? r / Fg % (T * Cg) : r % (T * Cg), c = tc % Cg, kd = tap[tc / Cg];
            int64_t f = tr ? r % Fg : r / (T * Cg) % F, g = tr ? r / Fg / (T * Cg) % G : 0;
            wt.f[e] = w->f[((tr ? (g * Cg + c) * Fg + f : f * Cg + c) * k[0] + kd) * kk + e % kk];
        }
        memset(&cd, 0, sizeof cd);
        cd.filters = (int)(N * F); cd.groups = (int)B; cd.kernel_h = k[1]; cd.kernel_w = k[2]; cd.stride_h = s[1]; cd.stride_w = s[2];
        cd.pad_top = pb[1]; cd.pad_left = pb[2]; cd.pad_bottom = pe[1]; cd.pad_right = pe[2];
        cd.dilation_h = dil[1]; cd.dilation_w = dil[2]; cd.output_padding_h = (int)op[1]; cd.output_padding_w = (int)op[2];
        cd.no_bias = !b; cd.init = DL_INIT_ZEROS;
        h = tr ? dl_conv2d_transpose_ex(h, &cd) : dl_conv2d_ex(h, &cd);
        wd[0] = N * F;
        if (!(rc = dl__ox_take(ox, h)) && !(rc = dl__ox_setp(ox, h, "weight", wt.f, wt.count)) && b && !(rc = dl__ox_t_alloc(&bt, 0, 1, wd))) {
            for (e = 0; e < N * F; e++) bt.f[e] = b->f[e % F];
            rc = dl__ox_setp(ox, h, "bias", bt.f, bt.count);
            dl__ox_t_free(&bt);
        }
        dl__ox_t_free(&wt);
        if (rc) return rc;
        o[3] = h->shape[1]; o[4] = h->shape[2];
        v[0] = 1; v[1] = N * F * o[3] * o[4];
        if ((rc = dl__ox_shape_as(ox, &h, 2, v))) return rc;
        outs[od] = h;
    }
    h = outs[0];
    if (Do > 1 && (rc = dl__ox_take(ox, h = dl_concat(outs, (int)Do)))) return rc;
    v[0] = Do; v[1] = N * F; v[2] = o[3] * o[4];       /* (Do, N*F, H'W') -> (N*F, Do, H'W') */
    if (N * F > 1 && ((rc = dl__ox_shape_as(ox, &h, 3, v)) || (rc = dl__ox_take(ox, h = dl_transpose(h, p102))))) return rc;
    o[0] = N; o[1] = F; o[2] = Do;
    return dl__ox_bind(ox, 0, h, 5, o);
}

static int dl__ox_conv(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    const dl__ox_t *w = dl__ox_cin(ox, 1), *b = dl__ox_cin(ox, 2);
    dl_conv_desc cd;
    dl_layer *l;
    int k[2], s[2], p[4], dil[2], rc, sd;
    int64_t ks[8], in[2];
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (!w || w->isint) return dl__ox_unsup(ox, "weights that are not a float initializer");
    if (n->n_in > 2 && n->in[2].n && (!b || b->isint)) return dl__ox_unsup(ox, "a bias that is not a float initializer");
    if (x->whole && x->rank == 5 && w->ndim == 5) return dl__ox_conv3d(ox, n, x, w, b, 0);
    if ((rc = dl__ox_batched(ox, x))) return rc;
    sd = x->rank - 2;
    if (sd < 1 || sd > 2 || w->ndim != x->rank) return dl__ox_unsup(ox, "input rank %d, weight rank %d (1-d and 2-d only)", x->rank, w->ndim);
    k[0] = sd == 2 ? (int)w->dims[2] : 1; k[1] = (int)w->dims[w->ndim - 1];
    if ((rc = dl__ox_aints(n, "kernel_shape", ks, 8)) >= 0 && (rc != sd || ks[0] != w->dims[2] || ks[sd - 1] != w->dims[w->ndim - 1]))
        return dl__ox_failf(ox, DL_ERR_FORMAT, "kernel_shape does not match the weights");
    in[0] = x->l->shape[1]; in[1] = x->l->shape[x->l->ndim - 1];
    if ((rc = dl__ox_window(ox, n, x->rank, sd == 2 ? in : in + 1, k, s, p, dil))) return rc;
    memset(&cd, 0, sizeof cd);
    cd.filters = (int)w->dims[0]; cd.groups = (int)dl__ox_ai(n, "group", 1);
    cd.kernel_h = k[0]; cd.kernel_w = k[1]; cd.stride_h = s[0]; cd.stride_w = s[1];
    cd.pad_top = p[0]; cd.pad_left = p[1]; cd.pad_bottom = p[2]; cd.pad_right = p[3]; cd.dilation_h = dil[0]; cd.dilation_w = dil[1];
    cd.no_bias = !b;
    cd.init = DL_INIT_ZEROS;        /* the weights are set below */
    if (cd.groups < 1 || x->l->shape[0] % cd.groups || w->dims[1] * cd.groups != x->l->shape[0])
        return dl__ox_failf(ox, DL_ERR_FORMAT, "group %d does not fit %d channels and weights of %lld", cd.groups, x->l->shape[0], (long long)w->dims[1]);
    if (b && (b->count != (size_t)cd.filters)) return dl__ox_failf(ox, DL_ERR_FORMAT, "bias of %lu for %d filters", (unsigned long)b->count, cd.filters);
    if ((rc = dl__ox_as2d(ox, x, &l))) return rc;
    l = dl_conv2d_ex(l, &cd);
    if ((rc = dl__ox_take(ox, l))) return rc;
    if ((rc = dl__ox_setp(ox, l, "weight", w->f, w->count)) || (b && (rc = dl__ox_setp(ox, l, "bias", b->f, b->count)))) return rc;
    return dl__ox_out_nd(ox, l, x->rank);
}

/* ConvTranspose (2-d and 1-d). output_shape and auto_pad SAME_* give the
   total padding; it splits as the ONNX spec says (the odd one at the start
   unless SAME_UPPER). An output larger than the padding-free one is refused. */
static int dl__ox_convt(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    const dl__ox_t *w = dl__ox_cin(ox, 1), *b = dl__ox_cin(ox, 2);
    dl_conv_desc cd;
    dl_layer *l;
    int k[2], s[2], p[4], dil[2], op[2] = { 0, 0 }, rc, sd, j, c;
    int64_t v[8], os[2], in[2];
    dl__str ap = dl__ox_as(n, "auto_pad", "NOTSET");
    int same = dl__str_is(ap, "SAME_UPPER") || dl__str_is(ap, "SAME_LOWER"), has_os;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (!w || w->isint) return dl__ox_unsup(ox, "weights that are not a float initializer");
    if (n->n_in > 2 && n->in[2].n && (!b || b->isint)) return dl__ox_unsup(ox, "a bias that is not a float initializer");
    if (x->whole && x->rank == 5 && w->ndim == 5) return dl__ox_conv3d(ox, n, x, w, b, 1);
    if ((rc = dl__ox_batched(ox, x))) return rc;
    sd = x->rank - 2;
    if (sd < 1 || sd > 2 || w->ndim != x->rank) return dl__ox_unsup(ox, "input rank %d, weight rank %d (1-d and 2-d only)", x->rank, w->ndim);
    k[0] = sd == 2 ? (int)w->dims[2] : 1; k[1] = (int)w->dims[w->ndim - 1];
    if ((c = dl__ox_aints(n, "kernel_shape", v, 8)) >= 0 && (c != sd || v[0] != w->dims[2] || v[sd - 1] != w->dims[w->ndim - 1]))
        return dl__ox_failf(ox, DL_ERR_FORMAT, "kernel_shape does not match the weights");
    in[0] = sd == 2 ? x->l->shape[1] : 1; in[1] = x->l->shape[x->l->ndim - 1];
    if ((rc = dl__ox_window(ox, n, x->rank, sd == 2 ? in : in + 1, k, s, p, dil))) return rc;
    if ((c = dl__ox_aints(n, "output_padding", v, 8)) >= 0) {
        if (c != sd) return dl__ox_unsup(ox, "output_padding of length %d", c);
        for (j = 0; j < c; j++) op[j + 2 - sd] = (int)v[j];
    }
    has_os = (c = dl__ox_aints(n, "output_shape", v, 8)) >= 0;
    if (has_os && c != sd) return dl__ox_unsup(ox, "output_shape of length %d", c);
    if (has_os || same) {
        for (j = 0; j < 2; j++) {
            int64_t full = (in[j] - 1) * s[j] + op[j] + (int64_t)(k[j] - 1) * dil[j] + 1, tot;
            os[j] = has_os ? (sd == 2 ? v[j] : j ? v[0] : 1) : in[j] * s[j];
            int64_t half, start;
            tot = full - os[j];
            half = tot >= 0 ? tot / 2 : -((1 - tot) / 2);      /* Python's floor division, as the spec is written */
            start = dl__str_is(ap, "SAME_UPPER") ? half : tot - half;
            if (tot > 65536 || start < 0 || tot - start < -65536)
                return dl__ox_unsup(ox, "an output_shape %lld that needs padding %lld at the start", (long long)os[j], (long long)start);
            p[j] = (int)start;
            p[j + 2] = (int)(tot - start > 0 ? tot - start : 0);
            op[j] += (int)(tot - start < 0 ? start - tot : 0);      /* cells past the full output: output padding */
        }
    }
    memset(&cd, 0, sizeof cd);
    cd.groups = (int)dl__ox_ai(n, "group", 1);
    if (cd.groups < 1 || w->dims[0] != x->l->shape[0] || x->l->shape[0] % cd.groups)
        return dl__ox_failf(ox, DL_ERR_FORMAT, "group %d and weights of %lld for %d channels", cd.groups, (long long)w->dims[0], x->l->shape[0]);
    cd.filters = (int)w->dims[1] * cd.groups;
    cd.kernel_h = k[0]; cd.kernel_w = k[1]; cd.stride_h = s[0]; cd.stride_w = s[1];
    cd.pad_top = p[0]; cd.pad_left = p[1]; cd.pad_bottom = p[2]; cd.pad_right = p[3];
    cd.dilation_h = dil[0]; cd.dilation_w = dil[1]; cd.output_padding_h = op[0]; cd.output_padding_w = op[1];
    cd.no_bias = !b;
    cd.init = DL_INIT_ZEROS;
    for (j = 0; j < 2; j++)
        if (op[j] < 0 || (op[j] >= s[j] && op[j] >= dil[j])) return dl__ox_unsup(ox, "output_padding %d not under the stride or dilation", op[j]);
    if (b && b->count != (size_t)cd.filters) return dl__ox_failf(ox, DL_ERR_FORMAT, "bias of %lu for %d filters", (unsigned long)b->count, cd.filters);
    if ((rc = dl__ox_as2d(ox, x, &l))) return rc;
    l = dl_conv2d_transpose_ex(l, &cd);
    if ((rc = dl__ox_take(ox, l))) return rc;
    if ((rc = dl__ox_setp(ox, l, "weight", w->f, w->count)) || (b && (rc = dl__ox_setp(ox, l, "bias", b->f, b->count)))) return rc;
    return dl__ox_out_nd(ox, l, x->rank);
}

/* One axis of a Resize as a matrix m[O][I], as ONNX's reference computes
   it: the coordinate transform, then the n nearest input cells (edge
   values repeat past the ends), weighted by the mode's coefficients.
   tf_crop_and_resize maps onto roi[0..1] of the axis; outputs that fall
   outside the input get a zero row and oob[x] = 1 (the extrapolation value
   is added after). */
static int dl__ox_resize_axis(dl__ox *ox, const dl__ox_node *n, int64_t I, int64_t O, double scale, const double *roi,
                              unsigned char *oob, float *m) {
    dl__str mode = dl__ox_as(n, "mode", "nearest"), ct = dl__ox_as(n, "coordinate_transformation_mode", "half_pixel");
    dl__str nm = dl__ox_as(n, "nearest_mode", "round_prefer_floor");
    double A = dl__ox_af(n, "cubic_coeff_a", -0.75f), wout = scale * (double)I;
    int cubic = dl__str_is(mode, "cubic"), np = cubic ? 4 : 2, pad = cubic ? 2 : 1, excl = (int)dl__ox_ai(n, "exclude_outside", 0), k;
    int64_t x, j;
    if (!cubic && !dl__str_is(mode, "nearest") && !dl__str_is(mode, "linear")) return dl__ox_unsup(ox, "mode %.*s", (int)mode.n, mode.p);
    for (x = 0; x < O; x++) {
        double xo, ratio, c[4], sum = 0;
        int64_t idx[4], lo;
        if (dl__str_is(ct, "half_pixel")) xo = ((double)x + 0.5) / scale - 0.5;
        else if (dl__str_is(ct, "pytorch_half_pixel")) xo = wout == 1 ? -0.5 : ((double)x + 0.5) / scale - 0.5;
        else if (dl__str_is(ct, "align_corners")) xo = wout == 1 ? 0 : (double)x * (double)(I - 1) / (wout - 1);
        else if (dl__str_is(ct, "asymmetric")) xo = (double)x / scale;
        else if (dl__str_is(ct, "tf_half_pixel_for_nn")) xo = ((double)x + 0.5) / scale;
        else if (dl__str_is(ct, "tf_crop_and_resize"))
            xo = O > 1 ? roi[0] * (double)(I - 1) + (double)x * (roi[1] - roi[0]) * (double)(I - 1) / (double)(O - 1)
                       : 0.5 * (roi[0] + roi[1]) * (double)(I - 1);
        else return dl__ox_unsup(ox, "coordinate_transformation_mode %.*s", (int)ct.n, ct.p);
        oob[x] = roi && (xo < 0 || xo > (double)(I - 1));
        ratio = xo == floor(xo) ? 1 : xo - floor(xo);
        if (cubic) {
            double t = ratio + 1, u = 1 - ratio, v = 2 - ratio;
            c[0] = ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
            c[1] = ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1;
            c[2] = ((A + 2) * u - (A + 3)) * u * u + 1;
            c[3] = ((A * v - 5 * A) * v + 8 * A) * v - 4 * A;
        } else if (dl__str_is(mode, "linear")) { c[0] = 1 - ratio; c[1] = ratio; }
        else if (ratio == 1 || dl__str_is(nm, "ceil")) { c[0] = 0; c[1] = 1; }
        else if (dl__str_is(nm, "floor")) { c[0] = 1; c[1] = 0; }
        else if (dl__str_is(nm, "round_prefer_floor")) { c[0] = ratio <= 0.5; c[1] = ratio > 0.5; }
        else if (dl__str_is(nm, "round_prefer_ceil")) { c[0] = ratio < 0.5; c[1] = ratio >= 0.5; }
        else return dl__ox_unsup(ox, "nearest_mode %.*s", (int)nm.n, nm.p);
        /* the np cells of the padded axis nearest xo + pad, ties to the lower; as cells of the axis */
        lo = (int64_t)floor(xo + pad) - (ratio == 1 ? np / 2 : np / 2 - 1);
        if (lo < 0) lo = 0;
        if (lo > I + 2 * pad - np) lo = I + 2 * pad - np;
        for (k = 0; k < np; k++) idx[k] = lo + k - pad;
        if (excl) for (k = 0; k < np; k++) if (idx[k] < 0 || idx[k] >= I) c[k] = 0;
        for (k = 0; k < np; k++) sum += c[k];
        for (j = 0; j < I; j++) m[x * I + j] = 0;
        for (k = 0; k < np && !oob[x]; k++)
            m[x * I + (idx[k] < 0 ? 0 : idx[k] >= I ? I - 1 : idx[k])] += (float)(excl && sum != 0 ? c[k] / sum : c[k]);
    }
    return DL_OK;
}
/* tf_crop_and_resize: + the extrapolation value where H or W fell outside
   the input (those cells are 0 so far), a (1, OH, OW) constant */
static int dl__ox_extrapolate(dl__ox *ox, const dl__ox_node *n, dl_layer **l, const int64_t *d, const int64_t *o, unsigned char *const *oob) {
    dl__ox_t t;
    dl__str none = { "", 0 };
    dl_layer *c = NULL;     /* set by dl__ox_const_as when rc is 0; gcc -O3 cannot see it */
    int64_t sh[3], h, w;
    int rc;
    float v = dl__ox_af(n, "extrapolation_value", 0);
    sh[0] = 1; sh[1] = o[2]; sh[2] = o[3];
    if ((rc = dl__ox_t_alloc(&t, 0, 3, sh))) return dl__ox_failf(ox, rc, "too large");
    for (h = 0; h < o[2]; h++)
        for (w = 0; w < o[3]; w++) t.f[h * o[3] + w] = oob[0][h] || oob[1][w] ? v : 0.0f;
    sh[0] = d[1];
    if (!(rc = dl__ox_shape_as(ox, l, 3, sh))) {
        sh[0] = 1;
        if (!(rc = dl__ox_const_as(ox, &t, none, 3, sh, &c))) rc = dl__ox_take(ox, *l = dl_add(*l, c));
    }
    dl__ox_t_free(&t);
    return rc;
}
/* A Resize of H and W as matrices: (C*H, W) x Mw^T, then the same along H
   with H brought last; dims that keep their size and cells are skipped. */
static int dl__ox_resize_any(dl__ox *ox, const dl__ox_node *n, dl__ox_val *x, const int64_t *d, const int64_t *o, const double *s) {
    static const int p021[3] = { 0, 2, 1 };
    dl_layer *l = x->l, *c = NULL;
    dl__str none = { "", 0 };
    int64_t sh[3];
    int ax, rc, crop = dl__str_is(dl__ox_as(n, "coordinate_transformation_mode", ""), "tf_crop_and_resize"), any = 0;
    const dl__ox_t *roi = dl__ox_cin(ox, 1);
    double r[8] = { 0, 0, 0, 0, 1, 1, 1, 1 };
    unsigned char *oob[2] = { NULL, NULL };
    if (dl__ox_ai(n, "antialias", 0) && (s[2] < 1 || s[3] < 1)) return dl__ox_unsup(ox, "antialias when downsampling");
    if (crop) {
        if (!roi || roi->count != 8) return dl__ox_unsup(ox, "tf_crop_and_resize without a constant roi of 8");
        for (ax = 0; ax < 8; ax++) r[ax] = dl__ox_get(roi, (size_t)ax);
        if (r[0] != 0 || r[1] != 0 || r[4] != 1 || r[5] != 1) return dl__ox_unsup(ox, "tf_crop_and_resize cropping the batch or channels");
    }
    for (ax = 3; ax >= 2; ax--) {       /* W, then H (brought last) */
        int64_t I = d[ax], O = o[ax], other = ax == 3 ? d[1] * d[2] : d[1] * o[3];
        dl__ox_t t;
        int64_t td[2];
        float *m;
        double rr[2];
        int64_t i, j, ident = I == O;
        td[0] = I; td[1] = O;
        rr[0] = r[ax]; rr[1] = r[ax + 4];
        if ((rc = dl__ox_t_alloc(&t, 0, 2, td))) return dl__ox_failf(ox, rc, "too large");
        m = (float *)dl__calloc((size_t)(I * O), sizeof(float));
        oob[ax - 2] = (unsigned char *)dl__calloc((size_t)O, 1);
        if (!m || !oob[ax - 2]) rc = dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
        else rc = dl__ox_resize_axis(ox, n, I, O, s[ax], crop ? rr : NULL, oob[ax - 2], m);
        if (rc) { DL_FREE(m); dl__ox_t_free(&t); DL_FREE(oob[0]); DL_FREE(oob[1]); return rc; }
        for (i = 0; i < O; i++)
            for (j = 0; j < I; j++) {
                t.f[j * O + i] = m[i * I + j];      /* transposed: (I, O) */
                ident &= m[i * I + j] == (i == j);
            }
        DL_FREE(m);
        for (i = 0; i < O; i++) any |= oob[ax - 2][i];
        if (ax == 2) {                  /* (C, H, OW) -> (C, OW, H) */
            sh[0] = d[1]; sh[1] = d[2]; sh[2] = o[3];
            if (!ident && (!(rc = dl__ox_shape_as(ox, &l, 3, sh)))) rc = dl__ox_take(ox, l = dl_transpose(l, p021));
        }
        sh[0] = other; sh[1] = I;
        if (!ident && !rc && !(rc = dl__ox_shape_as(ox, &l, 2, sh)) && !(rc = dl__ox_const_as(ox, &t, none, 2, td, &c)))
            rc = dl__ox_take(ox, l = dl_matmul(l, c));
        if (ax == 2 && !ident && !rc) {  /* back to (C, OH, OW) */
            sh[0] = d[1]; sh[1] = o[3]; sh[2] = O;
            if (!(rc = dl__ox_shape_as(ox, &l, 3, sh))) rc = dl__ox_take(ox, l = dl_transpose(l, p021));
        }
        dl__ox_t_free(&t);
        if (rc) { DL_FREE(oob[0]); DL_FREE(oob[1]); return rc; }
    }
    if (any) rc = dl__ox_extrapolate(ox, n, &l, d, o, oob);
    DL_FREE(oob[0]); DL_FREE(oob[1]);
    return rc ? rc : dl__ox_out_dims(ox, 0, l, 4, o, 0);
}

/* Resize, Upsample of H and W. dl.h's upsample layer takes integer factors:
   its nearest is floor(x / scale) (ONNX's asymmetric or tf_half_pixel_for_nn
   with floor, or half_pixel with rounding: the same at integer scales), its
   bilinear half_pixel or align_corners. Anything else (other scales,
   coordinate transforms, rounding, cubic) is two matrices
   (dl__ox_resize_any). Upsample and Resize before opset 11 are asymmetric
   with floor. */
static int dl__ox_resize(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    const dl__ox_t *sc, *sz;
    dl_upsample_desc ud;
    int64_t d[DL__OX_MAXR], o[4];
    double s[4];
    int rc, r, j, old = dl__str_is(n->op, "Upsample") || ox->opset < 11, fast = 1;
    dl__str mode = dl__ox_as(n, "mode", "nearest"), ct = dl__ox_as(n, "coordinate_transformation_mode", old ? "asymmetric" : "half_pixel");
    dl__str nm = dl__ox_as(n, "nearest_mode", old ? "floor" : "round_prefer_floor");
    if ((rc = dl__ox_layer_in(ox, 0, &x))) return rc;
    r = dl__ox_dims(ox, x, d);
    if (r != 4) return dl__ox_unsup(ox, "rank %d (2-d images only)", r);
    sc = dl__ox_cin(ox, old ? 1 : 2); sz = old ? NULL : dl__ox_cin(ox, 3);
    if (n->n_in > (old ? 1 : 2) && n->in[old ? 1 : 2].n && !sc) return dl__ox_unsup(ox, "scales that are not constant");
    if (!old && n->n_in > 3 && n->in[3].n && !sz) return dl__ox_unsup(ox, "sizes that are not constant");
    if (sc && sc->count == 0) sc = NULL;
    if (!sc == !sz || (sz && !sz->isint)) return dl__ox_unsup(ox, "neither or both of scales and sizes");
    if ((sc ? sc->count : sz->count) != 4) return dl__ox_unsup(ox, "scales or sizes of %lu (4 expected)", (unsigned long)(sc ? sc->count : sz->count));
    for (j = 0; j < 4; j++) {
        if (j < 2) {                    /* the batch and channels keep their size */
            if (sc ? dl__ox_get(sc, (size_t)j) != 1 : j && sz->i[j] != d[j]) return dl__ox_unsup(ox, "a resize along dim %d (H and W only)", j);
            o[j] = d[j]; s[j] = 1;
            continue;
        }
        s[j] = sc ? dl__ox_get(sc, (size_t)j) : (double)sz->i[j] / (double)d[j];
        o[j] = sc ? (int64_t)floor((double)d[j] * s[j]) : sz->i[j];
        if (!(s[j] > 0 && s[j] <= 4096) || o[j] < 1 || o[j] > INT_MAX / 4) return dl__ox_unsup(ox, "a scale of %g along dim %d (up to 4096)", s[j], j);
        fast &= o[j] % d[j] == 0 && o[j] / d[j] == s[j];
    }
    memset(&ud, 0, sizeof ud);
    if (fast) { ud.scale_h = (int)(o[2] / d[2]); ud.scale_w = (int)(o[3] / d[3]); }
    if (dl__str_is(mode, "nearest")) {
        int fl = dl__str_is(nm, "floor"), rd = dl__str_is(nm, "round_prefer_floor") || dl__str_is(nm, "round_prefer_ceil");
        fast &= (fl && (dl__str_is(ct, "asymmetric") || dl__str_is(ct, "tf_half_pixel_for_nn"))) ||
                (rd && (dl__str_is(ct, "half_pixel") || dl__str_is(ct, "pytorch_half_pixel")));
    } else if (dl__str_is(mode, "linear") || dl__str_is(mode, "bilinear")) {
        ud.bilinear = 1;
        ud.align_corners = dl__str_is(ct, "align_corners");
        fast &= ud.align_corners || dl__str_is(ct, "half_pixel") || (dl__str_is(ct, "pytorch_half_pixel") && o[2] > 1 && o[3] > 1);
    } else fast = 0;
    if (!fast) return dl__ox_resize_any(ox, n, x, d, o, s);
    return dl__ox_out_layer(ox, 0, dl_upsample_ex(x->l, &ud), r);
}

/* One axis of a pool: ceil_mode, ONNX's older rule keeps a last window
   that starts in the end padding, PyTorch's (dl.h's) drops it; where the
   two differ it is refused. */
static int dl__ox_pool_axis(dl__ox *ox, int64_t in, int k, int s, int pb, int pe, int dil, int ceil) {
    int64_t span = in + pb + pe - (int64_t)dil * (k - 1) - 1;
    if (span < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "window larger than the input");
    if (ceil && span % s && (span / s + 1) * s >= in + pb) return dl__ox_unsup(ox, "ceil_mode with a last window in the end padding");
    if (pb > dil * (k - 1) || pe > dil * (k - 1)) return dl__ox_unsup(ox, "pads as large as the window");
    return DL_OK;
}
/* A 2-d pool layer (argmax: MaxPool's Indices, flat): k, s, dil (h, w), p (top, left, bottom, right) */
static dl_layer *dl__ox_pool2d(dl_layer *l, const dl__ox_node *n, int ceil, const int *k, const int *s, const int *p, const int *dil, int argmax) {
    dl_pool_desc pd;
    int avg = dl__str_is(n->op, "AveragePool");
    memset(&pd, 0, sizeof pd);
    pd.kernel_h = k[0]; pd.kernel_w = k[1]; pd.stride_h = s[0]; pd.stride_w = s[1];
    pd.pad_top = p[0]; pd.pad_left = p[1]; pd.pad_bottom = p[2]; pd.pad_right = p[3];
    pd.dilation_h = dil[0]; pd.dilation_w = dil[1];
    pd.ceil_mode = ceil;
    pd.exclude_pad = avg && !dl__ox_ai(n, "count_include_pad", 0);
    if (argmax) return dl_maxpool2d_argmax(l, &pd, (int)dl__ox_ai(n, "storage_order", 0) | DL_ARGMAX_FLAT);
    return avg ? dl_avgpool2d_ex(l, &pd) : dl_maxpool2d_ex(l, &pd);
}
/* A 3-d pool of a whole (N, C, D, H, W): over H and W of (N*C*D, H, W),
   then over D of (N*C, D, H'*W') with a (kd, 1) window. Both max and
   average separate so (an average's valid cells are a product of ranges). */
static int dl__ox_pool3d(dl__ox *ox, const dl__ox_node *n, dl__ox_val *x, int ceil) {
    int64_t d[5], ks[8], v[3], o[5];
    int k[3], s[3], pb[3], pe[3], dil[3], k2[2], s2[2], p4[4], d2[2], j, rc;
    dl_layer *l = x->l;
    memcpy(d, x->wd, sizeof d);
    if (dl__ox_aints(n, "kernel_shape", ks, 8) != 3) return dl__ox_unsup(ox, "a kernel_shape that is not 3-d on rank 5");
    for (j = 0; j < 3; j++) k[j] = ks[j] < 1 || ks[j] > 65536 ? 0 : (int)ks[j];
    if ((rc = dl__ox_window_nd(ox, n, 3, d + 2, k, s, pb, pe, dil))) return rc;
    for (j = 0; j < 3; j++) if ((rc = dl__ox_pool_axis(ox, d[j + 2], k[j], s[j], pb[j], pe[j], dil[j], ceil))) return rc;
    v[0] = d[0] * d[1] * d[2]; v[1] = d[3]; v[2] = d[4];
    k2[0] = k[1]; k2[1] = k[2]; s2[0] = s[1]; s2[1] = s[2]; d2[0] = dil[1]; d2[1] = dil[2];
    p4[0] = pb[1]; p4[1] = pb[2]; p4[2] = pe[1]; p4[3] = pe[2];
    if ((rc = dl__ox_shape_as(ox, &l, 3, v)) || (rc = dl__ox_take(ox, l = dl__ox_pool2d(l, n, ceil, k2, s2, p4, d2, 0)))) return rc;
    o[0] = d[0]; o[1] = d[1]; o[3] = l->shape[1]; o[4] = l->shape[2];
    v[0] = d[0] * d[1]; v[1] = d[2]; v[2] = o[3] * o[4];
    k2[0] = k[0]; k2[1] = 1; s2[0] = s[0]; s2[1] = 1; d2[0] = dil[0]; d2[1] = 1;
    p4[0] = pb[0]; p4[1] = 0; p4[2] = pe[0]; p4[3] = 0;
    if ((rc = dl__ox_shape_as(ox, &l, 3, v)) || (rc = dl__ox_take(ox, l = dl__ox_pool2d(l, n, ceil, k2, s2, p4, d2, 0)))) return rc;
    o[2] = l->shape[1];
    return dl__ox_bind(ox, 0, l, 5, o);
}

/* MaxPool with its Indices, 2-d: ONNX's index counts the planes of the
   whole (N, C, H, W) before its own, as maxpool2d_argmax does with
   DL_ARGMAX_FLAT: of x with the batch first, or of the whole tensor as
   (N C, H, W) planes (a batch of 1). int64 in ONNX; floats here, exact up
   to 2^24 (dl_predict checks its batch). */
static int dl__ox_pool_argmax(dl__ox *ox, const dl__ox_node *n, dl__ox_val *x, int ceil) {
    int64_t ks[8], d[8], o[4], v[3];   /* d: dl__ox_dims writes all 8 */
    int k[2], s[2], p[4], dil[2], j, rc, whole = x->whole;
    dl_layer *l = x->l, *y, *ix;
    if (x->rank != 4 || dl__ox_aints(n, "kernel_shape", ks, 8) != 2) return dl__ox_unsup(ox, "the indices of a pool that is not 2-d");
    dl__ox_dims(ox, x, d);
    if ((double)d[1] * d[2] * d[3] * (whole ? (double)d[0] : 1.0) > 16777216.0) return dl__ox_unsup(ox, "indices past 2^24 (dl.h's are exact floats)");
    k[0] = ks[0] < 1 || ks[0] > 65536 ? 0 : (int)ks[0]; k[1] = ks[1] < 1 || ks[1] > 65536 ? 0 : (int)ks[1];
    if ((rc = dl__ox_window(ox, n, 4, d + 2, k, s, p, dil))) return rc;
    for (j = 0; j < 2; j++) if ((rc = dl__ox_pool_axis(ox, d[j + 2], k[j], s[j], p[j], p[j + 2], dil[j], ceil))) return rc;
    v[0] = whole ? d[0] * d[1] : 0; v[1] = d[2]; v[2] = d[3];   /* d[0]: a symbolic batch's marker unless whole */
    if (whole && (rc = dl__ox_shape_as(ox, &l, 3, v))) return rc;
    if ((rc = dl__ox_take(ox, y = dl__ox_pool2d(l, n, ceil, k, s, p, dil, 0))) ||
        (rc = dl__ox_take(ox, ix = dl__ox_pool2d(l, n, ceil, k, s, p, dil, 1)))) return rc;
    o[0] = d[0]; o[1] = d[1]; o[2] = y->shape[1]; o[3] = y->shape[2];
    if ((rc = dl__ox_bind(ox, 0, y, 4, whole ? o : NULL))) return rc;
    return dl__ox_bind(ox, 1, ix, 4, whole ? o : NULL);
}

/* MaxPool, AveragePool: 1-d, 2-d, and 3-d of a whole tensor (dl__ox_pool3d) */
static int dl__ox_pool(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    dl_layer *l;
    int64_t ks[8], in[2];
    int k[2], s[2], p[4], dil[2], rc, c, j, avg = dl__str_is(n->op, "AveragePool"), ceil = (int)dl__ox_ai(n, "ceil_mode", 0);
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (ceil < 0 || ceil > 1) return dl__ox_failf(ox, DL_ERR_FORMAT, "ceil_mode %d", ceil);
    if (dl__ox_ai(n, "storage_order", 0) & ~(int64_t)1) return dl__ox_failf(ox, DL_ERR_FORMAT, "storage_order %d", (int)dl__ox_ai(n, "storage_order", 0));
    if (!avg && n->n_out > 1 && n->out[1].n) return dl__ox_pool_argmax(ox, n, x, ceil);
    for (j = 0, c = avg ? dl__ox_aints(n, "dilations", ks, 8) : 0; j < c && j < 8; j++)
        if (ks[j] != 1) return dl__ox_unsup(ox, "dilated average pooling");
    if (x->whole && x->rank == 5) return dl__ox_pool3d(ox, n, x, ceil);
    if ((rc = dl__ox_batched(ox, x))) return rc;
    c = dl__ox_aints(n, "kernel_shape", ks, 8);
    if (c != x->rank - 2 || c < 1 || c > 2) return dl__ox_unsup(ox, "kernel_shape of length %d on rank %d (1-d and 2-d only)", c, x->rank);
    k[0] = c == 2 ? (int)ks[0] : 1; k[1] = (int)ks[c - 1];
    in[0] = x->l->shape[1]; in[1] = x->l->shape[x->l->ndim - 1];
    if ((rc = dl__ox_window(ox, n, x->rank, c == 2 ? in : in + 1, k, s, p, dil))) return rc;
    for (j = 0; j < 2; j++)
        if ((rc = dl__ox_pool_axis(ox, j ? in[1] : (c == 2 ? in[0] : 1), k[j], s[j], p[j], p[j + 2], dil[j], ceil))) return rc;
    if ((rc = dl__ox_as2d(ox, x, &l))) return rc;
    return dl__ox_out_nd(ox, dl__ox_pool2d(l, n, ceil, k, s, p, dil, 0), x->rank);
}

/* GlobalAveragePool, GlobalMaxPool: (C,H,W) -> (C,1,1) */
static int dl__ox_global(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    dl_layer *l;
    int64_t d[4];
    int rc;
    if ((rc = dl__ox_layer_in(ox, 0, &x))) return rc;
    if (x->rank < 3 || x->rank > 4) return dl__ox_unsup(ox, "rank %d (1-d and 2-d only)", x->rank);
    if (dl__str_is(n->op, "GlobalMaxPool")) {
        dl_pool_desc pd;
        memset(&pd, 0, sizeof pd);
        if ((rc = dl__ox_as2d(ox, x, &l))) return rc;
        pd.kernel_h = pd.stride_h = l->shape[1]; pd.kernel_w = pd.stride_w = l->shape[2];
        l = dl_maxpool2d_ex(l, &pd);
    } else l = dl_global_avgpool(x->l);
    if ((rc = dl__ox_take(ox, l))) return rc;
    d[0] = 1; d[1] = l->shape[0]; d[2] = d[3] = 1;
    if ((rc = dl__ox_view(ox, &l, x->rank, d))) return rc;
    return dl__ox_out_layer(ox, 0, l, x->rank);
}

/* A (1, c, 1) constant: f[0..c) times mul, or mul alone where f is NULL. */
static int dl__ox_chan_const(dl__ox *ox, const float *f, int c, float mul, dl_layer **l) {
    int s[3], k;
    float *v = (float *)dl__calloc((size_t)c, sizeof(float));
    if (!v) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    for (k = 0; k < c; k++) v[k] = f ? f[k] * mul : mul;
    s[0] = 1; s[1] = c; s[2] = 1;
    *l = dl_constant(ox->net, 3, s, v);
    DL_FREE(v);
    return dl__ox_take(ox, *l);
}
/* training_mode 1: the statistics of this batch, so of a whole tensor, as
   (N, C, S): Y = (x - mean) / sqrt(var + epsilon) scale + B, var the biased
   variance, and the running statistics input * momentum + the batch's *
   (1 - momentum). Reduce, sub, mul, sqrt, div and add layers; scale and B
   stay constants (a dl.h batchnorm normalises by the running statistics in
   inference). t: scale, B, input_mean, input_var, each of C floats. */
static int dl__ox_batchnorm_train(dl__ox *ox, const dl__ox_node *n, dl__ox_val *x, const dl__ox_t *const *t) {
    static const int axes[2] = { 0, 2 };
    int64_t wd[DL__OX_MAXR], p[3], cd[1];
    dl_layer *l = x->l, *c[6], *mean, *d, *var, *y;
    float m = dl__ox_af(n, "momentum", 0.9f);
    int rc, k, r;
    if ((rc = dl__ox_whole(ox, x, "training mode (statistics over the batch)"))) return rc;
    r = dl__ox_dims(ox, x, wd);
    p[0] = wd[0]; p[1] = wd[1]; p[2] = 1;
    for (k = 2; k < r; k++) p[2] *= wd[k];
    for (k = 0; k < 4; k++)
        if (t[k]->count != (size_t)p[1]) return dl__ox_failf(ox, DL_ERR_FORMAT, "%lu statistics for %lld channels", (unsigned long)t[k]->count, (long long)p[1]);
    if ((rc = dl__ox_shape_as(ox, &l, 3, p))) return rc;
    for (k = 0; k < 6 && !rc; k++)      /* scale, B, epsilon, momentum * the two inputs, 1 - momentum */
        rc = dl__ox_chan_const(ox, k < 2 ? t[k]->f : k == 2 || k == 5 ? NULL : t[k - 1]->f, (int)p[1],
                               k < 2 ? 1.0f : k == 2 ? dl__ox_af(n, "epsilon", 1e-5f) : k == 5 ? 1.0f - m : m, &c[k]);
    if (rc || (rc = dl__ox_take(ox, mean = dl_reduce_mean(l, axes, 2, 1))) || (rc = dl__ox_take(ox, d = dl_sub(l, mean))) ||
        (rc = dl__ox_take(ox, var = dl_mul(d, d))) || (rc = dl__ox_take(ox, var = dl_reduce_mean(var, axes, 2, 1))) ||
        (rc = dl__ox_take(ox, y = dl_add(var, c[2]))) || (rc = dl__ox_take(ox, y = dl_sqrt(y))) ||
        (rc = dl__ox_take(ox, y = dl_div(d, y))) || (rc = dl__ox_take(ox, y = dl_mul(y, c[0]))) ||
        (rc = dl__ox_take(ox, y = dl_add(y, c[1]))) || (rc = dl__ox_bind(ox, 0, y, r, wd)))
        return rc;
    cd[0] = p[1];
    for (k = 1; k < 3 && k < n->n_out; k++) {
        if (!n->out[k].n) continue;
        if ((rc = dl__ox_take(ox, y = dl_mul(k == 1 ? mean : var, c[5]))) || (rc = dl__ox_take(ox, y = dl_add(y, c[2 + k]))) ||
            (rc = dl__ox_bind(ox, k, y, 1, cd)))
            return rc;
    }
    if (n->n_out > 3 && n->out[3].n && (rc = dl__ox_bind(ox, 3, mean, 1, cd))) return rc;   /* saved_mean: the batch's */
    if (n->n_out > 4 && n->out[4].n) {      /* PyTorch names it a dead output; a reader is refused */
        dl__ox_val *v = dl__ox_new(ox, n->out[4]);
        if (!v) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
        v->refused = "saved_var (the batch's variance, or its inverse square root as ONNX Runtime gives it: ONNX does not say)";
    }
    return DL_OK;
}

/* Training mode: training_mode 1 from opset 14; before, is_test 0 (to
   opset 6) or the training outputs asked for (mean, var, saved_mean,
   saved_var: opsets 7 to 13, PyTorch's TrainingMode.TRAINING). */
static int dl__ox_batchnorm(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    const dl__ox_t *t[4];
    dl_layer *l;
    static const char *const names[4] = { "weight", "bias", "running_mean", "running_var" };
    int rc, k, c, train = (int)dl__ox_ai(n, "training_mode", 0);
    if (!dl__ox_ai(n, "spatial", 1)) return dl__ox_unsup(ox, "spatial 0 (statistics per activation)");
    if (ox->opset < 14) train = !dl__ox_ai(n, "is_test", 1);
    for (k = 1; ox->opset >= 7 && ox->opset < 14 && k < n->n_out; k++) train |= n->out[k].n > 0;
    for (k = 0; k < 4; k++) {
        t[k] = dl__ox_cin(ox, k + 1);
        if (!t[k] || t[k]->isint) return dl__ox_unsup(ox, "%s that is not a float initializer", names[k]);
    }
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (x->rank < 2) return dl__ox_failf(ox, DL_ERR_FORMAT, "rank %d input", x->rank);
    if (train) return dl__ox_batchnorm_train(ox, n, x, t);
    for (k = 1; k < n->n_out; k++) if (n->out[k].n) return dl__ox_unsup(ox, "training outputs (running statistics) with training_mode 0");
    if ((rc = dl__ox_batched(ox, x))) return rc;
    c = x->l->shape[0];
    for (k = 0; k < 4; k++)
        if (t[k]->count != (size_t)c) return dl__ox_failf(ox, DL_ERR_FORMAT, "%s of %lu for %d channels", names[k], (unsigned long)t[k]->count, c);
    l = dl_batchnorm_ex(x->l, dl__ox_af(n, "epsilon", 1e-5f), 1.0f - dl__ox_af(n, "momentum", 0.9f));
    if ((rc = dl__ox_take(ox, l))) return rc;
    for (k = 0; k < 4; k++) if ((rc = dl__ox_setp(ox, l, names[k], t[k]->f, t[k]->count))) return rc;
    return dl__ox_out_layer(ox, 0, l, x->rank);
}

/* PRelu: a slope per channel is a prelu layer (trainable); any other slope
   that broadcasts to x is y = r + slope (x - r), r = relu(x), which is exact */
static int dl__ox_prelu_any(dl__ox *ox, dl__ox_val *x, dl__ox_val *sl, dl__str sn) {
    dl__ox_val r = *x, dv = *x, sd, y;
    dl__str none = { "", 0 };
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR];
    int rx = dl__ox_dims(ox, x, d), rc;
    if (dl__ox_bdims(d, rx, sl->t.dims, sl->t.ndim, o) != rx || memcmp(d, o, (size_t)rx * sizeof *d))
        return dl__ox_unsup(ox, "a slope that does not broadcast to the input");
    r.l = dl_relu(x->l);
    if ((rc = dl__ox_take(ox, r.l))) return rc;
    dv.l = dl_sub(x->l, r.l);
    if ((rc = dl__ox_take(ox, dv.l)) || (rc = dl__ox_combine(ox, &dv, none, sl, sn, 2, &sd)) ||
        (rc = dl__ox_combine(ox, &r, none, &sd, none, 0, &y))) return rc;
    return dl__ox_alias(ox, 0, &y);
}
static int dl__ox_prelu(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x, *slv = dl__ox_in(ox, 1);
    const dl__ox_t *sl = dl__ox_cin(ox, 1);
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR];
    float *w;
    unsigned char *seen;
    dl_layer *l;
    int r, rc, c, per_channel = 1;
    size_t e, per;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    if (!sl || sl->isint) return dl__ox_unsup(ox, "a slope that is not a float initializer");
    if (x->whole && (x->rank < 1 || x->wd[0] != 1)) return dl__ox_prelu_any(ox, x, slv, n->in[1]);
    if ((rc = dl__ox_batched(ox, x))) return rc;
    r = dl__ox_dims(ox, x, d);
    if (ox->opset < 7 && sl->ndim == 1 && r > 1 && sl->dims[0] == x->l->shape[0]) {   /* before opset 7: one slope per channel */
        l = dl_prelu(x->l);
        if ((rc = dl__ox_take(ox, l)) || (rc = dl__ox_setp(ox, l, "weight", sl->f, sl->count))) return rc;
        return dl__ox_out_layer(ox, 0, l, x->rank);
    }
    d[0] = 1;                   /* the slope may not vary along the batch */
    if (dl__ox_bdims(d, r, sl->dims, sl->ndim, o) != r || memcmp(d, o, (size_t)r * sizeof *d)) return dl__ox_prelu_any(ox, x, slv, n->in[1]);
    c = x->l->shape[0];
    per = (size_t)x->l->size / (size_t)c;
    w = (float *)dl__calloc((size_t)c, sizeof(float));
    seen = (unsigned char *)dl__calloc((size_t)c, 1);
    if (!w || !seen) { DL_FREE(w); DL_FREE(seen); return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory"); }
    for (e = 0; e < (size_t)x->l->size && per_channel; e++) {
        int ch = r > 1 ? (int)(e / per) : 0;
        float v = sl->f[dl__ox_bcast(d, r, sl, e)];
        if (!seen[ch]) { seen[ch] = 1; w[ch] = v; }
        else per_channel = w[ch] == v;
    }
    DL_FREE(seen);
    if (!per_channel) rc = dl__ox_prelu_any(ox, x, slv, n->in[1]);
    else {
        l = dl_prelu(x->l);
        if (!(rc = dl__ox_take(ox, l)) && !(rc = dl__ox_setp(ox, l, "weight", w, (size_t)c))) rc = dl__ox_out_layer(ox, 0, l, x->rank);
    }
    DL_FREE(w);
    return rc;
}

/* Softmax, LogSoftmax: opset < 13 over the dims from axis on (flattened),
   >= 13 over axis alone. dl.h's softmax runs along dim 0, so the sample is
   seen as (pre, group, rest) and the group brought first (dl__ox_front). */
static int dl__ox_softmax(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    int64_t d[DL__OX_MAXR], s[DL__OX_MAXR], p[3];
    dl_layer *l;
    int r, rc, ns, ax;
    int64_t a;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    r = dl__ox_dims(ox, x, d);
    a = dl__ox_norm_axis(dl__ox_ai(n, "axis", ox->opset < 13 ? 1 : -1), r);
    if (a < 0 || a >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
    if (a == 0 && (rc = dl__ox_whole(ox, x, "softmax over the batch axis"))) return rc;
    ns = dl__ox_sample(ox, x, a, s, &ax);
    dl__ox_split(s, ns, ax, ox->opset < 13 ? ns : ax + 1, p);
    l = x->l;
    if ((rc = dl__ox_front(ox, &l, p))) return rc;
    l = dl__str_is(n->op, "LogSoftmax") ? dl_log_softmax(l) : dl_softmax(l);
    if ((rc = dl__ox_take(ox, l)) || (rc = dl__ox_unfront(ox, &l, p))) return rc;
    return dl__ox_out_dims(ox, 0, l, r, d, x->whole);
}

/* MatMul and Gemm beyond a dense layer: ONNX's matmul (rank-1 operands
   promoted, leading dims broadcast) as dl_matmul over (G, M, K) x (G, K, N),
   on whole tensors, or per sample for [batch, .., M, K] x a constant [K, N];
   Gemm's transposes, alpha, beta and C on top. Constants are copied into
   t[] (owned) as they are transposed and broadcast. */
static int dl__ox_matmul_any(dl__ox *ox, const dl__ox_node *n) {
    int mm = dl__str_is(n->op, "MatMul"), tr[2], k, j, rc = DL_OK, r[2], rl, ro = 0, keep, drop[2];
    float alpha = mm ? 1.0f : dl__ox_af(n, "alpha", 1.0f), beta = mm ? 1.0f : dl__ox_af(n, "beta", 1.0f);
    dl__ox_val *v[2], y, y2, cv;
    dl__ox_t t[2], e;
    dl__str none = { "", 0 };
    int64_t d[2][DL__OX_MAXR], L[DL__OX_MAXR], od[DL__OX_MAXR + 1], G = 1, g3[2][3];
    dl_layer *l[2];
    memset(t, 0, sizeof t);
    tr[0] = !mm && dl__ox_ai(n, "transA", 0); tr[1] = !mm && dl__ox_ai(n, "transB", 0);
    for (k = 0; k < 2; k++) if (!(v[k] = dl__ox_in(ox, k))) return dl__ox_failf(ox, DL_ERR_FORMAT, "input %d is missing", k);
    if (v[0]->kind != DL__OX_LAYER && v[1]->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "no layer operand");
    if (!mm && n->n_in > 2 && n->in[2].n && !dl__ox_in(ox, 2)) return dl__ox_failf(ox, DL_ERR_FORMAT, "C is missing");
    keep = mm && v[0]->kind == DL__OX_LAYER && !v[0]->whole && v[0]->rank >= 3 && v[1]->kind == DL__OX_CONST && v[1]->t.ndim >= 2 &&
           (v[1]->t.ndim < v[0]->rank || v[1]->t.dims[0] == 1);        /* per sample: B is the same for every one */
    for (k = 0; k < 2 && !rc; k++) {
        if (v[k]->kind == DL__OX_LAYER && !keep) rc = dl__ox_whole(ox, v[k], "a MatMul or Gemm that is not [batch, K] x a constant [K, N]");
        r[k] = dl__ox_dims(ox, v[k], d[k]);
        if (keep && (!k || r[1] == v[0]->rank)) memmove(d[k], d[k] + 1, (size_t)--r[k] * sizeof *d[k]);     /* the batch stays outside */
        if (!rc && ((!mm && r[k] != 2) || r[k] < 1)) rc = dl__ox_failf(ox, DL_ERR_FORMAT, "operand %d of rank %d", k, r[k]);
        if (!rc && v[k]->kind == DL__OX_CONST) {
            if ((rc = dl__ox_t_alloc(&t[k], 0, r[k], d[k]))) { rc = dl__ox_failf(ox, rc, "too large"); break; }      /* d[k] as kept */
            for (j = 0; j < (int)t[k].count; j++) t[k].f[j] = (float)dl__ox_get(&v[k]->t, (size_t)j) * (k ? alpha : 1.0f);
        }
        l[k] = v[k]->l;
        if (!rc && tr[k]) {         /* Gemm: rank 2 */
            int64_t sw[2];
            sw[0] = d[k][1]; sw[1] = d[k][0];
            if (v[k]->kind == DL__OX_CONST) {
                if ((rc = dl__ox_t_alloc(&e, 0, 2, sw))) { rc = dl__ox_failf(ox, rc, "too large"); break; }
                for (j = 0; j < (int)e.count; j++) e.f[j] = t[k].f[(j % sw[1]) * sw[0] + j / sw[1]];
                dl__ox_t_free(&t[k]);
                t[k] = e;
            } else {
                static const int p10[3] = { 1, 0, 0 };
                if (!(rc = dl__ox_shape_as(ox, &l[k], 2, d[k])) && !(rc = dl__ox_take(ox, l[k] = dl_transpose(l[k], p10)))) {}
            }
            d[k][0] = sw[0]; d[k][1] = sw[1];
        }
    }
    if (rc) goto done;
    drop[0] = r[0] == 1; drop[1] = r[1] == 1;
    if (drop[0]) { d[0][1] = d[0][0]; d[0][0] = 1; r[0] = 2; }
    if (drop[1]) { d[1][1] = 1; r[1] = 2; }
    if (d[0][r[0] - 1] != d[1][r[1] - 2]) { rc = dl__ox_failf(ox, DL_ERR_FORMAT, "K of %lld and %lld", (long long)d[0][r[0] - 1], (long long)d[1][r[1] - 2]); goto done; }
    if ((rl = dl__ox_bdims(d[0], r[0] - 2, d[1], r[1] - 2, L)) < 0) { rc = dl__ox_failf(ox, DL_ERR_FORMAT, "leading dims do not broadcast"); goto done; }
    for (k = 0; k < rl; k++) G *= L[k];
    for (k = 0; k < 2; k++) {
        int64_t own = 1, full[DL__OX_MAXR];
        for (j = 0; j < r[k] - 2; j++) own *= d[k][j];
        g3[k][0] = G; g3[k][1] = d[k][r[k] - 2]; g3[k][2] = d[k][r[k] - 1];
        if (v[k]->kind == DL__OX_LAYER) {
            if (own != G) { rc = dl__ox_unsup(ox, "broadcasting a layer's leading dims in a MatMul"); goto done; }
            if ((rc = dl__ox_shape_as(ox, &l[k], G > 1 ? 3 : 2, G > 1 ? g3[k] : g3[k] + 1))) goto done;
            continue;
        }
        if (own != G) {             /* the constant repeated along the leading dims */
            memcpy(full, L, (size_t)rl * sizeof *L);
            full[rl] = g3[k][1]; full[rl + 1] = g3[k][2];
            t[k].ndim = r[k];
            memcpy(t[k].dims, d[k], (size_t)r[k] * sizeof *d[k]);
            if ((rc = dl__ox_t_alloc(&e, 0, rl + 2, full))) { rc = dl__ox_failf(ox, rc, "too large"); goto done; }
            for (j = 0; j < (int)e.count; j++) e.f[j] = t[k].f[dl__ox_bcast(full, rl + 2, &t[k], (size_t)j)];
            dl__ox_t_free(&t[k]);
            t[k] = e;
        }
        if ((rc = dl__ox_const_as(ox, &t[k], k ? n->in[1] : n->in[0], G > 1 ? 3 : 2, G > 1 ? g3[k] : g3[k] + 1, &l[k]))) goto done;
    }
    if ((rc = dl__ox_take(ox, l[0] = dl_matmul(l[0], l[1])))) goto done;
    if (keep) od[ro++] = ox->batch;
    for (k = 0; k < rl; k++) od[ro++] = L[k];
    if (!drop[0]) od[ro++] = g3[0][1];
    if (!drop[1]) od[ro++] = g3[1][2];
    if (ro > DL__OX_MAXR) { rc = dl__ox_unsup(ox, "rank over %d", DL__OX_MAXR); goto done; }
    memset(&y, 0, sizeof y);
    y.kind = DL__OX_LAYER; y.l = l[0]; y.rank = ro; y.whole = !keep;
    memcpy(y.wd, od, (size_t)ro * sizeof *od);
    if (keep && (rc = dl__ox_view(ox, &y.l, ro, od))) goto done;
    if (alpha != 1.0f && v[1]->kind == DL__OX_LAYER) {
        int64_t one = 1;
        memset(&cv, 0, sizeof cv);
        cv.kind = DL__OX_CONST;
        if ((rc = dl__ox_t_alloc(&cv.t, 0, 0, &one))) { rc = dl__ox_failf(ox, rc, "out of memory"); goto done; }
        cv.t.f[0] = alpha;
        rc = dl__ox_combine(ox, &y, none, &cv, none, 2, &y2);
        y = y2;
        dl__ox_t_free(&cv.t);
        if (rc) goto done;
    }
    if (!mm && n->n_in > 2 && n->in[2].n) {     /* + beta C */
        dl__ox_val *c = dl__ox_in(ox, 2), bc;
        int64_t one = 1;
        memset(&cv, 0, sizeof cv);
        cv.kind = DL__OX_CONST;       /* beta C, or beta alone for a layer C */
        if (c->kind == DL__OX_CONST) rc = dl__ox_t_alloc(&cv.t, 0, c->t.ndim, c->t.dims);
        else rc = dl__ox_t_alloc(&cv.t, 0, 0, &one);
        if (rc) { rc = dl__ox_failf(ox, rc, "too large"); goto done; }
        for (j = 0; j < (int)cv.t.count; j++) cv.t.f[j] = beta * (c->kind == DL__OX_CONST ? (float)dl__ox_get(&c->t, (size_t)j) : 1.0f);
        if (c->kind == DL__OX_CONST) rc = dl__ox_combine(ox, &y, none, &cv, n->in[2], 0, &y2);
        else if (beta == 1.0f || !(rc = dl__ox_combine(ox, c, n->in[2], &cv, none, 2, &bc)))
            rc = dl__ox_combine(ox, &y, none, beta == 1.0f ? c : &bc, n->in[2], 0, &y2);
        dl__ox_t_free(&cv.t);
        if (rc) goto done;
        y = y2;
    }
    rc = dl__ox_alias(ox, 0, &y);
done:
    dl__ox_t_free(&t[0]); dl__ox_t_free(&t[1]);
    return rc;
}

/* Gemm with a constant B: a dense layer with weight alpha*op(B)^T and bias beta*C */
static int dl__ox_gemm(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *a;
    const dl__ox_t *b = dl__ox_cin(ox, 1), *c = dl__ox_cin(ox, 2);
    int mm = dl__str_is(n->op, "MatMul"), tb = mm ? 0 : (int)dl__ox_ai(n, "transB", 0), rc;
    float alpha = mm ? 1.0f : dl__ox_af(n, "alpha", 1.0f), beta = mm ? 1.0f : dl__ox_af(n, "beta", 1.0f);
    dl_dense_desc dd;
    dl_layer *l;
    float *w;
    int64_t K, N, i, j, d2[2], o[2];
    dl__ox_val *bv = dl__ox_in(ox, 1), *cl = !mm && n->n_in > 2 && n->in[2].n ? dl__ox_in(ox, 2) : NULL;
    int c_layer = cl && cl->kind == DL__OX_LAYER;       /* added after the dense layer */
    a = dl__ox_in(ox, 0);
    d2[0] = 1; d2[1] = b && b->ndim == 2 ? b->dims[tb ? 0 : 1] : 0;
    if (!a || a->kind != DL__OX_LAYER || (a->whole && a->wd[0] != 1) || a->rank != 2 || !b || b->isint || b->ndim != 2 ||
        (!mm && dl__ox_ai(n, "transA", 0)) || (cl && !c_layer &&
        (!c || c->isint || dl__ox_bdims(d2, 2, c->dims, c->ndim, o) != 2 || o[0] != 1 || o[1] != d2[1]))) {
        if (mm && a && bv && a->kind == DL__OX_LAYER && bv->kind == DL__OX_LAYER && !a->whole && !bv->whole && a->rank >= 3 &&
            bv->rank == a->rank && (a->rank == 3 || a->l->shape[0] == bv->l->shape[0]))     /* per sample */
            return dl__ox_out_layer(ox, 0, dl_matmul(a->l, bv->l), a->rank);
        return dl__ox_matmul_any(ox, n);
    }
    if ((rc = dl__ox_layer_in(ox, 0, &a))) return rc;
    K = tb ? b->dims[1] : b->dims[0]; N = tb ? b->dims[0] : b->dims[1];
    if (K != a->l->size) return dl__ox_failf(ox, DL_ERR_FORMAT, "B is %lldx%lld for K=%d", (long long)b->dims[0], (long long)b->dims[1], a->l->size);
    if (N < 1 || N > INT_MAX) return dl__ox_unsup(ox, "N %lld", (long long)N);
    memset(&dd, 0, sizeof dd);
    dd.units = (int)N; dd.no_bias = !c; dd.init = DL_INIT_ZEROS;   /* every weight is set below */
    l = dl_dense_ex(a->l, &dd);
    if ((rc = dl__ox_take(ox, l))) return rc;
    if (!(w = dl__ox_param(ox, l, "weight", (size_t)(N * K)))) return DL_ERR_SHAPE;
    for (i = 0; i < N; i++)
        if (tb && alpha == 1.0f) memcpy(w + i * K, b->f + i * K, (size_t)K * sizeof *w);
        else for (j = 0; j < K; j++) w[i * K + j] = alpha * b->f[tb ? i * K + j : j * N + i];
    if (c) {
        if (!(w = dl__ox_param(ox, l, "bias", (size_t)N))) return DL_ERR_SHAPE;
        for (i = 0; i < N; i++) w[i] = beta * c->f[dl__ox_bcast(d2, 2, c, (size_t)i)];
    }
    if (c_layer) {                      /* + beta C */
        dl__ox_val y, bc, sum, sc;
        dl__str none = { "", 0 };
        int64_t one = 1;
        memset(&y, 0, sizeof y);
        y.kind = DL__OX_LAYER; y.l = l; y.rank = 2;
        memset(&sc, 0, sizeof sc);
        sc.kind = DL__OX_CONST;
        if ((rc = dl__ox_t_alloc(&sc.t, 0, 0, &one))) return dl__ox_failf(ox, rc, "out of memory");
        sc.t.f[0] = beta;
        if (beta == 1.0f || !(rc = dl__ox_combine(ox, cl, n->in[2], &sc, none, 2, &bc))) rc = dl__ox_combine(ox, &y, none, beta == 1.0f ? cl : &bc, n->in[2], 0, &sum);
        dl__ox_t_free(&sc.t);
        return rc ? rc : dl__ox_alias(ox, 0, &sum);
    }
    return dl__ox_out_layer(ox, 0, l, 2);
}

static void dl__ox_layer_name(const char *p, size_t n, char out[32]);
/* Constant t as a layer of shape d[0..n-1] (its size), fed by feed (NULL:
   none; dl_constant_for). It takes the constant's name where that is free
   (so exported constants round-trip). */
static int dl__ox_const_for(dl__ox *ox, const dl__ox_t *t, dl__str name, int n, const int64_t *d, dl_layer *feed, dl_layer **l) {
    int shape[3], k, rc;
    char nm[32];
    float *f;
    size_t e;
    if (!t->count) return dl__ox_unsup(ox, "an empty constant");
    for (k = 0; k < n; k++) {
        if (d[k] < 1 || d[k] > INT_MAX) return dl__ox_unsup(ox, "a constant dim of %lld", (long long)d[k]);
        shape[k] = (int)d[k];
    }
    if (!(f = (float *)dl__calloc(t->count, sizeof(float)))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    for (e = 0; e < t->count; e++) f[e] = (float)dl__ox_get(t, e);
    *l = feed ? dl_constant_for(feed, n, shape, f) : dl_constant(ox->net, n, shape, f);
    DL_FREE(f);
    if ((rc = dl__ox_take(ox, *l))) return rc;
    dl__ox_layer_name(name.p, name.n, nm);
    if (name.n && !dl_net_find(ox->net, nm)) dl_layer_set_name(*l, nm);
    return DL_OK;
}
static int dl__ox_const_as(dl__ox *ox, const dl__ox_t *t, dl__str name, int n, const int64_t *d, dl_layer **l) {
    return dl__ox_const_for(ox, t, name, n, d, NULL, l);
}
static dl_layer *dl__ox_arith(int op, dl_layer *a, dl_layer *b) {
    return op == 0 ? dl_add(a, b) : op == 1 ? dl_sub(a, b) : op == 2 ? dl_mul(a, b) : dl_div(a, b);
}
/* a op b (0 add, 1 sub, 2 mul, 3 div): a layer and a layer or a constant,
   in either order; the result in *o, not bound. Layers with the batch first
   and constants the same for every sample map as they are (dl.h's
   broadcasting, aligned at the last dim, is ONNX's); anything else takes
   whole tensors (a batch of 1), their dims merged into at most 3 runs that
   broadcast alike. */
static int dl__ox_combine(dl__ox *ox, dl__ox_val *a, dl__str an, dl__ox_val *b, dl__str bn, int op, dl__ox_val *o) {
    dl__ox_val *v[2];
    dl__str nm[2];
    dl_layer *l[2];
    int64_t d[2][DL__OX_MAXR], od[DL__OX_MAXR], g[3][3];
    int r[2], ro, k, j, rc, ng = 0, last = -1, as_is = 1, varies = 0;
    v[0] = a; v[1] = b; nm[0] = an; nm[1] = bn;
    for (k = 0; k < 2; k++) r[k] = dl__ox_dims(ox, v[k], d[k]);
    if ((ro = dl__ox_bdims(d[0], r[0], d[1], r[1], od)) < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "shapes do not broadcast");
    memset(o, 0, sizeof *o);
    o->kind = DL__OX_LAYER; o->rank = ro;
    for (k = 0; k < 2; k++) {
        if (v[k]->kind == DL__OX_LAYER) as_is &= !v[k]->whole && r[k] == ro;
        else {
            varies |= r[k] == ro && d[k][0] != 1;
            as_is &= (r[k] < ro || d[k][0] == 1) && (ro >= 2 || v[k]->t.count == 1);
        }
    }
    if (as_is) {               /* per sample: the dims after the batch */
        for (k = 0; k < 2; k++) {
            int64_t one = 1;
            int skip = r[k] == ro;
            if (v[k]->kind == DL__OX_LAYER) l[k] = v[k]->l;
            else if ((rc = dl__ox_const_as(ox, &v[k]->t, nm[k], r[k] > skip ? r[k] - skip : 1, r[k] > skip ? d[k] + skip : &one, &l[k]))) return rc;
        }
        o->l = dl__ox_arith(op, l[0], l[1]);
        return dl__ox_take(ox, o->l);
    }
    for (k = 0; k < 2; k++)
        if ((rc = dl__ox_whole(ox, v[k], varies ? "a constant that varies along the batch" : "operands of different ranks (the batch would align with another dim)")))
            return rc;
    for (j = 0; j < ro; j++) {      /* runs of dims where a, b broadcast alike */
        int64_t x0 = j >= ro - r[0] ? d[0][j - (ro - r[0])] : 1, x1 = j >= ro - r[1] ? d[1][j - (ro - r[1])] : 1;
        int pat = (x0 == 1) | (x1 == 1) << 1;
        if (od[j] == 1) continue;
        if (pat != last) {
            if (ng == 3) return dl__ox_unsup(ox, "broadcasting along more than 3 runs of dims");
            g[0][ng] = g[1][ng] = g[2][ng] = 1;
            ng++;
            last = pat;
        }
        g[0][ng - 1] *= x0; g[1][ng - 1] *= x1; g[2][ng - 1] *= od[j];
    }
    if (!ng) g[0][ng] = g[1][ng] = g[2][ng] = 1, ng = 1;
    for (k = 0; k < 2; k++) {
        if (v[k]->kind == DL__OX_CONST) rc = dl__ox_const_as(ox, &v[k]->t, nm[k], ng, g[k], &l[k]);
        else l[k] = v[k]->l, rc = dl__ox_shape_as(ox, &l[k], ng, g[k]);
        if (rc) return rc;
    }
    o->l = dl__ox_arith(op, l[0], l[1]);
    o->whole = 1;
    memcpy(o->wd, od, sizeof od);
    return dl__ox_take(ox, o->l);
}
/* Add Sub Mul Div: constants fold; else dl__ox_combine */
static int dl__ox_binary(dl__ox *ox, const dl__ox_node *n) {
    static const char *const ops[4] = { "Add", "Sub", "Mul", "Div" };
    dl__ox_val *a = dl__ox_in(ox, 0), *b = dl__ox_in(ox, 1), o;
    int op = 0, rc;
    while (op < 3 && !dl__str_is(n->op, ops[op])) op++;
    if (!a || !b) return dl__ox_failf(ox, DL_ERR_FORMAT, "needs two inputs");
    if (a->kind == DL__OX_CONST && b->kind == DL__OX_CONST) return dl__ox_fold_binary(ox, &a->t, &b->t, op);
    if (a->kind != DL__OX_LAYER && b->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "no layer operand");
    if ((rc = dl__ox_combine(ox, a, n->in[0], b, n->in[1], op, &o))) return rc;
    return dl__ox_alias(ox, 0, &o);
}

/* Sum and Mean: layers of one shape add in one layer; anything else (constants, broadcasting) pairwise */
static int dl__ox_sum(dl__ox *ox, const dl__ox_node *n) {
    dl_layer *xs[DL__OX_MAXIO];
    int64_t d0[DL__OX_MAXR], d[DL__OX_MAXR];
    dl__ox_val acc, next, cnt;
    dl__str none = { "", 0 };
    int k, r0 = 0, rc, same = 1, mean = dl__str_is(n->op, "Mean");
    if (n->n_in < 1 || !dl__ox_in(ox, 0)) return dl__ox_failf(ox, DL_ERR_FORMAT, "no inputs");
    if (n->n_in == 1) return dl__ox_alias(ox, 0, dl__ox_in(ox, 0));
    for (k = 0; k < n->n_in; k++) {
        dl__ox_val *x = dl__ox_in(ox, k);
        if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "input %d is missing", k);
        if (!k) r0 = dl__ox_dims(ox, x, d0);
        same &= x->kind == DL__OX_LAYER && x->whole == dl__ox_in(ox, 0)->whole && dl__ox_dims(ox, x, d) == r0 && !memcmp(d, d0, (size_t)r0 * sizeof *d);
        if (same) xs[k] = x->l;
    }
    if (same && n->n_in > 1) {
        acc = *dl__ox_in(ox, 0);
        acc.l = dl_add_n(xs, n->n_in);
        if ((rc = dl__ox_take(ox, acc.l))) return rc;
    } else {
        acc = *dl__ox_in(ox, 0);
        for (k = 1; k < n->n_in; k++) {
            dl__ox_val *x = dl__ox_in(ox, k);
            if (acc.kind != DL__OX_LAYER && x->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "constants before the first layer");
            if ((rc = dl__ox_combine(ox, &acc, k == 1 ? n->in[0] : none, x, n->in[k], 0, &next))) return rc;
            acc = next;
        }
    }
    if (acc.kind != DL__OX_LAYER) return dl__ox_unsup(ox, "no layer operand");
    if (mean && n->n_in > 1) {
        int64_t one = 1;
        memset(&cnt, 0, sizeof cnt);
        cnt.kind = DL__OX_CONST;
        if ((rc = dl__ox_t_alloc(&cnt.t, 0, 0, &one))) return dl__ox_failf(ox, rc, "out of memory");
        cnt.t.f[0] = (float)n->n_in;
        rc = dl__ox_combine(ox, &acc, none, &cnt, none, 3, &next);
        dl__ox_t_free(&cnt.t);
        if (rc) return rc;
        acc = next;
    }
    return dl__ox_alias(ox, 0, &acc);
}

/* Concat of layers (and constants: whole tensors then) along any axis, each
   sample seen as (pre, axis, post) with the axis brought first */
static int dl__ox_concat_layers(dl__ox *ox, const dl__ox_node *n, int r, int a) {
    dl_layer *xs[DL__OX_MAXIO];
    int64_t d[DL__OX_MAXR], s[DL__OX_MAXR], p[3], sum = 0;
    int k, rc, ns = 0, ax = 0, whole = !a, varies = 0;
    for (k = 0; k < n->n_in; k++) {     /* constants [1, ...] are the same for every sample */
        dl__ox_val *x = dl__ox_in(ox, k);
        whole |= x->whole;
        varies |= x->kind == DL__OX_CONST && (x->t.ndim != r || x->t.dims[0] != 1);
    }
    whole |= varies;
    for (k = 0; k < n->n_in; k++) {
        dl__ox_val *x = dl__ox_in(ox, k);
        if (whole && (rc = dl__ox_whole(ox, x, varies ? "layers with constants that vary along the batch" : "concatenating along the batch"))) return rc;
        if (x->kind == DL__OX_CONST) {
            int64_t cnt = (int64_t)x->t.count;
            if ((rc = dl__ox_const_as(ox, &x->t, n->in[k], 1, &cnt, &xs[k]))) return rc;
        } else xs[k] = x->l;
        if ((ns = dl__ox_sample(ox, x, a, s, &ax)) < 1 || ax < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "inputs of different rank");
        dl__ox_split(s, ns, ax, ax + 1, p);
        sum += p[1];
        if ((rc = dl__ox_front(ox, &xs[k], p))) return rc;
    }
    for (k = 1; k < n->n_in; k++)       /* concat wants the dims after the first alike */
        if (xs[k]->ndim != xs[0]->ndim || memcmp(xs[k]->shape + 1, xs[0]->shape + 1, (size_t)(xs[0]->ndim - 1) * sizeof(int))) break;
    if (k < n->n_in)
        for (k = 0; k < n->n_in; k++) {
            int64_t two[2];
            two[0] = xs[k]->shape[0]; two[1] = p[0] * p[2];
            if ((rc = dl__ox_shape_as(ox, &xs[k], 2, two))) return rc;
        }
    xs[0] = dl_concat(xs, n->n_in);
    if ((rc = dl__ox_take(ox, xs[0]))) return rc;
    p[1] = sum;
    if ((rc = dl__ox_unfront(ox, &xs[0], p))) return rc;
    dl__ox_dims(ox, dl__ox_in(ox, 0), d);
    d[a] = sum;
    return dl__ox_out_dims(ox, 0, xs[0], r, d, whole);
}
/* Concat: layers (dl__ox_concat_layers), or constants folded */
static int dl__ox_concat(dl__ox *ox, const dl__ox_node *n) {
    int k, nl = 0, nc = 0, r = 0, rc;
    int64_t d[DL__OX_MAXR], a;
    for (k = 0; k < n->n_in; k++) {
        dl__ox_val *x = dl__ox_in(ox, k);
        if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "missing input");
        if (x->kind == DL__OX_LAYER) nl++; else nc++;
        r = dl__ox_dims(ox, x, d);
    }
    if (!n->n_in) return dl__ox_failf(ox, DL_ERR_FORMAT, "no inputs");
    a = dl__ox_norm_axis(dl__ox_ai(n, "axis", ox->opset < 4 ? 1 : 0), r);
    if (a < 0 || a >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
    if (nl) return dl__ox_concat_layers(ox, n, r, (int)a);
    else {
        dl__ox_t t;
        const dl__ox_t *c0 = &dl__ox_in(ox, 0)->t;
        int64_t od[DL__OX_MAXR], outer = 1, pos = 0;
        int isint = c0->isint;
        memcpy(od, c0->dims, sizeof od);
        od[a] = 0;
        for (k = 0; k < n->n_in; k++) {
            const dl__ox_t *c = &dl__ox_in(ox, k)->t;
            int j;
            if (c->ndim != r || c->isint != isint) return dl__ox_failf(ox, DL_ERR_FORMAT, "inputs of different rank or type");
            for (j = 0; j < r; j++) if (j != a && c->dims[j] != c0->dims[j]) return dl__ox_failf(ox, DL_ERR_FORMAT, "dims differ");
            od[a] += c->dims[a];
        }
        if ((rc = dl__ox_t_alloc(&t, isint, r, od))) return dl__ox_failf(ox, rc, "too large");
        for (k = 0; k < a; k++) outer *= od[k];
        for (k = 0; k < n->n_in; k++) {
            const dl__ox_t *c = &dl__ox_in(ox, k)->t;
            size_t inner = outer ? c->count / (size_t)outer : 0, oi = outer ? t.count / (size_t)outer : 0;
            int64_t o;
            for (o = 0; o < outer; o++) {
                if (isint) memcpy(t.i + (size_t)o * oi + (size_t)pos, c->i + (size_t)o * inner, inner * sizeof *t.i);
                else memcpy(t.f + (size_t)o * oi + (size_t)pos, c->f + (size_t)o * inner, inner * sizeof *t.f);
            }
            pos += (int64_t)inner;
        }
        return dl__ox_out_const(ox, 0, &t);
    }
}

/* Reshape to dims d of rank r: a view of a layer (the first dim stays the
   batch) or a copy of a constant */
static int dl__ox_reshape_to(dl__ox *ox, dl__ox_val *x, const int64_t *d, int r) {
    int rc;
    dl_layer *l;
    dl__ox_val *v;
    if (x->kind == DL__OX_CONST) {
        dl__ox_t t;
        if ((rc = dl__ox_t_alloc(&t, x->t.isint, r, d))) return dl__ox_failf(ox, rc, "too large");
        if (t.count != x->t.count) { dl__ox_t_free(&t); return dl__ox_failf(ox, DL_ERR_FORMAT, "reshape changes the element count"); }
        if (t.isint) memcpy(t.i, x->t.i, t.count * sizeof *t.i); else memcpy(t.f, x->t.f, t.count * sizeof *t.f);
        return dl__ox_out_const(ox, 0, &t);
    }
    if (x->whole && r >= 1 && r <= 4 && d[0] == 1) return dl__ox_out_dims(ox, 0, x->l, r, d, 0);
    if (x->whole || r < 1 || r > 4 || d[0] != ox->batch) {     /* the same layer, whole */
        if ((rc = dl__ox_whole(ox, x, r > 4 ? "rank over 4 (dl.h has up to 3 dims per sample)" : "a reshape that moves the batch dim"))) return rc;
        return dl__ox_bind(ox, 0, x->l, r, d);
    }
    l = x->l;
    if ((rc = dl__ox_view(ox, &l, r, d))) return rc;
    if (l != x->l) return dl__ox_out_layer(ox, 0, l, r);
    if (!(v = dl__ox_new(ox, ox->node->out[0]))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    v->kind = DL__OX_LAYER; v->l = l; v->rank = r;     /* the same layer (as [N] and [N,1] are) at the new rank */
    return DL_OK;
}

static int dl__ox_flatten(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    int64_t d[DL__OX_MAXR], o[2], a;
    int r, k, rc;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    r = dl__ox_dims(ox, x, d);
    a = dl__ox_norm_axis(dl__ox_ai(n, "axis", 1), r);
    if (a < 0 || a > r) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
    if (x->kind == DL__OX_LAYER && !x->whole && a > 0) {      /* [N, rest] when the dims before axis are 1 */
        for (k = 1; k < a && d[k] == 1; k++) {}
        o[0] = ox->batch; o[1] = x->l->size;
        if (k == a) return dl__ox_reshape_to(ox, x, o, 2);
    }
    if ((rc = dl__ox_whole(ox, x, a ? "merging dims into the batch" : "merging the batch"))) return rc;
    o[0] = o[1] = 1;
    for (k = 0; k < r; k++) o[k >= a] *= d[k];
    return dl__ox_reshape_to(ox, x, o, 2);
}

/* Reshape: 0 copies a dim (unless allowzero), -1 is inferred. With a
   symbolic batch the first dim must stay the batch: 0, the batch from a
   folded Shape, or -1 with the other dims one sample's size. */
static int dl__ox_reshape(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    const dl__ox_t *s = dl__ox_cin(ox, 1);
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR], prod = 1, total = 1;
    int r, k, inf = -1, bpos = -1, sym;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    if (!s || !s->isint || s->ndim != 1) return dl__ox_unsup(ox, "a shape that is not a constant (or foldable) 1-d int tensor");
    if (s->count < 1 || s->count > DL__OX_MAXR) return dl__ox_unsup(ox, "rank %lu", (unsigned long)s->count);
    r = dl__ox_dims(ox, x, d);
    sym = x->kind == DL__OX_LAYER && ox->batch == DL__OX_SYM;
    for (k = sym ? 1 : 0; k < r; k++) total *= d[k];
    for (k = 0; k < (int)s->count; k++) {
        int64_t v = s->i[k];
        if (v == 0 && !dl__ox_ai(n, "allowzero", 0)) {
            if (k >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "0 past the input's rank");
            v = d[k];
        }
        o[k] = v;
        if (v == DL__OX_SYM) {
            if (k || !sym) return dl__ox_unsup(ox, "the batch size moved to dim %d", k);
            bpos = k;
        } else if (v == -1 && inf < 0) inf = k;
        else if (v == 0) return dl__ox_unsup(ox, "a dim of 0 with allowzero (a tensor of no elements: dl.h's have one at least)");
        else if (v < 1) return dl__ox_unsup(ox, "dim %lld", (long long)v);
        else if (v > total || (prod *= v) > total) return dl__ox_failf(ox, DL_ERR_FORMAT, "reshape to more elements than the input");
    }
    if (sym && bpos < 0) {
        if (inf != 0) return dl__ox_unsup(ox, "a reshape that does not keep the batch dim first");
        o[0] = DL__OX_SYM;
        inf = -1;
    }
    if (inf >= 0) {
        if (total % prod) return dl__ox_failf(ox, DL_ERR_FORMAT, "cannot infer the -1 dim");
        o[inf] = total / prod;
    } else if (prod != total) return dl__ox_failf(ox, DL_ERR_FORMAT, "reshape changes the element count");
    return dl__ox_reshape_to(ox, x, o, (int)s->count);
}

/* More runs: each output dim in turn moved behind the others, a transpose
   of (before, dim, after) to (before, after, dim) */
static int dl__ox_transpose_steps(dl__ox *ox, dl_layer **l, int r, const int64_t *d, const int64_t *perm) {
    static const int p021[3] = { 0, 2, 1 };
    int cur[DL__OX_MAXR], k, j, pos, rc;
    for (k = 0; k < r; k++) cur[k] = k;
    for (k = 0; k < r; k++) {
        int64_t v[3] = { 1, 1, 1 };
        if (d[perm[k]] == 1) continue;
        for (pos = 0; cur[pos] != perm[k]; pos++) {}
        for (j = 0; j < r; j++) v[j < pos ? 0 : j == pos ? 1 : 2] *= d[cur[j]];
        if (v[2] == 1) continue;
        if ((rc = dl__ox_shape_as(ox, l, 3, v))) return rc;
        if ((rc = dl__ox_take(ox, *l = dl_transpose(*l, p021)))) return rc;
        for (j = pos; j < r - 1; j++) cur[j] = cur[j + 1];
        cur[r - 1] = (int)perm[k];
    }
    return DL_OK;
}
/* A transpose of a whole tensor: dims of 1 dropped, output dims that are
   consecutive input dims form runs; up to 3 runs are one dl.h transpose. */
static int dl__ox_transpose_whole(dl__ox *ox, dl__ox_val *x, const int64_t *perm, const int64_t *o) {
    int64_t d[DL__OX_MAXR], gd[3];
    int r, k, j, rc, ng = 0, start[3], order[3], tp[3] = { 0, 0, 0 }, prev = -1, moved = 0;
    dl_layer *l;
    if ((rc = dl__ox_whole(ox, x, "a transpose that moves the batch dim"))) return rc;
    r = dl__ox_dims(ox, x, d);
    for (k = 0; k < r; k++) {
        int p = (int)perm[k];
        if (d[p] == 1) continue;
        for (j = prev + 1; j < p && d[j] == 1; j++) {}
        if (!ng || j != p) {
            if (ng == 3) {
                l = x->l;
                return (rc = dl__ox_transpose_steps(ox, &l, r, d, perm)) ? rc : dl__ox_bind(ox, 0, l, r, o);
            }
            start[ng] = p; gd[ng++] = 1;
        }
        gd[ng - 1] *= d[p];
        prev = p;
    }
    for (k = 0; k < ng; k++) {          /* order[k]: run k's place in the input */
        order[k] = 0;
        for (j = 0; j < ng; j++) order[k] += start[j] < start[k];
        moved |= order[k] != k;
    }
    l = x->l;
    if (moved) {
        int64_t in[3];
        for (k = 0; k < ng; k++) in[order[k]] = gd[k];
        for (k = 0; k < ng; k++) tp[k] = order[k];
        if ((rc = dl__ox_shape_as(ox, &l, ng, in))) return rc;
        l = dl_transpose(l, tp);
        if ((rc = dl__ox_take(ox, l))) return rc;
    }
    return dl__ox_bind(ox, 0, l, r, o);
}

/* Transpose: of a layer with the batch first, per sample; else whole */
static int dl__ox_transpose(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR], perm[DL__OX_MAXR];
    int r, k, c, last = -1, moves = 0;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    r = dl__ox_dims(ox, x, d);
    c = dl__ox_aints(n, "perm", perm, DL__OX_MAXR);
    if (c < 0) { c = r; for (k = 0; k < r; k++) perm[k] = r - 1 - k; }
    if (c != r) return dl__ox_failf(ox, DL_ERR_FORMAT, "perm of length %d for rank %d", c, r);
    for (k = 0; k < r; k++) {
        if (perm[k] < 0 || perm[k] >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "perm out of range");
        o[k] = d[perm[k]];
        if (o[k] != 1 || (x->kind == DL__OX_LAYER && perm[k] == 0)) {
            if (perm[k] < last) {
                moves = 1;
            }
            last = (int)perm[k];
        }
    }
    if (x->kind == DL__OX_LAYER && (perm[0] != 0 || x->whole)) return dl__ox_transpose_whole(ox, x, perm, o);
    if (x->kind == DL__OX_LAYER && moves) {     /* per sample: dim k is the input's perm[k + 1] - 1 */
        int pp[3];
        if (r < 2 || r > 4) return dl__ox_unsup(ox, "a transpose of rank %d", r);
        for (k = 1; k < r; k++) pp[k - 1] = (int)perm[k] - 1;
        return dl__ox_out_layer(ox, 0, dl_transpose(x->l, pp), r);
    }
    if (x->kind == DL__OX_CONST && moves) {    /* folded: out[e] = in[e's index under perm] */
        dl__ox_t t;
        size_t e, st[DL__OX_MAXR];
        int rc;
        if ((rc = dl__ox_t_alloc(&t, x->t.isint, r, o))) return dl__ox_failf(ox, rc, "too large");
        for (k = r - 1, e = 1; k >= 0; k--) { st[k] = e; e *= (size_t)d[k]; }
        for (e = 0; e < t.count; e++) {
            size_t rem = e, src = 0;
            for (k = r - 1; k >= 0; k--) { src += (rem % (size_t)o[k]) * st[perm[k]]; rem /= (size_t)o[k]; }
            if (t.isint) t.i[e] = x->t.i[src]; else t.f[e] = x->t.f[src];
        }
        return dl__ox_out_const(ox, 0, &t);
    }
    return dl__ox_reshape_to(ox, x, o, r);
}

/* Unsqueeze and Squeeze: a reshape (axes from the attribute before opset 13, the input after) */
static int dl__ox_squeeze(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    const dl__ox_t *ax = dl__ox_cin(ox, 1);
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR], axes[DL__OX_MAXR];
    int r, k, j, na, ro, un = dl__str_is(n->op, "Unsqueeze");
    unsigned mark = 0;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    r = dl__ox_dims(ox, x, d);
    if (n->n_in > 1 && n->in[1].n) {
        if (!ax || !ax->isint || ax->count > DL__OX_MAXR) return dl__ox_unsup(ox, "axes that are not constant");
        na = (int)ax->count;
        for (k = 0; k < na; k++) axes[k] = ax->i[k];
    } else if ((na = dl__ox_aints(n, "axes", axes, DL__OX_MAXR)) > DL__OX_MAXR) return dl__ox_unsup(ox, "too many axes");
    ro = un ? r + na : r;
    if (ro > DL__OX_MAXR) return dl__ox_unsup(ox, "rank over %d", DL__OX_MAXR);
    for (k = 0; k < na; k++) {
        int64_t a = dl__ox_norm_axis(axes[k], ro);
        if (a < 0 || a >= ro || (mark >> a & 1)) return dl__ox_failf(ox, DL_ERR_FORMAT, "bad axes");
        if (!un && d[a] != 1) return dl__ox_failf(ox, DL_ERR_FORMAT, "squeezing a dim that is not 1");
        mark |= 1u << a;
    }
    if (!un && na < 0) for (k = 0; k < r; k++) if (d[k] == 1 && (k || x->kind == DL__OX_CONST || x->whole)) mark |= 1u << k;
    for (k = j = 0; k < ro; k++) {
        if (un) o[k] = (mark >> k & 1) ? 1 : d[j++];
        else if (!(mark >> k & 1)) o[j++] = d[k];
    }
    return dl__ox_reshape_to(ox, x, o, un ? ro : j);
}

/* Constant: value, value_float(s), value_int(s) */
static int dl__ox_constant(dl__ox *ox, const dl__ox_node *n) {
    dl__pbf f;
    dl__ox_t t;
    int64_t one = 1, iv[1];
    int rc, k;
    long c;
    if (dl__ox_attr(n, "value", 5, &f, NULL)) {
        if ((rc = dl__ox_tensor(ox, f.s, f.n, &t, NULL))) return rc;
        return dl__ox_out_const(ox, 0, &t);
    }
    if (dl__ox_attr(n, "value_float", 2, &f, NULL) || dl__ox_attr(n, "value_int", 3, &f, NULL)) {
        int isint = f.field == 3;
        if ((rc = dl__ox_t_alloc(&t, isint, 0, &one))) return dl__ox_failf(ox, rc, "out of memory");
        if (isint) t.i[0] = (int64_t)f.v; else t.f[0] = dl__ox_af(n, "value_float", 0);
        return dl__ox_out_const(ox, 0, &t);
    }
    if (dl__ox_attr(n, "value_floats", 0, &f, &k) || dl__ox_attr(n, "value_ints", 0, &f, &k)) {
        int isint = dl__str_is(n->attr_name[k], "value_ints");
        c = dl__pb_repeated(n->attr[k], n->attr_len[k], isint ? 8 : 7, isint ? 0 : 4, NULL);
        iv[0] = c;
        if ((rc = dl__ox_t_alloc(&t, isint, 1, iv))) return dl__ox_failf(ox, rc, "out of memory");
        dl__pb_repeated(n->attr[k], n->attr_len[k], isint ? 8 : 7, isint ? 0 : 4, isint ? (void *)t.i : (void *)t.f);
        return dl__ox_out_const(ox, 0, &t);
    }
    return dl__ox_unsup(ox, "a sparse or string constant");
}

/* Shape: of a layer, the batch dim is DL__OX_SYM unless the input fixes it */
static int dl__ox_shape(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    int64_t d[DL__OX_MAXR], c;
    dl__ox_t t;
    int r, rc;
    int64_t s, e;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    r = dl__ox_dims(ox, x, d);
    s = dl__ox_norm_axis(dl__ox_ai(n, "start", 0), r);
    e = dl__ox_norm_axis(dl__ox_ai(n, "end", r), r);
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < s ? s : e > r ? r : e;
    c = e - s;
    if ((rc = dl__ox_t_alloc(&t, 1, 1, &c))) return dl__ox_failf(ox, rc, "out of memory");
    memcpy(t.i, d + s, (size_t)c * sizeof *t.i);
    return dl__ox_out_const(ox, 0, &t);
}

/* Gather from a layer along axis a: runs of consecutive indices are channel
   slices of the sample seen as (axis, pre * post), concatenated */
static int dl__ox_gather_layer(dl__ox *ox, dl__ox_val *x, const dl__ox_t *ix, int64_t a) {
    dl_layer *parts[DL__OX_MAXIO], *l;
    int64_t d[DL__OX_MAXR], s[DL__OX_MAXR], od[DL__OX_MAXR], p[3];
    int r, ro, ns, ax, k, rc, np = 0;
    size_t j, j0;
    if (!ix->count) return dl__ox_unsup(ox, "no indices");
    if (a == 0 && (rc = dl__ox_whole(ox, x, "gathering along the batch"))) return rc;
    r = dl__ox_dims(ox, x, d);
    if ((ro = r - 1 + ix->ndim) > DL__OX_MAXR) return dl__ox_unsup(ox, "rank over %d", DL__OX_MAXR);
    ns = dl__ox_sample(ox, x, a, s, &ax);
    dl__ox_split(s, ns, ax, ax + 1, p);
    l = x->l;
    if ((rc = dl__ox_front(ox, &l, p))) return rc;
    for (j0 = 0; j0 < ix->count; j0 = j) {
        int64_t i0 = ix->i[j0] < 0 ? ix->i[j0] + d[a] : ix->i[j0];
        for (j = j0 + 1; j < ix->count && (ix->i[j] < 0 ? ix->i[j] + d[a] : ix->i[j]) == i0 + (int64_t)(j - j0); j++) {}
        if (i0 < 0 || i0 + (int64_t)(j - j0) > d[a]) return dl__ox_failf(ox, DL_ERR_FORMAT, "index %lld out of range", (long long)ix->i[j0]);
        if (np == DL__OX_MAXIO) return dl__ox_unsup(ox, "indices in over %d runs", DL__OX_MAXIO);
        parts[np] = i0 == 0 && (int64_t)(j - j0) == d[a] ? l : dl_slice_channels(l, (int)i0, (int)(i0 + (int64_t)(j - j0)));
        if (parts[np] != l && (rc = dl__ox_take(ox, parts[np]))) return rc;
        np++;
    }
    if (np > 1 && (rc = dl__ox_take(ox, parts[0] = dl_concat(parts, np)))) return rc;
    p[1] = (int64_t)ix->count;
    if ((rc = dl__ox_unfront(ox, &parts[0], p))) return rc;
    for (k = 0; k < a; k++) od[k] = d[k];
    for (k = 0; k < ix->ndim; k++) od[a + k] = ix->dims[k];
    for (k = (int)a + 1; k < r; k++) od[k - 1 + ix->ndim] = d[k];
    if (!x->whole && ro < 1) return dl__ox_unsup(ox, "a scalar out of a batch");
    return dl__ox_out_dims(ox, 0, parts[0], ro, od, x->whole);
}
/* Gather: of a layer (dl__ox_gather_layer) or constants (indices may be negative) */
static int dl__ox_gather(dl__ox *ox, const dl__ox_node *n) {
    const dl__ox_t *x = dl__ox_cin(ox, 0), *ix = dl__ox_cin(ox, 1);
    int64_t d[DL__OX_MAXR], a, outer = 1, inner = 1, o, j;
    dl__ox_t t;
    int k, r, rc;
    if (!ix || !ix->isint) return dl__ox_unsup(ox, "indices that are not a constant int tensor");
    if (!x) {
        dl__ox_val *xv = dl__ox_in(ox, 0);
        int64_t dd[DL__OX_MAXR];
        if (!xv || xv->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "no input");
        a = dl__ox_norm_axis(dl__ox_ai(n, "axis", 0), dl__ox_dims(ox, xv, dd));
        if (a < 0 || a >= dl__ox_dims(ox, xv, dd)) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
        return dl__ox_gather_layer(ox, xv, ix, a);
    }
    if (!ix->isint) return dl__ox_failf(ox, DL_ERR_FORMAT, "float indices");
    a = dl__ox_norm_axis(dl__ox_ai(n, "axis", 0), x->ndim);
    if (a < 0 || a >= x->ndim) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
    if ((r = x->ndim - 1 + ix->ndim) > DL__OX_MAXR) return dl__ox_unsup(ox, "rank over %d", DL__OX_MAXR);
    for (k = 0; k < a; k++) { d[k] = x->dims[k]; outer *= x->dims[k]; }
    for (k = 0; k < ix->ndim; k++) d[a + k] = ix->dims[k];
    for (k = (int)a + 1; k < x->ndim; k++) { d[k - 1 + ix->ndim] = x->dims[k]; inner *= x->dims[k]; }
    if ((rc = dl__ox_t_alloc(&t, x->isint, r, d))) return dl__ox_failf(ox, rc, "too large");
    for (o = 0; o < outer; o++)
        for (j = 0; j < (int64_t)ix->count; j++) {
            int64_t i = ix->i[j] < 0 ? ix->i[j] + x->dims[a] : ix->i[j];
            size_t src = ((size_t)o * (size_t)x->dims[a] + (size_t)i) * (size_t)inner, dst = ((size_t)o * ix->count + (size_t)j) * (size_t)inner;
            if (i < 0 || i >= x->dims[a]) { dl__ox_t_free(&t); return dl__ox_failf(ox, DL_ERR_FORMAT, "index %lld out of range", (long long)ix->i[j]); }
            if (t.isint) memcpy(t.i + dst, x->i + src, (size_t)inner * sizeof *t.i);
            else memcpy(t.f + dst, x->f + src, (size_t)inner * sizeof *t.f);
        }
    return dl__ox_out_const(ox, 0, &t);
}

/* Cast: of a constant to float or int; of a layer to float is the identity */
static int dl__ox_cast(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    int64_t to = dl__ox_ai(n, "to", 0);
    int toint = to != DL__OX_FLOAT && to != DL__OX_FLOAT16 && to != DL__OX_DOUBLE, rc;
    dl__ox_t t;
    size_t k;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    if (to < 1 || to > 13 || to == DL__OX_STRING) return dl__ox_unsup(ox, "cast to type %lld", (long long)to);
    if (x->kind == DL__OX_LAYER) {
        if (to != DL__OX_FLOAT) return dl__ox_unsup(ox, "a layer cast to type %lld", (long long)to);
        return dl__ox_alias(ox, 0, x);
    }
    if (to != DL__OX_INT64 && to != DL__OX_INT32 && to != DL__OX_FLOAT) return dl__ox_unsup(ox, "folding a cast to type %lld", (long long)to);
    if (!toint && (rc = dl__ox_symcheck(ox, &x->t))) return rc;
    if ((rc = dl__ox_t_alloc(&t, toint, x->t.ndim, x->t.dims))) return dl__ox_failf(ox, rc, "too large");
    for (k = 0; k < t.count; k++) {
        if (!toint) t.f[k] = (float)dl__ox_get(&x->t, k);
        else if (x->t.isint) t.i[k] = to == DL__OX_INT32 && x->t.i[k] != DL__OX_SYM ? (int32_t)x->t.i[k] : x->t.i[k];
        else {
            float v = x->t.f[k];
            if (!(v > -9.2e18f && v < 9.2e18f)) { dl__ox_t_free(&t); return dl__ox_unsup(ox, "casting %g to an integer", (double)v); }
            t.i[k] = to == DL__OX_INT32 ? (int32_t)v : (int64_t)v;
        }
    }
    return dl__ox_out_const(ox, 0, &t);
}

/* ConstantOfShape: the value attribute (one element; default float 0) */
static int dl__ox_constofshape(dl__ox *ox, const dl__ox_node *n) {
    const dl__ox_t *s = dl__ox_cin(ox, 0);
    dl__ox_t v, t;
    dl__pbf f;
    int rc;
    size_t k;
    memset(&v, 0, sizeof v);
    if (!s || !s->isint || s->ndim != 1 || s->count > DL__OX_MAXR) return dl__ox_unsup(ox, "a shape that is not a constant");
    if ((rc = dl__ox_symcheck(ox, s))) return rc;
    if (dl__ox_attr(n, "value", 5, &f, NULL) && (rc = dl__ox_tensor(ox, f.s, f.n, &v, NULL))) return rc;
    if (v.count > 1 || (v.count == 0 && (v.f || v.i))) { dl__ox_t_free(&v); return dl__ox_failf(ox, DL_ERR_FORMAT, "value must have one element"); }
    if ((rc = dl__ox_t_alloc(&t, v.isint, (int)s->count, s->i))) { dl__ox_t_free(&v); return dl__ox_failf(ox, rc, "too large"); }
    for (k = 0; k < t.count; k++) {
        if (t.isint) t.i[k] = v.i ? v.i[0] : 0;
        else t.f[k] = v.f ? v.f[0] : 0.0f;
    }
    dl__ox_t_free(&v);
    return dl__ox_out_const(ox, 0, &t);
}

/* A float constant expanded to [batch, o...] (the batch from a folded Shape;
   how dl.h exports constants a Concat reads): the same for every sample, a
   constant layer fed by the input */
static int dl__ox_expand_batch(dl__ox *ox, const dl__ox_node *n, const dl__ox_val *x, int ro, int64_t *o) {
    dl__ox_t t;
    dl_layer *l;
    size_t k;
    int rc, j;
    if (ro > 4) return dl__ox_unsup(ox, "rank %d (dl.h has up to 3 dims per sample)", ro);
    for (j = 1; j < ro; j++) if (o[j] < 1) return dl__ox_unsup(ox, "a shape that is not fixed after the batch");
    o[0] = 1;
    if ((rc = dl__ox_t_alloc(&t, 0, ro, o))) return dl__ox_failf(ox, rc, "too large");
    for (k = 0; k < t.count; k++) t.f[k] = x->t.f[dl__ox_bcast(o, ro, &x->t, k)];
    o[0] = DL__OX_SYM;
    rc = dl__ox_const_for(ox, &t, n->in[0], ro - 1, o + 1, ox->input, &l);
    dl__ox_t_free(&t);
    return rc ? rc : dl__ox_out_dims(ox, 0, l, ro, o, 0);
}
/* Expand: constants broadcast; a layer only when nothing changes */
static int dl__ox_expand(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    const dl__ox_t *s = dl__ox_cin(ox, 1);
    int64_t d[DL__OX_MAXR], o[DL__OX_MAXR];
    dl__ox_t t;
    int r, ro, rc;
    size_t k;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    if (!s || !s->isint || s->ndim != 1 || s->count > DL__OX_MAXR) return dl__ox_unsup(ox, "a shape that is not a constant");
    r = dl__ox_dims(ox, x, d);
    if ((ro = dl__ox_bdims(d, r, s->i, (int)s->count, o)) < 0) return dl__ox_failf(ox, DL_ERR_FORMAT, "shapes do not broadcast");
    if (x->kind == DL__OX_LAYER) {     /* x * ones(shape), exact */
        dl__ox_val ones, y;
        dl__str none = { "", 0 };
        if (ro == r && !memcmp(o, d, (size_t)r * sizeof *d)) return dl__ox_alias(ox, 0, x);
        for (k = 0; k < s->count; k++) if (s->i[k] < 1) return dl__ox_unsup(ox, "a shape that is not fixed");
        memset(&ones, 0, sizeof ones);
        ones.kind = DL__OX_CONST;
        if ((rc = dl__ox_t_alloc(&ones.t, 0, (int)s->count, s->i))) return dl__ox_failf(ox, rc, "too large");
        for (k = 0; k < ones.t.count; k++) ones.t.f[k] = 1.0f;
        rc = dl__ox_combine(ox, x, n->in[0], &ones, none, 2, &y);
        dl__ox_t_free(&ones.t);
        return rc ? rc : dl__ox_alias(ox, 0, &y);
    }
    if (!x->t.isint && ro == (int)s->count && ro > 1 && o[0] == DL__OX_SYM) return dl__ox_expand_batch(ox, n, x, ro, o);
    if ((rc = dl__ox_symcheck(ox, s))) return rc;
    if ((rc = dl__ox_t_alloc(&t, x->t.isint, ro, o))) return dl__ox_failf(ox, rc, "too large");
    for (k = 0; k < t.count; k++) {
        size_t i = dl__ox_bcast(o, ro, &x->t, k);
        if (t.isint) t.i[k] = x->t.i[i]; else t.f[k] = x->t.f[i];
    }
    return dl__ox_out_const(ox, 0, &t);
}

/* Slice: of a layer along channels only (step 1); starts, ends, axes,
   steps are attributes before opset 10, constant inputs from it on */
static int dl__ox_slice(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    int64_t v[4][DL__OX_MAXR], d[DL__OX_MAXR], b, e;
    int cnt[4] = { -1, -1, -1, -1 }, k, j = 0, r, rc, ch = -1;
    static const char *const names[4] = { "starts", "ends", "axes", "steps" };
    if ((rc = dl__ox_layer_in(ox, 0, &x))) return rc;
    r = dl__ox_dims(ox, x, d);
    for (k = 0; k < 4; k++) {
        if (ox->opset < 10) { if (k < 3) cnt[k] = dl__ox_aints(n, names[k], v[k], DL__OX_MAXR); continue; }
        if (n->n_in > k + 1 && n->in[k + 1].n) {
            const dl__ox_t *t = dl__ox_cin(ox, k + 1);
            if (!t || !t->isint || t->count > DL__OX_MAXR) return dl__ox_unsup(ox, "%s that are not constant", names[k]);
            cnt[k] = (int)t->count;
            for (j = 0; j < cnt[k]; j++) v[k][j] = t->i[j];
        }
    }
    if (cnt[0] < 0 || cnt[1] != cnt[0] || (cnt[2] >= 0 && cnt[2] != cnt[0]) || (cnt[3] >= 0 && cnt[3] != cnt[0]))
        return dl__ox_failf(ox, DL_ERR_FORMAT, "starts, ends, axes and steps of different lengths");
    for (k = 0; k < cnt[0]; k++) {
        int64_t a = dl__ox_norm_axis(cnt[2] >= 0 ? v[2][k] : k, r), lim;
        if (a < 0 || a >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
        if (cnt[3] >= 0 && v[3][k] != 1) return dl__ox_unsup(ox, "step %lld", (long long)v[3][k]);
        lim = a ? d[a] : 0;
        b = v[0][k] < 0 ? v[0][k] + lim : v[0][k]; e = v[1][k] < 0 ? v[1][k] + lim : v[1][k];
        b = b < 0 ? 0 : b > lim ? lim : b; e = e < 0 ? 0 : e > lim ? lim : e;
        if (a == 1 && r >= 2) { ch = (int)b; j = (int)e; }
        else if (!a) return dl__ox_unsup(ox, "slicing along the batch dim");
        else if (b != 0 || e != d[a]) return dl__ox_unsup(ox, "slicing along dim %lld (channels only)", (long long)a);
    }
    if (ch < 0) return dl__ox_alias(ox, 0, x);
    if (j <= ch) return dl__ox_unsup(ox, "an empty slice");
    return dl__ox_out_layer(ox, 0, dl_slice_channels(x->l, ch, j), r);
}

/* Pad: pads (attribute before opset 11, input from it on) along H and W of
   an image; all-zero pads are the identity at any rank */
static int dl__ox_pad(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x = dl__ox_in(ox, 0);
    const dl__ox_t *p = dl__ox_cin(ox, 1), *cv = dl__ox_cin(ox, 2);
    int64_t v[2 * DL__OX_MAXR], d[DL__OX_MAXR];
    dl__str mode = dl__ox_as(n, "mode", "constant");
    dl_pad_desc pd;
    int c = 0, k, r, zero = 1;
    if (!x) return dl__ox_failf(ox, DL_ERR_FORMAT, "no input");
    r = dl__ox_dims(ox, x, d);
    memset(&pd, 0, sizeof pd);
    if (ox->opset >= 11) {
        if (n->n_in > 3 && n->in[3].n) return dl__ox_unsup(ox, "axes");
        if (n->n_in > 1 && n->in[1].n) {
            if (!p || !p->isint || p->count > 2 * DL__OX_MAXR) return dl__ox_unsup(ox, "pads that are not constant");
            c = (int)p->count;
            for (k = 0; k < c; k++) v[k] = p->i[k];
        }
        if (n->n_in > 2 && n->in[2].n) {
            if (!cv || cv->count != 1) return dl__ox_unsup(ox, "a constant_value that is not a constant scalar");
            pd.value = (float)dl__ox_get(cv, 0);
        }
    } else {
        c = dl__ox_aints(n, "pads", v, 2 * DL__OX_MAXR);
        pd.value = dl__ox_af(n, "value", 0);
    }
    if (c < 0) c = 0;
    for (k = 0; k < c && k < 2 * DL__OX_MAXR; k++) zero &= v[k] == 0;
    if (zero) return dl__ox_alias(ox, 0, x);
    if (x->kind != DL__OX_LAYER) return dl__ox_unsup(ox, "padding a constant");
    if (c != 2 * r) return dl__ox_failf(ox, DL_ERR_FORMAT, "pads of %d for rank %d", c, r);
    if (r != 4 || v[0] || v[1] || v[r] || v[r + 1]) return dl__ox_unsup(ox, "pads other than along H and W of an image");
    for (k = 0; k < 2 * r; k++) if (v[k] < 0 || v[k] > (1 << 20)) return dl__ox_unsup(ox, "pads %lld (cropping)", (long long)v[k]);
    pd.top = (int)v[2]; pd.left = (int)v[3]; pd.bottom = (int)v[6]; pd.right = (int)v[7];
    if (dl__str_is(mode, "reflect")) pd.mode = DL_PAD_REFLECT;
    else if (dl__str_is(mode, "edge")) pd.mode = DL_PAD_EDGE;
    else if (!dl__str_is(mode, "constant")) return dl__ox_unsup(ox, "mode %.*s", (int)mode.n, mode.p);
    if (pd.mode == DL_PAD_REFLECT && (pd.top >= d[2] || pd.bottom >= d[2] || pd.left >= d[3] || pd.right >= d[3]))
        return dl__ox_unsup(ox, "reflecting pads not less than the size");
    if (!(pd.value == pd.value) || isinf(pd.value)) return dl__ox_unsup(ox, "a value that is not finite");
    return dl__ox_out_layer(ox, 0, dl_pad_ex(x->l, &pd), r);
}

/* ReduceSum, ReduceMean, ReduceSumSquare (x x first): axes an attribute
   before opset 13 (ReduceSum) or 18 (the others), an input after; the
   sample's dims merged into runs reduced or kept, at most 3, for dl.h's
   reduce layer */
static int dl__ox_reduce(dl__ox *ox, const dl__ox_node *n) {
    dl__ox_val *x;
    int64_t d[DL__OX_MAXR], ax[DL__OX_MAXR], s[DL__OX_MAXR] = { 0 }, g[3], od[DL__OX_MAXR];
    int mean = dl__str_is(n->op, "ReduceMean"), sq = dl__str_is(n->op, "ReduceSumSquare"), keep = (int)dl__ox_ai(n, "keepdims", 1);
    int r, na, k, rc, ns, off, ng = 0, ro = 0, last = -1;
    int flags[3] = { 0, 0, 0 }, axes[3], nf = 0;
    unsigned mark = 0;
    dl_layer *l;
    if ((rc = dl__ox_any_in(ox, 0, &x))) return rc;
    r = dl__ox_dims(ox, x, d);
    if (ox->opset >= (mean || sq ? 18 : 13)) {
        const dl__ox_t *t = dl__ox_cin(ox, 1);
        na = 0;
        if (n->n_in > 1 && n->in[1].n) {
            if (!t || !t->isint || t->count > DL__OX_MAXR) return dl__ox_unsup(ox, "axes that are not constant");
            for (na = 0; na < (int)t->count; na++) ax[na] = t->i[na];
        }
    } else if ((na = dl__ox_aints(n, "axes", ax, DL__OX_MAXR)) > DL__OX_MAXR) return dl__ox_unsup(ox, "too many axes");
    if (na <= 0 && dl__ox_ai(n, "noop_with_empty_axes", 0)) return sq ? dl__ox_out_like(ox, 0, dl_mul(x->l, x->l), x) : dl__ox_alias(ox, 0, x);
    if (na <= 0) for (na = 0; na < r; na++) ax[na] = na;
    for (k = 0; k < na; k++) {
        int64_t a = dl__ox_norm_axis(ax[k], r);
        if (a < 0 || a >= r) return dl__ox_failf(ox, DL_ERR_FORMAT, "axis out of range");
        mark |= 1u << a;
    }
    if ((mark & 1) && (rc = dl__ox_whole(ox, x, "reducing along the batch"))) return rc;
    off = !x->whole;
    ns = dl__ox_sample(ox, x, 0, s, &k);
    for (k = 0; k < ns; k++) {          /* runs of reduced or kept dims (dims of 1 join either) */
        int red = (int)(mark >> (k + off) & 1);
        if (s[k] == 1 && ng) { continue; }
        if (red != last) {
            if (ng == 3) return dl__ox_unsup(ox, "reducing more than 3 runs of dims");
            g[ng] = 1; flags[ng++] = red; last = red;
        }
        g[ng - 1] *= s[k];
    }
    if (!ng) g[ng++] = 1;
    for (k = 0; k < ng; k++) if (flags[k]) axes[nf++] = k;
    for (k = 0; k < r; k++) if (!(mark >> k & 1)) od[ro++] = d[k]; else if (keep) od[ro++] = 1;
    l = x->l;
    if (sq && (rc = dl__ox_take(ox, l = dl_mul(l, l)))) return rc;
    if ((rc = dl__ox_shape_as(ox, &l, ng, g))) return rc;
    if (nf) {
        l = mean ? dl_reduce_mean(l, axes, nf, 1) : dl_reduce_sum(l, axes, nf, 1);
        if ((rc = dl__ox_take(ox, l))) return rc;
    }
    if (!x->whole && ro < 1) return dl__ox_unsup(ox, "a scalar out of a batch");
    return dl__ox_out_dims(ox, 0, l, ro, od, x->whole);
}

/* One row per ONNX op; a new op is one row and one function. Where opsets
   differ the function asks ox->opset, or the older form's attributes are
   missing from the row (so refused). */
static const dl__ox_op dl__ox_ops[] = {
    { "Add", "", dl__ox_binary },
    { "AveragePool", "auto_pad ceil_mode count_include_pad dilations kernel_shape pads strides", dl__ox_pool },
    { "BatchNormalization", "epsilon is_test momentum training_mode spatial", dl__ox_batchnorm },
    { "Cast", "to saturate", dl__ox_cast },
    { "Clip", "max min", dl__ox_clip },
    { "Concat", "axis", dl__ox_concat },
    { "Constant", "value value_float value_floats value_int value_ints", dl__ox_constant },
    { "ConstantOfShape", "value", dl__ox_constofshape },
    { "Conv", "auto_pad dilations group kernel_shape pads strides", dl__ox_conv },
    { "ConvTranspose", "auto_pad dilations group kernel_shape output_padding output_shape pads strides", dl__ox_convt },
    { "Div", "", dl__ox_binary },
    { "Dropout", "is_test ratio seed", dl__ox_identity },
    { "Elu", "alpha", dl__ox_unary },
    { "Expand", "", dl__ox_expand },
    { "Flatten", "axis", dl__ox_flatten },
    { "Gather", "axis", dl__ox_gather },
    { "Gemm", "alpha beta broadcast transA transB", dl__ox_gemm },
    { "GlobalAveragePool", "", dl__ox_global },
    { "GlobalMaxPool", "", dl__ox_global },
    { "HardSigmoid", "alpha beta", dl__ox_unary },
    { "HardSwish", "", dl__ox_unary },
    { "Identity", "", dl__ox_identity },
    { "LeakyRelu", "alpha", dl__ox_unary },
    { "LogSoftmax", "axis", dl__ox_softmax },
    { "MatMul", "", dl__ox_gemm },
    { "MaxPool", "auto_pad ceil_mode dilations kernel_shape pads storage_order strides", dl__ox_pool },
    { "Mean", "", dl__ox_sum },
    { "Mul", "", dl__ox_binary },
    { "PRelu", "", dl__ox_prelu },
    { "Pad", "mode pads value", dl__ox_pad },
    { "ReduceMean", "axes keepdims", dl__ox_reduce },
    { "ReduceSum", "axes keepdims noop_with_empty_axes", dl__ox_reduce },
    { "ReduceSumSquare", "axes keepdims noop_with_empty_axes", dl__ox_reduce },
    { "Relu", "", dl__ox_unary },
    { "Reshape", "allowzero", dl__ox_reshape },
    { "Resize", "antialias coordinate_transformation_mode cubic_coeff_a exclude_outside extrapolation_value mode nearest_mode", dl__ox_resize },
    { "Selu", "alpha gamma", dl__ox_unary },
    { "Shape", "end start", dl__ox_shape },
    { "Sigmoid", "", dl__ox_unary },
    { "Slice", "axes ends starts", dl__ox_slice },
    { "Softmax", "axis", dl__ox_softmax },
    { "Softplus", "", dl__ox_unary },
    { "Sqrt", "", dl__ox_unary },
    { "Squeeze", "axes", dl__ox_squeeze },
    { "Sub", "", dl__ox_binary },
    { "Sum", "", dl__ox_sum },
    { "Tanh", "", dl__ox_unary },
    { "Transpose", "perm", dl__ox_transpose },
    { "Unsqueeze", "axes", dl__ox_squeeze },
    { "Upsample", "mode", dl__ox_resize }
};

static const dl__ox_op *dl__ox_lookup(dl__str op) {
    size_t k;
    for (k = 0; k < sizeof dl__ox_ops / sizeof dl__ox_ops[0]; k++)
        if (dl__str_is(op, dl__ox_ops[k].op)) return &dl__ox_ops[k];
    return NULL;
}
/* Every attribute of the node must be one its row understands. */
static int dl__ox_attrs_known(dl__ox *ox, const dl__ox_op *row, const dl__ox_node *n) {
    int k;
    for (k = 0; k < n->n_attr; k++) {
        const char *p = row->attrs;
        dl__str a = n->attr_name[k];
        int ok = 0;
        while (*p && !ok) {
            size_t len = strcspn(p, " ");
            ok = len == a.n && !memcmp(p, a.p, len);
            p += len + (p[len] == ' ');
        }
        if (!ok) return dl__ox_unsup(ox, "attribute '%.*s'", (int)(a.n > 40 ? 40 : a.n), a.p);
    }
    return DL_OK;
}
/* Notes an unsupported node; nodes of one op refused for one reason share a line. */
static void dl__ox_note_as(dl__ox *ox, dl__str op, dl__str name, const char *why) {
    char o[24];
    int k;
    ox->n_unsup++;
    snprintf(o, sizeof o, "%.*s", (int)(op.n > 23 ? 23 : op.n), op.p);
    for (k = 0; k < ox->n_ug; k++)
        if (!strcmp(ox->ug[k].op, o) && !strncmp(ox->ug[k].why, why, sizeof ox->ug[k].why - 1)) { ox->ug[k].count++; return; }
    if (ox->n_ug == 16) return;     /* counted in the total */
    memcpy(ox->ug[k].op, o, sizeof o);
    snprintf(ox->ug[k].first, sizeof ox->ug[k].first, "%.*s", (int)(name.n > 23 ? 23 : name.n), name.p);
    snprintf(ox->ug[k].why, sizeof ox->ug[k].why, "%s", why);
    ox->ug[k].count = 1;
    ox->n_ug++;
}
static void dl__ox_note(dl__ox *ox, const dl__ox_node *n) { dl__ox_note_as(ox, n->op, n->name, ox->why); }
/* "N unsupported (opset K): Op 'first' (+2 more): why; ..." as far as it fits */
static void dl__ox_unsup_msg(dl__ox *ox) {
    int k;
    size_t len;
    snprintf(ox->err, sizeof ox->err, "%d unsupported (opset %d): ", ox->n_unsup, ox->opset);
    for (k = 0; k < ox->n_ug && (len = strlen(ox->err)) < sizeof ox->err - 1; k++) {
        char more[24] = "";
        if (ox->ug[k].count > 1) snprintf(more, sizeof more, " (+%d more)", ox->ug[k].count - 1);
        snprintf(ox->err + len, sizeof ox->err - len, "%s%s '%s'%s: %s", k ? "; " : "", ox->ug[k].op, ox->ug[k].first, more, ox->ug[k].why);
    }
}

/* ---- names: an ONNX name that is not a valid layer name (over 31
   characters or a '.') or starts with '~' (the importer's own helper
   layers are "~1", "~2", ...) becomes its first 22 characters, '~' and a
   hash. Such names export as they are, so they round-trip from then on. ---- */
static void dl__ox_layer_name(const char *p, size_t n, char out[32]) {
    size_t k;
    int ok = n >= 1 && n <= 31 && p[0] != '~';
    for (k = 0; k < n && ok; k++) ok = p[k] != '.' && p[k] != 0;
    if (ok) { memcpy(out, p, n); out[n] = 0; return; }
    for (k = 0; k < n && k < 22; k++) out[k] = p[k] == '.' || p[k] == '~' || p[k] == 0 ? '_' : p[k];
    snprintf(out + k, 32 - k, "~%08lx", (unsigned long)dl__fnv32(p, n));
}
dl_layer *dl_onnx_output(const dl_net *net, const char *name) {
    char nm[32];
    if (!net || !name) return NULL;
    dl__ox_layer_name(name, strlen(name), nm);
    return dl__find(net, nm);          /* const net: no message recorded */
}

/* ---- the importer's phases ---- */
typedef struct dl__ox_graph {
    const unsigned char *m;     /* GraphProto */
    size_t n;
    long n_nodes, n_init, n_in, n_out;
} dl__ox_graph;

/* ModelProto: the default domain's opset and the graph. */
static int dl__ox_model(dl__ox *ox, const unsigned char *data, size_t size, dl__ox_graph *g) {
    dl__pb b = dl__pb_of(data, size);
    dl__pbf f;
    int r, ir = 0;
    memset(g, 0, sizeof *g);
    ox->opset = -1;
    while ((r = dl__pb_next(&b, &f)) > 0) {
        if (f.field == 1 && f.wire == 0) ir = (int)(f.v > 1000 ? 1000 : f.v);
        else if (f.field == 7 && f.wire == 2) { g->m = f.s; g->n = f.n; }
        else if (f.field == 8 && f.wire == 2) {
            dl__pb o = dl__pb_of(f.s, f.n);
            dl__pbf h;
            dl__str dom = { "", 0 };
            int64_t ver = 0;
            while ((r = dl__pb_next(&o, &h)) > 0) {
                if (h.field == 1 && h.wire == 2) { dom.p = (const char *)h.s; dom.n = h.n; }
                if (h.field == 2 && h.wire == 0) ver = (int64_t)h.v;
            }
            if (r < 0) break;
            if ((dom.n == 0 || dl__str_is(dom, "ai.onnx")) && ver > 0) ox->opset = (int)(ver > 1000 ? 1000 : ver);
        } else if (f.field == 25 && f.wire == 2) {     /* a local function, inlined where it is called */
            if (!dl__grow((void **)&ox->fn, (size_t)ox->n_fn, (size_t)ox->n_fn + 1, sizeof *ox->fn) ||
                !dl__grow((void **)&ox->fn_len, (size_t)ox->n_fn, (size_t)ox->n_fn + 1, sizeof *ox->fn_len))
                return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
            ox->fn[ox->n_fn] = f.s; ox->fn_len[ox->n_fn++] = f.n;
        }
    }
    if (r < 0 || !g->m) return dl__ox_failf(ox, DL_ERR_FORMAT, "not an ONNX model (malformed protobuf or no graph)");
    if (ir < 3) return dl__ox_failf(ox, DL_ERR_FORMAT, "IR version %d (3 or newer expected)", ir);
    if (ox->opset < 0) ox->opset = 1;
    if (ox->opset > 21)     /* older opsets' differences are attributes the rows refuse, or checked in the row */
        return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "opset %d (this importer reads opsets 1 to 21)", ox->opset);
    b = dl__pb_of(g->m, g->n);
    while ((r = dl__pb_next(&b, &f)) > 0)
        if (f.wire == 2) {
            if (f.field == 1) g->n_nodes++;
            else if (f.field == 5) g->n_init++;
            else if (f.field == 11) g->n_in++;
            else if (f.field == 12) g->n_out++;
            else if (f.field == 15) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "sparse initializers");
        }
    return r < 0 ? dl__ox_failf(ox, DL_ERR_FORMAT, "malformed graph") : DL_OK;
}

/* ValueInfoProto: name, float element type, rank and dims (-1 symbolic). */
static int dl__ox_valinfo(dl__ox *ox, const unsigned char *m, size_t n, dl__str *name, int *elem, int64_t *d, int *rank) {
    dl__pb b = dl__pb_of(m, n), t, tt, sh, dim;
    dl__pbf f, g, h, e, q;
    int r;
    name->p = ""; name->n = 0; *elem = 0; *rank = -1;
    while ((r = dl__pb_next(&b, &f)) > 0) {
        if (f.field == 1 && f.wire == 2) { name->p = (const char *)f.s; name->n = f.n; }
        if (f.field != 2 || f.wire != 2) continue;
        for (t = dl__pb_of(f.s, f.n); (r = dl__pb_next(&t, &g)) > 0;) {
            if (g.field != 1 || g.wire != 2) continue;           /* tensor_type */
            for (tt = dl__pb_of(g.s, g.n); (r = dl__pb_next(&tt, &h)) > 0;) {
                if (h.field == 1 && h.wire == 0) *elem = (int)(h.v > 100 ? 100 : h.v);
                if (h.field != 2 || h.wire != 2) continue;       /* shape */
                *rank = 0;
                for (sh = dl__pb_of(h.s, h.n); (r = dl__pb_next(&sh, &e)) > 0;) {
                    if (e.field != 1 || e.wire != 2) continue;
                    if (*rank == DL__OX_MAXR) return dl__ox_unsup(ox, "rank over %d", DL__OX_MAXR);
                    d[*rank] = -1;
                    for (dim = dl__pb_of(e.s, e.n); (r = dl__pb_next(&dim, &q)) > 0;)
                        if (q.field == 1 && q.wire == 0) d[*rank] = (int64_t)q.v;
                    if (r < 0) break;
                    (*rank)++;
                }
                if (r < 0) break;
            }
            if (r < 0) break;
        }
        if (r < 0) break;
    }
    return r < 0 ? dl__ox_failf(ox, DL_ERR_FORMAT, "malformed value info") : DL_OK;
}

/* Initializers become constants, the one other input an input layer (with
   none, a one-float input layer that feeds the constant outputs). */
static int dl__ox_inputs(dl__ox *ox, const dl__ox_graph *g) {
    dl__pb b = dl__pb_of(g->m, g->n);
    dl__pbf f;
    int rc, n_rt = 0;
    while (dl__pb_next(&b, &f) > 0) {
        dl__ox_t t;
        dl__str name;
        dl__ox_val *v;
        if (f.field != 5 || f.wire != 2) continue;
        if ((rc = dl__ox_tensor(ox, f.s, f.n, &t, &name)))
            return rc == DL_ERR_UNSUPPORTED ? dl__ox_failf(ox, rc, "initializer '%.*s': %s", (int)(name.n > 60 ? 60 : name.n), name.p, ox->why) : rc;
        if (!(v = dl__ox_new(ox, name))) { dl__ox_t_free(&t); return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory"); }
        v->kind = DL__OX_CONST; v->t = t;
    }
    b = dl__pb_of(g->m, g->n);
    while (dl__pb_next(&b, &f) > 0) {
        dl__str name;
        int elem, rank, k;
        int64_t d[DL__OX_MAXR];
        dl_layer *l;
        dl__ox_val *v;
        if (f.field != 11 || f.wire != 2) continue;
        if ((rc = dl__ox_valinfo(ox, f.s, f.n, &name, &elem, d, &rank))) return rc == DL_ERR_UNSUPPORTED ? dl__ox_failf(ox, rc, "input: %s", ox->why) : rc;
        if (dl__ox_find(ox, name)) continue;                    /* an initializer: a constant */
        if (++n_rt > 1) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "more than one graph input (dl.h nets have one input)");
        for (k = 0; k < rank; k++)      /* dim_value 0 is a size, not "unknown": a tensor of no elements */
            if (!d[k]) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' has no elements (dim %d is 0, and a dl.h batch and sample "
                                           "hold one at least)", (int)(name.n > 60 ? 60 : name.n), name.p, k);
        if (elem != DL__OX_FLOAT) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' of element type %d (float only)", (int)(name.n > 60 ? 60 : name.n), name.p, elem);
        ox->can_fold = rank == 0 || (rank > 0 && d[0] > 0 && (d[0] > 1 || rank > 4));
        if (ox->fold) {         /* the whole tensor as one sample: (.., h, w) merged into 3 dims */
            int64_t m[3] = { 1, 1, 1 };
            for (k = 0; k < rank; k++) {
                if (d[k] < 1 || d[k] > INT_MAX) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' dim %d is not a fixed size", (int)(name.n > 60 ? 60 : name.n), name.p, k);
                m[k + 3 - rank < 0 ? 0 : k + 3 - rank] *= d[k];
            }
            if (m[0] * m[1] * m[2] > INT_MAX) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' too large", (int)(name.n > 60 ? 60 : name.n), name.p);
            ox->batch = 1;
            ox->input = l = dl_input(ox->net, (int)m[0], (int)m[1], (int)m[2]);
            if ((rc = dl__ox_take(ox, l))) return rc;
            if (!(v = dl__ox_new(ox, name))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
            v->kind = DL__OX_LAYER; v->l = l; v->rank = rank; v->whole = 1;
            memcpy(v->wd, d, sizeof v->wd);
            continue;
        }
        if (rank < 1 || rank > 4) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' of rank %d (1 to 4: batch and up to 3 dims)", (int)(name.n > 60 ? 60 : name.n), name.p, rank);
        for (k = 1; k < rank; k++)
            if (d[k] < 1 || d[k] > INT_MAX) return dl__ox_failf(ox, DL_ERR_UNSUPPORTED, "input '%.*s' dim %d is not a fixed size", (int)(name.n > 60 ? 60 : name.n), name.p, k);
        ox->batch = d[0] > 0 ? d[0] : DL__OX_SYM;
        ox->input = l = dl_input(ox->net, rank > 1 ? (int)d[1] : 1, rank > 2 ? (int)d[2] : 0, rank > 3 ? (int)d[3] : 0);
        if ((rc = dl__ox_take(ox, l))) return rc;
        if (!(v = dl__ox_new(ox, name))) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
        v->kind = DL__OX_LAYER; v->l = l; v->rank = rank;
    }
    if (n_rt) return DL_OK;
    ox->batch = 1;          /* no input: graph outputs can only be constants, fed by one float nothing reads */
    ox->input = dl_input(ox->net, 1, 0, 0);
    return dl__ox_take(ox, ox->input);
}

/* The local function a node calls, or NULL. */
static int dl__ox_function(const dl__ox *ox, const dl__ox_node *n) {
    int k;
    for (k = 0; k < ox->n_fn; k++) {
        dl__pb b = dl__pb_of(ox->fn[k], ox->fn_len[k]);
        dl__pbf f;
        dl__str name = { "", 0 }, dom = { "", 0 };
        while (dl__pb_next(&b, &f) > 0) {
            if (f.field == 1 && f.wire == 2) { name.p = (const char *)f.s; name.n = f.n; }
            if (f.field == 10 && f.wire == 2) { dom.p = (const char *)f.s; dom.n = f.n; }
        }
        if (name.n == n->op.n && !memcmp(name.p, n->op.p, name.n) && dom.n == n->domain.n && !memcmp(dom.p, n->domain.p, dom.n)) return k;
    }
    return -1;
}

static int dl__ox_one(dl__ox *ox, const unsigned char *m, size_t len, const dl__ox_call *call);

/* Inlines function k called by n: its nodes, renamed, in place of n. */
static int dl__ox_inline(dl__ox *ox, const dl__ox_node *n, int k, const dl__ox_call *up) {
    dl__ox_call *c = (dl__ox_call *)DL_MALLOC(sizeof(dl__ox_call));
    dl__pb b;
    dl__pbf f;
    int rc = DL_OK;
    if (!c) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    memset(c, 0, sizeof *c);
    c->caller = n; c->fn = ox->fn[k]; c->fn_len = ox->fn_len[k];
    c->depth = up ? up->depth + 1 : 1;
    c->id = ++ox->calls;
    if (c->depth > 16) { DL_FREE(c); return dl__ox_unsup(ox, "functions nested over 16 deep (recursive?)"); }
    for (b = dl__pb_of(c->fn, c->fn_len); dl__pb_next(&b, &f) > 0;)
        if ((f.field == 4 || f.field == 5) && f.wire == 2) {
            int *cnt = f.field == 4 ? &c->n_in : &c->n_out;
            if (*cnt == DL__OX_MAXIO) { DL_FREE(c); return dl__ox_unsup(ox, "a function with over %d inputs or outputs", DL__OX_MAXIO); }
            (f.field == 4 ? c->in : c->out)[*cnt].p = (const char *)f.s;
            (f.field == 4 ? c->in : c->out)[(*cnt)++].n = f.n;
        }
    for (b = dl__pb_of(c->fn, c->fn_len); dl__pb_next(&b, &f) > 0 && (!rc || rc == DL_ERR_UNSUPPORTED);)
        if (f.field == 7 && f.wire == 2) rc = dl__ox_one(ox, f.s, f.n, c);
    DL_FREE(c);
    return rc && rc != DL_ERR_UNSUPPORTED ? rc : DL_OK;      /* unsupported nodes inside are noted already */
}

/* One node: its row (or a local function's nodes), or an UNSUPPORTED note;
   values it cannot make are NONE. */
static int dl__ox_one(dl__ox *ox, const unsigned char *m, size_t len, const dl__ox_call *call) {
    dl__ox_node *n = (dl__ox_node *)DL_MALLOC(sizeof(dl__ox_node));
    const dl__ox_op *row;
    int rc, k, none = 0, fn = -1;
    if (!n) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    ox->why[0] = 0;
    rc = dl__ox_node_parse(ox, m, len, n, call);
    for (k = 0; !rc && k < n->n_in; k++)
        if (n->in[k].n) {
            dl__ox_val *v = dl__ox_find(ox, n->in[k]);
            if (!v) rc = dl__ox_failf(ox, DL_ERR_FORMAT, "node '%.*s' reads '%.*s' before anything makes it (unsorted or cyclic graph)",
                                      (int)(n->name.n > 60 ? 60 : n->name.n), n->name.p, (int)(n->in[k].n > 60 ? 60 : n->in[k].n), n->in[k].p);
            else if (v->kind == DL__OX_NONE && v->refused) rc = dl__ox_unsup(ox, "reads %s", v->refused);
            else if (v->kind == DL__OX_NONE) none = 1;
        }
    ox->node = n;
    row = dl__ox_lookup(n->op);
    if (!rc && (fn = dl__ox_function(ox, n)) >= 0) {
        if (none) rc = DL_OK;
        else if ((rc = dl__ox_inline(ox, n, fn, call)) != DL_ERR_UNSUPPORTED) {   /* its nodes made the outputs */
            ox->node = NULL;
            DL_FREE(n);
            return rc;
        }
        ox->node = n;
    } else if (!rc && (n->domain.n && !dl__str_is(n->domain, "ai.onnx"))) rc = dl__ox_unsup(ox, "domain '%.*s'", (int)(n->domain.n > 40 ? 40 : n->domain.n), n->domain.p);
    else if (!rc && !row) rc = dl__ox_unsup(ox, "no mapping for this op");
    else if (!rc && none) rc = DL_OK;           /* after an unsupported node: skipped */
    else if (!rc && !(rc = dl__ox_attrs_known(ox, row, n))) {
        if (n->n_out < 1) rc = dl__ox_failf(ox, DL_ERR_FORMAT, "a node without outputs");
        else rc = row->fn(ox, n);
    }
    if (rc == DL_ERR_UNSUPPORTED) dl__ox_note(ox, n);
    if (rc == DL_ERR_UNSUPPORTED || (!rc && none))
        for (k = 0, rc = DL_OK; k < n->n_out && !rc; k++)
            if (n->out[k].n && !dl__ox_new(ox, n->out[k])) rc = dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    if (rc && rc != DL_ERR_UNSUPPORTED && !strstr(ox->err, "node '")) {
        char msg[256];
        snprintf(msg, sizeof msg, "%.*s '%.*s': %.200s", (int)(n->op.n > 30 ? 30 : n->op.n), n->op.p,
                 (int)(n->name.n > 40 ? 40 : n->name.n), n->name.p, ox->err);
        memcpy(ox->err, msg, sizeof msg);
    }
    ox->node = NULL;
    DL_FREE(n);
    return rc;
}

/* A graph output that folded to a constant (a Shape's, say): a constant
   layer fed by the input, so that dl_predict runs it. It is the whole
   tensor, so the batch must be 1 (a fixed first dim gets the second try). */
static int dl__ox_const_output(dl__ox *ox, dl__ox_val *v) {
    dl__str none = { "", 0 };
    int64_t cnt = (int64_t)v->t.count;
    dl_layer *l;
    size_t k;
    int rc;
    if (ox->batch != 1) return dl__ox_unsup(ox, "a constant (taken whole, so only at a batch of 1)");
    if ((rc = dl__ox_symcheck(ox, &v->t))) return rc;
    for (k = 0; v->t.isint && k < v->t.count; k++)
        if (v->t.i[k] > (1 << 24) || v->t.i[k] < -(1 << 24)) return dl__ox_unsup(ox, "an integer over 2^24 (not exact as a float)");
    if ((rc = dl__ox_const_for(ox, &v->t, none, 1, &cnt, ox->input, &l))) return rc;
    v->kind = DL__OX_LAYER; v->l = l; v->rank = v->t.ndim; v->whole = 1;
    memcpy(v->wd, v->t.dims, sizeof v->wd);
    dl__ox_t_free(&v->t);
    return DL_OK;
}

/* The graph's nodes, in order; then every output must be a layer. */
static int dl__ox_nodes(dl__ox *ox, const dl__ox_graph *g) {
    dl__pb b = dl__pb_of(g->m, g->n);
    dl__pbf f;
    int rc;
    while (dl__pb_next(&b, &f) > 0)
        if (f.field == 1 && f.wire == 2 && (rc = dl__ox_one(ox, f.s, f.n, NULL)) && rc != DL_ERR_UNSUPPORTED) return rc;
    b = dl__pb_of(g->m, g->n);
    while (dl__pb_next(&b, &f) > 0) {
        dl__str name;
        int elem, rank;
        int64_t d[DL__OX_MAXR];
        dl__ox_val *v;
        if (f.field != 12 || f.wire != 2) continue;
        if ((rc = dl__ox_valinfo(ox, f.s, f.n, &name, &elem, d, &rank)) && rc != DL_ERR_UNSUPPORTED) return rc;
        if (!(v = dl__ox_find(ox, name))) return dl__ox_failf(ox, DL_ERR_FORMAT, "graph output '%.*s' is never made", (int)(name.n > 60 ? 60 : name.n), name.p);
        if (v->kind == DL__OX_NONE && v->refused) rc = dl__ox_unsup(ox, "%s", v->refused);
        else rc = v->kind == DL__OX_CONST ? dl__ox_const_output(ox, v) : DL_OK;
        if (rc) {
            dl__str what = { "graph output", 12 };
            if (rc != DL_ERR_UNSUPPORTED) return rc;
            dl__ox_note_as(ox, what, name, ox->why);
        }
    }
    return DL_OK;
}

/* Layers get their ONNX names; graph outputs win over the names of the values they alias. */
static void dl__ox_names(dl__ox *ox, const dl__ox_graph *g) {
    int k;
    dl__pb b = dl__pb_of(g->m, g->n);
    dl__pbf f;
    char nm[32];
    unsigned char *named = (unsigned char *)dl__calloc((size_t)dl_net_layer_count(ox->net) + 1, 1);
    if (!named) return;                 /* the layers keep their "~k" names */
    while (dl__pb_next(&b, &f) > 0) {
        dl__str name;
        int elem, rank;
        int64_t d[DL__OX_MAXR];
        dl__ox_val *v;
        if (f.field != 12 || f.wire != 2 || dl__ox_valinfo(ox, f.s, f.n, &name, &elem, d, &rank)) continue;
        if ((v = dl__ox_find(ox, name)) && v->kind == DL__OX_LAYER && !named[v->l->index]) {
            dl__ox_layer_name(name.p, name.n, nm);
            if (!dl_layer_set_name(v->l, nm)) named[v->l->index] = 1;
        }
    }
    for (k = 0; k < ox->nv; k++) {
        dl__ox_val *v = &ox->v[k];
        if (v->kind != DL__OX_LAYER || named[v->l->index]) continue;
        dl__ox_layer_name(v->name.p, v->name.n, nm);
        if (!dl_layer_set_name(v->l, nm)) named[v->l->index] = 1;
    }
    DL_FREE(named);
}

static int dl__ox_attempt(dl__ox *ox, const void *data, size_t size) {
    dl__ox_graph g;
    int rc;
    if (!(ox->net = dl_net_new())) return dl__ox_failf(ox, DL_ERR_NOMEM, "out of memory");
    if (!(rc = dl__ox_model(ox, (const unsigned char *)data, size, &g)) && !(rc = dl__ox_inputs(ox, &g)) &&
        !(rc = dl__ox_nodes(ox, &g)) && ox->n_unsup) {
        dl__ox_unsup_msg(ox);
        rc = DL_ERR_UNSUPPORTED;
    }
    if (!rc) dl__ox_names(ox, &g);
    return rc;
}
static void dl__ox_clear(dl__ox *ox) {
    int k;
    for (k = 0; k < ox->nv; k++) dl__ox_t_free(&ox->v[k].t);
    DL_FREE(ox->v);
    DL_FREE(ox->hash);
    DL_FREE(ox->fn);
    DL_FREE(ox->fn_len);
    while (ox->arena) {
        void *next;
        memcpy(&next, ox->arena, sizeof next);
        DL_FREE(ox->arena);
        ox->arena = next;
    }
}
/* A graph whose input has a fixed first dim and that mixes across it (a
   node test's [3,4,5]) gets a second try with that tensor as one sample. */
static dl_net *dl__ox_load(const void *data, size_t size, const char *dir, dl_status *st) {
    dl__ox ox;
    int rc;
    memset(&ox, 0, sizeof ox);
    ox.dir = dir;
    if (!data) rc = dl__ox_failf(&ox, DL_ERR_ARG, "data is NULL");
    else if ((rc = dl__ox_attempt(&ox, data, size)) == DL_ERR_UNSUPPORTED && ox.can_fold) {
        char first[sizeof ox.err];
        memcpy(first, ox.err, sizeof first);          /* said again if the second try fails too */
        dl_net_free(ox.net);
        dl__ox_clear(&ox);
        memset(&ox, 0, sizeof ox);
        ox.dir = dir; ox.fold = 1;
        if ((rc = dl__ox_attempt(&ox, data, size))) memcpy(ox.err, first, sizeof first);
    }
    dl__ox_clear(&ox);
    if (st) { st->code = rc; snprintf(st->msg, sizeof st->msg, "%s", rc ? ox.err : ""); }
    if (rc) { dl_net_free(ox.net); return NULL; }
    return ox.net;
}
dl_net *dl_onnx_load_mem(const void *data, size_t size, dl_status *st) { return dl__ox_load(data, size, NULL, st); }
dl_net *dl_onnx_load(const char *path, dl_status *st) {
    unsigned char *data = NULL;
    size_t len = 0;
    char err[256], dir[1024];
    const char *slash;
    dl_net *net;
    int rc = dl__read_file(path, &data, &len, err);
    if (rc) {
        if (st) { st->code = rc; snprintf(st->msg, sizeof st->msg, "%s", err); }
        return NULL;
    }
    slash = strrchr(path, '/');
    if (strrchr(path, '\\') > slash) slash = strrchr(path, '\\');     /* Windows paths */
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path > 1000 ? 1000 : slash - path), path);
    net = dl__ox_load(data, len, dir, st);
    DL_FREE(data);
    return net;
}

/* ---- export: opset 13, IR version 7 ---- */
#define DL__OX_EXPORT_OPSET 13
/* A TensorProto of floats (f) or int64s (ints) into t, the payload as raw_data. */
static void dl__pw_tensor_body(dl__wbuf *t, const char *name, int ndim, const int64_t *dims, const float *f, const int64_t *ints) {
    int64_t count = 1, k;
    for (k = 0; k < ndim; k++) { dl__pw_int(t, 1, dims[k]); count *= dims[k]; }
    dl__pw_int(t, 2, f ? DL__OX_FLOAT : DL__OX_INT64);
    dl__pw_str(t, 8, name);
    dl__pw_varint(t, 9 << 3 | 2);
    dl__pw_varint(t, (uint64_t)count * (f ? 4 : 8));
    if (f) dl__put_floats(t, f, (size_t)count);
    else for (k = 0; k < count; k++) dl__put_u64(t, (uint64_t)ints[k]);
}
static void dl__pw_tensor(dl__wbuf *w, uint32_t field, const char *name, int ndim, const int64_t *dims, const float *f, const int64_t *ints) {
    dl__wbuf t;
    memset(&t, 0, sizeof t);
    dl__pw_tensor_body(&t, name, ndim, dims, f, ints);
    dl__pw_msg(w, field, &t);
}
static void dl__pw_attr_int(dl__wbuf *w, const char *name, int64_t v) {
    dl__wbuf a;
    memset(&a, 0, sizeof a);
    dl__pw_str(&a, 1, name); dl__pw_int(&a, 3, v); dl__pw_int(&a, 20, 2);
    dl__pw_msg(w, 5, &a);
}
static void dl__pw_attr_float(dl__wbuf *w, const char *name, float v) {
    dl__wbuf a;
    memset(&a, 0, sizeof a);
    dl__pw_str(&a, 1, name); dl__pw_float(&a, 2, v); dl__pw_int(&a, 20, 1);
    dl__pw_msg(w, 5, &a);
}
static void dl__pw_attr_str(dl__wbuf *w, const char *name, const char *v) {
    dl__wbuf a;
    memset(&a, 0, sizeof a);
    dl__pw_str(&a, 1, name); dl__pw_str(&a, 4, v); dl__pw_int(&a, 20, 3);
    dl__pw_msg(w, 5, &a);
}
static void dl__pw_attr_ints(dl__wbuf *w, const char *name, int n, int a0, int a1, int a2, int a3) {
    dl__wbuf a;
    int v[4], k;
    v[0] = a0; v[1] = a1; v[2] = a2; v[3] = a3;
    memset(&a, 0, sizeof a);
    dl__pw_str(&a, 1, name);
    for (k = 0; k < n; k++) dl__pw_int(&a, 8, v[k]);
    dl__pw_int(&a, 20, 7);
    dl__pw_msg(w, 5, &a);
}
/* A node with up to 5 inputs (NULL ends them); attributes are added to *node by the caller, then dl__pw_msg. */
static void dl__pw_node(dl__wbuf *node, const char *op, const char *name, const char *out, const char *const *in) {
    memset(node, 0, sizeof *node);
    while (*in) dl__pw_str(node, 1, *in++);
    dl__pw_str(node, 2, out);
    dl__pw_str(node, 3, name);
    dl__pw_str(node, 4, op);
}
static void dl__pw_valinfo(dl__wbuf *g, uint32_t field, const dl_layer *l) {
    dl__wbuf vi, tp, tt, sh, dim;
    int k;
    memset(&vi, 0, sizeof vi); memset(&tp, 0, sizeof tp); memset(&tt, 0, sizeof tt); memset(&sh, 0, sizeof sh);
    memset(&dim, 0, sizeof dim);
    dl__pw_str(&dim, 2, "N");
    dl__pw_msg(&sh, 1, &dim);
    for (k = 0; k < l->ndim; k++) { memset(&dim, 0, sizeof dim); dl__pw_int(&dim, 1, l->shape[k]); dl__pw_msg(&sh, 1, &dim); }
    dl__pw_int(&tt, 1, DL__OX_FLOAT);
    dl__pw_msg(&tt, 2, &sh);
    dl__pw_msg(&tp, 1, &tt);
    dl__pw_str(&vi, 1, l->name);
    dl__pw_msg(&vi, 2, &tp);
    dl__pw_msg(g, field, &vi);
}
static void dl__pw_param(dl__wbuf *g, dl_net *net, const dl_layer *l, const char *what, const int64_t *dims, int ndim, char *name) {
    dl_param *p;
    snprintf(name, 64, "%s.%s", l->name, what);
    p = dl_net_find_param(net, name);
    if (p) dl__pw_tensor(g, 5, name, ndim, dims, p->data, NULL);
}

/* ---- export: one hook per op (dl__ox_exports[], in DL_OP order, checked
   against DL_OP_COUNT like dl__ops[]); a new op is one row and its hook ---- */
typedef struct dl__ox_ex {
    dl__wbuf *g;                /* the GraphProto being written */
    dl_net *net;
    const dl_layer *input;      /* the graph's input */
    char *err;
    const char *op;             /* the row's ONNX op */
} dl__ox_ex;
typedef int (*dl__ox_export_fn)(dl__ox_ex *e, const dl_layer *l);

/* Writes node (begun with dl__pw_node, attributes added) into the graph. */
static int dl__ox_emit(dl__ox_ex *e, dl__wbuf *node) { dl__pw_msg(e->g, 1, node); return DL_OK; }
/* A scalar initializer "<layer>.<what>" named into name[64]. */
static void dl__ox_scalar(dl__ox_ex *e, const dl_layer *l, const char *what, float v, char *name) {
    int64_t none = 0;
    snprintf(name, 64, "%s.%s", l->name, what);
    dl__pw_tensor(e->g, 5, name, 0, &none, &v, NULL);
}
/* The node "<layer>/<step>" (or the layer itself when step is NULL): op of in0 and in1 (NULL: one input). */
static void dl__ox_step(dl__ox_ex *e, const dl_layer *l, const char *op, const char *step, const char *in0, const char *in1, char *out) {
    dl__wbuf node;
    const char *in[3];
    in[0] = in0; in[1] = in1; in[2] = NULL;
    if (step) snprintf(out, 64, "%s/%s", l->name, step); else snprintf(out, 64, "%s", l->name);
    dl__pw_node(&node, op, out, out, in);
    dl__ox_emit(e, &node);
}
static void dl__ox_window_attrs(dl__wbuf *node, const dl_layer *l) {
    dl__pw_attr_ints(node, "kernel_shape", 2, l->a.kernel[0], l->a.kernel[1], 0, 0);
    dl__pw_attr_ints(node, "strides", 2, l->a.stride[0], l->a.stride[1], 0, 0);
    dl__pw_attr_ints(node, "pads", 4, l->a.pad[0], l->a.pad[1], l->a.pad[2], l->a.pad[3]);   /* ONNX's order too */
}

static int dl__ox_ex_input(dl__ox_ex *e, const dl_layer *l) { (void)e; (void)l; return DL_OK; }   /* a graph input, written apart */
static int dl__ox_ex_none(dl__ox_ex *e, const dl_layer *l) {
    return dl__fail(e->err, DL_ERR_UNSUPPORTED, "dl_onnx_save: layer '%s' (%s) has no ONNX form", l->name, dl_op_name(l->op));
}
/* the row's op over every input: Relu, Sigmoid, Tanh, Softplus, Mul, Sub, Div, MatMul; Add of 3 or more is Sum */
static int dl__ox_ex_plain(dl__ox_ex *e, const dl_layer *l) {
    const char *ins[DL__OX_MAXIO + 1];
    dl__wbuf node;
    int k;
    if (l->n_in > DL__OX_MAXIO) return dl__fail(e->err, DL_ERR_UNSUPPORTED, "dl_onnx_save: '%s' has over %d inputs", l->name, DL__OX_MAXIO);
    for (k = 0; k < l->n_in; k++) ins[k] = l->in[k]->name;
    ins[l->n_in] = NULL;
    dl__pw_node(&node, l->op == DL_OP_ADD && l->n_in > 2 ? "Sum" : e->op, l->name, l->name, ins);
    if (l->op == DL_OP_CONCAT) dl__pw_attr_int(&node, "axis", 1);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_dense(dl__ox_ex *e, const dl_layer *l) {
    char pn[2][64], tmp[64];
    const char *in[4];
    int64_t d[2];
    dl__wbuf node;
    in[0] = l->in[0]->name;
    if (l->in[0]->ndim > 1) {       /* Gemm wants [N, K] */
        dl__ox_step(e, l, "Flatten", "flatten", in[0], NULL, tmp);
        in[0] = tmp;
    }
    d[0] = l->a.units; d[1] = l->in[0]->size;
    dl__pw_param(e->g, e->net, l, "weight", d, 2, pn[0]);
    dl__pw_param(e->g, e->net, l, "bias", d, 1, pn[1]);
    in[1] = pn[0]; in[2] = l->a.bias ? pn[1] : NULL; in[3] = NULL;
    dl__pw_node(&node, "Gemm", l->name, l->name, in);
    dl__pw_attr_int(&node, "transB", 1);
    return dl__ox_emit(e, &node);
}
/* Conv: weight (F, C/g, kh, kw); ConvTranspose: (C, F/g, kh, kw) */
static int dl__ox_ex_conv(dl__ox_ex *e, const dl_layer *l) {
    char pn[2][64];
    const char *in[4];
    int64_t d[4];
    int c = l->in[0]->shape[0], tr = l->op == DL_OP_CONV2D_TRANSPOSE;
    dl__wbuf node;
    d[0] = tr ? c : l->a.units; d[1] = tr ? l->a.units / l->a.groups : c / l->a.groups; d[2] = l->a.kernel[0]; d[3] = l->a.kernel[1];
    dl__pw_param(e->g, e->net, l, "weight", d, 4, pn[0]);
    d[0] = l->a.units;
    dl__pw_param(e->g, e->net, l, "bias", d, 1, pn[1]);
    in[0] = l->in[0]->name; in[1] = pn[0]; in[2] = l->a.bias ? pn[1] : NULL; in[3] = NULL;
    dl__pw_node(&node, e->op, l->name, l->name, in);
    dl__ox_window_attrs(&node, l);
    dl__pw_attr_ints(&node, "dilations", 2, l->a.dilation[0], l->a.dilation[1], 0, 0);
    if (tr) dl__pw_attr_ints(&node, "output_padding", 2, l->a.output_padding[0], l->a.output_padding[1], 0, 0);
    dl__pw_attr_int(&node, "group", l->a.groups);
    return dl__ox_emit(e, &node);
}
static void dl__ox_pool_attrs(dl__wbuf *node, const dl_layer *l) {
    dl__ox_window_attrs(node, l);
    dl__pw_attr_int(node, "ceil_mode", l->a.ceil_mode != 0);
    if (l->op != DL_OP_AVGPOOL2D && l->a.dilation[0] > 0 && l->a.dilation[1] > 0)
        dl__pw_attr_ints(node, "dilations", 2, l->a.dilation[0], l->a.dilation[1], 0, 0);
    if (l->op == DL_OP_AVGPOOL2D) dl__pw_attr_int(node, "count_include_pad", l->a.count_include_pad != 0);
}
static int dl__ox_ex_pool(dl__ox_ex *e, const dl_layer *l) {
    const char *in[2];
    dl__wbuf node;
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, e->op, l->name, l->name, in);
    dl__ox_pool_attrs(&node, l);
    return dl__ox_emit(e, &node);
}
/* MaxPool's second output, Indices: int64 and flat over the batch, so Mod
   H W for indices in the plane (not DL_ARGMAX_FLAT), then Cast to float.
   Its first output, "<layer>/values", is left unread. */
static int dl__ox_ex_argmax(dl__ox_ex *e, const dl_layer *l) {
    const char *in[2];
    char vals[64], idx[64], cells[64], plane[64];
    int C, H, W;
    int64_t hw, none = 0;
    dl__wbuf node;
    dl__chw(l->in[0]->ndim, l->in[0]->shape, &C, &H, &W);
    snprintf(vals, sizeof vals, "%s/values", l->name);
    snprintf(idx, sizeof idx, "%s/indices", l->name);
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, "MaxPool", idx, vals, in);
    dl__pw_str(&node, 2, idx);          /* the second output: repeated fields keep their order */
    dl__ox_pool_attrs(&node, l);
    dl__pw_attr_int(&node, "storage_order", (l->a.mode & DL_ARGMAX_COLUMN_MAJOR) != 0);
    dl__ox_emit(e, &node);
    if (!(l->a.mode & DL_ARGMAX_FLAT)) {
        hw = (int64_t)H * W;
        snprintf(cells, sizeof cells, "%s.cells", l->name);
        dl__pw_tensor(e->g, 5, cells, 0, &none, NULL, &hw);
        dl__ox_step(e, l, "Mod", "plane", idx, cells, plane);
    }
    in[0] = (l->a.mode & DL_ARGMAX_FLAT) ? idx : plane;
    dl__pw_node(&node, "Cast", l->name, l->name, in);
    dl__pw_attr_int(&node, "to", DL__OX_FLOAT);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_global(dl__ox_ex *e, const dl_layer *l) {     /* [N,C,1,1], then [N,C] */
    char tmp[64], out[64];
    dl__ox_step(e, l, e->op, "pool", l->in[0]->name, NULL, tmp);
    dl__ox_step(e, l, "Flatten", NULL, tmp, NULL, out);
    return DL_OK;
}
static int dl__ox_ex_batchnorm(dl__ox_ex *e, const dl_layer *l) {
    static const char *const what[4] = { "weight", "bias", "running_mean", "running_var" };
    char pn[4][64];
    const char *in[6];
    int64_t c = l->in[0]->shape[0];
    int k;
    dl__wbuf node;
    in[0] = l->in[0]->name; in[5] = NULL;
    for (k = 0; k < 4; k++) { dl__pw_param(e->g, e->net, l, what[k], &c, 1, pn[k]); in[k + 1] = pn[k]; }
    dl__pw_node(&node, "BatchNormalization", l->name, l->name, in);
    dl__pw_attr_float(&node, "epsilon", l->a.eps);
    dl__pw_attr_float(&node, "momentum", 1.0f - l->a.momentum);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_dropout(dl__ox_ex *e, const dl_layer *l) {
    char ratio[64], out[64];
    dl__ox_scalar(e, l, "ratio", l->a.alpha, ratio);
    dl__ox_step(e, l, "Dropout", NULL, l->in[0]->name, ratio, out);
    return DL_OK;
}
/* Reshape to [0 (the batch, copied), shape...] */
static void dl__ox_reshape_node(dl__ox_ex *e, const dl_layer *l, const char *in0, const char *out) {
    int64_t s[4], n = l->ndim + 1;
    char pn[64], o[64];
    int k;
    s[0] = 0;
    for (k = 0; k < l->ndim; k++) s[k + 1] = l->shape[k];
    snprintf(pn, sizeof pn, "%s.shape", l->name);
    dl__pw_tensor(e->g, 5, pn, 1, &n, NULL, s);
    dl__ox_step(e, l, "Reshape", out, in0, pn, o);
}
static int dl__ox_ex_reshape(dl__ox_ex *e, const dl_layer *l) { dl__ox_reshape_node(e, l, l->in[0]->name, NULL); return DL_OK; }
static int dl__ox_ex_alpha(dl__ox_ex *e, const dl_layer *l) {      /* LeakyRelu, Elu */
    const char *in[2];
    dl__wbuf node;
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, e->op, l->name, l->name, in);
    dl__pw_attr_float(&node, "alpha", l->a.alpha);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_prelu(dl__ox_ex *e, const dl_layer *l) {      /* the slope as [C,1,..] to broadcast along channels */
    char pn[64], out[64];
    int64_t d[3];
    d[0] = l->in[0]->shape[0]; d[1] = d[2] = 1;
    dl__pw_param(e->g, e->net, l, "weight", d, l->ndim, pn);
    dl__ox_step(e, l, "PRelu", NULL, l->in[0]->name, pn, out);
    return DL_OK;
}
static int dl__ox_ex_softmax(dl__ox_ex *e, const dl_layer *l) {    /* Softmax, LogSoftmax */
    const char *in[2];
    dl__wbuf node;
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, e->op, l->name, l->name, in);
    dl__pw_attr_int(&node, "axis", 1);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_clip(dl__ox_ex *e, const dl_layer *l) {       /* opset 13: the bounds are inputs */
    char pn[2][64];
    const char *in[4];
    dl__wbuf node;
    dl__ox_scalar(e, l, "min", l->a.alpha, pn[0]);
    dl__ox_scalar(e, l, "max", l->a.beta, pn[1]);
    in[0] = l->in[0]->name; in[1] = pn[0]; in[2] = pn[1]; in[3] = NULL;
    dl__pw_node(&node, "Clip", l->name, l->name, in);
    return dl__ox_emit(e, &node);
}
/* HardSigmoid; HardSwish (opset 14) is x HardSigmoid(x) */
static int dl__ox_ex_hard_sigmoid(dl__ox_ex *e, const dl_layer *l) {
    char tmp[64], out[64];
    const char *in[2];
    int sw = l->op == DL_OP_HARD_SWISH;
    dl__wbuf node;
    in[0] = l->in[0]->name; in[1] = NULL;
    if (sw) snprintf(tmp, sizeof tmp, "%s/hsig", l->name); else snprintf(tmp, sizeof tmp, "%s", l->name);
    dl__pw_node(&node, "HardSigmoid", tmp, tmp, in);
    dl__pw_attr_float(&node, "alpha", l->a.alpha);
    dl__pw_attr_float(&node, "beta", l->a.beta);
    dl__ox_emit(e, &node);
    if (sw) dl__ox_step(e, l, "Mul", NULL, l->in[0]->name, tmp, out);
    return DL_OK;
}
static int dl__ox_ex_selu(dl__ox_ex *e, const dl_layer *l) {
    const char *in[2];
    dl__wbuf node;
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, "Selu", l->name, l->name, in);
    dl__pw_attr_float(&node, "alpha", l->a.alpha);
    dl__pw_attr_float(&node, "gamma", l->a.beta);
    return dl__ox_emit(e, &node);
}
/* Gelu is opset 20: 0.5 x (1 + erf(x / sqrt 2)), or the tanh form
   0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), as dl.h computes them */
static int dl__ox_ex_gelu(dl__ox_ex *e, const dl_layer *l) {
    char c[4][64], t[64], u[64], half[64], out[64];
    const char *x = l->in[0]->name;
    dl__ox_scalar(e, l, "half", 0.5f, c[0]);
    dl__ox_scalar(e, l, "one", 1.0f, c[1]);
    if (l->a.approximate) {
        dl__ox_scalar(e, l, "c", (float)DL__GELU_C, c[2]);
        dl__ox_scalar(e, l, "sqrt_2_pi", (float)DL__SQRT_2_PI, c[3]);
        dl__ox_step(e, l, "Mul", "x2", x, x, t);
        dl__ox_step(e, l, "Mul", "x3", t, x, u);
        dl__ox_step(e, l, "Mul", "cx3", u, c[2], t);
        dl__ox_step(e, l, "Add", "inner", x, t, u);
        dl__ox_step(e, l, "Mul", "scaled", u, c[3], t);
        dl__ox_step(e, l, "Tanh", "tanh", t, NULL, u);
    } else {
        dl__ox_scalar(e, l, "sqrt1_2", (float)DL__SQRT1_2, c[2]);
        dl__ox_step(e, l, "Mul", "scaled", x, c[2], t);
        dl__ox_step(e, l, "Erf", "erf", t, NULL, u);
    }
    dl__ox_step(e, l, "Add", "plus1", u, c[1], t);
    dl__ox_step(e, l, "Mul", "halfx", x, c[0], half);
    dl__ox_step(e, l, "Mul", NULL, half, t, out);
    return DL_OK;
}
static int dl__ox_ex_silu(dl__ox_ex *e, const dl_layer *l) {       /* x sigmoid(x) */
    char s[64], out[64];
    dl__ox_step(e, l, "Sigmoid", "sigmoid", l->in[0]->name, NULL, s);
    dl__ox_step(e, l, "Mul", NULL, l->in[0]->name, s, out);
    return DL_OK;
}
/* A constant: an initializer [1, dims..], which ONNX broadcasts over the
   batch; or, fed by a layer (dl_constant_for) or read by a Concat (which
   does not broadcast), that value expanded to [N, dims..], N the batch of
   its input or of the graph's: Shape, Gather [0], Concat with 1s, Expand. */
static int dl__ox_ex_constant(dl__ox_ex *e, const dl_layer *l) {
    char pn[64], nm[3][64], st[3][64];
    const char *in[3];
    int64_t d[4], zero = 0, one = 1, nd = l->ndim, ones[3] = { 1, 1, 1 };
    int k, cat = 0;
    dl_param *p;
    dl__wbuf node;
    d[0] = 1;
    for (k = 0; k < l->ndim; k++) d[k + 1] = l->shape[k];
    for (k = l->index + 1; k < dl_net_layer_count(e->net) && !cat; k++) {
        const dl_layer *r = dl_net_layer(e->net, k);
        int j;
        for (j = 0; j < r->n_in && r->op == DL_OP_CONCAT; j++) cat |= r->in[j] == l;
    }
    snprintf(pn, sizeof pn, "%s.value", l->name);
    if (!(p = dl_net_find_param(e->net, pn))) return dl__fail(e->err, DL_ERR_UNSUPPORTED, "dl_onnx_save: constant '%s' has no value", l->name);
    if (!l->n_in && !cat) { dl__pw_tensor(e->g, 5, l->name, l->ndim + 1, d, p->data, NULL); return DL_OK; }
    dl__pw_tensor(e->g, 5, pn, l->ndim + 1, d, p->data, NULL);
    snprintf(nm[0], sizeof nm[0], "%s.batch_index", l->name);
    dl__pw_tensor(e->g, 5, nm[0], 1, &one, NULL, &zero);
    snprintf(nm[1], sizeof nm[1], "%s.ones", l->name);
    dl__pw_tensor(e->g, 5, nm[1], 1, &nd, NULL, ones);
    dl__ox_step(e, l, "Shape", "shape", l->n_in ? l->in[0]->name : e->input->name, NULL, st[0]);
    dl__ox_step(e, l, "Gather", "batch", st[0], nm[0], st[1]);
    snprintf(st[2], sizeof st[2], "%s/dims", l->name);
    in[0] = st[1]; in[1] = nm[1]; in[2] = NULL;
    dl__pw_node(&node, "Concat", st[2], st[2], in);
    dl__pw_attr_int(&node, "axis", 0);
    dl__ox_emit(e, &node);
    dl__ox_step(e, l, "Expand", NULL, pn, st[2], st[0]);
    return DL_OK;
}
static int dl__ox_ex_pad(dl__ox_ex *e, const dl_layer *l) {        /* opset 13: pads and the value are inputs */
    int64_t pads[8] = { 0, 0, 0, 0, 0, 0, 0, 0 }, eight = 8;
    char pn[2][64];
    const char *in[4];
    dl__wbuf node;
    pads[2] = l->a.pad[0]; pads[3] = l->a.pad[1]; pads[6] = l->a.pad[2]; pads[7] = l->a.pad[3];
    snprintf(pn[0], 64, "%s.pads", l->name);
    dl__pw_tensor(e->g, 5, pn[0], 1, &eight, NULL, pads);
    dl__ox_scalar(e, l, "value", l->a.value, pn[1]);
    in[0] = l->in[0]->name; in[1] = pn[0]; in[2] = pn[1]; in[3] = NULL;
    dl__pw_node(&node, "Pad", l->name, l->name, in);
    dl__pw_attr_str(&node, "mode", l->a.mode == DL_PAD_REFLECT ? "reflect" : l->a.mode == DL_PAD_EDGE ? "edge" : "constant");
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_transpose(dl__ox_ex *e, const dl_layer *l) {  /* the batch stays first */
    int pp[4] = { 0, 0, 0, 0 }, k;
    const char *in[2];
    dl__wbuf node;
    for (k = 0; k < l->ndim; k++) pp[k + 1] = l->a.perm[k] + 1;
    in[0] = l->in[0]->name; in[1] = NULL;
    dl__pw_node(&node, "Transpose", l->name, l->name, in);
    dl__pw_attr_ints(&node, "perm", l->ndim + 1, pp[0], pp[1], pp[2], pp[3]);
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_upsample(dl__ox_ex *e, const dl_layer *l) {   /* scales [1, 1, h, w]; dl.h's nearest is floor(x / scale) */
    float sc[4];
    int64_t four = 4;
    char pn[64];
    const char *in[4];
    dl__wbuf node;
    sc[0] = sc[1] = 1; sc[2] = (float)l->a.scale[0]; sc[3] = (float)l->a.scale[1];
    snprintf(pn, sizeof pn, "%s.scales", l->name);
    dl__pw_tensor(e->g, 5, pn, 1, &four, sc, NULL);
    in[0] = l->in[0]->name; in[1] = ""; in[2] = pn; in[3] = NULL;
    dl__pw_node(&node, "Resize", l->name, l->name, in);
    dl__pw_attr_str(&node, "mode", l->a.mode ? "linear" : "nearest");
    dl__pw_attr_str(&node, "coordinate_transformation_mode", !l->a.mode ? "asymmetric" : l->a.align_corners ? "align_corners" : "half_pixel");
    if (!l->a.mode) dl__pw_attr_str(&node, "nearest_mode", "floor");
    return dl__ox_emit(e, &node);
}
static int dl__ox_ex_slice(dl__ox_ex *e, const dl_layer *l) {      /* along axis 1 */
    static const char *const what[3] = { "starts", "ends", "axes" };
    int64_t v[3], one = 1;
    char pn[3][64];
    const char *in[5];
    int k;
    dl__wbuf node;
    v[0] = l->a.range[0]; v[1] = l->a.range[1]; v[2] = 1;
    in[0] = l->in[0]->name; in[4] = NULL;
    for (k = 0; k < 3; k++) {
        snprintf(pn[k], 64, "%s.%s", l->name, what[k]);
        dl__pw_tensor(e->g, 5, pn[k], 1, &one, NULL, &v[k]);
        in[k + 1] = pn[k];
    }
    dl__pw_node(&node, "Slice", l->name, l->name, in);
    return dl__ox_emit(e, &node);
}
/* ReduceSum (axes an input at opset 13) or ReduceMean (an attribute), dims
   kept, then reshaped to the layer's shape */
static int dl__ox_ex_reduce(dl__ox_ex *e, const dl_layer *l) {
    int64_t ax[3], n = 0;
    int k;
    char pn[64], tmp[64];
    const char *in[3];
    dl__wbuf node;
    for (k = 0; k < 3; k++) if (l->a.axes[k]) ax[n++] = k + 1;
    snprintf(tmp, sizeof tmp, "%s/reduce", l->name);
    in[0] = l->in[0]->name; in[1] = in[2] = NULL;
    if (!l->a.mode) {
        snprintf(pn, sizeof pn, "%s.axes", l->name);
        dl__pw_tensor(e->g, 5, pn, 1, &n, NULL, ax);
        in[1] = pn;
    }
    dl__pw_node(&node, l->a.mode ? "ReduceMean" : "ReduceSum", tmp, tmp, in);
    if (l->a.mode) dl__pw_attr_ints(&node, "axes", (int)n, (int)(n > 0 ? ax[0] : 0), (int)(n > 1 ? ax[1] : 0), (int)(n > 2 ? ax[2] : 0), 0);
    dl__pw_attr_int(&node, "keepdims", 1);
    dl__ox_emit(e, &node);
    dl__ox_reshape_node(e, l, tmp, NULL);
    return DL_OK;
}

static const struct dl__ox_export { int op; const char *onnx; dl__ox_export_fn fn; } dl__ox_exports[] = {
    { DL_OP_INPUT, "", dl__ox_ex_input },
    { DL_OP_DENSE, "Gemm", dl__ox_ex_dense },
    { DL_OP_CONV2D, "Conv", dl__ox_ex_conv },
    { DL_OP_MAXPOOL2D, "MaxPool", dl__ox_ex_pool },
    { DL_OP_AVGPOOL2D, "AveragePool", dl__ox_ex_pool },
    { DL_OP_GLOBAL_AVGPOOL, "GlobalAveragePool", dl__ox_ex_global },
    { DL_OP_BATCHNORM, "BatchNormalization", dl__ox_ex_batchnorm },
    { DL_OP_DROPOUT, "Dropout", dl__ox_ex_dropout },
    { DL_OP_RESHAPE, "Reshape", dl__ox_ex_reshape },
    { DL_OP_RELU, "Relu", dl__ox_ex_plain },
    { DL_OP_LEAKY_RELU, "LeakyRelu", dl__ox_ex_alpha },
    { DL_OP_ELU, "Elu", dl__ox_ex_alpha },
    { DL_OP_PRELU, "PRelu", dl__ox_ex_prelu },
    { DL_OP_SIGMOID, "Sigmoid", dl__ox_ex_plain },
    { DL_OP_TANH, "Tanh", dl__ox_ex_plain },
    { DL_OP_SOFTMAX, "Softmax", dl__ox_ex_softmax },
    { DL_OP_ADD, "Add", dl__ox_ex_plain },
    { DL_OP_CONCAT, "Concat", dl__ox_ex_plain },
    { DL_OP_MUL, "Mul", dl__ox_ex_plain },
    { DL_OP_MATMUL, "MatMul", dl__ox_ex_plain },
    { DL_OP_CUSTOM, "", dl__ox_ex_none },
    { DL_OP_GLOBAL_MAXPOOL, "GlobalMaxPool", dl__ox_ex_global },
    { DL_OP_CLIP, "Clip", dl__ox_ex_clip },
    { DL_OP_HARD_SIGMOID, "HardSigmoid", dl__ox_ex_hard_sigmoid },
    { DL_OP_HARD_SWISH, "HardSigmoid", dl__ox_ex_hard_sigmoid },
    { DL_OP_SELU, "Selu", dl__ox_ex_selu },
    { DL_OP_GELU, "Erf", dl__ox_ex_gelu },
    { DL_OP_SILU, "Sigmoid", dl__ox_ex_silu },
    { DL_OP_SOFTPLUS, "Softplus", dl__ox_ex_plain },
    { DL_OP_LOG_SOFTMAX, "LogSoftmax", dl__ox_ex_softmax },
    { DL_OP_SUB, "Sub", dl__ox_ex_plain },
    { DL_OP_DIV, "Div", dl__ox_ex_plain },
    { DL_OP_CONSTANT, "", dl__ox_ex_constant },
    { DL_OP_CONV2D_TRANSPOSE, "ConvTranspose", dl__ox_ex_conv },
    { DL_OP_PAD, "Pad", dl__ox_ex_pad },
    { DL_OP_TRANSPOSE, "Transpose", dl__ox_ex_transpose },
    { DL_OP_UPSAMPLE, "Resize", dl__ox_ex_upsample },
    { DL_OP_SLICE, "Slice", dl__ox_ex_slice },
    { DL_OP_REDUCE, "ReduceSum", dl__ox_ex_reduce },
    { DL_OP_SQRT, "Sqrt", dl__ox_ex_plain },
    { DL_OP_MAXPOOL2D_ARGMAX, "MaxPool", dl__ox_ex_argmax }
};
/* A forgotten row stops the build; test_onnx checks each row's op is its index. */
typedef char dl__ox_exports_has_every_op[sizeof dl__ox_exports / sizeof dl__ox_exports[0] == DL_OP_COUNT ? 1 : -1];

/* One layer as ONNX nodes (and initializers) in graph g. */
static int dl__ox_export_layer(dl__wbuf *g, dl_net *net, const dl_layer *input, const dl_layer *l, char *err) {
    dl__ox_ex e;
    e.g = g; e.net = net; e.input = input; e.err = err; e.op = dl__ox_exports[l->op].onnx;
    return dl__ox_exports[l->op].fn(&e, l);
}

int dl_onnx_save_mem(dl_net *net, dl_layer *const *outputs, int n_outputs, void **data, size_t *len) {
    dl__wbuf m, g, op;
    unsigned char *need;
    const dl_layer *input = NULL;
    int k, j, rc = DL_OK, n = dl_net_layer_count(net), n_inputs = 0;
    char *err;
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!net) return DL_ERR_ARG;
    err = net->err;
    if (!data || !len || !outputs || n_outputs < 1) return dl__fail(err, DL_ERR_ARG, "dl_onnx_save: NULL argument or no outputs");
    if ((rc = dl_net_sync(net))) return rc;
    if (!(need = (unsigned char *)dl__calloc((size_t)n + 1, 1))) return dl__fail(err, DL_ERR_NOMEM, "dl_onnx_save: out of memory");
    for (k = 0; k < n_outputs; k++) {
        if (!outputs[k] || outputs[k]->net != net) { DL_FREE(need); return dl__fail(err, DL_ERR_ARG, "dl_onnx_save: output %d is NULL or of another net", k); }
        need[outputs[k]->index] = 1;
    }
    for (k = n - 1; k >= 0; k--)        /* the ancestors of the outputs */
        if (need[k]) {
            dl_layer *l = dl_net_layer(net, k);
            for (j = 0; j < l->n_in; j++) need[l->in[j]->index] = 1;
        }
    memset(&g, 0, sizeof g);
    for (k = 0; k < n; k++)
        if (need[k] && dl_net_layer(net, k)->op == DL_OP_INPUT) { input = dl_net_layer(net, k); dl__pw_valinfo(&g, 11, input); n_inputs++; }
    if (n_inputs != 1) rc = dl__fail(err, DL_ERR_UNSUPPORTED, "dl_onnx_save: the outputs read %d input layers (one expected)", n_inputs);
    for (k = 0; k < n && !rc; k++)
        if (need[k] && dl_net_layer(net, k)->op != DL_OP_INPUT) rc = dl__ox_export_layer(&g, net, input, dl_net_layer(net, k), err);
    DL_FREE(need);
    if (rc) { DL_FREE(g.p); return rc; }
    dl__pw_str(&g, 2, "dl.h");
    for (k = 0; k < n_outputs; k++) dl__pw_valinfo(&g, 12, outputs[k]);
    memset(&m, 0, sizeof m);
    memset(&op, 0, sizeof op);
    dl__pw_int(&m, 1, 7);               /* IR version 7: opset 13's */
    dl__pw_str(&m, 2, "dl.h");
    dl__pw_msg(&m, 7, &g);
    dl__pw_str(&op, 1, "");
    dl__pw_int(&op, 2, DL__OX_EXPORT_OPSET);
    dl__pw_msg(&m, 8, &op);
    if (m.oom) { DL_FREE(m.p); return dl__fail(err, DL_ERR_NOMEM, "dl_onnx_save: out of memory"); }
    *data = m.p;
    *len = m.len;
    return DL_OK;
}
int dl_onnx_save(dl_net *net, dl_layer *const *outputs, int n_outputs, const char *path) {
    void *data;
    size_t len;
    int rc = dl_onnx_save_mem(net, outputs, n_outputs, &data, &len);
    if (rc) return rc;
    rc = dl__write_atomic(net->err, "dl_onnx_save", path, data, len);
    DL_FREE(data);
    return dl__done(net, rc);
}
DL__COLD_END
#endif /* DL_NO_ONNX */

#ifdef __cplusplus
}
#endif
#endif /* DL_IMPLEMENTATION_INCLUDED */
#endif /* DL_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the dl.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
------------------------------------------------------------------------------
*/

;; ===== echo.wat: the echo-model conformance guest (graphs by name) =====
;;
;; A reactor module: no _start; each export is one parameterized case, takes i32 arguments and returns 0 when the
;; host behaved as wasi-nn requires, or a result code saying which step went wrong and how (see common.wat). It
;; needs a graph named "echo" that the host provides: n inputs in, n outputs out, output i byte for byte input i,
;; of any tensor type and any shape (zero-sized and rank 0 included).
;;
;; Exports (tensor types are witx codes: 0 f16, 1 f32, 2 f64, 3 u8, 4 i32, 5 i64; "shape" is an index into
;; common.wat's shape table; several small numbers are packed into one argument as 4-bit fields, field i for
;; tensor, round or context i):
;;   round trips   echo(type, rank, d0, d1, d2, d3, d4)      padded(type, garbage)
;;                 multi(n, types, shapes)                   rounds(type, count, shapes)
;;                 contexts(graphs, per_graph, type)
;;   errors        bad_graph(handle)    bad_context(call, handle)    unknown_name(which)    bad_type(code)
;;                 mismatch(type, shape, delta)    bad_dims(type, d0, d1, data_len)    early_output(mode)
;;                 output_index(n, index)    short_buffer(type, shape, short)
;;   pointers      wild_tensor(mode)  wild_dims(mode)  wild_data(mode)  wild_output(mode)  wild_written(mode)
;;                 wild_name(mode)  wild_graph_out(mode)  wild_context_out(mode)
;; Every error case ends by showing the guest still works: the host must refuse the bad call and carry on.
(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $nn_load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $nn_init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $nn_set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $nn_compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $nn_get_output (param i32 i32 i32 i32 i32) (result i32)))

  ;; @common

  (global $NAME i32 (i32.const 0x0100))    ;; "echo", followed by a NUL byte
  (global $OTHER i32 (i32.const 0x0110))   ;; "no-such-graph", 13 bytes
  (data (i32.const 0x0100) "echo\00")
  (data (i32.const 0x0110) "no-such-graph")

  ;; load_by_name("echo") into graph handle number k.
  (func $open_graph (param $k i32) (param $phase i32) (result i32)
    (call $ok (call $nn_load_by_name (global.get $NAME) (i32.const 4) (call $graph_at (local.get $k)))
      (local.get $phase) (global.get $LOAD_BY_NAME)))

  ;; Graph 0 and context 0 from it.
  (func $open (param $phase i32) (result i32)
    (local $r i32)
    (local.set $r (call $open_graph (i32.const 0) (local.get $phase)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $open_context (i32.const 0) (i32.const 0) (local.get $phase)))

  ;; Context 0 with tensor slot 0 (already built) set as input 0 and computed.
  (func $computed (result i32)
    (local $r i32)
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r (call $set_inputs (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $do_compute (call $context (i32.const 0)) (i32.const 0)))

  ;; The end of every error case: the probed call's errno must be `want`, then a fresh graph and context (or the
  ;; existing context 0, when `fresh` is 0) must still echo.
  (func $refused (param $errno i32) (param $want i32) (param $call i32) (param $fresh i32) (result i32)
    (local $r i32)
    (local.set $r (call $expect (local.get $errno) (local.get $want) (global.get $PROBE) (local.get $call)))
    (if (local.get $r) (then (return (local.get $r))))
    (if (local.get $fresh)
      (then
        (local.set $r (call $open (global.get $AFTER)))
        (if (local.get $r) (then (return (local.get $r))))))
    (call $still_works (call $context (i32.const 0))))

  ;; ==== round trips =============================================================================================

  ;; One tensor of `type` with dims d0..d(rank-1) in, the same bytes out; get_output's buffer is exactly its size.
  (func (export "echo") (param $type i32) (param $rank i32)
                        (param $d0 i32) (param $d1 i32) (param $d2 i32) (param $d3 i32) (param $d4 i32) (result i32)
    (local $r i32)
    (if (i32.lt_s (call $tensor (i32.const 0) (local.get $type) (local.get $rank)
                    (local.get $d0) (local.get $d1) (local.get $d2) (local.get $d3) (local.get $d4) (i32.const 0))
                  (i32.const 0))
      (then (return (call $bad_args (i32.const 1)))))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $round (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (i32.const 0)))

  ;; A [2,3] tensor of `type` whose struct has `garbage` (its low 3 bytes) in the padding after the type byte:
  ;; the host must read the type as one byte.
  (func (export "padded") (param $type i32) (param $garbage i32) (result i32)
    (local $r i32)
    (global.set $pad (local.get $garbage))
    (if (i32.lt_s (call $shaped (i32.const 0) (local.get $type) (i32.const 2) (i32.const 0)) (i32.const 0))
      (then (return (call $bad_args (i32.const 1)))))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $round (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (i32.const 0)))

  ;; n inputs (1..8) on one context, input i of type field i of `types` and shape field i of `shapes`; all n
  ;; outputs compared, each read with a buffer 64 bytes larger than needed (the host must write only the tensor).
  ;; Phases count tensors.
  (func (export "multi") (param $n i32) (param $types i32) (param $shapes i32) (result i32)
    (local $i i32) (local $r i32)
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 8)))
      (then (return (call $bad_args (i32.const 1)))))
    (global.set $slack (i32.const 64))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.lt_s (call $shaped (local.get $i) (call $nibble (local.get $types) (local.get $i))
                        (call $nibble (local.get $shapes) (local.get $i)) (local.get $i))
                      (i32.const 0))
          (then (return (call $bad_args (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $round (call $context (i32.const 0)) (i32.const 0) (local.get $n) (i32.const 0)))

  ;; `count` (1..8) rounds of set_input/compute/get_output on ONE context, each with new data (and the shape of
  ;; field r of `shapes`). Phases count rounds.
  (func (export "rounds") (param $type i32) (param $count i32) (param $shapes i32) (result i32)
    (local $k i32) (local $r i32)
    (if (i32.or (i32.eqz (local.get $count)) (i32.gt_u (local.get $count) (i32.const 8)))
      (then (return (call $bad_args (i32.const 1)))))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (if (i32.lt_s (call $shaped (i32.const 0) (local.get $type) (call $nibble (local.get $shapes) (local.get $k))
                        (i32.add (local.get $k) (i32.const 1)))
                      (i32.const 0))
          (then (return (call $bad_args (i32.const 2)))))
        (local.set $r (call $round (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; `graphs` load_by_name handles with `per_graph` contexts each (8 contexts at most), context k with its own
  ;; tensor (shape k+1, its own data). Every input is set before any compute, and every context computes before
  ;; any output is read, so contexts that share state show. Phases count graphs (load_by_name) and contexts.
  (func (export "contexts") (param $graphs i32) (param $per_graph i32) (param $type i32) (result i32)
    (local $total i32) (local $k i32) (local $r i32)
    (local.set $total (i32.mul (local.get $graphs) (local.get $per_graph)))
    (if (i32.or (i32.eqz (local.get $total)) (i32.gt_u (local.get $total) (i32.const 8)))
      (then (return (call $bad_args (i32.const 1)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $graphs)))
        (local.set $r (call $open_graph (local.get $k) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (local.set $k (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $total)))
        (local.set $r (call $open_context (i32.div_u (local.get $k) (local.get $per_graph)) (local.get $k) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (if (i32.lt_s (call $shaped (local.get $k) (local.get $type) (i32.add (local.get $k) (i32.const 1))
                        (i32.add (local.get $k) (i32.const 1)))
                      (i32.const 0))
          (then (return (call $bad_args (i32.const 2)))))
        (local.set $r (call $set_inputs (call $context (local.get $k)) (local.get $k) (i32.const 1) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (local.set $k (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $total)))
        (local.set $r (call $do_compute (call $context (local.get $k)) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (local.set $k (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $total)))
        (local.set $r (call $check_outputs (call $context (local.get $k)) (local.get $k) (i32.const 1) (local.get $k)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; ==== errors: each must answer its errno and leave the guest working =========================================

  ;; init_execution_context on a graph handle never issued: invalid_argument. This guest holds exactly one graph,
  ;; so any other number is one the host never gave out (when `handle` happens to be it, handle^1 is used).
  (func (export "bad_graph") (param $handle i32) (result i32)
    (local $r i32)
    (local.set $r (call $open_graph (i32.const 0) (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (if (i32.eq (local.get $handle) (call $graph (i32.const 0)))
      (then (local.set $handle (i32.xor (local.get $handle) (i32.const 1)))))
    (call $refused (call $nn_init (local.get $handle) (call $context_at (i32.const 0)))
      (global.get $INVALID_ARGUMENT) (global.get $INIT) (i32.const 1)))

  ;; set_input (call 4), compute (5) or get_output (6) on a context handle never issued: invalid_argument.
  (func (export "bad_context") (param $call i32) (param $handle i32) (result i32)
    (local $r i32) (local $errno i32)
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $r (call $computed))
    (if (local.get $r) (then (return (local.get $r))))
    (if (i32.eq (local.get $handle) (call $context (i32.const 0)))
      (then (local.set $handle (i32.xor (local.get $handle) (i32.const 1)))))
    (block $called
      (if (i32.eq (local.get $call) (global.get $SET_INPUT))
        (then
          (local.set $errno (call $nn_set_input (local.get $handle) (i32.const 0) (call $tensor_at (i32.const 0))))
          (br $called)))
      (if (i32.eq (local.get $call) (global.get $COMPUTE))
        (then
          (local.set $errno (call $nn_compute (local.get $handle)))
          (br $called)))
      (if (i32.eq (local.get $call) (global.get $GET_OUTPUT))
        (then
          (local.set $errno
            (call $nn_get_output (local.get $handle) (i32.const 0) (global.get $OUT) (global.get $SLOT_BYTES)
              (global.get $WRITTEN)))
          (br $called)))
      (return (call $bad_args (i32.const 1))))
    (call $refused (local.get $errno) (global.get $INVALID_ARGUMENT) (local.get $call) (i32.const 0)))

  ;; load_by_name of a name no graph has: not_found (8), or model_not_found (103) as WasmEdge answers.
  ;; which 0: "no-such-graph"; 1: "ech" (a prefix of echo); 2: "echo\0" (echo and a NUL byte: not "echo").
  (func (export "unknown_name") (param $which i32) (result i32)
    (local $errno i32)
    (block $called
      (if (i32.eqz (local.get $which))
        (then
          (local.set $errno (call $nn_load_by_name (global.get $OTHER) (i32.const 13) (call $graph_at (i32.const 0))))
          (br $called)))
      (if (i32.eq (local.get $which) (i32.const 1))
        (then
          (local.set $errno (call $nn_load_by_name (global.get $NAME) (i32.const 3) (call $graph_at (i32.const 0))))
          (br $called)))
      (if (i32.eq (local.get $which) (i32.const 2))
        (then
          (local.set $errno (call $nn_load_by_name (global.get $NAME) (i32.const 5) (call $graph_at (i32.const 0))))
          (br $called)))
      (return (call $bad_args (i32.const 1))))
    ;; either number is right; the code reports what came back
    (if (i32.eq (local.get $errno) (global.get $MODEL_NOT_FOUND))
      (then (local.set $errno (global.get $NOT_FOUND))))
    (call $refused (local.get $errno) (global.get $NOT_FOUND) (global.get $LOAD_BY_NAME) (i32.const 1)))

  ;; set_input with a tensor type byte that is no witx type: invalid_argument.
  (func (export "bad_type") (param $code i32) (result i32)
    (local $r i32)
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (i32.store8 offset=8 (call $tensor_at (i32.const 0)) (local.get $code))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (call $tensor_at (i32.const 0)))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; set_input whose data_len is the size `shape` needs plus `delta` (a signed number): invalid_argument.
  (func (export "mismatch") (param $type i32) (param $shape i32) (param $delta i32) (result i32)
    (local $r i32) (local $t i32)
    (if (i32.lt_s (call $shaped (i32.const 0) (local.get $type) (local.get $shape) (i32.const 0)) (i32.const 0))
      (then (return (call $bad_args (i32.const 1)))))
    (local.set $t (call $tensor_at (i32.const 0)))
    (i32.store offset=16 (local.get $t) (i32.add (i32.load offset=16 (local.get $t)) (local.get $delta)))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (local.get $t))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; set_input of a rank-2 tensor [d0, d1] with `data_len` bytes of data (the slot's data, read only as far as
  ;; data_len), where the dims' true size differs from data_len: invalid_argument. Dims whose product wraps
  ;; around in 32 bits to exactly data_len catch hosts that multiply in 32 bits.
  (func (export "bad_dims") (param $type i32) (param $d0 i32) (param $d1 i32) (param $data_len i32) (result i32)
    (local $r i32) (local $t i32)
    (if (i32.lt_s (call $shaped (i32.const 0) (local.get $type) (i32.const 2) (i32.const 0)) (i32.const 0))
      (then (return (call $bad_args (i32.const 1)))))
    (if (i32.gt_u (local.get $data_len) (global.get $SLOT_BYTES)) (then (return (call $bad_args (i32.const 2)))))
    (local.set $t (call $tensor_at (i32.const 0)))
    (i32.store offset=0 (call $dims_at (i32.const 0)) (local.get $d0))
    (i32.store offset=4 (call $dims_at (i32.const 0)) (local.get $d1))
    (i32.store offset=16 (local.get $t) (local.get $data_len))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (local.get $t))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; get_output before compute: invalid_argument. mode 0: on a fresh context; 1: after set_input.
  (func (export "early_output") (param $mode i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (local.get $mode) (i32.const 1)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (if (local.get $mode)
      (then
        (local.set $r (call $set_inputs (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (i32.const 0)))
        (if (local.get $r) (then (return (local.get $r))))))
    (call $refused
      (call $nn_get_output (call $context (i32.const 0)) (i32.const 0) (global.get $OUT) (global.get $SLOT_BYTES)
        (global.get $WRITTEN))
      (global.get $INVALID_ARGUMENT) (global.get $GET_OUTPUT) (i32.const 0)))

  ;; After an echo of n inputs (1..8), get_output(index) with index >= n: invalid_argument; afterwards output
  ;; n-1 must still read back right (phase AFTER).
  (func (export "output_index") (param $n i32) (param $index i32) (result i32)
    (local $i i32) (local $r i32) (local $last i32)
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 8)))
      (then (return (call $bad_args (i32.const 1)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (drop (call $shaped (local.get $i) (i32.rem_u (local.get $i) (i32.const 6)) (i32.const 2) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r (call $round (call $context (i32.const 0)) (i32.const 0) (local.get $n) (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r
      (call $expect
        (call $nn_get_output (call $context (i32.const 0)) (local.get $index) (global.get $OUT) (global.get $SLOT_BYTES)
          (global.get $WRITTEN))
        (global.get $INVALID_ARGUMENT) (global.get $PROBE) (global.get $GET_OUTPUT)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $last (i32.sub (local.get $n) (i32.const 1)))
    (call $get_checked (call $context (i32.const 0)) (local.get $last) (local.get $last)
      (call $size_of (local.get $last)) (global.get $AFTER)))

  ;; get_output with a buffer `short` bytes (1..size) too small: too_large, with the size needed in bytes_written;
  ;; a retry with a buffer of bytes_written bytes must then succeed (phase AFTER).
  (func (export "short_buffer") (param $type i32) (param $shape i32) (param $short i32) (result i32)
    (local $r i32) (local $nbytes i32)
    (local.set $nbytes (call $shaped (i32.const 0) (local.get $type) (local.get $shape) (i32.const 0)))
    (if (i32.lt_s (local.get $nbytes) (i32.const 0)) (then (return (call $bad_args (i32.const 1)))))
    (if (i32.or (i32.eqz (local.get $short)) (i32.gt_u (local.get $short) (local.get $nbytes)))
      (then (return (call $bad_args (i32.const 2)))))
    (local.set $r (call $computed))
    (if (local.get $r) (then (return (local.get $r))))
    (i32.store (global.get $WRITTEN) (i32.const 0xDEADBEEF))
    (local.set $r
      (call $expect
        (call $nn_get_output (call $context (i32.const 0)) (i32.const 0) (global.get $OUT)
          (i32.sub (local.get $nbytes) (local.get $short)) (global.get $WRITTEN))
        (global.get $TOO_LARGE) (global.get $PROBE) (global.get $GET_OUTPUT)))
    (if (local.get $r) (then (return (local.get $r))))
    (if (i32.ne (i32.load (global.get $WRITTEN)) (local.get $nbytes))
      (then (return (call $code (i32.const 2) (global.get $PROBE) (global.get $GET_OUTPUT)
                                (i32.load (global.get $WRITTEN))))))
    (call $get_checked (call $context (i32.const 0)) (i32.const 0) (i32.const 0) (i32.load (global.get $WRITTEN))
      (global.get $AFTER)))

  ;; ==== wild pointers: every one is invalid_argument, and the guest goes on working =============================
  ;; mode 0..2 as $wild_ptr: at the end of memory, straddling it, wrapping past 4 GiB. The tensor is f32 [2,3].

  ;; set_input's tensor struct pointer.
  (func (export "wild_tensor") (param $mode i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused
      (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (call $wild_ptr (local.get $mode) (i32.const 20)))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; The tensor's dims pointer (modes 0..2), or mode 3: dims_len 0x40000000 (4 GiB of dims).
  (func (export "wild_dims") (param $mode i32) (result i32)
    (local $r i32) (local $t i32)
    (if (i32.gt_u (local.get $mode) (i32.const 3)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $t (call $tensor_at (i32.const 0)))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (i32.store offset=4 (local.get $t) (i32.const 0x40000000)))
      (else (i32.store offset=0 (local.get $t) (call $wild_ptr (local.get $mode) (i32.const 8)))))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (local.get $t))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; The tensor's data pointer (modes 0..2), or mode 3: data_len 0xFFFFFFF0 (near 4 GiB).
  (func (export "wild_data") (param $mode i32) (result i32)
    (local $r i32) (local $t i32)
    (if (i32.gt_u (local.get $mode) (i32.const 3)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $t (call $tensor_at (i32.const 0)))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (i32.store offset=16 (local.get $t) (i32.const 0xFFFFFFF0)))
      (else (i32.store offset=12 (local.get $t) (call $wild_ptr (local.get $mode) (i32.const 24)))))
    (local.set $r (call $open (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused (call $nn_set_input (call $context (i32.const 0)) (i32.const 0) (local.get $t))
      (global.get $INVALID_ARGUMENT) (global.get $SET_INPUT) (i32.const 0)))

  ;; get_output's output buffer (24 bytes, exactly the output's size).
  (func (export "wild_output") (param $mode i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $r (call $computed))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused
      (call $nn_get_output (call $context (i32.const 0)) (i32.const 0) (call $wild_ptr (local.get $mode) (i32.const 24))
        (i32.const 24) (global.get $WRITTEN))
      (global.get $INVALID_ARGUMENT) (global.get $GET_OUTPUT) (i32.const 0)))

  ;; get_output's bytes_written out-pointer.
  (func (export "wild_written") (param $mode i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 0)))
    (local.set $r (call $computed))
    (if (local.get $r) (then (return (local.get $r))))
    (call $refused
      (call $nn_get_output (call $context (i32.const 0)) (i32.const 0) (global.get $OUT) (i32.const 24)
        (call $wild_ptr (local.get $mode) (i32.const 4)))
      (global.get $INVALID_ARGUMENT) (global.get $GET_OUTPUT) (i32.const 0)))

  ;; load_by_name's name pointer (modes 0..2, 4 bytes), or mode 3: name_len 0xFFFFFFF0 (near 4 GiB).
  (func (export "wild_name") (param $mode i32) (result i32)
    (local $errno i32)
    (if (i32.gt_u (local.get $mode) (i32.const 3)) (then (return (call $bad_args (i32.const 1)))))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then
        (local.set $errno
          (call $nn_load_by_name (global.get $NAME) (i32.const 0xFFFFFFF0) (call $graph_at (i32.const 0)))))
      (else
        (local.set $errno
          (call $nn_load_by_name (call $wild_ptr (local.get $mode) (i32.const 4)) (i32.const 4)
            (call $graph_at (i32.const 0))))))
    (call $refused (local.get $errno) (global.get $INVALID_ARGUMENT) (global.get $LOAD_BY_NAME) (i32.const 1)))

  ;; load_by_name's graph out-pointer.
  (func (export "wild_graph_out") (param $mode i32) (result i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (call $refused
      (call $nn_load_by_name (global.get $NAME) (i32.const 4) (call $wild_ptr (local.get $mode) (i32.const 4)))
      (global.get $INVALID_ARGUMENT) (global.get $LOAD_BY_NAME) (i32.const 1)))

  ;; init_execution_context's context out-pointer.
  (func (export "wild_context_out") (param $mode i32) (result i32)
    (local $r i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (local.set $r (call $open_graph (i32.const 0) (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r
      (call $expect (call $nn_init (call $graph (i32.const 0)) (call $wild_ptr (local.get $mode) (i32.const 4)))
        (global.get $INVALID_ARGUMENT) (global.get $PROBE) (global.get $INIT)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r (call $open_context (i32.const 0) (i32.const 0) (global.get $AFTER)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $still_works (call $context (i32.const 0))))
)

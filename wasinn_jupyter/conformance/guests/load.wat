;; ===== load.wat: the echo-model conformance guest for `load` (model bytes from the guest) =====
;;
;; The model is a TorchScript identity module (forward returns its one input): the runner builds it at run time
;; and writes its bytes over the @MODEL_BYTES@ placeholder below (and its length over @MODEL_LEN@) before
;; assembling, so these cases need a host with a PyTorch backend. Result codes as in common.wat; `target` is the
;; witx execution_target (0 cpu, 1 gpu), `encoding` the witx graph_encoding (1 onnx, 3 pytorch, 5 autodetect).
;;
;; Exports:
;;   load_echo(encoding, target, type)      load the model, then echo a [2,3] tensor of `type` through it
;;   load_invalid(encoding, target, which)  invalid_encoding: which 0 the model bytes (for an encoding that is not
;;                                          the model's), 1 bytes that are no model at all
;;   wild_builders(mode, target)            the builder array pointer (modes 0..2 of $wild_ptr), or mode 3: a
;;                                          builder count near 4 GiB / 8
;;   wild_builder(mode, target)             a builder's bytes pointer (modes 0..2), or mode 3: its length near 4 GiB
;;   wild_load_out(mode, target)            load's graph out-pointer (modes 0..2)
;; Each error case must answer its errno, then load the model properly (encoding pytorch) and echo through it.
(module
  (import "wasi_ephemeral_nn" "load" (func $nn_load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $nn_init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $nn_set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $nn_compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $nn_get_output (param i32 i32 i32 i32 i32) (result i32)))

  ;; @common

  (global $PYTORCH i32 (i32.const 3))
  (global $BUILDERS i32 (i32.const 0x0100))  ;; one graph_builder {u32 ptr, u32 len}, written before each load
  (global $GARBAGE i32 (i32.const 0x0140))
  (global $GARBAGE_LEN i32 (i32.const 32))
  (global $MODEL i32 (i32.const 0x0800))
  (global $MODEL_LEN i32 (i32.const @MODEL_LEN@))

  (data (i32.const 0x0140) "this is no model at all\00\01\02\03\fe\ff\80\7f")
  (data (i32.const 0x0800) "@MODEL_BYTES@")

  ;; Point the builder array at the model (which 0) or the garbage (which 1); returns the array's address.
  (func $builders (param $which i32) (result i32)
    (if (local.get $which)
      (then
        (i32.store offset=0 (global.get $BUILDERS) (global.get $GARBAGE))
        (i32.store offset=4 (global.get $BUILDERS) (global.get $GARBAGE_LEN)))
      (else
        (i32.store offset=0 (global.get $BUILDERS) (global.get $MODEL))
        (i32.store offset=4 (global.get $BUILDERS) (global.get $MODEL_LEN))))
    (global.get $BUILDERS))

  ;; load(the model, encoding, target) into graph 0, then context 0 from it.
  (func $open (param $encoding i32) (param $target i32) (param $phase i32) (result i32)
    (local $r i32)
    (local.set $r
      (call $ok
        (call $nn_load (call $builders (i32.const 0)) (i32.const 1) (local.get $encoding) (local.get $target)
          (call $graph_at (i32.const 0)))
        (local.get $phase) (global.get $LOAD)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $open_context (i32.const 0) (i32.const 0) (local.get $phase)))

  ;; The end of every error case: load's errno must be `want`; then the model, loaded properly, must echo.
  (func $refused (param $errno i32) (param $want i32) (param $target i32) (result i32)
    (local $r i32)
    (local.set $r (call $expect (local.get $errno) (local.get $want) (global.get $PROBE) (global.get $LOAD)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r (call $open (global.get $PYTORCH) (local.get $target) (global.get $AFTER)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $still_works (call $context (i32.const 0))))

  ;; Load the identity model with `encoding` and `target`, then echo a [2,3] tensor of `type` through it.
  (func (export "load_echo") (param $encoding i32) (param $target i32) (param $type i32) (result i32)
    (local $r i32)
    (if (i32.lt_s (call $shaped (i32.const 0) (local.get $type) (i32.const 2) (i32.const 0)) (i32.const 0))
      (then (return (call $bad_args (i32.const 1)))))
    (local.set $r (call $open (local.get $encoding) (local.get $target) (i32.const 0)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $round (call $context (i32.const 0)) (i32.const 0) (i32.const 1) (i32.const 0)))

  ;; load that must answer invalid_encoding: which 0 the model's bytes, 1 bytes that are no model.
  (func (export "load_invalid") (param $encoding i32) (param $target i32) (param $which i32) (result i32)
    (if (i32.gt_u (local.get $which) (i32.const 1)) (then (return (call $bad_args (i32.const 1)))))
    (call $refused
      (call $nn_load (call $builders (local.get $which)) (i32.const 1) (local.get $encoding) (local.get $target)
        (call $graph_at (i32.const 0)))
      (global.get $INVALID_ENCODING) (local.get $target)))

  ;; load with a wild builder array pointer (modes 0..2), or mode 3: 0x20000000 builders (4 GiB of array).
  (func (export "wild_builders") (param $mode i32) (param $target i32) (result i32)
    (local $array i32) (local $count i32)
    (if (i32.gt_u (local.get $mode) (i32.const 3)) (then (return (call $bad_args (i32.const 1)))))
    (local.set $array (call $builders (i32.const 0)))
    (local.set $count (i32.const 1))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (local.set $count (i32.const 0x20000000)))
      (else (local.set $array (call $wild_ptr (local.get $mode) (i32.const 8)))))
    (call $refused
      (call $nn_load (local.get $array) (local.get $count) (global.get $PYTORCH) (local.get $target)
        (call $graph_at (i32.const 0)))
      (global.get $INVALID_ARGUMENT) (local.get $target)))

  ;; load whose one builder points at wild bytes (modes 0..2), or mode 3: a builder length of 0xFFFFFFF0.
  (func (export "wild_builder") (param $mode i32) (param $target i32) (result i32)
    (if (i32.gt_u (local.get $mode) (i32.const 3)) (then (return (call $bad_args (i32.const 1)))))
    (drop (call $builders (i32.const 0)))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (i32.store offset=4 (global.get $BUILDERS) (i32.const 0xFFFFFFF0)))
      (else (i32.store offset=0 (global.get $BUILDERS) (call $wild_ptr (local.get $mode) (global.get $MODEL_LEN)))))
    (call $refused
      (call $nn_load (global.get $BUILDERS) (i32.const 1) (global.get $PYTORCH) (local.get $target)
        (call $graph_at (i32.const 0)))
      (global.get $INVALID_ARGUMENT) (local.get $target)))

  ;; load with a wild graph out-pointer.
  (func (export "wild_load_out") (param $mode i32) (param $target i32) (result i32)
    (if (i32.gt_u (local.get $mode) (i32.const 2)) (then (return (call $bad_args (i32.const 1)))))
    (call $refused
      (call $nn_load (call $builders (i32.const 0)) (i32.const 1) (global.get $PYTORCH) (local.get $target)
        (call $wild_ptr (local.get $mode) (i32.const 4)))
      (global.get $INVALID_ARGUMENT) (local.get $target)))
)

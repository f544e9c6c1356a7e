;; A wasi-nn guest that drives the round trip inside wasm, so one export call covers many host calls.
;;
;;   setup(name_ptr, name_len) -> errno   load_by_name + init_execution_context; the context is kept in $ctx
;;   run(n, tensor_ptr, out_ptr, out_max) -> errno
;;                                         n times: set_input(ctx, 0, tensor_ptr); compute(ctx);
;;                                         get_output(ctx, 0, out_ptr, out_max, &written); stops at the first errno
;;   grow(pages) -> old size in pages, or -1
;;   written() -> the bytes_written of the last get_output
;;
;; The benchmark script writes the name, the 20-byte tensor struct, its dims and its data into memory itself.
(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $ctx (mut i32) (i32.const 0))
  ;; scratch words: 16 graph handle, 20 context handle, 24 bytes_written
  (func (export "setup") (param $name_ptr i32) (param $name_len i32) (result i32)
    (local $e i32)
    (local.set $e (call $load_by_name (local.get $name_ptr) (local.get $name_len) (i32.const 16)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $e (call $init (i32.load (i32.const 16)) (i32.const 20)))
    (if (local.get $e) (then (return (local.get $e))))
    (global.set $ctx (i32.load (i32.const 20)))
    (i32.const 0))
  (func (export "run") (param $n i32) (param $tensor i32) (param $out i32) (param $max i32) (result i32)
    (local $e i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (call $set_input (global.get $ctx) (i32.const 0) (local.get $tensor)))
        (if (local.get $e) (then (return (local.get $e))))
        (local.set $e (call $compute (global.get $ctx)))
        (if (local.get $e) (then (return (local.get $e))))
        (local.set $e (call $get_output (global.get $ctx) (i32.const 0) (local.get $out) (local.get $max)
                                        (i32.const 24)))
        (if (local.get $e) (then (return (local.get $e))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))
  (func (export "grow") (param $pages i32) (result i32)
    (memory.grow (local.get $pages)))
  (func (export "written") (result i32)
    (i32.load (i32.const 24))))

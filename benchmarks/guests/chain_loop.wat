;; Two graphs chained k times by a loop inside wasm (benchmarks/residence.py).
;; setup(name_a, len_a, name_b, len_b): load_by_name + init_execution_context for both.
;; run_copy(k, tensor_a, mid, mid_max, tensor_b, out, out_max): A's output crosses linear memory (get_output into
;;   mid, then set_input of B from a tensor struct whose data is mid), as a plain witx guest chains graphs.
;; run_bind(k, tensor_a, out, out_max): A's output becomes B's input with set_input_from_output (no linear memory).
;; Each returns the first non-zero errno. Scratch: bytes 0..31.
(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input_from_output" (func $bind (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $a (mut i32) (i32.const 0))
  (global $b (mut i32) (i32.const 0))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func $open (param $name i32) (param $len i32) (result i32)
    (local $e i32)
    (local.set $e (call $load_by_name (local.get $name) (local.get $len) (i32.const 0)))
    (if (local.get $e) (then (return (local.get $e))))
    (call $init (i32.load (i32.const 0)) (i32.const 4)))
  (func (export "setup") (param $na i32) (param $la i32) (param $nb i32) (param $lb i32) (result i32)
    (local $e i32)
    (local.set $e (call $open (local.get $na) (local.get $la)))
    (if (local.get $e) (then (return (local.get $e))))
    (global.set $a (i32.load (i32.const 4)))
    (local.set $e (call $open (local.get $nb) (local.get $lb)))
    (if (local.get $e) (then (return (local.get $e))))
    (global.set $b (i32.load (i32.const 4)))
    (i32.const 0))
  (func (export "run_copy") (param $k i32) (param $ta i32) (param $mid i32) (param $mid_max i32) (param $tb i32)
        (param $out i32) (param $out_max i32) (result i32)
    (local $e i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $k)))
        (br_if $done (local.tee $e (call $set_input (global.get $a) (i32.const 0) (local.get $ta))))
        (br_if $done (local.tee $e (call $compute (global.get $a))))
        (br_if $done (local.tee $e
          (call $get_output (global.get $a) (i32.const 0) (local.get $mid) (local.get $mid_max) (i32.const 16))))
        (br_if $done (local.tee $e (call $set_input (global.get $b) (i32.const 0) (local.get $tb))))
        (br_if $done (local.tee $e (call $compute (global.get $b))))
        (br_if $done (local.tee $e
          (call $get_output (global.get $b) (i32.const 0) (local.get $out) (local.get $out_max) (i32.const 16))))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $next)))
    (local.get $e))
  (func (export "run_bind") (param $k i32) (param $ta i32) (param $out i32) (param $out_max i32) (result i32)
    (local $e i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $k)))
        (br_if $done (local.tee $e (call $set_input (global.get $a) (i32.const 0) (local.get $ta))))
        (br_if $done (local.tee $e (call $compute (global.get $a))))
        (br_if $done (local.tee $e (call $bind (global.get $b) (i32.const 0) (global.get $a) (i32.const 0))))
        (br_if $done (local.tee $e (call $compute (global.get $b))))
        (br_if $done (local.tee $e
          (call $get_output (global.get $b) (i32.const 0) (local.get $out) (local.get $out_max) (i32.const 16))))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $next)))
    (local.get $e))
)

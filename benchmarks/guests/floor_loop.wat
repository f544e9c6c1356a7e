;; The floor for nn_loop.wat: the same loop, the same arguments, but the three imports are trivial host
;; functions (Linker.define_func with access_caller=True that return 0), so a round trip is three bare
;; guest -> Python host calls and nothing else.
(module
  (import "floor" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "floor" "compute" (func $compute (param i32) (result i32)))
  (import "floor" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $ctx (mut i32) (i32.const 0))
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
    (i32.const 0)))

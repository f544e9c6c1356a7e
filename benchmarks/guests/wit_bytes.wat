;; A component that moves list<u8> across the component boundary and nothing else, for wit_throughput.py:
;; send(n) passes n bytes to the host's take (guest -> host); receive(n) asks the host's give for n bytes
;; (host -> guest); bounce(n) does both with the same bytes. Each answers the length that arrived.
(component
  (import "wasinn:bench/bytes" (instance $bytes
    (export "take" (func (param "data" (list u8)) (result u32)))
    (export "give" (func (param "n" u32) (result (list u8))))
  ))
  (core module $Mem
    (memory (export "memory") 1)
    (global $top (mut i32) (i32.const 0x100))
    (func (export "reset") (global.set $top (i32.const 0x100)))
    (func (export "realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32) (local $need i32)
      (local.set $at (i32.and (i32.add (global.get $top) (i32.sub (local.get $align) (i32.const 1)))
                              (i32.sub (i32.const 0) (local.get $align))))
      (global.set $top (i32.add (local.get $at) (local.get $size)))
      (local.set $need (i32.sub (global.get $top) (i32.mul (memory.size) (i32.const 65536))))
      (if (i32.gt_s (local.get $need) (i32.const 0))
        (then (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (local.get $need) (i32.const 16)) (i32.const 1)))
                            (i32.const 0))
                (then unreachable))))
      (local.get $at)))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))
  (alias core export $mem "reset" (core func $reset))
  (core func $take (canon lower (func $bytes "take") (memory $memory)))
  (core func $give (canon lower (func $bytes "give") (memory $memory) (realloc $realloc)))
  (core module $Main
    (import "env" "memory" (memory 1))
    (import "env" "reset" (func $reset))
    (import "env" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "env" "take" (func $take (param i32 i32) (result i32)))
    (import "env" "give" (func $give (param i32 i32)))
    (func (export "send") (param $n i32) (result i32)
      (call $reset)
      (call $take (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $n)) (local.get $n)))
    (func (export "receive") (param $n i32) (result i32)
      (call $reset)
      (call $give (local.get $n) (i32.const 16))
      (i32.load (i32.const 20)))
    (func (export "bounce") (param $n i32) (result i32)  ;; give's bytes straight back to take, as they arrived
      (call $reset)
      (call $give (local.get $n) (i32.const 16))
      (call $take (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
  (core instance $main (instantiate $Main
    (with "env" (instance
      (export "memory" (memory $memory)) (export "reset" (func $reset)) (export "realloc" (func $realloc))
      (export "take" (func $take)) (export "give" (func $give))))))
  (func (export "send") (param "n" u32) (result u32) (canon lift (core func $main "send")))
  (func (export "receive") (param "n" u32) (result u32) (canon lift (core func $main "receive")))
  (func (export "bounce") (param "n" u32) (result u32) (canon lift (core func $main "bounce")))
)

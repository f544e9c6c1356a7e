;; driver.wat: the guest `%%wasinn compute` uses when no --guest is given. It implements the wasinn-jupyter
;; compute convention (see wasinn_jupyter/host/abi/convention.py and bindings/wasi_nn.h) by forwarding the tensors it is
;; handed through the witx ABI: load_by_name, init_execution_context, set_input for each, compute, then get_output
;; for index 0, 1, ... until the host answers invalid_argument (witx has no output count).
;;
;; Memory: 0 graph handle, 4 context handle, 8 bytes written; 1024 the output table (256 tensors of 20 bytes);
;; 65536 up the heap: wasinn_alloc restarts it at every call (the convention allows that), then output buffers
;; follow the host's arena. Outputs carry type 255 (type and dims as the graph made them): get_output gives bytes.

(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  (global $TABLE i32 (i32.const 1024))
  (global $MAX_OUTPUTS i32 (i32.const 256))
  (global $HEAP_BASE i32 (i32.const 65536))
  (global $SLACK i32 (i32.const 65536))  ;; kept free after the arena, so small outputs fit at the first try
  (global $heap (mut i32) (i32.const 65536))

  ;; Make memory reach `end` (unsigned); 0 when it cannot grow that far.
  (func $reserve (param $end i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.sub
        (i32.wrap_i64 (i64.shr_u (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 65535)) (i64.const 16)))
        (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 1))

  (func $align8 (param $p i32) (result i32)
    (i32.and (i32.add (local.get $p) (i32.const 7)) (i32.const -8)))

  ;; Bytes of memory past `p`: the most get_output may write there.
  (func $room (param $p i32) (result i32)
    (i32.sub (i32.shl (memory.size) (i32.const 16)) (local.get $p)))

  (func (export "wasinn_alloc") (param $size i32) (result i32)
    (local $end i64)
    (local.set $end
      (i64.add (i64.extend_i32_u (global.get $HEAP_BASE)) (i64.extend_i32_u (local.get $size))))
    (if (i64.gt_u (i64.add (local.get $end) (i64.const 65543)) (i64.const 0x80000000))
      (then (return (i32.const 0))))  ;; stay under 2 GiB, so sizes stay positive i32s
    (global.set $heap (call $align8 (i32.wrap_i64 (local.get $end))))
    (if (i32.eqz (call $reserve (i32.add (global.get $heap) (global.get $SLACK))))
      (then (return (i32.const 0))))
    (global.get $HEAP_BASE))

  (func (export "wasinn_compute")
    (param $name i32) (param $name_len i32) (param $inputs i32) (param $n i32) (param $result i32) (result i32)
    (local $err i32) (local $i i32) (local $ctx i32) (local $buf i32) (local $size i32) (local $entry i32)
    (local.set $err (call $load_by_name (local.get $name) (local.get $name_len) (i32.const 0)))
    (if (local.get $err) (then (return (local.get $err))))
    (local.set $err (call $init (i32.load (i32.const 0)) (i32.const 4)))
    (if (local.get $err) (then (return (local.get $err))))
    (local.set $ctx (i32.load (i32.const 4)))

    (block $inputs_done
      (loop $next_input
        (br_if $inputs_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $err
          (call $set_input (local.get $ctx) (local.get $i)
            (i32.add (local.get $inputs) (i32.mul (local.get $i) (i32.const 20)))))
        (if (local.get $err) (then (return (local.get $err))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next_input)))

    (local.set $err (call $compute (local.get $ctx)))
    (if (local.get $err) (then (return (local.get $err))))

    (local.set $i (i32.const 0))
    (block $outputs_done
      (loop $next_output
        (br_if $outputs_done (i32.ge_u (local.get $i) (global.get $MAX_OUTPUTS)))
        (local.set $buf (call $align8 (global.get $heap)))
        (local.set $err
          (call $get_output (local.get $ctx) (local.get $i) (local.get $buf) (call $room (local.get $buf))
            (i32.const 8)))
        (if (i32.eq (local.get $err) (i32.const 7))  ;; too_large: grow to the size it asked for, then again
          (then
            (local.set $size (i32.load (i32.const 8)))
            (if (i32.eqz (call $reserve (i32.add (local.get $buf) (local.get $size))))
              (then (return (i32.const 7))))
            (local.set $err
              (call $get_output (local.get $ctx) (local.get $i) (local.get $buf) (call $room (local.get $buf))
                (i32.const 8)))))
        (br_if $outputs_done (i32.eq (local.get $err) (i32.const 1)))  ;; invalid_argument: past the last output
        (if (local.get $err) (then (return (local.get $err))))
        (local.set $size (i32.load (i32.const 8)))
        (local.set $entry (i32.add (global.get $TABLE) (i32.mul (local.get $i) (i32.const 20))))
        (i64.store (local.get $entry) (i64.const 0))                       ;; dims_ptr, dims_len: as the graph made them
        (i32.store (i32.add (local.get $entry) (i32.const 8)) (i32.const 255))  ;; type: as the graph made it
        (i32.store (i32.add (local.get $entry) (i32.const 12)) (local.get $buf))
        (i32.store (i32.add (local.get $entry) (i32.const 16)) (local.get $size))
        (global.set $heap (i32.add (local.get $buf) (local.get $size)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next_output)))

    (i32.store (local.get $result) (local.get $i))
    (i32.store (i32.add (local.get $result) (i32.const 4)) (global.get $TABLE))
    (i32.store (i32.add (local.get $result) (i32.const 8)) (local.get $ctx))
    (i32.const 0))
)

;; classify.wat: a WASI command guest that classifies one image with a graph loaded by name.
;;
;;   wasinn run --dir examples/models::. --nn-preload cnn:PyTorch:CPU:examples/models/tiny_cnn.pt \
;;       examples/classify.wat cnn input.bin
;;
;; argv[1] is the graph's name, argv[2] a file in the first preopened directory holding a 1x3x32x32 f32 tensor
;; (raw little-endian bytes). It prints the ten scores (x1000, as integers) and the top class. It uses only the
;; legacy witx ABI (`wasi_ephemeral_nn`), so WasmEdge runs it the same way with `wasmedge --dir .:examples/models`.

(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; Layout: 0 iovec, 8 nread/nwritten, 16 argc, 20 argv size, 64 argv pointers, 256 argv strings,
  ;; 1280 graph, 1284 context, 1288 bytes written, 1292 fd, 1300 dims, 1320 tensor, 1400 output,
  ;; 6000 text scratch, 8192 input data (3*32*32*4 = 12288 bytes).
  (global $INPUT_BYTES i32 (i32.const 12288))
  (data (i32.const 1300) "\01\00\00\00\03\00\00\00\20\00\00\00\20\00\00\00")
  (data (i32.const 5000) "usage: classify.wat GRAPH INPUT.bin\n")         ;; 36
  (data (i32.const 5040) "load_by_name failed, errno ")                   ;; 27
  (data (i32.const 5070) "init_execution_context failed, errno ")         ;; 37
  (data (i32.const 5110) "set_input failed, errno ")                      ;; 24
  (data (i32.const 5140) "compute failed, errno ")                        ;; 22
  (data (i32.const 5170) "get_output failed, errno ")                     ;; 25
  (data (i32.const 5200) "cannot read the input file, wasi errno ")       ;; 39
  (data (i32.const 5250) "scores x1000:")                                 ;; 13
  (data (i32.const 5270) "top class: ")                                   ;; 11

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Prints a signed integer in decimal, using the scratch area at 6000.
  (func $print_int (param $v i32) (local $p i32) (local $neg i32) (local $u i32)
    (local.set $p (i32.const 6100))
    (local.set $neg (i32.lt_s (local.get $v) (i32.const 0)))
    (local.set $u (select (i32.sub (i32.const 0) (local.get $v)) (local.get $v) (local.get $neg)))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $u) (i32.const 10))))
      (local.set $u (i32.div_u (local.get $u) (i32.const 10)))
      (br_if $digits (local.get $u)))
    (if (local.get $neg)
      (then
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.const 45))))
    (call $print (local.get $p) (i32.sub (i32.const 6100) (local.get $p))))

  (func $newline (i32.store8 (i32.const 6200) (i32.const 10)) (call $print (i32.const 6200) (i32.const 1)))
  (func $space (i32.store8 (i32.const 6200) (i32.const 32)) (call $print (i32.const 6200) (i32.const 1)))

  (func $die (param $msg i32) (param $len i32) (param $errno i32)
    (call $print (local.get $msg) (local.get $len))
    (call $print_int (local.get $errno))
    (call $newline)
    (call $proc_exit (i32.const 1)))

  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $end
      (loop $scan
        (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $scan)))
    (local.get $n))

  (func $read_input (param $path i32) (local $err i32) (local $fd i32) (local $got i32)
    ;; fd 3 is the first preopened directory; rights: fd_read (bit 1).
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (call $strlen (local.get $path))
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1292)))
    (if (local.get $err) (then (call $die (i32.const 5200) (i32.const 39) (local.get $err))))
    (local.set $fd (i32.load (i32.const 1292)))
    (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 8192) (local.get $got)))
      (i32.store (i32.const 4) (i32.sub (global.get $INPUT_BYTES) (local.get $got)))
      (local.set $err (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $err) (then (call $die (i32.const 5200) (i32.const 39) (local.get $err))))
      (local.set $got (i32.add (local.get $got) (i32.load (i32.const 8))))
      (br_if $more (i32.and (i32.load (i32.const 8)) (i32.lt_u (local.get $got) (global.get $INPUT_BYTES))))))

  (func (export "_start") (local $err i32) (local $name i32) (local $i i32) (local $best i32) (local $score f32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.lt_u (i32.load (i32.const 16)) (i32.const 3))
      (then (call $print (i32.const 5000) (i32.const 36)) (call $proc_exit (i32.const 2))))
    (drop (call $args_get (i32.const 64) (i32.const 256)))
    (local.set $name (i32.load (i32.const 68)))
    (call $read_input (i32.load (i32.const 72)))

    (local.set $err (call $load_by_name (local.get $name) (call $strlen (local.get $name)) (i32.const 1280)))
    (if (local.get $err) (then (call $die (i32.const 5040) (i32.const 27) (local.get $err))))
    (local.set $err (call $init (i32.load (i32.const 1280)) (i32.const 1284)))
    (if (local.get $err) (then (call $die (i32.const 5070) (i32.const 37) (local.get $err))))

    ;; tensor { dims_ptr, dims_len, type = 1 (f32), data_ptr, data_len }
    (i32.store (i32.const 1320) (i32.const 1300))
    (i32.store (i32.const 1324) (i32.const 4))
    (i32.store (i32.const 1328) (i32.const 1))
    (i32.store (i32.const 1332) (i32.const 8192))
    (i32.store (i32.const 1336) (global.get $INPUT_BYTES))
    (local.set $err (call $set_input (i32.load (i32.const 1284)) (i32.const 0) (i32.const 1320)))
    (if (local.get $err) (then (call $die (i32.const 5110) (i32.const 24) (local.get $err))))
    (local.set $err (call $compute (i32.load (i32.const 1284))))
    (if (local.get $err) (then (call $die (i32.const 5140) (i32.const 22) (local.get $err))))
    (local.set $err (call $get_output (i32.load (i32.const 1284)) (i32.const 0) (i32.const 1400) (i32.const 4096)
      (i32.const 1288)))
    (if (local.get $err) (then (call $die (i32.const 5170) (i32.const 25) (local.get $err))))

    (call $print (i32.const 5250) (i32.const 13))
    (loop $each
      (call $space)
      (call $print_int (i32.trunc_sat_f32_s
        (f32.mul (f32.load (i32.add (i32.const 1400) (i32.shl (local.get $i) (i32.const 2)))) (f32.const 1000))))
      (if (f32.gt (f32.load (i32.add (i32.const 1400) (i32.shl (local.get $i) (i32.const 2))))
                  (f32.load (i32.add (i32.const 1400) (i32.shl (local.get $best) (i32.const 2)))))
        (then (local.set $best (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $i) (i32.shr_u (i32.load (i32.const 1288)) (i32.const 2)))))
    (call $newline)
    (call $print (i32.const 5270) (i32.const 11))
    (call $print_int (local.get $best))
    (call $newline))
)

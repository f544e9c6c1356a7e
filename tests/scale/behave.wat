;; behave.wat: a command guest for map tests. It reads the file its last argument names (in the first preopened
;; directory, fd 3), prints its contents, and behaves by the first byte: "t" traps, "l" loops forever, "s" sleeps
;; 300 ms (WASI poll_oneoff) first, "x" exits 3 after printing; anything else exits 0.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0 iovec, 8 count, 16 argc, 20 argv size, 64 argv pointers, 256 argv strings, 1024 fd, 2048 contents (256),
  ;; 4096 clock subscription, 4160 event
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $end
      (loop $scan
        (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $scan)))
    (local.get $n))
  (func (export "_start") (local $path i32) (local $n i32) (local $first i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 64) (i32.const 256)))
    (local.set $path (i32.load (i32.add (i32.const 60) (i32.shl (i32.load (i32.const 16)) (i32.const 2)))))
    (if (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (call $strlen (local.get $path))
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1024))
      (then (call $proc_exit (i32.const 9))))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 256))
    (drop (call $fd_read (i32.load (i32.const 1024)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (local.set $first (i32.load8_u (i32.const 2048)))
    (if (i32.eq (local.get $first) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $first) (i32.const 108)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $first) (i32.const 115))
      (then
        (i32.store (i32.const 4112) (i32.const 1))
        (i64.store (i32.const 4120) (i64.const 300000000))
        (drop (call $poll (i32.const 4096) (i32.const 4160) (i32.const 1) (i32.const 8)))))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eq (local.get $first) (i32.const 120)) (then (call $proc_exit (i32.const 3))))))

  ;; ===== common.wat: the part every conformance guest shares =====
  ;;
  ;; Not a module on its own: the runner pastes this text where a guest says ";; @common", after the guest's
  ;; imports (which must come first in a module). It calls the imports $nn_init, $nn_set_input, $nn_compute and
  ;; $nn_get_output, which every guest declares.
  ;;
  ;; Memory map (4 pages of 64 KiB; the memory never grows):
  ;;   0x00000  out-pointers: graph handles [8] at 0x00, context handles [8] at 0x20, bytes_written at 0x40
  ;;   0x00100  guest-specific constants (graph names, builder arrays)
  ;;   0x001F0  element size of each witx tensor type
  ;;   0x00200  shape table: 16 entries of 8 bytes {u8 rank, u8 dims[5], 2 unused}
  ;;   0x00300  tensor structs, 20 bytes each: slot i at 0x300 + 20*i (i < 8)
  ;;   0x00400  dims arrays, 5 x u32 each: slot i at 0x400 + 20*i
  ;;   0x00800  guest-specific data (load.wat: the model and garbage bytes), up to 0x10000
  ;;   0x10000  input data: slot i at 0x10000 + 0x4000*i (16 KiB each)
  ;;   0x30000  output buffer, to the end of memory (64 KiB)
  ;;
  ;; Result codes. Every export returns an i32: 0 means the host did what wasi-nn requires. Anything else is
  ;;   KIND * 100_000_000 + STEP * 1_000_000 + VALUE        with STEP = PHASE * 10 + CALL
  ;; CALL   1 load, 2 load_by_name, 3 init_execution_context, 4 set_input, 5 compute, 6 get_output
  ;; PHASE  0..7  the k-th tensor, round, context or graph (each export says which it counts)
  ;;        8     afterwards: the guest checking that it still works after the call under test
  ;;        9     the call under test (the one that must fail)
  ;; KIND   1  the call answered errno VALUE, which is not what the case expects
  ;;        2  get_output reported bytes_written = VALUE, which is not the tensor's size
  ;;        3  the output bytes differ from the input bytes at offset VALUE
  ;;        4  get_output wrote past the output's bytes, at buffer offset VALUE
  ;;        9  the export's arguments are out of range (VALUE says which check): a bad case, not a host failure
  ;; VALUE is clamped to 999_999.

  (memory (export "memory") 4)

  (global $GRAPHS i32 (i32.const 0x00000))
  (global $CONTEXTS i32 (i32.const 0x00020))
  (global $WRITTEN i32 (i32.const 0x00040))
  (global $ITEMSIZE i32 (i32.const 0x001F0))
  (global $SHAPES i32 (i32.const 0x00200))
  (global $TENSORS i32 (i32.const 0x00300))
  (global $DIMS i32 (i32.const 0x00400))
  (global $INPUTS i32 (i32.const 0x10000))
  (global $OUT i32 (i32.const 0x30000))
  (global $SLOT_BYTES i32 (i32.const 0x4000))

  ;; CALL numbers and PHASE numbers of the result codes
  (global $LOAD i32 (i32.const 1))
  (global $LOAD_BY_NAME i32 (i32.const 2))
  (global $INIT i32 (i32.const 3))
  (global $SET_INPUT i32 (i32.const 4))
  (global $COMPUTE i32 (i32.const 5))
  (global $GET_OUTPUT i32 (i32.const 6))
  (global $AFTER i32 (i32.const 8))
  (global $PROBE i32 (i32.const 9))

  ;; witx nn_errno values the guests expect
  (global $INVALID_ARGUMENT i32 (i32.const 1))
  (global $INVALID_ENCODING i32 (i32.const 2))
  (global $TOO_LARGE i32 (i32.const 7))
  (global $NOT_FOUND i32 (i32.const 8))
  (global $MODEL_NOT_FOUND i32 (i32.const 103))  ;; WasmEdge's answer to an unknown name

  (global $F32 i32 (i32.const 1))
  (global $CANARY i32 (i32.const 0xA5))  ;; fills the output buffer and what follows it before get_output

  ;; The 3 padding bytes after a tensor's type byte: 0 unless an export fills them with garbage.
  (global $pad (mut i32) (i32.const 0))
  ;; get_output is given a buffer this many bytes larger than the tensor (0: exactly the tensor's size).
  (global $slack (mut i32) (i32.const 0))

  ;; bytes per element, by witx tensor type: f16 f32 f64 u8 i32 i64
  (data (i32.const 0x01F0) "\02\04\08\01\04\08")

  ;; The shape table; exports name shapes by index (runner.py's SHAPES mirrors it).
  (data (i32.const 0x0200)
    ;; rank dims[5]               unused
    "\00"  "\00\00\00\00\00"  "\00\00"   ;;  0: []            rank 0: one element
    "\01"  "\05\00\00\00\00"  "\00\00"   ;;  1: [5]
    "\02"  "\02\03\00\00\00"  "\00\00"   ;;  2: [2,3]
    "\01"  "\00\00\00\00\00"  "\00\00"   ;;  3: [0]           no elements
    "\03"  "\02\00\03\00\00"  "\00\00"   ;;  4: [2,0,3]       no elements
    "\03"  "\02\03\04\00\00"  "\00\00"   ;;  5: [2,3,4]
    "\04"  "\01\02\03\02\00"  "\00\00"   ;;  6: [1,2,3,2]
    "\05"  "\02\01\02\01\03"  "\00\00"   ;;  7: [2,1,2,1,3]
    "\01"  "\11\00\00\00\00"  "\00\00"   ;;  8: [17]          an odd byte count for u8
    "\02"  "\03\01\00\00\00"  "\00\00"   ;;  9: [3,1]
    "\02"  "\04\04\00\00\00"  "\00\00"   ;; 10: [4,4]
    "\01"  "\01\00\00\00\00"  "\00\00"   ;; 11: [1]
    "\02"  "\ff\03\00\00\00"  "\00\00"   ;; 12: [255,3]
    "\02"  "\04\00\00\00\00"  "\00\00"   ;; 13: [4,0]         no elements
    "\03"  "\03\03\03\00\00"  "\00\00"   ;; 14: [3,3,3]
    "\05"  "\01\01\01\01\01"  "\00\00")  ;; 15: [1,1,1,1,1]

  ;; ---- result codes ------------------------------------------------------------------------------------------

  (func $code (param $kind i32) (param $phase i32) (param $call i32) (param $value i32) (result i32)
    (i32.add
      (i32.add
        (i32.mul (local.get $kind) (i32.const 100000000))
        (i32.mul (i32.add (i32.mul (local.get $phase) (i32.const 10)) (local.get $call)) (i32.const 1000000)))
      (select (local.get $value) (i32.const 999999) (i32.lt_u (local.get $value) (i32.const 999999)))))

  ;; 0 when `errno` is `want`; otherwise the code saying what came back from `call` in `phase`.
  (func $expect (param $errno i32) (param $want i32) (param $phase i32) (param $call i32) (result i32)
    (if (result i32) (i32.eq (local.get $errno) (local.get $want))
      (then (i32.const 0))
      (else (call $code (i32.const 1) (local.get $phase) (local.get $call) (local.get $errno)))))

  ;; 0 when the call succeeded.
  (func $ok (param $errno i32) (param $phase i32) (param $call i32) (result i32)
    (call $expect (local.get $errno) (i32.const 0) (local.get $phase) (local.get $call)))

  ;; The export's argument check number `which` failed.
  (func $bad_args (param $which i32) (result i32)
    (call $code (i32.const 9) (i32.const 0) (i32.const 0) (local.get $which)))

  ;; ---- addresses ---------------------------------------------------------------------------------------------

  (func $graph_at (param $k i32) (result i32)
    (i32.add (global.get $GRAPHS) (i32.shl (local.get $k) (i32.const 2))))
  (func $graph (param $k i32) (result i32)
    (i32.load (call $graph_at (local.get $k))))
  (func $context_at (param $k i32) (result i32)
    (i32.add (global.get $CONTEXTS) (i32.shl (local.get $k) (i32.const 2))))
  (func $context (param $k i32) (result i32)
    (i32.load (call $context_at (local.get $k))))
  (func $tensor_at (param $slot i32) (result i32)
    (i32.add (global.get $TENSORS) (i32.mul (local.get $slot) (i32.const 20))))
  (func $dims_at (param $slot i32) (result i32)
    (i32.add (global.get $DIMS) (i32.mul (local.get $slot) (i32.const 20))))
  (func $data_at (param $slot i32) (result i32)
    (i32.add (global.get $INPUTS) (i32.mul (local.get $slot) (global.get $SLOT_BYTES))))
  ;; a built tensor's data_len
  (func $size_of (param $slot i32) (result i32)
    (i32.load offset=16 (call $tensor_at (local.get $slot))))
  (func $itemsize (param $type i32) (result i32)
    (i32.load8_u (i32.add (global.get $ITEMSIZE) (local.get $type))))
  ;; 4-bit field i of x: exports pack up to 8 small numbers (types, shape indices) into one argument
  (func $nibble (param $x i32) (param $i i32) (result i32)
    (i32.and (i32.shr_u (local.get $x) (i32.shl (local.get $i) (i32.const 2))) (i32.const 15)))

  ;; A pointer to `size` bytes that no host may accept. mode 0: at the end of memory; 1: straddling the end (half
  ;; inside); 2: so near 4 GiB that ptr + size wraps around to size/2, which looks in bounds to 32-bit arithmetic.
  (func $wild_ptr (param $mode i32) (param $size i32) (result i32)
    (local $end i32)
    (local.set $end (i32.shl (memory.size) (i32.const 16)))
    (if (i32.eqz (local.get $mode)) (then (return (local.get $end))))
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then (return (i32.sub (local.get $end) (i32.shr_u (local.get $size) (i32.const 1))))))
    (i32.sub (i32.const 0) (i32.shr_u (local.get $size) (i32.const 1))))

  ;; ---- tensor data -------------------------------------------------------------------------------------------

  ;; Fill `count` elements of witx `type` at `ptr` with a pattern that depends on `salt`. Floats are always finite
  ;; (one exponent bit is cleared, so the exponent is never all ones): a host that moves floats through FP registers
  ;; must still echo them bit for bit, and no NaN can be quietly rewritten.
  (func $fill (param $ptr i32) (param $type i32) (param $count i32) (param $salt i32)
    (local $k i32) (local $v i32) (local $at i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (local.set $at (i32.add (local.get $ptr) (i32.mul (local.get $k) (call $itemsize (local.get $type)))))
        ;; v: a cheap hash of (k, salt), so neighbouring elements and different salts differ in every byte
        (local.set $v
          (i32.mul
            (i32.add (local.get $k) (i32.mul (i32.add (local.get $salt) (i32.const 1)) (i32.const 0x10001)))
            (i32.const 0x9E3779B1)))
        (local.set $v (i32.xor (local.get $v) (i32.shr_u (local.get $v) (i32.const 16))))
        (block $stored
          (block $i64
            (block $i32
              (block $u8
                (block $f64
                  (block $f32
                    (block $f16
                      (br_table $f16 $f32 $f64 $u8 $i32 $i64 (local.get $type)))
                    ;; f16: without exponent bit 0x0400
                    (i32.store16 (local.get $at) (i32.and (local.get $v) (i32.const 0xFBFF)))
                    (br $stored))
                  ;; f32: without exponent bit 0x00800000
                  (i32.store (local.get $at) (i32.and (local.get $v) (i32.const 0xFF7FFFFF)))
                  (br $stored))
                ;; f64: any low word; the high word without exponent bit 0x00100000
                (i32.store (local.get $at) (local.get $v))
                (i32.store offset=4 (local.get $at)
                  (i32.and (i32.rotl (local.get $v) (i32.const 11)) (i32.const 0xFFEFFFFF)))
                (br $stored))
              ;; u8
              (i32.store8 (local.get $at) (local.get $v))
              (br $stored))
            ;; i32
            (i32.store (local.get $at) (local.get $v))
            (br $stored))
          ;; i64
          (i32.store (local.get $at) (local.get $v))
          (i32.store offset=4 (local.get $at) (i32.rotl (local.get $v) (i32.const 11))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next))))

  ;; The offset of the first byte where a and b differ in their first len bytes, or -1 when they are equal.
  (func $first_diff (param $a i32) (param $b i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  ;; The offset of the first of len bytes at p that is not `byte`, or -1.
  (func $first_not (param $p i32) (param $byte i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i))) (local.get $byte))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  ;; Build tensor slot `slot` (struct, dims, data): witx `type`, the first `rank` of d0..d4 as dims, data filled
  ;; from `salt`. Returns its size in bytes, or -1 when the type is not a witx type, the rank is over 5 or the data
  ;; would not fit the 16 KiB slot.
  (func $tensor (param $slot i32) (param $type i32) (param $rank i32)
                (param $d0 i32) (param $d1 i32) (param $d2 i32) (param $d3 i32) (param $d4 i32)
                (param $salt i32) (result i32)
    (local $dims i32) (local $count i64) (local $i i32) (local $nbytes i32) (local $t i32)
    (if (i32.or (i32.ge_u (local.get $type) (i32.const 6)) (i32.gt_u (local.get $rank) (i32.const 5)))
      (then (return (i32.const -1))))
    (local.set $dims (call $dims_at (local.get $slot)))
    (i32.store offset=0 (local.get $dims) (local.get $d0))
    (i32.store offset=4 (local.get $dims) (local.get $d1))
    (i32.store offset=8 (local.get $dims) (local.get $d2))
    (i32.store offset=12 (local.get $dims) (local.get $d3))
    (i32.store offset=16 (local.get $dims) (local.get $d4))
    ;; the element count, in 64 bits and capped at 2^16 after each factor so it cannot wrap (a later 0 still wins)
    (local.set $count (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $rank)))
        (local.set $count
          (i64.mul (local.get $count)
            (i64.extend_i32_u (i32.load (i32.add (local.get $dims) (i32.shl (local.get $i) (i32.const 2)))))))
        (if (i64.gt_u (local.get $count) (i64.const 0x10000)) (then (local.set $count (i64.const 0x10000))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $nbytes (i32.mul (i32.wrap_i64 (local.get $count)) (call $itemsize (local.get $type))))
    (if (i32.gt_u (local.get $nbytes) (global.get $SLOT_BYTES)) (then (return (i32.const -1))))
    ;; the 20-byte struct: dims_ptr, dims_len, type (+ 3 padding bytes), data_ptr, data_len
    (local.set $t (call $tensor_at (local.get $slot)))
    (i32.store offset=0 (local.get $t) (local.get $dims))
    (i32.store offset=4 (local.get $t) (local.get $rank))
    (i32.store offset=8 (local.get $t) (i32.or (local.get $type) (i32.shl (global.get $pad) (i32.const 8))))
    (i32.store offset=12 (local.get $t) (call $data_at (local.get $slot)))
    (i32.store offset=16 (local.get $t) (local.get $nbytes))
    (call $fill (call $data_at (local.get $slot)) (local.get $type) (i32.wrap_i64 (local.get $count)) (local.get $salt))
    (local.get $nbytes))

  ;; $tensor with dims from entry `shape` of the shape table.
  (func $shaped (param $slot i32) (param $type i32) (param $shape i32) (param $salt i32) (result i32)
    (local $e i32)
    (if (i32.ge_u (local.get $shape) (i32.const 16)) (then (return (i32.const -1))))
    (local.set $e (i32.add (global.get $SHAPES) (i32.shl (local.get $shape) (i32.const 3))))
    (call $tensor (local.get $slot) (local.get $type) (i32.load8_u (local.get $e))
      (i32.load8_u offset=1 (local.get $e)) (i32.load8_u offset=2 (local.get $e)) (i32.load8_u offset=3 (local.get $e))
      (i32.load8_u offset=4 (local.get $e)) (i32.load8_u offset=5 (local.get $e))
      (local.get $salt)))

  ;; ---- wasi-nn steps, each returning 0 or a result code --------------------------------------------------------

  ;; A context from graph handle number g into context handle number k.
  (func $open_context (param $g i32) (param $k i32) (param $phase i32) (result i32)
    (call $ok (call $nn_init (call $graph (local.get $g)) (call $context_at (local.get $k)))
      (local.get $phase) (global.get $INIT)))

  ;; set_input(ctx, i, tensor of slot first+i) for i < n; input i reports as phase+i.
  (func $set_inputs (param $ctx i32) (param $first i32) (param $n i32) (param $phase i32) (result i32)
    (local $i i32) (local $r i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $r
          (call $ok
            (call $nn_set_input (local.get $ctx) (local.get $i) (call $tensor_at (i32.add (local.get $first) (local.get $i))))
            (i32.add (local.get $phase) (local.get $i)) (global.get $SET_INPUT)))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func $do_compute (param $ctx i32) (param $phase i32) (result i32)
    (call $ok (call $nn_compute (local.get $ctx)) (local.get $phase) (global.get $COMPUTE)))

  ;; After a successful get_output into OUT with a buffer of `max` bytes: bytes_written must be the size of slot
  ;; `slot`'s tensor, the bytes must be its bytes, and the canary after them must be untouched.
  (func $compare_output (param $slot i32) (param $max i32) (param $phase i32) (result i32)
    (local $nbytes i32) (local $at i32)
    (local.set $nbytes (call $size_of (local.get $slot)))
    (if (i32.ne (i32.load (global.get $WRITTEN)) (local.get $nbytes))
      (then (return (call $code (i32.const 2) (local.get $phase) (global.get $GET_OUTPUT)
                                (i32.load (global.get $WRITTEN))))))
    (local.set $at (call $first_diff (call $data_at (local.get $slot)) (global.get $OUT) (local.get $nbytes)))
    (if (i32.ge_s (local.get $at) (i32.const 0))
      (then (return (call $code (i32.const 3) (local.get $phase) (global.get $GET_OUTPUT) (local.get $at)))))
    (local.set $at
      (call $first_not (i32.add (global.get $OUT) (local.get $nbytes)) (global.get $CANARY)
        (i32.sub (i32.add (local.get $max) (i32.const 16)) (local.get $nbytes))))
    (if (i32.ge_s (local.get $at) (i32.const 0))
      (then (return (call $code (i32.const 4) (local.get $phase) (global.get $GET_OUTPUT)
                                (i32.add (local.get $nbytes) (local.get $at))))))
    (i32.const 0))

  ;; get_output(ctx, index) into OUT with a buffer of `max` bytes, then $compare_output against slot `slot`.
  (func $get_checked (param $ctx i32) (param $index i32) (param $slot i32) (param $max i32) (param $phase i32)
                     (result i32)
    (local $r i32)
    (memory.fill (global.get $OUT) (global.get $CANARY) (i32.add (local.get $max) (i32.const 16)))
    (i32.store (global.get $WRITTEN) (i32.const 0xDEADBEEF))  ;; so a bytes_written the host never wrote shows
    (local.set $r
      (call $ok
        (call $nn_get_output (local.get $ctx) (local.get $index) (global.get $OUT) (local.get $max) (global.get $WRITTEN))
        (local.get $phase) (global.get $GET_OUTPUT)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $compare_output (local.get $slot) (local.get $max) (local.get $phase)))

  ;; Outputs 0..n-1 of ctx must echo the tensors of slots first..first+n-1; output i reports as phase+i.
  (func $check_outputs (param $ctx i32) (param $first i32) (param $n i32) (param $phase i32) (result i32)
    (local $i i32) (local $r i32) (local $slot i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $slot (i32.add (local.get $first) (local.get $i)))
        (local.set $r
          (call $get_checked (local.get $ctx) (local.get $i) (local.get $slot)
            (i32.add (call $size_of (local.get $slot)) (global.get $slack)) (i32.add (local.get $phase) (local.get $i))))
        (if (local.get $r) (then (return (local.get $r))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; One full echo on ctx: inputs from slots first..first+n-1, compute, every output read back and compared.
  (func $round (param $ctx i32) (param $first i32) (param $n i32) (param $phase i32) (result i32)
    (local $r i32)
    (local.set $r (call $set_inputs (local.get $ctx) (local.get $first) (local.get $n) (local.get $phase)))
    (if (local.get $r) (then (return (local.get $r))))
    (local.set $r (call $do_compute (local.get $ctx) (local.get $phase)))
    (if (local.get $r) (then (return (local.get $r))))
    (call $check_outputs (local.get $ctx) (local.get $first) (local.get $n) (local.get $phase)))

  ;; After the call under test: ctx must still echo a fresh f32 [2,3] tensor (everything reports as phase AFTER).
  (func $still_works (param $ctx i32) (result i32)
    (global.set $pad (i32.const 0))
    (drop (call $shaped (i32.const 0) (global.get $F32) (i32.const 2) (i32.const 99)))
    (call $round (local.get $ctx) (i32.const 0) (i32.const 1) (global.get $AFTER)))

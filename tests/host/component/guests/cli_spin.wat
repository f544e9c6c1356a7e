;; A command component whose run never returns: for deadlines and interrupts.
(component
  (core module $Main (func (export "run") (result i32) (loop $forever (br $forever)) (i32.const 0)))
  (core instance $main (instantiate $Main))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $cli-run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli-run))
)

//! wasi_nn.rs: Rust bindings for the legacy witx wasi-nn ABI (import module `wasi_ephemeral_nn`), shipped with
//! wasinn-jupyter so a Rust guest needs no crate. `%%wasinn guest NAME --lang rust` puts this file next to the
//! cell's source: write `mod wasi_nn;` in the cell. Elsewhere, copy it beside `main.rs` and build with
//! `rustc --target wasm32-wasi` (Rust 1.63 or newer; no registry needed).
//!
//! `raw` holds the imports exactly as the ABI has them; the rest is a thin safe layer (`load_by_name`,
//! `Graph::init_execution_context`, `Context::{set_input, compute, get_output_vec}`) and the types of the
//! wasinn-jupyter compute convention (`ComputeResult`, `TYPE_FROM_GRAPH`), described in `wasi_nn.h`.
#![allow(dead_code)]

use std::fmt;

/// witx `nn_errno` values. WasmEdge's extensions (100..) appear only from WasmEdge-only functions.
pub mod errno {
    pub const SUCCESS: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 1;
    pub const INVALID_ENCODING: u32 = 2;
    pub const MISSING_MEMORY: u32 = 3;
    pub const BUSY: u32 = 4;
    pub const RUNTIME_ERROR: u32 = 5;
    pub const UNSUPPORTED_OPERATION: u32 = 6;
    pub const TOO_LARGE: u32 = 7;
    pub const NOT_FOUND: u32 = 8;
    pub const END_OF_SEQUENCE: u32 = 100;
    pub const CONTEXT_FULL: u32 = 101;
    pub const PROMPT_TOO_LONG: u32 = 102;
    pub const MODEL_NOT_FOUND: u32 = 103;
}

/// The witx tensor types (no bf16 in witx).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F16 = 0,
    F32 = 1,
    F64 = 2,
    U8 = 3,
    I32 = 4,
    I64 = 5,
}

impl TensorType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TensorType::U8 => 1,
            TensorType::F16 => 2,
            TensorType::F32 | TensorType::I32 => 4,
            TensorType::F64 | TensorType::I64 => 8,
        }
    }
}

/// witx `graph_encoding` (WAMR numbers autodetect 6 and ggml 5).
pub mod encoding {
    pub const OPENVINO: u32 = 0;
    pub const ONNX: u32 = 1;
    pub const TENSORFLOW: u32 = 2;
    pub const PYTORCH: u32 = 3;
    pub const TENSORFLOWLITE: u32 = 4;
    pub const AUTODETECT: u32 = 5;
    pub const GGML: u32 = 6;
}

/// witx `execution_target`.
pub mod target {
    pub const CPU: u32 = 0;
    pub const GPU: u32 = 1;
    pub const TPU: u32 = 2;
}

/// The 20-byte witx tensor: dims at +0, rank at +4, type at +8 (3 padding bytes), data at +12, size at +16.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Tensor {
    pub dims: *const u32,
    pub dims_len: u32,
    pub ty: u8,
    pub data: *const u8,
    pub data_len: u32,
}

/// 28 bytes: a name (UTF-8) and a tensor, for the `compute_named` extension (docs/abi/wasinn-extensions.md).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NamedTensor {
    pub name: *const u8,
    pub name_len: u32,
    pub tensor: Tensor,
}

/// One graph builder (a model's bytes), 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GraphBuilder {
    pub data: *const u8,
    pub len: u32,
}

/// The imports, exactly as the ABI defines them. Every function returns an errno.
pub mod raw {
    use super::{GraphBuilder, NamedTensor, Tensor};

    #[link(wasm_import_module = "wasi_ephemeral_nn")]
    extern "C" {
        pub fn load(builders: *const GraphBuilder, builders_len: u32, encoding: u32, target: u32, graph: *mut u32)
            -> u32;
        pub fn load_by_name(name: *const u8, name_len: u32, graph: *mut u32) -> u32;
        pub fn init_execution_context(graph: u32, ctx: *mut u32) -> u32;
        pub fn set_input(ctx: u32, index: u32, tensor: *const Tensor) -> u32;
        pub fn compute(ctx: u32) -> u32;
        /// On too_large the size needed is still written to `bytes_written`.
        pub fn get_output(ctx: u32, index: u32, buf: *mut u8, buf_max: u32, bytes_written: *mut u32) -> u32;
    }

    // WasmEdge-only; importing one makes the host answer an unknown name with 103 instead of 8.
    #[link(wasm_import_module = "wasi_ephemeral_nn")]
    extern "C" {
        pub fn load_by_name_with_config(
            name: *const u8,
            name_len: u32,
            config: *const u8,
            config_len: u32,
            graph: *mut u32,
        ) -> u32;
        pub fn unload(graph: u32) -> u32;
        pub fn finalize_execution_context(ctx: u32) -> u32;
        /// Token streaming on a prompt graph: one token per call, END_OF_SEQUENCE (100) or CONTEXT_FULL (101) at the end.
        pub fn compute_single(ctx: u32) -> u32;
        pub fn get_output_single(ctx: u32, index: u32, buf: *mut u8, buf_max: u32, bytes_written: *mut u32) -> u32;
        pub fn fini_single(ctx: u32) -> u32;
    }

    // wasinn-jupyter's extensions (docs/abi/wasinn-extensions.md); only wasinn-jupyter links them.
    #[link(wasm_import_module = "wasi_ephemeral_nn")]
    extern "C" {
        pub fn compute_named(
            ctx: u32,
            inputs: *const NamedTensor,
            inputs_len: u32,
            out: *mut u8,
            out_max: u32,
            bytes_written: *mut u32,
        ) -> u32;
        pub fn get_named_outputs(ctx: u32, out: *mut u8, out_max: u32, bytes_written: *mut u32) -> u32;
        pub fn list_properties(graph: u32, buf: *mut u8, buf_max: u32, bytes_written: *mut u32) -> u32;
        pub fn get_property(
            graph: u32,
            name: *const u8,
            name_len: u32,
            buf: *mut u8,
            buf_max: u32,
            bytes_written: *mut u32,
        ) -> u32;
        pub fn set_property(graph: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32) -> u32;
        pub fn set_input_from_output(ctx: u32, index: u32, src_ctx: u32, src_index: u32) -> u32;
    }
}

/// A non-zero errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub u32);

impl Error {
    pub fn name(self) -> &'static str {
        errno_name(self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasi-nn errno {} ({})", self.0, self.name())
    }
}

pub fn errno_name(e: u32) -> &'static str {
    match e {
        errno::SUCCESS => "success",
        errno::INVALID_ARGUMENT => "invalid_argument",
        errno::INVALID_ENCODING => "invalid_encoding",
        errno::MISSING_MEMORY => "missing_memory",
        errno::BUSY => "busy",
        errno::RUNTIME_ERROR => "runtime_error",
        errno::UNSUPPORTED_OPERATION => "unsupported_operation",
        errno::TOO_LARGE => "too_large",
        errno::NOT_FOUND => "not_found",
        errno::END_OF_SEQUENCE => "end_of_sequence",
        errno::CONTEXT_FULL => "context_full",
        errno::PROMPT_TOO_LONG => "prompt_too_long",
        errno::MODEL_NOT_FOUND => "model_not_found",
        _ => "unknown_errno",
    }
}

fn check(e: u32) -> Result<(), Error> {
    if e == errno::SUCCESS {
        Ok(())
    } else {
        Err(Error(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graph(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context(pub u32);

/// The graph the host registered as `name` (`%wasinn load NAME ...`).
pub fn load_by_name(name: &str) -> Result<Graph, Error> {
    let mut graph = 0u32;
    check(unsafe { raw::load_by_name(name.as_ptr(), name.len() as u32, &mut graph) })?;
    Ok(Graph(graph))
}

/// A graph from model bytes (a TorchScript archive for the PyTorch host).
pub fn load(builders: &[&[u8]], encoding: u32, target: u32) -> Result<Graph, Error> {
    let list: Vec<GraphBuilder> = builders.iter().map(|b| GraphBuilder { data: b.as_ptr(), len: b.len() as u32 }).collect();
    let mut graph = 0u32;
    check(unsafe { raw::load(list.as_ptr(), list.len() as u32, encoding, target, &mut graph) })?;
    Ok(Graph(graph))
}

impl Graph {
    pub fn init_execution_context(&self) -> Result<Context, Error> {
        let mut ctx = 0u32;
        check(unsafe { raw::init_execution_context(self.0, &mut ctx) })?;
        Ok(Context(ctx))
    }
}

impl Context {
    pub fn set_input(&mut self, index: u32, ty: TensorType, dims: &[u32], data: &[u8]) -> Result<(), Error> {
        let tensor = Tensor {
            dims: dims.as_ptr(),
            dims_len: dims.len() as u32,
            ty: ty as u8,
            data: data.as_ptr(),
            data_len: data.len() as u32,
        };
        check(unsafe { raw::set_input(self.0, index, &tensor) })
    }

    /// Pass a tensor struct through unchanged (as the compute convention hands them over).
    pub fn set_input_raw(&mut self, index: u32, tensor: &Tensor) -> Result<(), Error> {
        check(unsafe { raw::set_input(self.0, index, tensor) })
    }

    pub fn compute(&mut self) -> Result<(), Error> {
        check(unsafe { raw::compute(self.0) })
    }

    /// Output `index` into `buf`; the number of bytes written.
    pub fn get_output(&self, index: u32, buf: &mut [u8]) -> Result<usize, Error> {
        let mut written = 0u32;
        check(unsafe { raw::get_output(self.0, index, buf.as_mut_ptr(), buf.len() as u32, &mut written) })?;
        Ok(written as usize)
    }

    /// Output `index` as a new vector, retrying once with the size the host asks for.
    pub fn get_output_vec(&self, index: u32) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; 4096];
        let mut written = 0u32;
        let mut e = unsafe { raw::get_output(self.0, index, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
        if e == errno::TOO_LARGE {
            buf.resize(written as usize, 0);
            e = unsafe { raw::get_output(self.0, index, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
        }
        check(e)?;
        buf.truncate(written as usize);
        Ok(buf)
    }
}

// -- wasinn-jupyter's extensions (docs/abi/wasinn-extensions.md); only this host links them -------------------

/// One output of `compute_named`: its name, witx type (6 for bf16), dims and bytes.
#[derive(Debug, Clone)]
pub struct NamedOutput {
    pub name: String,
    pub ty: u8,
    pub dims: Vec<u32>,
    pub data: Vec<u8>,
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// The `named_tensors` the host wrote into `buf` (its pointers are addresses inside `buf`).
fn parse_named(buf: &[u8]) -> Vec<NamedOutput> {
    let base = buf.as_ptr() as usize;
    let at = |addr: u32| addr as usize - base;
    let count = u32_at(buf, 0) as usize;
    (0..count)
        .map(|i| {
            let r = 4 + i * 28;
            let (name, name_len) = (at(u32_at(buf, r)), u32_at(buf, r + 4) as usize);
            let (dims, rank) = (at(u32_at(buf, r + 8)), u32_at(buf, r + 12) as usize);
            let (data, data_len) = (at(u32_at(buf, r + 20)), u32_at(buf, r + 24) as usize);
            NamedOutput {
                name: String::from_utf8_lossy(&buf[name..name + name_len]).into_owned(),
                ty: buf[r + 16],
                dims: (0..rank).map(|d| u32_at(buf, dims + 4 * d)).collect(),
                data: buf[data..data + data_len].to_vec(),
            }
        })
        .collect()
}

impl Graph {
    /// The graph's property names (wasi-nn PR 80).
    pub fn list_properties(&self) -> Result<Vec<String>, Error> {
        let mut buf = vec![0u8; 1024];
        let mut written = 0u32;
        let mut e = unsafe { raw::list_properties(self.0, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
        if e == errno::TOO_LARGE {
            buf.resize(written as usize, 0);
            e = unsafe { raw::list_properties(self.0, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
        }
        check(e)?;
        let names = &buf[..written as usize];
        Ok(names.split(|b| *b == 0).filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned()).collect())
    }

    /// A property's value; `Ok(None)` where the graph has no such property.
    pub fn get_property(&self, name: &str) -> Result<Option<String>, Error> {
        let mut buf = vec![0u8; 4096];
        let mut written = 0u32;
        let e = unsafe {
            raw::get_property(self.0, name.as_ptr(), name.len() as u32, buf.as_mut_ptr(), buf.len() as u32, &mut written)
        };
        if e == errno::NOT_FOUND {
            return Ok(None);
        }
        check(e)?;
        Ok(Some(String::from_utf8_lossy(&buf[..written as usize]).into_owned()))
    }

    /// Applies from the next compute (to every guest sharing a graph loaded by name).
    pub fn set_property(&self, name: &str, value: &str) -> Result<(), Error> {
        check(unsafe { raw::set_property(self.0, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) })
    }
}

impl Context {
    /// One call over named tensors: (name, type, dims, data) in, the named outputs back.
    pub fn compute_named(&mut self, inputs: &[(&str, TensorType, &[u32], &[u8])]) -> Result<Vec<NamedOutput>, Error> {
        let list: Vec<NamedTensor> = inputs
            .iter()
            .map(|(name, ty, dims, data)| NamedTensor {
                name: name.as_ptr(),
                name_len: name.len() as u32,
                tensor: Tensor {
                    dims: dims.as_ptr(),
                    dims_len: dims.len() as u32,
                    ty: *ty as u8,
                    data: data.as_ptr(),
                    data_len: data.len() as u32,
                },
            })
            .collect();
        let mut buf = vec![0u8; 1 << 16];
        let mut written = 0u32;
        let mut e = unsafe {
            raw::compute_named(self.0, list.as_ptr(), list.len() as u32, buf.as_mut_ptr(), buf.len() as u32, &mut written)
        };
        while e == errno::TOO_LARGE && written as usize > buf.len() {
            // the outputs are kept: read them again into a buffer of the size needed, without a recompute (data is
            // aligned by address, so a buffer at another address may need a few bytes more: then once again)
            buf = vec![0u8; written as usize + 64];
            e = unsafe { raw::get_named_outputs(self.0, buf.as_mut_ptr(), buf.len() as u32, &mut written) };
        }
        check(e)?;
        Ok(parse_named(&buf[..written as usize]))
    }

    /// Input `index` becomes output `src_index` of `src`, with no copy through linear memory.
    pub fn set_input_from_output(&mut self, index: u32, src: &Context, src_index: u32) -> Result<(), Error> {
        check(unsafe { raw::set_input_from_output(self.0, index, src.0, src_index) })
    }
}

/// An output type that tells the host "type and dims as the graph produced them" (compute convention).
pub const TYPE_FROM_GRAPH: u8 = 255;

/// What `wasinn_compute` fills in (compute convention): `n_outputs` tensors at `outputs`, and the context that
/// `TYPE_FROM_GRAPH` outputs refer to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ComputeResult {
    pub n_outputs: u32,
    pub outputs: *const Tensor,
    pub ctx: u32,
}

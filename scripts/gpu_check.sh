#!/usr/bin/env bash
# GPU checks for the sandbox and the host, as one command for a lent GPU machine (not CI). Its image has torch but
# no wasmtime: first, here, `python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12
# --implementation cp --platform manylinux_2_17_x86_64 -d .whl wasmtime==50.0.1` (.whl/ is git-ignored), then run
# `bash scripts/gpu_check.sh` there with .whl carried. It checks: a guest's model sandboxed on CUDA against torch,
# the CUDA tests, the sandbox and budget tests, the conformance suite on gpu, benchmark (d) on cuda.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L; uname -a; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
cat > /tmp/gpu_sandbox.py <<'PY'
import io, time, numpy as np, torch, warnings
warnings.simplefilter("ignore")
from wasinn_jupyter.host import Host, Tensor, Limits
from wasinn_jupyter.host.sandbox import confine
print("landlock abi:", confine._libc.syscall(444, None, 0, 1))
m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10)).eval()
x = torch.rand(2, 3, 16, 16); m(x)
b = io.BytesIO(); torch.jit.save(torch.jit.script(m), b)
with Host().client() as c:
    t = time.time(); g = c.load([b.getvalue()], "pytorch", "gpu"); print("sandboxed gpu load %.2f s" % (time.time() - t))
    p = c._sandboxes["cuda"]; print("worker", p.pid, p.confinement)
    ctx = c.init_execution_context(g); c.set_input(ctx, 0, Tensor.from_value(x.numpy()))
    c.compute(ctx); out = c.get_output(ctx, 0).to_numpy()
    ref = m.cuda()(x.cuda()).detach().cpu().numpy()
    print("gpu sandbox matches:", np.allclose(out, ref, atol=1e-4), "device", c.graphs.get(g).device)
    t = time.time()
    for _ in range(50): c.compute(ctx)
    print("gpu sandbox compute %.3f ms" % ((time.time() - t) / 50 * 1e3))
PY
timeout 300 python3 /tmp/gpu_sandbox.py 2>&1 | tail -8
timeout 400 python3 -m pytest -q -p no:cacheprovider tests/host/test_gpu.py tests/host/sandbox/test_confine.py tests/host/sandbox/test_remote.py tests/host/test_budget.py tests/host/backends/test_torch.py 2>&1 | tail -15
timeout 120 python3 -m wasinn_jupyter.cli conformance --target gpu 2>&1 | tail -2
cd benchmarks && timeout 300 python3 guest_models.py --device cuda --reps 10 2>&1 | grep -v Warn | tail -14
# phase 3: properties (device, precision, residence) and .pt2 on CUDA; chaining with residence=device (benchmark f)
timeout 200 python3 residence.py --device cuda --reps 10 2>&1 | grep -v Warn | tail -8
cd .. && timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu tests/host/backends/test_torch_properties.py tests/host/backends/test_model_formats.py 2>&1 | tail -5

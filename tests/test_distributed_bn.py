"""GlobalBatchNorm: two gloo processes on halves of a batch compute what one BatchNorm2d computes on all.

The workers send their results as bytes (``torch.save`` into memory), not as tensors: a tensor put on a
multiprocessing queue travels as a handle to the sender's shared memory, which the receiver can no longer
open once the sender has exited - under CPU load the workers often exited before the parent read them.
"""

import io
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from figkd.engine.distributed import GlobalBatchNorm, convert_batchnorm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, x, w, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    bn = GlobalBatchNorm(3).double()
    shard = x.chunk(world)[rank].clone().requires_grad_(True)
    y = bn(shard)
    (y * w.chunk(world)[rank]).sum().backward()
    buffer = io.BytesIO()
    torch.save((rank, y.detach(), shard.grad, bn.running_mean, bn.running_var, bn.weight.grad), buffer)
    queue.put(buffer.getvalue())
    dist.destroy_process_group()


def test_global_batchnorm_equals_one_process_batchnorm():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    w = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, x, w, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((torch.load(io.BytesIO(queue.get(timeout=300)), weights_only=True) for _ in procs),
                     key=lambda r: r[0])
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0

    ref_bn = nn.BatchNorm2d(3).double()
    xr = x.clone().requires_grad_(True)
    yr = ref_bn(xr)
    (yr * w).sum().backward()
    y = torch.cat([r[1] for r in results])
    gx = torch.cat([r[2] for r in results])
    torch.testing.assert_close(y, yr.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, xr.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(results[0][3], ref_bn.running_mean)
    torch.testing.assert_close(results[0][4], ref_bn.running_var)
    # The affine parameters' gradient is the local part; DDP sums (averages) it across ranks.
    torch.testing.assert_close(results[0][5] + results[1][5], ref_bn.weight.grad)


def test_single_process_global_batchnorm_is_batchnorm():
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    x = torch.randn(2, 3, 6, 6)
    ref = bn(x)
    converted = convert_batchnorm(bn)
    assert isinstance(converted[1], GlobalBatchNorm)
    torch.testing.assert_close(converted(x), ref)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_converted_state_dict_keys_are_unchanged(momentum):
    bn = nn.BatchNorm2d(4, momentum=momentum)
    assert convert_batchnorm(nn.Sequential(bn)).state_dict().keys() == nn.Sequential(bn).state_dict().keys()

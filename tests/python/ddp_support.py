"""Runs a function on several gloo ranks (processes), for the DDP tests.

spawn(world, fn, *args) starts `world` processes, each with torch.distributed initialised
(gloo, a file:// rendezvous of its own, so tests can run in parallel), calls
fn(rank, world, *args) in each, and raises if any rank raised (with its traceback).
fn must be a module-level function (the processes are spawned, not forked).
"""

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank, world, init_file, fn, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
        # Without a barrier before destroy_process_group a rank sometimes aborts at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(world, fn, *args):
    with tempfile.TemporaryDirectory() as d:
        init_file = os.path.join(d, "rendezvous")
        mp.start_processes(_entry, args=(world, init_file, fn, args), nprocs=world, join=True, start_method="spawn")

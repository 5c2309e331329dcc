"""FSDP: a model sharded across two CPU processes (torch's FSDP2 over gloo) exports a state dict that
``from_pretrained`` loads, with the weights a single process computes for the same step.

accelerate enables FSDP only on GPU-like devices (on the CPU it replicates, and the run says so:
tests/test_speed.py), so tests/fsdp_worker.py drives torch's ``fully_shard`` directly, as accelerate's
FSDP2 path does, and gathers the full state dict the way ``Accelerator.get_state_dict`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import visnet_hf
from tests.helpers import free_port

from . import fsdp_worker

pytestmark = pytest.mark.slow  # two processes

WORKER = Path(fsdp_worker.__file__)


def test_two_fsdp_shards_export_what_from_pretrained_loads(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    done = subprocess.run([*command, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded, total, world = map(int, (tmp_path / "shards.txt").read_text().split())
    assert world == 2 and sharded < 0.6 * total  # each process held about half of the weights

    # The same step in one process: FSDP averages the two ranks' gradients, i.e. of the mean of their losses.
    reference = fsdp_worker.build().eval()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    loss = (reference(**fsdp_worker.batch(0)).loss + reference(**fsdp_worker.batch(1)).loss) / 2
    loss.backward()
    optimizer.step()

    saved = load_file(tmp_path / "model" / "model.safetensors")
    expected = reference.state_dict()
    assert set(saved) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(saved[name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    loaded = visnet_hf.FRNForImageClassification.from_pretrained(tmp_path / "model").eval()
    pixels = fsdp_worker.batch(0)["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).logits, reference(pixels).logits, atol=1e-5, rtol=1e-4)

"""One process of tests/test_fsdp.py: torch's FSDP2 (``fully_shard``) over gloo, on the CPU.

accelerate enables FSDP only on GPU-like devices, so this drives torch's FSDP directly, the way
accelerate's FSDP2 path does (``fully_shard`` per block, then the model; the full state dict
gathered with ``get_model_state_dict(full_state_dict=True)``, which is what
``Accelerator.get_state_dict`` calls), and saves it with ``save_pretrained`` as the trainer's export does.

    torchrun --nproc_per_node 2 tests/fsdp_worker.py OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

import visnet_hf


def build() -> visnet_hf.FRNForImageClassification:
    torch.manual_seed(0)
    return visnet_hf.create_model("frn_resnet18", backbone="test_vit", num_labels=4, image_size=160)


def batch(rank: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + rank)
    return {"pixel_values": torch.randn(2, 3, 160, 160, generator=generator), "labels": torch.tensor([rank, rank + 1])}


def main() -> None:
    output = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = build().eval()  # eval: no dropout, so every rank and the reference compute the same function
    for block in model.backbone.blocks:
        fully_shard(block)
    fully_shard(model)
    sharded = sum(p.to_local().numel() for p in model.parameters())
    total = sum(p.numel() for p in build().parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(**batch(rank)).loss.backward()  # FSDP averages the gradients of the two ranks
    optimizer.step()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        model_config = model.config
        plain = visnet_hf.FRNForImageClassification(model_config)
        plain.save_pretrained(output / "model", state_dict=state)
        (output / "shards.txt").write_text(f"{sharded} {total} {world}\n")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""accelerate launch train.py --config configs/quickstart.yaml [--resume] [key=value ...]

Thin by design: everything lives in visnet_hf.training, which `visnet train` calls too.
"""

from visnet_hf.training import main

if __name__ == "__main__":
    main()

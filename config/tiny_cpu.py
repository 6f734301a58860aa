"""The tiny model on a laptop CPU, trained on this Python's standard library source code.

    python prepare.py --out data/stdlib
    python train.py config/tiny_cpu.py
    torchrun --standalone --nproc_per_node=2 train.py config/tiny_cpu.py   # the same, as DDP on gloo

300 steps of 16 x 128 tokens (0.6M tokens). The 51,200-way output layer's matrix products set the
speed on a CPU (docs/training.md).
"""
data_dir = "data/stdlib"
out_dir = "out/tiny"
model = "tiny"
block_size = 128
batch_size = 16
micro_batch_size = 16
max_iters = 300
learning_rate = 2e-3
warmup_iters = 30
dtype = "float32"  # CPUs have no fast fp16 matmuls
device = "cpu"
compile = False  # on a CPU it costs minutes and runs no faster (docs/training.md: Compilation)
eval_interval = 100
eval_iters = 2
log_interval = 10
save_interval = 100
keep_every = 0

"""phi-1-small (350M, paper section 3.2) pretrained on one GPU: 3,000 steps of 128 x 2048 tokens (0.8B tokens).

    python train.py config/small_gpu.py
"""
model = "phi-1-small"
out_dir = "out/phi-1-small"
batch_size = 128
micro_batch_size = 16
max_iters = 3000
warmup_iters = 150
eval_interval = 250
eval_iters = 20  # 20 micro-batches of 16: 320 windows of each split per estimate
save_interval = 500
keep_every = 1000

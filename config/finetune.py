"""phi-1: finetune phi-1-base on CodeExercises (paper, section 2.3).

    torchrun --nproc_per_node=8 train.py config/finetune.py

"the same setup as pretraining, but different hyperparameters": effective batch 256, peak lr 1e-4 after
50 warmup steps, weight decay 0.01, 6,000 steps, and the best of the checkpoints saved every 1,000 steps.
Everything not set here (fp16, AdamW, dropout 0.1, sequence length 2048, linear decay) is train.py's default.
"""
data_dir = "data/codeexercises"
out_dir = "out/phi-1"
init_from = "out/phi-1-base/ckpt_24000.pt"  # phi-1-base is the pretraining run's 24,000-step checkpoint; weights only
batch_size = 256
learning_rate = 1e-4
warmup_iters = 50
weight_decay = 0.01
max_iters = 6000
eval_interval = 1000
save_interval = 1000
keep_every = 1000  # ckpt_1000.pt ... ckpt_6000.pt: evaluate them and keep the best, as the paper did

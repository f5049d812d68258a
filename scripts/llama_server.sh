#!/usr/bin/env sh
# Start llama.cpp's OpenAI-compatible server on 127.0.0.1 for an embedded model or a GGUF file.
#   scripts/llama_server.sh smollm2-135m-instruct --port 8080
#   rewardsmith judge --judge openai:smollm2-135m-instruct@http://127.0.0.1:8080/v1 ...
# Needs llama-cpp-python (see `python -m rewardsmith.judge.llama_server --help` for the install lines).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py="$here/.venv/bin/python"
[ -x "$py" ] || py=python3
exec "$py" -m rewardsmith.judge.llama_server "$@"
